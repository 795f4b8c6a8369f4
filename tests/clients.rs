//! Real Redis clients against respgate's embedded engine: redis-rs, redis-cli,
//! redis-benchmark, redis-py, ioredis, node-redis, and StackExchange.Redis's handshake.

mod common;

use std::process::Command;

use common::resp::{Conn, Value};
use common::respgate::Respgate;

fn port(gate: &Respgate) -> String {
    gate.addr.rsplit(':').next().unwrap().to_string()
}

#[test]
fn redis_rs_resp2_and_resp3() {
    let gate = Respgate::start();
    for url in [
        format!("redis://{}/", gate.addr),
        format!("redis://{}/?protocol=resp3", gate.addr),
    ] {
        let client = redis::Client::open(url.as_str()).unwrap();
        let mut con = client.get_connection().unwrap();
        let _: () = redis::cmd("SET")
            .arg("rs:k")
            .arg("v")
            .query(&mut con)
            .unwrap();
        let v: String = redis::cmd("GET").arg("rs:k").query(&mut con).unwrap();
        assert_eq!(v, "v");
        let (a, b): (i64, i64) = redis::pipe()
            .cmd("INCR")
            .arg("rs:n")
            .cmd("INCR")
            .arg("rs:n")
            .query(&mut con)
            .unwrap();
        assert_eq!(b, a + 1);
        let missing: Option<String> = redis::cmd("GET").arg("rs:none").query(&mut con).unwrap();
        assert_eq!(missing, None);
    }
}

#[test]
fn redis_cli_set_get() {
    let gate = Respgate::start();
    let p = port(&gate);
    let out = Command::new("redis-cli")
        .args(["-p", &p, "set", "k", "v"])
        .output()
        .expect("redis-cli (run scripts/test.sh, it installs redis-tools)");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    let out = Command::new("redis-cli")
        .args(["-p", &p, "get", "k"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");
    // RESP3 mode of redis-cli does HELLO 3 first.
    let out = Command::new("redis-cli")
        .args(["-3", "-p", &p, "get", "k"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");
}

#[test]
fn redis_benchmark_runs_without_errors() {
    let gate = Respgate::start();
    let p = port(&gate);
    for pipeline in ["1", "16"] {
        let out = Command::new("redis-benchmark")
            .args([
                "-p",
                &p,
                "-q",
                "-n",
                "20000",
                "-c",
                "20",
                "-P",
                pipeline,
                "-t",
                "set,get,incr,mset",
            ])
            .output()
            .expect("redis-benchmark (run scripts/test.sh, it installs redis-tools)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        for t in ["SET", "GET", "INCR", "MSET"] {
            assert!(
                // Progress lines are separated by '\r', results by '\n'.
                text.split(['\r', '\n'])
                    .map(str::trim)
                    .any(|l| l.starts_with(t) && l.contains("requests per second")),
                "-P {pipeline}: no {t} result in:\n{text}"
            );
        }
        assert!(!text.contains("ERR") && !text.contains("rror"), "{text}");
    }
}

#[test]
fn redis_py_resp2_and_resp3() {
    let gate = Respgate::start();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/redis_py_check.py"
    );
    let out = Command::new("python3")
        .args([script, &port(&gate)])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "redis-py failed (scripts/test.sh installs it):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn node_check(script: &str) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/node");
    assert!(
        std::path::Path::new(dir).join("node_modules").exists(),
        "node clients not installed: run scripts/test.sh (npm install in tests/clients/node)"
    );
    let gate = Respgate::start();
    let out = Command::new("node")
        .current_dir(dir)
        .args([script, &port(&gate)])
        .output()
        .expect("node");
    assert!(
        out.status.success(),
        "{script} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ioredis_handshake_and_commands() {
    node_check("ioredis_check.js");
}

#[test]
fn node_redis_handshake_and_commands() {
    node_check("node_redis_check.js");
}

/// StackExchange.Redis's connect sequence (no .NET here, so replayed over a raw socket):
/// every reply must have the shape a standalone Redis 7 gives.
#[test]
fn stackexchange_redis_handshake() {
    let gate = Respgate::start();
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(
        c.cmd_str("CLIENT SETNAME SE.Redis"),
        Value::Simple("OK".into())
    );
    assert_eq!(
        c.cmd_str("CLIENT SETINFO lib-name SE.Redis"),
        Value::Simple("OK".into())
    );
    assert_eq!(
        c.cmd_str("CLIENT SETINFO lib-ver 2.7.33"),
        Value::Simple("OK".into())
    );
    assert_eq!(
        c.cmd(&[b"ECHO".as_slice(), b"abc"]),
        Value::Bulk(b"abc".to_vec())
    );
    match c.cmd_str("CONFIG GET slave-read-only") {
        Value::Array(v) => assert_eq!(v.len(), 2),
        other => panic!("CONFIG GET: {other:?}"),
    }
    match c.cmd_str("CONFIG GET databases") {
        Value::Array(v) => assert_eq!(v[1], Value::Bulk(b"16".to_vec())),
        other => panic!("CONFIG GET: {other:?}"),
    }
    let info = c.cmd_str("INFO");
    let text = String::from_utf8_lossy(info.as_bytes().expect("INFO is a bulk")).into_owned();
    assert!(text.contains("redis_version:"), "{text}");
    assert!(text.contains("role:master"), "{text}");
    assert_eq!(
        c.cmd_str("CLUSTER NODES"),
        Value::Error("ERR This instance has cluster support disabled".into())
    );
    assert_eq!(c.cmd_str("GET __Booksleeve_TieBreak"), Value::NullBulk);
    let list = c.cmd_str("CLIENT LIST");
    let text = String::from_utf8_lossy(list.as_bytes().unwrap()).into_owned();
    assert!(
        text.contains("name=SE.Redis") && text.contains("lib-name=SE.Redis"),
        "{text}"
    );
}
