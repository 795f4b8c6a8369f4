//! Sentinel mode against real sentinels: respgate finds the master, follows a failover within
//! half a second of the sentinels announcing it, and never hands a client a wrong value.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::redis_sentinel::{MASTER_NAME, SentinelSetup};
use common::resp::{Conn, Value};
use common::respgate::Respgate;

fn ok() -> Value {
    Value::Simple("OK".into())
}

/// Subscribes to +switch-master on a sentinel; returns the connection (already confirmed).
fn watch_switch(sentinel: &str) -> Conn {
    let mut c = Conn::connect(sentinel);
    c.send(&[b"SUBSCRIBE", b"+switch-master"]);
    c.read();
    c
}

#[test]
fn follows_a_manual_failover_within_half_a_second() {
    let setup = SentinelSetup::start();
    let old_master = setup.master_addr().expect("sentinels name a master");
    let gate = Respgate::sentinel(&setup.sentinel_addrs(), MASTER_NAME, "");
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(c.cmd_str("SET before failover"), ok());
    let mut direct = Conn::connect(&old_master);
    assert_eq!(
        direct.cmd_str("GET before"),
        Value::Bulk(b"failover".to_vec())
    );

    let mut announcements = watch_switch(&setup.sentinel_addrs()[1]);
    let mut admin = Conn::connect(&setup.sentinel_addrs()[0]);
    assert_eq!(
        admin.cmd_str(&format!("SENTINEL FAILOVER {MASTER_NAME}")),
        ok()
    );
    // The moment the sentinels announce the new master.
    let msg = announcements.read();
    let announced = Instant::now();
    let new_master = match &msg {
        Value::Array(v) => {
            let text = String::from_utf8_lossy(v[2].as_bytes().unwrap_or_default()).into_owned();
            let parts: Vec<&str> = text.split_whitespace().collect();
            format!("{}:{}", parts[3], parts[4])
        }
        other => panic!("unexpected announcement {other:?}"),
    };
    assert_ne!(new_master, old_master);
    // Writes through respgate land on the new master within 0.5 s of the announcement.
    let mut direct_new = Conn::connect(&new_master);
    let mut n = 0u64;
    loop {
        n += 1;
        let value = format!("v{n}");
        let reply = c.cmd(&[b"SET", b"after", value.as_bytes()]);
        if reply == ok()
            && direct_new.cmd_str("GET after") == Value::Bulk(value.clone().into_bytes())
        {
            break;
        }
        assert!(
            announced.elapsed() < Duration::from_millis(500),
            "respgate still not writing to the new master {:?} after the announcement (last reply {reply:?})",
            announced.elapsed()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The client's connection survived the failover and reads its own write.
    assert_eq!(
        c.cmd_str("GET after"),
        Value::Bulk(format!("v{n}").into_bytes())
    );
}

#[test]
fn killing_the_master_under_load_gives_errors_not_wrong_values() {
    failover_under_load(&[], |setup| {
        setup.master.take().and_then(|m| m.kill_holding_port())
    });
}

#[test]
fn a_master_stuck_in_debug_sleep_is_left_behind_like_a_dead_one() {
    failover_under_load(&["--enable-debug-command", "yes"], |setup| {
        let master = setup.master_addr().expect("sentinels name a master");
        std::thread::spawn(move || {
            // Blocks this connection (and the whole master) for 30 s; the test is over long
            // before, and the master is killed with the setup.
            if let Some(mut c) = Conn::try_connect(&master) {
                c.send(&[b"DEBUG", b"SLEEP", b"30"]);
                let _ = c.try_read();
            }
        });
        None
    });
}

/// Clients INCR their own counters through respgate while `trigger` takes the master out;
/// checks that writes resume within 0.5 s of the sentinels' announcement and that no reply
/// was a value no INCR produced.
fn failover_under_load(
    master_args: &[&str],
    trigger: impl FnOnce(&mut SentinelSetup) -> Option<std::net::TcpListener>,
) {
    let mut setup = SentinelSetup::start_with(master_args);
    let gate = Respgate::sentinel(
        &setup.sentinel_addrs(),
        MASTER_NAME,
        "command_timeout = \"1s\"",
    );
    // respgate really writes to the master the sentinels name.
    let master = setup.master_addr().expect("sentinels name a master");
    Conn::connect(&gate.addr).cmd_str("SET probe 1");
    assert_eq!(
        Conn::connect(&master).cmd_str("GET probe"),
        Value::Bulk(b"1".to_vec())
    );
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let writes = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let addr = gate.addr.clone();
            let stop = stop.clone();
            let errors = errors.clone();
            let writes = writes.clone();
            std::thread::spawn(move || {
                let mut c = Conn::connect(&addr);
                let key = format!("counter:{i}");
                let mut acknowledged = 0i64;
                // INCRs that got an error may or may not have run.
                let mut uncertain = 0i64;
                while !stop.load(Ordering::Relaxed) {
                    match c.cmd(&[b"INCR", key.as_bytes()]) {
                        Value::Int(v) => {
                            // Replication is asynchronous: a failover may lose the last few
                            // acknowledged increments (the count restarts lower), but a reply
                            // is never a value no INCR of ours produced.
                            assert!(
                                v >= 1 && v <= acknowledged + 1 + uncertain,
                                "INCR gave {v} after {acknowledged} (+{uncertain} uncertain)"
                            );
                            acknowledged = v;
                            uncertain = 0;
                            writes.fetch_add(1, Ordering::Relaxed);
                        }
                        Value::Error(e) => {
                            uncertain += 1;
                            assert!(e.starts_with("ERR respgate:"), "unexpected error {e}");
                            errors.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        other => panic!("unexpected reply {other:?}"),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut announcements = watch_switch(&setup.sentinel_addrs()[0]);
    let port_held = trigger(&mut setup);
    let killed = Instant::now();
    announcements.read();
    let announced = Instant::now();
    let before = writes.load(Ordering::Relaxed);
    // Writes flow again within 0.5 s of the announcement.
    while writes.load(Ordering::Relaxed) == before {
        assert!(
            announced.elapsed() < Duration::from_millis(500),
            "no write succeeded within 0.5 s of the new master's announcement"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let recovered = announced.elapsed();
    // ... and now to the new one.
    let new_master = setup.master_addr().expect("sentinels name the new master");
    assert_ne!(new_master, master);
    Conn::connect(&gate.addr).cmd_str("SET probe 2");
    assert_eq!(
        Conn::connect(&new_master).cmd_str("GET probe"),
        Value::Bulk(b"2".to_vec())
    );
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().expect("client thread");
    }
    eprintln!(
        "sentinel failover: announced {:?} after the master went away, writes again {:?} after the announcement, {} errors, {} writes",
        announced - killed,
        recovered,
        errors.load(Ordering::Relaxed),
        writes.load(Ordering::Relaxed)
    );
    // The sentinels go first, then the dead master's port.
    drop(gate);
    drop(setup);
    drop(port_held);
}

/// `cmdstat_get` calls in a server's INFO commandstats (0 when absent).
fn get_calls(addr: &str) -> u64 {
    let Value::Bulk(text) = Conn::connect(addr).cmd_str("INFO commandstats") else {
        panic!("INFO commandstats from {addr}");
    };
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn read_from_replica_sends_reads_to_a_healthy_replica() {
    let setup = SentinelSetup::start_stable();
    let master = setup.master.as_ref().expect("master").addr();
    let replica = setup.replica.as_ref().expect("replica").addr();
    let gate = Respgate::sentinel(
        &setup.sentinel_addrs(),
        MASTER_NAME,
        "read_from = \"replica\"\n",
    );
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(c.cmd_str("SET k v"), ok());
    // Once the sentinels' replica is known (and has the write), GETs are served by it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match c.cmd_str("GET k") {
            Value::Bulk(v) if v == b"v" => break,
            other => {
                assert!(Instant::now() < deadline, "no replica read: {other:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    let (on_master, on_replica) = (get_calls(&master), get_calls(&replica));
    for _ in 0..20 {
        assert_eq!(c.cmd_str("GET k"), Value::Bulk(b"v".to_vec()));
    }
    assert_eq!(get_calls(&master), on_master, "reads reached the master");
    assert!(get_calls(&replica) >= on_replica + 20);
    // Writes still go to the master, and a client in a transaction stays there.
    assert_eq!(c.cmd_str("SET k w"), ok());
    assert_eq!(c.cmd_str("MULTI"), Value::Simple("OK".into()));
    assert_eq!(c.cmd_str("GET k"), Value::Simple("QUEUED".into()));
    assert_eq!(
        c.cmd_str("EXEC"),
        Value::Array(vec![Value::Bulk(b"w".to_vec())])
    );
}
