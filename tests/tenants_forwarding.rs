//! Tenants when forwarding: respgate in front of a real redis-server (and a real cluster)
//! keeps each tenant inside its namespace — keys, channels, patterns in; keys and channels
//! in replies out — and the backend holds only correctly prefixed keys.

mod common;

use std::time::Duration;

use common::redis_cluster::RedisCluster;
use common::redis_server::RedisServer;
use common::resp::{Conn, Value};
use common::respgate::{Respgate, temp_config};

const TENANTS: &str = r#"
[server]
auth_failures_per_minute = 0
[[tenants]]
name = "a"
username = "ua"
password = "pa"
prefix = "a:"
[[tenants]]
name = "b"
username = "ub"
password = "pb"
prefix = "b*?["
"#;

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

fn ok() -> Value {
    Value::Simple("OK".into())
}

fn login(addr: &str, user: &str, pass: &str) -> Conn {
    let mut c = Conn::connect(addr);
    assert_eq!(c.cmd(&[b"AUTH", user.as_bytes(), pass.as_bytes()]), ok());
    c
}

fn sorted(v: Value) -> Value {
    v.sorted()
}

#[test]
fn tenants_stay_in_their_namespace_through_a_standalone_backend() {
    let backend = RedisServer::start();
    let cfg = format!(
        "{TENANTS}[backend]\nmode = \"standalone\"\naddress = \"{}\"\n",
        backend.addr()
    );
    let gate = Respgate::start_with(&["--config", &temp_config(&cfg)]);
    let mut a = login(&gate.addr, "ua", "pa");
    let mut b = login(&gate.addr, "ub", "pb");
    assert_eq!(a.cmd_str("SET k 1"), ok());
    assert_eq!(a.cmd_str("SET shared a"), ok());
    assert_eq!(b.cmd_str("SET shared b"), ok());
    assert_eq!(b.cmd_str("SET a:k sneaky"), ok());
    // Each sees its own values, under its own names.
    assert_eq!(a.cmd_str("GET shared"), bulk("a"));
    assert_eq!(b.cmd_str("GET shared"), bulk("b"));
    assert_eq!(a.cmd_str("GET k"), bulk("1"));
    assert_eq!(b.cmd_str("GET k"), Value::NullBulk);
    // The backend holds only prefixed keys.
    let mut direct = Conn::connect(&backend.addr());
    assert_eq!(
        sorted(direct.cmd_str("KEYS *")),
        sorted(Value::Array(vec![
            bulk("a:k"),
            bulk("a:shared"),
            bulk("b*?[shared"),
            bulk("b*?[a:k"),
        ]))
    );
    // KEYS and SCAN: own keys only, without the prefix; b's glob characters do not widen.
    assert_eq!(
        sorted(a.cmd_str("KEYS *")),
        sorted(Value::Array(vec![bulk("k"), bulk("shared")]))
    );
    assert_eq!(
        sorted(b.cmd_str("KEYS *")),
        sorted(Value::Array(vec![bulk("shared"), bulk("a:k")]))
    );
    match a.cmd_str("SCAN 0 COUNT 100") {
        Value::Array(parts) => assert_eq!(
            parts[1].sorted(),
            Value::Array(vec![bulk("k"), bulk("shared")]).sorted()
        ),
        other => panic!("SCAN: {other:?}"),
    }
    // Whole-keyspace commands act on the tenant only.
    assert_eq!(a.cmd_str("DBSIZE"), Value::Int(2));
    assert_eq!(b.cmd_str("DBSIZE"), Value::Int(2));
    assert_eq!(a.cmd_str("FLUSHDB"), ok());
    assert_eq!(a.cmd_str("DBSIZE"), Value::Int(0));
    assert_eq!(b.cmd_str("DBSIZE"), Value::Int(2));
    // Blocking pops answer the key without the prefix.
    let mut waiter = login(&gate.addr, "ua", "pa");
    waiter.send(&[b"BLPOP", b"q", b"5"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(b.cmd_str("RPUSH q wrong-tenant"), Value::Int(1));
    assert_eq!(a.cmd_str("RPUSH q x"), Value::Int(1));
    assert_eq!(waiter.read(), Value::Array(vec![bulk("q"), bulk("x")]));
    // Transactions run inside the namespace.
    a.cmd_str("MULTI");
    a.cmd_str("INCR n");
    a.cmd_str("INCR n");
    assert_eq!(
        a.cmd_str("EXEC"),
        Value::Array(vec![Value::Int(1), Value::Int(2)])
    );
    assert_eq!(direct.cmd_str("GET a:n"), bulk("2"));
    // Scripts could name any key: refused.
    assert!(a.cmd_str("EVAL return(1) 0").is_error());
    // Pub/sub: channels are namespaced too.
    let mut sub = login(&gate.addr, "ua", "pa");
    sub.cmd_str("SUBSCRIBE news");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while direct.cmd_str("PUBSUB NUMSUB a:news")
        != Value::Array(vec![bulk("a:news"), Value::Int(1)])
    {
        assert!(
            std::time::Instant::now() < deadline,
            "bridge did not subscribe"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    b.cmd_str("PUBLISH news from-b");
    a.cmd_str("PUBLISH news from-a");
    assert_eq!(
        sub.read(),
        Value::Array(vec![bulk("message"), bulk("news"), bulk("from-a")])
    );
}

#[test]
fn tenants_stay_in_their_namespace_through_a_cluster() {
    let cluster = RedisCluster::shared();
    let nodes: Vec<String> = cluster.addrs().iter().map(|a| format!("\"{a}\"")).collect();
    let cfg = format!(
        "{TENANTS}[backend]\nmode = \"cluster\"\nnodes = [{}]\n",
        nodes.join(", ")
    );
    let gate = Respgate::start_with(&["--config", &temp_config(&cfg)]);
    let mut a = login(&gate.addr, "ua", "pa");
    let mut b = login(&gate.addr, "ub", "pb");
    // Hash tags still group keys: the prefix goes outside the braces.
    assert_eq!(a.cmd_str("MSET tf:{u}:x 1 tf:{u}:y 2"), ok());
    assert_eq!(a.cmd_str("RENAME tf:{u}:x tf:{u}:z"), ok());
    assert_eq!(b.cmd_str("MSET tf:1 1 tf:2 2 tf:3 3"), ok());
    assert_eq!(
        a.cmd_str("MGET tf:{u}:z tf:{u}:y tf:1"),
        Value::Array(vec![bulk("1"), bulk("2"), Value::NullBulk])
    );
    assert_eq!(
        sorted(b.cmd_str("KEYS tf:*")),
        sorted(Value::Array(vec![bulk("tf:1"), bulk("tf:2"), bulk("tf:3")]))
    );
    match a.cmd_str("DBSIZE") {
        Value::Int(n) => assert_eq!(n, 2),
        other => panic!("DBSIZE {other:?}"),
    }
}

fn ttl(c: &mut Conn, key: &str) -> i64 {
    match c.cmd(&[b"TTL", key.as_bytes()]) {
        Value::Int(t) => t,
        other => panic!("TTL {key}: {other:?}"),
    }
}

#[test]
fn ttl_rules_hold_through_a_standalone_backend() {
    let backend = RedisServer::start();
    let cfg = format!(
        r#"{TENANTS}
[[tenants.ttl]]
pattern = "tile:*"
default_ttl = "10m"
max_ttl = "1h"
mode = "clamp"
[[tenants.ttl]]
pattern = "lock:*"
require_ttl = true
max_ttl = "5m"
mode = "reject"
[backend]
mode = "standalone"
address = "{}"
"#,
        backend.addr()
    );
    let gate = Respgate::start_with(&["--config", &temp_config(&cfg)]);
    let mut b = login(&gate.addr, "ub", "pb");
    let mut direct = Conn::connect(&backend.addr());
    // Default TTL on a created key, whatever the type; the client sees its own reply.
    assert_eq!(b.cmd_str("SET tile:1 x"), ok());
    assert_eq!(b.cmd_str("HSET tile:2 f v"), Value::Int(1));
    assert_eq!(b.cmd_str("INCR tile:3"), Value::Int(1));
    for k in ["b*?[tile:1", "b*?[tile:2", "b*?[tile:3"] {
        let t = ttl(&mut direct, k);
        assert!((590..=600).contains(&t), "{k}: {t}");
    }
    // A longer TTL is clamped; an existing TTL is never lengthened by the default.
    assert_eq!(b.cmd_str("EXPIRE tile:1 86400"), Value::Int(1));
    let t = ttl(&mut b, "tile:1");
    assert!((3590..=3600).contains(&t), "clamped to {t}");
    assert_eq!(b.cmd_str("EXPIRE tile:2 30"), Value::Int(1));
    assert_eq!(b.cmd_str("HSET tile:2 g w"), Value::Int(1));
    assert!(ttl(&mut b, "tile:2") <= 30);
    // Reject mode: a lock needs a TTL of at most 5 minutes.
    assert_eq!(
        b.cmd_str("SET lock:1 x"),
        Value::Error("ERR respgate: TTL policy lock:* requires a TTL for key 'lock:1'".into())
    );
    assert_eq!(
        b.cmd_str("SET lock:1 x EX 3600"),
        Value::Error("ERR respgate: TTL policy lock:* allows at most 5m for key 'lock:1'".into())
    );
    assert_eq!(b.cmd_str("SET lock:1 x NX PX 30000"), ok());
    assert_eq!(direct.cmd_str("EXISTS b*?[lock:1"), Value::Int(1));
    // Inside MULTI the client gets only its own replies.
    b.cmd_str("MULTI");
    b.cmd_str("SET tile:9 a");
    b.cmd_str("GET tile:9");
    assert_eq!(b.cmd_str("EXEC"), Value::Array(vec![ok(), bulk("a")]));
    let t = ttl(&mut direct, "b*?[tile:9");
    assert!((590..=600).contains(&t), "{t}");
    // Tenant a has no rules: untouched.
    let mut a = login(&gate.addr, "ua", "pa");
    assert_eq!(a.cmd_str("SET tile:1 x"), ok());
    assert_eq!(ttl(&mut a, "tile:1"), -1);
}
