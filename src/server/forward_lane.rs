//! Forwarding's fast lane: a plain client's run of ordinary commands (GET, SET, INCR ...)
//! goes to its backend connection as the bytes it sent, one reply slot each, without the
//! per-command steps of [`Session::handle`] that cannot apply to it.
//!
//! "Plain" is a client with none of the things that make forwarding more than passing bytes
//! on: no tenant (namespace, TTL rules, ACL), no transaction, tracking, subscription or
//! CLIENT REPLY mode, no MONITOR watching, and a backend with no replica reads. "Ordinary"
//! is a data command, a script call or PUBLISH, which [`Session::forward`] sends on
//! unchanged for such a client. Anything else, and any command the lane is unsure of, takes
//! the full path, which answers exactly as before: the lane only ever skips work whose
//! outcome it knows. Replies are counted, timed and handed on by the connection's drain
//! like every forwarded reply.
//!
//! In cluster mode the lane takes commands with exactly one key, at argument 1 (GET, SET,
//! INCR, LPUSH, HSET ...: [`only_key_is_argument_1`]), as long as their keys' slots are
//! served by one master: the run stops where the node changes (the full path then drains first, as it always does when a
//! client moves to another connection). Each keeps its bytes to be resent after MOVED/ASK,
//! as the full path's commands keep their arguments.

use std::sync::OnceLock;

use super::forward::Slot;
use super::session::Session;
use crate::backend::remote::cluster::router::{ReadFrom, Resend, Sent};
use crate::backend::remote::cluster::slots::key_slot;
use crate::command::CommandSpec;
use crate::command::keys::only_key_is_argument_1;
use crate::command::table;
use crate::protocol::RequestParser;

/// Data commands that [`Session::forward`] does not simply send on for a plain client, and
/// that neither the command table's `blocking` flag, the pub/sub kinds nor
/// `forward::stays_local` already name: WAIT/WAITAOF block on a connection of their own (with
/// a PUBLISH first), WATCH pins the client's connection, INFO may be respgate's own, PING
/// answers differently to a subscriber.
const FULL_PATH: &[&str] = &["wait", "waitaof", "watch", "info", "ping"];

/// Where a command may take the lane.
#[derive(Clone, Copy, Default)]
struct LaneFit {
    /// Standalone and Sentinel.
    anywhere: bool,
    /// Cluster mode too: its slot is its argument 1's.
    in_cluster: bool,
}

/// Where `spec` may take the lane (worked out once per command of the table).
fn lane_fit(spec: &'static CommandSpec) -> LaneFit {
    static BY_ORDINAL: OnceLock<Vec<LaneFit>> = OnceLock::new();
    table::per_command(&BY_ORDINAL, spec, |spec| {
        let anywhere = ordinary(spec);
        LaneFit {
            anywhere,
            in_cluster: anywhere && only_key_is_argument_1(spec),
        }
    })
    .unwrap_or_default()
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
        remote
            .cluster
            .as_ref()
            .is_none_or(|c| c.read_from == ReadFrom::Master)
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
        let cluster = self.remote_target().cluster.clone();
        // Cluster mode: the slot map as the run starts (read once, not per command), the
        // master the run goes to (its number and address), and the backend user a resend
        // logs in as.
        let topology = cluster.as_ref().map(|c| c.topology());
        let mut node: Option<(usize, std::sync::Arc<str>)> = None;
        let user = if cluster.is_some() {
            self.backend_user()
        } else {
            None
        };
        let mut last = None;
        let mut n = 0;
        while n < max {
            let Some((name, argc)) = parser.run_command(n) else {
                break;
            };
            let Some(spec) = self.lookup_command(name) else {
                break;
            };
            let fit = lane_fit(spec);
            let rides = if topology.is_some() {
                fit.in_cluster
            } else {
                fit.anywhere
            };
            // A wrong number of arguments is answered by the full path, as Redis words it.
            if !rides || !spec.arity_ok(argc) {
                break;
            }
            let resend = match &topology {
                None => None,
                Some(topology) => {
                    let (Some(key), Some(frame)) = (parser.run_arg(n, 1), parser.run_frame(n))
                    else {
                        break;
                    };
                    let slot = key_slot(key);
                    // An unserved slot is the full path's to answer (CLUSTERDOWN).
                    let Some(master) = topology.master_for(slot) else {
                        break;
                    };
                    let addr = match &node {
                        Some((first, _)) if *first != master => break,
                        Some((_, addr)) => addr.clone(),
                        None => {
                            let addr: std::sync::Arc<str> = topology.address(master).into();
                            node = Some((master, addr.clone()));
                            addr
                        }
                    };
                    Some(Box::new(Resend {
                        slot: Some(slot),
                        sent: Sent::Raw(frame),
                        node: addr,
                        user: user.clone(),
                    }))
                }
            };
            self.pending.push_back(Slot::Remote {
                deadline,
                resend,
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
        let conn = match (&cluster, &node) {
            (Some(cluster), Some((_, addr))) => self.cluster_conn(cluster, addr, false),
            _ => self.conn(false),
        };
        let conn = match conn {
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

    /// Whether `spec` may take the lane outside cluster mode.
    fn rides_lane(spec: &'static CommandSpec) -> bool {
        lane_fit(spec).anywhere
    }

    /// ... and in cluster mode.
    fn rides_cluster_lane(spec: &'static CommandSpec) -> bool {
        lane_fit(spec).in_cluster
    }

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

    /// Cluster mode: where the lane takes a command, the slot it routes by (argument 1's)
    /// is the one the full path works out from the command table's key positions.
    #[test]
    fn the_cluster_lane_routes_by_the_slot_the_full_path_finds() {
        use crate::backend::remote::cluster::slots::command_slot;
        let mut taken = 0;
        for spec in table::all() {
            if !rides_cluster_lane(spec) {
                continue;
            }
            taken += 1;
            // Other arguments named like keys of other slots: never routed by.
            for argv in crate::command::keys::sample_argvs(spec, b"{user1}:k") {
                assert_eq!(
                    command_slot(spec, &argv),
                    Ok(Some(key_slot(b"user1"))),
                    "{} with {} arguments",
                    spec.name,
                    argv.len()
                );
            }
        }
        assert!(taken > 50, "only {taken} commands take the cluster lane");
        for name in crate::command::keys::ONE_KEY_AT_1 {
            assert!(rides_cluster_lane(spec(name)), "{name}");
        }
        for name in crate::command::keys::NOT_ONE_KEY_AT_1 {
            // Several keys, keys elsewhere, or none: the full path routes (or splits) them.
            assert!(!rides_cluster_lane(spec(name)), "{name}");
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
