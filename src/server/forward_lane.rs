//! Forwarding's fast lane: a plain client's run of ordinary commands (GET, SET, INCR ...)
//! goes to its backend connection as the bytes it sent, one reply slot each, without the
//! per-command steps of [`Session::handle`] that cannot apply to it.
//!
//! "Plain" is a client with none of the things that make forwarding more than passing bytes
//! on: no tenant (namespace, TTL rules, ACL), no transaction, tracking, subscription or
//! CLIENT REPLY mode, no MONITOR watching, and a backend with no cluster routing or replica
//! reads. "Ordinary" is a data command, a script call or PUBLISH, which
//! [`Session::forward`] sends on unchanged for such a client. Anything
//! else, and any command the lane is unsure of, takes the full path, which answers exactly
//! as before: the lane only ever skips work whose outcome it knows. Replies are counted,
//! timed and handed on by the connection's drain like every forwarded reply.

use std::sync::OnceLock;

use super::forward::Slot;
use super::session::Session;
use crate::command::CommandSpec;
use crate::command::table;
use crate::protocol::RequestParser;

/// Data commands that [`Session::forward`] does not simply send on for a plain client, and
/// that neither the command table's `blocking` flag, the pub/sub kinds nor
/// `forward::stays_local` already name: WAIT/WAITAOF block on a connection of their own (with
/// a PUBLISH first), WATCH pins the client's connection, INFO may be respgate's own, PING
/// answers differently to a subscriber.
const FULL_PATH: &[&str] = &["wait", "waitaof", "watch", "info", "ping"];

/// Whether `spec` may take the lane (worked out once per command of the table).
fn rides_lane(spec: &'static CommandSpec) -> bool {
    static BY_ORDINAL: OnceLock<Vec<bool>> = OnceLock::new();
    let Some(i) = table::ordinal(spec) else {
        return false;
    };
    BY_ORDINAL
        .get_or_init(|| table::all().iter().map(ordinary).collect())
        .get(i)
        .copied()
        .unwrap_or(false)
}

/// Commands outside the embedded engine's data commands that a plain client's full path
/// also sends on unchanged: the scripts of its locks and the publishing of its events.
const SENT_AS_IS: &[&str] = &[
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
    "publish",
];

/// A data command (or one of [`SENT_AS_IS`]) that goes to the backend as it came, whatever
/// its arguments.
fn ordinary(spec: &'static CommandSpec) -> bool {
    spec.subcommands.is_empty()
        && (crate::backend::embedded::handler_for(spec).is_some()
            || SENT_AS_IS.contains(&spec.name))
        && !FULL_PATH.contains(&spec.name)
        // Blocking commands get a deadline that covers their wait (`forward::blocking_wait`).
        && !spec.has(table::flags::BLOCKING)
        && crate::command::pubsub::kind_of(spec.name.as_bytes()).is_none()
        && !spec.has(table::flags::ALLOW_BUSY)
        && super::forward::unsupported(spec.name, &[]).is_none()
        && !super::forward::stays_local(spec.name, &[])
}

impl Session {
    /// Whether this client's commands may take the lane now.
    fn lane_open(&self) -> bool {
        let (Some(remote), Some(st)) = (self.shared.remote.as_deref(), self.remote.as_ref()) else {
            return false;
        };
        remote.cluster.is_none()
            && remote.replica.is_none()
            && !st.barrier
            && self.authenticated
            && self.tenant.is_none()
            && self.multi.is_none()
            && self.tracking.is_none()
            && !self.reply_off
            && !self.skip_next
            && !self.in_subscriber_mode()
            && !self.shared.pubsub.monitoring()
            && !self.shared.engine.script_run.busy()
            && !self.tenants_reloaded()
    }

    /// Sends the ordinary commands at the head of the client's buffered run (at most `max`)
    /// to the backend as they came; returns how many. 0: the next command takes the full
    /// path ([`Session::handle`]).
    pub(super) fn forward_lane(&mut self, parser: &mut RequestParser, max: usize) -> usize {
        if max == 0 || !self.lane_open() || !parser.cut_ahead() {
            return 0;
        }
        let before = self.pending.len();
        let started = self.last_read;
        let deadline = self.remote_target().command_timeout;
        let mut last = None;
        let mut n = 0;
        while n < max {
            let Some((name, argc)) = parser.run_command(n) else {
                break;
            };
            let Some(spec) = self.lookup_command(name) else {
                break;
            };
            // A wrong number of arguments is answered by the full path, as Redis words it.
            if !rides_lane(spec) || !spec.arity_ok(argc) {
                break;
            }
            self.pending.push_back(Slot::Remote {
                deadline,
                resend: None,
                strip: None,
                unwrap: None,
                cmd: Some((spec, started)),
                discard: false,
                gate: false,
            });
            last = Some(spec);
            n += 1;
        }
        let Some(last) = last else {
            return 0;
        };
        // The connection the full path would pick; a dead one, or replies owed on another,
        // are the full path's to handle (it answers the error, or drains first).
        let conn = match self.conn(false) {
            Some(c) if !c.is_dead() && !self.needs_drain_for(&c) => c,
            _ => {
                self.pending.truncate(before);
                return 0;
            }
        };
        self.enqueue(&conn, |b| b.extend_from_slice(parser.run_bytes(n)), 0, n);
        parser.skip_run(n);
        if let Some(st) = self.remote.as_mut() {
            st.outstanding += n;
            if st.inflight.as_ref().map(|c| c.id) != Some(conn.id) {
                st.inflight = Some(conn);
            }
        }
        self.count_lane(last.name, started, n);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str) -> &'static CommandSpec {
        table::lookup(name.as_bytes()).unwrap_or_else(|| panic!("{name} is in the table"))
    }

    #[test]
    fn the_benchmarked_commands_ride_the_lane() {
        for name in [
            "get", "set", "incr", "lpush", "mset", "mget", "del", "expire", "hset", "eval",
            "evalsha", "publish",
        ] {
            assert!(rides_lane(spec(name)), "{name}");
        }
    }

    #[test]
    fn commands_the_full_path_treats_apart_do_not() {
        for name in [
            "blpop",
            "xread",
            "wait",
            "select",
            "multi",
            "exec",
            "watch",
            "subscribe",
            "info",
            "ping",
            "client",
            "script",
            "function",
            "auth",
            "hello",
            "shutdown",
            "sync",
        ] {
            assert!(!rides_lane(spec(name)), "{name}");
        }
        for spec in table::all() {
            if !rides_lane(spec) {
                continue;
            }
            let argv = [bytes::Bytes::from_static(spec.name.as_bytes())];
            assert!(
                super::super::forward::unsupported(spec.name, &argv).is_none(),
                "{}",
                spec.name
            );
            assert!(
                !super::super::forward::stays_local(spec.name, &argv),
                "{}",
                spec.name
            );
            assert!(
                crate::command::pubsub::kind_of(spec.name.as_bytes()).is_none(),
                "{}",
                spec.name
            );
            // Blocking commands have a deadline of their own.
            let zero = bytes::Bytes::from_static(b"0");
            let argv = [argv[0].clone(), zero.clone(), zero.clone(), zero];
            assert!(
                super::super::forward::blocking_wait(spec, &argv).is_none(),
                "{}",
                spec.name
            );
        }
    }
}
