//! The embedded engine: an in-memory Redis keyspace answering commands directly, so
//! development needs nothing else installed.
//!
//! All databases sit behind one mutex, taken once per command: like Redis's single thread,
//! every command is atomic, and commands that touch two databases (SWAPDB, MOVE, COPY DB)
//! need no lock ordering. Command handlers are plain functions from (context, argv) to a
//! [`Reply`], registered by name in one dispatch table.

pub mod aof;
mod bit_cmds;
pub mod blocking;
pub mod clock;
pub mod db;
pub mod dump_cmds;
mod geo;
pub mod hash_cmds;
mod hll_cmds;
mod keyspace_cmds;
pub mod list_cmds;
pub mod notify;
pub mod num;
mod pqsort;
pub mod rdb;
pub mod scripting;
mod server_cmds;
pub mod set_cmds;
mod sort_cmds;
pub mod stream_cmds;
mod string_cmds;
mod tenancy;
#[cfg(test)]
mod test_support;
pub mod tracking;
mod ttl;
pub mod value;
mod watch;
pub mod zset_cmds;

use std::borrow::Cow;
use std::collections::VecDeque;
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
    pub evicted_keys: AtomicU64,
    pub keyspace_hits: AtomicU64,
    pub keyspace_misses: AtomicU64,
    /// Unix seconds of the last AOF fsync and rewrite (0: none yet).
    pub aof_last_fsync: AtomicU64,
    pub aof_last_rewrite: AtomicU64,
}

/// Everything behind the engine's lock.
#[derive(Debug)]
pub struct State {
    pub dbs: Vec<Db>,
    /// Writes since start (INFO persistence's rdb_changes_since_last_save).
    pub dirty: u64,
    /// Expired keys removed lazily or actively during the current command/cycle, folded into
    /// [`Stats`] after the lock is released.
    pending_expired: db::Expired,
    /// Redis's maxmemory-policy name (OBJECT FREQ/IDLETIME depend on whether it is LFU).
    pub maxmemory_policy: String,
    /// Encoding thresholds (CONFIG hash-max-listpack-entries ...), read by the collection
    /// types to pick the encoding OBJECT ENCODING reports.
    pub tunables: Tunables,
    /// Clients blocked in BLPOP & co., per key in arrival order.
    pub blocked: blocking::Blocked,
    /// WATCHed keys per client.
    watched: watch::Watches,
    /// The command clock while replaying the AOF (stopped, so nothing expires mid-replay).
    clock_override: Option<u64>,
    /// What the running command propagates to the AOF instead of its own argv, when that
    /// would not replay to the same state (stream commands: XADD's generated ID, `~`
    /// trimming made exact, XREADGROUP's effects as XCLAIM / XGROUP SETID). `Some(vec![])`
    /// propagates nothing. Cleared before every command.
    pub(crate) propagate_as: Option<Vec<Vec<Bytes>>>,
    /// notify-keyspace-events, parsed.
    pub notify_flags: u32,
    /// Eviction candidates kept between evictions (Redis's eviction pool): (score, db, key),
    /// best (highest score) first.
    evict_pool: Vec<(u64, usize, Bytes)>,
    /// Set while a Lua script's redis.call commands run (Redis's CLIENT_SCRIPT flag on the
    /// script's client): SORT then orders a set even when told not to, as Redis does so
    /// scripts see a deterministic result.
    pub in_script: bool,
    /// CLIENT TRACKING: who may have cached what.
    tracking: tracking::TrackingTable,
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
    /// Replaying the AOF (Redis's "loading"): commands come from our own log, so they are
    /// trusted as Redis trusts its AOF client (no LIMIT check, given times kept).
    pub fn loading(&self) -> bool {
        self.clock_override.is_some()
    }

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
    /// The append-only file, when persistence is on. Taken only under the state lock.
    aof: Mutex<Option<aof::Aof>>,
    /// Whether `aof` is Some, readable without its lock (checked around every command).
    aof_on: std::sync::atomic::AtomicBool,
    /// auto-aof-rewrite-min-size.
    aof_rewrite_min: AtomicU64,
    /// maxmemory in bytes (0 = no limit) and maxmemory-samples.
    maxmemory: AtomicU64,
    maxmemory_samples: AtomicU64,
    /// Publishes keyspace notifications (set by the server to its pub/sub registry).
    notifier: OnceLock<Notifier>,
    /// Told the name of every evicted key (the monitor counts evictions per tenant).
    eviction_hook: OnceLock<EvictionHook>,
    /// Where CLIENT TRACKING invalidations go (set by the server).
    invalidation_sink: OnceLock<tracking::InvalidationSink>,
}

/// Where keyspace notifications go: (channel, message).
pub type Notifier = Box<dyn Fn(&Bytes, &Bytes) + Send + Sync>;

/// Called with each evicted key, under the engine lock: must be quick and must not call
/// back into the engine.
pub type EvictionHook = Box<dyn Fn(&[u8]) + Send + Sync>;

/// Per-connection state the engine needs: the selected database and protocol.
#[derive(Debug, Clone, Copy)]
pub struct ClientView {
    pub db: usize,
    pub proto: Protocol,
    /// The client's CLIENT TRACKING state (None: not tracking).
    pub tracker: Option<tracking::Tracker>,
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

    /// The client's database, the sink its lazy expiries are recorded in (set to name that
    /// database) and the command's clock.
    fn db_and_expired(&mut self) -> (&mut Db, &mut db::Expired, u64) {
        let now = self.now_ms;
        let db = self.client.db;
        let State {
            dbs,
            pending_expired,
            ..
        } = &mut *self.state;
        pending_expired.db = db;
        (&mut dbs[db], pending_expired, now)
    }

    /// Live entry for `key` (expired ones are deleted first).
    pub fn lookup(&mut self, key: &Bytes) -> Option<&mut Entry> {
        let (db, expired, now) = self.db_and_expired();
        db.get(key, now, expired)
    }

    /// [`Db::update`] in the client's database: `change` runs on the live entry of `key`,
    /// whose new size is counted at once; None if there is none.
    pub fn update<R>(&mut self, key: &Bytes, change: impl FnOnce(&mut Entry) -> R) -> Option<R> {
        let (db, expired, now) = self.db_and_expired();
        db.update(key, now, expired, change)
    }

    /// The TTL of `key` if it is live (Some(None): no TTL), as [`Ctx::lookup`] would find
    /// it (an expired key is deleted first), without handing the entry out to change.
    pub fn live_ttl(&mut self, key: &Bytes) -> Option<Option<u64>> {
        let (db, expired, now) = self.db_and_expired();
        db.live_ttl(key, now, expired)
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
        pending_expired.db = db;
        match dbs[db].get(key, now, pending_expired) {
            Some(e) => {
                self.hits += 1;
                e.touch(now);
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

/// Command handlers by name. FxHash: our own command names, looked up once per command.
pub(crate) type Handlers = rustc_hash::FxHashMap<&'static str, Handler>;

/// The handler of a command-table entry, found by the entry's address (no name hashing or
/// comparing per command); entries not in the table fall back to the name.
pub fn handler_for(cmd: &CommandSpec) -> Option<Handler> {
    // Top-level commands (every data command) by their position in the table.
    static BY_ORDINAL: OnceLock<Vec<Option<Handler>>> = OnceLock::new();
    if let Some(handler) = crate::command::table::per_command(&BY_ORDINAL, cmd, |spec| {
        handlers().get(spec.name).copied()
    }) {
        return handler;
    }
    // Subcommands by their entry's address.
    static BY_SPEC: OnceLock<rustc_hash::FxHashMap<usize, Handler>> = OnceLock::new();
    let by_spec = BY_SPEC.get_or_init(|| {
        let mut m = rustc_hash::FxHashMap::default();
        for top in crate::command::table::all() {
            for spec in top.subcommands {
                if let Some(h) = handlers().get(spec.name) {
                    m.insert(spec as *const CommandSpec as usize, *h);
                }
            }
        }
        m
    });
    match by_spec.get(&(cmd as *const CommandSpec as usize)) {
        Some(h) => Some(*h),
        None => handlers().get(cmd.name).copied(),
    }
}

fn handlers() -> &'static Handlers {
    static TABLE: OnceLock<Handlers> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Handlers::default();
        string_cmds::register(&mut t);
        keyspace_cmds::register(&mut t);
        server_cmds::register(&mut t);
        hash_cmds::register(&mut t);
        list_cmds::register(&mut t);
        set_cmds::register(&mut t);
        zset_cmds::register(&mut t);
        bit_cmds::register(&mut t);
        hll_cmds::register(&mut t);
        dump_cmds::register(&mut t);
        geo::register(&mut t);
        stream_cmds::register(&mut t);
        sort_cmds::register(&mut t);
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

/// Lets the other tasks of this tokio worker go on running on another thread while the
/// caller goes on here: a script found to run long calls it from inside the script, so the
/// rest of the script does not stall the other connections (one worker thread, the
/// embedded engine's default, would stop all of them, SCRIPT KILL included).
///
/// `block_in_place` hands the worker to a new thread; it returns once a task spawned here
/// has run there (so the new thread has the worker), and the caller then finishes its poll
/// on this thread without it. Elsewhere than on a multi-thread runtime's worker this does
/// nothing. The wait is bounded: should no thread take the worker within a second, the
/// caller takes it back and simply goes on (as before the call).
pub fn release_worker() {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let Ok(handle) = Handle::try_current() else {
        return;
    };
    if handle.runtime_flavor() != RuntimeFlavor::MultiThread {
        return;
    }
    let (taken, on_new_thread) = std::sync::mpsc::sync_channel::<()>(1);
    handle.spawn(async move {
        let _ = taken.send(());
    });
    tokio::task::block_in_place(|| {
        let _ = on_new_thread.recv_timeout(Duration::from_secs(1));
    });
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
        clock::start();
        Engine {
            state: Mutex::new(State {
                dbs: (0..config.databases).map(|_| Db::default()).collect(),
                dirty: 0,
                pending_expired: db::Expired::default(),
                maxmemory_policy: config.maxmemory_policy.clone(),
                tunables: Tunables::default(),
                blocked: blocking::Blocked::default(),
                watched: watch::Watches::default(),
                tracking: tracking::TrackingTable::default(),
                clock_override: None,
                propagate_as: None,
                notify_flags: 0,
                evict_pool: Vec::new(),
                in_script: false,
            }),
            stats: Stats::default(),
            last_save: AtomicU64::new(unix_ms() / 1000),
            hz: config.hz,
            databases: config.databases,
            scripting: Mutex::new(None),
            script_run: Default::default(),
            aof: Mutex::new(None),
            aof_on: std::sync::atomic::AtomicBool::new(false),
            aof_rewrite_min: AtomicU64::new(64 * 1024 * 1024),
            maxmemory: AtomicU64::new(crate::config::parse_size(&config.maxmemory).unwrap_or(0)),
            maxmemory_samples: AtomicU64::new(5),
            notifier: OnceLock::new(),
            eviction_hook: OnceLock::new(),
            invalidation_sink: OnceLock::new(),
        }
    }

    /// The memory limit in bytes (0 = none), as CONFIG SET maxmemory last left it.
    pub fn maxmemory(&self) -> u64 {
        self.maxmemory.load(Ordering::Relaxed)
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
            "maxmemory" => self.maxmemory.store(num().max(0) as u64, Ordering::Relaxed),
            "maxmemory-samples" => self
                .maxmemory_samples
                .store(num().clamp(1, 64) as u64, Ordering::Relaxed),
            "notify-keyspace-events" => {
                state.notify_flags = notify::parse_flags(value).unwrap_or(0);
            }
            "appendfsync" => {
                if let Some(aof) = self.aof.lock().as_mut() {
                    aof.fsync = aof::Fsync::parse(value);
                }
            }
            "auto-aof-rewrite-min-size" => self
                .aof_rewrite_min
                .store(num().max(0) as u64, Ordering::Relaxed),
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

    fn publish(&self, messages: Vec<(Bytes, Bytes)>) {
        if let Some(notifier) = self.notifier.get() {
            for (channel, msg) in messages {
                notifier(&channel, &msg);
            }
        }
    }

    /// Writes the batch's AOF commands (and fsyncs with `always`) before anyone is answered;
    /// rewrites the file when it has doubled.
    fn flush_aof(&self, state: &State) {
        if !self.aof_enabled() {
            return;
        }
        let mut slot = self.aof.lock();
        let Some(aof) = slot.as_mut() else {
            return;
        };
        if let Err(e) = aof.flush() {
            tracing::error!(error = %e, path = %aof.path().display(), "writing the AOF failed");
        }
        if aof.wants_rewrite(self.aof_rewrite_min.load(Ordering::Relaxed)) {
            let path = aof.path().to_path_buf();
            let fsync = aof.fsync;
            match aof::rewrite_commands(state, unix_ms()) {
                Ok(contents) => match aof::replace_file(&path, &contents) {
                    Ok(()) => match aof::Aof::open(&path, fsync) {
                        Ok(fresh) => {
                            *slot = Some(fresh);
                            self.stats
                                .aof_last_rewrite
                                .store(unix_ms() / 1000, Ordering::Relaxed);
                        }
                        Err(e) => tracing::error!(error = %e, "reopening the rewritten AOF failed"),
                    },
                    Err(e) => tracing::error!(error = %e, "AOF rewrite failed"),
                },
                Err(e) => tracing::warn!(why = %e, "AOF rewrite skipped"),
            }
        }
    }

    /// Sets where keyspace notifications are published (once, at server start).
    pub fn set_notifier(&self, notifier: Notifier) {
        let _ = self.notifier.set(notifier);
    }

    /// Sets where CLIENT TRACKING invalidations go (once, at server start).
    pub fn set_invalidation_sink(&self, sink: tracking::InvalidationSink) {
        let _ = self.invalidation_sink.set(sink);
    }

    /// CLIENT TRACKING on for client `id` (`bcast`: its prefixes, already namespaced).
    pub fn track(&self, id: u64, bcast: Option<Vec<Bytes>>, noloop: bool) {
        self.lock_state().tracking.enable(id, bcast, noloop);
    }

    /// CLIENT TRACKING off (or the client left).
    pub fn untrack(&self, id: u64) {
        self.lock_state().tracking.disable(id);
    }

    /// Tells tracking clients that `key` changed (`writer`: the client that changed it).
    fn invalidate_tracked(&self, state: &mut State, key: &Bytes, writer: Option<u64>) {
        if state.tracking.is_empty() {
            return;
        }
        if let Some(sink) = self.invalidation_sink.get() {
            state.tracking.invalidate(key, writer, sink);
        }
    }

    /// Sets the eviction hook (once, at server start).
    pub fn set_eviction_hook(&self, hook: EvictionHook) {
        let _ = self.eviction_hook.set(hook);
    }

    pub fn aof_enabled(&self) -> bool {
        self.aof_on.load(Ordering::Acquire)
    }

    /// The AOF's size in bytes, when appending is on.
    pub fn aof_size(&self) -> Option<u64> {
        self.aof.lock().as_ref().map(|a| a.size)
    }

    /// Persistence on at start: replays the AOF at `path` (if any), then appends to it.
    pub fn start_aof(
        &self,
        path: &std::path::Path,
        fsync: aof::Fsync,
    ) -> Result<usize, aof::AofError> {
        let applied = aof::replay(self, path)?;
        *self.aof.lock() = Some(aof::Aof::open(path, fsync)?);
        self.aof_on.store(true, Ordering::Release);
        Ok(applied)
    }

    /// CONFIG SET appendonly yes at run time: writes the current data as a fresh AOF, then
    /// appends to it. `no` stops appending (the file stays).
    pub fn set_appendonly(
        &self,
        on: bool,
        path: &std::path::Path,
        fsync: aof::Fsync,
    ) -> Result<(), String> {
        if !on {
            self.aof_on.store(false, Ordering::Release);
            *self.aof.lock() = None;
            return Ok(());
        }
        if self.aof_enabled() {
            return Ok(());
        }
        let state = self.lock_state();
        let contents = aof::rewrite_commands(&state, unix_ms())?;
        aof::replace_file(path, &contents).map_err(|e| format!("{}: {e}", path.display()))?;
        let opened = aof::Aof::open(path, fsync).map_err(|e| e.to_string())?;
        *self.aof.lock() = Some(opened);
        self.aof_on.store(true, Ordering::Release);
        drop(state);
        Ok(())
    }

    /// BGREWRITEAOF (done in the foreground, under the lock): the file becomes the
    /// shortest commands that rebuild the current data.
    pub fn rewrite_aof(&self) -> Result<(), String> {
        let state = self.lock_state();
        let mut slot = self.aof.lock();
        let Some(current) = slot.as_mut() else {
            return Err("no AOF".into());
        };
        let _ = current.flush();
        let path = current.path().to_path_buf();
        let fsync = current.fsync;
        let contents = aof::rewrite_commands(&state, unix_ms())?;
        aof::replace_file(&path, &contents).map_err(|e| format!("{}: {e}", path.display()))?;
        *slot = Some(aof::Aof::open(&path, fsync).map_err(|e| e.to_string())?);
        self.stats
            .aof_last_rewrite
            .store(unix_ms() / 1000, Ordering::Relaxed);
        tracing::info!(path = %path.display(), bytes = contents.len(), "AOF rewritten");
        Ok(())
    }

    /// The AOF's everysec fsync, off the engine lock.
    pub fn spawn_aof_fsync(self: &std::sync::Arc<Self>) -> tokio::task::JoinHandle<()> {
        let engine = std::sync::Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(engine) = engine.upgrade() else {
                    break;
                };
                let file = engine.aof.lock().as_mut().and_then(|a| a.take_unsynced());
                if let Some(file) = file
                    && let Ok(Ok(())) = tokio::task::spawn_blocking(move || file.sync_data()).await
                {
                    engine
                        .stats
                        .aof_last_fsync
                        .store(unix_ms() / 1000, Ordering::Relaxed);
                }
            }
        })
    }

    /// The engine lock. A worker thread never blocks on it for long: after a short wait
    /// (other commands hold it for microseconds) the wait is handed off the runtime
    /// (`in_place`), so a long holder — a running script, even one that took the lock and
    /// has not yet marked itself running — cannot stop the other connections (with one
    /// worker thread, the default for the embedded engine, it would stop all of them, SCRIPT
    /// KILL included).
    fn lock_state(&self) -> MutexGuard<'_, State> {
        if let Some(guard) = self.state.try_lock() {
            return guard;
        }
        if !self.script_run.running()
            && let Some(guard) = self.state.try_lock_for(LOCK_SPIN)
        {
            return guard;
        }
        in_place(|| self.state.lock())
    }

    /// Takes the engine lock for one or more commands (EXEC runs its whole queue in one).
    pub fn batch(&self) -> Batch<'_> {
        let mut state = self.lock_state();
        // Expired keys' names feed the AOF, notifications and blocked XREADGROUP clients.
        state.pending_expired.keep_names = self.aof_enabled()
            || state.notify_flags & notify::EXPIRED != 0
            || !state.blocked.is_empty()
            || !state.tracking.is_empty();
        Batch {
            engine: self,
            dirty_at_start: state.dirty,
            state,
            hits: 0,
            misses: 0,
            ready: VecDeque::new(),
            tenant: None,
            now_ms: None,
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

    /// A batch's keyspace hits and misses. They are only ever changed under the engine
    /// lock (the `&State` borrow proves it is held), so a plain load and store is exact and
    /// spares a locked add per command (measured: over 1% of a pipelined GET's CPU).
    fn count_lookups(&self, _locked: &State, hits: u64, misses: u64) {
        for (counter, n) in [
            (&self.stats.keyspace_hits, hits),
            (&self.stats.keyspace_misses, misses),
        ] {
            if n > 0 {
                counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
            }
        }
    }

    /// CONFIG RESETSTAT: the engine's INFO stats counters start from zero again.
    pub fn reset_stats(&self) {
        let _locked = self.lock_state();
        for counter in [
            &self.stats.expired_keys,
            &self.stats.evicted_keys,
            &self.stats.keyspace_hits,
            &self.stats.keyspace_misses,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    fn count_expired(&self, expired: u64) {
        if expired > 0 {
            self.stats
                .expired_keys
                .fetch_add(expired, Ordering::Relaxed);
            crate::metrics::handles().expired_keys.increment(expired);
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
        // Never wait long (behind a running script, say): the next cycle will do.
        let Some(mut state) = self.state.try_lock_for(LOCK_SPIN) else {
            return;
        };
        let now = unix_ms();
        let keep_names = self.aof_enabled()
            || state.notify_flags & notify::EXPIRED != 0
            || !state.blocked.is_empty()
            || !state.tracking.is_empty();
        let State {
            dbs,
            pending_expired,
            ..
        } = &mut *state;
        pending_expired.keep_names = keep_names;
        for (index, db) in dbs.iter_mut().enumerate() {
            pending_expired.db = index;
            loop {
                let c = db.active_expire(now, SAMPLES, pending_expired);
                total += c.expired;
                if c.sampled == 0 || c.expired * 4 <= c.sampled || start.elapsed() > budget {
                    break;
                }
            }
        }
        let keys = std::mem::take(&mut state.pending_expired.keys);
        state.pending_expired.count = 0;
        if !keys.is_empty() {
            let flags = state.notify_flags;
            if let Some(aof) = self.aof.lock().as_mut() {
                for (db, key) in &keys {
                    aof.append(*db, &[Bytes::from_static(b"DEL"), key.clone()]);
                }
            }
            for (db, key) in &keys {
                self.publish(notify::messages(
                    flags,
                    notify::EXPIRED,
                    "expired",
                    *db,
                    key,
                ));
                self.invalidate_tracked(&mut state, key, None);
            }
            self.flush_aof(&state);
        }
        // Expired streams end their XREADGROUP waiters' wait: served through a batch, as
        // after any write (re-checked there, so a write in between does no harm).
        let woken: Vec<(usize, Bytes)> = keys
            .into_iter()
            .filter(|(db, key)| state.blocked.has_key(*db, key))
            .collect();
        drop(state);
        if !woken.is_empty() {
            self.batch().ready.extend(woken);
        }
        self.count_expired(total as u64);
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

/// Redis's reply to a command that could grow memory while over maxmemory.
const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// Candidates kept between evictions, as Redis's EVPOOL_SIZE.
const EVICTION_POOL: usize = 16;

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

/// How long a worker thread waits for the engine lock before it hands the wait off the
/// runtime (see `Engine::lock_state`).
const LOCK_SPIN: Duration = Duration::from_millis(1);

/// Most commands run under one hold before the lock is let go and taken again (so that
/// clients on other worker threads wait for at most this many).
const HOLD_MAX_COMMANDS: u32 = 256;

/// The engine lock held across a connection's plain commands (no tenant, not blocking, not
/// a script) while it runs what one read brought: one lock and one batch's bookkeeping for
/// the run instead of per command, as Redis runs a client's whole query buffer before
/// serving anyone else. The connection lets it go before it waits for anything (it lives in
/// a synchronous function), and before any other command, which may take the lock itself.
pub struct EngineHold<'a> {
    engine: &'a Engine,
    batch: Option<Batch<'a>>,
    commands: u32,
}

impl<'a> EngineHold<'a> {
    pub fn new(engine: &'a Engine) -> EngineHold<'a> {
        EngineHold {
            engine,
            batch: None,
            commands: 0,
        }
    }

    /// Lets the lock go (the batch ends: AOF written, blocked clients served).
    pub fn release(&mut self) {
        self.batch = None;
        self.commands = 0;
    }

    /// Runs one plain command under the hold; `now_ms` is its clock (see
    /// [`clock::unix_ms_at`]). Clients blocked on what it wrote are served right after it,
    /// as Redis serves them after each command.
    pub fn execute_at(
        &mut self,
        client: ClientView,
        cmd: &CommandSpec,
        argv: &[Bytes],
        now_ms: u64,
    ) -> Reply {
        if self.commands >= HOLD_MAX_COMMANDS {
            self.release();
        }
        let engine = self.engine;
        let batch = self.batch.get_or_insert_with(|| engine.batch());
        batch.now_ms = Some(now_ms);
        let reply = batch.execute(client, cmd, argv);
        if !batch.ready.is_empty() {
            batch.serve_blocked();
        }
        self.commands += 1;
        reply
    }
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
    dirty_at_start: u64,
    /// The tenant a script in this batch runs for: its redis.calls are namespaced.
    tenant: Option<std::sync::Arc<crate::policy::Tenant>>,
    /// The command clock the caller read (None: read it per command).
    now_ms: Option<u64>,
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
        let Some(handler) = handler_for(cmd) else {
            return Reply::err(crate::protocol::errors::unknown_command(argv));
        };
        if let Some(oom) = self.make_room(cmd) {
            return oom;
        }
        let before = self.state.dirty;
        let flushed_watchers = self.watchers_of_flush(client.db, cmd.name, argv);
        let existed = self.existence_for_notify(client.db, cmd, argv);
        let existed_keys = self.existing_before(client.db, cmd, argv);
        let lent_before = self.state.dbs.get(client.db).map(Db::lent);
        let reply = self.run(handler, client, argv);
        self.settle_expired();
        if let Some(t) = client.tracker
            && t.remember_reads
            && cmd.has(crate::command::table::flags::READONLY)
            && let Ok(refs) = keys::keys_and_flags(cmd, argv)
        {
            let read = refs.iter().filter_map(|k| argv.get(k.pos));
            self.state.tracking.remember(t.id, read);
        }
        if self.state.dirty != before {
            // The written keys are needed when an entry was changed in place (its size is
            // counted again) or someone watches, waits on or tracks keys; most writes need
            // none of that (SET, MSET, INCR and LPUSH count their entries themselves).
            let lent = self.state.dbs.get(client.db).map(Db::lent) != lent_before;
            let needed = lent
                || !self.state.watched.is_empty()
                || !self.state.blocked.is_empty()
                || !self.state.tracking.is_empty();
            // One key-spec walk serves them all (a one-key write needs no walk and no
            // allocation).
            let (sole, walked);
            let written: &[&Bytes] = if !needed {
                &[]
            } else if let Some(key) = keys::sole_written_key(cmd, argv) {
                sole = [key];
                &sole
            } else {
                walked = written_keys_by_specs(cmd, argv);
                &walked
            };
            if lent {
                self.remeasure(client.db, written);
            }
            if !reply.is_error() {
                self.state.watched.mark(&flushed_watchers);
            }
            self.propagate(client.db, cmd, argv, &reply);
            if let Some(existed) = existed {
                self.notify_write(client.db, cmd, argv, existed);
            }
            let changed = changed_keys(cmd, written, &reply, existed_keys.as_deref());
            self.after_write(client.db, cmd, argv, written, &changed);
            self.invalidate_written(cmd, &changed, client.tracker.map(|t| t.id));
        }
        reply
    }

    /// For the writes whose changed keys depend on what existed before (see
    /// [`changed_keys`]), when someone watches or tracks keys: their written keys that
    /// exist now.
    fn existing_before(&self, db: usize, cmd: &CommandSpec, argv: &[Bytes]) -> Option<Vec<Bytes>> {
        if self.state.watched.is_empty() && self.state.tracking.is_empty() {
            return None;
        }
        let depends = matches!(cmd.name, "del" | "unlink") && argv.len() > 2
            || cmd.name.starts_with("xgroup")
            || cmd.name == "xsetid";
        if !depends {
            return None;
        }
        let existence = self.written_key_existence(db, cmd, argv)?;
        Some(
            existence
                .into_iter()
                .filter_map(|(key, exists)| exists.then_some(key))
                .collect(),
        )
    }

    /// Each key the command may write, and whether it holds a live value now.
    fn written_key_existence(
        &self,
        db: usize,
        cmd: &CommandSpec,
        argv: &[Bytes],
    ) -> Option<Vec<(Bytes, bool)>> {
        let now = unix_ms();
        let d = self.state.dbs.get(db)?;
        Some(
            written_keys(cmd, argv)
                .into_iter()
                .map(|key| (key.clone(), d.peek(key, now).is_some()))
                .collect(),
        )
    }

    /// CLIENT TRACKING: clients that may have cached what this write changed are told.
    fn invalidate_written(&mut self, cmd: &CommandSpec, written: &[&Bytes], writer: Option<u64>) {
        if self.state.tracking.is_empty() {
            return;
        }
        let Some(sink) = self.engine.invalidation_sink.get() else {
            return;
        };
        if matches!(cmd.name, "flushdb" | "flushall") {
            self.state.tracking.flushed(sink);
            return;
        }
        for key in written {
            self.state.tracking.invalidate(key, writer, sink);
        }
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
        self.execute_blocking_as(client, client_id, None, cmd, argv)
    }

    /// [`Batch::execute_blocking`] for a tenant (argv already namespaced): its TTL rules hold
    /// for what the command writes now, and for what it writes when served later.
    pub fn execute_blocking_as(
        &mut self,
        client: ClientView,
        client_id: u64,
        tenant: Option<&std::sync::Arc<crate::policy::Tenant>>,
        cmd: &'static CommandSpec,
        argv: &[Bytes],
    ) -> Blocking {
        let reply = match tenant {
            Some(t) => self.execute_under_ttl(client, t, cmd, argv),
            None => self.execute(client, cmd, argv),
        };
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
        // XREAD's `$` means "the last ID now": pin it, or a re-run after an XADD would read
        // `$` as the new last ID and never serve anything.
        let argv = if cmd.name == "xread" {
            self.with_ctx(client, |ctx| stream_cmds::resolve_ids_for_block(ctx, argv))
        } else {
            argv.to_vec()
        };
        let (tx, rx) = oneshot::channel();
        let timeout = blocking::timeout(cmd, &argv);
        // Redis times every blocked list/zset/stream client out with a null *array*
        // (replyToBlockedClientTimedOut), even BLMOVE/BRPOPLPUSH, which answer a null bulk
        // when they cannot block (inside MULTI).
        let reply = match reply {
            Reply::Null => Reply::NullArray,
            other => other,
        };
        self.state.blocked.add(
            client_id,
            blocking::Waiter {
                client,
                cmd,
                argv,
                keys: wait_keys,
                reply_to: tx,
                timeout_reply: reply.clone(),
                tenant: tenant.cloned(),
            },
        );
        Blocking::Wait {
            reply: rx,
            timeout_reply: reply,
            timeout,
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
        self.state.propagate_as = None;
        self.with_ctx(client, |ctx| handler(ctx, argv))
    }

    /// Runs `f` with a command context (the command clock, hit/miss counting).
    fn with_ctx<T>(&mut self, client: ClientView, f: impl FnOnce(&mut Ctx) -> T) -> T {
        let now_ms = self
            .state
            .clock_override
            .or(self.now_ms)
            .unwrap_or_else(unix_ms);
        let mut ctx = Ctx {
            state: &mut self.state,
            client,
            now_ms,
            hits: 0,
            misses: 0,
        };
        let out = f(&mut ctx);
        self.hits += ctx.hits;
        self.misses += ctx.misses;
        out
    }

    /// A write changed its keys' values in place: re-count their bytes.
    fn remeasure(&mut self, db: usize, written: &[&Bytes]) {
        let Some(d) = self.state.dbs.get_mut(db) else {
            return;
        };
        for key in written {
            d.remeasure(key);
        }
    }

    fn used_memory(&self) -> u64 {
        self.state.dbs.iter().map(|d| d.used_memory() as u64).sum()
    }

    /// maxmemory: evicts keys by the policy until under the limit; a command that may grow
    /// memory (denyoom) is refused with Redis's OOM error when that is not possible.
    fn make_room(&mut self, cmd: &CommandSpec) -> Option<Reply> {
        let max = self.engine.maxmemory.load(Ordering::Relaxed);
        if max == 0 || self.used_memory() <= max {
            return None;
        }
        let policy = self.state.maxmemory_policy.clone();
        if policy != "noeviction" {
            // Bounded: a policy that finds nothing to evict (volatile-* without TTLs) stops.
            for _ in 0..10_000 {
                if self.used_memory() <= max {
                    break;
                }
                let Some((db, key)) = self.pick_victim(&policy) else {
                    break;
                };
                self.evict(db, key);
            }
        }
        if self.used_memory() > max && cmd.has(crate::command::table::flags::DENYOOM) {
            return Some(Reply::err(OOM));
        }
        None
    }

    /// The next key to evict (Redis's approximated LRU/TTL with a candidate pool, or random).
    fn pick_victim(&mut self, policy: &str) -> Option<(usize, Bytes)> {
        let volatile = policy.starts_with("volatile-");
        let samples = self.engine.maxmemory_samples.load(Ordering::Relaxed) as usize;
        let now = self.state.clock_override.unwrap_or_else(unix_ms);
        if policy.ends_with("-random") {
            let dbs: Vec<usize> = (0..self.state.dbs.len())
                .filter(|&i| {
                    let d = &self.state.dbs[i];
                    if volatile {
                        d.expires_count() > 0
                    } else {
                        !d.is_empty()
                    }
                })
                .collect();
            let db = *dbs.get(rand::random_range(0..dbs.len().max(1)))?;
            return self.state.dbs[db]
                .sample(1, volatile, now)
                .into_iter()
                .next()
                .map(|(k, _, _)| (db, k));
        }
        let by_ttl = policy.ends_with("-ttl");
        let score = |last_access: u64, expire_at: Option<u64>| {
            if by_ttl {
                u64::MAX - expire_at.unwrap_or(u64::MAX)
            } else {
                // Older access = higher score. LFU policies use recency too (no
                // access-frequency counter yet).
                u64::MAX - last_access
            }
        };
        let State {
            dbs, evict_pool, ..
        } = &mut *self.state;
        for (db, d) in dbs.iter().enumerate() {
            for (key, last_access, expire_at) in d.sample(samples, volatile, now) {
                let s = score(last_access, expire_at);
                if !evict_pool
                    .iter()
                    .any(|(_, pdb, pk)| *pdb == db && *pk == key)
                {
                    evict_pool.push((s, db, key));
                }
            }
        }
        self.state
            .evict_pool
            .sort_by_key(|c| std::cmp::Reverse(c.0));
        self.state.evict_pool.truncate(EVICTION_POOL);
        while !self.state.evict_pool.is_empty() {
            let (s, db, key) = self.state.evict_pool.remove(0);
            // Still there, and not touched since it was sampled?
            let current = self.state.dbs[db]
                .peek(&key, 0)
                .map(|e| score(e.last_access_ms(now), e.expire_at()));
            if current == Some(s) {
                return Some((db, key));
            }
        }
        None
    }

    fn evict(&mut self, db: usize, key: Bytes) {
        if self.state.dbs[db].remove(&key).is_none() {
            return;
        }
        self.engine
            .stats
            .evicted_keys
            .fetch_add(1, Ordering::Relaxed);
        crate::metrics::handles().evicted_keys.increment(1);
        if let Some(hook) = self.engine.eviction_hook.get() {
            hook(&key);
        }
        self.state.watched.touch(db, &key);
        self.engine.invalidate_tracked(&mut self.state, &key, None);
        if let Some(aof) = self.engine.aof.lock().as_mut() {
            aof.append(db, &[Bytes::from_static(b"DEL"), key.clone()]);
        }
        let flags = self.state.notify_flags;
        self.engine.publish(notify::messages(
            flags,
            notify::EVICTED,
            "evicted",
            db,
            &key,
        ));
    }

    /// Keys that expired during the last command: DEL in the AOF (before the command that
    /// met them), "expired" notifications.
    fn settle_expired(&mut self) {
        if self.state.pending_expired.keys.is_empty() {
            return;
        }
        let keys = std::mem::take(&mut self.state.pending_expired.keys);
        let flags = self.state.notify_flags;
        let mut aof = self.engine.aof.lock();
        for (db, key) in keys {
            // An expired stream ends its XREADGROUP waiters' wait (as a DEL would).
            if self.state.blocked.has_key(db, &key) {
                self.ready.push_back((db, key.clone()));
            }
            if let Some(aof) = aof.as_mut() {
                aof.append(db, &[Bytes::from_static(b"DEL"), key.clone()]);
            }
            self.engine.publish(notify::messages(
                flags,
                notify::EXPIRED,
                "expired",
                db,
                &key,
            ));
            self.engine.invalidate_tracked(&mut self.state, &key, None);
        }
    }

    /// Appends a write to the AOF as Redis would propagate it.
    fn propagate(&mut self, db: usize, cmd: &CommandSpec, argv: &[Bytes], reply: &Reply) {
        if !self.engine.aof_enabled() {
            return;
        }
        let mut slot = self.engine.aof.lock();
        let Some(aof) = slot.as_mut() else {
            return;
        };
        if let Some(cmds) = self.state.propagate_as.take() {
            // Several effects of one command are wrapped as Redis wraps them, so a reader
            // of the file sees them as one unit.
            let wrap = cmds.len() > 1;
            if wrap {
                aof.append(db, &[Bytes::from_static(b"MULTI")]);
            }
            for c in &cmds {
                aof.append(db, c);
            }
            if wrap {
                aof.append(db, &[Bytes::from_static(b"EXEC")]);
            }
            return;
        }
        if cmd.name == "spop" {
            // Random: log which members went.
            let members: Vec<Bytes> = match reply {
                Reply::Bulk(m) => vec![m.clone()],
                Reply::Array(items) | Reply::Set(items) => items
                    .iter()
                    .filter_map(|r| match r {
                        Reply::Bulk(m) => Some(m.clone()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            if !members.is_empty() {
                let mut srem = vec![Bytes::from_static(b"SREM"), argv[1].clone()];
                srem.extend(members);
                aof.append(db, &srem);
            }
            return;
        }
        aof.append(db, argv);
        // Relative TTLs would restart at replay: pin the absolute time.
        let sets_ttl = matches!(
            cmd.name,
            "set"
                | "setex"
                | "psetex"
                | "getex"
                | "expire"
                | "pexpire"
                | "expireat"
                | "pexpireat"
                | "restore"
        );
        if sets_ttl
            && let Some(key) = argv.get(1)
            && let Some(at) = self
                .state
                .dbs
                .get(db)
                .and_then(|d| d.peek(key, 0))
                .and_then(|e| e.expire_at())
        {
            aof.append(
                db,
                &[
                    Bytes::from_static(b"PEXPIREAT"),
                    key.clone(),
                    Bytes::from(at.to_string()),
                ],
            );
        }
    }

    /// Before a write, when notifications are on: which of its keys exist (to tell "del").
    fn existence_for_notify(
        &self,
        db: usize,
        cmd: &CommandSpec,
        argv: &[Bytes],
    ) -> Option<Vec<(Bytes, bool)>> {
        let flags = self.state.notify_flags;
        if !notify::active(flags) || !cmd.has(crate::command::table::flags::WRITE) {
            return None;
        }
        self.written_key_existence(db, cmd, argv)
    }

    /// Keyspace notifications for a write: its event on the keys it wrote, "del" for keys
    /// it emptied.
    fn notify_write(
        &mut self,
        db: usize,
        cmd: &CommandSpec,
        argv: &[Bytes],
        existed: Vec<(Bytes, bool)>,
    ) {
        let flags = self.state.notify_flags;
        let (class, event) = notify::event_of(cmd);
        let now = unix_ms();
        let mut existed: Vec<(usize, (Bytes, bool))> = existed.into_iter().enumerate().collect();
        if notify::destination_first(cmd.name) {
            existed.reverse();
        }
        for (index, (key, was)) in existed {
            let event = notify::per_key_event(cmd.name, argv, index).unwrap_or(event);
            let is = self
                .state
                .dbs
                .get(db)
                .is_some_and(|d| d.peek(&key, now).is_some());
            if event == "del" || (was && !is && notify::store_deletes_when_empty(cmd.name)) {
                if was && !is {
                    self.engine
                        .publish(notify::messages(flags, notify::GENERIC, "del", db, &key));
                }
                continue;
            }
            if is || was {
                self.engine
                    .publish(notify::messages(flags, class, event, db, &key));
                if is && notify::sets_ttl_too(cmd.name, argv) {
                    self.engine.publish(notify::messages(
                        flags,
                        notify::GENERIC,
                        "expire",
                        db,
                        &key,
                    ));
                }
            }
            if was && !is {
                self.engine
                    .publish(notify::messages(flags, notify::GENERIC, "del", db, &key));
            }
        }
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

    /// A command changed the keyspace: the keys it changed touch their watchers, the keys it
    /// wrote (`written`, which holds `changed`: see [`changed_keys`]) wake clients blocked
    /// on them, who check again.
    fn after_write(
        &mut self,
        db: usize,
        cmd: &CommandSpec,
        argv: &[Bytes],
        written: &[&Bytes],
        changed: &[&Bytes],
    ) {
        if self.state.watched.is_empty() && self.state.blocked.is_empty() {
            return;
        }
        // Keys in other databases, or not named by the command.
        let mut elsewhere: Vec<(usize, Bytes)> = Vec::new();
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
                elsewhere.push((other, key.clone()));
            }
        }
        // FLUSHDB/FLUSHALL delete keys without naming them: their XREADGROUP waiters must
        // hear that their stream is gone.
        if matches!(cmd.name, "flushdb" | "flushall") {
            for d in 0..self.state.dbs.len() {
                if cmd.name == "flushall" || d == db {
                    for key in self.state.blocked.keys_in_db(d) {
                        elsewhere.push((d, key));
                    }
                }
            }
        }
        if cmd.name == "swapdb" {
            let dbs = [argv.get(1), argv.get(2)];
            for d in dbs.into_iter().flatten().filter_map(|b| num::parse_i64(b)) {
                if let Ok(d) = usize::try_from(d) {
                    for key in self.state.blocked.keys_in_db(d) {
                        elsewhere.push((d, key));
                    }
                }
            }
        }
        // Redis 7.0 does not signal a stream key as ready when XGROUP SETID moves a group
        // back: its waiters keep waiting for the next XADD.
        let signals = !(cmd.name.starts_with("xgroup")
            && argv
                .get(1)
                .is_some_and(|s| s.eq_ignore_ascii_case(b"setid")));
        for key in changed {
            self.state.watched.touch(db, key);
        }
        for (d, key) in &elsewhere {
            self.state.watched.touch(*d, key);
        }
        if !signals || self.state.blocked.is_empty() {
            return;
        }
        let named = written.iter().map(|k| (db, (*k).clone()));
        for (d, key) in named.chain(elsewhere) {
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
                let Some(w) = self.state.blocked.get(id) else {
                    continue;
                };
                let (client, cmd, argv) = (w.client, w.cmd, w.argv.clone());
                let tenant = w.tenant.clone();
                let value = self
                    .state
                    .dbs
                    .get(db)
                    .and_then(|d| d.peek(&key, now))
                    .map(|e| &e.value);
                if cmd.name == "xreadgroup" {
                    if let Some(err) = stream_cmds::blocked_group_gone(value, &argv) {
                        if let Some(w) = self.state.blocked.remove(id) {
                            let _ = w.reply_to.send(Reply::err(err));
                        }
                        continue;
                    }
                } else if value.is_none() {
                    // Nothing to pop for this one; an XREADGROUP waiter further on may still
                    // need its error.
                    continue;
                }
                let Some(handler) = handlers().get(cmd.name) else {
                    continue;
                };
                let before = self.state.dirty;
                let ruled = match &tenant {
                    Some(t) => self.ttl_prepare(client, t, cmd, &argv),
                    None => Vec::new(),
                };
                let reply = self.run(*handler, client, &argv);
                // Nothing for it (or the key now has another type): it keeps waiting, as in
                // Redis 7.0.
                if blocking::is_unserved(&reply) || reply.is_error() {
                    continue;
                }
                self.settle_expired();
                let wrote = self.state.dirty != before;
                let written = if wrote {
                    written_keys(cmd, &argv)
                } else {
                    Vec::new()
                };
                let changed = if wrote {
                    self.remeasure(client.db, &written);
                    self.propagate(client.db, cmd, &argv, &reply);
                    changed_keys(cmd, &written, &reply, None)
                } else {
                    Cow::Borrowed(&[][..])
                };
                if let Some(w) = self.state.blocked.remove(id) {
                    // A client that left meanwhile loses the reply, as it would with Redis.
                    let _ = w.reply_to.send(reply);
                }
                if wrote {
                    self.after_write(client.db, cmd, &argv, &written, &changed);
                    if let Some(t) = &tenant {
                        self.ttl_settle(client, t, cmd, &ruled);
                    }
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
        self.settle_expired();
        let expired = std::mem::take(&mut self.state.pending_expired.count);
        self.engine
            .count_lookups(&self.state, self.hits, self.misses);
        self.engine.count_expired(expired);
        if self.state.dirty != self.dirty_at_start {
            crate::metrics::handles()
                .used_memory
                .set(self.used_memory() as f64);
        }
        self.engine.flush_aof(&self.state);
    }
}

/// Of the keys a write may change (`written`), the ones it did change, which are the ones
/// Redis tells watchers (an EXEC that watched another one still runs) and tracking clients
/// about (signalModifiedKey): a pop over several keys changed the one its reply names, a
/// DEL/UNLINK of several keys the ones that existed (`existed`, its written keys that
/// existed before it ran); XGROUP and XSETID change a stream's groups and last ID without
/// telling anyone, unless XGROUP CREATE ... MKSTREAM created the key; any other write
/// changed all its keys.
fn changed_keys<'w, 'a>(
    cmd: &CommandSpec,
    written: &'w [&'a Bytes],
    reply: &Reply,
    existed: Option<&[Bytes]>,
) -> Cow<'w, [&'a Bytes]> {
    let only = |keep: &dyn Fn(&Bytes) -> bool| -> Cow<'w, [&'a Bytes]> {
        Cow::Owned(written.iter().copied().filter(|k| keep(k)).collect())
    };
    if cmd.name.starts_with("xgroup") || cmd.name == "xsetid" {
        return match existed {
            Some(existed) => only(&|k| !existed.contains(k)),
            None => Cow::Borrowed(&[]),
        };
    }
    if written.len() < 2 {
        // The common case, allocation-free.
        return Cow::Borrowed(written);
    }
    match cmd.name {
        "blpop" | "brpop" | "lmpop" | "blmpop" | "bzpopmin" | "bzpopmax" | "zmpop" | "bzmpop" => {
            match reply {
                Reply::Array(items) => match items.first() {
                    Some(Reply::Bulk(popped)) => {
                        let first = written.iter().position(|k| *k == popped);
                        Cow::Borrowed(first.map_or(&[][..], |i| &written[i..=i]))
                    }
                    _ => Cow::Borrowed(&[]),
                },
                _ => Cow::Borrowed(&[]),
            }
        }
        "del" | "unlink" => match existed {
            Some(existed) => only(&|k| existed.contains(k)),
            None => Cow::Borrowed(written),
        },
        _ => Cow::Borrowed(written),
    }
}

/// The keys a command may write: its key-spec keys not flagged RO.
fn written_keys<'a>(cmd: &CommandSpec, argv: &'a [Bytes]) -> Vec<&'a Bytes> {
    if let Some(key) = keys::sole_written_key(cmd, argv) {
        return vec![key];
    }
    written_keys_by_specs(cmd, argv)
}

/// [`written_keys`] the general way, walking the key specs.
fn written_keys_by_specs<'a>(cmd: &CommandSpec, argv: &'a [Bytes]) -> Vec<&'a Bytes> {
    match keys::keys_and_flags(cmd, argv) {
        Ok(refs) => refs
            .iter()
            .filter(|k| !k.flags.iter().any(|f| f.eq_ignore_ascii_case("RO")))
            .filter_map(|k| argv.get(k.pos))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Parses an integer argument or returns Redis's error reply.
pub fn arg_i64(b: &[u8]) -> Result<i64, Reply> {
    num::parse_i64(b).ok_or_else(|| Reply::err(crate::protocol::errors::NOT_INTEGER))
}

#[cfg(test)]
mod tests;
