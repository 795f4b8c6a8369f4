//! Forwarding mode: how one client's commands reach the Redis backend — which ones respgate
//! answers itself, which go to the shared connection that serves this client, and which need
//! a connection pinned to the client (WATCH, SELECT of another db, blocking commands) — and
//! the queue of reply slots that keeps the client's replies in the order it sent commands.
//!
//! Replies come back from the backend as raw frames in the client's protocol version (RESP3
//! clients use RESP3 connections) and are passed through byte for byte.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::forward_ttl::Part;
use super::session::{Outcome, Session};
use crate::backend::embedded::num::parse_i64;
use crate::backend::remote::BackendError;
use crate::backend::remote::cluster::router::{
    ClusterBackend, Deferred, ReadFrom, Resend, Sent, plan_keyless,
};
use crate::backend::remote::cluster::slots::command_slot;
use crate::backend::remote::cluster::split::{self as cluster_split, MultiKey};
use crate::backend::remote::conn::{
    BackendConn, Batch, Chunk, Owed, OwedList, ReplySink, encode_command,
};
use crate::command::CommandSpec;
use crate::policy::namespace::Shape;
use crate::policy::tenant::BackendUser;
use crate::protocol::reply_scan::ReplyScanner;
use crate::protocol::{Protocol, Reply, errors};

/// A tenant's queued command moved into its namespace, and how its element of EXEC's
/// reply loses the prefix. DBSIZE and FLUSHDB/FLUSHALL become their scripts over the
/// namespace (a cluster refuses them when they are queued: see
/// [`super::forward_tenancy::refusal_in_multi`]).
fn tenant_queued(
    tenant: &crate::policy::tenant::Tenant,
    spec: &'static CommandSpec,
    argv: &[Bytes],
) -> Result<(Vec<Bytes>, Shape), String> {
    use crate::policy::namespace::Plan;
    match tenant.namespace.plan(spec, argv)? {
        Plan::Run(rewritten, shape) => Ok((rewritten, shape)),
        Plan::Wide(wide) => super::forward_tenancy::wide_script(&tenant.namespace, wide)
            .map(|argv| (argv, Shape::Plain))
            // RANDOMKEY, refused when it was queued (refusal_in_multi).
            .ok_or_else(|| super::forward_tenancy::refused_in_multi_text(spec.name)),
    }
}

/// Redis's text for keys of several slots in a command a cluster node cannot split.
const CROSSSLOT: &str = "CROSSSLOT Keys in request don't hash to the same slot";

/// One reply owed to the client, in order.
pub enum Slot {
    /// Already encoded (answered by respgate while earlier replies were still outstanding).
    Local(BytesMut),
    /// Owed by the client's in-flight connection ([`RemoteState::inflight`]); give up after
    /// `deadline` (None: wait as long as it takes). Cluster mode keeps what is needed to
    /// resend the command after MOVED/ASK.
    Remote {
        deadline: Option<Duration>,
        resend: Option<Box<Resend>>,
        /// A tenant's reply that names keys or channels: stripped of the prefix.
        strip: Option<crate::policy::namespace::Shape>,
        /// The reply is an EXEC array holding TTL fix-ups next to the client's replies.
        unwrap: Option<Box<super::forward_ttl::Unwrap>>,
        /// The client's command (its table entry) and when it arrived, counted and timed
        /// when its reply is handed on.
        cmd: Option<(&'static CommandSpec, Instant)>,
        /// CLIENT REPLY OFF/SKIP: the reply is taken and dropped.
        discard: bool,
        /// The PUBLISH sent before a WAIT or WAITAOF (see [`Session::forward`]): its reply is
        /// dropped (`discard`), but an error in it answers the WAIT behind it in place of
        /// the count, which would not cover the client's writes.
        gate: bool,
    },
    /// A command several nodes answer together (cluster mode), or a tenant's walk over its
    /// keys (see [`crate::backend::remote::walk`]), run when its turn comes (and
    /// stripped of a tenant's prefix like a remote reply), over connections logging in as
    /// the backend user of the client's tenant when it was queued.
    Deferred(
        Box<Deferred>,
        Option<crate::policy::namespace::Shape>,
        Option<(&'static CommandSpec, Instant)>,
        Option<Arc<BackendUser>>,
    ),
}

/// A forwarding client's backend-side state.
pub struct RemoteState {
    pub sink: ReplySink,
    pub replies: mpsc::UnboundedReceiver<Result<Chunk, BackendError>>,
    /// The command timeout's timer, kept from wait to wait: it is moved only when it goes
    /// off before the reply waited for is due (a timer armed and dropped per request was a
    /// measurable share of an unpipelined request's CPU).
    pub overdue: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    /// The shared connection serving this client, its protocol version and backend user.
    shared_conn: Option<(BackendConn, Protocol, Option<Arc<BackendUser>>)>,
    /// Replies received and not yet handed to their slots.
    carry: Option<Chunk>,
    /// The client's own connection, once it needed one; kept until it leaves (or logs in
    /// as a tenant with another backend user).
    pinned: Option<BackendConn>,
    /// The backend user the pinned connection logged in as (None: the configured one).
    pinned_user: Option<Arc<BackendUser>>,
    /// Cluster mode: the node the pinned connection goes to (logged in as `pinned_user`).
    pinned_addr: Option<String>,
    /// Cluster mode: a deferred command is queued; later commands wait until it has run.
    pub barrier: bool,
    /// The connection whose replies are outstanding (a client's commands go to one connection
    /// at a time, so their order on the backend is the order it sent them).
    pub inflight: Option<BackendConn>,
    pub outstanding: usize,
    /// WATCH was forwarded on the pinned connection and not yet cleared.
    watching: bool,
    /// The pinned connection died while WATCHing: the next EXEC fails.
    watch_lost: bool,
    /// A tenant's command being forwarded: how its reply loses the prefix.
    pub next_strip: Option<crate::policy::namespace::Shape>,
    /// ... and the TTL fix-ups sent with it, to take out of EXEC's reply.
    pub next_unwrap: Option<Box<super::forward_ttl::Unwrap>>,
    /// A tenant's transaction: how each queued command's reply loses the prefix (its queue
    /// is rewritten once, even when EXEC waits and runs again).
    exec_shapes: Vec<crate::policy::namespace::Shape>,
    /// Commands collected for one connection, sent together.
    outgoing: Option<Outgoing>,
    /// Where batches are written: each is split off and frozen when sent, and the space is
    /// reused once the connection's writer has copied it out (no allocation per batch).
    /// Empty, without an allocation, until the client's first forwarded command.
    send_buf: BytesMut,
}

/// A batch being collected for one backend connection (its bytes in `send_buf`).
struct Outgoing {
    conn: BackendConn,
    owed: OwedList,
}

/// What `send_buf` holds at first: a few unpipelined commands, or one pipeline of small ones.
const SEND_BUF_CAPACITY: usize = 1024;

/// After a batch bigger than this, `send_buf` starts afresh: an idle client keeps a few KiB
/// at most (a pipelined MSET's batch allocates, which its bytes dwarf).
const SEND_BUF_KEPT: usize = 4 * 1024;

/// Send a collected batch once it is this big, without waiting for the drain.
const OUTGOING_FLUSH: usize = 64 * 1024;

impl RemoteState {
    pub fn new() -> RemoteState {
        let (sink, replies) = mpsc::unbounded_channel();
        RemoteState {
            sink,
            replies,
            overdue: None,
            pinned: None,
            pinned_user: None,
            pinned_addr: None,
            barrier: false,
            inflight: None,
            outstanding: 0,
            watching: false,
            watch_lost: false,
            next_strip: None,
            next_unwrap: None,
            exec_shapes: Vec::new(),
            outgoing: None,
            send_buf: BytesMut::new(),
            carry: None,
            shared_conn: None,
        }
    }

    /// `n` outstanding replies were handed to the client.
    pub fn settled(&mut self, n: usize) {
        self.outstanding = self.outstanding.saturating_sub(n);
        if self.outstanding == 0 {
            self.inflight = None;
        }
    }

    pub fn has_carry(&self) -> bool {
        self.carry.is_some()
    }

    /// How many replies the carried chunk holds.
    pub fn carried(&self) -> usize {
        self.carry.as_ref().map_or(0, |c| c.count as usize)
    }

    /// Which of the carried chunk's replies are errors (bit i: the i-th).
    pub fn carried_errors(&self) -> u64 {
        self.carry.as_ref().map_or(0, |c| c.errors)
    }

    pub fn set_carry(&mut self, chunk: Chunk) {
        self.carry = Some(chunk);
    }

    /// Appends up to `max` received replies to `out`; returns how many (at least one when a
    /// chunk is carried) and which are errors (bit i: the i-th). A chunk holding more than
    /// `max` is cut at a reply boundary.
    pub fn take_replies(&mut self, max: usize, out: &mut BytesMut) -> (usize, u64) {
        let Some(chunk) = self.carry.take() else {
            return (0, 0);
        };
        let count = chunk.count as usize;
        if count <= max {
            out.extend_from_slice(&chunk.bytes);
            return (count, chunk.errors);
        }
        let mut scanner = ReplyScanner::new();
        let mut cut = 0;
        for _ in 0..max {
            match scanner.scan(&chunk.bytes[cut..]) {
                Ok(Some(n)) => cut += n,
                // The reader cut these replies already; they cannot be incomplete.
                _ => break,
            }
        }
        out.extend_from_slice(&chunk.bytes[..cut]);
        // max < count <= MAX_CHUNK_REPLIES (64): the shifts stay in range.
        self.carry = Some(Chunk {
            bytes: chunk.bytes.slice(cut..),
            count: (count - max) as u32,
            errors: chunk.errors >> max,
        });
        (max, chunk.errors & ((1u64 << max) - 1))
    }
}

impl Default for RemoteState {
    fn default() -> Self {
        RemoteState::new()
    }
}

/// Commands that would change a shared connection's state for everybody on it, or that need
/// machinery respgate does not forward yet.
#[inline(always)] // on every forwarded command: a call of its own cost 14 instructions per GET
pub(super) fn unsupported(name: &str, argv: &[Bytes]) -> Option<String> {
    let what = match name {
        "sync" | "psync" | "replconf" | "failover" | "shutdown" => name.to_uppercase(),
        // Only CLIENT looks at its subcommand (no per-command lowercase copy for the rest).
        "client" => {
            let sub = argv.get(1)?;
            // TRACKING & co. are handled by forward_tracking (refused in cluster mode).
            let refused = sub.eq_ignore_ascii_case(b"unblock");
            if !refused {
                return None;
            }
            format!("CLIENT {}", String::from_utf8_lossy(sub).to_uppercase())
        }
        _ => return None,
    };
    Some(format!(
        "ERR respgate: {what} is not supported when forwarding to a backend"
    ))
}

/// Commands whose namespacing is not a plain argument rewrite before forwarding: answered by
/// respgate, or handled by their own forwarding step (EXEC rewrites its queue).
pub(super) fn stays_local(name: &str, argv: &[Bytes]) -> bool {
    answered_locally(name, argv)
        || matches!(
            name,
            "select" | "hello" | "exec" | "discard" | "reset" | "unwatch"
        )
}

/// Commands answered by respgate itself in forwarding mode (connection state and
/// introspection of respgate's own clients and command table).
fn answered_locally(name: &str, argv: &[Bytes]) -> bool {
    match name {
        "auth" | "hello" | "quit" | "reset" | "command" | "cluster" | "readonly" | "readwrite"
        | "asking" | "multi" | "slowlog" | "monitor" => true,
        // CLIENT ID/LIST/KILL/SETNAME ... are about respgate's clients; PAUSE/UNPAUSE are
        // about the server: forward those. NO-EVICT stays here: it would mark a backend
        // connection other clients share, and respgate's clients are not Redis's to evict.
        "client" => !argv.get(1).is_some_and(|s| {
            s.eq_ignore_ascii_case(b"pause") || s.eq_ignore_ascii_case(b"unpause")
        }),
        _ => false,
    }
}

/// A command that may not be queued in MULTI when forwarding: the transaction runs on a
/// shared connection and must not change its state.
pub fn refused_in_multi(name: &str, argv: &[Bytes]) -> Option<String> {
    if let Some(e) = unsupported(name, argv) {
        return Some(e);
    }
    matches!(
        name,
        "subscribe"
            | "psubscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "punsubscribe"
            | "sunsubscribe"
            | "client"
            | "hello"
            | "auth"
    )
    .then(|| {
        format!(
            "ERR respgate: {} inside MULTI is not supported when forwarding to a backend",
            name.to_uppercase()
        )
    })
}

/// How long a blocking command may legitimately wait on the backend; None: forever.
/// Some(None) marks a non-blocking command.
pub(super) fn blocking_wait(spec: &CommandSpec, argv: &[Bytes]) -> Option<Option<Duration>> {
    let ms = |b: &Bytes| parse_i64(b).filter(|n| *n >= 0).map(|n| n as u64);
    match spec.name {
        "blpop" | "brpop" | "brpoplpush" | "blmove" | "bzpopmin" | "bzpopmax" | "blmpop"
        | "bzmpop" => {
            let arg = crate::backend::embedded::blocking::timeout_arg(spec, argv)?;
            let secs: f64 = std::str::from_utf8(arg).ok()?.parse().ok()?;
            Some((secs > 0.0).then(|| Duration::from_secs_f64(secs.min(1e9))))
        }
        "xread" | "xreadgroup" => {
            let at = argv.iter().position(|a| a.eq_ignore_ascii_case(b"block"))?;
            let n = ms(argv.get(at + 1)?)?;
            Some((n > 0).then(|| Duration::from_millis(n)))
        }
        "wait" => {
            let n = ms(argv.get(2)?)?;
            Some((n > 0).then(|| Duration::from_millis(n)))
        }
        "waitaof" => {
            let n = ms(argv.get(3)?)?;
            Some((n > 0).then(|| Duration::from_millis(n)))
        }
        _ => None,
    }
}

impl Session {
    /// Runs one command in forwarding mode (after auth, arity and MULTI queueing checks).
    pub(super) fn forward(&mut self, spec: &'static CommandSpec, argv: &[Bytes]) -> Outcome {
        let name = spec.name;
        let cluster = self.shared.remote.as_ref().and_then(|r| r.cluster.clone());
        // A deferred command (a cluster fan-out, a tenant's walk) runs before anything after it.
        if self.remote.as_ref().is_some_and(|st| st.barrier) {
            return Outcome::DrainFirst;
        }
        if name == "client"
            && argv
                .get(1)
                .is_some_and(|s| super::forward_tracking::is_tracking_subcommand(s))
        {
            if cluster.is_some() {
                return Outcome::Reply(Reply::err(
                    "ERR respgate: CLIENT TRACKING is not supported in cluster mode (a client's keys live on many nodes)",
                ));
            }
            return self.forward_tracking(argv);
        }
        if self.tracking.is_some() {
            self.refresh_tracking_redirect();
        }
        if let Some(e) = unsupported(name, argv) {
            return Outcome::Reply(Reply::err(e));
        }
        // A tenant's command goes to the backend inside its namespace.
        let rewritten;
        let argv = match self.tenant.clone() {
            Some(tenant) if !stays_local(name, argv) => {
                match self.tenant_forward_plan(&tenant, spec, argv) {
                    super::forward_tenancy::TenantPlan::Done(outcome) => return outcome,
                    super::forward_tenancy::TenantPlan::Forward(a, strip) => {
                        if let Some(st) = self.remote.as_mut() {
                            st.next_strip = strip;
                        }
                        rewritten = a;
                        &rewritten[..]
                    }
                }
            }
            _ => argv,
        };
        if name == "ping"
            && let Some(r) = crate::command::pubsub::subscribed_ping(self, argv)
        {
            return Outcome::Reply(r);
        }
        match name {
            "select" if cluster.is_some() => {
                // As a cluster node answers: only db 0 exists.
                return Outcome::Reply(if argv.get(1).is_some_and(|a| a.as_ref() == b"0") {
                    Reply::ok()
                } else {
                    Reply::err("ERR SELECT is not allowed in cluster mode")
                });
            }
            "select" => return self.forward_select(argv),
            "hello" => return self.forward_hello(argv),
            "exec" => return self.forward_exec(),
            "discard" => return self.forward_discard(),
            "watch" => return self.forward_watch(argv),
            "unwatch" => return self.forward_unwatch(argv),
            "reset" => {
                if self.needs_drain() {
                    return Outcome::DrainFirst;
                }
                // The pinned connection carries WATCHes and a db: a fresh start drops it.
                if let Some(st) = self.remote.as_mut() {
                    st.pinned = None;
                    st.watching = false;
                }
            }
            _ => {}
        }
        if name == "info"
            && let Some(at) = argv.iter().skip(1).position(|a| {
                a.eq_ignore_ascii_case(b"respgate") || a.eq_ignore_ascii_case(b"backend")
            })
        {
            // INFO respgate: respgate's own sections; INFO backend: the backend's (every
            // master's in cluster mode). A plain INFO is the backend's, passed through.
            let mut rest: Vec<Bytes> = argv.to_vec();
            let which = rest.remove(at + 1);
            if which.eq_ignore_ascii_case(b"respgate") {
                return Outcome::Reply(crate::command::info::info(self, &rest[1..]));
            }
            if cluster.is_some() {
                return self.defer(Deferred::InfoBackend(rest));
            }
            return self.forward(spec, &rest);
        }
        if answered_locally(name, argv) {
            let reply = crate::command::connection::run_local(self, name, argv)
                .unwrap_or_else(|| Reply::err(errors::not_implemented(name)));
            return Outcome::Reply(reply);
        }
        if let Some(cluster) = cluster {
            if matches!(name, "wait" | "waitaof") {
                // A client's writes go to several masters here, and a WAIT sent to one of
                // them on a connection of its own would count replicas of writes it never
                // made: refused rather than answered with a count that promises nothing.
                return Outcome::Reply(Reply::err(format!(
                    "ERR respgate: {} is not supported in cluster mode (a client's writes go to several masters)",
                    name.to_uppercase()
                )));
            }
            return self.forward_cluster(cluster, spec, argv);
        }
        // SCRIPT KILL / FUNCTION KILL must not queue behind the busy script on a shared
        // connection: they get a connection of their own.
        let kills = (name == "script" || name == "function")
            && argv.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"kill"));
        let blocking = blocking_wait(spec, argv);
        let conn = match (kills, blocking.is_some()) {
            (true, _) => {
                let user = self.backend_user();
                self.remote_target()
                    .pinned_conn_as(user.as_ref(), self.proto, 0)
            }
            (false, false) if self.reads_from_replica(spec) => {
                let remote = self.remote_target();
                match remote.replica_conn(self.proto, self.client_id()) {
                    Ok(Some(c)) => c,
                    Ok(None) => match self.conn(false) {
                        Some(c) => c,
                        None => return Outcome::DrainFirst,
                    },
                    Err(e) => return Outcome::Reply(Reply::err(e)),
                }
            }
            (false, pin) => match self.conn(pin) {
                Some(c) => c,
                None => return Outcome::DrainFirst,
            },
        };
        if self.needs_drain_for(&conn) {
            return Outcome::DrainFirst;
        }
        let deadline = self.deadline(blocking);
        if blocking.is_some() && matches!(name, "wait" | "waitaof") {
            // WAIT counts the replicas that have the connection's own last write, and the
            // client's writes went over another connection (WAIT runs on its own, as it
            // blocks): an empty PUBLISH first, which Redis propagates to its replicas, makes
            // this connection's last write come after every write the client made.
            let channel = match &self.tenant {
                Some(t) => t
                    .namespace
                    .channel(crate::backend::remote::WAIT_SYNC_CHANNEL),
                None => Bytes::from_static(crate::backend::remote::WAIT_SYNC_CHANNEL),
            };
            let encode = |b: &mut BytesMut| {
                encode_command(b, &[&b"PUBLISH"[..], &channel, b""]);
                encode_command(b, argv);
            };
            return self.submit_resendable(conn, encode, 0, deadline, None, true);
        }
        match self.ttl_fixups(spec, argv, blocking.is_some()) {
            Err(e) => Outcome::Reply(Reply::err(e)),
            Ok(fixes) if !fixes.is_empty() => {
                let skip = fixes.len() + 2;
                let encode = |b: &mut BytesMut| super::forward_ttl::encode_wrapped(b, argv, &fixes);
                self.submit(conn, encode, skip, deadline)
            }
            // Unchanged arguments in canonical RESP: the client's bytes go as they came.
            Ok(_) => match self.raw_bytes_of(argv) {
                Some(raw) => self.submit(conn, |b| b.extend_from_slice(&raw), 0, deadline),
                None => self.submit(conn, |b| encode_command(b, argv), 0, deadline),
            },
        }
    }

    /// A tenant's write under a TTL rule travels inside MULTI with its fix-ups: these are
    /// they (none for other commands), and the reply slot of the next submit is told how
    /// to take the client's reply out of EXEC's. Not for a blocking command (MULTI would
    /// make it answer at once) nor while WATCHing (our EXEC would consume the client's
    /// WATCH). Err: the policy refuses the command.
    fn ttl_fixups(
        &mut self,
        spec: &'static CommandSpec,
        argv: &[Bytes],
        blocking: bool,
    ) -> Result<Vec<super::forward_ttl::FixUp>, String> {
        let Some(tenant) = self.tenant.clone() else {
            return Ok(Vec::new());
        };
        if tenant.ttl.is_empty() || blocking || self.remote.as_ref().is_some_and(|st| st.watching) {
            return Ok(Vec::new());
        }
        let now = crate::backend::embedded::unix_ms();
        let fixes = super::forward_ttl::plan(&tenant, spec, argv, now)?;
        if !fixes.is_empty() {
            // The reply's own strip is the slot's (`next_strip`), not the unwrap's.
            let mut parts = vec![Part::Client(None)];
            parts.extend(
                fixes
                    .iter()
                    .map(|f| Part::FixUp(f.rule_key.clone(), f.action)),
            );
            if let Some(st) = self.remote.as_mut() {
                st.next_unwrap = Some(Box::new(super::forward_ttl::Unwrap {
                    tenant,
                    parts,
                    single: true,
                }));
            }
        }
        Ok(fixes)
    }

    /// How long a command may wait for its reply: the command timeout, plus its own wait for
    /// a blocking command (`blocking` from [`blocking_wait`]; `Some(None)`: forever).
    fn deadline(&self, blocking: Option<Option<Duration>>) -> Option<Duration> {
        let timeout = self.remote_target().command_timeout;
        match blocking {
            None => timeout,
            Some(None) => None,
            Some(Some(wait)) => Some(wait + timeout.unwrap_or(Duration::ZERO)),
        }
    }

    pub(super) fn remote_target(&self) -> &crate::backend::remote::Remote {
        // Sessions get a RemoteState only when the server has a remote backend.
        self.shared
            .remote
            .as_deref()
            .unwrap_or_else(|| unreachable!("forwarding session without a remote backend"))
    }

    /// Outstanding replies must arrive before this client talks to another connection.
    pub(super) fn needs_drain_for(&self, conn: &BackendConn) -> bool {
        self.remote.as_ref().is_some_and(|st| {
            st.outstanding > 0 && st.inflight.as_ref().map(|c| c.id) != Some(conn.id)
        })
    }

    fn needs_drain(&self) -> bool {
        self.remote.as_ref().is_some_and(|st| st.outstanding > 0)
    }

    /// The connection this client's next command goes to; with `pin`, its own connection
    /// (created now, in its db). None: outstanding replies on another connection must be
    /// drained before pinning.
    pub(super) fn conn(&mut self, pin: bool) -> Option<BackendConn> {
        let tracking = self.tracking.is_some();
        let db = self.db;
        let proto = self.proto;
        let id = self.client_id();
        let user = self.backend_user();
        let remote = self.shared.remote.as_deref()?;
        let st = self.remote.as_mut()?;
        if st.pinned.is_some() && st.pinned_user != user {
            // The client logged in as a tenant with another backend user (AUTH, a reload):
            // its own connection goes; WATCHes on it are lost as with a dead connection.
            st.pinned = None;
            if std::mem::take(&mut st.watching) {
                st.watch_lost = true;
            }
        }
        if let Some(p) = &st.pinned {
            if !p.is_dead() {
                return Some(p.clone());
            }
            // It died while nothing was in flight: a new one takes over (WATCHes on the old
            // one are lost, so the next EXEC fails; tracking is switched on again).
            st.pinned = None;
            if std::mem::take(&mut st.watching) {
                st.watch_lost = true;
            }
        }
        // A tracking client's reads must reach the connection that tracks them.
        if pin || db != 0 || tracking {
            if st.outstanding > 0 {
                return None;
            }
            let p = remote.pinned_conn_as(user.as_ref(), proto, db);
            st.pinned = Some(p.clone());
            st.pinned_user = user;
            if tracking {
                self.rearm_tracking(&p);
            }
            return Some(p);
        }
        // The pool's choice, remembered (no pool lock per command) until it dies.
        if let Some((c, p, u)) = &st.shared_conn
            && *p == proto
            && *u == user
            && !c.is_dead()
        {
            return Some(c.clone());
        }
        let c = remote.shared_conn_as(user.as_ref(), proto, id);
        st.shared_conn = Some((c.clone(), proto, user));
        Some(c)
    }

    /// Sentinel `read_from` replica / prefer-replica: a read-only command of a client that
    /// holds no connection of its own (no WATCH, SELECT, or tenant backend login) goes to
    /// the read replica.
    fn reads_from_replica(&self, spec: &'static CommandSpec) -> bool {
        self.shared
            .remote
            .as_ref()
            .is_some_and(|r| r.replica.is_some())
            && spec.has(crate::command::table::flags::READONLY)
            && self.db == 0
            && self.backend_user().is_none()
            && self.remote.as_ref().is_some_and(|st| st.pinned.is_none())
            && self.tracking.is_none()
    }

    /// The backend user this client's commands log in as: its tenant's own, if it has one.
    pub(super) fn backend_user(&self) -> Option<Arc<BackendUser>> {
        self.tenant.as_ref().and_then(|t| t.backend_user.clone())
    }

    /// Cluster mode: the connection to node `addr` for this client's next command; with
    /// `pin`, its own (replacing one pinned to another node). None: drain first.
    pub(super) fn cluster_conn(
        &mut self,
        cluster: &ClusterBackend,
        addr: &str,
        pin: bool,
    ) -> Option<BackendConn> {
        let proto = self.proto;
        let id = self.client_id();
        let user = self.backend_user();
        let remote = self.shared.remote.as_deref()?;
        let st = self.remote.as_mut()?;
        if st.pinned.is_some() && st.pinned_user != user {
            // The client logged in as a tenant with another backend user (AUTH, a reload):
            // its own connection goes; WATCHes on it are lost as with a dead connection.
            st.pinned = None;
            st.pinned_addr = None;
            if std::mem::take(&mut st.watching) {
                st.watch_lost = true;
            }
        }
        if let Some(p) = &st.pinned
            && st.pinned_addr.as_deref() == Some(addr)
            && !p.is_dead()
        {
            return Some(p.clone());
        }
        if pin {
            if st.outstanding > 0 {
                return None;
            }
            if st.watching {
                // WATCHes live on the old node's connection: the next EXEC must fail.
                st.watching = false;
                st.watch_lost = true;
            }
            let p = cluster.pinned_to(remote, addr, user.as_ref(), proto);
            st.pinned = Some(p.clone());
            st.pinned_addr = Some(addr.to_string());
            st.pinned_user = user;
            return Some(p);
        }
        Some(cluster.conn_to(remote, addr, user.as_ref(), proto, id))
    }

    /// Cluster mode: where the command goes (by its keys' slot), split or fanned out when
    /// several nodes must answer, or CROSSSLOT as a cluster node would say.
    fn forward_cluster(
        &mut self,
        cluster: Arc<ClusterBackend>,
        spec: &'static CommandSpec,
        argv: &[Bytes],
    ) -> Outcome {
        let slot = match command_slot(spec, argv) {
            Ok(s) => s,
            Err(_) => {
                if let Some(kind) = MultiKey::of(spec.name)
                    && let Some(split) = cluster_split::split(kind, argv)
                {
                    // The parts of a split run on several nodes, outside any one MULTI: an
                    // MSET that needs TTL fix-ups gets what Redis Cluster itself answers.
                    // (DEL, UNLINK, EXISTS, TOUCH and MGET create no key.)
                    let fixups = match kind {
                        MultiKey::Mset => self.ttl_fixups(spec, argv, false),
                        _ => Ok(Vec::new()),
                    };
                    match fixups {
                        Err(e) => return Outcome::Reply(Reply::err(e)),
                        Ok(fixes) if !fixes.is_empty() => {
                            if let Some(st) = self.remote.as_mut() {
                                st.next_unwrap = None;
                            }
                            return Outcome::Reply(Reply::err(CROSSSLOT));
                        }
                        Ok(_) => {}
                    }
                    return self.defer(Deferred::Split(split));
                }
                return Outcome::Reply(Reply::err(CROSSSLOT));
            }
        };
        let blocking = blocking_wait(spec, argv);
        let replica_read = cluster.read_from != ReadFrom::Master
            && blocking.is_none()
            && spec.has(crate::command::table::flags::READONLY)
            && !self.remote.as_ref().is_some_and(|st| st.watching);
        let addr = match slot {
            Some(s) if replica_read => match cluster.read_addr(s, self.client_id()) {
                Ok(a) => a,
                Err(e) => return Outcome::Reply(Reply::err(e)),
            },
            Some(s) => cluster.master_addr(s),
            None => {
                if let Some(d) = plan_keyless(spec, argv) {
                    return self.defer(d);
                }
                cluster.any_master(self.client_id())
            }
        };
        let Some(addr) = addr else {
            cluster.request_refresh();
            return Outcome::Reply(Reply::err("CLUSTERDOWN Hash slot not served"));
        };
        let Some(conn) = self.cluster_conn(&cluster, &addr, blocking.is_some()) else {
            return Outcome::DrainFirst;
        };
        if self.needs_drain_for(&conn) {
            return Outcome::DrainFirst;
        }
        let deadline = self.deadline(blocking);
        // A tenant's write under a TTL rule: its fix-ups name the same key, so the whole
        // MULTI ... EXEC goes to the key's slot, and is resent as a whole after MOVED/ASK.
        let fixes = match self.ttl_fixups(spec, argv, blocking.is_some()) {
            Ok(f) => f,
            Err(e) => return Outcome::Reply(Reply::err(e)),
        };
        if !fixes.is_empty() {
            let mut commands = Vec::with_capacity(fixes.len() + 1);
            commands.push(argv.to_vec());
            commands.extend(fixes.iter().map(|f| f.argv.clone()));
            let resend = Some(Box::new(Resend {
                slot,
                sent: Sent::Transaction(commands),
                node: addr.into(),
                user: self.backend_user(),
            }));
            let skip = fixes.len() + 2;
            let encode = |b: &mut BytesMut| super::forward_ttl::encode_wrapped(b, argv, &fixes);
            return self.submit_resendable(conn, encode, skip, deadline, resend, false);
        }
        let resend = Some(Box::new(Resend {
            slot,
            sent: Sent::One(argv.to_vec()),
            node: addr.into(),
            user: self.backend_user(),
        }));
        self.submit_resendable(
            conn,
            |b| encode_command(b, argv),
            0,
            deadline,
            resend,
            false,
        )
    }

    /// Queues a command several nodes answer; later commands wait until it has run.
    pub(super) fn defer(&mut self, deferred: Deferred) -> Outcome {
        let strip = self.remote.as_mut().and_then(|st| {
            st.barrier = true;
            st.next_strip.take()
        });
        let user = self.backend_user();
        self.pending.push_back(Slot::Deferred(
            Box::new(deferred),
            strip,
            self.current.take(),
            user,
        ));
        Outcome::Forwarded
    }

    /// Queues commands (encoded by `encode`) for `conn`; the last of their replies goes to the
    /// client, the `skip` before it are dropped. Commands are collected per connection and
    /// leave in one batch when the connection task drains (see [`Session::flush_outgoing`]).
    pub(super) fn submit(
        &mut self,
        conn: BackendConn,
        encode: impl FnOnce(&mut BytesMut),
        skip: usize,
        deadline: Option<Duration>,
    ) -> Outcome {
        self.submit_resendable(conn, encode, skip, deadline, None, false)
    }

    /// [`Session::submit`], keeping what a cluster needs to resend the command after
    /// MOVED/ASK; with `gated`, the reply of the first command after the `skip` ones is
    /// looked at rather than dropped: a WAIT's PUBLISH, whose refusal turns the WAIT's reply
    /// into an error (see `Slot::Remote::gate`).
    fn submit_resendable(
        &mut self,
        conn: BackendConn,
        encode: impl FnOnce(&mut BytesMut),
        skip: usize,
        deadline: Option<Duration>,
        resend: Option<Box<Resend>>,
        gated: bool,
    ) -> Outcome {
        if conn.is_dead() {
            let address = self.remote_target().target.address();
            let e = conn.error();
            self.forget_conn(&conn);
            return Outcome::Reply(Reply::err(e.client_error(&address)));
        }
        let Some(st) = self.remote.as_mut() else {
            return Outcome::Reply(Reply::err(errors::not_implemented("forwarding")));
        };
        let strip = st.next_strip.take();
        let unwrap = st.next_unwrap.take();
        let gates = usize::from(gated);
        st.outstanding += 1 + gates;
        self.enqueue(&conn, encode, skip, 1 + gates);
        if let Some(st) = self.remote.as_mut()
            && st.inflight.as_ref().map(|c| c.id) != Some(conn.id)
        {
            st.inflight = Some(conn);
        }
        if gated {
            self.pending.push_back(Slot::Remote {
                deadline,
                resend: None,
                strip: None,
                unwrap: None,
                cmd: None,
                discard: true,
                gate: true,
            });
        }
        let cmd = self.current.take();
        self.pending.push_back(Slot::Remote {
            deadline,
            resend,
            strip,
            unwrap,
            cmd,
            discard: false,
            gate: false,
        });
        Outcome::Forwarded
    }

    /// Adds commands to the batch being collected for `conn` (sending the batch of another
    /// connection first, and a big batch at once).
    /// The batch owes `skip` replies nobody reads, then `to_client` to the client.
    pub(super) fn enqueue(
        &mut self,
        conn: &BackendConn,
        encode: impl FnOnce(&mut BytesMut),
        skip: usize,
        to_client: usize,
    ) {
        if self
            .remote
            .as_ref()
            .and_then(|st| st.outgoing.as_ref())
            .is_some_and(|o| o.conn.id != conn.id)
        {
            self.flush_outgoing();
        }
        let Some(st) = self.remote.as_mut() else {
            return;
        };
        let out = st.outgoing.get_or_insert_with(|| Outgoing {
            conn: conn.clone(),
            owed: OwedList::new(),
        });
        if st.send_buf.capacity() == 0 {
            st.send_buf.reserve(SEND_BUF_CAPACITY);
        }
        encode(&mut st.send_buf);
        Owed::push(&mut out.owed, None, skip);
        Owed::push(&mut out.owed, Some(&st.sink), to_client);
        if st.send_buf.len() >= OUTGOING_FLUSH {
            self.flush_outgoing();
        }
    }

    /// Sends the collected batch. If its connection died meanwhile, every reply it owes the
    /// client is answered with the error through the client's own sink, so each reply slot
    /// still gets exactly one answer.
    pub fn flush_outgoing(&mut self) {
        let Some(st) = self.remote.as_mut() else {
            return;
        };
        let Some(out) = st.outgoing.take() else {
            return;
        };
        let bytes = st.send_buf.split().freeze();
        if bytes.len() > SEND_BUF_KEPT {
            // A big batch (a large value, say) lives in a big allocation: let it go with the
            // batch rather than keep it, mostly unused, for this client's next commands.
            st.send_buf = BytesMut::new();
        }
        let batch = Batch {
            bytes,
            owed: out.owed,
        };
        if let Err((batch, e)) = out.conn.send(batch) {
            batch.answer_all(&e);
            self.forget_conn(&out.conn);
        }
    }

    /// A dead pinned connection is replaced by the next command. Its WATCHes died with it,
    /// so the next EXEC must fail as if a watched key changed.
    fn forget_conn(&mut self, conn: &BackendConn) {
        if let Some(st) = self.remote.as_mut()
            && st.pinned.as_ref().is_some_and(|p| p.id == conn.id)
        {
            st.pinned = None;
            if st.watching {
                st.watching = false;
                st.watch_lost = true;
            }
        }
    }

    /// Sends a command whose reply nobody reads (state kept in step on the pinned connection).
    pub(super) fn send_quietly(&mut self, conn: &BackendConn, argv: &[&[u8]]) {
        self.enqueue(conn, |b| encode_command(b, argv), 1, 0);
    }

    pub(super) fn pinned(&self) -> Option<&BackendConn> {
        self.remote.as_ref().and_then(|st| st.pinned.as_ref())
    }

    fn forward_select(&mut self, argv: &[Bytes]) -> Outcome {
        let reply = crate::command::connection::run_local(self, "select", argv)
            .unwrap_or_else(|| Reply::err(errors::SYNTAX));
        if !reply.is_error()
            && let Some(p) = self.pinned().cloned()
        {
            let db = self.db.to_string();
            self.send_quietly(&p, &[b"SELECT", db.as_bytes()]);
        }
        Outcome::Reply(reply)
    }

    fn forward_hello(&mut self, argv: &[Bytes]) -> Outcome {
        let before = self.proto;
        let reply = crate::command::connection::run_local(self, "hello", argv)
            .unwrap_or_else(|| Reply::err(errors::SYNTAX));
        if self.proto != before
            && let Some(p) = self.pinned().cloned()
        {
            let v: &[u8] = if self.proto == Protocol::Resp3 {
                b"3"
            } else {
                b"2"
            };
            self.send_quietly(&p, &[b"HELLO", v]);
        }
        Outcome::Reply(reply)
    }

    fn forward_watch(&mut self, argv: &[Bytes]) -> Outcome {
        if self.multi.is_some() {
            return Outcome::Reply(Reply::err("ERR WATCH inside MULTI is not allowed"));
        }
        let conn = match self.shared.remote.as_ref().and_then(|r| r.cluster.clone()) {
            Some(cluster) => {
                let spec = crate::command::table::lookup(b"watch");
                let slot = match spec.map(|s| command_slot(s, argv)) {
                    Some(Ok(Some(slot))) => slot,
                    _ => return Outcome::Reply(Reply::err(CROSSSLOT)),
                };
                let Some(addr) = cluster.master_addr(slot) else {
                    return Outcome::Reply(Reply::err("CLUSTERDOWN Hash slot not served"));
                };
                self.cluster_conn(&cluster, &addr, true)
            }
            None => self.conn(true),
        };
        let Some(conn) = conn else {
            return Outcome::DrainFirst;
        };
        if self.needs_drain_for(&conn) {
            return Outcome::DrainFirst;
        }
        if let Some(st) = self.remote.as_mut() {
            st.watching = true;
        }
        let deadline = self.remote_target().command_timeout;
        self.submit(conn, |b| encode_command(b, argv), 0, deadline)
    }

    fn forward_unwatch(&mut self, argv: &[Bytes]) -> Outcome {
        let watching = self.remote.as_ref().is_some_and(|st| st.watching);
        match self.pinned().cloned() {
            Some(conn) if watching => {
                if self.needs_drain_for(&conn) {
                    return Outcome::DrainFirst;
                }
                if let Some(st) = self.remote.as_mut() {
                    st.watching = false;
                }
                let deadline = self.remote_target().command_timeout;
                self.submit(conn, |b| encode_command(b, argv), 0, deadline)
            }
            _ => Outcome::Reply(Reply::ok()),
        }
    }

    fn forward_discard(&mut self) -> Outcome {
        if self.multi.is_none() {
            return Outcome::Reply(Reply::err("ERR DISCARD without MULTI"));
        }
        self.multi = None;
        self.clear_watch();
        Outcome::Reply(Reply::ok())
    }

    /// DISCARD and EXECABORT forget the WATCHes, as Redis does.
    fn clear_watch(&mut self) {
        let pinned = self.pinned().cloned();
        let was_watching = self
            .remote
            .as_mut()
            .is_some_and(|st| std::mem::take(&mut st.watching));
        if was_watching && let Some(p) = pinned {
            self.send_quietly(&p, &[b"UNWATCH"]);
        }
    }

    /// Cluster mode: the node a transaction runs on (the one serving all its keys' slot).
    fn exec_node(&self, cluster: &ClusterBackend) -> Result<(String, Option<u16>), Reply> {
        let mut slot = None;
        for (spec, argv) in self.multi.iter().flat_map(|m| m.queued()) {
            match command_slot(spec, argv) {
                Ok(Some(s)) if slot.is_some_and(|x| x != s) => {
                    return Err(Reply::err(CROSSSLOT));
                }
                Ok(Some(s)) => slot = Some(s),
                Ok(None) => {}
                Err(_) => return Err(Reply::err(CROSSSLOT)),
            }
        }
        let watched_node = self
            .remote
            .as_ref()
            .filter(|st| st.watching)
            .and_then(|st| st.pinned_addr.clone());
        let addr = match slot {
            Some(s) => cluster.master_addr(s),
            // Keyless, after WATCH: on the watching connection's node, where EXEC sees them.
            None => watched_node.or_else(|| cluster.any_master(self.client_id())),
        };
        addr.map(|a| (a, slot))
            .ok_or_else(|| Reply::err("CLUSTERDOWN Hash slot not served"))
    }

    /// EXEC: the queued commands go to the backend as one contiguous MULTI ... EXEC, so no
    /// other client's command can land inside it even on a shared connection; the client
    /// already had its QUEUED replies and gets EXEC's reply.
    fn forward_exec(&mut self) -> Outcome {
        if self.multi.is_none() {
            return Outcome::Reply(Reply::err("ERR EXEC without MULTI"));
        }
        if self.multi.as_ref().is_some_and(|m| m.is_aborted()) {
            // Before the tenant's rewrite: its refusals must not hide Redis's answer.
            self.multi = None;
            self.clear_watch();
            return Outcome::Reply(Reply::err(crate::command::transaction::EXECABORT));
        }
        if let Some(tenant) = self.tenant.clone()
            && let Some(m) = self.multi.as_mut()
        {
            // Done once even when EXEC has to wait and run again: the shapes are kept.
            let fresh = !m.rewritten;
            let mut shapes = Vec::new();
            let rewritten = m.rewrite(|spec, argv| {
                let (argv, shape) = tenant_queued(&tenant, spec, argv)?;
                shapes.push(shape);
                Ok(argv)
            });
            if let Err(e) = rewritten {
                self.multi = None;
                self.clear_watch();
                return Outcome::Reply(Reply::err(e));
            }
            if fresh && let Some(st) = self.remote.as_mut() {
                st.exec_shapes = shapes;
            }
        }
        // SELECT inside the transaction changes the connection's db: only on the client's own.
        let selects = self
            .multi
            .as_ref()
            .is_some_and(|m| m.queued_names().any(|n| n == "select"));
        // Cluster mode, no WATCH: where to resend the whole transaction after MOVED/ASK
        // (with WATCH it must run on the watching connection, or fail).
        let mut resend_to = None;
        let watching = self.remote.as_ref().is_some_and(|st| st.watching);
        let conn = match self.shared.remote.as_ref().and_then(|r| r.cluster.clone()) {
            Some(cluster) => match self.exec_node(&cluster) {
                Ok((addr, slot)) => {
                    if !watching && slot.is_some() {
                        resend_to = Some((addr.clone(), slot));
                    }
                    self.cluster_conn(&cluster, &addr, false)
                }
                Err(reply) => {
                    self.multi = None;
                    self.clear_watch();
                    return Outcome::Reply(reply);
                }
            },
            None => self.conn(selects),
        };
        let Some(conn) = conn else {
            return Outcome::DrainFirst;
        };
        if self.needs_drain_for(&conn) {
            return Outcome::DrainFirst;
        }
        let Some(multi) = self.multi.take() else {
            return Outcome::Reply(Reply::err("ERR EXEC without MULTI"));
        };
        let (queue, aborted) = multi.into_parts();
        if !aborted {
            // The db the client is in afterwards (as if the EXEC ran; a WATCH-failed EXEC
            // leaves the pinned connection's db as it was, and that connection is the truth).
            for (spec, argv) in &queue {
                if spec.name == "select"
                    && let Some(n) = argv.get(1).and_then(|a| parse_i64(a))
                    && n >= 0
                {
                    self.db = n as usize;
                }
            }
        }
        if aborted {
            self.clear_watch();
            return Outcome::Reply(Reply::err(crate::command::transaction::EXECABORT));
        }
        if let Some(st) = self.remote.as_mut() {
            // EXEC clears the WATCHes on the backend whatever happens.
            st.watching = false;
        }
        if self
            .remote
            .as_mut()
            .is_some_and(|st| std::mem::take(&mut st.watch_lost))
        {
            // The connection holding the WATCHes is gone: fail as Redis fails a touched WATCH.
            return Outcome::Reply(Reply::NullArray);
        }
        // Blocking commands answer at once inside a transaction: the usual limit applies.
        let deadline = self.remote_target().command_timeout;
        // A tenant's writes under TTL rules get their fix-ups right behind them.
        let mut fixes: Vec<Vec<super::forward_ttl::FixUp>> = Vec::with_capacity(queue.len());
        if let Some(tenant) = self.tenant.clone().filter(|t| !t.ttl.is_empty()) {
            let now = crate::backend::embedded::unix_ms();
            for (spec, argv) in &queue {
                match super::forward_ttl::plan(&tenant, spec, argv, now) {
                    Ok(f) => fixes.push(f),
                    Err(e) => {
                        self.clear_watch();
                        return Outcome::Reply(Reply::err(format!(
                            "EXECABORT Transaction discarded because of: {}",
                            e.strip_prefix("ERR ").unwrap_or(&e)
                        )));
                    }
                }
            }
        }
        let extra: usize = fixes.iter().map(Vec::len).sum();
        // A tenant's EXEC reply: each of its commands' replies loses the prefix (and the
        // TTL fix-ups' replies are taken out).
        if let Some(tenant) = self.tenant.clone()
            && let Some(st) = self.remote.as_mut()
        {
            let shapes = std::mem::take(&mut st.exec_shapes);
            let mut parts = Vec::with_capacity(queue.len() + extra);
            for i in 0..queue.len() {
                let shape = shapes.get(i).copied().unwrap_or(Shape::Plain);
                parts.push(Part::Client(Some(shape)));
                parts.extend(
                    fixes
                        .get(i)
                        .into_iter()
                        .flatten()
                        .map(|f| Part::FixUp(f.rule_key.clone(), f.action)),
                );
            }
            st.next_unwrap = Some(Box::new(super::forward_ttl::Unwrap {
                tenant,
                parts,
                single: false,
            }));
        }
        let skip = queue.len() + extra + 1;
        let user = self.backend_user();
        let resend = resend_to.map(|(node, slot)| {
            let mut commands = Vec::with_capacity(queue.len() + extra);
            for (i, (_, argv)) in queue.iter().enumerate() {
                commands.push(argv.clone());
                commands.extend(fixes.get(i).into_iter().flatten().map(|f| f.argv.clone()));
            }
            Box::new(Resend {
                slot,
                sent: Sent::Transaction(commands),
                node: node.into(),
                user,
            })
        });
        let encode = |b: &mut BytesMut| {
            encode_command(b, &[b"MULTI"]);
            for (i, (_, argv)) in queue.iter().enumerate() {
                encode_command(b, argv);
                for f in fixes.get(i).into_iter().flatten() {
                    encode_command(b, &f.argv);
                }
            }
            encode_command(b, &[b"EXEC"]);
        };
        self.submit_resendable(conn, encode, skip, deadline, resend, false)
    }
}
