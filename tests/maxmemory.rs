//! maxmemory with allkeys-lru: inserting ten times the limit keeps the data under it,
//! evicts the least recently used keys first (keys read all along survive), and counts
//! evictions in INFO and the metrics; noeviction answers Redis's OOM error. INFO memory
//! names the binary's allocator (jemalloc).

mod common;

use common::resp::{Conn, Value};
use common::respgate::Respgate;

fn info_text(c: &mut Conn, section: &str) -> String {
    match c.cmd(&[b"INFO", section.as_bytes()]) {
        Value::Bulk(b) | Value::Verbatim(_, b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("INFO answered {other:?}"),
    }
}

fn info_field(c: &mut Conn, section: &str, field: &str) -> u64 {
    info_text(c, section)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
}

#[test]
fn allkeys_lru_keeps_memory_under_the_limit_and_recent_keys() {
    let gate = Respgate::start();
    let mut c = Conn::connect(&gate.addr);
    let limit: u64 = 2 * 1024 * 1024;
    assert_eq!(
        c.cmd(&[b"CONFIG", b"SET", b"maxmemory", b"2mb"]),
        Value::Simple("OK".into())
    );
    assert_eq!(
        c.cmd_str("CONFIG SET maxmemory-policy allkeys-lru"),
        Value::Simple("OK".into())
    );
    let value = vec![b'v'; 1000];
    let hot: Vec<String> = (0..50).map(|i| format!("hot:{i}")).collect();
    for k in &hot {
        c.cmd(&[b"SET", k.as_bytes(), &value]);
    }
    // ~20 MB offered in batches; the hot keys are read between batches.
    for batch in 0..200 {
        for i in 0..100 {
            let key = format!("cold:{batch}:{i}");
            assert_eq!(
                c.cmd(&[b"SET", key.as_bytes(), &value]),
                Value::Simple("OK".into())
            );
        }
        for k in &hot {
            assert_eq!(
                c.cmd(&[b"GET", k.as_bytes()]),
                Value::Bulk(value.clone()),
                "{k}"
            );
        }
        assert!(info_field(&mut c, "memory", "used_memory") <= limit);
    }
    let evicted = info_field(&mut c, "stats", "evicted_keys");
    assert!(evicted > 15_000, "evicted {evicted}");
    // The oldest cold keys went first.
    assert_eq!(c.cmd_str("EXISTS cold:0:0"), Value::Int(0));
    assert_eq!(c.cmd_str("EXISTS cold:199:99"), Value::Int(1));

    let metrics = scrape(&gate.metrics_addr);
    let line = metrics
        .lines()
        .find(|l| l.starts_with("respgate_embedded_evicted_keys_total"))
        .unwrap_or_else(|| panic!("no eviction metric in {metrics}"));
    let n: f64 = line
        .split_whitespace()
        .last()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert_eq!(n as u64, evicted);

    let memory = info_text(&mut c, "memory");
    assert!(
        memory.lines().any(|l| l == "mem_allocator:jemalloc"),
        "{memory}"
    );
}

#[test]
fn noeviction_refuses_writes_with_the_oom_error_but_serves_reads() {
    let gate = Respgate::start();
    let mut c = Conn::connect(&gate.addr);
    c.cmd(&[b"CONFIG", b"SET", b"maxmemory", b"1mb"]);
    let value = vec![b'v'; 10_000];
    let mut refused = None;
    for i in 0..1000 {
        let key = format!("k{i}");
        match c.cmd(&[b"SET", key.as_bytes(), &value]) {
            Value::Simple(_) => {}
            Value::Error(e) => {
                refused = Some(e);
                break;
            }
            other => panic!("SET answered {other:?}"),
        }
    }
    assert_eq!(
        refused.as_deref(),
        Some("OOM command not allowed when used memory > 'maxmemory'.")
    );
    assert_eq!(c.cmd_str("GET k0"), Value::Bulk(value.clone()));
    assert_eq!(c.cmd_str("DEL k0"), Value::Int(1));
    assert_eq!(info_field(&mut c, "stats", "evicted_keys"), 0);
}

fn scrape(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("metrics listener");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("response");
    body
}
