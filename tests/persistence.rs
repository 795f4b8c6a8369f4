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
