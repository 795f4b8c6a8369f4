//! Hash slots as Redis Cluster computes them: CRC16 (XMODEM) of the key, or of its hash tag,
//! modulo 16384; and the one slot a whole command addresses, found from the command table's
//! key positions (never from "the first argument", which is wrong for EVAL, XREAD, ...).
//!
//! Everything here is pure: routing, the multi-key split and the tests all share it.

use bytes::Bytes;

use crate::command::CommandSpec;
use crate::command::keys::{key_positions, resolve};

/// Number of hash slots in a Redis Cluster.
pub const SLOTS: u16 = 16384;

/// The keys of one command hash to more than one slot. The text is Redis's, word for word
/// (clients match the first word), without the leading `-`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("CROSSSLOT Keys in request don't hash to the same slot")]
pub struct CrossSlot;

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0, no reflection), the checksum
/// Redis's `crc16.c` implements. Table-driven: this runs once per key on the hot path.
pub fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from(((crc >> 8) as u8) ^ b)]
    })
}

const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// The part of `key` that is hashed, as Redis's `keyHashSlot` picks it: the bytes between
/// the first `{` and the first `}` after it, if that is not empty; otherwise the whole key.
/// (`{}x{a}` hashes the whole key: the first tag is empty, and Redis does not look further.)
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(0) | None => key,
        Some(close) => &rest[..close],
    }
}

/// The slot of one key (`CLUSTER KEYSLOT`).
pub fn key_slot(key: &[u8]) -> u16 {
    // 16384 is a power of two: Redis masks with 0x3FFF.
    crc16(hash_tag(key)) & (SLOTS - 1)
}

/// The common slot of `keys`: None when there are none, CROSSSLOT when they disagree.
pub fn keys_slot<'a>(keys: impl IntoIterator<Item = &'a [u8]>) -> Result<Option<u16>, CrossSlot> {
    let mut slot = None;
    for key in keys {
        let s = key_slot(key);
        match slot {
            None => slot = Some(s),
            Some(prev) if prev != s => return Err(CrossSlot),
            Some(_) => {}
        }
    }
    Ok(slot)
}

/// Commands whose channel arguments are routed like keys: sharded pub/sub lives on the node
/// that owns the channel's slot. The command table marks their channels `not_key` (they are
/// not keys for ACLs or namespacing), so they are named here.
fn shard_channels(name: &str, argv: &[Bytes]) -> Option<std::ops::Range<usize>> {
    match name {
        "spublish" => Some(1..argv.len().min(2)),
        "ssubscribe" | "sunsubscribe" => Some(1..argv.len()),
        _ => None,
    }
}

/// The slot a command must be sent to: `Ok(None)` for a command without keys (any node
/// answers it), `Err(CrossSlot)` when its keys span slots.
///
/// Keys are found exactly as Redis's `COMMAND GETKEYS` finds them (the same logic a cluster
/// node uses to route). A command whose keys cannot be found because it is malformed (wrong
/// arity, bad numkeys, unknown subcommand) is keyless here: any node then answers with the
/// command's own error, as the node a cluster client picked would.
pub fn command_slot(spec: &CommandSpec, argv: &[Bytes]) -> Result<Option<u16>, CrossSlot> {
    let resolved = resolve(spec, argv).unwrap_or(spec);
    if let Some(range) = shard_channels(resolved.name, argv) {
        return keys_slot(argv.get(range).unwrap_or_default().iter().map(|a| &a[..]));
    }
    match key_positions(spec, argv) {
        Ok(positions) => keys_slot(
            positions
                .into_iter()
                .filter_map(|p| argv.get(p))
                .map(|a| &a[..]),
        ),
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::table::lookup;

    fn slot_of(line: &str) -> Result<Option<u16>, CrossSlot> {
        let argv: Vec<Bytes> = line
            .split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let Some(spec) = lookup(&argv[0]) else {
            panic!("{line}: unknown command")
        };
        command_slot(spec, &argv)
    }

    #[test]
    fn crc16_is_xmodem() {
        // The check value of CRC-16/XMODEM, and the one Redis's crc16.c documents.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn key_slots_match_redis() {
        // Values from CLUSTER KEYSLOT on redis-server 7.0.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"hello"), 866);
        assert_eq!(key_slot(b""), 0);
        assert_eq!(key_slot(b"user1000"), 3443);
    }

    #[test]
    fn hash_tags_as_redis_reads_them() {
        assert_eq!(hash_tag(b"{user1000}.following"), b"user1000");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        // An empty first tag hashes the whole key, even if a later tag is not empty.
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"{}"), b"{}");
        // No closing brace: the whole key.
        assert_eq!(hash_tag(b"foo{bar"), b"foo{bar");
        assert_eq!(hash_tag(b"}foo{bar}"), b"bar");
        assert_eq!(hash_tag(b"nobraces"), b"nobraces");
        assert_eq!(
            key_slot(b"{user1000}.following"),
            key_slot(b"{user1000}.followers")
        );
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        // Binary keys are fine.
        assert_eq!(key_slot(b"\x00{\xff}"), key_slot(b"\xff"));
    }

    #[test]
    fn single_key_and_keyless_commands() {
        assert_eq!(slot_of("GET foo"), Ok(Some(12182)));
        assert_eq!(slot_of("SET bar 1 EX 10"), Ok(Some(5061)));
        assert_eq!(slot_of("PING"), Ok(None));
        assert_eq!(slot_of("DBSIZE"), Ok(None));
        assert_eq!(slot_of("CONFIG GET maxmemory"), Ok(None));
        assert_eq!(slot_of("OBJECT ENCODING foo"), Ok(Some(12182)));
        // Malformed: no keys can be found, any node gives the command's error.
        assert_eq!(slot_of("GET"), Ok(None));
        assert_eq!(slot_of("OBJECT NOPE foo"), Ok(None));
    }

    #[test]
    fn multi_key_commands() {
        assert_eq!(slot_of("MGET {a}1 {a}2 {a}3"), Ok(Some(key_slot(b"a"))));
        assert_eq!(slot_of("MGET foo bar"), Err(CrossSlot));
        assert_eq!(slot_of("MSET {t}x 1 {t}y 2"), Ok(Some(key_slot(b"t"))));
        // MSET's values are not keys.
        assert_eq!(slot_of("MSET foo bar"), Ok(Some(12182)));
        assert_eq!(slot_of("RENAME foo bar"), Err(CrossSlot));
        assert_eq!(slot_of("SMOVE {s}a {s}b m"), Ok(Some(key_slot(b"s"))));
    }

    #[test]
    fn keys_from_key_specs_not_first_argument() {
        // EVAL's first argument is the script; its keys follow numkeys.
        assert_eq!(slot_of("EVAL s 1 foo"), Ok(Some(12182)));
        assert_eq!(slot_of("EVAL s 0 foo"), Ok(None));
        assert_eq!(slot_of("EVAL s 2 foo bar"), Err(CrossSlot));
        assert_eq!(slot_of("XREAD COUNT 1 STREAMS foo 0"), Ok(Some(12182)));
        assert_eq!(slot_of("XREAD STREAMS foo bar 0 0"), Err(CrossSlot));
        assert_eq!(
            slot_of("ZUNIONSTORE {z}d 2 {z}a {z}b"),
            Ok(Some(key_slot(b"z")))
        );
        assert_eq!(slot_of("ZUNIONSTORE foo 1 bar"), Err(CrossSlot));
        assert_eq!(slot_of("BLMPOP 0 1 foo LEFT"), Ok(Some(12182)));
        assert_eq!(slot_of("SORT foo BY w STORE bar"), Err(CrossSlot));
    }

    #[test]
    fn sharded_pubsub_routes_by_channel() {
        assert_eq!(slot_of("SPUBLISH foo hi"), Ok(Some(12182)));
        assert_eq!(slot_of("SSUBSCRIBE foo {foo}x"), Ok(Some(12182)));
        assert_eq!(slot_of("SSUBSCRIBE foo bar"), Err(CrossSlot));
        assert_eq!(slot_of("SUNSUBSCRIBE"), Ok(None));
        // Ordinary pub/sub is cluster-wide: no slot.
        assert_eq!(slot_of("PUBLISH foo hi"), Ok(None));
        assert_eq!(slot_of("SUBSCRIBE foo bar"), Ok(None));
    }

    #[test]
    fn crossslot_text_is_redis() {
        assert_eq!(
            CrossSlot.to_string(),
            "CROSSSLOT Keys in request don't hash to the same slot"
        );
    }
}
