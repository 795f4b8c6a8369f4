//! Blocking list commands and WATCH across two real client connections to respgate.

mod common;

use std::time::{Duration, Instant};

use common::resp::{Conn, Value};
use common::respgate::Respgate;

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

#[test]
fn blpop_is_woken_by_a_push_from_another_client_in_arrival_order() {
    let gate = Respgate::start();
    let addr = gate.addr.clone();
    let mut first = Conn::connect(&addr);
    let mut second = Conn::connect(&addr);
    let mut pusher = Conn::connect(&addr);
    first.send(&[b"BLPOP", b"q", b"0"]);
    std::thread::sleep(Duration::from_millis(100));
    second.send(&[b"BLPOP", b"q", b"0"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(pusher.cmd_str("RPUSH q a b"), Value::Int(2));
    assert_eq!(first.read(), Value::Array(vec![bulk("q"), bulk("a")]));
    assert_eq!(second.read(), Value::Array(vec![bulk("q"), bulk("b")]));
    assert_eq!(pusher.cmd_str("EXISTS q"), Value::Int(0));
}

#[test]
fn blpop_times_out_with_null_and_push_inside_exec_wakes() {
    let gate = Respgate::start();
    let addr = gate.addr.clone();
    let mut waiter = Conn::connect(&addr);
    let started = Instant::now();
    assert_eq!(waiter.cmd_str("BLPOP nothing 0.2"), Value::NullArray);
    assert!(started.elapsed() >= Duration::from_millis(190));

    waiter.send(&[b"BRPOPLPUSH", b"src", b"dst", b"0"]);
    std::thread::sleep(Duration::from_millis(100));
    let mut other = Conn::connect(&addr);
    other.cmd_str("MULTI");
    other.cmd_str("LPUSH src x");
    assert_eq!(other.cmd_str("EXEC"), Value::Array(vec![Value::Int(1)]));
    assert_eq!(waiter.read(), bulk("x"));
    assert_eq!(
        other.cmd_str("LRANGE dst 0 -1"),
        Value::Array(vec![bulk("x")])
    );
}

#[test]
fn client_unblock_and_watch_touched_by_another_client() {
    let gate = Respgate::start();
    let addr = gate.addr.clone();
    let mut waiter = Conn::connect(&addr);
    let id = match waiter.cmd_str("CLIENT ID") {
        Value::Int(i) => i,
        other => panic!("CLIENT ID: {other:?}"),
    };
    waiter.send(&[b"BLPOP", b"q", b"0"]);
    std::thread::sleep(Duration::from_millis(100));
    let mut admin = Conn::connect(&addr);
    assert_eq!(
        admin.cmd_str(&format!("CLIENT UNBLOCK {id} ERROR")),
        Value::Int(1)
    );
    assert_eq!(
        waiter.read(),
        Value::Error("UNBLOCKED client unblocked via CLIENT UNBLOCK".into())
    );
    assert_eq!(
        admin.cmd_str(&format!("CLIENT UNBLOCK {id}")),
        Value::Int(0)
    );

    waiter.cmd_str("WATCH w");
    admin.cmd_str("SET w changed");
    waiter.cmd_str("MULTI");
    waiter.cmd_str("SET w mine");
    assert_eq!(waiter.cmd_str("EXEC"), Value::NullArray);
    assert_eq!(admin.cmd_str("GET w"), bulk("changed"));
}

#[test]
fn sort_store_wakes_blpop_and_fails_a_watching_exec() {
    let gate = Respgate::start();
    let addr = gate.addr.clone();
    let mut waiter = Conn::connect(&addr);
    let mut writer = Conn::connect(&addr);
    let mut watcher = Conn::connect(&addr);
    assert_eq!(writer.cmd_str("RPUSH src 3 1 2"), Value::Int(3));
    waiter.send(&[b"BLPOP", b"dst", b"0"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(writer.cmd_str("SORT src STORE dst"), Value::Int(3));
    assert_eq!(waiter.read(), Value::Array(vec![bulk("dst"), bulk("1")]));
    assert_eq!(
        writer.cmd_str("LRANGE dst 0 -1"),
        Value::Array(vec![bulk("2"), bulk("3")])
    );

    watcher.cmd_str("WATCH dst");
    // An empty result deletes the destination: a write to the watched key.
    assert_eq!(writer.cmd_str("SORT nothing STORE dst"), Value::Int(0));
    watcher.cmd_str("MULTI");
    watcher.cmd_str("PING");
    assert_eq!(watcher.cmd_str("EXEC"), Value::NullArray);
}

/// A pipeline that pushes then pops, while another client waits on the list: the waiter is
/// served right after the push (before the pop runs), as redis-server does — although
/// respgate runs a pipeline's commands under one engine lock.
#[test]
fn a_waiter_is_served_between_two_commands_of_one_pipeline_as_in_redis() {
    let redis = common::redis_server::RedisServer::start();
    let gate = Respgate::start();
    for addr in [redis.addr(), gate.addr.clone()] {
        let mut waiter = Conn::connect(&addr);
        let mut pipeline = Conn::connect(&addr);
        waiter.send(&[b"BLPOP", b"q", b"0"]);
        std::thread::sleep(Duration::from_millis(100));
        let mut batch = Vec::new();
        batch.extend(Conn::encode(&[b"RPUSH".as_slice(), b"q", b"a"]));
        batch.extend(Conn::encode(&[b"LPOP".as_slice(), b"q"]));
        batch.extend(Conn::encode(&[b"RPUSH".as_slice(), b"q", b"b"]));
        batch.extend(Conn::encode(&[b"LRANGE".as_slice(), b"q", b"0", b"-1"]));
        pipeline.send_raw(&batch).unwrap();
        assert_eq!(pipeline.read(), Value::Int(1), "{addr}");
        assert_eq!(pipeline.read(), Value::NullBulk, "{addr}");
        assert_eq!(pipeline.read(), Value::Int(1), "{addr}");
        assert_eq!(pipeline.read(), Value::Array(vec![bulk("b")]), "{addr}");
        assert_eq!(
            waiter.read(),
            Value::Array(vec![bulk("q"), bulk("a")]),
            "{addr}"
        );
    }
}

/// Commands pipelined behind a blocking command run on the clock of when they run, not of
/// when the pipeline arrived: a PX set after a 1 s BLPOP timeout still has its 500 ms.
#[test]
fn commands_behind_a_block_see_the_time_they_run_at() {
    let redis = common::redis_server::RedisServer::start();
    let gate = Respgate::start();
    for addr in [redis.addr(), gate.addr.clone()] {
        let mut c = Conn::connect(&addr);
        assert_eq!(c.cmd_str("SET warm up"), Value::Simple("OK".into()));
        let mut batch = Vec::new();
        batch.extend(Conn::encode(&[b"BLPOP".as_slice(), b"nothing", b"1"]));
        batch.extend(Conn::encode(&[
            b"SET".as_slice(),
            b"k",
            b"v",
            b"PX",
            b"500",
        ]));
        batch.extend(Conn::encode(&[b"PTTL".as_slice(), b"k"]));
        c.send_raw(&batch).unwrap();
        assert_eq!(c.read(), Value::NullArray, "{addr}");
        assert_eq!(c.read(), Value::Simple("OK".into()), "{addr}");
        match c.read() {
            Value::Int(ms) => assert!((400..=500).contains(&ms), "{addr}: PTTL {ms}"),
            other => panic!("{addr}: PTTL {other:?}"),
        }
    }
}
