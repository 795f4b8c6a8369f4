//! Unit tests of the embedded engine through its command entry point: lazy and active
//! expiry, SCAN and RANDOMKEY under change, TTL arithmetic, RENAME/COPY/MOVE, OBJECT
//! FREQ/IDLETIME, the written-keys shortcut and INCR's in-place rewrite.

use super::*;
use std::collections::HashMap;

fn engine() -> Engine {
    Engine::new(&EmbeddedConfig::default())
}

#[test]
fn keys_expire_lazily_and_actively() {
    let e = engine();
    let now = unix_ms();
    {
        let mut st = e.state.lock();
        st.dbs[0].set(
            b"gone",
            Value::string(Bytes::from_static(b"v")),
            Some(now - 1),
            now,
        );
        st.dbs[0].set(
            b"kept",
            Value::string(Bytes::from_static(b"v")),
            Some(now + 60_000),
            now,
        );
    }
    e.active_expire_cycle();
    e.with_state(|st| {
        assert_eq!(st.dbs[0].len(), 1);
        assert_eq!(st.dbs[0].expires_count(), 1);
    });
    assert_eq!(e.stats.expired_keys.load(Ordering::Relaxed), 1);
}

use value::Value;

// ---------------------------------------------------------------------------------------
// Generic key commands, run through the engine's dispatch like a client would.

use std::collections::HashSet;

use crate::protocol::Protocol;

const DB0: ClientView = ClientView {
    db: 0,
    proto: Protocol::Resp2,
    tracker: None,
};

fn run(e: &Engine, client: ClientView, args: &[&str]) -> Reply {
    let argv: Vec<Bytes> = args
        .iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect();
    let Some(spec) = crate::command::table::lookup(args[0].as_bytes()) else {
        panic!("no such command {}", args[0]);
    };
    e.execute(client, spec, &argv)
}

fn cmd(e: &Engine, args: &[&str]) -> Reply {
    run(e, DB0, args)
}

fn int(r: Reply) -> i64 {
    match r {
        Reply::Integer(i) => i,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn bulk(r: &Reply) -> Bytes {
    match r {
        Reply::Bulk(b) => b.clone(),
        other => panic!("expected a bulk string, got {other:?}"),
    }
}

/// One SCAN call: (next cursor, keys).
fn scan_once(e: &Engine, cursor: u64, count: usize) -> (u64, Vec<Bytes>) {
    let reply = cmd(
        e,
        &["SCAN", &cursor.to_string(), "COUNT", &count.to_string()],
    );
    let Reply::Array(parts) = reply else {
        panic!("SCAN reply {reply:?}")
    };
    let next: u64 = std::str::from_utf8(&bulk(&parts[0]))
        .unwrap()
        .parse()
        .unwrap();
    let Reply::Array(keys) = &parts[1] else {
        panic!("SCAN keys {:?}", parts[1])
    };
    (next, keys.iter().map(bulk).collect())
}

fn put(e: &Engine, db: usize, key: &str, expire_at: Option<u64>) {
    let now = unix_ms();
    e.state.lock().dbs[db].set(
        key.as_bytes(),
        Value::string(Bytes::from_static(b"v")),
        expire_at,
        now,
    );
}

#[test]
fn active_expiry_reclaims_without_access() {
    let e = engine();
    let now = unix_ms();
    for i in 0..2000 {
        put(&e, 0, &format!("dead:{i}"), Some(now - 1));
    }
    for i in 0..10 {
        put(&e, 0, &format!("live:{i}"), Some(now + 600_000));
        put(&e, 0, &format!("plain:{i}"), None);
    }
    put(&e, 3, "dead-elsewhere", Some(now - 1));
    // Each cycle repeats while more than a quarter of a sample was expired, so a few
    // cycles reclaim everything; nobody reads a key meanwhile.
    for _ in 0..50 {
        e.active_expire_cycle();
        if e.with_state(|st| st.dbs[0].len() == 20 && st.dbs[3].is_empty()) {
            break;
        }
    }
    e.with_state(|st| {
        assert_eq!(st.dbs[0].len(), 20);
        assert_eq!(st.dbs[0].expires_count(), 10);
        assert!(st.dbs[3].is_empty());
    });
    assert_eq!(e.stats.expired_keys.load(Ordering::Relaxed), 2001);

    // And with real time passing: a 30 ms TTL set through PEXPIRE.
    assert_eq!(int(cmd(&e, &["PEXPIRE", "live:0", "30"])), 1);
    std::thread::sleep(Duration::from_millis(60));
    for _ in 0..50 {
        e.active_expire_cycle();
        if e.with_state(|st| st.dbs[0].len() == 19) {
            break;
        }
    }
    e.with_state(|st| assert_eq!(st.dbs[0].len(), 19));
}

#[test]
fn scan_returns_every_stable_key_despite_concurrent_changes() {
    let e = engine();
    let stable: HashSet<Bytes> = (0..3000)
        .map(|i| Bytes::from(format!("stable:{i}")))
        .collect();
    for k in &stable {
        put(&e, 0, std::str::from_utf8(k).unwrap(), None);
    }
    let mut churn: Vec<String> = Vec::new();
    let mut next_tmp = 0u64;
    let mut seen: HashMap<Bytes, usize> = HashMap::new();
    let mut cursor = 0u64;
    let mut calls = 0;
    loop {
        let (next, keys) = scan_once(&e, cursor, 7);
        for k in keys {
            *seen.entry(k).or_default() += 1;
        }
        calls += 1;
        assert!(calls < 100_000, "SCAN did not terminate");
        if next == 0 {
            break;
        }
        cursor = next;
        // Between calls: insert 40 keys, delete 25 earlier temporary ones, let some expire.
        let now = unix_ms();
        for _ in 0..40 {
            let k = format!("tmp:{next_tmp}");
            next_tmp += 1;
            let ttl = next_tmp.is_multiple_of(5).then_some(now - 1);
            put(&e, 0, &k, ttl);
            churn.push(k);
        }
        for _ in 0..25 {
            if churn.is_empty() {
                break;
            }
            let victim = churn.swap_remove((next_tmp as usize * 7919) % churn.len());
            cmd(&e, &["DEL", &victim]);
        }
    }
    for k in &stable {
        assert_eq!(
            seen.get(k),
            Some(&1),
            "stable key {k:?} returned {:?} times",
            seen.get(k)
        );
    }
    // Nothing is ever returned twice, temporary keys included.
    assert!(seen.values().all(|&n| n == 1));
    assert!(calls > 3000 / 7 / 2, "COUNT is respected ({calls} calls)");
}

#[test]
fn scan_cursor_parsing_matches_strtoul() {
    use super::keyspace_cmds::parse_cursor;
    assert_eq!(parse_cursor(b"0"), Some(0));
    assert_eq!(parse_cursor(b""), Some(0));
    assert_eq!(parse_cursor(b"+7"), Some(7));
    assert_eq!(parse_cursor(b"007"), Some(7));
    assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
    assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(parse_cursor(b"18446744073709551616"), None);
    assert_eq!(parse_cursor(b" 1"), None);
    assert_eq!(parse_cursor(b"1 "), None);
    assert_eq!(parse_cursor(b"-"), None);
    assert_eq!(parse_cursor(b"0x10"), None);
    assert_eq!(parse_cursor(b"5\0junk"), Some(5));
    assert_eq!(
        cmd(&engine(), &["SCAN", "abc"]),
        Reply::err("ERR invalid cursor")
    );
}

#[test]
fn randomkey_terminates_on_an_all_expired_db() {
    let e = engine();
    let now = unix_ms();
    for i in 0..20_000 {
        put(&e, 0, &format!("k{i}"), Some(now - 1));
    }
    let started = std::time::Instant::now();
    assert_eq!(cmd(&e, &["RANDOMKEY"]), Reply::Null);
    assert!(started.elapsed() < Duration::from_secs(5));
    // With one live key among expired ones, that key is found.
    put(&e, 0, "alive", None);
    assert_eq!(
        cmd(&e, &["RANDOMKEY"]),
        Reply::bulk(Bytes::from_static(b"alive"))
    );
    // An empty db answers null at once.
    assert_eq!(cmd(&e, &["FLUSHALL"]), Reply::ok());
    assert_eq!(cmd(&e, &["RANDOMKEY"]), Reply::Null);
}

#[test]
fn expire_times_never_overflow() {
    let e = engine();
    put(&e, 0, "k", None);
    let invalid = |name: &str| Reply::err(format!("ERR invalid expire time in '{name}' command"));
    assert_eq!(
        cmd(&e, &["EXPIRE", "k", "9223372036854775"]),
        invalid("expire")
    );
    assert_eq!(
        cmd(&e, &["EXPIRE", "k", "-9223372036854776"]),
        invalid("expire")
    );
    assert_eq!(
        cmd(&e, &["PEXPIRE", "k", "9223372036854775807"]),
        invalid("pexpire")
    );
    assert_eq!(
        cmd(&e, &["EXPIREAT", "k", "9223372036854776"]),
        invalid("expireat")
    );
    assert_eq!(
        int(cmd(&e, &["PEXPIRE", "k", "-9223372036854775808", "xx"])),
        0
    );
    assert_eq!(int(cmd(&e, &["PEXPIREAT", "k", "9223372036854775807"])), 1);
    assert_eq!(int(cmd(&e, &["PEXPIRETIME", "k"])), i64::MAX);
    assert_eq!(int(cmd(&e, &["EXPIRETIME", "k"])), 9_223_372_036_854_776);
    assert!(int(cmd(&e, &["TTL", "k"])) > 0);
    assert_eq!(int(cmd(&e, &["EXPIRE", "k", "10", "gt"])), 0);
    assert_eq!(int(cmd(&e, &["EXPIRE", "k", "10", "lt"])), 1);
    assert_eq!(int(cmd(&e, &["TTL", "k"])), 10);
    // A time in the past deletes.
    assert_eq!(int(cmd(&e, &["PEXPIRE", "k", "-9223372036854775808"])), 1);
    assert_eq!(int(cmd(&e, &["EXISTS", "k"])), 0);
}

#[test]
fn rename_copy_move_carry_ttls_and_copy_keys() {
    let e = engine();
    // Arguments are slices of one big buffer, like a client's read buffer.
    let buf = Bytes::from_static(b"SET src v RENAME dst COPY cp MOVE");
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let arg = |from: usize, to: usize| buf.slice(from..to);
    let rename = e.execute(
        DB0,
        crate::command::table::lookup(b"rename").unwrap(),
        &[arg(10, 16), arg(4, 7), arg(17, 20)],
    );
    assert_eq!(rename, Reply::err(crate::protocol::errors::NO_SUCH_KEY));
    put(&e, 0, "src", None);
    assert_eq!(int(cmd(&e, &["EXPIRE", "src", "100"])), 1);
    let rename = e.execute(
        DB0,
        crate::command::table::lookup(b"rename").unwrap(),
        &[arg(10, 16), arg(4, 7), arg(17, 20)],
    );
    assert_eq!(rename, Reply::ok());
    assert_eq!(int(cmd(&e, &["TTL", "dst"])), 100);
    assert_eq!(int(cmd(&e, &["TTL", "src"])), -2);
    let copied = e.execute(
        DB0,
        crate::command::table::lookup(b"copy").unwrap(),
        &[arg(21, 25), arg(17, 20), arg(26, 28)],
    );
    assert_eq!(int(copied), 1);
    assert_eq!(int(cmd(&e, &["TTL", "cp"])), 100);
    e.with_state(|st| {
        st.dbs[0].for_each_live(0, |key, _| {
            let p = key.as_ptr() as usize;
            assert!(!range.contains(&p), "key {:?} pins the request buffer", key);
        })
    });

    assert_eq!(int(cmd(&e, &["COPY", "dst", "other", "DB", "5"])), 1);
    let db5 = ClientView { db: 5, ..DB0 };
    assert_eq!(int(run(&e, db5, &["TTL", "other"])), 100);
    assert_eq!(int(cmd(&e, &["MOVE", "dst", "5"])), 1);
    assert_eq!(int(run(&e, db5, &["TTL", "dst"])), 100);
    assert_eq!(int(cmd(&e, &["EXISTS", "dst"])), 0);
    // MOVE refuses when the key exists in the target db.
    put(&e, 0, "dst", None);
    assert_eq!(int(cmd(&e, &["MOVE", "dst", "5"])), 0);
    assert_eq!(
        cmd(&e, &["MOVE", "dst", "0"]),
        Reply::err("ERR source and destination objects are the same")
    );
    // RENAME over a key with a TTL drops the destination's TTL.
    assert_eq!(int(cmd(&e, &["EXPIRE", "cp", "50"])), 1);
    assert_eq!(cmd(&e, &["RENAME", "dst", "cp"]), Reply::ok());
    assert_eq!(int(cmd(&e, &["TTL", "cp"])), -1);
}

#[test]
fn object_freq_and_idletime_follow_the_policy() {
    let e = engine();
    put(&e, 0, "k", None);
    assert!(cmd(&e, &["OBJECT", "FREQ", "k"]).is_error());
    assert_eq!(int(cmd(&e, &["OBJECT", "IDLETIME", "k"])), 0);
    e.set_maxmemory_policy("allkeys-lfu");
    assert_eq!(int(cmd(&e, &["OBJECT", "FREQ", "k"])), 5);
    assert!(cmd(&e, &["OBJECT", "IDLETIME", "k"]).is_error());
    assert_eq!(cmd(&e, &["OBJECT", "FREQ", "nokey"]), Reply::Null);
}

/// The one-key shortcut of `written_keys` names exactly the keys the key-spec walk names,
/// for every command of the table at every arity from its minimum to three more.
#[test]
fn written_keys_shortcut_agrees_with_the_key_specs() {
    for cmd in crate::command::table::all() {
        if !cmd.subcommands.is_empty() {
            continue;
        }
        let min = cmd.arity.unsigned_abs() as usize;
        for n in min..min + 4 {
            if !cmd.arity_ok(n) {
                continue;
            }
            let argv: Vec<Bytes> = std::iter::once(Bytes::from(cmd.name))
                .chain((1..n).map(|i| Bytes::from(format!("a{i}"))))
                .collect();
            assert_eq!(
                super::written_keys(cmd, &argv),
                super::written_keys_by_specs(cmd, &argv),
                "{} with {n} arguments",
                cmd.name
            );
        }
    }
}

#[test]
fn incr_across_digit_counts_and_shared_values() {
    let e = Engine::new(&Default::default());
    let mut want = 7i64;
    assert_eq!(int(cmd(&e, &["INCRBY", "n", "7"])), want);
    // 7 → 12 crosses from one digit to two, -3 back through zero to a sign.
    for (c, by) in [("INCR", 1), ("INCR", 1), ("INCR", 1), ("INCRBY", 2)] {
        want += by;
        let got = if c == "INCR" {
            int(cmd(&e, &["INCR", "n"]))
        } else {
            int(cmd(&e, &["INCRBY", "n", &by.to_string()]))
        };
        assert_eq!(got, want);
        assert_eq!(bulk(&cmd(&e, &["GET", "n"])), want.to_string().as_bytes());
    }
    for _ in 0..15 {
        want -= 1;
        assert_eq!(int(cmd(&e, &["DECR", "n"])), want);
    }
    assert_eq!(bulk(&cmd(&e, &["GET", "n"])), b"-3"[..]);
    // A value someone else also holds (the GET's reply) is never written over.
    let held = bulk(&cmd(&e, &["GET", "n"]));
    assert_eq!(int(cmd(&e, &["INCR", "n"])), -2);
    assert_eq!(held, b"-3"[..]);
    assert_eq!(bulk(&cmd(&e, &["OBJECT", "ENCODING", "n"])), b"int"[..]);
}

/// A write names several keys but changes only some: watchers of the others keep their
/// EXEC (Redis signals only modified keys). Found by tests/random_differential.rs.
#[test]
fn watches_see_only_the_keys_a_write_changed() {
    use super::test_support::{b, run};
    let e = engine();
    run(&e, &["set", "k1", "x"]);
    run(&e, &["rpush", "list", "a", "b"]);
    e.watch(7, 0, &[b("k5")]);
    assert_eq!(run(&e, &["del", "k1", "k5"]), Reply::Integer(1));
    assert_eq!(
        run(&e, &["lmpop", "2", "list", "k5", "RIGHT"]),
        Reply::Array(vec![
            Reply::Bulk(b("list")),
            Reply::Array(vec![Reply::Bulk(b("b"))])
        ])
    );
    assert!(e.batch().exec_allowed(7));
    run(&e, &["set", "k5", "x"]);
    assert!(!e.batch().exec_allowed(7));
}

/// The engine remeasures a command's written keys only when the command handed an entry
/// out to be changed in place; every write here, of every kind, leaves the kept memory
/// count equal to a recount from scratch.
#[test]
fn the_memory_count_stays_exact_across_writes() {
    let e = engine();
    let writes: &[&[&str]] = &[
        &["set", "s", "v"],
        &["set", "s", "a-longer-value-than-before-0123456789"],
        &["append", "s", "-and-more"],
        &["setrange", "s", "40", "xyz"],
        &["set", "n", "9"],
        &["incr", "n"],
        &["incrby", "n", "1000000"],
        &["decr", "n"],
        &["incrbyfloat", "f", "1.5"],
        &["mset", "m1", "a", "m2", "bb", "m3", "ccc"],
        &["msetnx", "m4", "a", "m5", "bb"],
        &["lpush", "l", "a", "b", "c"],
        &["rpush", "l", "a-long-element-0123456789"],
        &["lset", "l", "0", "z"],
        &["lpop", "l"],
        &["linsert", "l", "before", "a", "new"],
        &["hset", "h", "f1", "v1", "f2", "v2"],
        &["hdel", "h", "f1"],
        &["hincrby", "h", "n", "5"],
        &["sadd", "set", "a", "b", "c"],
        &["srem", "set", "b"],
        &["zadd", "z", "1", "a", "2", "b"],
        &["zincrby", "z", "5", "a"],
        &["xadd", "x", "*", "f", "v"],
        &["setbit", "bits", "100", "1"],
        &["pfadd", "hll", "a", "b", "c"],
        &["expire", "s", "100"],
        &["persist", "s"],
        &["getex", "m1", "ex", "50"],
        &["getdel", "m2"],
        &["copy", "l", "l2"],
        &["rename", "l2", "l3"],
        &["sunionstore", "set2", "set"],
        &["sort", "l", "alpha", "store", "sorted"],
        &["del", "m3", "m4"],
        &["unlink", "h"],
        &["set", "s", "v", "keepttl", "get"],
        &["lpush", "s", "wrongtype"],
        &["incr", "s"],
    ];
    for argv in writes {
        cmd(&e, argv);
        e.with_state(|st| {
            for (i, db) in st.dbs.iter().enumerate() {
                assert_eq!(
                    db.used_memory(),
                    db.recounted_memory(),
                    "db {i} after {argv:?}"
                );
            }
        });
    }
}
