//! TTL rules over real sockets against respgate's embedded engine: every command family that
//! can create a key or set, copy or remove a TTL, in clamp, reject and audit modes, checked
//! with TTL/PTTL; the metrics and the audit log; and 50 concurrent writers creating keys
//! under a default_ttl rule, watched by another client that must never see a key without TTL.
//! The same rules through a real Redis Cluster (keys hash-tagged so sources and destinations
//! share a slot), including MOVED and ASK while a write and its fix-ups are in flight.
//! (Through a standalone redis-server: tests/tenants_forwarding.rs.)

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::redis_cluster::RedisCluster;
use common::resp::{Conn, Value, split_args};
use common::respgate::{Respgate, temp_config};

/// One tenant (the default one, so no AUTH) with a rule per mode. `s:*` keys (sources) fall
/// under no rule.
const CONFIG: &str = r#"
[server]
default_tenant = "t"
[[tenants]]
name = "t"
prefix = "t:"
[[tenants.ttl]]
pattern = "c:*"
default_ttl = "10m"
max_ttl = "1h"
mode = "clamp"
[[tenants.ttl]]
pattern = "n:*"
require_ttl = true
max_ttl = "5m"
mode = "clamp"
[[tenants.ttl]]
pattern = "r:*"
require_ttl = true
max_ttl = "5m"
mode = "reject"
[[tenants.ttl]]
pattern = "rd:*"
default_ttl = "10m"
max_ttl = "1h"
mode = "reject"
[[tenants.ttl]]
pattern = "a:*"
default_ttl = "10m"
max_ttl = "1h"
require_ttl = true
mode = "audit"
[[tenants.ttl]]
pattern = "w:*"
default_ttl = "1h"
"#;

fn start() -> Respgate {
    Respgate::start_with(&["--config", &temp_config(CONFIG)])
}

fn cmd(c: &mut Conn, line: &str) -> Value {
    let args = split_args(line);
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    c.cmd(&refs)
}

fn int(c: &mut Conn, line: &str) -> i64 {
    match cmd(c, line) {
        Value::Int(n) => n,
        other => panic!("{line}: {other:?}"),
    }
}

fn ttl(c: &mut Conn, key: &str) -> i64 {
    int(c, &format!("TTL {key}"))
}

fn ok_or_value(c: &mut Conn, line: &str) {
    let r = cmd(c, line);
    assert!(!r.is_error(), "{line}: {r:?}");
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Source keys outside every rule, fresh for each use.
fn sources(c: &mut Conn) {
    for line in [
        "DEL s:str s:set s:z s:list s:geo s:hll s:b1",
        "SET s:str hello",
        "SADD s:set a b",
        "ZADD s:z 1 a 2 b",
        "RPUSH s:list a b c d e f g h",
        "GEOADD s:geo 13.361389 38.115556 Palermo",
        "PFADD s:hll a",
        "SET s:b1 x",
    ] {
        ok_or_value(c, line);
    }
}

fn dump(c: &mut Conn, key: &str) -> Vec<u8> {
    match c.cmd(&[b"DUMP", key.as_bytes()]) {
        Value::Bulk(b) => b,
        other => panic!("DUMP {key}: {other:?}"),
    }
}

/// Every command that can create a key, with the key it creates (`{k}` in the line).
const CREATORS: &[&str] = &[
    "HSET {k} f v",
    "HSETNX {k} f v",
    "HINCRBY {k} f 1",
    "HINCRBYFLOAT {k} f 1.5",
    "HMSET {k} f v",
    "LPUSH {k} a",
    "RPUSH {k} a",
    "SADD {k} a",
    "ZADD {k} 1 a",
    "ZINCRBY {k} 1 a",
    "XADD {k} * f v",
    "INCR {k}",
    "INCRBY {k} 5",
    "DECR {k}",
    "DECRBY {k} 2",
    "INCRBYFLOAT {k} 1.5",
    "APPEND {k} x",
    "SETRANGE {k} 3 x",
    "PFADD {k} a",
    "PFMERGE {k} s:hll",
    "SETBIT {k} 7 1",
    "BITFIELD {k} SET u8 0 255",
    "SET {k} v",
    "SET {k} v GET",
    "SETNX {k} v",
    "MSET {k} v",
    "MSETNX {k} v",
    "GETSET {k} v",
    "SUNIONSTORE {k} s:set",
    "SINTERSTORE {k} s:set",
    "SDIFFSTORE {k} s:set",
    "ZUNIONSTORE {k} 1 s:z",
    "ZINTERSTORE {k} 1 s:z",
    "ZDIFFSTORE {k} 1 s:z",
    "ZRANGESTORE {k} s:z 0 -1",
    "GEOADD {k} 13.361389 38.115556 Palermo",
    "GEOSEARCHSTORE {k} s:geo FROMLONLAT 13.36 38.11 BYRADIUS 100 km",
    "GEORADIUS s:geo 13.36 38.11 100 km STORE {k}",
    "GEORADIUSBYMEMBER s:geo Palermo 10 km STOREDIST {k}",
    "SORT s:list ALPHA STORE {k}",
    "BITOP OR {k} s:b1",
    "LMOVE s:list {k} LEFT RIGHT",
    "RPOPLPUSH s:list {k}",
    "BLMOVE s:list {k} LEFT RIGHT 0",
    "BRPOPLPUSH s:list {k} 0",
    "SMOVE s:set {k} a",
    "COPY s:str {k}",
    "XGROUP CREATE {k} g $ MKSTREAM",
    "EVAL \"return redis.call('SET', KEYS[1], 'v')\" 1 {k}",
];

#[test]
fn clamp_mode_gives_every_new_key_the_default_ttl() {
    let gate = start();
    let mut c = Conn::connect(&gate.addr);
    for (i, line) in CREATORS.iter().enumerate() {
        sources(&mut c);
        let key = format!("c:new{i}");
        ok_or_value(&mut c, &line.replace("{k}", &key));
        let t = ttl(&mut c, &key);
        assert!((595..=600).contains(&t), "{line}: TTL {t}");
    }
    // RENAME and RESTORE of a key without TTL, and a transaction.
    ok_or_value(&mut c, "SET s:tmp v");
    ok_or_value(&mut c, "RENAME s:tmp c:renamed");
    ok_or_value(&mut c, "SET s:tmp v");
    ok_or_value(&mut c, "RENAMENX s:tmp c:renamednx");
    let payload = dump(&mut c, "s:str");
    assert!(
        !c.cmd(&[b"RESTORE", b"c:restored", b"0", &payload])
            .is_error()
    );
    assert_eq!(cmd(&mut c, "MULTI"), Value::Simple("OK".into()));
    assert_eq!(
        cmd(&mut c, "HSET c:multi f v"),
        Value::Simple("QUEUED".into())
    );
    assert_eq!(
        cmd(&mut c, "LPUSH c:multi2 a"),
        Value::Simple("QUEUED".into())
    );
    assert!(matches!(cmd(&mut c, "EXEC"), Value::Array(_)));
    for key in [
        "c:renamed",
        "c:renamednx",
        "c:restored",
        "c:multi",
        "c:multi2",
    ] {
        let t = ttl(&mut c, key);
        assert!((595..=600).contains(&t), "{key}: TTL {t}");
    }
    // COPY ... DB n: the destination in the other database gets it.
    assert_eq!(int(&mut c, "COPY s:str c:otherdb DB 1"), 1);
    assert_eq!(cmd(&mut c, "SELECT 1"), Value::Simple("OK".into()));
    let t = ttl(&mut c, "c:otherdb");
    assert!((595..=600).contains(&t), "COPY DB 1: TTL {t}");
    assert_eq!(cmd(&mut c, "SELECT 0"), Value::Simple("OK".into()));
    // A key outside every rule keeps Redis's behaviour.
    ok_or_value(&mut c, "HSET s:free f v");
    assert_eq!(ttl(&mut c, "s:free"), -1);
}

#[test]
fn clamp_mode_shortens_long_ttls_and_never_lengthens_one() {
    let gate = start();
    let mut c = Conn::connect(&gate.addr);
    let at = now_s() + 99_999;
    let long = [
        "SET c:1 v EX 99999".to_string(),
        "SET c:2 v PX 99999999".to_string(),
        format!("SET c:3 v EXAT {at}"),
        format!("SET c:4 v PXAT {}", at * 1000),
        "SETEX c:5 99999 v".to_string(),
        "PSETEX c:6 99999999 v".to_string(),
        "GETEX c:7 EX 99999".to_string(),
        "EXPIRE c:8 99999".to_string(),
        "PEXPIRE c:9 99999999".to_string(),
        format!("EXPIREAT c:10 {at}"),
        format!("PEXPIREAT c:11 {}", at * 1000),
        "EXPIRE c:12 99999 XX".to_string(),
        "EXPIRE c:13 99999 GT".to_string(),
        "GETEX c:14 PXAT 99999999999999".to_string(),
    ];
    for (i, line) in long.iter().enumerate() {
        // The key exists first (with the default TTL) where the command needs it.
        ok_or_value(&mut c, &format!("SET c:{} v", i + 1));
        ok_or_value(&mut c, line);
        let t = ttl(&mut c, &format!("c:{}", i + 1));
        assert!((3595..=3600).contains(&t), "{line}: TTL {t}");
    }
    // NX on a key that has a TTL (the default) does nothing; LT only shortens.
    ok_or_value(&mut c, "SET c:nx v");
    assert_eq!(int(&mut c, "EXPIRE c:nx 99999 NX"), 0);
    assert!(ttl(&mut c, "c:nx") <= 600);
    assert_eq!(int(&mut c, "EXPIRE c:nx 100 LT"), 1);
    assert_eq!(int(&mut c, "EXPIRE c:nx 99999 LT"), 0);
    assert!(ttl(&mut c, "c:nx") <= 100);
    // RESTORE, COPY and RENAME bring a long TTL with them.
    ok_or_value(&mut c, "SET s:long v EX 99999");
    let payload = dump(&mut c, "s:long");
    assert!(
        !c.cmd(&[b"RESTORE", b"c:r", b"99999000", &payload])
            .is_error()
    );
    let abs = (now_s() + 99_999) * 1000;
    assert!(
        !c.cmd(&[
            b"RESTORE",
            b"c:abs",
            abs.to_string().as_bytes(),
            &payload,
            b"ABSTTL"
        ])
        .is_error()
    );
    ok_or_value(&mut c, "COPY s:long c:copy");
    ok_or_value(&mut c, "RENAME s:long c:renamed");
    for key in ["c:r", "c:abs", "c:copy", "c:renamed"] {
        let t = ttl(&mut c, key);
        assert!((3595..=3600).contains(&t), "{key}: TTL {t}");
    }
    // Writes to a key that has a TTL keep it: never extended to the default.
    ok_or_value(&mut c, "SET c:e v EX 100");
    for line in [
        "APPEND c:e x",
        "SETRANGE c:e 0 y",
        "SET c:e z KEEPTTL",
        "GETEX c:e",
    ] {
        ok_or_value(&mut c, line);
        assert!(ttl(&mut c, "c:e") <= 100, "{line}");
    }
    ok_or_value(&mut c, "HSET c:h f v");
    assert_eq!(int(&mut c, "EXPIRE c:h 50"), 1);
    ok_or_value(&mut c, "HSET c:h g w");
    assert!(ttl(&mut c, "c:h") <= 50);
    // An overwrite that drops the TTL gets the default again.
    ok_or_value(&mut c, "SET c:e fresh");
    assert!((595..=600).contains(&ttl(&mut c, "c:e")));
    // Without require_ttl an explicit PERSIST is honoured.
    assert_eq!(int(&mut c, "PERSIST c:e"), 1);
    assert_eq!(ttl(&mut c, "c:e"), -1);
    // require_ttl in clamp mode without a default: max_ttl is given; an explicit PERSIST
    // gets the key's old TTL back (never a longer one).
    ok_or_value(&mut c, "HSET n:h f v");
    assert!((295..=300).contains(&ttl(&mut c, "n:h")));
    ok_or_value(&mut c, "SET n:s v EX 100");
    ok_or_value(&mut c, "GETEX n:s PERSIST");
    assert!((95..=100).contains(&ttl(&mut c, "n:s")));
    assert_eq!(int(&mut c, "PERSIST n:s"), 1);
    assert!((95..=100).contains(&ttl(&mut c, "n:s")));
    ok_or_value(&mut c, "SET n:s v");
    assert!((295..=300).contains(&ttl(&mut c, "n:s")));
    ok_or_value(&mut c, "SET n:s v EX 99999");
    assert!((295..=300).contains(&ttl(&mut c, "n:s")));
}

fn requires(key: &str) -> Value {
    Value::Error(format!(
        "ERR respgate: TTL policy r:* requires a TTL for key '{key}'"
    ))
}

fn at_most(pattern: &str, max: &str, key: &str) -> Value {
    Value::Error(format!(
        "ERR respgate: TTL policy {pattern} allows at most {max} for key '{key}'"
    ))
}

#[test]
fn reject_mode_refuses_and_leaves_the_key_alone() {
    let gate = start();
    let mut c = Conn::connect(&gate.addr);
    // Every creator that would leave the key without a TTL is refused; nothing is written.
    for (i, line) in CREATORS.iter().enumerate() {
        sources(&mut c);
        let key = format!("r:new{i}");
        let r = cmd(&mut c, &line.replace("{k}", &key));
        if line.starts_with("EVAL") {
            // A script's error says where in the script, as Redis's do.
            let (Value::Error(text), Value::Error(want)) = (&r, requires(&key)) else {
                panic!("{line}: {r:?}")
            };
            assert!(text.starts_with(&want), "{text}");
        } else {
            assert_eq!(r, requires(&key), "{line}");
        }
        assert_eq!(int(&mut c, &format!("EXISTS {key}")), 0, "{line}");
    }
    ok_or_value(&mut c, "SET s:tmp v");
    assert_eq!(cmd(&mut c, "RENAME s:tmp r:ren"), requires("r:ren"));
    assert_eq!(int(&mut c, "EXISTS s:tmp"), 1);
    let payload = dump(&mut c, "s:tmp");
    assert_eq!(
        c.cmd(&[b"RESTORE", b"r:res", b"0", &payload]),
        requires("r:res")
    );
    assert_eq!(
        c.cmd(&[b"RESTORE", b"r:res", b"99999000", &payload]),
        at_most("r:*", "5m", "r:res")
    );
    assert!(
        !c.cmd(&[b"RESTORE", b"r:res", b"100000", &payload])
            .is_error()
    );
    // TTLs within the limit pass; longer ones are refused.
    assert_eq!(
        cmd(&mut c, "SET r:x v EX 99999"),
        at_most("r:*", "5m", "r:x")
    );
    assert_eq!(
        cmd(&mut c, "SETEX r:x 99999 v"),
        at_most("r:*", "5m", "r:x")
    );
    assert_eq!(int(&mut c, "EXISTS r:x"), 0);
    ok_or_value(&mut c, "SET r:x v EX 100");
    assert_eq!(cmd(&mut c, "EXPIRE r:x 1000"), at_most("r:*", "5m", "r:x"));
    assert_eq!(
        cmd(&mut c, "PEXPIRE r:x 1000000 GT"),
        at_most("r:*", "5m", "r:x")
    );
    assert_eq!(
        cmd(&mut c, "GETEX r:x EX 1000"),
        at_most("r:*", "5m", "r:x")
    );
    // NX on a key with a TTL would not apply: not refused.
    assert_eq!(int(&mut c, "EXPIRE r:x 1000 NX"), 0);
    assert_eq!(int(&mut c, "EXPIRE r:x 200"), 1);
    // Removing the TTL is refused in every form; keeping it is fine.
    assert_eq!(cmd(&mut c, "PERSIST r:x"), requires("r:x"));
    assert_eq!(cmd(&mut c, "GETEX r:x PERSIST"), requires("r:x"));
    assert_eq!(cmd(&mut c, "SET r:x v2"), requires("r:x"));
    ok_or_value(&mut c, "SET r:x v3 KEEPTTL");
    ok_or_value(&mut c, "APPEND r:x more");
    let t = ttl(&mut c, "r:x");
    assert!((195..=200).contains(&t), "TTL {t}");
    assert_eq!(cmd(&mut c, "GET r:x"), Value::Bulk(b"v3more".to_vec()));
    // COPY of a source with a long TTL is refused, one with a short TTL passes.
    ok_or_value(&mut c, "SET s:long v EX 99999");
    assert_eq!(cmd(&mut c, "COPY s:long r:c"), at_most("r:*", "5m", "r:c"));
    ok_or_value(&mut c, "SET s:short v EX 60");
    assert_eq!(int(&mut c, "COPY s:short r:c"), 1);
    assert!(ttl(&mut c, "r:c") <= 60);
    // Commands that cannot create the key, or leave an existing one alone, pass.
    assert_eq!(int(&mut c, "LPUSHX r:none a"), 0);
    assert_eq!(int(&mut c, "COPY s:str r:c"), 0);
    assert_eq!(int(&mut c, "RENAMENX s:str r:c"), 0);
    assert!(cmd(&mut c, "LSET r:none 0 a").is_error());
    // An overwrite would drop the TTL: refused.
    assert_eq!(cmd(&mut c, "SINTERSTORE r:c s:set"), requires("r:c"));
    assert_eq!(cmd(&mut c, "GETSET r:c v"), requires("r:c"));
    assert!(ttl(&mut c, "r:c") <= 60);
    // Inside MULTI the refused command fails on its own, like any runtime error.
    assert_eq!(cmd(&mut c, "MULTI"), Value::Simple("OK".into()));
    cmd(&mut c, "SET r:m v");
    cmd(&mut c, "SET r:m2 v EX 10");
    assert_eq!(
        cmd(&mut c, "EXEC"),
        Value::Array(vec![requires("r:m"), Value::Simple("OK".into())])
    );
    // Reject mode with default_ttl and no require_ttl: the default is given.
    ok_or_value(&mut c, "HSET rd:h f v");
    assert!((595..=600).contains(&ttl(&mut c, "rd:h")));
    assert_eq!(
        cmd(&mut c, "SET rd:s v EX 99999"),
        at_most("rd:*", "1h", "rd:s")
    );
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn audit_mode_changes_nothing_and_records_everything() {
    let gate = start();
    let mut c = Conn::connect(&gate.addr);
    ok_or_value(&mut c, "HSET a:h f v");
    assert_eq!(ttl(&mut c, "a:h"), -1);
    ok_or_value(&mut c, "SET a:s v EX 99999");
    assert_eq!(ttl(&mut c, "a:s"), 99999);
    assert_eq!(int(&mut c, "PERSIST a:s"), 1);
    assert_eq!(ttl(&mut c, "a:s"), -1);
    ok_or_value(&mut c, "HSET c:d f v"); // default_applied
    ok_or_value(&mut c, "SET c:m v EX 99999"); // clamped
    assert!(cmd(&mut c, "SET r:x v").is_error()); // rejected
    let metrics = http_get(&gate.metrics_addr, "/metrics");
    for line in [
        r#"respgate_ttl_policy_actions_total{tenant="t",rule="a:*",action="audited"} 3"#,
        r#"respgate_ttl_policy_actions_total{tenant="t",rule="c:*",action="default_applied"} 1"#,
        r#"respgate_ttl_policy_actions_total{tenant="t",rule="c:*",action="clamped"} 1"#,
        r#"respgate_ttl_policy_actions_total{tenant="t",rule="r:*",action="rejected"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    // The audit log names tenant, rule and command, never keys or values.
    let mut audits = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while audits.len() < 3 && std::time::Instant::now() < deadline {
        if let Ok(line) = gate.logs.recv_timeout(Duration::from_millis(200))
            && line.contains("TTL policy audit")
        {
            audits.push(line);
        }
    }
    assert_eq!(audits.len(), 3, "{audits:?}");
    for line in &audits {
        assert!(
            line.contains("tenant=t") && line.contains("rule=a:*"),
            "{line}"
        );
        assert!(!line.contains("a:h") && !line.contains("a:s"), "{line}");
    }
    assert!(audits[0].contains("command=\"hset\""), "{}", audits[0]);
    assert!(audits[1].contains("command=\"set\""), "{}", audits[1]);
    assert!(audits[2].contains("command=\"persist\""), "{}", audits[2]);
}

#[test]
fn fifty_concurrent_writers_never_leave_a_key_without_ttl() {
    const WRITERS: usize = 50;
    const KEYS_EACH: usize = 40;
    let gate = start();
    let addr = gate.addr.clone();
    let done = Arc::new(AtomicBool::new(false));
    // The watcher: keys as soon as they exist, and their TTL, from another connection.
    let watcher = {
        let (addr, done) = (addr.clone(), done.clone());
        std::thread::spawn(move || {
            let mut c = Conn::connect(&addr);
            let mut checked = 0usize;
            // A script sees the keyspace between two engine batches: a key created in one
            // batch and given its TTL in another would be caught here.
            let atomic = "local n = 0 for _, k in ipairs(redis.call('KEYS', 'w:*')) do \
                          if redis.call('TTL', k) == -1 then n = n + 1 end end return n";
            while !done.load(Ordering::Relaxed) {
                assert_eq!(
                    c.cmd(&[b"EVAL", atomic.as_bytes(), b"0"]),
                    Value::Int(0),
                    "keys without TTL seen by a script"
                );
                let Value::Array(keys) = cmd(&mut c, "KEYS w:*") else {
                    panic!("KEYS")
                };
                for k in keys {
                    let key =
                        String::from_utf8_lossy(k.as_bytes().unwrap_or_default()).into_owned();
                    let t = ttl(&mut c, &key);
                    assert_ne!(t, -1, "{key} seen without a TTL");
                    checked += 1;
                }
            }
            checked
        })
    };
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut c = Conn::connect(&addr);
                for i in 0..KEYS_EACH {
                    let line = match i % 3 {
                        0 => format!("HSET w:{w}:{i} f v"),
                        1 => format!("LPUSH w:{w}:{i} a"),
                        _ => format!("INCR w:{w}:{i}"),
                    };
                    let r = cmd(&mut c, &line);
                    assert!(!r.is_error(), "{line}: {r:?}");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    done.store(true, Ordering::Relaxed);
    let checked = watcher.join().expect("watcher");
    assert!(checked > 0, "the watcher saw no key while the writers ran");
    let mut c = Conn::connect(&addr);
    let Value::Array(keys) = cmd(&mut c, "KEYS w:*") else {
        panic!("KEYS")
    };
    assert_eq!(keys.len(), WRITERS * KEYS_EACH);
    for k in keys {
        let key = String::from_utf8_lossy(k.as_bytes().unwrap_or_default()).into_owned();
        let t = ttl(&mut c, &key);
        assert!((3590..=3600).contains(&t), "{key}: TTL {t}");
    }
}

#[test]
fn a_blocked_move_served_later_gets_the_default_ttl() {
    let gate = start();
    let mut waiter = Conn::connect(&gate.addr);
    let mut pusher = Conn::connect(&gate.addr);
    waiter.send(&[b"BLMOVE", b"s:empty", b"c:dest", b"LEFT", b"RIGHT", b"0"]);
    // Until the waiter is blocked, a push would be served at once (not what is tested).
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(
        cmd(&mut pusher, "CLIENT LIST")
            .as_bytes()
            .unwrap_or_default(),
    )
    .contains("cmd=blmove")
    {
        assert!(std::time::Instant::now() < deadline, "BLMOVE never blocked");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(int(&mut pusher, "LPUSH s:empty x"), 1);
    assert_eq!(waiter.read(), Value::Bulk(b"x".to_vec()));
    let t = ttl(&mut pusher, "c:dest");
    assert!((595..=600).contains(&t), "TTL {t}");
    // In reject mode it is refused before it waits.
    assert_eq!(
        cmd(&mut waiter, "BLMOVE s:empty r:dest LEFT RIGHT 0"),
        requires("r:dest")
    );
}

/// respgate with [`CONFIG`] in front of the shared test cluster.
fn start_cluster(cluster: &RedisCluster) -> Respgate {
    let nodes: Vec<String> = cluster.addrs().iter().map(|a| format!("\"{a}\"")).collect();
    let cfg = format!(
        "{CONFIG}[backend]\nmode = \"cluster\"\nnodes = [{}]\n",
        nodes.join(", ")
    );
    Respgate::start_with(&["--config", &temp_config(&cfg)])
}

/// A line of this file's tables with every key in the `{x}` slot: `s:a` becomes `s:{x}a`
/// (the tenant prefix then goes in front, outside the tag).
fn tagged(line: &str, key: &str) -> String {
    line.replace("s:", "s:{x}").replace("{k}", key)
}

#[test]
fn rules_hold_through_a_cluster() {
    let cluster = RedisCluster::shared();
    let gate = start_cluster(&cluster);
    let mut c = Conn::connect(&gate.addr);
    // Clamp: every creator gives its key the default TTL. Not scripts (refused to tenants
    // when forwarding) nor blocking commands (not wrapped: MULTI would make them answer at
    // once).
    for (i, line) in CREATORS.iter().enumerate() {
        if line.starts_with("EVAL") || line.starts_with("BL") || line.starts_with("BR") {
            continue;
        }
        for s in [
            "DEL s:str s:set s:z s:list s:geo s:hll s:b1",
            "SET s:str hello",
            "SADD s:set a b",
            "ZADD s:z 1 a 2 b",
            "RPUSH s:list a b c d e f g h",
            "GEOADD s:geo 13.361389 38.115556 Palermo",
            "PFADD s:hll a",
            "SET s:b1 x",
        ] {
            ok_or_value(&mut c, &tagged(s, ""));
        }
        let key = format!("c:{{x}}new{i}");
        ok_or_value(&mut c, &tagged(line, &key));
        let t = ttl(&mut c, &key);
        assert!((595..=600).contains(&t), "{line}: TTL {t}");
    }
    // A transaction: every write gets its fix-ups, the client sees its own replies.
    assert_eq!(cmd(&mut c, "MULTI"), Value::Simple("OK".into()));
    cmd(&mut c, "HSET c:{x}multi f v");
    cmd(&mut c, "LPUSH c:{x}multi2 a");
    assert_eq!(
        cmd(&mut c, "EXEC"),
        Value::Array(vec![Value::Int(1), Value::Int(1)])
    );
    for key in ["c:{x}multi", "c:{x}multi2"] {
        let t = ttl(&mut c, key);
        assert!((595..=600).contains(&t), "{key}: TTL {t}");
    }
    // Long TTLs are clamped; an existing TTL is never lengthened.
    ok_or_value(&mut c, "SET c:long v EX 99999");
    assert!((3595..=3600).contains(&ttl(&mut c, "c:long")));
    assert_eq!(int(&mut c, "EXPIRE c:long 99999"), 1);
    assert!((3595..=3600).contains(&ttl(&mut c, "c:long")));
    assert_eq!(int(&mut c, "EXPIRE c:long 50"), 1);
    ok_or_value(&mut c, "APPEND c:long x");
    assert!(ttl(&mut c, "c:long") <= 50);
    // An MSET across slots is split by respgate; one that needs fix-ups cannot be (its
    // parts run on several nodes), and gets Redis Cluster's own answer.
    assert_eq!(
        cmd(&mut c, "MSET s:a 1 s:b 2 s:c 3"),
        Value::Simple("OK".into())
    );
    assert_eq!(
        cmd(&mut c, "MSET c:a 1 c:b 2 c:c 3"),
        Value::Error("CROSSSLOT Keys in request don't hash to the same slot".into())
    );
    ok_or_value(&mut c, "MSET c:{x}a 1 c:{x}b 2");
    assert!((595..=600).contains(&ttl(&mut c, "c:{x}b")));
    // Reject mode.
    assert_eq!(cmd(&mut c, "SET r:x v"), requires("r:x"));
    assert_eq!(
        cmd(&mut c, "SET r:x v EX 99999"),
        at_most("r:*", "5m", "r:x")
    );
    assert_eq!(int(&mut c, "EXISTS r:x"), 0);
    ok_or_value(&mut c, "SET r:x v EX 100");
    assert_eq!(cmd(&mut c, "PERSIST r:x"), requires("r:x"));
    assert_eq!(cmd(&mut c, "EXPIRE r:x 1000"), at_most("r:*", "5m", "r:x"));
    assert!((95..=100).contains(&ttl(&mut c, "r:x")));
    // Audit mode changes nothing.
    ok_or_value(&mut c, "HSET a:h f v");
    assert_eq!(ttl(&mut c, "a:h"), -1);
    ok_or_value(&mut c, "SET a:s v EX 99999");
    assert_eq!(ttl(&mut c, "a:s"), 99999);
    // Counted: what the command's own arguments show (the TTL over max_ttl). When
    // forwarding respgate does not see that HSET created the key.
    let metrics = http_get(&gate.metrics_addr, "/metrics");
    for line in [
        r#"respgate_ttl_policy_actions_total{tenant="t",rule="a:*",action="audited"} 1"#,
        r#"respgate_ttl_policy_actions_total{tenant="t",rule="r:*",action="rejected"} 4"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    // The backend holds the keys under the prefix, with their TTLs.
    let mut direct = cluster.conn(&cluster.masters()[0]);
    let owner_reply = direct.cmd(&[b"TTL", b"t:c:{x}new0"]);
    if let Value::Error(e) = &owner_reply {
        // MOVED <slot> <addr>: ask the owner.
        let addr = e.split(' ').nth(2).unwrap_or_default().to_string();
        direct = cluster.conn(&addr);
    }
    let t = match direct.cmd(&[b"TTL", b"t:c:{x}new0"]) {
        Value::Int(t) => t,
        other => panic!("{other:?}"),
    };
    assert!((590..=600).contains(&t), "backend TTL {t}");
    for k in ["c:long", "r:x", "a:h", "a:s", "s:a", "s:b", "s:c"] {
        cmd(&mut c, &format!("DEL {k}"));
    }
    let all: Vec<String> = (0..CREATORS.len())
        .map(|i| format!("c:{{x}}new{i}"))
        .collect();
    cmd(
        &mut c,
        &format!("DEL {} c:{{x}}multi c:{{x}}multi2", all.join(" ")),
    );
}

/// Runs `args` on `addr`, expecting +OK.
fn node_ok(addr: &str, args: &[&str]) {
    let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let reply = Conn::connect(addr).cmd(&argv);
    assert_eq!(reply, Value::Simple("OK".into()), "{args:?} on {addr}");
}

/// The slot is `to`'s: told to `to` first (it bumps its config epoch), then every master.
fn give_slot(cluster: &RedisCluster, slot: &str, to: &str) {
    let to_id = cluster.node_id(to);
    node_ok(to, &["CLUSTER", "SETSLOT", slot, "NODE", &to_id]);
    for m in cluster.masters() {
        if m != to {
            node_ok(&m, &["CLUSTER", "SETSLOT", slot, "NODE", &to_id]);
        }
    }
}

#[test]
fn a_write_and_its_fix_ups_follow_ask_and_moved_as_one_transaction() {
    let cluster = RedisCluster::shared();
    let gate = start_cluster(&cluster);
    let mut c = Conn::connect(&gate.addr);
    // The tenant's `c:{mv}...` keys are `t:c:{mv}...` on the backend: slot of "mv", used by
    // no other test of this binary.
    let masters = cluster.masters();
    let slot = match cluster
        .conn(&masters[0])
        .cmd(&[b"CLUSTER", b"KEYSLOT", b"mv"])
    {
        Value::Int(s) => s.to_string(),
        other => panic!("KEYSLOT {other:?}"),
    };
    let from = masters
        .iter()
        .find(|m| !cluster.conn(m).cmd(&[b"GET", b"t:c:{mv}probe"]).is_error())
        .cloned()
        .unwrap_or_default();
    let to = masters
        .iter()
        .find(|m| **m != from)
        .cloned()
        .unwrap_or_default();
    // respgate knows the slot's owner.
    assert_eq!(cmd(&mut c, "GET c:{mv}probe"), Value::NullBulk);
    // Half-migrated: the source answers ASK for a missing key, inside MULTI too (the EXEC
    // then says EXECABORT); respgate resends the whole transaction with ASKING.
    let (from_id, to_id) = (cluster.node_id(&from), cluster.node_id(&to));
    node_ok(&to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]);
    node_ok(&from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]);
    assert_eq!(int(&mut c, "HSET c:{mv}ask f v"), 1);
    let t = ttl(&mut c, "c:{mv}ask");
    assert!((595..=600).contains(&t), "after ASK: TTL {t}");
    // Migrated: respgate's map still names the source, which answers MOVED.
    give_slot(&cluster, &slot, &to);
    assert_eq!(int(&mut c, "INCR c:{mv}moved"), 1);
    let t = ttl(&mut c, "c:{mv}moved");
    assert!((595..=600).contains(&t), "after MOVED: TTL {t}");
    // Moved back (empty again): a client's own MULTI ... EXEC follows MOVED as a whole too.
    assert_eq!(int(&mut c, "DEL c:{mv}ask c:{mv}moved"), 2);
    give_slot(&cluster, &slot, &from);
    assert_eq!(cmd(&mut c, "MULTI"), Value::Simple("OK".into()));
    cmd(&mut c, "LPUSH c:{mv}l a");
    cmd(&mut c, "LPUSH c:{mv}l b");
    assert_eq!(
        cmd(&mut c, "EXEC"),
        Value::Array(vec![Value::Int(1), Value::Int(2)])
    );
    let t = ttl(&mut c, "c:{mv}l");
    assert!((595..=600).contains(&t), "transaction after MOVED: TTL {t}");
    assert_eq!(int(&mut c, "DEL c:{mv}l"), 1);
}
