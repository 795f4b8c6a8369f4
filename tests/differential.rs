//! Differential tests: every script in tests/diff/*.redis runs against a real redis-server
//! and against respgate; every reply must match exactly.
//!
//! Script format, one command per line (arguments split like redis-cli, with quotes):
//!   `# comment`              ignored
//!   `CMD args...`            replies compared exactly
//!   `!unordered CMD ...`     replies compared as multisets (KEYS, SMEMBERS ...)
//!   `!scanall CMD 0 ...`     the cursor command is iterated to the end on each server and
//!                            the union of returned elements is compared as a set
//!   `!ignore CMD ...`        run on both, reply not compared (TIME, RANDOMKEY ...)
//!   `!type CMD ...`          only the reply's kind is compared (bulk vs null vs error ...)
//!   `!sleep MS`              pause (expiry tests)
//!   `#! single` .. `#! end`  lines only a single Redis answers that way: several
//!                            databases, SCAN cursors (skipped in cluster mode)
//! Each script starts on a fresh connection after FLUSHALL on both servers.

mod common;

use common::redis_server::RedisServer;
use common::resp::{Conn, Value, split_args};
use common::respgate::Respgate;

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Simple(_) => "simple",
        Value::Error(_) => "error",
        Value::Int(_) => "int",
        Value::Bulk(_) => "bulk",
        Value::NullBulk | Value::NullArray | Value::Null => "null",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Set(_) => "set",
        Value::Double(_) => "double",
        Value::Bool(_) => "bool",
        Value::Verbatim(..) => "verbatim",
        Value::BigNumber(_) => "bignum",
        Value::Push(_) => "push",
    }
}

/// Iterates a cursor command (SCAN 0 ..., or HSCAN key 0 ...) to its end; returns all items.
fn scan_all(conn: &mut Conn, args: &[Vec<u8>]) -> Result<Value, String> {
    let cursor_at = args
        .iter()
        .position(|a| a == b"0")
        .ok_or("scanall needs a literal 0 cursor")?;
    let mut args = args.to_vec();
    let mut items = Vec::new();
    for _ in 0..100_000 {
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        match conn.cmd(&refs) {
            Value::Array(parts) if parts.len() == 2 => {
                let cursor = parts[0].as_bytes().ok_or("cursor not a string")?.to_vec();
                if let Value::Array(v) = &parts[1] {
                    items.extend(v.iter().cloned());
                }
                if cursor == b"0" {
                    return Ok(Value::Array(items).sorted());
                }
                args[cursor_at] = cursor;
            }
            other => return Ok(other),
        }
    }
    Err("scan did not finish".into())
}

/// Cluster mode: every key argument gets the hash tag `{d}` in front (on both servers), so
/// all keys of a script share one slot, as a cluster requires of multi-key commands.
fn tag_keys(args: &mut [Vec<u8>]) {
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    for p in common::redis_cluster::key_positions(&refs) {
        if let Some(a) = args.get_mut(p) {
            let mut tagged = b"{d}".to_vec();
            tagged.extend_from_slice(a);
            *a = tagged;
        }
    }
}

fn run_script_with(name: &str, text: &str, redis: &str, gate: &str, cluster: bool) -> Vec<String> {
    let mut failures = Vec::new();
    let mut r = Conn::connect(redis);
    let mut g = Conn::connect(gate);
    r.cmd_str("FLUSHALL");
    g.cmd_str("FLUSHALL");
    let mut single_only = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line == "#! single" {
            single_only = true;
        } else if line == "#! end" {
            single_only = false;
        }
        if line.is_empty() || line.starts_with('#') || (cluster && single_only) {
            continue;
        }
        let (mode, rest) = match line.strip_prefix('!') {
            Some(d) => {
                let (m, r) = d.split_once(' ').unwrap_or((d, ""));
                (m, r)
            }
            None => ("exact", line),
        };
        if mode == "sleep" {
            let ms: u64 = rest.trim().parse().expect("sleep ms");
            std::thread::sleep(std::time::Duration::from_millis(ms));
            continue;
        }
        let mut args = split_args(rest);
        if cluster {
            tag_keys(&mut args);
        }
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        let (want, got) = if mode == "scanall" {
            match (scan_all(&mut r, &args), scan_all(&mut g, &args)) {
                (Ok(a), Ok(b)) => (a, b),
                (a, b) => {
                    failures.push(format!(
                        "{name}:{}: {line}\n  scan failed: {a:?} / {b:?}",
                        n + 1
                    ));
                    continue;
                }
            }
        } else {
            (r.cmd(&refs), g.cmd(&refs))
        };
        let same = match mode {
            "exact" | "scanall" => want == got,
            "unordered" => want.sorted() == got.sorted(),
            "ignore" => true,
            "type" => kind(&want) == kind(&got),
            other => panic!("{name}:{}: unknown directive !{other}", n + 1),
        };
        if !same {
            failures.push(format!(
                "{name}:{}: {line}\n  redis:    {want:?}\n  respgate: {got:?}",
                n + 1
            ));
        }
    }
    failures
}

#[test]
fn scripts_match_real_redis() {
    let redis = RedisServer::start();
    let gate = Respgate::start();
    run_all_scripts(&redis.addr(), &gate.addr, &[]);
}

/// The same scripts through respgate forwarding to a second redis-server: what a client sees
/// through the proxy must be what it sees from Redis directly. Scripts listed in `skip` test
/// the embedded engine's own behaviour (e.g. its AOF) rather than the wire.
#[test]
fn scripts_match_real_redis_through_standalone_forwarding() {
    let redis = RedisServer::start();
    let backend = RedisServer::start();
    let gate = Respgate::standalone(&backend.addr(), "");
    run_all_scripts(&redis.addr(), &gate.addr, &[]);
}

/// Through standalone forwarding over mutual TLS (certificates made by the test): TLS must
/// change nothing a client sees.
#[test]
fn scripts_match_real_redis_through_tls_forwarding() {
    let pki = common::tls::Pki::generate();
    let redis = RedisServer::start();
    let backend = pki.redis_server(true);
    let gate = Respgate::standalone(&backend.addr(), &pki.backend_tls_mutual());
    run_all_scripts(&redis.addr(), &gate.addr, &[]);
}

/// Through respgate following a Sentinel-managed master (with a replica attached).
#[test]
fn scripts_match_real_redis_through_sentinel() {
    let redis = RedisServer::start();
    let setup = common::redis_sentinel::SentinelSetup::start_stable();
    let gate = setup.respgate("");
    run_all_scripts(&redis.addr(), &gate.addr, &[]);
}

/// Through respgate in front of a 3-master/3-replica Redis Cluster; every key gets the same
/// hash tag on both sides (see `tag_keys`). Scripts about what a cluster does not have
/// (several databases, SELECT/MOVE/SWAPDB, keyspace notifications across nodes, ...) are
/// skipped.
#[test]
fn scripts_match_real_redis_through_cluster() {
    let redis = RedisServer::start();
    let cluster = common::redis_cluster::RedisCluster::start();
    let gate = Respgate::cluster(&cluster.addrs(), "");
    run_all_scripts_with(&redis.addr(), &gate.addr, CLUSTER_SKIP, true);
}

/// Scripts about what only a single Redis has: several databases (connection, server),
/// SORT's BY/GET patterns and scripts touching undeclared keys, which a cluster refuses.
/// Such parts of other scripts sit between `#! single` and `#! end` lines.
const CLUSTER_SKIP: &[&str] = &[
    "connection.redis",
    "server.redis",
    "sort.redis",
    "scripting.redis",
];

fn run_all_scripts(redis: &str, gate: &str, skip: &[&str]) {
    run_all_scripts_with(redis, gate, skip, false)
}

fn run_all_scripts_with(redis: &str, gate: &str, skip: &[&str], cluster: bool) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/diff");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("tests/diff")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "redis"))
        .filter(|p| {
            !skip
                .iter()
                .any(|s| p.file_name().is_some_and(|n| n.to_string_lossy() == *s))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in tests/diff");
    let mut failures = Vec::new();
    let mut commands = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        commands += text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
            .count();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        failures.extend(run_script_with(&name, &text, redis, gate, cluster));
    }
    eprintln!("differential: {} scripts, {commands} commands", files.len());
    assert!(
        failures.is_empty(),
        "{} mismatches with real Redis:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
