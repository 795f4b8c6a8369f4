//! One client's session: connection state (auth, RESP version, selected db, name) and the
//! dispatch of each parsed command — table lookup, arity, auth — to the connection commands
//! answered here or to the backend.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::Shared;
use super::clients::ClientHandle;
use super::forward::{RemoteState, Slot};
use super::pubsub::{Inbox, Kind, Outbox};
use crate::backend::embedded::{Batch, Blocking, ClientView, EngineHold, blocking, scripting};
use crate::command::transaction::{self, Multi};
use crate::command::{self, CommandSpec, table};
use crate::metrics::commands::{Verdict, classify_error};
use crate::protocol::{Protocol, Reply, errors};

pub struct Session {
    pub shared: Arc<Shared>,
    pub client: Arc<ClientHandle>,
    pub proto: Protocol,
    pub db: usize,
    pub authenticated: bool,
    /// Set by QUIT or CLIENT KILL of ourselves: flush the replies, then close.
    pub closing: bool,
    /// CLIENT REPLY OFF: no replies until CLIENT REPLY ON.
    pub reply_off: bool,
    /// CLIENT REPLY SKIP: no reply for the next command.
    pub skip_next: bool,
    /// Set while a command runs: CLIENT REPLY OFF/SKIP (its own reply is not sent) or ON
    /// (its reply is sent although replies were off).
    pub reply_mode_changed: Option<bool>,
    /// Channels, patterns and shard channels this client is subscribed to, in order.
    pub subscriptions: Vec<Bytes>,
    pub patterns: Vec<Bytes>,
    pub shard_channels: Vec<Bytes>,
    /// Where published messages for this client are queued (created on first SUBSCRIBE).
    pub outbox: Option<Outbox>,
    pub inbox: Option<Inbox>,
    /// The transaction being queued, between MULTI and EXEC/DISCARD.
    pub multi: Option<Multi>,
    /// This client has WATCHed keys in the engine.
    pub watching: bool,
    /// Cached client id (the registry's, fixed for the connection).
    id: u64,
    /// Forwarding mode: replies still owed to the client, in order (empty in embedded mode).
    pub pending: VecDeque<Slot>,
    /// Forwarding mode: this client's backend-side state.
    pub remote: Option<RemoteState>,
    /// When the connection task last received bytes.
    pub last_read: Instant,
    /// The command being dispatched (its table entry) and when it arrived: a forwarded
    /// command's slot keeps them to time and count it when its reply comes.
    pub current: Option<(&'static CommandSpec, Instant)>,
    /// The tenants reload this session's identity was resolved against.
    tenants_generation: u64,
    /// The tenant this client acts as (None: no tenants configured, or the admin user).
    pub tenant: Option<Arc<crate::policy::Tenant>>,
    /// How to strip the reply of the command now blocked, when it arrives.
    pub block_shape: Option<crate::policy::Shape>,
    /// Forwarding: the command being handled exactly as the client sent it, when that is
    /// canonical RESP; sent on byte for byte if its arguments reach the backend unchanged.
    pub raw_request: Option<RawRequest>,
    /// CLIENT TRACKING mode (None: off).
    pub tracking: Option<crate::command::tracking::Tracking>,
    /// Forwarding, tracking with REDIRECT: the bridge generation the backend's redirection
    /// was made for (a newer bridge connection needs it made again).
    pub tracking_bridge_generation: u64,
    /// Commands run since the shared counters were last brought up to date
    /// ([`Session::flush_counts`]).
    tally: super::stats::CommandTally,
    /// CLIENT LIST's `cmd` and idle time of the last command, not yet in `client.info`.
    shown: Option<(&'static str, Instant)>,
    /// The last command name looked up in the table.
    lookups: table::LookupMemo,
}

/// A command's received bytes and the argument vector the parser made of them (identified
/// by its address and length: a rewritten command is another vector, so it never matches).
pub struct RawRequest {
    pub bytes: Bytes,
    pub argv_at: usize,
    pub argc: usize,
}

impl Session {
    /// The received bytes of `argv`, if `argv` is the parser's own, unchanged vector.
    pub(super) fn raw_bytes_of(&mut self, argv: &[Bytes]) -> Option<Bytes> {
        self.raw_request
            .take_if(|r| r.argv_at == argv.as_ptr() as usize && r.argc == argv.len())
            .map(|r| r.bytes)
    }
}

/// What became of one command.
pub enum Outcome {
    /// Answered now.
    Reply(Reply),
    /// Waits in the embedded engine (BLPOP & co.).
    Wait(Blocking),
    /// Sent to the backend; its reply slot is queued in `pending`.
    Forwarded,
    /// Must wait until the replies already owed have arrived (it goes to another backend
    /// connection than they did); the caller drains, then runs it again.
    DrainFirst,
}

/// What the connection task does after [`Session::handle`].
pub enum Handled {
    Done,
    Blocked(PendingBlock),
    /// Drain the owed replies, then hand this command in again.
    RetryAfterDrain,
}

/// A command that is waiting for data (BLPOP & co.): the connection task waits for its
/// reply, its deadline, or the client going away, and holds back the client's next commands.
pub struct PendingBlock {
    pub reply: tokio::sync::oneshot::Receiver<Reply>,
    pub timeout_reply: Reply,
    /// None: wait forever (timeout 0).
    pub deadline: Option<Instant>,
}

impl Session {
    pub fn new(shared: Arc<Shared>, client: Arc<ClientHandle>) -> Session {
        let (authenticated, tenant) = super::tenancy::initial_identity(&shared, &client);
        super::tenancy::show_user(&client, tenant.as_deref());
        let shared_remote = shared.remote.is_some();
        let shared_generation = shared
            .tenants_generation
            .load(std::sync::atomic::Ordering::Acquire);
        let id = client.info.lock().id;
        Session {
            shared,
            client,
            proto: Protocol::Resp2,
            db: 0,
            authenticated,
            closing: false,
            reply_off: false,
            skip_next: false,
            reply_mode_changed: None,
            subscriptions: Vec::new(),
            patterns: Vec::new(),
            shard_channels: Vec::new(),
            outbox: None,
            inbox: None,
            multi: None,
            watching: false,
            id,
            pending: VecDeque::new(),
            remote: shared_remote.then(RemoteState::new),
            last_read: Instant::now(),
            current: None,
            tenants_generation: shared_generation,
            tenant,
            block_shape: None,
            raw_request: None,
            tracking: None,
            tracking_bridge_generation: 0,
            tally: Default::default(),
            shown: None,
            lookups: Default::default(),
        }
    }

    /// `n` forwarded commands' replies came back (same command, time and verdict): they
    /// count in INFO commandstats.
    pub fn tally_forwarded(
        &mut self,
        spec: &'static CommandSpec,
        took: Duration,
        verdict: Verdict,
        n: u64,
    ) {
        self.tally.record_forwarded(
            &self.shared.cmdstats,
            spec,
            self.tenant.as_deref(),
            took,
            verdict,
            n,
        );
    }

    /// Brings the shared counters (INFO stats and commandstats) and this client's CLIENT
    /// LIST fields up to date with the commands run since the last call. The connection
    /// calls it before it waits; a command that may show them calls it before it runs.
    pub fn flush_counts(&mut self) {
        self.tally.flush(&self.shared.cmdstats, &self.shared.stats);
        if let Some((name, at)) = self.shown.take() {
            let mut info = self.client.info.lock();
            info.last_cmd = name;
            info.last_interaction = at;
            info.db = self.db;
        }
    }

    /// The table entry of a command name (remembered for a pipeline of the same command).
    pub(super) fn lookup_command(&mut self, name: &[u8]) -> Option<&'static CommandSpec> {
        self.lookups.lookup(name)
    }

    /// Whether the tenants' config was reloaded since this session resolved its identity
    /// (the next command through [`Session::handle`] follows the reload).
    pub(super) fn tenants_reloaded(&self) -> bool {
        self.shared
            .tenants_generation
            .load(std::sync::atomic::Ordering::Acquire)
            != self.tenants_generation
    }

    /// `n` forwarded commands sent by the fast lane (`forward_lane`), the last of them
    /// `name`, all from the read at `started`: counted in total_commands, and shown in
    /// CLIENT LIST, as [`Session::handle`] does for each.
    pub(super) fn count_lane(&mut self, name: &'static str, started: Instant, n: usize) {
        self.tally.count_forwarded_n(n as u64);
        self.shown = Some((name, started));
    }

    pub fn client_id(&self) -> u64 {
        self.id
    }

    /// Runs one command and appends its encoded reply to `out` (or, while forwarded replies
    /// are still owed, to a slot behind them), or returns the wait of a command that blocked
    /// (its reply is written by [`Session::finish_block`]).
    /// `hold`: the engine lock the connection may keep across plain commands (see
    /// [`EngineHold`]); anything else lets it go first.
    pub fn handle(
        &mut self,
        argv: &[Bytes],
        out: &mut BytesMut,
        hold: &mut EngineHold<'_>,
    ) -> Handled {
        // CLIENT REPLY OFF / SKIP: the command runs, its reply is dropped (a forwarded one
        // when it arrives).
        let skipped = std::mem::take(&mut self.skip_next);
        let muted = self.reply_off || skipped;
        self.reply_mode_changed = None;
        let (mark, pending_before) = (out.len(), self.pending.len());
        let handled = if self.pending.is_empty() {
            self.handle_into(argv, out, hold)
        } else {
            let mut local = BytesMut::new();
            let handled = self.handle_into(argv, &mut local, hold);
            if !local.is_empty() {
                self.pending.push_back(Slot::Local(local));
            }
            handled
        };
        if let Handled::RetryAfterDrain = handled {
            // It runs again after the drain: the skip is still its.
            self.skip_next |= skipped;
            return handled;
        }
        let drop_reply = match self.reply_mode_changed.take() {
            Some(shown) => !shown,
            None => muted,
        };
        if drop_reply {
            out.truncate(mark);
            for slot in self.pending.iter_mut().skip(pending_before) {
                match slot {
                    Slot::Local(bytes) => bytes.clear(),
                    Slot::Remote { discard, .. } => *discard = true,
                    // A cluster fan-out's merged reply is sent (not worth a mode of its own).
                    Slot::Deferred(..) => {}
                }
            }
        }
        handled
    }

    fn handle_into(
        &mut self,
        argv: &[Bytes],
        out: &mut BytesMut,
        hold: &mut EngineHold<'_>,
    ) -> Handled {
        // (UN)SUBSCRIBE & co. answer with one reply per channel.
        if let Some(name) = argv.first()
            && self.multi.is_none()
            && let Some((kind, subscribe)) = command::pubsub::kind_of(name)
            && self.may_run("subscribe")
            && (!subscribe || argv.len() > 1)
        {
            hold.release();
            let argv = match self.tenant_argv(argv) {
                Ok(argv) => argv,
                Err(refused) => {
                    refused.encode(self.proto, out);
                    return Handled::Done;
                }
            };
            let replies = if subscribe {
                command::pubsub::subscribe(self, kind, &argv)
            } else {
                command::pubsub::unsubscribe(self, kind, &argv)
            };
            for r in replies {
                self.tenant_confirmation(r).encode(self.proto, out);
            }
            return Handled::Done;
        }
        let outcome = self.dispatch(argv, hold);
        if let Some(t) = self.tracking.as_mut()
            && t.caching
            && !matches!(outcome, Outcome::DrainFirst)
            // In a transaction it holds until EXEC/DISCARD, as in Redis.
            && self.multi.is_none()
            && !(argv.len() > 1
                && argv[0].eq_ignore_ascii_case(b"client")
                && argv[1].eq_ignore_ascii_case(b"caching"))
        {
            // CLIENT CACHING holds for the one command after it (or transaction), as in Redis.
            t.caching = false;
        }
        match outcome {
            Outcome::Reply(reply) => {
                reply.encode(self.proto, out);
                Handled::Done
            }
            Outcome::Forwarded => Handled::Done,
            Outcome::DrainFirst => Handled::RetryAfterDrain,
            Outcome::Wait(Blocking::Done(reply)) => {
                reply.encode(self.proto, out);
                Handled::Done
            }
            Outcome::Wait(Blocking::Wait {
                reply,
                timeout_reply,
                timeout,
            }) => Handled::Blocked(PendingBlock {
                reply,
                timeout_reply,
                deadline: timeout.map(|d| Instant::now() + d),
            }),
        }
    }

    /// Ends a blocked command: its reply if it was served, else (timeout, disconnect) it
    /// stops waiting and answers its timeout reply.
    pub fn finish_block(
        &mut self,
        mut pending: PendingBlock,
        received: Option<Reply>,
        out: Option<&mut BytesMut>,
    ) {
        let reply = match received.ok_or(()).or_else(|_| pending.reply.try_recv()) {
            Ok(r) => r,
            Err(_) => {
                if !self.shared.engine.cancel_block(self.id) {
                    // Served between our timeout and the cancel: the reply is there now.
                    pending.reply.try_recv().unwrap_or(pending.timeout_reply)
                } else {
                    pending.timeout_reply
                }
            }
        };
        let reply = self.tenant_blocked_reply(reply);
        if let Some(out) = out {
            reply.encode(self.proto, out);
        }
    }

    /// The config was reloaded: this client keeps its tenant by name, now with the new
    /// policy; a tenant that no longer exists must AUTH again.
    fn follow_reload(&mut self, generation: u64) {
        self.tenants_generation = generation;
        if let Some(old) = self.tenant.take() {
            match self.shared.tenants().by_name(&old.name) {
                Some(t) => self.tenant = Some(t.clone()),
                None => self.authenticated = false,
            }
        }
    }

    /// Auth has passed (or is not needed) for `name`.
    fn may_run(&self, name: &str) -> bool {
        self.authenticated || name == "auth"
    }

    /// A published message for this client arrived.
    pub fn deliver(&self, msg: Reply, out: &mut BytesMut) {
        if let Some(msg) = self.tenant_message(msg) {
            msg.encode(self.proto, out);
        }
    }

    /// Rejects a command before it runs, as Redis's rejectCommand: inside MULTI the
    /// transaction is flagged to fail; a rejected EXEC itself ends the transaction.
    fn reject(&mut self, name: &[u8], reply: Reply) -> Outcome {
        if name.eq_ignore_ascii_case(b"exec") {
            return Outcome::Reply(transaction::rejected_exec(self, &reply));
        }
        if let Some(m) = self.multi.as_mut() {
            m.abort();
        }
        Outcome::Reply(reply)
    }

    fn dispatch(&mut self, argv: &[Bytes], hold: &mut EngineHold<'_>) -> Outcome {
        let generation = self
            .shared
            .tenants_generation
            .load(std::sync::atomic::Ordering::Acquire);
        if generation != self.tenants_generation {
            self.follow_reload(generation);
        }
        let Some(name) = argv.first() else {
            return Outcome::Reply(Reply::err(errors::SYNTAX));
        };
        let Some(spec) = self.lookups.lookup(name) else {
            return self.reject(name, Reply::err(errors::unknown_command(argv)));
        };
        // The effective spec: for container commands (CLIENT, CONFIG ...), the subcommand.
        let effective = match self.resolve(spec, argv) {
            Ok(s) => s,
            Err(reply) => return self.reject(name, reply),
        };
        if !self.authenticated && !effective.has(table::flags::NO_AUTH) {
            self.shared.cmdstats.reject(
                effective.name,
                self.tenant.as_deref(),
                classify_error(errors::NOAUTH.as_bytes()),
            );
            return self.reject(name, Reply::err(errors::NOAUTH));
        }
        if let Err(refused) = self.tenant_allows(spec, effective) {
            return self.reject(name, refused);
        }
        if self.proto == Protocol::Resp2
            && self.in_subscriber_mode()
            && !command::pubsub::allowed_in_subscriber_mode(spec.name)
        {
            return self.reject(name, command::pubsub::subscriber_mode_error(spec.name));
        }
        if !effective.has(table::flags::ALLOW_BUSY) && self.shared.engine.script_run.busy() {
            return self.reject(name, Reply::err(scripting::BUSY));
        }
        if let Some(m) = self.multi.as_mut()
            && !transaction::runs_immediately(spec.name)
        {
            if effective.has(table::flags::NO_MULTI) {
                m.abort();
                return Outcome::Reply(Reply::err(transaction::NOT_IN_MULTI));
            }
            if let Some(remote) = self.shared.remote.as_deref()
                && let Some(e) = super::forward::refused_in_multi(spec.name, argv).or_else(|| {
                    let tenant = self.tenant.as_deref()?;
                    let cluster = remote.cluster.is_some();
                    super::forward_tenancy::refusal_in_multi(tenant, spec.name, cluster)
                })
            {
                m.abort();
                return Outcome::Reply(Reply::err(e));
            }
            m.queue(spec, argv);
            return Outcome::Reply(Reply::Simple("QUEUED"));
        }
        // A forwarded command's time runs from the read that brought it to its reply (timed
        // when the reply is handed on, see `connection::drain`): it takes the read's
        // timestamp instead of a clock read of its own.
        // A command's time starts when the read that brought it arrived, or when the command
        // before it in the same pipeline finished (`last_read` is moved on after each one
        // that runs here): one clock read per command instead of two.
        let forwarding = self.remote.is_some();
        let started = self.last_read;
        // A data command runs in the engine and shows no counters; any other may (INFO,
        // CLIENT LIST, CONFIG RESETSTAT): it sees them up to date, and itself as the
        // client's current command, as in Redis.
        let data_command = crate::backend::embedded::handler_for(spec).is_some();
        self.shown = Some((effective.name, started));
        if !data_command {
            hold.release();
            self.flush_counts();
        }
        if self.shared.pubsub.monitoring()
            && !effective.has(table::flags::SKIP_MONITOR)
            && !effective.has(table::flags::ADMIN)
        {
            self.feed_monitors(argv);
        }
        self.current = Some((effective, started));
        let outcome = if forwarding {
            self.forward(spec, argv)
        } else {
            Outcome::Wait(self.execute(spec, argv, data_command, hold))
        };
        let verdict = match &outcome {
            Outcome::Reply(r) | Outcome::Wait(Blocking::Done(r)) => reply_verdict(r),
            Outcome::Wait(Blocking::Wait { timeout_reply, .. }) => reply_verdict(timeout_reply),
            // Counted when it runs again.
            Outcome::DrainFirst => return outcome,
            // Counted with the backend's verdict when the reply comes.
            Outcome::Forwarded => Ok(()),
        };
        if !matches!(outcome, Outcome::Forwarded) {
            let now = Instant::now();
            let took = now.saturating_duration_since(started);
            self.last_read = now;
            self.tally.record(
                &self.shared.cmdstats,
                effective,
                self.tenant.as_deref(),
                took,
                verdict,
            );
            if self.shared.slowlog.is_slow(took) && !effective.has(table::flags::SKIP_SLOWLOG) {
                self.log_slow(argv, took);
            }
        }
        if matches!(outcome, Outcome::Forwarded) {
            // Timed when its reply comes; counted in total_commands now.
            self.tally.count_forwarded();
        }
        if !data_command {
            // What it changed (SELECT's db, RESET) shows at once.
            self.shown = Some((effective.name, started));
            self.flush_counts();
        }
        outcome
    }

    /// MONITOR: the command as Redis prints it, `+<unix time> [<db> <addr>] "arg" ...`.
    fn feed_monitors(&self, argv: &[Bytes]) {
        use std::fmt::Write;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let addr = self.client.info.lock().addr;
        let mut line = format!(
            "{}.{:06} [{} {addr}]",
            now.as_secs(),
            now.subsec_micros(),
            self.db
        );
        for a in argv {
            line.push_str(" \"");
            for &b in a.iter() {
                match b {
                    b'\\' => line.push_str("\\\\"),
                    b'"' => line.push_str("\\\""),
                    b'\n' => line.push_str("\\n"),
                    b'\r' => line.push_str("\\r"),
                    b'\t' => line.push_str("\\t"),
                    0x07 => line.push_str("\\a"),
                    0x08 => line.push_str("\\b"),
                    0x20..=0x7e => line.push(b as char),
                    _ => {
                        let _ = write!(line, "\\x{b:02x}");
                    }
                }
            }
            line.push('"');
        }
        self.shared.pubsub.feed_monitors(&line);
    }

    /// Puts a slow command in SLOWLOG with this client's address and name.
    pub fn log_slow(&self, argv: &[Bytes], took: std::time::Duration) {
        let (addr, name) = {
            let info = self.client.info.lock();
            (info.addr.to_string(), info.name.clone())
        };
        self.shared.slowlog.push(argv, took, addr, name);
    }

    /// Arity checks and subcommand resolution, with Redis's error texts.
    fn resolve(
        &self,
        spec: &'static CommandSpec,
        argv: &[Bytes],
    ) -> Result<&'static CommandSpec, Reply> {
        if spec.subcommands.is_empty() {
            if !spec.arity_ok(argv.len()) {
                self.shared
                    .cmdstats
                    .reject(spec.name, self.tenant.as_deref(), 0);
                return Err(Reply::err(errors::wrong_arity(spec.name)));
            }
            return Ok(spec);
        }
        let Some(sub_name) = argv.get(1) else {
            return Err(Reply::err(errors::wrong_arity(spec.name)));
        };
        let Some(sub) = table::lookup_subcommand(spec, sub_name) else {
            return Err(Reply::err(errors::unknown_subcommand(sub_name, spec.name)));
        };
        if !sub.arity_ok(argv.len()) {
            self.shared
                .cmdstats
                .reject(sub.name, self.tenant.as_deref(), 0);
            return Err(Reply::err(errors::wrong_arity(sub.name)));
        }
        Ok(sub)
    }

    /// The client's pub/sub outbox: subscriptions, MONITOR and tracking invalidations
    /// (created on first need).
    pub fn ensure_outbox(&mut self) -> super::pubsub::Outbox {
        if let Some(o) = &self.outbox {
            return o.clone();
        }
        let (outbox, inbox) = super::pubsub::outbox(&self.client);
        self.outbox = Some(outbox.clone());
        self.inbox = Some(inbox);
        outbox
    }

    /// What the engine needs to know about this client's CLIENT TRACKING for one command.
    pub fn tracker(&self) -> Option<crate::backend::embedded::tracking::Tracker> {
        self.tracking
            .as_ref()
            .map(|t| crate::backend::embedded::tracking::Tracker {
                id: self.id,
                remember_reads: t.remembers_reads(),
            })
    }

    /// `data_command`: `spec` has an engine handler (and so no connection command shares its
    /// name): the connection commands' name matching is skipped.
    fn execute(
        &mut self,
        spec: &'static CommandSpec,
        argv: &[Bytes],
        data_command: bool,
        hold: &mut EngineHold<'_>,
    ) -> Blocking {
        if let Some(tenant) = self.tenant.clone() {
            hold.release();
            return self.execute_as(&tenant, spec, argv);
        }
        if !data_command && let Some(reply) = command::connection::run_local(self, spec.name, argv)
        {
            return Blocking::Done(reply);
        }
        let engine = &self.shared.engine;
        if !data_command && !engine.supports(spec.name) {
            return Blocking::Done(Reply::err(errors::not_implemented(spec.name)));
        }
        let view = ClientView {
            db: self.db,
            proto: self.proto,
            tracker: self.tracker(),
        };
        if spec.has(table::flags::BLOCKING) && blocking::may_block(spec, argv) {
            hold.release();
            return engine.batch().execute_blocking(view, self.id, spec, argv);
        }
        if scripting::handles(spec.name) {
            hold.release();
            // SCRIPT KILL must not wait for the engine lock: the running script holds it.
            if spec.name == "script" && argv[1].eq_ignore_ascii_case(b"kill") && argv.len() == 2 {
                return Blocking::Done(engine.script_run.kill());
            }
            // Run here, not handed off: a hand-off per script (`block_in_place`) held
            // pipelined EVAL to 62k/s against Redis's 490k. One that runs long hands this
            // worker's other clients to another thread itself (`scripting`'s hook).
            return Blocking::Done(engine.execute(view, spec, argv));
        }
        // The command's clock from the reading that timed its arrival (no second read).
        let now_ms = crate::backend::embedded::clock::unix_ms_at(self.last_read);
        Blocking::Done(hold.execute_at(view, spec, argv, now_ms))
    }

    /// A connection command queued in a transaction. Those that take the engine lock
    /// themselves (INFO, CONFIG) run between two parts of the EXEC's batch.
    pub fn run_local_in_exec(
        &mut self,
        spec: &'static CommandSpec,
        argv: &[Bytes],
        batch: &mut Option<Batch<'_>>,
    ) -> Option<Reply> {
        if matches!(spec.name, "info" | "config") {
            *batch = None;
        }
        if let Some(tenant) = self.tenant.clone() {
            return self.run_local_as(&tenant, spec, argv);
        }
        command::connection::run_local(self, spec.name, argv)
    }

    /// Subscribed to anything (RESP2's subscriber mode)?
    pub fn in_subscriber_mode(&self) -> bool {
        !self.subscriptions.is_empty()
            || !self.patterns.is_empty()
            || !self.shard_channels.is_empty()
    }

    /// CLIENT LIST's sub/psub/ssub fields.
    pub fn sync_subscription_counts(&self) {
        let mut info = self.client.info.lock();
        info.sub = self.subscriptions.len();
        info.psub = self.patterns.len();
        info.ssub = self.shard_channels.len();
    }

    fn unsubscribe_all(&mut self) {
        let id = self.id;
        let pubsub = &self.shared.pubsub;
        for ch in self.subscriptions.drain(..) {
            pubsub.unsubscribe(Kind::Channel, &ch, id);
        }
        for p in self.patterns.drain(..) {
            pubsub.unsubscribe(Kind::Pattern, &p, id);
        }
        for ch in self.shard_channels.drain(..) {
            pubsub.unsubscribe(Kind::Shard, &ch, id);
        }
        self.outbox = None;
        self.inbox = None;
        self.sync_subscription_counts();
    }

    /// RESET: back to a fresh connection's state (RESP2, db 0, no name, unauthenticated
    /// when a password is required).
    pub fn reset(&mut self) {
        self.unsubscribe_all();
        if self.shared.remote.is_none() {
            crate::command::tracking::untrack_embedded(self);
        }
        self.stop_tracking();
        transaction::discard_state(self);
        self.proto = Protocol::Resp2;
        self.db = 0;
        let (authenticated, tenant) = super::tenancy::initial_identity(&self.shared, &self.client);
        self.authenticated = authenticated;
        self.tenant = tenant;
        super::tenancy::show_user(&self.client, self.tenant.as_deref());
        let mut info = self.client.info.lock();
        info.name.clear();
        info.resp = 2;
        info.db = 0;
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.flush_counts();
        self.unsubscribe_all();
        if self.tracking.is_some() && self.shared.remote.is_none() {
            crate::command::tracking::untrack_embedded(self);
        }
        transaction::discard_state(self);
    }
}

/// How a reply respgate made itself counts in `respgate_commands_total`.
fn reply_verdict(reply: &Reply) -> Verdict {
    match reply {
        Reply::Error(text) => Err(classify_error(text.as_bytes())),
        _ => Ok(()),
    }
}
