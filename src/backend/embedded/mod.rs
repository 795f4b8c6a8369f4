//! The embedded engine: an in-memory Redis keyspace answering commands directly, so
//! development needs nothing else installed.
//!
//! All databases sit behind one mutex, taken once per command: like Redis's single thread,
//! every command is atomic, and commands that touch two databases (SWAPDB, MOVE, COPY DB)
//! need no lock ordering. Command handlers are plain functions from (context, argv) to a
//! [`Reply`], registered by name in one dispatch table.

pub mod db;
pub mod hash_cmds;
mod keyspace_cmds;
pub mod list_cmds;
pub mod num;
mod server_cmds;
pub mod set_cmds;
mod string_cmds;
pub mod value;
pub mod zset_cmds;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;

use crate::command::CommandSpec;
use crate::config::EmbeddedConfig;
use crate::protocol::{Protocol, Reply};
use db::{Db, Entry};

/// Counters INFO stats and the metrics endpoint report.
#[derive(Debug, Default)]
pub struct Stats {
    pub expired_keys: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
}

/// Everything behind the engine's lock.
#[derive(Debug)]
pub struct State {
    pub dbs: Vec<Db>,
    /// Writes since start (INFO persistence's rdb_changes_since_last_save).
    pub dirty: u64,
    /// Expired keys removed lazily or actively during the current command/cycle, folded into
    /// [`Stats`] after the lock is released.
    pending_expired: u64,
    /// Redis's maxmemory-policy name (OBJECT FREQ/IDLETIME depend on whether it is LFU).
    pub maxmemory_policy: String,
    /// Encoding thresholds (CONFIG hash-max-listpack-entries ...), read by the collection
    /// types to pick the encoding OBJECT ENCODING reports.
    pub tunables: Tunables,
}

/// Redis's encoding tunables, with Redis 7.0's defaults. They change no behaviour here, only
/// which encoding name a value reports (and when it converts, as Redis does, one way).
#[derive(Debug, Clone)]
pub struct Tunables {
    pub hash_max_listpack_entries: usize,
    pub hash_max_listpack_value: usize,
    pub set_max_intset_entries: usize,
    pub zset_max_listpack_entries: usize,
    pub zset_max_listpack_value: usize,
    /// Negative: a byte limit per node (-2 = 8 KiB); positive: entries per node.
    pub list_max_listpack_size: i64,
    pub list_compress_depth: usize,
}

impl Default for Tunables {
    fn default() -> Tunables {
        Tunables {
            hash_max_listpack_entries: 128,
            hash_max_listpack_value: 64,
            set_max_intset_entries: 512,
            zset_max_listpack_entries: 128,
            zset_max_listpack_value: 64,
            list_max_listpack_size: -2,
            list_compress_depth: 0,
        }
    }
}

impl State {
    /// Is an LFU maxmemory policy selected (Redis's MAXMEMORY_FLAG_LFU)?
    pub fn lfu_policy(&self) -> bool {
        self.maxmemory_policy.ends_with("-lfu")
    }
}

/// The embedded engine.
pub struct Engine {
    state: Mutex<State>,
    pub stats: Stats,
    /// Unix seconds of the last (simulated) save, for LASTSAVE.
    pub last_save: AtomicU64,
    hz: u32,
}

/// Per-connection state the engine needs: the selected database and protocol.
#[derive(Debug, Clone, Copy)]
pub struct ClientView {
    pub db: usize,
    pub proto: Protocol,
}

/// What a command handler works with: the locked state, the client's database and the
/// command's clock (one timestamp per command, like Redis's `commandTimeSnapshot`).
pub struct Ctx<'a> {
    pub state: &'a mut State,
    pub client: ClientView,
    pub now_ms: u64,
    pub hits: u64,
    pub misses: u64,
}

impl Ctx<'_> {
    pub fn db(&mut self) -> &mut Db {
        &mut self.state.dbs[self.client.db]
    }

    /// Live entry for `key` (expired ones are deleted first).
    pub fn lookup(&mut self, key: &Bytes) -> Option<&mut Entry> {
        let now = self.now_ms;
        let db = self.client.db;
        let State {
            dbs,
            pending_expired,
            ..
        } = &mut *self.state;
        dbs[db].get(key, now, pending_expired)
    }

    /// Like [`Ctx::lookup`] but counts a keyspace hit or miss and refreshes the access
    /// time, as Redis's lookupKeyRead does.
    pub fn lookup_read(&mut self, key: &Bytes) -> Option<&mut Entry> {
        let now = self.now_ms;
        let db = self.client.db;
        let State {
            dbs,
            pending_expired,
            ..
        } = &mut *self.state;
        match dbs[db].get(key, now, pending_expired) {
            Some(e) => {
                self.hits += 1;
                e.last_access = now / 1000;
                Some(e)
            }
            None => {
                self.misses += 1;
                None
            }
        }
    }

    pub fn dirty(&mut self, n: u64) {
        self.state.dirty += n;
    }
}

/// A command handler: argv includes the command name.
pub type Handler = fn(&mut Ctx, &[Bytes]) -> Reply;

fn handlers() -> &'static HashMap<&'static str, Handler> {
    static TABLE: OnceLock<HashMap<&'static str, Handler>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t: HashMap<&'static str, Handler> = HashMap::new();
        string_cmds::register(&mut t);
        keyspace_cmds::register(&mut t);
        server_cmds::register(&mut t);
        hash_cmds::register(&mut t);
        list_cmds::register(&mut t);
        set_cmds::register(&mut t);
        zset_cmds::register(&mut t);
        t
    })
}

/// Milliseconds since the unix epoch.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Engine {
    pub fn new(config: &EmbeddedConfig) -> Engine {
        Engine {
            state: Mutex::new(State {
                dbs: (0..config.databases).map(|_| Db::default()).collect(),
                dirty: 0,
                pending_expired: 0,
                maxmemory_policy: config.maxmemory_policy.clone(),
                tunables: Tunables::default(),
            }),
            stats: Stats::default(),
            last_save: AtomicU64::new(unix_ms() / 1000),
            hz: config.hz,
        }
    }

    /// CONFIG SET maxmemory-policy.
    pub fn set_maxmemory_policy(&self, policy: &str) {
        self.state.lock().maxmemory_policy = policy.to_ascii_lowercase();
    }

    /// Applies a CONFIG SET parameter the engine acts on (already validated by the
    /// parameter table); others are ignored here.
    pub fn apply_config(&self, name: &str, value: &str) {
        let num = || value.parse::<i64>().unwrap_or(0);
        let size = || num().max(0) as usize;
        let mut state = self.state.lock();
        let t = &mut state.tunables;
        match name {
            "maxmemory-policy" => state.maxmemory_policy = value.to_ascii_lowercase(),
            "hash-max-listpack-entries" | "hash-max-ziplist-entries" => {
                t.hash_max_listpack_entries = size()
            }
            "hash-max-listpack-value" | "hash-max-ziplist-value" => {
                t.hash_max_listpack_value = size()
            }
            "set-max-intset-entries" => t.set_max_intset_entries = size(),
            "zset-max-listpack-entries" | "zset-max-ziplist-entries" => {
                t.zset_max_listpack_entries = size()
            }
            "zset-max-listpack-value" | "zset-max-ziplist-value" => {
                t.zset_max_listpack_value = size()
            }
            "list-max-listpack-size" | "list-max-ziplist-size" => t.list_max_listpack_size = num(),
            "list-compress-depth" => t.list_compress_depth = size(),
            _ => {}
        }
    }

    pub fn databases(&self) -> usize {
        self.state.lock().dbs.len()
    }

    /// Does the engine implement this command?
    pub fn supports(&self, name: &str) -> bool {
        handlers().contains_key(name)
    }

    /// Runs one command atomically. `cmd` has passed the table's arity check.
    pub fn execute(&self, client: ClientView, cmd: &CommandSpec, argv: &[Bytes]) -> Reply {
        let Some(handler) = handlers().get(cmd.name) else {
            return Reply::err(crate::protocol::errors::unknown_command(argv));
        };
        let mut state = self.state.lock();
        if client.db >= state.dbs.len() {
            return Reply::err(crate::protocol::errors::DB_INDEX);
        }
        let mut ctx = Ctx {
            state: &mut state,
            client,
            now_ms: unix_ms(),
            hits: 0,
            misses: 0,
        };
        let reply = handler(&mut ctx, argv);
        let (hits, misses) = (ctx.hits, ctx.misses);
        let expired = std::mem::take(&mut state.pending_expired);
        drop(state);
        self.count(hits, misses, expired);
        reply
    }

    fn count(&self, hits: u64, misses: u64, expired: u64) {
        if hits > 0 {
            self.stats.keyspace_hits.fetch_add(hits, Ordering::Relaxed);
        }
        if misses > 0 {
            self.stats
                .keyspace_misses
                .fetch_add(misses, Ordering::Relaxed);
        }
        if expired > 0 {
            self.stats
                .expired_keys
                .fetch_add(expired, Ordering::Relaxed);
        }
    }

    /// Runs under the lock with access to all state (INFO keyspace, memory).
    pub fn with_state<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.lock())
    }

    /// One active expiry cycle over every database: sample 20 keys with TTLs, repeat while
    /// more than a quarter of them were expired, for at most ~25% of a cycle's time budget,
    /// so memory held by expired keys is reclaimed without anyone touching them.
    pub fn active_expire_cycle(&self) {
        const SAMPLES: usize = 20;
        let budget = Duration::from_micros(250_000 / self.hz.max(1) as u64);
        let start = std::time::Instant::now();
        let mut total = 0;
        let mut state = self.state.lock();
        let now = unix_ms();
        for db in state.dbs.iter_mut() {
            loop {
                let c = db.active_expire(now, SAMPLES);
                total += c.expired;
                if c.sampled == 0 || c.expired * 4 <= c.sampled || start.elapsed() > budget {
                    break;
                }
            }
        }
        drop(state);
        self.count(0, 0, total as u64);
    }

    /// Spawns the active expiry task (`hz` cycles per second) on the current runtime.
    pub fn spawn_expiry(self: &std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        let engine = std::sync::Arc::downgrade(self);
        let period = Duration::from_millis(1000 / self.hz.max(1) as u64);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(engine) = engine.upgrade() else {
                    break;
                };
                engine.active_expire_cycle();
            }
        })
    }
}

/// Parses an integer argument or returns Redis's error reply.
pub fn arg_i64(b: &[u8]) -> Result<i64, Reply> {
    num::parse_i64(b).ok_or_else(|| Reply::err(crate::protocol::errors::NOT_INTEGER))
}

#[cfg(test)]
mod tests;
