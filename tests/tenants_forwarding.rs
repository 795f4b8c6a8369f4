//! Tenants when forwarding: respgate in front of a real redis-server (and a real cluster)
//! keeps each tenant inside its namespace — keys, channels, patterns in; keys and channels
//! in replies out — and the backend holds only correctly prefixed keys.

mod common;

use std::time::Duration;

use common::redis_cluster::RedisCluster;
use common::redis_server::RedisServer;
use common::resp::{Conn, Value};
use common::respgate::{Respgate, temp_config};

/// Tenant c has no keys (RANDOMKEY's nil). b comes last: tests append `[[tenants.ttl]]`
/// rules for it.
const TENANTS: &str = r#"
[server]
auth_failures_per_minute = 0
[[tenants]]
name = "c"
username = "uc"
password = "pc"
prefix = "c:"
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
    for _ in 0..20 {
        let key = a.cmd_str("RANDOMKEY");
        assert!(key == bulk("k") || key == bulk("shared"), "{key:?}");
    }
    assert_eq!(
        login(&gate.addr, "uc", "pc").cmd_str("RANDOMKEY"),
        Value::NullBulk
    );
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
    // Scripts could name any key: refused, inside MULTI too (queued, it fails the EXEC
    // as any command Redis rejects while queuing does, and never reaches the backend).
    assert!(a.cmd_str("EVAL return(1) 0").is_error());
    assert_eq!(b.cmd_str("SET secret b-only"), ok());
    let sneak = "return redis.call('SET', 'b*?[secret', 'from-a')";
    assert_eq!(a.cmd_str("MULTI"), ok());
    assert!(a.cmd(&[b"EVAL", sneak.as_bytes(), b"0"]).is_error());
    assert!(a.cmd_str("SCRIPT LOAD return(1)").is_error());
    assert_eq!(
        a.cmd_str("EXEC"),
        Value::Error("EXECABORT Transaction discarded because of previous errors.".into())
    );
    assert_eq!(b.cmd_str("GET secret"), bulk("b-only"));
    // Inside MULTI, replies that name keys lose the prefix as they do outside it, error
    // texts that quote a key too; DBSIZE and FLUSHDB keep to the namespace.
    assert_eq!(a.cmd_str("SET m 1"), ok());
    assert_eq!(a.cmd_str("MULTI"), ok());
    for c in [
        "KEYS *",
        "DBSIZE",
        "SCAN 0 COUNT 100",
        "XPENDING nostream g",
        "FLUSHDB",
    ] {
        assert_eq!(a.cmd_str(c), Value::Simple("QUEUED".into()), "{c}");
    }
    let nogroup = "NOGROUP No such key 'nostream' or consumer group 'g'";
    match a.cmd_str("EXEC") {
        Value::Array(r) => {
            assert_eq!(
                r[0].sorted(),
                Value::Array(vec![bulk("m"), bulk("n")]).sorted()
            );
            assert_eq!(r[1], Value::Int(2));
            assert_eq!(
                r[2].sorted(),
                Value::Array(vec![bulk("0"), Value::Array(vec![bulk("m"), bulk("n")])]).sorted()
            );
            assert_eq!(r[3], Value::Error(nogroup.into()));
            assert_eq!(r[4], ok());
        }
        other => panic!("EXEC {other:?}"),
    }
    assert_eq!(a.cmd_str("DBSIZE"), Value::Int(0));
    assert_eq!(b.cmd_str("DBSIZE"), Value::Int(4));
    // The backend's INFO counts every tenant's keys: a tenant sees no Keyspace rows.
    match a.cmd_str("INFO keyspace") {
        Value::Bulk(text) => {
            let text = String::from_utf8_lossy(&text).into_owned();
            assert!(
                text.contains("# Keyspace") && !text.contains("keys="),
                "{text}"
            );
        }
        other => panic!("INFO {other:?}"),
    }
    // Outside MULTI the same error text, without the prefix.
    assert_eq!(
        a.cmd_str("XPENDING nostream g"),
        Value::Error(nogroup.into())
    );
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

/// A tenant's DBSIZE and FLUSHDB visit every key of a shared server (Redis cannot count or
/// flush by prefix), but in short steps: the server is never held long, so other clients'
/// commands run between them. The server's slowlog (threshold 100 ms) stays empty where one
/// script over a million keys takes about 250 ms here; in a pipeline the answers keep their
/// order.
#[test]
fn a_tenants_dbsize_and_flushdb_do_not_hold_a_shared_server() {
    let backend = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let mut direct = Conn::connect(&backend.addr());
    assert_eq!(direct.cmd_str("DEBUG POPULATE 1000000 other"), ok());
    assert_eq!(
        direct.cmd_str("CONFIG SET slowlog-log-slower-than 100000"),
        ok()
    );
    assert_eq!(direct.cmd_str("SLOWLOG RESET"), ok());
    let cfg = format!(
        "{TENANTS}[backend]\nmode = \"standalone\"\naddress = \"{}\"\n",
        backend.addr()
    );
    let gate = Respgate::start_with(&["--config", &temp_config(&cfg)]);
    let mut a = login(&gate.addr, "ua", "pa");
    for c in [
        "SET x 1", "DBSIZE", "SET y 2", "DBSIZE", "FLUSHDB", "DBSIZE", "SET z 3", "DBSIZE",
    ] {
        let args = common::resp::split_args(c);
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        a.send(&refs);
    }
    let replies: Vec<Value> = (0..8).map(|_| a.read()).collect();
    assert_eq!(
        replies,
        vec![
            ok(),
            Value::Int(1),
            ok(),
            Value::Int(2),
            ok(),
            Value::Int(0),
            ok(),
            Value::Int(1)
        ]
    );
    assert_eq!(direct.cmd_str("DBSIZE"), Value::Int(1_000_001));
    assert_eq!(direct.cmd_str("SLOWLOG LEN"), Value::Int(0));
    // FLUSHALL: the tenant's keys in every db, nobody else's.
    let mut b = login(&gate.addr, "ub", "pb");
    for c in [&mut a, &mut b] {
        assert_eq!(c.cmd_str("SELECT 2"), ok());
        assert_eq!(c.cmd_str("SET in2 v"), ok());
        assert_eq!(c.cmd_str("SELECT 0"), ok());
    }
    assert_eq!(a.cmd_str("FLUSHALL"), ok());
    assert_eq!(a.cmd_str("DBSIZE"), Value::Int(0));
    assert_eq!(a.cmd_str("SELECT 2"), ok());
    assert_eq!(a.cmd_str("DBSIZE"), Value::Int(0));
    assert_eq!(b.cmd_str("SELECT 2"), ok());
    assert_eq!(b.cmd_str("GET in2"), bulk("v"));
    assert_eq!(direct.cmd_str("DBSIZE"), Value::Int(1_000_000));
    assert_eq!(direct.cmd_str("SLOWLOG LEN"), Value::Int(0));
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
    // RANDOMKEY finds the tenant's keys on whichever master holds them, and not always on
    // the same master: each master holding some gets its turn.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..60 {
        let key = b.cmd_str("RANDOMKEY");
        assert!(
            [bulk("tf:1"), bulk("tf:2"), bulk("tf:3")].contains(&key),
            "{key:?}"
        );
        if let Value::Bulk(k) = key {
            seen.insert(String::from_utf8_lossy(&k).into_owned());
        }
    }
    // The masters holding these of b's keys (the prefix is b's).
    let owners = |keys: Vec<&str>| {
        keys.into_iter()
            .map(|k| owner_of(&cluster, &format!("b*?[{k}")))
            .collect::<std::collections::HashSet<_>>()
    };
    let holding = owners(vec!["tf:1", "tf:2", "tf:3"]);
    assert!(holding.len() > 1, "b's keys sit on one master: {holding:?}");
    assert_eq!(
        owners(seen.iter().map(String::as_str).collect()),
        holding,
        "RANDOMKEY answered {seen:?}"
    );
    assert_eq!(
        login(&gate.addr, "uc", "pc").cmd_str("RANDOMKEY"),
        Value::NullBulk
    );
    // A transaction runs on one node: DBSIZE (every master's keys) cannot be in it.
    assert_eq!(a.cmd_str("MULTI"), ok());
    assert!(a.cmd_str("DBSIZE").is_error());
    assert!(a.cmd_str("EXEC").is_error());
    // Replies naming keys inside one lose the prefix.
    assert_eq!(a.cmd_str("RPUSH tf:{u}:l v"), Value::Int(1));
    assert_eq!(a.cmd_str("MULTI"), ok());
    assert_eq!(
        a.cmd_str("LMPOP 1 tf:{u}:l LEFT"),
        Value::Simple("QUEUED".into())
    );
    assert_eq!(
        a.cmd_str("EXEC"),
        Value::Array(vec![Value::Array(vec![
            bulk("tf:{u}:l"),
            Value::Array(vec![bulk("v")])
        ])])
    );
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

/// The `ACL SETUSER` line README.md and config/tenants.toml document, for prefix `a:`.
const BACKEND_ACL: &str = "ACL SETUSER a-backend on >a-secret resetkeys ~a:* resetchannels &a:* \
+@all -@dangerous -script|flush -function|flush -function|delete";

#[test]
fn a_tenant_with_its_own_backend_user_runs_scripts_confined_by_redis() {
    let backend = RedisServer::start();
    let mut direct = Conn::connect(&backend.addr());
    assert_eq!(direct.cmd_str(BACKEND_ACL), ok());
    let cfg = format!(
        r#"[server]
auth_failures_per_minute = 0
[[tenants]]
name = "a"
username = "ua"
password = "pa"
prefix = "a:"
backend_username = "a-backend"
backend_password = "a-secret"
[[tenants]]
name = "b"
username = "ub"
password = "pb"
prefix = "b:"
[backend]
mode = "standalone"
address = "{}"
"#,
        backend.addr()
    );
    let gate = Respgate::start_with(&["--config", &temp_config(&cfg)]);
    let mut a = login(&gate.addr, "ua", "pa");
    let mut b = login(&gate.addr, "ub", "pb");
    assert_eq!(b.cmd_str("SET x b-secret"), ok());
    assert_eq!(a.cmd_str("SET k 1"), ok());
    // Its own keys, named through KEYS (prefixed by respgate): fine.
    let get = "return redis.call('GET', KEYS[1])";
    assert_eq!(a.cmd(&[b"EVAL", get.as_bytes(), b"1", b"k"]), bulk("1"));
    let set = "return redis.call('SET', KEYS[1], ARGV[1])";
    assert_eq!(a.cmd(&[b"EVAL", set.as_bytes(), b"1", b"s", b"v"]), ok());
    assert_eq!(direct.cmd_str("GET a:s"), bulk("v"));
    // The script names another tenant's key itself: Redis's ACL refuses it (Redis 7.0
    // words its ACL error inside a script this way; 7.2 says NOPERM).
    let sneak = "return redis.call('GET', 'b:x')";
    match a.cmd(&[b"EVAL", sneak.as_bytes(), b"0"]) {
        Value::Error(e) => assert!(
            e.contains("can't access at least one of the keys") || e.contains("NOPERM"),
            "{e}"
        ),
        other => panic!("b's key read by a's script: {other:?}"),
    }
    let flush = "return redis.call('FLUSHALL')";
    assert!(a.cmd(&[b"EVAL", flush.as_bytes(), b"0"]).is_error());
    assert_eq!(direct.cmd_str("GET b:x"), bulk("b-secret"));
    // SCRIPT LOAD / EVALSHA too.
    let sha = match a.cmd(&[b"SCRIPT", b"LOAD", get.as_bytes()]) {
        Value::Bulk(s) => s,
        other => panic!("SCRIPT LOAD: {other:?}"),
    };
    assert_eq!(a.cmd(&[b"EVALSHA", &sha, b"1", b"k"]), bulk("1"));
    // Whole-namespace commands still work over the tenant's own login; a blocking command
    // (its own connection) too.
    assert_eq!(a.cmd_str("DBSIZE"), Value::Int(2));
    assert_eq!(a.cmd_str("RPUSH q v"), Value::Int(1));
    assert_eq!(
        a.cmd_str("BLPOP q 1"),
        Value::Array(vec![bulk("q"), bulk("v")])
    );
    // respgate's connections for tenant a log in as a-backend.
    let Value::Bulk(list) = direct.cmd_str("CLIENT LIST") else {
        panic!("CLIENT LIST")
    };
    assert!(
        String::from_utf8_lossy(&list).contains("user=a-backend"),
        "{}",
        String::from_utf8_lossy(&list)
    );
    // A tenant without a backend user keeps the refusal.
    assert!(matches!(
        b.cmd(&[b"EVAL", get.as_bytes(), b"1", b"x"]),
        Value::Error(e) if e.contains("not available to tenants")
    ));
    // The same client logging in as b afterwards leaves a's backend login behind.
    assert_eq!(a.cmd_str("AUTH ub pb"), ok());
    assert_eq!(a.cmd_str("GET x"), bulk("b-secret"));
}

/// A backend ACL user on every node of a cluster (ACLs are per node), removed again when
/// dropped: the shared cluster must not keep it for other tests.
struct ClusterAclUser<'a> {
    cluster: &'a RedisCluster,
    name: String,
}

impl<'a> ClusterAclUser<'a> {
    fn create(cluster: &'a RedisCluster, name: &str, password: &str, prefix: &str) -> Self {
        let user = ClusterAclUser {
            cluster,
            name: name.to_string(),
        };
        for addr in cluster.addrs() {
            let line = format!(
                "ACL SETUSER {name} on >{password} resetkeys ~{prefix}* resetchannels &{prefix}* \
                 +@all -@dangerous -script|flush -function|flush -function|delete"
            );
            assert_eq!(cluster.conn(&addr).cmd_str(&line), ok(), "{addr}");
        }
        user
    }
}

impl Drop for ClusterAclUser<'_> {
    fn drop(&mut self) {
        for addr in self.cluster.addrs() {
            if let Some(mut c) = self.cluster.try_conn(&addr) {
                c.cmd(&[b"ACL", b"DELUSER", self.name.as_bytes()]);
            }
        }
    }
}

/// The master serving `key` now (the one that does not answer MOVED).
fn owner_of(cluster: &RedisCluster, key: &str) -> String {
    cluster
        .masters()
        .into_iter()
        .find(|m| !cluster.conn(m).cmd(&[b"TYPE", key.as_bytes()]).is_error())
        .unwrap_or_else(|| panic!("no master serves {key}"))
}

/// Runs `args` on `addr`, expecting +OK.
fn node_ok(addr: &str, args: &[&str]) {
    let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let reply = Conn::connect(addr).cmd(&argv);
    assert_eq!(reply, ok(), "{args:?} on {addr}");
}

/// Slot `slot` belongs to `to`: told to `to` first (it bumps its epoch), then every master.
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
fn a_cluster_tenant_with_its_own_backend_user_runs_scripts_confined_by_redis() {
    let cluster = RedisCluster::shared();
    // Names of this run only: the shared cluster's other tests never see them.
    let id = std::process::id();
    let (pa, pb) = (format!("acl{id}a:"), format!("acl{id}b:"));
    let backend_user = format!("rg-acl-{id}");
    let _acl = ClusterAclUser::create(&cluster, &backend_user, "acl-secret", &pa);
    let nodes: Vec<String> = cluster.addrs().iter().map(|a| format!("\"{a}\"")).collect();
    let cfg = format!(
        r#"[server]
auth_failures_per_minute = 0
[[tenants]]
name = "a"
username = "ua"
password = "pa"
prefix = "{pa}"
backend_username = "{backend_user}"
backend_password = "acl-secret"
[[tenants]]
name = "b"
username = "ub"
password = "pb"
prefix = "{pb}"
[backend]
mode = "cluster"
nodes = [{}]
"#,
        nodes.join(", ")
    );
    let gate = Respgate::start_with(&["--config", &temp_config(&cfg)]);
    let mut a = login(&gate.addr, "ua", "pa");
    let mut b = login(&gate.addr, "ub", "pb");
    assert_eq!(b.cmd_str("SET {u}:x b-secret"), ok());
    assert_eq!(a.cmd_str("SET {u}:k 1"), ok());
    // Its own keys, named through KEYS (prefixed by respgate, routed by their slot).
    let get = "return redis.call('GET', KEYS[1])";
    assert_eq!(a.cmd(&[b"EVAL", get.as_bytes(), b"1", b"{u}:k"]), bulk("1"));
    let mset = "return redis.call('MSET', KEYS[1], ARGV[1], KEYS[2], ARGV[2])";
    assert_eq!(
        a.cmd(&[
            b"EVAL",
            mset.as_bytes(),
            b"2",
            b"{u}:s",
            b"{u}:t",
            b"1",
            b"2"
        ]),
        ok()
    );
    let owner = owner_of(&cluster, &format!("{pa}{{u}}:s"));
    assert_eq!(
        cluster
            .conn(&owner)
            .cmd_str(&format!("MGET {pa}{{u}}:s {pa}{{u}}:t")),
        Value::Array(vec![bulk("1"), bulk("2")])
    );
    // Keys of several slots: what a cluster node says.
    assert_eq!(
        a.cmd(&[b"EVAL", get.as_bytes(), b"2", b"k1", b"k2"]),
        Value::Error("CROSSSLOT Keys in request don't hash to the same slot".into())
    );
    // The script names another tenant's key (same slot, so only the ACL can refuse it):
    // Redis 7.0 words its ACL error inside a script this way, 7.2 says NOPERM.
    let sneak = format!("redis.call('GET', KEYS[1]) return redis.call('GET', '{pb}{{u}}:x')");
    match a.cmd(&[b"EVAL", sneak.as_bytes(), b"1", b"{u}:k"]) {
        Value::Error(e) => assert!(
            e.contains("can't access at least one of the keys") || e.contains("NOPERM"),
            "{e}"
        ),
        other => panic!("b's key read by a's script: {other:?}"),
    }
    assert_eq!(b.cmd_str("GET {u}:x"), bulk("b-secret"));
    // SCRIPT LOAD reaches every master, so EVALSHA works whatever slot its keys are in.
    let sha = match a.cmd(&[b"SCRIPT", b"LOAD", get.as_bytes()]) {
        Value::Bulk(s) => s,
        other => panic!("SCRIPT LOAD: {other:?}"),
    };
    for m in cluster.masters() {
        assert_eq!(
            cluster.conn(&m).cmd(&[b"SCRIPT", b"EXISTS", &sha]),
            Value::Array(vec![Value::Int(1)]),
            "{m}"
        );
    }
    assert_eq!(a.cmd(&[b"EVALSHA", &sha, b"1", b"{u}:k"]), bulk("1"));
    assert_eq!(a.cmd(&[b"EVALSHA", &sha, b"1", b"other"]), Value::NullBulk);
    assert_eq!(
        a.cmd(&[b"SCRIPT", b"EXISTS", &sha]),
        Value::Array(vec![Value::Int(1)])
    );
    // FUNCTION LOAD would reach one master only: still refused in cluster mode.
    assert!(matches!(
        a.cmd_str("FUNCTION LIST"),
        Value::Error(e) if e.contains("cluster mode")
    ));
    // Split and fanned-out commands over the tenant's login: MSET/MGET/DEL across slots,
    // SCAN and DBSIZE (a SCAN script on every master), KEYS refused by the ACL
    // (@dangerous) with Redis's own NOPERM.
    let keys: Vec<String> = (0..12).map(|i| format!("m{i}")).collect();
    let mut mset = vec!["MSET".to_string()];
    for k in &keys {
        mset.extend([k.clone(), format!("v-{k}")]);
    }
    assert_eq!(a.cmd_str(&mset.join(" ")), ok());
    assert_eq!(
        a.cmd_str(&format!("MGET {}", keys.join(" "))),
        Value::Array(keys.iter().map(|k| bulk(&format!("v-{k}"))).collect())
    );
    let mut seen = 0;
    for m in cluster.masters() {
        if let Value::Array(found) = cluster.conn(&m).cmd_str(&format!("KEYS {pa}m*")) {
            seen += found.len();
        }
    }
    assert_eq!(seen, keys.len());
    assert_eq!(a.cmd_str("DBSIZE"), Value::Int(15));
    let mut scanned = 0;
    let mut cursor = "0".to_string();
    loop {
        let Value::Array(parts) = a.cmd_str(&format!("SCAN {cursor} COUNT 100")) else {
            panic!("SCAN")
        };
        let [Value::Bulk(c), Value::Array(found)] = &parts[..] else {
            panic!("SCAN {parts:?}")
        };
        scanned += found.len();
        cursor = String::from_utf8_lossy(c).into_owned();
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(scanned, 15);
    assert!(matches!(a.cmd_str("KEYS *"), Value::Error(e) if e.starts_with("NOPERM")));
    assert_eq!(
        a.cmd_str(&format!("DEL {}", keys.join(" "))),
        Value::Int(keys.len() as i64)
    );
    // Pinned connections (blocking commands, WATCH ... EXEC) log in as the tenant's user.
    assert_eq!(a.cmd_str("RPUSH {u}:q v"), Value::Int(1));
    assert_eq!(
        a.cmd_str("BLPOP {u}:q 1"),
        Value::Array(vec![bulk("{u}:q"), bulk("v")])
    );
    assert_eq!(a.cmd_str("WATCH {u}:k"), ok());
    assert_eq!(a.cmd_str("MULTI"), ok());
    assert_eq!(a.cmd_str("INCR {u}:k"), Value::Simple("QUEUED".into()));
    assert_eq!(a.cmd_str("EXEC"), Value::Array(vec![Value::Int(2)]));
    let Value::Bulk(list) = cluster.conn(&owner).cmd_str("CLIENT LIST") else {
        panic!("CLIENT LIST")
    };
    let list = String::from_utf8_lossy(&list).into_owned();
    assert!(list.contains(&format!("user={backend_user}")), "{list}");
    // Redirections are followed over the tenant's login too: ASK while the slot of
    // {mv<id>} migrates, MOVED once it moved (respgate's map still names the source). The
    // first command after each is a script reading b's key in that slot: only the ACL
    // refuses it (as the configured user it would read nil), so the resend logged in as
    // a's user.
    let tag = format!("mv{id}");
    let slot = match cluster
        .conn(&owner)
        .cmd(&[b"CLUSTER", b"KEYSLOT", tag.as_bytes()])
    {
        Value::Int(s) => s.to_string(),
        other => panic!("KEYSLOT {other:?}"),
    };
    let from = owner_of(&cluster, &format!("{pa}{{{tag}}}:probe"));
    let to = cluster
        .masters()
        .into_iter()
        .find(|m| *m != from)
        .unwrap_or_default();
    let k1 = format!("{{{tag}}}:ask");
    let k2 = format!("{{{tag}}}:moved");
    assert_eq!(a.cmd(&[b"GET", k1.as_bytes()]), Value::NullBulk);
    let (from_id, to_id) = (cluster.node_id(&from), cluster.node_id(&to));
    node_ok(&to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]);
    node_ok(&from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]);
    let set = "return redis.call('SET', KEYS[1], ARGV[1])";
    let sneak = format!("redis.call('GET', KEYS[1]) return redis.call('GET', '{pb}{{{tag}}}:x')");
    let sneak_asked = a.cmd(&[b"EVAL", sneak.as_bytes(), b"1", k1.as_bytes()]);
    let asked = a.cmd(&[b"EVAL", set.as_bytes(), b"1", k1.as_bytes(), b"1"]);
    give_slot(&cluster, &slot, &to);
    let sneak_moved = a.cmd(&[b"EVAL", sneak.as_bytes(), b"1", k2.as_bytes()]);
    let moved = a.cmd(&[b"EVAL", set.as_bytes(), b"1", k2.as_bytes(), b"2"]);
    let read = a.cmd(&[b"MGET", k1.as_bytes(), k2.as_bytes()]);
    let deleted = a.cmd(&[b"DEL", k1.as_bytes(), k2.as_bytes()]);
    give_slot(&cluster, &slot, &from);
    for (when, reply) in [("ASK", sneak_asked), ("MOVED", sneak_moved)] {
        match reply {
            Value::Error(e) => assert!(
                e.contains("can't access at least one of the keys") || e.contains("NOPERM"),
                "after {when}: {e}"
            ),
            other => panic!("after {when}: b's key read by a's script: {other:?}"),
        }
    }
    assert_eq!(asked, ok(), "after ASK");
    assert_eq!(moved, ok(), "after MOVED");
    assert_eq!(read, Value::Array(vec![bulk("1"), bulk("2")]));
    assert_eq!(deleted, Value::Int(2));
    // A tenant without a backend user keeps the refusal; a's FLUSHDB leaves b's keys.
    assert!(matches!(
        b.cmd(&[b"EVAL", get.as_bytes(), b"1", b"{u}:x"]),
        Value::Error(e) if e.contains("not available to tenants")
    ));
    assert_eq!(a.cmd_str("FLUSHDB"), ok());
    assert_eq!(a.cmd_str("DBSIZE"), Value::Int(0));
    assert_eq!(b.cmd_str("GET {u}:x"), bulk("b-secret"));
    assert_eq!(b.cmd_str("DEL {u}:x"), Value::Int(1));
}
