//! Lua scripts over real connections: busy scripts (BUSY for others, SCRIPT KILL, UNKILLABLE;
//! also inside EXEC), and scripts waking blocked clients and invalidating WATCH like any
//! other write.

mod common;

use std::time::{Duration, Instant};

use common::resp::{Conn, Value};
use common::respgate::Respgate;

fn error_text(v: &Value) -> String {
    match v {
        Value::Error(e) => e.clone(),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A respgate whose scripts count as busy after `ms`, with an admin connection and the
/// connection that will run the script.
fn busy_after(ms: u32) -> (Respgate, Conn, Conn) {
    let gate = Respgate::start();
    let mut admin = Conn::connect(&gate.addr);
    assert_eq!(
        admin.cmd_str(&format!("CONFIG SET busy-reply-threshold {ms}")),
        Value::Simple("OK".into())
    );
    let runner = Conn::connect(&gate.addr);
    (gate, admin, runner)
}

#[test]
fn a_runaway_script_answers_busy_and_is_killed_by_script_kill() {
    let (gate, mut admin, mut runner) = busy_after(200);
    runner.send(&[b"EVAL", b"local i = 0 while true do i = i + 1 end", b"0"]);
    std::thread::sleep(Duration::from_millis(400));

    let mut other = Conn::connect(&gate.addr);
    let busy = error_text(&other.cmd_str("GET k"));
    assert_eq!(
        busy,
        "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE."
    );
    assert!(error_text(&other.cmd_str("PING")).starts_with("BUSY "));

    let started = Instant::now();
    assert_eq!(admin.cmd_str("SCRIPT KILL"), Value::Simple("OK".into()));
    let killed = error_text(&runner.read());
    assert!(
        killed.starts_with("ERR Script killed by user with SCRIPT KILL... script: "),
        "{killed}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // Everyone is served again, and there is nothing left to kill.
    assert_eq!(other.cmd_str("PING"), Value::Simple("PONG".into()));
    assert_eq!(
        error_text(&admin.cmd_str("SCRIPT KILL")),
        "NOTBUSY No scripts in execution right now."
    );
}

/// A script queued in a transaction runs inside EXEC's batch: it too must leave the other
/// clients served (BUSY) and SCRIPT KILL reachable. Until 2026-12-07 it froze every client
/// (only EVAL outside a transaction was run off the worker); redis-server 7.0.15 answers
/// as asserted here.
#[test]
fn a_runaway_script_inside_exec_answers_busy_and_is_killed() {
    let (gate, mut admin, mut runner) = busy_after(200);
    assert_eq!(runner.cmd_str("MULTI"), Value::Simple("OK".into()));
    assert_eq!(runner.cmd_str("SET m 1"), Value::Simple("QUEUED".into()));
    assert_eq!(
        runner.cmd(&[b"EVAL", b"local i = 0 while true do i = i + 1 end", b"0"]),
        Value::Simple("QUEUED".into())
    );
    runner.send(&[b"EXEC"]);
    std::thread::sleep(Duration::from_millis(400));

    let mut other = Conn::connect(&gate.addr);
    assert!(error_text(&other.cmd_str("GET k")).starts_with("BUSY "));
    assert_eq!(admin.cmd_str("SCRIPT KILL"), Value::Simple("OK".into()));
    let Value::Array(replies) = runner.read() else {
        panic!("EXEC answered no array");
    };
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0], Value::Simple("OK".into()));
    let killed = error_text(&replies[1]);
    assert!(
        killed.starts_with("ERR Script killed by user with SCRIPT KILL... script: "),
        "{killed}"
    );
    assert_eq!(other.cmd_str("GET m"), Value::Bulk(b"1".to_vec()));
}

#[test]
fn a_script_that_wrote_cannot_be_killed() {
    let (_gate, mut admin, mut runner) = busy_after(100);
    // Writes, then spins for about a second of wall time.
    runner.send(&[
        b"EVAL",
        b"redis.call('set','w','1') local t = redis.call('time') local stop = t[1] + 2 \
          while tonumber(redis.call('time')[1]) < stop do end return 'done'",
        b"0",
    ]);
    std::thread::sleep(Duration::from_millis(300));
    assert!(error_text(&admin.cmd_str("SCRIPT KILL")).starts_with("UNKILLABLE Sorry the script"));
    assert_eq!(runner.read(), Value::Bulk(b"done".to_vec()));
    assert_eq!(admin.cmd_str("GET w"), Value::Bulk(b"1".to_vec()));
}

#[test]
fn a_push_from_a_script_wakes_a_blocked_client_and_touches_watch() {
    let gate = Respgate::start();
    let mut waiter = Conn::connect(&gate.addr);
    let mut watcher = Conn::connect(&gate.addr);
    let mut scripter = Conn::connect(&gate.addr);
    waiter.send(&[b"BLPOP", b"jobs", b"0"]);
    assert_eq!(watcher.cmd_str("WATCH other"), Value::Simple("OK".into()));
    std::thread::sleep(Duration::from_millis(100));
    // The script writes a key it did not declare in KEYS, as scripts in the field do.
    assert_eq!(
        scripter.cmd(&[
            b"EVAL",
            b"redis.call('set','other','x') return redis.call('rpush','jobs','j1')",
            b"0"
        ]),
        Value::Int(1)
    );
    assert_eq!(
        waiter.read(),
        Value::Array(vec![
            Value::Bulk(b"jobs".to_vec()),
            Value::Bulk(b"j1".to_vec())
        ])
    );
    assert_eq!(watcher.cmd_str("MULTI"), Value::Simple("OK".into()));
    assert_eq!(watcher.cmd_str("GET other"), Value::Simple("QUEUED".into()));
    assert_eq!(watcher.cmd_str("EXEC"), Value::NullArray);
}
