//! Tenants over real sockets (embedded engine): two applications cannot see or touch each
//! other's keys or channels, namespace-wide commands stay in the namespace, command policy
//! answers Redis's NOPERM, AUTH maps credentials to tenants; and a tenant's view through
//! respgate equals a private redis-server's view of the same commands — also with respgate
//! forwarding to a real Redis Cluster, whose masters then hold only prefixed keys.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::redis_cluster::RedisCluster;
use common::redis_server::RedisServer;
use common::resp::{Conn, Value, split_args};
use common::respgate::{Respgate, temp_config};

/// Tenant `a` has a plain prefix; `b`'s prefix holds glob metacharacters, so a pattern that
/// did not escape it would match other keys; `ro` is read-only; `admin` via requirepass.
const CONFIG: &str = r#"
[server]
requirepass = "root-pw"
auth_failures_per_minute = 0
[[tenants]]
name = "a"
username = "ua"
password = "pa"
prefix = "a:"
[[tenants]]
name = "b"
username = "ub"
password_sha256 = "ecd2e5a5dd06e9e92d7dc0ba7e60a3ba0ea5e0be6c65e1dbd2e0ed3aa2cb4f4f"
prefix = "b*?["
deny = ["@admin", "flushall"]
[[tenants]]
name = "ro"
username = "ro"
password = "pro"
prefix = "ro:"
read_only = true
"#;

/// `password_sha256` above is the SHA-256 of this.
const B_PASSWORD: &str = "pb";

fn start() -> Respgate {
    let cfg = CONFIG.replace(
        "ecd2e5a5dd06e9e92d7dc0ba7e60a3ba0ea5e0be6c65e1dbd2e0ed3aa2cb4f4f",
        &sha256_hex(B_PASSWORD),
    );
    Respgate::start_with(&["--config", &temp_config(&cfg)])
}

/// SHA-256 through the coreutils tool, independent of respgate's own implementation.
fn sha256_hex(s: &str) -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", &format!("printf %s '{s}' | sha256sum")])
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

fn login(addr: &str, user: &str, pass: &str) -> Conn {
    let mut c = Conn::connect(addr);
    assert_eq!(
        c.cmd(&[b"AUTH", user.as_bytes(), pass.as_bytes()]),
        ok(),
        "AUTH {user}"
    );
    c
}

fn ok() -> Value {
    Value::Simple("OK".into())
}

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

fn cmd(c: &mut Conn, line: &str) -> Value {
    let args = split_args(line);
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    c.cmd(&refs)
}

fn strings(v: &Value) -> BTreeSet<String> {
    match v {
        Value::Array(items) | Value::Set(items) => items
            .iter()
            .filter_map(|i| i.as_bytes())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect(),
        other => panic!("not a list: {other:?}"),
    }
}

/// Every key a full SCAN returns.
fn scan_all(c: &mut Conn, extra: &str) -> BTreeSet<String> {
    let mut cursor = "0".to_string();
    let mut keys = BTreeSet::new();
    loop {
        let r = cmd(c, &format!("SCAN {cursor} {extra}"));
        let Value::Array(parts) = r else {
            panic!("SCAN: {r:?}")
        };
        cursor = String::from_utf8_lossy(parts[0].as_bytes().unwrap()).into_owned();
        keys.extend(strings(&parts[1]));
        if cursor == "0" {
            return keys;
        }
    }
}

fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn tenants_cannot_see_or_touch_each_others_keys() {
    let gate = start();
    let mut a = login(&gate.addr, "ua", "pa");
    let mut b = login(&gate.addr, "ub", B_PASSWORD);
    // Keys named like the other's prefix, and glob metacharacters.
    for k in ["k", "shared", "b*?[k", "x[1]", "*"] {
        assert_eq!(cmd(&mut a, &format!("SET {k} from-a")), ok());
    }
    for k in ["k", "shared", "a:k", "y?"] {
        assert_eq!(cmd(&mut b, &format!("SET {k} from-b")), ok());
    }
    let a_keys = set_of(&["k", "shared", "b*?[k", "x[1]", "*"]);
    let b_keys = set_of(&["k", "shared", "a:k", "y?"]);
    assert_eq!(strings(&cmd(&mut a, "KEYS *")), a_keys);
    assert_eq!(strings(&cmd(&mut b, "KEYS *")), b_keys);
    assert_eq!(scan_all(&mut a, ""), a_keys);
    assert_eq!(scan_all(&mut b, "COUNT 2"), b_keys);
    assert_eq!(scan_all(&mut b, "MATCH *k"), set_of(&["k", "a:k"]));
    assert_eq!(strings(&cmd(&mut a, "KEYS b*")), set_of(&["b*?[k"]));
    assert_eq!(cmd(&mut a, "GET k"), bulk("from-a"));
    assert_eq!(cmd(&mut b, "GET k"), bulk("from-b"));
    // b's "a:k" is not a's "k"; a's "b*?[k" is not b's "k".
    assert_eq!(cmd(&mut b, "GET a:k"), bulk("from-b"));
    assert_eq!(cmd(&mut a, "GET b*?[k"), bulk("from-a"));
    assert_eq!(cmd(&mut a, "DEL k shared"), Value::Int(2));
    assert_eq!(
        cmd(&mut b, "MGET k shared"),
        Value::Array(vec![bulk("from-b"), bulk("from-b")])
    );
    assert_eq!(cmd(&mut a, "EXISTS y?"), Value::Int(0));
    assert_eq!(cmd(&mut a, "RENAME x[1] y?"), ok());
    assert_eq!(cmd(&mut b, "GET y?"), bulk("from-b"));

    // The engine holds only correctly prefixed keys (seen by the requirepass admin).
    let mut admin = login(&gate.addr, "default", "root-pw");
    let physical = strings(&cmd(&mut admin, "KEYS *"));
    let expected: BTreeSet<String> = ["b*?[k", "*", "y?"]
        .iter()
        .map(|k| format!("a:{k}"))
        .chain(b_keys.iter().map(|k| format!("b*?[{k}")))
        .collect();
    assert_eq!(physical, expected);
    // An escaped prefix: a's pattern cannot widen to b's keys through b's metacharacters.
    assert_eq!(cmd(&mut a, "DBSIZE"), Value::Int(3));
    assert_eq!(cmd(&mut b, "DBSIZE"), Value::Int(4));
    assert_eq!(cmd(&mut admin, "DBSIZE"), Value::Int(7));
    let info = |c: &mut Conn| {
        let v = cmd(c, "INFO keyspace");
        String::from_utf8_lossy(v.as_bytes().unwrap_or_default()).into_owned()
    };
    assert!(
        info(&mut a).contains("db0:keys=3,expires=0"),
        "{}",
        info(&mut a)
    );
    assert!(info(&mut admin).contains("db0:keys=7,expires=0"));
}

#[test]
fn namespace_wide_commands_stay_in_the_namespace() {
    let gate = start();
    let mut a = login(&gate.addr, "ua", "pa");
    let mut b = login(&gate.addr, "ub", B_PASSWORD);
    for i in 0..20 {
        cmd(&mut a, &format!("SET ka{i} v"));
    }
    cmd(&mut b, "SET only v");
    assert_eq!(cmd(&mut b, "RANDOMKEY"), bulk("only"));
    for _ in 0..10 {
        let k = cmd(&mut a, "RANDOMKEY");
        let name = String::from_utf8_lossy(k.as_bytes().unwrap()).into_owned();
        assert!(name.starts_with("ka"), "{name}");
    }
    assert_eq!(cmd(&mut a, "SELECT 1"), ok());
    cmd(&mut a, "SET in-db1 v");
    assert_eq!(cmd(&mut a, "DBSIZE"), Value::Int(1));
    assert_eq!(cmd(&mut a, "SELECT 0"), ok());
    assert_eq!(cmd(&mut a, "DBSIZE"), Value::Int(20));
    assert_eq!(cmd(&mut a, "FLUSHDB"), ok());
    assert_eq!(cmd(&mut a, "DBSIZE"), Value::Int(0));
    assert_eq!(cmd(&mut a, "RANDOMKEY"), Value::NullBulk);
    assert_eq!(cmd(&mut b, "DBSIZE"), Value::Int(1));
    assert_eq!(cmd(&mut a, "FLUSHALL"), ok());
    assert_eq!(cmd(&mut a, "SELECT 1"), ok());
    assert_eq!(cmd(&mut a, "DBSIZE"), Value::Int(0));
    assert_eq!(cmd(&mut b, "GET only"), bulk("v"));
    // Inside MULTI and from scripts too.
    cmd(&mut a, "SELECT 0");
    cmd(&mut a, "SET m v");
    assert_eq!(cmd(&mut a, "MULTI"), ok());
    cmd(&mut a, "DBSIZE");
    cmd(&mut a, "KEYS *");
    cmd(&mut a, "FLUSHDB");
    assert_eq!(
        cmd(&mut a, "EXEC"),
        Value::Array(vec![Value::Int(1), Value::Array(vec![bulk("m")]), ok()])
    );
    assert_eq!(
        cmd(
            &mut a,
            "EVAL \"redis.call('set','s','1') return redis.call('dbsize')\" 0"
        ),
        Value::Int(1)
    );
    assert_eq!(cmd(&mut b, "DBSIZE"), Value::Int(1));
    assert!(cmd(&mut b, "SWAPDB 0 1").is_error());
}

#[test]
fn scripts_blocking_and_transactions_are_namespaced() {
    let gate = start();
    let mut a = login(&gate.addr, "ua", "pa");
    let mut b = login(&gate.addr, "ub", B_PASSWORD);
    cmd(&mut b, "SET secret b-data");
    // KEYS reach the script as the client named them; redis.call is namespaced too.
    let r = cmd(
        &mut a,
        "EVAL \"redis.call('set', KEYS[1], ARGV[1]) return {KEYS[1], redis.call('get', KEYS[1]), redis.call('get','secret'), redis.call('keys','*')}\" 1 mine v1",
    );
    assert_eq!(
        r,
        Value::Array(vec![
            bulk("mine"),
            bulk("v1"),
            Value::NullBulk,
            Value::Array(vec![bulk("mine")]),
        ])
    );
    assert_eq!(cmd(&mut b, "GET secret"), bulk("b-data"));
    assert_eq!(cmd(&mut b, "EXISTS mine"), Value::Int(0));
    // MULTI: queued commands namespaced, replies stripped.
    cmd(&mut a, "MULTI");
    cmd(&mut a, "RPUSH q x");
    cmd(&mut a, "LMPOP 1 q LEFT");
    cmd(&mut a, "PUBLISH ch hello");
    assert_eq!(
        cmd(&mut a, "EXEC"),
        Value::Array(vec![
            Value::Int(1),
            Value::Array(vec![bulk("q"), Value::Array(vec![bulk("x")])]),
            Value::Int(0),
        ])
    );
    // A blocked pop served later answers the key without the prefix.
    let mut waiter = login(&gate.addr, "ua", "pa");
    waiter.send(&[b"BLPOP", b"jobs", b"other", b"5"]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(cmd(&mut b, "RPUSH jobs not-for-a"), Value::Int(1));
    assert_eq!(cmd(&mut a, "RPUSH jobs j1"), Value::Int(1));
    assert_eq!(waiter.read(), Value::Array(vec![bulk("jobs"), bulk("j1")]));
    // CLIENT UNBLOCK reaches only the tenant's own clients.
    let Value::Int(waiter_id) = cmd(&mut waiter, "CLIENT ID") else {
        panic!("CLIENT ID")
    };
    waiter.send(&[b"BLPOP", b"never", b"0"]);
    std::thread::sleep(Duration::from_millis(200));
    let unblock = format!("CLIENT UNBLOCK {waiter_id}");
    let mut ro = login(&gate.addr, "ro", "pro");
    assert_eq!(cmd(&mut ro, &unblock), Value::Int(0));
    assert_eq!(cmd(&mut a, &unblock), Value::Int(1));
    assert_eq!(waiter.read(), Value::NullArray);
    // Streams: XREAD names the stream as the tenant does.
    cmd(&mut a, "XADD st 1-1 f v");
    let r = cmd(&mut a, "XREAD STREAMS st 0");
    let Value::Array(streams) = r else {
        panic!("{r:?}")
    };
    let Value::Array(first) = &streams[0] else {
        panic!("{streams:?}")
    };
    assert_eq!(first[0], bulk("st"));
    // XREAD BLOCK served by a later XADD: the stream name without the prefix.
    waiter.send(&[b"XREAD", b"BLOCK", b"5000", b"STREAMS", b"st2", b"$"]);
    std::thread::sleep(Duration::from_millis(200));
    cmd(&mut b, "XADD st2 1-1 f from-b");
    cmd(&mut a, "XADD st2 2-1 f from-a");
    let Value::Array(streams) = waiter.read() else {
        panic!("XREAD BLOCK")
    };
    let Value::Array(first) = &streams[0] else {
        panic!("{streams:?}")
    };
    assert_eq!(first[0], bulk("st2"));
    let e = cmd(&mut a, "XREADGROUP GROUP g c STREAMS nost >");
    assert_eq!(
        e,
        Value::Error(
            "NOGROUP No such key 'nost' or consumer group 'g' in XREADGROUP with GROUP option"
                .into()
        )
    );
}

#[test]
fn pubsub_channels_and_patterns_are_namespaced() {
    let gate = start();
    let mut admin = login(&gate.addr, "default", "root-pw");
    assert_eq!(
        cmd(&mut admin, "CONFIG SET notify-keyspace-events KEA"),
        ok()
    );
    let mut a_sub = login(&gate.addr, "ua", "pa");
    let mut a = login(&gate.addr, "ua", "pa");
    let mut b = login(&gate.addr, "ub", B_PASSWORD);
    let mut b_sub = login(&gate.addr, "ub", B_PASSWORD);

    a_sub.send(&[b"SUBSCRIBE", b"news"]);
    assert_eq!(
        a_sub.read(),
        Value::Array(vec![bulk("subscribe"), bulk("news"), Value::Int(1)])
    );
    a_sub.send(&[
        b"PSUBSCRIBE",
        b"*",
        b"__keyspace@0__:*",
        b"__keyevent@0__:set",
    ]);
    for (i, p) in ["*", "__keyspace@0__:*", "__keyevent@0__:set"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            a_sub.read(),
            Value::Array(vec![bulk("psubscribe"), bulk(p), Value::Int(i as i64 + 2)])
        );
    }
    b_sub.send(&[b"PSUBSCRIBE", b"*"]);
    b_sub.read();

    // b's messages and key events never reach a.
    assert_eq!(cmd(&mut b, "PUBLISH news from-b"), Value::Int(1));
    assert_eq!(cmd(&mut b, "SET bk v"), ok());
    assert_eq!(cmd(&mut b, "PUBLISH __keyevent@0__:set k"), Value::Int(1));
    assert_eq!(
        b_sub.read(),
        Value::Array(vec![
            bulk("pmessage"),
            bulk("*"),
            bulk("news"),
            bulk("from-b")
        ])
    );
    // a's own: the channel, the pattern match, and its key's notifications.
    assert_eq!(cmd(&mut a, "PUBLISH news from-a"), Value::Int(2));
    assert_eq!(
        a_sub.read(),
        Value::Array(vec![bulk("message"), bulk("news"), bulk("from-a")])
    );
    assert_eq!(
        a_sub.read(),
        Value::Array(vec![
            bulk("pmessage"),
            bulk("*"),
            bulk("news"),
            bulk("from-a")
        ])
    );
    assert_eq!(cmd(&mut a, "SET ak v"), ok());
    let mut got = vec![a_sub.read(), a_sub.read()];
    got.sort_by_key(|v| format!("{v:?}"));
    assert_eq!(
        got,
        vec![
            Value::Array(vec![
                bulk("pmessage"),
                bulk("__keyevent@0__:set"),
                bulk("__keyevent@0__:set"),
                bulk("ak")
            ]),
            Value::Array(vec![
                bulk("pmessage"),
                bulk("__keyspace@0__:*"),
                bulk("__keyspace@0__:ak"),
                bulk("set")
            ]),
        ]
    );
    // Nothing else was queued for a (b's traffic was filtered): the next message is this.
    assert_eq!(cmd(&mut a, "PUBLISH last x"), Value::Int(1));
    assert_eq!(
        a_sub.read(),
        Value::Array(vec![bulk("pmessage"), bulk("*"), bulk("last"), bulk("x")])
    );
    assert_eq!(strings(&cmd(&mut a, "PUBSUB CHANNELS")), set_of(&["news"]));
    assert_eq!(strings(&cmd(&mut b, "PUBSUB CHANNELS")), set_of(&[]));
    assert_eq!(
        cmd(&mut b, "PUBSUB NUMSUB news"),
        Value::Array(vec![bulk("news"), Value::Int(0)])
    );
    assert_eq!(
        cmd(&mut a, "PUBSUB NUMSUB news"),
        Value::Array(vec![bulk("news"), Value::Int(1)])
    );
    // RESP3 subscribers may AUTH again, as the same tenant only.
    let mut r3 = login(&gate.addr, "ua", "pa");
    assert!(matches!(cmd(&mut r3, "HELLO 3"), Value::Map(_)));
    r3.send(&[b"SUBSCRIBE", b"x"]);
    r3.read();
    assert_eq!(cmd(&mut r3, "AUTH ua pa"), ok());
    assert_eq!(
        cmd(&mut r3, &format!("AUTH ub {B_PASSWORD}")),
        Value::Error(
            "ERR respgate: cannot switch to another tenant while subscribed; UNSUBSCRIBE first"
                .into()
        )
    );
    a_sub.send(&[b"UNSUBSCRIBE", b"news"]);
    assert_eq!(
        a_sub.read(),
        Value::Array(vec![bulk("unsubscribe"), bulk("news"), Value::Int(3)])
    );
}

#[test]
fn command_policy_answers_noperm() {
    let gate = start();
    let mut a = login(&gate.addr, "ua", "pa");
    let mut b = login(&gate.addr, "ub", B_PASSWORD);
    let mut ro = login(&gate.addr, "ro", "pro");
    let noperm = |c: &str| {
        Value::Error(format!(
            "NOPERM this user has no permissions to run the '{c}' command"
        ))
    };
    // The default deny list for shared backends.
    assert_eq!(cmd(&mut a, "CONFIG GET maxmemory"), noperm("config|get"));
    assert_eq!(cmd(&mut a, "DEBUG SLEEP 0"), noperm("debug"));
    assert_eq!(cmd(&mut a, "SHUTDOWN"), noperm("shutdown"));
    assert_eq!(cmd(&mut a, "MONITOR"), noperm("monitor"));
    assert_eq!(cmd(&mut a, "REPLICAOF no one"), noperm("replicaof"));
    assert_eq!(cmd(&mut a, "CLIENT KILL ID 1"), noperm("client|kill"));
    assert!(!cmd(&mut a, "CLIENT ID").is_error());
    // The tenant's own deny list: a category and a command.
    assert_eq!(cmd(&mut b, "CLIENT LIST"), noperm("client|list"));
    assert_eq!(cmd(&mut b, "FLUSHALL"), noperm("flushall"));
    assert_eq!(cmd(&mut b, "FLUSHDB"), ok());
    // Read-only: writes refused, also from scripts and in MULTI (EXECABORT, as Redis).
    assert_eq!(cmd(&mut ro, "SET k v"), noperm("set"));
    assert_eq!(cmd(&mut ro, "GET k"), Value::NullBulk);
    let e = cmd(&mut ro, "EVAL \"return redis.call('set','k','v')\" 0");
    assert_eq!(
        e,
        Value::Error(
            "ERR The user executing the script can't run this command or subcommand script: d223ed8c7345b684e8ed044ed472601f536fa58b, on @user_script:1."
                .into()
        )
    );
    let e = cmd(&mut ro, "EVAL \"return redis.pcall('set','k','v')\" 0");
    assert_eq!(
        e,
        Value::Error(
            "ERR The user executing the script can't run this command or subcommand".into()
        )
    );
    assert_eq!(cmd(&mut ro, "MULTI"), ok());
    assert_eq!(cmd(&mut ro, "DEL k"), noperm("del"));
    assert_eq!(
        cmd(&mut ro, "EXEC"),
        Value::Error("EXECABORT Transaction discarded because of previous errors.".into())
    );
    // A transaction queued by one tenant runs under the policy of whoever EXEC runs it as.
    assert_eq!(cmd(&mut a, "MULTI"), ok());
    cmd(&mut a, "AUTH ro pro");
    cmd(&mut a, "SET k v");
    assert_eq!(cmd(&mut a, "EXEC"), Value::Array(vec![ok(), noperm("set")]));
    // The requirepass admin is not a tenant: everything is allowed.
    let mut admin = login(&gate.addr, "default", "root-pw");
    assert!(!cmd(&mut admin, "CONFIG GET maxmemory").is_error());
}

#[test]
fn auth_maps_credentials_to_tenants() {
    let gate = start();
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(
        cmd(&mut c, "GET k"),
        Value::Error("NOAUTH Authentication required.".into())
    );
    let wrongpass =
        Value::Error("WRONGPASS invalid username-password pair or user is disabled.".into());
    assert_eq!(cmd(&mut c, "AUTH ua wrong"), wrongpass);
    assert_eq!(cmd(&mut c, "AUTH nobody pa"), wrongpass);
    assert_eq!(cmd(&mut c, "AUTH default pa"), wrongpass);
    assert_eq!(cmd(&mut c, "AUTH wrong"), wrongpass);
    // AUTH <password> alone names the tenant whose password it is (old clients).
    assert_eq!(cmd(&mut c, "AUTH pa"), ok());
    cmd(&mut c, "SET who a");
    let info = cmd(&mut c, "CLIENT INFO");
    let text = String::from_utf8_lossy(info.as_bytes().unwrap()).into_owned();
    assert!(text.contains(" user=a "), "{text}");
    // Switching tenant on the same connection.
    assert_eq!(cmd(&mut c, &format!("AUTH {B_PASSWORD}")), ok());
    assert_eq!(cmd(&mut c, "GET who"), Value::NullBulk);
    // HELLO 3 AUTH.
    let mut h = Conn::connect(&gate.addr);
    let r = cmd(&mut h, "HELLO 3 AUTH ua bad");
    assert_eq!(r, wrongpass);
    let r = cmd(&mut h, "HELLO 3 AUTH ua pa");
    assert!(matches!(r, Value::Map(_)), "{r:?}");
    assert_eq!(cmd(&mut h, "GET who"), bulk("a"));
    // CLIENT LIST shows each client's tenant, and a tenant only its own clients.
    let list = cmd(&mut h, "CLIENT LIST");
    let text = String::from_utf8_lossy(list.as_bytes().unwrap()).into_owned();
    assert!(text.lines().all(|l| l.contains(" user=a ")), "{text}");
    let mut admin = login(&gate.addr, "default", "root-pw");
    let list = cmd(&mut admin, "CLIENT LIST");
    let text = String::from_utf8_lossy(list.as_bytes().unwrap()).into_owned();
    assert!(text.contains(" user=b "), "{text}");
    assert!(text.contains(" user=default "), "{text}");
    // redis-rs with a username in the URL.
    let url = format!("redis://ua:pa@{}/", gate.addr);
    let mut con = redis::Client::open(url.as_str())
        .and_then(|c| c.get_connection())
        .expect("redis-rs login as ua");
    let who: String = redis::cmd("GET").arg("who").query(&mut con).unwrap();
    assert_eq!(who, "a");
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut con).unwrap();
    assert_eq!(keys, vec!["who".to_string()]);
    let bad = format!("redis://ua:nope@{}/", gate.addr);
    assert!(
        redis::Client::open(bad.as_str())
            .and_then(|c| c.get_connection())
            .is_err()
    );
    // The log names the failed user, never the password.
    std::thread::sleep(Duration::from_millis(200));
    let logs: Vec<String> = gate.logs.try_iter().collect();
    assert!(logs.iter().any(|l| l.contains("AUTH failed")), "{logs:?}");
    assert!(
        !logs
            .iter()
            .any(|l| l.contains("nope") || l.contains("wrong")),
        "{logs:?}"
    );
}

#[test]
fn failed_auth_is_rate_limited_per_address() {
    let cfg = "[server]\nauth_failures_per_minute = 3\n[[tenants]]\nname = \"a\"\nusername = \"ua\"\npassword = \"pa\"\nprefix = \"a:\"\n";
    let gate = Respgate::start_with(&["--config", &temp_config(cfg)]);
    let mut c = Conn::connect(&gate.addr);
    for _ in 0..3 {
        assert!(cmd(&mut c, "AUTH ua bad").is_error());
    }
    // Locked out for the minute, even with the right password, on any connection.
    let limited = Value::Error(
        "ERR respgate: too many failed AUTH attempts from this address, try again in a minute"
            .into(),
    );
    assert_eq!(cmd(&mut c, "AUTH ua pa"), limited);
    let mut other = Conn::connect(&gate.addr);
    assert_eq!(cmd(&mut other, "HELLO 3 AUTH ua pa"), limited);
    let metrics = http_get(&gate.metrics_addr, "/metrics");
    assert!(
        metrics.contains("respgate_auth_failures_total 5"),
        "{metrics}"
    );
}

fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("metrics endpoint");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn default_tenant_serves_unauthenticated_clients() {
    let cfg = "[server]\ndefault_tenant = \"dev\"\n[[tenants]]\nname = \"dev\"\nprefix = \"dev:\"\n[[tenants]]\nname = \"app\"\nusername = \"app\"\npassword = \"pw\"\nprefix = \"app:\"\n";
    let gate = Respgate::start_with(&["--config", &temp_config(cfg)]);
    let mut dev = Conn::connect(&gate.addr);
    assert_eq!(cmd(&mut dev, "SET k dev"), ok());
    let mut app = login(&gate.addr, "app", "pw");
    assert_eq!(cmd(&mut app, "GET k"), Value::NullBulk);
    assert_eq!(cmd(&mut app, "SET k app"), ok());
    assert_eq!(cmd(&mut dev, "GET k"), bulk("dev"));
    assert_eq!(cmd(&mut dev, "KEYS *"), Value::Array(vec![bulk("k")]));
    // RESET goes back to the default tenant.
    assert_eq!(cmd(&mut app, "RESET"), Value::Simple("RESET".into()));
    assert_eq!(cmd(&mut app, "GET k"), bulk("dev"));
}

/// One tenant's commands give the same replies through respgate (with another tenant
/// writing the same key names meanwhile) as on a private redis-server.
#[test]
fn a_tenants_view_equals_a_private_redis() {
    let redis = RedisServer::start();
    let gate = start();
    let mut private = Conn::connect(&redis.addr());
    let mut a = login(&gate.addr, "ua", "pa");
    let mut noise = login(&gate.addr, "ub", B_PASSWORD);
    let script: &[&str] = &[
        "SET s1 v1",
        "SET {tag}:x 1 EX 100",
        "MSET m1 a m2 b b*?[m3 c",
        "MGET m1 m2 b*?[m3 nope",
        "INCRBY counter 5",
        "APPEND s1 -more",
        "GETRANGE s1 0 3",
        "RPUSH list a b c d",
        "LMPOP 2 nolist list RIGHT COUNT 2",
        "BLPOP nolist list 1",
        "SADD set x y z",
        "SINTERCARD 2 set set",
        "SMOVE set set2 x",
        "ZADD z 1 a 2 b 3 c",
        "ZMPOP 1 z MIN",
        "ZUNIONSTORE zu 2 z set2",
        "ZRANGE zu 0 -1 WITHSCORES",
        "HSET h f 1 g 2",
        "HGETALL h",
        "RENAME s1 s2",
        "COPY s2 s3",
        "EXISTS s1 s2 s3 nope",
        "TYPE list",
        "OBJECT ENCODING z",
        "EXPIRE s3 100",
        "TTL s3",
        "RPUSH nums 3 1 2",
        "SET w_1 30",
        "SET w_2 10",
        "SET w_3 20",
        "SORT nums BY w_* GET # GET w_*",
        "SORT nums BY w_* STORE sorted",
        "LRANGE sorted 0 -1",
        "XADD st 1-1 f v",
        "XREAD COUNT 5 STREAMS st 0",
        "XGROUP CREATE st g 0",
        "XREADGROUP GROUP g c COUNT 1 STREAMS st >",
        "XREADGROUP GROUP g2 c STREAMS st >",
        "EVAL \"return redis.call('get', KEYS[1])\" 1 m1",
        "EVAL \"redis.call('set', 'fromlua', ARGV[1]) return redis.call('keys', 'from*')\" 0 val",
        "GEOADD geo 13.36 38.11 palermo 15.08 37.50 catania",
        "GEORADIUS geo 15 37 200 km STORE geostored",
        "ZRANGE geostored 0 -1",
        "DBSIZE",
        "KEYS m*",
        "KEYS *[12]",
        "KEYS b*",
        "DEL m1 m2 nope",
        "UNLINK s2",
        "DBSIZE",
        "FLUSHDB",
        "DBSIZE",
        "SET only 1",
        "RANDOMKEY",
        "KEYS *",
    ];
    for line in script {
        // The other tenant writes the same names, so any leak shows up as a difference.
        let _ = cmd(
            &mut noise,
            "MSET m1 noise s1 noise list noise only noise w_1 9",
        );
        let want = cmd(&mut private, line);
        let got = cmd(&mut a, line);
        let (want, got) = if line.starts_with("KEYS") {
            (want.sorted(), got.sorted())
        } else {
            (want, got)
        };
        if std::env::var("SHOW").is_ok() {
            eprintln!("{line} => {got:?}");
        }
        assert_eq!(got, want, "{line}");
    }
    // The whole keyspace, by SCAN.
    assert_eq!(scan_all(&mut a, ""), scan_all(&mut private, ""));
}

/// A tiny deterministic generator (xorshift64*), so a failing sequence can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Random command sequences from two tenants, each compared with a private redis-server
/// of its own: key names include the other tenant's prefix, glob metacharacters and hash
/// tags. Any reply that differs (a key of the other tenant seen, a pattern that widened, a
/// count that included the other's keys) fails with the seed and step.
#[test]
fn random_sequences_from_two_tenants_match_private_servers() {
    let steps: usize = std::env::var("TENANTS_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let gate = start();
    random_sequences(&gate, None, steps);
}

/// The same through a real Redis Cluster: every key carries the `{t}` hash tag (the prefix
/// goes in front of the key, outside the tag, so multi-key commands stay in one slot as on
/// the private servers), scripts are left out (refused to tenants in cluster mode), and
/// every master's keyspace is scanned at the end.
#[test]
fn random_sequences_through_a_cluster_match_private_servers() {
    let steps: usize = std::env::var("TENANTS_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(400);
    let cluster = RedisCluster::shared();
    for m in cluster.masters() {
        // This binary's own cluster: only this test writes to it.
        assert_eq!(cluster.conn(&m).cmd_str("FLUSHALL"), ok());
    }
    let nodes: Vec<String> = cluster.addrs().iter().map(|a| format!("\"{a}\"")).collect();
    let cfg = CONFIG.replace(
        "ecd2e5a5dd06e9e92d7dc0ba7e60a3ba0ea5e0be6c65e1dbd2e0ed3aa2cb4f4f",
        &sha256_hex(B_PASSWORD),
    ) + &format!(
        "[backend]\nmode = \"cluster\"\nnodes = [{}]\n",
        nodes.join(", ")
    );
    let gate = Respgate::start_with(&["--config", &temp_config(&cfg)]);
    random_sequences(&gate, Some(&cluster), steps);
}

/// Random command sequences from two tenants, each compared with a private redis-server
/// of its own: key names include the other tenant's prefix, glob metacharacters and hash
/// tags. Any reply that differs (a key of the other tenant seen, a pattern that widened, a
/// count that included the other's keys) fails with the seed and step. Then the backend
/// (the engine, or every master of `cluster`) must hold exactly each tenant's keys under
/// its prefix.
fn random_sequences(gate: &Respgate, cluster: Option<&RedisCluster>, steps: usize) {
    let seed: u64 = std::env::var("TENANTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd);
    let servers = [RedisServer::start(), RedisServer::start()];
    let mut private = [
        Conn::connect(&servers[0].addr()),
        Conn::connect(&servers[1].addr()),
    ];
    let mut tenants = [
        login(&gate.addr, "ua", "pa"),
        login(&gate.addr, "ub", B_PASSWORD),
    ];
    let keys: &[&str] = if cluster.is_some() {
        &[
            "{t}k", "a:{t}k", "b*?[{t}k", "{t}x", "{t}y", "{t}*", "x?{t}", "[ab]{t}", "a:{t}",
            "b*?[{t}", "\\k{t}", "a:*{t}",
        ]
    } else {
        &[
            "k", "a:k", "b*?[k", "{t}x", "{t}y", "*", "x?", "[ab]", "a:", "b*?[", "\\k", "a:*",
        ]
    };
    let patterns = [
        "*",
        "a:*",
        "b*",
        "*k",
        "?",
        "[ab]*",
        "\\**",
        "{t}*",
        "b\\*\\?\\[*",
        "*[?]*",
        "a:\\*",
    ];
    let mut templates = vec![
        "SET {k} {v}",
        "GET {k}",
        "DEL {k} {k}",
        "EXISTS {k} {k} {k}",
        "MSET {k} {v} {k} {v}",
        "MGET {k} {k}",
        "INCR {k}",
        "APPEND {k} {v}",
        "RPUSH {k} {v} {v}",
        "LPOP {k}",
        "LRANGE {k} 0 -1",
        "LMPOP 2 {k} {k} LEFT",
        "SADD {k} {v}",
        "SINTERCARD 2 {k} {k}",
        "SMOVE {k} {k} {v}",
        "ZADD {k} 1 {v}",
        "ZRANGE {k} 0 -1",
        "ZUNIONSTORE {k} 2 {k} {k}",
        "ZMPOP 1 {k} MIN",
        "HSET {k} f {v}",
        "HGET {k} f",
        "RENAME {k} {k}",
        "COPY {k} {k} REPLACE",
        "TYPE {k}",
        "OBJECT ENCODING {k}",
        "EXPIRE {k} 100",
        "TTL {k}",
        "PERSIST {k}",
        "XADD {k} 1-{n} f {v}",
        "XREAD COUNT 2 STREAMS {k} {k} 0 0",
        "KEYS {p}",
        "DBSIZE",
        "SORT {k} ALPHA",
        "RPUSH {k} 1 2",
        "SET w_1 5",
        "SET w_v 7",
    ];
    if cluster.is_none() {
        // Scripts are refused to tenants in cluster mode; SORT BY/GET patterns are refused
        // by Redis Cluster itself (their keys may live in other slots).
        templates.extend([
            "EVAL \"return redis.call('exists', KEYS[1], ARGV[1])\" 1 {k} {k}",
            "EVAL \"return redis.call('keys', ARGV[1])\" 0 {p}",
            "SORT {k} BY w_* GET # GET w_*",
        ]);
    }
    let values = ["1", "v", "a:k", "b*?[k", "*"];
    let mut rng = Rng(seed);
    for step in 0..steps {
        let who = (rng.next() % 2) as usize;
        let mut line = rng.pick(&templates).to_string();
        if who == 1 && line.contains(" BY ") {
            // b's prefix holds '*', which SORT would substitute: respgate refuses BY/GET
            // patterns for it by design (tested in the namespace unit tests).
            line = "SORT {k} ALPHA".to_string();
        }
        // Rare: wipe the namespace (and the private server) to exercise FLUSHDB.
        if rng.next().is_multiple_of(200) {
            line = "FLUSHDB".to_string();
        }
        while let Some(at) = line.find("{k}") {
            let k = rng.pick(keys);
            line.replace_range(at..at + 3, &quote(k));
        }
        while let Some(at) = line.find("{p}") {
            let p = rng.pick(&patterns);
            line.replace_range(at..at + 3, &quote(p));
        }
        while let Some(at) = line.find("{v}") {
            let v = rng.pick(&values);
            line.replace_range(at..at + 3, &quote(v));
        }
        line = line.replace("{n}", &(step + 1).to_string());
        let want = cmd(&mut private[who], &line);
        let got = cmd(&mut tenants[who], &line);
        if std::env::var("SHOW").is_ok() {
            eprintln!("{who} {line} => {got:?}");
        }
        let unordered = line.starts_with("KEYS") || line.contains("'keys'");
        let (want, got) = if unordered {
            (want.sorted(), got.sorted())
        } else {
            (want, got)
        };
        assert_eq!(
            got, want,
            "tenant {who}, step {step} (TENANTS_SEED={seed}): {line}"
        );
    }
    for who in 0..2 {
        assert_eq!(
            scan_all(&mut tenants[who], ""),
            scan_all(&mut private[who], ""),
            "tenant {who}'s whole keyspace"
        );
    }
    // The backend holds only prefixed keys, each tenant's exactly once.
    let physical = match cluster {
        None => {
            let mut admin = login(&gate.addr, "default", "root-pw");
            strings(&cmd(&mut admin, "KEYS *"))
        }
        Some(cluster) => {
            let mut all = BTreeSet::new();
            for m in cluster.masters() {
                let mut node = cluster.conn(&m);
                let mine = scan_all(&mut node, "");
                assert!(all.is_disjoint(&mine), "a key on two masters: {mine:?}");
                all.extend(mine);
            }
            all
        }
    };
    let mut expected = BTreeSet::new();
    for (who, prefix) in ["a:", "b*?["].iter().enumerate() {
        for k in scan_all(&mut private[who], "") {
            expected.insert(format!("{prefix}{k}"));
        }
    }
    assert_eq!(physical, expected);
}

/// Quotes an argument for [`split_args`] (double quotes, backslashes escaped).
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The escaped prefix is a literal for Redis's own matcher too (what forwarding will send):
/// KEYS and PSUBSCRIBE on a real redis-server match exactly the keys/channels that start
/// with the prefix, whatever glob metacharacters it holds.
#[test]
fn escaped_prefixes_are_literal_for_redis_itself() {
    let redis = RedisServer::start();
    let mut c = Conn::connect(&redis.addr());
    let names = [
        "b*?[k", "bXY[k", "b*?k", "b*?[", "a:\\x", "a:x", "t]x", "t]", "b**?[z", "[t]x",
    ];
    for n in names {
        assert_eq!(c.cmd(&[b"SET", n.as_bytes(), b"v"]), ok());
    }
    for prefix in ["b*?[", "a:\\", "t]", "[t]", "b*"] {
        let ns = respgate::policy::Namespace::new(prefix.as_bytes());
        let pattern = ns.pattern(b"*");
        let got = strings(&c.cmd(&[b"KEYS", &pattern]));
        let want: BTreeSet<String> = names
            .iter()
            .filter(|n| n.starts_with(prefix))
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            got,
            want,
            "prefix {prefix:?} as {:?}",
            String::from_utf8_lossy(&pattern)
        );
    }
}

#[test]
fn sighup_reloads_tenants_without_dropping_connections() {
    let base = "[[tenants]]\nname = \"a\"\nusername = \"ua\"\npassword = \"pa\"\nprefix = \"a:\"\n";
    let path = temp_config(base);
    let gate = Respgate::start_with(&["--config", &path]);
    let mut a = Conn::connect(&gate.addr);
    assert_eq!(a.cmd_str("AUTH ua pa"), Value::Simple("OK".into()));
    assert_eq!(a.cmd_str("SET k v"), Value::Simple("OK".into()));
    assert_eq!(a.cmd_str("GET k"), Value::Bulk(b"v".to_vec()));
    let hup = || {
        let status = std::process::Command::new("kill")
            .args(["-HUP", &gate.pid().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(status.success());
    };
    // A stricter policy reaches the connection that is already open.
    std::fs::write(&path, format!("{base}deny = [\"get\"]\n")).expect("rewriting the config");
    hup();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        if a.cmd_str("GET k").is_error() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "reload not applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(a.cmd_str("SET k w"), Value::Simple("OK".into()));
    // A broken file changes nothing, and respgate keeps serving.
    std::fs::write(&path, "[[tenants]]\nname = \"a\"\nbogus = 1\n").expect("rewriting the config");
    hup();
    std::thread::sleep(Duration::from_millis(200));
    assert!(a.cmd_str("GET k").is_error());
    assert_eq!(a.cmd_str("SET k x"), Value::Simple("OK".into()));
    // A tenant that is gone must AUTH again.
    std::fs::write(
        &path,
        base.replace("name = \"a\"", "name = \"b\"")
            .replace("ua", "ub"),
    )
    .expect("rewriting the config");
    hup();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match a.cmd_str("SET k y") {
            Value::Error(e) if e.starts_with("NOAUTH") => break,
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "removed tenant still served"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP request to the metrics listener; returns the status line and the body.
fn http(addr: &str, method: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    )
}

#[test]
fn post_reload_applies_the_file_like_sighup() {
    let base = "[[tenants]]\nname = \"a\"\nusername = \"ua\"\npassword = \"pa\"\nprefix = \"a:\"\n";
    let path = temp_config(base);
    let gate = Respgate::start_with(&["--config", &path]);
    let mut a = Conn::connect(&gate.addr);
    assert_eq!(a.cmd_str("AUTH ua pa"), Value::Simple("OK".into()));
    assert_eq!(a.cmd_str("SET k v"), Value::Simple("OK".into()));
    // GET must not change anything.
    let (status, _) = http(&gate.metrics_addr, "GET", "/reload");
    assert!(status.contains("405"), "{status}");
    std::fs::write(&path, format!("{base}deny = [\"get\"]\n")).expect("rewriting the config");
    let (status, body) = http(&gate.metrics_addr, "POST", "/reload");
    assert!(status.contains("200"), "{status} {body}");
    assert!(body.contains("1 tenants"), "{body}");
    // Applied when the reply came: the open connection is held to it at once.
    assert!(a.cmd_str("GET k").is_error());
    // A broken file is refused with the reason; the running config stays.
    std::fs::write(&path, "[[tenants]]\nname = \"a\"\nbogus = 1\n").expect("rewriting the config");
    let (status, body) = http(&gate.metrics_addr, "POST", "/reload");
    assert!(status.contains("500"), "{status}");
    assert!(body.contains("bogus"), "{body}");
    assert!(a.cmd_str("GET k").is_error());
    assert_eq!(a.cmd_str("SET k x"), Value::Simple("OK".into()));
}
