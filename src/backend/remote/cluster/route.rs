//! The one routing decision per command in cluster mode, from the command table alone (no
//! topology): which slot it goes to, or that it is split, fanned out, sent anywhere or
//! refused with CROSSSLOT. The forwarding path then maps slots to nodes with
//! [`Topology`](super::topology::Topology).

use bytes::Bytes;

use super::slots::{CrossSlot, command_slot};
use super::split::{FanOut, MultiKey, Split, fan_out, split};
use crate::command::CommandSpec;

/// Where one command goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Routing {
    /// To the master of this slot (or one of its replicas, for a read-only command when
    /// reading from replicas).
    Slot(u16),
    /// A multi-key command whose keys span slots: send each part to its slot's master and
    /// merge with [`split::merge`](super::split::merge).
    Split(Split),
    /// A whole-keyspace command: see [`FanOut`].
    FanOut(FanOut),
    /// No keys: any node answers it the same (PING, ECHO, TIME, a malformed command's
    /// error, ...).
    Any,
    /// Keys of several slots in a command that cannot be split: the client gets
    /// `-CROSSSLOT Keys in request don't hash to the same slot`, as from a cluster node.
    CrossSlot,
}

/// How `argv` (whose top-level command is `spec`) is routed in cluster mode.
pub fn route(spec: &CommandSpec, argv: &[Bytes]) -> Routing {
    if let Some(f) = fan_out(spec, argv) {
        return Routing::FanOut(f);
    }
    if let Some(kind) = MultiKey::of(spec.name)
        && let Some(s) = split(kind, argv)
        && !s.is_single_slot()
    {
        return Routing::Split(s);
    }
    match command_slot(spec, argv) {
        Ok(Some(slot)) => Routing::Slot(slot),
        Ok(None) => Routing::Any,
        Err(CrossSlot) => Routing::CrossSlot,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::remote::cluster::slots::key_slot;
    use crate::backend::remote::cluster::split::Merge;
    use crate::command::table::lookup;

    fn route_of(line: &str) -> Routing {
        let argv: Vec<Bytes> = line
            .split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        match lookup(&argv[0]) {
            Some(spec) => route(spec, &argv),
            None => panic!("{line}: unknown command"),
        }
    }

    #[test]
    fn routes() {
        assert_eq!(route_of("GET foo"), Routing::Slot(12182));
        assert_eq!(route_of("MGET {a}1 {a}2"), Routing::Slot(key_slot(b"a")));
        assert!(matches!(route_of("MGET foo bar"), Routing::Split(s) if s.parts.len() == 2));
        assert!(matches!(route_of("DEL foo bar"), Routing::Split(_)));
        assert!(matches!(route_of("MSET foo 1 bar 2"), Routing::Split(_)));
        // Malformed MSET: any node gives the arity error.
        assert_eq!(route_of("MSET foo"), Routing::Any);
        assert_eq!(route_of("MSETNX foo 1 bar 2"), Routing::CrossSlot);
        assert_eq!(route_of("RENAME foo bar"), Routing::CrossSlot);
        assert_eq!(route_of("SINTERSTORE d foo bar"), Routing::CrossSlot);
        assert_eq!(route_of("EVAL s 2 foo bar"), Routing::CrossSlot);
        assert_eq!(route_of("EVAL s 0"), Routing::Any);
        assert_eq!(route_of("PING"), Routing::Any);
        assert_eq!(
            route_of("DBSIZE"),
            Routing::FanOut(FanOut::AllMasters(Merge::SumIntegers))
        );
        assert_eq!(route_of("SCAN 0"), Routing::FanOut(FanOut::Scan));
        assert_eq!(route_of("PUBLISH ch m"), Routing::FanOut(FanOut::AnyNode));
        assert_eq!(route_of("SPUBLISH foo m"), Routing::Slot(12182));
    }
}
