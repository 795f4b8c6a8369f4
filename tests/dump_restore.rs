//! DUMP/RESTORE interoperability with a real redis-server 7.0, both ways, for every type and
//! encoding; and reading an RDB file saved by redis-server with `rdb::read_snapshot`.

mod common;

use common::redis_server::RedisServer;
use common::resp::{Conn, Value};
use common::respgate::Respgate;
use respgate::backend::embedded::Tunables;
use respgate::backend::embedded::db::Db;
use respgate::backend::embedded::rdb;

fn run(conn: &mut Conn, args: &[String]) -> Value {
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    conn.cmd(&refs)
}

fn cmd(conn: &mut Conn, line: &[&str]) -> Value {
    let refs: Vec<&[u8]> = line.iter().map(|a| a.as_bytes()).collect();
    conn.cmd(&refs)
}

fn words(prefix: &[&str], items: impl IntoIterator<Item = String>) -> Vec<String> {
    prefix.iter().map(|s| s.to_string()).chain(items).collect()
}

/// Every value shape worth moving: (name, setup command writing key `k`).
fn cases() -> Vec<(&'static str, Vec<String>)> {
    let n = |count: usize, f: fn(usize) -> String| (0..count).map(f).collect::<Vec<_>>();
    vec![
        ("int", words(&["SET", "k", "12345"], [])),
        ("big int", words(&["SET", "k", "-9223372036854775808"], [])),
        ("embstr", words(&["SET", "k", "hello world"], [])),
        (
            "raw",
            words(&["SET", "k"], ["q".repeat(10) + &"z1y2x3".repeat(10)]),
        ),
        ("compressible", words(&["SET", "k"], ["abc".repeat(500)])),
        (
            "small list",
            words(&["RPUSH", "k", "a", "1", "", "-70000"], []),
        ),
        (
            "big list",
            words(&["RPUSH", "k"], n(5000, |i| format!("element-{i}"))),
        ),
        (
            "list of big items",
            words(&["RPUSH", "k"], n(30, |i| format!("{i}").repeat(900))),
        ),
        (
            "intset",
            words(&["SADD", "k", "1", "-5", "70000", "9000000000"], []),
        ),
        (
            "hashtable set",
            words(&["SADD", "k"], n(300, |i| format!("m{i}"))),
        ),
        (
            "big intset->hashtable",
            words(&["SADD", "k"], n(1000, |i| i.to_string())),
        ),
        (
            "listpack zset",
            words(
                &["ZADD", "k", "1.5", "a", "-2", "b", "inf", "c", "0", "d"],
                [],
            ),
        ),
        (
            "skiplist zset",
            words(
                &["ZADD", "k"],
                n(400, |i| format!("{} m{i}", i as f64 / 3.0)),
            )
            .join(" ")
            .split(' ')
            .map(String::from)
            .collect(),
        ),
        (
            "long member zset",
            words(&["ZADD", "k", "1"], ["m".repeat(100)]),
        ),
        (
            "listpack hash",
            words(&["HSET", "k", "f", "v", "n", "42", "e", ""], []),
        ),
        (
            "hashtable hash",
            words(&["HSET", "k"], n(300, |i| format!("f{i} v{i}")))
                .join(" ")
                .split(' ')
                .map(String::from)
                .collect(),
        ),
        (
            "long value hash",
            words(&["HSET", "k", "f"], ["v".repeat(200)]),
        ),
        ("small stream", words(&["XADD", "k", "1-1", "a", "1"], [])),
        (
            "stream with groups",
            words(&["EVAL", STREAM_SCRIPT, "1", "k"], []),
        ),
    ]
}

/// Builds a stream with several nodes, tombstones, a trimmed head, groups with consumers,
/// pending entries (one of them deleted since), NOACK reads and an empty consumer.
const STREAM_SCRIPT: &str = "
    local k = KEYS[1]
    for i = 1, 230 do
        redis.call('XADD', k, i .. '-' .. i, 'f' .. (i % 3), 'v' .. i)
    end
    redis.call('XADD', k, '231-0', 'other', 'x', 'n', '-7')
    redis.call('XTRIM', k, 'MINID', '20-0')
    redis.call('XGROUP', 'CREATE', k, 'g', '0')
    redis.call('XGROUP', 'CREATE', k, 'late', '$', 'ENTRIESREAD', '5')
    redis.call('XREADGROUP', 'GROUP', 'g', 'alice', 'COUNT', '3', 'STREAMS', k, '>')
    redis.call('XREADGROUP', 'GROUP', 'g', 'bob', 'NOACK', 'COUNT', '2', 'STREAMS', k, '>')
    redis.call('XREADGROUP', 'GROUP', 'g', 'carol', 'COUNT', '2', 'STREAMS', k, '>')
    redis.call('XDEL', k, '21-21', '150-150')
    redis.call('XGROUP', 'CREATECONSUMER', k, 'g', 'idle')
    return 1";

/// The setup command writing `key` instead of `k` (EVAL names it among its keys).
fn for_key(mut setup: Vec<String>, key: &str) -> Vec<String> {
    let at = if setup[0] == "EVAL" { 3 } else { 1 };
    setup[at] = key.to_string();
    setup
}

/// A comparable view of key `k`: type, encoding and contents (unordered types sorted).
fn contents(conn: &mut Conn, key: &str) -> (Value, Value, Value) {
    let ty = cmd(conn, &["TYPE", key]);
    let enc = cmd(conn, &["OBJECT", "ENCODING", key]);
    let body = match &ty {
        Value::Simple(t) if t == "string" => cmd(conn, &["GET", key]),
        Value::Simple(t) if t == "list" => cmd(conn, &["LRANGE", key, "0", "-1"]),
        Value::Simple(t) if t == "set" => cmd(conn, &["SMEMBERS", key]).sorted(),
        Value::Simple(t) if t == "zset" => cmd(conn, &["ZRANGE", key, "0", "-1", "WITHSCORES"]),
        // Entries, then per group its counters and PEL size (no times: those differ
        // between two servers building the same stream).
        Value::Simple(t) if t == "stream" => Value::Array(vec![
            cmd(conn, &["XRANGE", key, "-", "+"]),
            cmd(conn, &["XINFO", "GROUPS", key]),
        ]),
        Value::Simple(t) if t == "hash" => match cmd(conn, &["HGETALL", key]) {
            Value::Array(flat) => {
                let mut pairs: Vec<Value> =
                    flat.chunks(2).map(|p| Value::Array(p.to_vec())).collect();
                pairs.sort_by_key(|v| format!("{v:?}"));
                Value::Array(pairs)
            }
            other => other,
        },
        other => panic!("unexpected type {other:?}"),
    };
    (ty, enc, body)
}

/// Redis 7.0's compiled-in encoding thresholds, which `Tunables::default()` mirrors.
const PINNED_TUNABLES: [(&str, &str); 4] = [
    ("hash-max-listpack-entries", "128"),
    ("set-max-intset-entries", "512"),
    ("zset-max-listpack-entries", "128"),
    ("list-max-listpack-size", "-2"),
];

/// A redis-server saving into `dir` (dir is a protected config in 7.0: CONFIG SET refuses
/// it, so it is given on the command line).
/// A real redis-server whose SAVE writes `snap.rdb` into `dir`.
fn saving_redis(dir: &std::path::Path) -> RedisServer {
    let dir = dir.to_str().expect("utf8 temp dir");
    RedisServer::start_with(&["--dbfilename", "snap.rdb", "--dir", dir])
}

fn restore(conn: &mut Conn, key: &str, payload: &[u8]) -> Value {
    conn.cmd(&[b"RESTORE", key.as_bytes(), b"0", payload, b"REPLACE"])
}

#[test]
fn payloads_move_both_ways_with_contents_and_encodings() {
    let redis = RedisServer::start();
    let gate = Respgate::start();
    let mut r = Conn::connect(&redis.addr());
    let mut g = Conn::connect(&gate.addr);
    // Pin the thresholds (a distribution's redis-server may ship other defaults).
    for conn in [&mut r, &mut g] {
        for (name, v) in PINNED_TUNABLES {
            assert_eq!(
                cmd(conn, &["CONFIG", "SET", name, v]),
                Value::Simple("OK".into())
            );
        }
    }
    for (name, setup) in cases() {
        for conn in [&mut r, &mut g] {
            assert_eq!(cmd(conn, &["FLUSHALL"]), Value::Simple("OK".into()));
            assert!(!run(conn, &setup).is_error(), "{name}: setup");
        }
        let want = contents(&mut r, "k");
        assert_eq!(
            contents(&mut g, "k"),
            want,
            "{name}: same data built on both"
        );

        // Redis -> respgate.
        let Value::Bulk(from_redis) = cmd(&mut r, &["DUMP", "k"]) else {
            panic!("{name}: DUMP on redis")
        };
        assert_eq!(
            restore(&mut g, "copy", &from_redis),
            Value::Simple("OK".into()),
            "{name}"
        );
        assert_eq!(contents(&mut g, "copy"), want, "{name}: redis -> respgate");

        // respgate -> Redis.
        let Value::Bulk(from_gate) = cmd(&mut g, &["DUMP", "k"]) else {
            panic!("{name}: DUMP on respgate")
        };
        assert_eq!(
            restore(&mut r, "copy", &from_gate),
            Value::Simple("OK".into()),
            "{name}"
        );
        assert_eq!(contents(&mut r, "copy"), want, "{name}: respgate -> redis");
    }
}

#[test]
fn snapshot_saved_by_redis_is_read_back() {
    let dir = std::env::temp_dir().join(format!("respgate-rdb-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let redis = saving_redis(&dir);
    let mut r = Conn::connect(&redis.addr());
    for (name, v) in PINNED_TUNABLES {
        assert_eq!(
            cmd(&mut r, &["CONFIG", "SET", name, v]),
            Value::Simple("OK".into())
        );
    }
    for (i, (name, setup)) in cases().into_iter().enumerate() {
        let db = (i % 3).to_string();
        cmd(&mut r, &["SELECT", &db]);
        let key = format!("key{i}");
        let setup = for_key(setup, &key);
        assert!(!run(&mut r, &setup).is_error(), "{name}");
        if i.is_multiple_of(2) {
            cmd(&mut r, &["EXPIRE", &key, "100000"]);
        }
    }
    assert_eq!(cmd(&mut r, &["SAVE"]), Value::Simple("OK".into()));
    let bytes = std::fs::read(dir.join("snap.rdb")).expect("rdb file");
    let _ = std::fs::remove_dir_all(&dir);

    let entries = rdb::read_snapshot(&bytes, &Tunables::default()).expect("redis rdb parses");
    assert_eq!(entries.len(), cases().len());
    let t = Tunables::default();
    for (db, key, value, expire_at) in entries {
        let key = String::from_utf8(key.to_vec()).expect("utf8 key");
        let i: usize = key[3..].parse().expect("key index");
        assert_eq!(db, i % 3, "{key}");
        assert_eq!(expire_at.is_some(), i.is_multiple_of(2), "{key}");
        // Check the loaded value by sending it back to Redis and comparing with the original.
        cmd(&mut r, &["SELECT", &db.to_string()]);
        let copy = format!("copy{i}");
        let payload = rdb::dump_payload(&value, &t);
        assert_eq!(
            restore(&mut r, &copy, &payload),
            Value::Simple("OK".into()),
            "{key}"
        );
        let (ty, enc, body) = contents(&mut r, &key);
        assert_eq!(contents(&mut r, &copy), (ty, enc.clone(), body), "{key}");
        assert_eq!(
            enc,
            Value::Bulk(value.encoding_name().as_bytes().to_vec()),
            "{key}"
        );
    }
}

#[test]
fn snapshot_written_by_us_is_loaded_by_redis() {
    let base = std::env::temp_dir().join(format!("respgate-rdb-out-{}", std::process::id()));
    let (src_dir, dst_dir) = (base.join("src"), base.join("dst"));
    std::fs::create_dir_all(&src_dir).expect("temp dir");
    std::fs::create_dir_all(&dst_dir).expect("temp dir");
    let source = saving_redis(&src_dir);
    let mut r = Conn::connect(&source.addr());
    let t = Tunables::default();
    let mut dbs: Vec<Db> = (0..3).map(|_| Db::default()).collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    for (i, (name, setup)) in cases().into_iter().enumerate() {
        let key = format!("key{i}");
        let setup = for_key(setup, &key);
        cmd(&mut r, &["SELECT", &(i % 3).to_string()]);
        assert!(!run(&mut r, &setup).is_error(), "{name}");
        let Value::Bulk(payload) = cmd(&mut r, &["DUMP", &key]) else {
            panic!("{name}: DUMP")
        };
        let value = rdb::parse_dump_payload(&payload, &t).expect("payload parses");
        let expire = i.is_multiple_of(2).then_some(now + 100_000_000);
        if expire.is_some() {
            cmd(
                &mut r,
                &["PEXPIREAT", &key, &(now + 100_000_000).to_string()],
            );
        }
        dbs[i % 3].set(key.as_bytes(), value, expire, now);
    }
    std::fs::write(dst_dir.join("snap.rdb"), rdb::write_snapshot_dbs(&dbs, &t)).expect("write");
    let loaded = saving_redis(&dst_dir);
    let mut l = Conn::connect(&loaded.addr());
    let _ = std::fs::remove_dir_all(&base);
    for (i, _) in cases().iter().enumerate() {
        let key = format!("key{i}");
        for conn in [&mut r, &mut l] {
            cmd(conn, &["SELECT", &(i % 3).to_string()]);
        }
        assert_eq!(contents(&mut l, &key), contents(&mut r, &key), "{key}");
        assert_eq!(
            cmd(&mut l, &["PEXPIRETIME", &key]),
            cmd(&mut r, &["PEXPIRETIME", &key]),
            "{key}"
        );
    }
    assert_eq!(cmd(&mut l, &["DBSIZE"]), cmd(&mut r, &["DBSIZE"]));
}

/// Restoring a redis-server DUMP of a stream with groups, consumers and pending entries
/// keeps everything, times included: our DUMP of the copy is the same bytes, and Redis
/// takes our payload back.
#[test]
fn stream_payloads_keep_groups_pel_and_times_byte_for_byte() {
    let redis = RedisServer::start();
    let gate = Respgate::start();
    let mut r = Conn::connect(&redis.addr());
    let mut g = Conn::connect(&gate.addr);
    assert!(
        !run(
            &mut r,
            &for_key(words(&["EVAL", STREAM_SCRIPT, "1", "k"], []), "s")
        )
        .is_error()
    );
    let Value::Bulk(from_redis) = cmd(&mut r, &["DUMP", "s"]) else {
        panic!("DUMP on redis")
    };
    assert_eq!(
        restore(&mut g, "s", &from_redis),
        Value::Simple("OK".into())
    );
    assert_eq!(cmd(&mut g, &["DUMP", "s"]), Value::Bulk(from_redis.clone()));
    // Everything XINFO shows, delivery and seen times included, except the radix tree's
    // internal node count.
    let full = |c: &mut Conn, key: &str| match cmd(c, &["XINFO", "STREAM", key, "FULL"]) {
        Value::Array(mut items) => {
            if let Some(at) = items
                .iter()
                .position(|v| v.as_bytes() == Some(b"radix-tree-nodes"))
            {
                items.drain(at..at + 2);
            }
            Value::Array(items)
        }
        other => other,
    };
    assert_eq!(full(&mut g, "s"), full(&mut r, "s"));
    // Back to Redis from our DUMP (of the restored copy, and after a write here).
    let Value::Bulk(ours) = cmd(&mut g, &["DUMP", "s"]) else {
        panic!("DUMP on respgate")
    };
    assert_eq!(restore(&mut r, "back", &ours), Value::Simple("OK".into()));
    assert_eq!(full(&mut r, "back"), full(&mut r, "s"));
    for c in [&mut r, &mut g] {
        cmd(c, &["XADD", "s", "500-0", "f1", "new"]);
        cmd(c, &["XACK", "s", "g", "20-20"]);
    }
    assert_eq!(cmd(&mut g, &["DUMP", "s"]), cmd(&mut r, &["DUMP", "s"]));
}
