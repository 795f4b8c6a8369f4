//! Persistence: with `appendfsync always` an acknowledged write survives `kill -9` of
//! respgate; the AOF is valid for redis-check-aof and a real redis-server 7 loads it.

mod common;

use std::process::Command;
use std::time::Duration;

use common::resp::{Conn, Value};
use common::respgate::Respgate;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("respgate-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

fn config(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("respgate.toml");
    std::fs::write(
        &path,
        format!(
            "[embedded]\nappendonly = true\nappendfsync = \"always\"\ndir = \"{}\"\n",
            dir.display()
        ),
    )
    .expect("config");
    path
}

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

fn write_workload(c: &mut Conn) {
    let checkpoint = r#"{"workflow":"tiles-42","step":7,"done":["fetch","warp"]}"#;
    assert_eq!(
        c.cmd(&[
            b"SET",
            b"checkpoint:42",
            checkpoint.as_bytes(),
            b"EX",
            b"86400"
        ]),
        Value::Simple("OK".into())
    );
    assert_eq!(c.cmd_str("RPUSH queue a b c"), Value::Int(3));
    assert_eq!(
        c.cmd_str("HSET session:1 user ada role admin"),
        Value::Int(2)
    );
    assert_eq!(c.cmd_str("SADD tags x y z"), Value::Int(3));
    // SORT ... STORE is logged as is; replaying it rebuilds the same list (a set stored
    // BY nosort is sorted ALPHA, so the order does not depend on the set's layout).
    assert_eq!(
        c.cmd_str("SORT tags BY nosort DESC STORE sorted-tags"),
        Value::Int(3)
    );
    assert_eq!(c.cmd_str("ZADD board 10 ann 20 bob"), Value::Int(2));
    for _ in 0..5 {
        c.cmd_str("INCR hits");
    }
    assert_eq!(c.cmd_str("SET short v PX 100"), Value::Simple("OK".into()));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(c.cmd_str("GET short"), Value::NullBulk);
    assert_eq!(c.cmd_str("SELECT 2"), Value::Simple("OK".into()));
    assert_eq!(c.cmd_str("SET other-db yes"), Value::Simple("OK".into()));
    assert_eq!(c.cmd_str("SELECT 0"), Value::Simple("OK".into()));
}

fn check_workload(c: &mut Conn) {
    assert_eq!(
        c.cmd_str("GET checkpoint:42"),
        bulk(r#"{"workflow":"tiles-42","step":7,"done":["fetch","warp"]}"#)
    );
    match c.cmd_str("TTL checkpoint:42") {
        Value::Int(t) => assert!(t > 86000 && t <= 86400, "ttl {t}"),
        other => panic!("TTL {other:?}"),
    }
    assert_eq!(
        c.cmd_str("LRANGE queue 0 -1"),
        Value::Array(vec![bulk("a"), bulk("b"), bulk("c")])
    );
    assert_eq!(c.cmd_str("HGET session:1 role"), bulk("admin"));
    assert_eq!(c.cmd_str("SCARD tags"), Value::Int(3));
    assert_eq!(
        c.cmd_str("LRANGE sorted-tags 0 -1"),
        Value::Array(vec![bulk("z"), bulk("y"), bulk("x")])
    );
    assert_eq!(c.cmd_str("ZSCORE board bob"), bulk("20"));
    assert_eq!(c.cmd_str("GET hits"), bulk("5"));
    assert_eq!(c.cmd_str("EXISTS short"), Value::Int(0));
    assert_eq!(c.cmd_str("SELECT 2"), Value::Simple("OK".into()));
    assert_eq!(c.cmd_str("GET other-db"), bulk("yes"));
    assert_eq!(c.cmd_str("SELECT 0"), Value::Simple("OK".into()));
}

#[test]
fn acknowledged_writes_survive_kill_9_and_the_aof_loads_in_redis() {
    let dir = temp_dir("aof");
    let cfg = config(&dir);
    let cfg_arg = cfg.to_string_lossy().to_string();
    {
        let gate = Respgate::start_with(&["--config", &cfg_arg]);
        let mut c = Conn::connect(&gate.addr);
        write_workload(&mut c);
        // kill -9: no shutdown path runs.
        let status = Command::new("kill")
            .args(["-9", &gate.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(200));
    }
    let aof = dir.join("appendonly.aof");
    let check = Command::new("redis-check-aof")
        .arg(&aof)
        .output()
        .expect("redis-check-aof (redis-tools)");
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(report.contains("is valid"), "redis-check-aof: {report}");

    {
        let gate = Respgate::start_with(&["--config", &cfg_arg]);
        let mut c = Conn::connect(&gate.addr);
        check_workload(&mut c);
        // Compaction keeps the data.
        assert_eq!(
            c.cmd_str("BGREWRITEAOF"),
            Value::Simple("Background append only file rewriting started".into())
        );
        check_workload(&mut c);
        gate.terminate();
    }
    {
        let gate = Respgate::start_with(&["--config", &cfg_arg]);
        let mut c = Conn::connect(&gate.addr);
        check_workload(&mut c);
        gate.terminate();
    }

    // A real redis-server loads the same file.
    let redis_dir = dir.join("redis");
    std::fs::create_dir_all(&redis_dir).expect("redis dir");
    std::fs::copy(&aof, redis_dir.join("appendonly.aof")).expect("copy aof");
    let redis = common::redis_server::RedisServer::start_with(&[
        "--dir",
        &redis_dir.to_string_lossy(),
        "--appendonly",
        "yes",
    ]);
    let mut c = Conn::connect(&redis.addr());
    check_workload(&mut c);
    drop(redis);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Streams with groups: generated IDs, `~` trimming, PEL changes by XREADGROUP (also a
/// blocked one), NOACK, XCLAIM, XAUTOCLAIM over a deleted entry, XACK.
fn stream_workload(addr: &str) {
    let mut c = Conn::connect(addr);
    c.cmd_str("XADD s * a 1");
    c.cmd_str("XADD s MAXLEN ~ 1 * b 2");
    for i in 1..=150 {
        c.cmd_str(&format!("XADD t {i}-0 f v{i}"));
    }
    c.cmd_str("XADD t MAXLEN ~ 10 * c 3");
    c.cmd_str("XTRIM t MINID 145");
    c.cmd_str("XADD t MINID ~ 140 LIMIT 1000 * d 4");
    assert_eq!(c.cmd_str("XGROUP CREATE t g 0"), Value::Simple("OK".into()));
    c.cmd_str("XGROUP CREATE t other $");
    c.cmd_str("XREADGROUP GROUP g alice COUNT 2 STREAMS t >");
    c.cmd_str("XREADGROUP GROUP g bob NOACK COUNT 2 STREAMS t >");
    c.cmd_str("XREADGROUP GROUP g alice STREAMS t 0");
    c.cmd_str("XCLAIM t g carol 0 145-0");
    c.cmd_str("XAUTOCLAIM t g dave 0 0 COUNT 1");
    c.cmd_str("XDEL t 146-0");
    c.cmd_str("XAUTOCLAIM t g dave 0 0");
    c.cmd_str("XREADGROUP GROUP g erin COUNT 1 STREAMS t >");
    c.cmd_str("XACK t g 149-0");
    c.cmd_str("XGROUP CREATECONSUMER t g idle");
    c.cmd_str("XGROUP CREATE empty g $ MKSTREAM");
    // A blocked reader served by a later XADD.
    let mut waiter = Conn::connect(addr);
    waiter.send(&[
        b"XREADGROUP",
        b"GROUP",
        b"g",
        b"w",
        b"BLOCK",
        b"0",
        b"STREAMS",
        b"t",
        b">",
    ]);
    std::thread::sleep(Duration::from_millis(100));
    c.cmd_str("XADD t 9999999999999-0 late entry");
    assert!(matches!(waiter.read(), Value::Array(_)));
}

/// What must survive a restart: entries, counters, groups, PEL owners and delivery counts
/// (idle times are left out: they move with the clock).
fn stream_state(addr: &str) -> Vec<Value> {
    let mut c = Conn::connect(addr);
    let without = |v: Value, names: &[&str]| match v {
        Value::Array(items) => {
            let mut out = Vec::new();
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                let skip = k
                    .as_bytes()
                    .is_some_and(|k| names.iter().any(|n| n.as_bytes() == k));
                if !skip {
                    out.push(k);
                    out.push(v);
                }
            }
            Value::Array(out)
        }
        other => other,
    };
    let mut out = vec![
        c.cmd_str("XRANGE s - +"),
        c.cmd_str("XRANGE t - +"),
        without(
            c.cmd_str("XINFO STREAM t"),
            &["radix-tree-keys", "radix-tree-nodes"],
        ),
        without(
            c.cmd_str("XINFO STREAM s"),
            &["radix-tree-keys", "radix-tree-nodes"],
        ),
        without(
            c.cmd_str("XINFO STREAM empty"),
            &["radix-tree-keys", "radix-tree-nodes"],
        ),
        c.cmd_str("XINFO GROUPS t"),
        c.cmd_str("XPENDING t g"),
    ];
    if let Value::Array(rows) = c.cmd_str("XPENDING t g - + 100") {
        for row in rows {
            if let Value::Array(mut f) = row {
                f.remove(2);
                out.push(Value::Array(f));
            }
        }
    }
    if let Value::Array(consumers) = c.cmd_str("XINFO CONSUMERS t g") {
        for cons in consumers {
            out.push(without(cons, &["idle", "inactive"]));
        }
    }
    out
}

/// Element by element, so a failure names the reply that differs.
fn assert_same_state(got: &[Value], want: &[Value], when: &str) {
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g, w, "{when}: reply {i} differs");
    }
    assert_eq!(got.len(), want.len(), "{when}: number of replies");
}

#[test]
fn streams_with_groups_survive_restart_rewrite_and_load_in_redis() {
    let dir = temp_dir("aof-streams");
    let cfg = config(&dir);
    let cfg_arg = cfg.to_string_lossy().to_string();
    let before = {
        let gate = Respgate::start_with(&["--config", &cfg_arg]);
        stream_workload(&gate.addr);
        let state = stream_state(&gate.addr);
        let status = Command::new("kill")
            .args(["-9", &gate.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        std::thread::sleep(Duration::from_millis(200));
        state
    };
    let aof = dir.join("appendonly.aof");
    let check = Command::new("redis-check-aof")
        .arg(&aof)
        .output()
        .expect("redis-check-aof (redis-tools)");
    let report = String::from_utf8_lossy(&check.stdout);
    assert!(report.contains("is valid"), "redis-check-aof: {report}");

    // A real redis-server rebuilds the same streams from our file.
    let redis_dir = dir.join("redis");
    std::fs::create_dir_all(&redis_dir).expect("redis dir");
    std::fs::copy(&aof, redis_dir.join("appendonly.aof")).expect("copy aof");
    {
        let redis = common::redis_server::RedisServer::start_with(&[
            "--dir",
            &redis_dir.to_string_lossy(),
            "--appendonly",
            "yes",
        ]);
        assert_same_state(&stream_state(&redis.addr()), &before, "redis-server load");
    }

    {
        let gate = Respgate::start_with(&["--config", &cfg_arg]);
        assert_same_state(&stream_state(&gate.addr), &before, "after replay");
        let mut c = Conn::connect(&gate.addr);
        assert_eq!(
            c.cmd_str("BGREWRITEAOF"),
            Value::Simple("Background append only file rewriting started".into())
        );
        assert_same_state(&stream_state(&gate.addr), &before, "after rewrite");
        gate.terminate();
    }
    {
        let gate = Respgate::start_with(&["--config", &cfg_arg]);
        assert_same_state(
            &stream_state(&gate.addr),
            &before,
            "after replaying the rewrite",
        );
        gate.terminate();
    }
    let _ = std::fs::remove_dir_all(&dir);
}
