//! Keyspace notifications: `notify-keyspace-events` flags and the events a write produces on
//! `__keyspace@<db>__:<key>` and `__keyevent@<db>__:<event>`.

use bytes::Bytes;

use crate::command::CommandSpec;

pub const KEYSPACE: u32 = 1 << 0; // K
pub const KEYEVENT: u32 = 1 << 1; // E
pub const GENERIC: u32 = 1 << 2; // g
pub const STRING: u32 = 1 << 3; // $
pub const LIST: u32 = 1 << 4; // l
pub const SET: u32 = 1 << 5; // s
pub const HASH: u32 = 1 << 6; // h
pub const ZSET: u32 = 1 << 7; // z
pub const EXPIRED: u32 = 1 << 8; // x
pub const EVICTED: u32 = 1 << 9; // e
pub const STREAM: u32 = 1 << 10; // t
pub const KEY_MISS: u32 = 1 << 11; // m
pub const MODULE: u32 = 1 << 12; // d
pub const NEW: u32 = 1 << 13; // n
/// `A`: every class except m and n.
const ALL: u32 = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE;

/// Parses a flags string as Redis's keyspaceEventsStringToFlags; None for a bad character.
pub fn parse_flags(s: &str) -> Option<u32> {
    let mut flags = 0;
    for c in s.chars() {
        flags |= match c {
            'A' => ALL,
            'g' => GENERIC,
            '$' => STRING,
            'l' => LIST,
            's' => SET,
            'h' => HASH,
            'z' => ZSET,
            'x' => EXPIRED,
            'e' => EVICTED,
            'K' => KEYSPACE,
            'E' => KEYEVENT,
            't' => STREAM,
            'm' => KEY_MISS,
            'd' => MODULE,
            'n' => NEW,
            _ => return None,
        };
    }
    Some(flags)
}

/// Are any events delivered at all (a class and at least one of K/E)?
pub fn active(flags: u32) -> bool {
    flags & (KEYSPACE | KEYEVENT) != 0 && flags & !(KEYSPACE | KEYEVENT) != 0
}

/// The (class, event name) a successful write command emits for its keys, as Redis names
/// them (mostly the command's own name).
pub fn event_of(cmd: &CommandSpec) -> (u32, &'static str) {
    let class = cmd
        .acl_categories
        .iter()
        .find_map(|c| match *c {
            "string" | "bitmap" | "hyperloglog" => Some(STRING),
            "list" => Some(LIST),
            "hash" => Some(HASH),
            "set" => Some(SET),
            "sortedset" | "geo" => Some(ZSET),
            "stream" => Some(STREAM),
            _ => None,
        })
        .unwrap_or(GENERIC);
    let name = match cmd.name {
        "set" | "setex" | "psetex" | "setnx" | "getset" | "mset" | "msetnx" => "set",
        "incr" | "decr" | "incrby" | "decrby" => "incrby",
        "hset" | "hmset" | "hsetnx" => "hset",
        "zincrby" => "zincr",
        "expire" | "pexpire" | "expireat" | "pexpireat" | "getex" => "expire",
        "del" | "unlink" | "getdel" => "del",
        "rename" | "renamenx" => "rename_to",
        "copy" => "copy_to",
        "move" => "move_to",
        "blpop" | "lmpop" | "blmpop" => "lpop",
        "brpop" => "rpop",
        "bzpopmin" => "zpopmin",
        "bzpopmax" => "zpopmax",
        "sort" => "sortstore",
        "georadius" | "georadiusbymember" => "georadiusstore",
        // GEOADD is ZADD underneath, in Redis too.
        "geoadd" => "zadd",
        "bitop" => "set",
        other => other,
    };
    let class = match name {
        "del" | "expire" | "rename_to" | "copy_to" | "move_to" | "persist" => GENERIC,
        // SORT's ACL categories start with @set, but what it stores is a list.
        "sortstore" => LIST,
        _ => class,
    };
    (class, name)
}

/// Commands that move an element between two keys announce a pop or removal on the source
/// and a push or add on the destination, as Redis does, not one event for both; `index` is
/// the key's position among the command's keys (0 = source, 1 = destination).
pub fn per_key_event(name: &str, argv: &[Bytes], index: usize) -> Option<&'static str> {
    let side = |at: usize, left: &'static str, right: &'static str| {
        argv.get(at).map(|w| {
            if w.eq_ignore_ascii_case(b"left") {
                left
            } else {
                right
            }
        })
    };
    match (name, index) {
        ("smove", 0) => Some("srem"),
        ("smove", 1) => Some("sadd"),
        ("rpoplpush" | "brpoplpush", 0) => Some("rpop"),
        ("rpoplpush" | "brpoplpush", 1) => Some("lpush"),
        ("lmove" | "blmove", 0) => side(3, "lpop", "rpop"),
        ("lmove" | "blmove", 1) => side(4, "lpush", "rpush"),
        _ => None,
    }
}

/// List moves announce the push on the destination before the pop on the source (Redis's
/// lmoveGenericCommand pushes, notifies, then notifies the pop and a deletion).
pub fn destination_first(name: &str) -> bool {
    matches!(name, "rpoplpush" | "brpoplpush" | "lmove" | "blmove")
}

/// Commands that replace a destination with a computed result and, when the result is
/// empty, delete it instead: Redis then announces only "del", not the command's event.
pub fn store_deletes_when_empty(name: &str) -> bool {
    matches!(
        name,
        "sort"
            | "sinterstore"
            | "sunionstore"
            | "sdiffstore"
            | "zunionstore"
            | "zinterstore"
            | "zdiffstore"
            | "zrangestore"
            | "georadius"
            | "georadiusbymember"
            | "geosearchstore"
            | "bitop"
    )
}

/// SET with EX/PX/EXAT/PXAT, SETEX and PSETEX also announce "expire" after "set".
pub fn sets_ttl_too(name: &str, argv: &[Bytes]) -> bool {
    match name {
        "setex" | "psetex" => true,
        "set" => argv.iter().skip(3).any(|a| {
            [&b"ex"[..], b"px", b"exat", b"pxat"]
                .iter()
                .any(|o| a.eq_ignore_ascii_case(o))
        }),
        _ => false,
    }
}

/// The messages for one event: (channel, payload) pairs.
pub fn messages(
    flags: u32,
    class: u32,
    event: &str,
    db: usize,
    key: &Bytes,
) -> Vec<(Bytes, Bytes)> {
    let mut out = Vec::new();
    if flags & class == 0 {
        return out;
    }
    if flags & KEYSPACE != 0 {
        let mut ch = format!("__keyspace@{db}__:").into_bytes();
        ch.extend_from_slice(key);
        out.push((Bytes::from(ch), Bytes::copy_from_slice(event.as_bytes())));
    }
    if flags & KEYEVENT != 0 {
        out.push((
            Bytes::from(format!("__keyevent@{db}__:{event}")),
            key.clone(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_like_redis() {
        assert_eq!(parse_flags("KEA"), Some(KEYSPACE | KEYEVENT | ALL));
        assert_eq!(parse_flags(""), Some(0));
        assert_eq!(parse_flags("Kq"), None);
        assert!(!active(parse_flags("K").unwrap_or(0)));
        assert!(active(parse_flags("Ex").unwrap_or(0)));
    }

    #[test]
    fn both_channels_are_produced() {
        let m = messages(
            KEYSPACE | KEYEVENT | GENERIC,
            GENERIC,
            "del",
            3,
            &Bytes::from("k"),
        );
        assert_eq!(
            m,
            vec![
                (Bytes::from("__keyspace@3__:k"), Bytes::from("del")),
                (Bytes::from("__keyevent@3__:del"), Bytes::from("k")),
            ]
        );
    }
}
