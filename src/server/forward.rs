//! Forwarding mode: how one client's commands reach the Redis backend — which ones respgate
//! answers itself, which go to the shared connection that serves this client, and which need
//! a connection pinned to the client (WATCH, SELECT of another db, blocking commands) — and
//! the queue of reply slots that keeps the client's replies in the order it sent commands.
//!
//! Replies come back from the backend as raw frames in the client's protocol version (RESP3
//! clients use RESP3 connections) and are passed through byte for byte.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::session::{Outcome, Session};
use crate::backend::embedded::num::parse_i64;
use crate::backend::remote::BackendError;
use crate::backend::remote::conn::{BackendConn, Batch, ReplySink, encode_command};
use crate::command::CommandSpec;
use crate::protocol::{Protocol, Reply, errors};

/// One reply owed to the client, in order.
pub enum Slot {
    /// Already encoded (answered by respgate while earlier replies were still outstanding).
    Local(BytesMut),
    /// Owed by `conn`; give up after `deadline` (None: wait as long as it takes).
    Remote {
        conn: BackendConn,
        deadline: Option<Duration>,
    },
}

/// A forwarding client's backend-side state.
pub struct RemoteState {
    pub sink: ReplySink,
    pub replies: mpsc::UnboundedReceiver<Result<Bytes, BackendError>>,
    /// The client's own connection, once it needed one; kept until it leaves.
    pinned: Option<BackendConn>,
    /// The connection whose replies are outstanding (a client's commands go to one connection
    /// at a time, so their order on the backend is the order it sent them).
    inflight_conn: Option<u64>,
    pub outstanding: usize,
    /// WATCH was forwarded on the pinned connection and not yet cleared.
    watching: bool,
}

impl RemoteState {
    pub fn new() -> RemoteState {
        let (sink, replies) = mpsc::unbounded_channel();
        RemoteState {
            sink,
            replies,
            pinned: None,
            inflight_conn: None,
            outstanding: 0,
            watching: false,
        }
    }

    /// One outstanding reply arrived.
    pub fn settled(&mut self) {
        self.outstanding = self.outstanding.saturating_sub(1);
        if self.outstanding == 0 {
            self.inflight_conn = None;
        }
    }
}

impl Default for RemoteState {
    fn default() -> Self {
        RemoteState::new()
    }
}

/// Commands that would change a shared connection's state for everybody on it, or that need
/// machinery respgate does not forward yet.
fn unsupported(name: &str, argv: &[Bytes]) -> Option<String> {
    let sub = argv
        .get(1)
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let what = match name {
        "monitor" | "sync" | "psync" | "replconf" | "failover" | "shutdown" => name.to_uppercase(),
        "client"
            if matches!(
                sub.as_slice(),
                b"reply" | b"tracking" | b"caching" | b"getredir" | b"trackinginfo" | b"unblock"
            ) =>
        {
            format!("CLIENT {}", String::from_utf8_lossy(&sub).to_uppercase())
        }
        _ => return None,
    };
    Some(format!(
        "ERR respgate: {what} is not supported when forwarding to a backend"
    ))
}

/// Commands answered by respgate itself in forwarding mode (connection state and
/// introspection of respgate's own clients and command table).
fn answered_locally(name: &str, argv: &[Bytes]) -> bool {
    match name {
        "auth" | "hello" | "quit" | "reset" | "command" | "cluster" | "readonly" | "readwrite"
        | "asking" | "multi" => true,
        // CLIENT ID/LIST/KILL/SETNAME ... are about respgate's clients; PAUSE/UNPAUSE and
        // NO-EVICT are about the server: forward those.
        "client" => !argv.get(1).is_some_and(|s| {
            s.eq_ignore_ascii_case(b"pause")
                || s.eq_ignore_ascii_case(b"unpause")
                || s.eq_ignore_ascii_case(b"no-evict")
        }),
        _ => false,
    }
}

/// A command that may not be queued in MULTI when forwarding: the transaction runs on a
/// shared connection and must not change its state.
pub fn refused_in_multi(name: &str) -> Option<String> {
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
fn blocking_wait(spec: &CommandSpec, argv: &[Bytes]) -> Option<Option<Duration>> {
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
        if let Some(e) = unsupported(name, argv) {
            return Outcome::Reply(Reply::err(e));
        }
        if name == "ping"
            && let Some(r) = crate::command::pubsub::subscribed_ping(self, argv)
        {
            return Outcome::Reply(r);
        }
        match name {
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
        if answered_locally(name, argv) {
            let reply = crate::command::connection::run_local(self, name, argv)
                .unwrap_or_else(|| Reply::err(errors::not_implemented(name)));
            return Outcome::Reply(reply);
        }
        // SCRIPT KILL / FUNCTION KILL must not queue behind the busy script on a shared
        // connection: they get a connection of their own.
        let kills = (name == "script" || name == "function")
            && argv.get(1).is_some_and(|s| s.eq_ignore_ascii_case(b"kill"));
        let blocking = blocking_wait(spec, argv);
        let conn = match (kills, blocking.is_some()) {
            (true, _) => self.remote_target().pinned_conn(self.proto, 0),
            (false, pin) => match self.conn(pin) {
                Some(c) => c,
                None => return Outcome::DrainFirst,
            },
        };
        if self.needs_drain_for(&conn) {
            return Outcome::DrainFirst;
        }
        let timeout = self.remote_target().command_timeout;
        let deadline = match blocking {
            None => timeout,
            Some(None) => None,
            Some(Some(wait)) => Some(wait + timeout.unwrap_or(Duration::ZERO)),
        };
        let mut bytes = BytesMut::new();
        encode_command(&mut bytes, argv);
        self.submit(conn, bytes.freeze(), 0, deadline)
    }

    fn remote_target(&self) -> &crate::backend::remote::Remote {
        // Sessions get a RemoteState only when the server has a remote backend.
        self.shared
            .remote
            .as_deref()
            .unwrap_or_else(|| unreachable!("forwarding session without a remote backend"))
    }

    /// Outstanding replies must arrive before this client talks to another connection.
    fn needs_drain_for(&self, conn: &BackendConn) -> bool {
        self.remote
            .as_ref()
            .is_some_and(|st| st.outstanding > 0 && st.inflight_conn != Some(conn.id))
    }

    fn needs_drain(&self) -> bool {
        self.remote.as_ref().is_some_and(|st| st.outstanding > 0)
    }

    /// The connection this client's next command goes to; with `pin`, its own connection
    /// (created now, in its db). None: outstanding replies on another connection must be
    /// drained before pinning.
    fn conn(&mut self, pin: bool) -> Option<BackendConn> {
        let db = self.db;
        let proto = self.proto;
        let id = self.client_id();
        let shared = self.shared.clone();
        let remote = shared.remote.as_deref()?;
        let st = self.remote.as_mut()?;
        if let Some(p) = &st.pinned {
            return Some(p.clone());
        }
        if pin || db != 0 {
            if st.outstanding > 0 {
                return None;
            }
            let p = remote.pinned_conn(proto, db);
            st.pinned = Some(p.clone());
            return Some(p);
        }
        Some(remote.shared_conn(proto, id))
    }

    /// Sends encoded commands; the last of their replies goes to the client, the `skip`
    /// before it are dropped.
    fn submit(
        &mut self,
        conn: BackendConn,
        bytes: Bytes,
        skip: usize,
        deadline: Option<Duration>,
    ) -> Outcome {
        let address = self.remote_target().target.address.clone();
        let Some(st) = self.remote.as_mut() else {
            return Outcome::Reply(Reply::err(errors::not_implemented("forwarding")));
        };
        let mut owed = vec![None; skip];
        owed.push(Some(st.sink.clone()));
        match conn.send(Batch { bytes, owed }) {
            Ok(()) => {
                st.outstanding += 1;
                st.inflight_conn = Some(conn.id);
                if st.pinned.as_ref().is_some_and(|p| p.id == conn.id) && conn.is_dead() {
                    st.pinned = None;
                }
                self.pending.push_back(Slot::Remote { conn, deadline });
                Outcome::Forwarded
            }
            Err((_, e)) => {
                // A dead pinned connection is replaced by the next command (its WATCHes are
                // gone with it, so a later EXEC must fail: Redis would have lost them too).
                if st.pinned.as_ref().is_some_and(|p| p.id == conn.id) {
                    st.pinned = None;
                }
                Outcome::Reply(Reply::err(e.client_error(&address)))
            }
        }
    }

    /// Sends a command whose reply nobody reads (state kept in step on the pinned connection).
    fn send_quietly(&self, conn: &BackendConn, argv: &[&[u8]]) {
        let mut bytes = BytesMut::new();
        encode_command(&mut bytes, argv);
        let _ = conn.send(Batch {
            bytes: bytes.freeze(),
            owed: vec![None],
        });
    }

    fn pinned(&self) -> Option<&BackendConn> {
        self.remote.as_ref().and_then(|st| st.pinned.as_ref())
    }

    fn forward_select(&mut self, argv: &[Bytes]) -> Outcome {
        let reply = crate::command::connection::run_local(self, "select", argv)
            .unwrap_or_else(|| Reply::err(errors::SYNTAX));
        if !reply.is_error()
            && let Some(p) = self.pinned()
        {
            let db = self.db.to_string();
            self.send_quietly(p, &[b"SELECT", db.as_bytes()]);
        }
        Outcome::Reply(reply)
    }

    fn forward_hello(&mut self, argv: &[Bytes]) -> Outcome {
        let before = self.proto;
        let reply = crate::command::connection::run_local(self, "hello", argv)
            .unwrap_or_else(|| Reply::err(errors::SYNTAX));
        if self.proto != before
            && let Some(p) = self.pinned()
        {
            let v: &[u8] = if self.proto == Protocol::Resp3 {
                b"3"
            } else {
                b"2"
            };
            self.send_quietly(p, &[b"HELLO", v]);
        }
        Outcome::Reply(reply)
    }

    fn forward_watch(&mut self, argv: &[Bytes]) -> Outcome {
        if self.multi.is_some() {
            return Outcome::Reply(Reply::err("ERR WATCH inside MULTI is not allowed"));
        }
        let Some(conn) = self.conn(true) else {
            return Outcome::DrainFirst;
        };
        if self.needs_drain_for(&conn) {
            return Outcome::DrainFirst;
        }
        if let Some(st) = self.remote.as_mut() {
            st.watching = true;
        }
        let mut bytes = BytesMut::new();
        encode_command(&mut bytes, argv);
        let deadline = self.remote_target().command_timeout;
        self.submit(conn, bytes.freeze(), 0, deadline)
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
                let mut bytes = BytesMut::new();
                encode_command(&mut bytes, argv);
                let deadline = self.remote_target().command_timeout;
                self.submit(conn, bytes.freeze(), 0, deadline)
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
        if let Some(st) = self.remote.as_mut()
            && st.watching
        {
            st.watching = false;
            if let Some(p) = pinned {
                self.send_quietly(&p, &[b"UNWATCH"]);
            }
        }
    }

    /// EXEC: the queued commands go to the backend as one contiguous MULTI ... EXEC, so no
    /// other client's command can land inside it even on a shared connection; the client
    /// already had its QUEUED replies and gets EXEC's reply.
    fn forward_exec(&mut self) -> Outcome {
        if self.multi.is_none() {
            return Outcome::Reply(Reply::err("ERR EXEC without MULTI"));
        }
        // SELECT inside the transaction changes the connection's db: only on the client's own.
        let selects = self
            .multi
            .as_ref()
            .is_some_and(|m| m.queued_names().any(|n| n == "select"));
        let Some(conn) = self.conn(selects) else {
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
        let mut bytes = BytesMut::new();
        encode_command(&mut bytes, &[b"MULTI"]);
        // Blocking commands answer at once inside a transaction: the usual limit applies.
        let deadline = self.remote_target().command_timeout;
        for (_, argv) in &queue {
            encode_command(&mut bytes, argv);
        }
        encode_command(&mut bytes, &[b"EXEC"]);
        self.submit(conn, bytes.freeze(), queue.len() + 1, deadline)
    }
}
