//! Unit tests of namespace rewriting: every key position of a command gets the prefix,
//! patterns and channels stay confined to the tenant, whole-keyspace commands, reply shapes.

use super::*;
use crate::command::table::lookup;
use crate::glob::glob_match;

fn argv(line: &str) -> Vec<Bytes> {
    line.split(' ')
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

fn plan(ns: &Namespace, line: &str) -> Result<Plan, String> {
    let a = argv(line);
    ns.plan(lookup(&a[0]).unwrap(), &a)
}

/// The rewritten command line, words joined by spaces.
fn rewritten(ns: &Namespace, line: &str) -> String {
    match plan(ns, line) {
        Ok(Plan::Run(a, _)) => a
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect::<Vec<_>>()
            .join(" "),
        other => panic!("{line}: {other:?}"),
    }
}

fn shape(ns: &Namespace, line: &str) -> Shape {
    match plan(ns, line) {
        Ok(Plan::Run(_, s)) => s,
        other => panic!("{line}: {other:?}"),
    }
}

fn ns() -> Namespace {
    Namespace::new(b"a:")
}

#[test]
fn plain_keys_get_the_prefix() {
    let ns = ns();
    assert_eq!(rewritten(&ns, "GET k"), "GET a:k");
    assert_eq!(rewritten(&ns, "SET k v EX 10"), "SET a:k v EX 10");
    assert_eq!(rewritten(&ns, "MSET x 1 y 2"), "MSET a:x 1 a:y 2");
    assert_eq!(rewritten(&ns, "DEL a:k b:k"), "DEL a:a:k a:b:k");
    assert_eq!(rewritten(&ns, "RENAME s d"), "RENAME a:s a:d");
    assert_eq!(rewritten(&ns, "COPY s d DB 1"), "COPY a:s a:d DB 1");
    assert_eq!(rewritten(&ns, "OBJECT ENCODING k"), "OBJECT ENCODING a:k");
    assert_eq!(rewritten(&ns, "MEMORY USAGE k"), "MEMORY USAGE a:k");
    assert_eq!(rewritten(&ns, "DUMP k"), "DUMP a:k");
    assert_eq!(rewritten(&ns, "RESTORE k 0 x"), "RESTORE a:k 0 x");
    assert_eq!(rewritten(&ns, "WATCH k1 k2"), "WATCH a:k1 a:k2");
    assert_eq!(rewritten(&ns, "PING"), "PING");
    assert_eq!(rewritten(&ns, "CLIENT SETNAME x"), "CLIENT SETNAME x");
    assert_eq!(rewritten(&ns, "HSCAN h 0 MATCH f*"), "HSCAN a:h 0 MATCH f*");
}

#[test]
fn numkeys_and_keyword_forms() {
    let ns = ns();
    assert_eq!(rewritten(&ns, "EVAL s 2 k1 k2 x"), "EVAL s 2 a:k1 a:k2 x");
    assert_eq!(rewritten(&ns, "EVALSHA s 1 k x"), "EVALSHA s 1 a:k x");
    assert_eq!(rewritten(&ns, "FCALL f 1 k x"), "FCALL f 1 a:k x");
    assert_eq!(
        rewritten(&ns, "ZUNIONSTORE d 2 x y WEIGHTS 1 2"),
        "ZUNIONSTORE a:d 2 a:x a:y WEIGHTS 1 2"
    );
    assert_eq!(rewritten(&ns, "LMPOP 2 x y LEFT"), "LMPOP 2 a:x a:y LEFT");
    assert_eq!(rewritten(&ns, "BLMPOP 0 1 x LEFT"), "BLMPOP 0 1 a:x LEFT");
    assert_eq!(rewritten(&ns, "SINTERCARD 2 x y"), "SINTERCARD 2 a:x a:y");
    assert_eq!(
        rewritten(&ns, "XREAD COUNT 1 STREAMS s t 0 0"),
        "XREAD COUNT 1 STREAMS a:s a:t 0 0"
    );
    assert_eq!(
        rewritten(&ns, "XREADGROUP GROUP g c STREAMS s >"),
        "XREADGROUP GROUP g c STREAMS a:s >"
    );
    assert_eq!(
        rewritten(&ns, "GEORADIUS g 0 0 1 km STORE d"),
        "GEORADIUS a:g 0 0 1 km STORE a:d"
    );
    assert_eq!(
        rewritten(&ns, "GEOSEARCHSTORE d s FROMLONLAT 0 0 BYRADIUS 1 km"),
        "GEOSEARCHSTORE a:d a:s FROMLONLAT 0 0 BYRADIUS 1 km"
    );
    // A numkeys that does not fit: the command answers its own error, nothing prefixed.
    assert_eq!(rewritten(&ns, "ZUNIONSTORE d 5 x"), "ZUNIONSTORE d 5 x");
}

#[test]
fn sort_patterns_are_prefixed_or_denied() {
    let ns = ns();
    assert_eq!(
        rewritten(&ns, "SORT l BY w_* GET # GET h_*->f STORE d"),
        "SORT a:l BY a:w_* GET # GET a:h_*->f STORE a:d"
    );
    // No `*`, no key named: BY skips sorting, GET answers nil; nothing to prefix.
    assert_eq!(rewritten(&ns, "SORT l BY nosort"), "SORT a:l BY nosort");
    assert_eq!(rewritten(&ns, "SORT l GET fixed"), "SORT a:l GET fixed");
    assert_eq!(rewritten(&ns, "SORT_RO l GET x_*"), "SORT_RO a:l GET a:x_*");
    let star = Namespace::new(b"a*:");
    assert!(plan(&star, "SORT l BY w_*").is_err());
    assert_eq!(rewritten(&star, "SORT l LIMIT 0 1"), "SORT a*:l LIMIT 0 1");
    assert_eq!(
        rewritten(&star, "SORT l BY nosort GET #"),
        "SORT a*:l BY nosort GET #"
    );
}

#[test]
fn keys_and_scan_patterns_are_confined() {
    let ns = ns();
    assert_eq!(rewritten(&ns, "KEYS *"), "KEYS a:*");
    assert_eq!(shape(&ns, "KEYS *"), Shape::Keys);
    assert_eq!(rewritten(&ns, "SCAN 0"), "SCAN 0 MATCH a:*");
    assert_eq!(
        rewritten(&ns, "SCAN 0 COUNT 10 MATCH u* TYPE string"),
        "SCAN 0 COUNT 10 MATCH a:u* TYPE string"
    );
    assert_eq!(shape(&ns, "SCAN 0"), Shape::Scan);
    // Glob metacharacters in a prefix are literals.
    let wild = Namespace::new(b"t*[x]?\\:");
    assert_eq!(wild.glob_prefix().as_ref(), b"t\\*\\[x\\]\\?\\\\:");
    let p = wild.pattern(b"*");
    assert!(glob_match(&p, b"t*[x]?\\:k", false));
    for other in [
        &b"tZ[x]?\\:k"[..],
        b"t*x?\\:k",
        b"t*[x]Q\\:k",
        b"t*[x]?:k",
        b"u:k",
    ] {
        assert!(
            !glob_match(&p, other, false),
            "{:?}",
            String::from_utf8_lossy(other)
        );
    }
}

#[test]
fn whole_keyspace_commands() {
    let ns = ns();
    assert_eq!(plan(&ns, "DBSIZE"), Ok(Plan::Wide(Wide::DbSize)));
    assert_eq!(plan(&ns, "FLUSHDB"), Ok(Plan::Wide(Wide::FlushDb)));
    assert_eq!(plan(&ns, "FLUSHALL ASYNC"), Ok(Plan::Wide(Wide::FlushAll)));
    assert_eq!(plan(&ns, "RANDOMKEY"), Ok(Plan::Wide(Wide::RandomKey)));
    assert_eq!(plan(&ns, "FLUSHDB x"), Err("ERR syntax error".into()));
    assert!(plan(&ns, "SWAPDB 0 1").is_err());
}

#[test]
fn channels_and_patterns() {
    let ns = ns();
    assert_eq!(rewritten(&ns, "SUBSCRIBE c d"), "SUBSCRIBE a:c a:d");
    assert_eq!(rewritten(&ns, "SSUBSCRIBE c"), "SSUBSCRIBE a:c");
    assert_eq!(rewritten(&ns, "UNSUBSCRIBE c"), "UNSUBSCRIBE a:c");
    assert_eq!(rewritten(&ns, "PSUBSCRIBE n*"), "PSUBSCRIBE a:n*");
    assert_eq!(rewritten(&ns, "PUBLISH c m"), "PUBLISH a:c m");
    assert_eq!(rewritten(&ns, "SPUBLISH c m"), "SPUBLISH a:c m");
    assert_eq!(rewritten(&ns, "PUBSUB CHANNELS"), "PUBSUB CHANNELS a:*");
    assert_eq!(rewritten(&ns, "PUBSUB CHANNELS x*"), "PUBSUB CHANNELS a:x*");
    assert_eq!(rewritten(&ns, "PUBSUB NUMSUB c d"), "PUBSUB NUMSUB a:c a:d");
    assert_eq!(rewritten(&ns, "PUBSUB NUMPAT"), "PUBSUB NUMPAT");
    // Keyspace notifications: the prefix goes in front of the key inside the channel.
    assert_eq!(
        rewritten(&ns, "SUBSCRIBE __keyspace@0__:k"),
        "SUBSCRIBE __keyspace@0__:a:k"
    );
    assert_eq!(
        rewritten(&ns, "PSUBSCRIBE __keyspace@*__:*"),
        "PSUBSCRIBE __keyspace@*__:a:*"
    );
    assert_eq!(
        rewritten(&ns, "SUBSCRIBE __keyevent@0__:del"),
        "SUBSCRIBE __keyevent@0__:del"
    );
    assert_eq!(
        rewritten(&ns, "PUBLISH __keyevent@0__:del k"),
        "PUBLISH __keyevent@0__:del a:k"
    );
    assert_eq!(
        ns.unchannel(b"__keyspace@0__:a:k").as_deref(),
        Some(&b"__keyspace@0__:k"[..])
    );
    assert_eq!(ns.unchannel(b"__keyspace@0__:b:k"), None);
    assert_eq!(ns.unchannel(b"b:c"), None);
    assert_eq!(
        ns.unchannel_pattern(b"__keyspace@*__:a:*").as_deref(),
        Some(&b"__keyspace@*__:*"[..])
    );
    assert_eq!(ns.unchannel_pattern(b"a:n*").as_deref(), Some(&b"n*"[..]));
    assert_eq!(ns.unchannel_pattern(b"b:n*"), None);
}

#[test]
fn reply_shapes() {
    let ns = ns();
    assert_eq!(shape(&ns, "BLPOP x y 0"), Shape::FirstKey);
    assert_eq!(shape(&ns, "BZMPOP 0 1 z MIN"), Shape::FirstKey);
    assert_eq!(shape(&ns, "LMPOP 1 l LEFT"), Shape::FirstKey);
    assert_eq!(shape(&ns, "XREAD STREAMS s 0"), Shape::Streams);
    assert_eq!(shape(&ns, "PUBSUB SHARDCHANNELS"), Shape::Channels);
    assert_eq!(shape(&ns, "PUBSUB SHARDNUMSUB c"), Shape::NumSub);
    assert_eq!(shape(&ns, "GET k"), Shape::Plain);
}

/// Every command without key arguments must be one the namespace rewrites itself (KEYS,
/// SCAN, pub/sub ...), one the default deny list refuses, or one known to reach no tenant
/// data. A command added to the table later that fits none of these fails here, instead of
/// silently seeing every tenant's keys.
#[test]
fn every_keyless_command_is_accounted_for() {
    const HANDLED: &[&str] = &[
        "keys",
        "scan",
        "randomkey",
        "dbsize",
        "flushdb",
        "flushall",
        "swapdb",
        "publish",
        "spublish",
        "subscribe",
        "ssubscribe",
        "psubscribe",
        "unsubscribe",
        "sunsubscribe",
        "punsubscribe",
        "pubsub|channels",
        "pubsub|numsub",
        "pubsub|shardchannels",
        "pubsub|shardnumsub",
        // Prefixes and invalidations are namespaced by command::tracking / forward_tracking.
        "client|tracking",
    ];
    // Connection state, introspection of the command table or of the tenant's own
    // connections, and counters without names.
    const HARMLESS: &[&str] = &[
        "acl|cat",
        "acl|genpass",
        "acl|help",
        "acl|whoami",
        "asking",
        "auth",
        "client|caching",
        "client|getname",
        "client|getredir",
        "client|help",
        "client|id",
        "client|info",
        "client|list",
        "client|no-evict",
        "client|reply",
        "client|setinfo",
        "client|setname",
        "client|trackinginfo",
        "client|unblock",
        "cluster|help",
        "cluster|info",
        "cluster|keyslot",
        "cluster|myid",
        "cluster|nodes",
        "cluster|replicas",
        "cluster|shards",
        "cluster|slaves",
        "cluster|slots",
        "cluster|links",
        "command|count",
        "command|docs",
        "command|getkeys",
        "command|getkeysandflags",
        "command|help",
        "command|info",
        "command|list",
        "config|help",
        "discard",
        "echo",
        "exec",
        "function|dump",
        "function|help",
        "function|kill",
        "function|list",
        "function|stats",
        "hello",
        "info",
        "lastsave",
        "latency|help",
        "lolwut",
        "memory|doctor",
        "memory|help",
        "memory|malloc-stats",
        "memory|purge",
        "memory|stats",
        "module|help",
        "multi",
        "object|help",
        "pfselftest",
        "ping",
        "pubsub|help",
        "pubsub|numpat",
        "quit",
        "readonly",
        "readwrite",
        "reset",
        "role",
        "script|debug",
        "script|exists",
        "script|help",
        "script|kill",
        "script|load",
        "select",
        "slowlog|help",
        "time",
        "unwatch",
        "wait",
        "xgroup|help",
        "xinfo|help",
    ];
    let deny = super::super::acl::DEFAULT_DENY;
    let mut unaccounted = Vec::new();
    for c in crate::command::table::all() {
        let specs: Vec<&CommandSpec> = if c.subcommands.is_empty() {
            vec![c]
        } else {
            c.subcommands.iter().collect()
        };
        for s in specs {
            let container = s.name.split('|').next().unwrap_or(s.name);
            let denied = deny.contains(&s.name) || deny.contains(&container);
            if !keys::has_keys(s)
                && !HANDLED.contains(&s.name)
                && !HARMLESS.contains(&s.name)
                && !denied
            {
                unaccounted.push(s.name);
            }
        }
    }
    assert!(
        unaccounted.is_empty(),
        "keyless commands nobody decided on: {unaccounted:?}"
    );
}

/// The shortcut for one-key-at-argument-1 commands plans exactly what the walk by name and
/// key specs plans, for every such command of the table and argument counts 2 to 6 that
/// its arity allows.
#[test]
fn the_argument_1_shortcut_plans_what_the_key_specs_plan() {
    let ns = ns();
    let mut checked = 0;
    for cmd in crate::command::table::all() {
        if !prefixes_argument_1_only(cmd) {
            continue;
        }
        for argc in 2..=6 {
            if !cmd.arity_ok(argc) {
                continue;
            }
            let mut a = vec![
                Bytes::from_static(cmd.name.as_bytes()),
                Bytes::from_static(b"k"),
            ];
            a.extend((2..argc).map(|i| Bytes::from(format!("{i}"))));
            assert_eq!(ns.plan(cmd, &a), ns.plan_by_name(cmd, &a), "{}", cmd.name);
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} command lines checked");
    // GET takes it; SORT (patterns) and MSET (several keys) do not.
    assert!(prefixes_argument_1_only(lookup(b"get").unwrap()));
    assert!(!prefixes_argument_1_only(lookup(b"sort").unwrap()));
    assert!(!prefixes_argument_1_only(lookup(b"mset").unwrap()));
}
