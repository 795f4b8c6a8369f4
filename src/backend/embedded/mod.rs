//! The embedded engine: an in-memory Redis keyspace answering commands directly, so
//! development needs nothing else installed.
//!
//! All databases sit behind one mutex, taken once per command: like Redis's single thread,
//! every command is atomic, and commands that touch two databases (SWAPDB, MOVE, COPY DB)
//! need no lock ordering. Command handlers are plain functions from (context, argv) to a
//! [`Reply`], registered by name in one dispatch table.

pub mod blocking;
pub mod db;
pub mod hash_cmds;
mod keyspace_cmds;
pub mod list_cmds;
pub mod num;
pub mod scripting;
mod server_cmds;
pub mod set_cmds;
pub mod stream_cmds;
mod string_cmds;
pub mod value;
mod watch;
pub mod zset_cmds;

use std::collections::{HashMap, VecDeque};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::{Mutex, MutexGuard};
use tokio::sync::oneshot;

use crate::command::{CommandSpec, keys};
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
    /// Clients blocked in BLPOP & co., per key in arrival order.
    pub blocked: blocking::Blocked,
    /// WATCHed keys per client.
    watched: watch::Watches,
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
    /// Number of databases (fixed at start; read without the lock by SELECT).
    databases: usize,
    /// The Lua VM and script cache. Only taken while holding the state lock, so it never
    /// contends and cannot deadlock.
    scripting: Mutex<Option<scripting::Scripting>>,
    /// The running script, visible to other clients while it holds the state lock.
    pub script_run: std::sync::Arc<scripting::ScriptRun>,
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
        stream_cmds::register(&mut t);
        t
    })
}

/// Runs `f`, which may block for long, without stalling the other tasks of this tokio
/// worker (on a multi-thread runtime; elsewhere it simply runs).
pub fn in_place<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        _ => f(),
    }
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
                blocked: blocking::Blocked::default(),
                watched: watch::Watches::default(),
            }),
            stats: Stats::default(),
            last_save: AtomicU64::new(unix_ms() / 1000),
            hz: config.hz,
            databases: config.databases,
            scripting: Mutex::new(None),
            script_run: Default::default(),
        }
    }

    /// CONFIG SET maxmemory-policy.
    pub fn set_maxmemory_policy(&self, policy: &str) {
        self.lock_state().maxmemory_policy = policy.to_ascii_lowercase();
    }

    /// Applies a CONFIG SET parameter the engine acts on (already validated by the
    /// parameter table); others are ignored here.
    pub fn apply_config(&self, name: &str, value: &str) {
        let num = || value.parse::<i64>().unwrap_or(0);
        let size = || num().max(0) as usize;
        let mut state = self.lock_state();
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
            "busy-reply-threshold" | "lua-time-limit" => self
                .script_run
                .threshold_ms
                .store(num().max(0) as u64, Ordering::Relaxed),
            _ => {}
        }
    }

    pub fn databases(&self) -> usize {
        self.databases
    }

    /// Does the engine implement this command?
    pub fn supports(&self, name: &str) -> bool {
        handlers().contains_key(name) || scripting::handles(name)
    }

    /// Runs one command atomically. `cmd` has passed the table's arity check.
    pub fn execute(&self, client: ClientView, cmd: &CommandSpec, argv: &[Bytes]) -> Reply {
        self.batch().execute(client, cmd, argv)
    }

    /// The engine lock. A script may hold it for long: meanwhile the waiting thread hands
    /// its tokio worker's other connections to another thread, so they still get BUSY and
    /// SCRIPT KILL still gets in.
    fn lock_state(&self) -> MutexGuard<'_, State> {
        match self.state.try_lock() {
            Some(guard) => guard,
            None if self.script_run.running() => in_place(|| self.state.lock()),
            None => self.state.lock(),
        }
    }

    /// Takes the engine lock for one or more commands (EXEC runs its whole queue in one).
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            engine: self,
            state: self.lock_state(),
            hits: 0,
            misses: 0,
            ready: VecDeque::new(),
        }
    }

    /// A blocked client timed out, disconnected or was reset: stop waiting. Returns false if
    /// it was no longer waiting (it was served meanwhile; its reply is in its channel).
    pub fn cancel_block(&self, client_id: u64) -> bool {
        self.lock_state().blocked.remove(client_id).is_some()
    }

    /// CLIENT UNBLOCK: ends a client's wait as if it timed out, or with Redis's UNBLOCKED
    /// error. Returns whether the client was blocked.
    pub fn unblock(&self, client_id: u64, with_error: bool) -> bool {
        let Some(w) = self.lock_state().blocked.remove(client_id) else {
            return false;
        };
        let reply = if with_error {
            Reply::err(UNBLOCKED)
        } else {
            w.timeout_reply
        };
        let _ = w.reply_to.send(reply);
        true
    }

    /// WATCH: remembers the keys (and whether each holds a live value now).
    pub fn watch(&self, client_id: u64, db: usize, watch_keys: &[Bytes]) {
        let mut guard = self.lock_state();
        let State { dbs, watched, .. } = &mut *guard;
        let Some(d) = dbs.get(db) else {
            return;
        };
        let now = unix_ms();
        for key in watch_keys {
            watched.watch(client_id, db, key, d.peek(key, now).is_some());
        }
    }

    /// UNWATCH (also on EXEC, DISCARD, RESET and disconnect).
    pub fn unwatch(&self, client_id: u64) {
        self.lock_state().watched.unwatch(client_id);
    }

    /// INFO clients' blocked_clients.
    pub fn blocked_clients(&self) -> usize {
        self.lock_state().blocked.len()
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
        f(&self.lock_state())
    }

    /// One active expiry cycle over every database: sample 20 keys with TTLs, repeat while
    /// more than a quarter of them were expired, for at most ~25% of a cycle's time budget,
    /// so memory held by expired keys is reclaimed without anyone touching them.
    pub fn active_expire_cycle(&self) {
        const SAMPLES: usize = 20;
        let budget = Duration::from_micros(250_000 / self.hz.max(1) as u64);
        let start = std::time::Instant::now();
        let mut total = 0;
        // Never wait behind a running script: the next cycle will do.
        let mut state = match self.state.try_lock() {
            Some(guard) => guard,
            None if self.script_run.running() => return,
            None => self.state.lock(),
        };
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

/// CLIENT UNBLOCK ... ERROR's reply to the unblocked client, as Redis words it.
const UNBLOCKED: &str = "UNBLOCKED client unblocked via CLIENT UNBLOCK";

/// The outcome of a command that may block.
pub enum Blocking {
    Done(Reply),
    /// Nothing to serve yet: wait for `reply` (or time out with `timeout_reply`).
    Wait {
        reply: oneshot::Receiver<Reply>,
        timeout_reply: Reply,
        /// None: wait forever (timeout 0).
        timeout: Option<Duration>,
    },
}

/// The engine lock held across one or more commands (one command, or a whole EXEC): the
/// commands run through one batch are atomic together. When the batch ends, clients
/// blocked on keys it wrote are served, first come first, still under the lock.
pub struct Batch<'a> {
    engine: &'a Engine,
    state: MutexGuard<'a, State>,
    hits: u64,
    misses: u64,
    /// Written keys someone is blocked on, to re-try when the batch ends.
    ready: VecDeque<(usize, Bytes)>,
}

impl Batch<'_> {
    /// Runs one command; `cmd` has passed the table's arity check.
    pub fn execute(&mut self, client: ClientView, cmd: &CommandSpec, argv: &[Bytes]) -> Reply {
        if client.db >= self.state.dbs.len() {
            return Reply::err(crate::protocol::errors::DB_INDEX);
        }
        if scripting::handles(cmd.name) {
            // Each redis.call inside does its own dirty/watch/wake-up bookkeeping.
            return scripting::run(self, client, cmd, argv);
        }
        let Some(handler) = handlers().get(cmd.name) else {
            return Reply::err(crate::protocol::errors::unknown_command(argv));
        };
        let before = self.state.dirty;
        let flushed_watchers = self.watchers_of_flush(client.db, cmd.name, argv);
        let reply = self.run(*handler, client, argv);
        if self.state.dirty != before {
            if !reply.is_error() {
                self.state.watched.mark(&flushed_watchers);
            }
            self.after_write(client.db, cmd, argv);
        }
        reply
    }

    /// Runs a command that may block (BLPOP & co.): when it has nothing to serve, the client
    /// is queued on the command's source keys and will get its reply through the channel.
    pub fn execute_blocking(
        &mut self,
        client: ClientView,
        client_id: u64,
        cmd: &'static CommandSpec,
        argv: &[Bytes],
    ) -> Blocking {
        let reply = self.execute(client, cmd, argv);
        if !blocking::is_unserved(&reply) {
            return Blocking::Done(reply);
        }
        // Wait on the keys the command pops from (key spec flag ACCESS), not on BLMOVE's
        // destination.
        let wait_keys: Vec<Bytes> = match keys::keys_and_flags(cmd, argv) {
            Ok(refs) => refs
                .iter()
                .filter(|k| k.flags.iter().any(|f| f.eq_ignore_ascii_case("access")))
                .filter_map(|k| argv.get(k.pos).cloned())
                .collect(),
            Err(_) => Vec::new(),
        };
        if wait_keys.is_empty() {
            return Blocking::Done(reply);
        }
        let (tx, rx) = oneshot::channel();
        self.state.blocked.add(
            client_id,
            blocking::Waiter {
                client,
                cmd,
                argv: argv.to_vec(),
                keys: wait_keys,
                reply_to: tx,
                timeout_reply: reply.clone(),
            },
        );
        Blocking::Wait {
            reply: rx,
            timeout_reply: reply,
            timeout: blocking::timeout(cmd, argv),
        }
    }

    /// EXEC's check: no watched key of this client was touched or expired since WATCH.
    pub fn exec_allowed(&self, client_id: u64) -> bool {
        self.state
            .watched
            .exec_allowed(client_id, &self.state.dbs, unix_ms())
    }

    pub fn unwatch(&mut self, client_id: u64) {
        self.state.watched.unwatch(client_id);
    }

    fn run(&mut self, handler: Handler, client: ClientView, argv: &[Bytes]) -> Reply {
        let mut ctx = Ctx {
            state: &mut self.state,
            client,
            now_ms: unix_ms(),
            hits: 0,
            misses: 0,
        };
        let reply = handler(&mut ctx, argv);
        self.hits += ctx.hits;
        self.misses += ctx.misses;
        reply
    }

    /// FLUSHDB, FLUSHALL and SWAPDB touch every watched key that exists in a database they
    /// empty or swap; found before the command runs, marked if it succeeds.
    fn watchers_of_flush(&self, db: usize, name: &str, argv: &[Bytes]) -> Vec<u64> {
        let st = &*self.state;
        if st.watched.is_empty() {
            return Vec::new();
        }
        let now = unix_ms();
        let exists = |d: usize, k: &Bytes| st.dbs.get(d).is_some_and(|x| x.peek(k, now).is_some());
        match name {
            "flushdb" => st.watched.watchers_in_db(db, |k| exists(db, k)),
            "flushall" => (0..st.dbs.len())
                .flat_map(|d| st.watched.watchers_in_db(d, |k| exists(d, k)))
                .collect(),
            "swapdb" => {
                let a = argv.get(1).and_then(|b| num::parse_i64(b)).unwrap_or(-1);
                let b = argv.get(2).and_then(|b| num::parse_i64(b)).unwrap_or(-1);
                let (Ok(a), Ok(b)) = (usize::try_from(a), usize::try_from(b)) else {
                    return Vec::new();
                };
                let either = |k: &Bytes| exists(a, k) || exists(b, k);
                let mut ids = st.watched.watchers_in_db(a, either);
                ids.extend(st.watched.watchers_in_db(b, either));
                ids
            }
            _ => Vec::new(),
        }
    }

    /// A command changed the keyspace: its written keys touch their watchers and wake
    /// clients blocked on them.
    fn after_write(&mut self, db: usize, cmd: &CommandSpec, argv: &[Bytes]) {
        if self.state.watched.is_empty() && self.state.blocked.is_empty() {
            return;
        }
        let mut written: Vec<(usize, Bytes)> = match keys::keys_and_flags(cmd, argv) {
            Ok(refs) => refs
                .iter()
                .filter(|k| !k.flags.iter().any(|f| f.eq_ignore_ascii_case("RO")))
                .filter_map(|k| argv.get(k.pos).map(|key| (db, key.clone())))
                .collect(),
            Err(_) => Vec::new(),
        };
        // MOVE and COPY ... DB n write the key into another database.
        let target_db = match cmd.name {
            "move" => argv.get(2),
            "copy" => argv
                .iter()
                .position(|a| a.eq_ignore_ascii_case(b"db"))
                .and_then(|i| argv.get(i + 1)),
            _ => None,
        };
        if let Some(other) = target_db.and_then(|b| num::parse_i64(b)) {
            let key = if cmd.name == "move" {
                argv.get(1)
            } else {
                argv.get(2)
            };
            if let (Ok(other), Some(key)) = (usize::try_from(other), key) {
                written.push((other, key.clone()));
            }
        }
        if cmd.name == "swapdb" {
            let dbs = [argv.get(1), argv.get(2)];
            for d in dbs.into_iter().flatten().filter_map(|b| num::parse_i64(b)) {
                if let Ok(d) = usize::try_from(d) {
                    for key in self.state.blocked.keys_in_db(d) {
                        written.push((d, key));
                    }
                }
            }
        }
        for (d, key) in written {
            self.state.watched.touch(d, &key);
            if self.state.blocked.has_key(d, &key) {
                self.ready.push_back((d, key));
            }
        }
    }

    /// Serves blocked clients whose keys were written, in the order they blocked. Serving
    /// one may write another key (BLMOVE's destination), which queues its waiters in turn.
    fn serve_blocked(&mut self) {
        while let Some((db, key)) = self.ready.pop_front() {
            for id in self.state.blocked.queue(db, &key) {
                let now = unix_ms();
                if self
                    .state
                    .dbs
                    .get(db)
                    .is_none_or(|d| d.peek(&key, now).is_none())
                {
                    break;
                }
                let Some(w) = self.state.blocked.get(id) else {
                    continue;
                };
                let (client, cmd, argv) = (w.client, w.cmd, w.argv.clone());
                let Some(handler) = handlers().get(cmd.name) else {
                    continue;
                };
                let before = self.state.dirty;
                let reply = self.run(*handler, client, &argv);
                // Nothing for it (or the key now has another type): it keeps waiting, as in
                // Redis 7.0.
                if blocking::is_unserved(&reply) || reply.is_error() {
                    continue;
                }
                if let Some(w) = self.state.blocked.remove(id) {
                    // A client that left meanwhile loses the reply, as it would with Redis.
                    let _ = w.reply_to.send(reply);
                }
                if self.state.dirty != before {
                    self.after_write(client.db, cmd, &argv);
                }
            }
        }
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if !self.ready.is_empty() {
            self.serve_blocked();
        }
        let expired = std::mem::take(&mut self.state.pending_expired);
        self.engine.count(self.hits, self.misses, expired);
    }
}

/// Parses an integer argument or returns Redis's error reply.
pub fn arg_i64(b: &[u8]) -> Result<i64, Reply> {
    num::parse_i64(b).ok_or_else(|| Reply::err(crate::protocol::errors::NOT_INTEGER))
}

#[cfg(test)]
mod tests;
