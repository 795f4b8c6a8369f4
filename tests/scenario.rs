//! The first users' workload, through redis-rs against the embedded engine: workflow
//! checkpoints as JSON with a 24 h TTL, a tile cache expiring on time, session hashes, an
//! INCR+EXPIRE rate limiter under 50 concurrent clients, a lock released by the
//! compare-and-delete Lua script, pub/sub process events to two subscribers in order, and
//! checkpoints surviving a restart with persistence on.

mod common;

use std::time::Duration;

use common::respgate::Respgate;

const RELEASE: &str = "if redis.call('get',KEYS[1]) == ARGV[1] then return redis.call('del',KEYS[1]) else return 0 end";

fn connect(gate: &Respgate) -> redis::Connection {
    redis::Client::open(format!("redis://{}/", gate.addr).as_str())
        .and_then(|c| c.get_connection())
        .expect("redis-rs connection")
}

fn checkpoint_json(step: u32) -> String {
    format!(r#"{{"workflow":"reproject-tiles","step":{step},"bbox":[5.9,45.8,10.5,47.8]}}"#)
}

#[test]
fn geospatial_server_workload() {
    let dir = std::env::temp_dir().join(format!("respgate-scenario-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let cfg = dir.join("respgate.toml");
    std::fs::write(
        &cfg,
        format!(
            "[embedded]\nappendonly = true\nappendfsync = \"always\"\ndir = \"{}\"\n",
            dir.display()
        ),
    )
    .expect("config");
    let cfg = cfg.to_string_lossy().to_string();
    let gate = Respgate::start_with(&["--config", &cfg]);
    let mut con = connect(&gate);

    // Workflow checkpoint: JSON with a 24 h TTL, loaded back.
    let _: () = redis::cmd("SET")
        .arg("wf:checkpoint:7")
        .arg(checkpoint_json(3))
        .arg("EX")
        .arg(86_400)
        .query(&mut con)
        .expect("SET checkpoint");
    let back: String = redis::cmd("GET")
        .arg("wf:checkpoint:7")
        .query(&mut con)
        .expect("GET");
    assert_eq!(back, checkpoint_json(3));
    let ttl: i64 = redis::cmd("TTL")
        .arg("wf:checkpoint:7")
        .query(&mut con)
        .expect("TTL");
    assert!((86_390..=86_400).contains(&ttl), "ttl {ttl}");

    // Tile cache entry expiring on time.
    let _: () = redis::cmd("SET")
        .arg("tile:12:2134:1456")
        .arg(vec![0u8, 1, 2, 255])
        .arg("PX")
        .arg(300)
        .query(&mut con)
        .expect("SET tile");
    let tile: Option<Vec<u8>> = redis::cmd("GET")
        .arg("tile:12:2134:1456")
        .query(&mut con)
        .expect("GET");
    assert_eq!(tile, Some(vec![0u8, 1, 2, 255]));
    std::thread::sleep(Duration::from_millis(400));
    let tile: Option<Vec<u8>> = redis::cmd("GET")
        .arg("tile:12:2134:1456")
        .query(&mut con)
        .expect("GET");
    assert_eq!(tile, None);

    // Session hash.
    let _: () = redis::cmd("HSET")
        .arg("session:ab12")
        .arg(&["user", "ada", "role", "editor"])
        .query(&mut con)
        .expect("HSET");
    let _: () = redis::cmd("EXPIRE")
        .arg("session:ab12")
        .arg(1800)
        .query(&mut con)
        .expect("EXPIRE");
    let role: String = redis::cmd("HGET")
        .arg("session:ab12")
        .arg("role")
        .query(&mut con)
        .expect("HGET");
    assert_eq!(role, "editor");
    let all: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg("session:ab12")
        .query(&mut con)
        .expect("HGETALL");
    assert_eq!(all.len(), 2);

    // Rate limiter: INCR + EXPIRE from 50 concurrent clients, exact counts.
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let mut c = connect(&gate);
            std::thread::spawn(move || {
                for _ in 0..40 {
                    let n: i64 = redis::cmd("INCR")
                        .arg("rl:api:minute")
                        .query(&mut c)
                        .expect("INCR");
                    if n == 1 {
                        let _: () = redis::cmd("EXPIRE")
                            .arg("rl:api:minute")
                            .arg(60)
                            .query(&mut c)
                            .expect("EXPIRE");
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("rate limiter client");
    }
    let total: i64 = redis::cmd("GET")
        .arg("rl:api:minute")
        .query(&mut con)
        .expect("GET");
    assert_eq!(total, 50 * 40);
    let ttl: i64 = redis::cmd("TTL")
        .arg("rl:api:minute")
        .query(&mut con)
        .expect("TTL");
    assert!((1..=60).contains(&ttl), "ttl {ttl}");

    // Lock: SET NX PX, released only by its owner through the Lua script.
    let mut other = connect(&gate);
    let taken: Option<String> = redis::cmd("SET")
        .arg("lock:job:9")
        .arg("owner-a")
        .arg("NX")
        .arg("PX")
        .arg(30_000)
        .query(&mut con)
        .expect("SET NX");
    assert_eq!(taken.as_deref(), Some("OK"));
    let second: Option<String> = redis::cmd("SET")
        .arg("lock:job:9")
        .arg("owner-b")
        .arg("NX")
        .arg("PX")
        .arg(30_000)
        .query(&mut other)
        .expect("SET NX");
    assert_eq!(second, None);
    let script = redis::Script::new(RELEASE);
    let released_by_b: i64 = script
        .key("lock:job:9")
        .arg("owner-b")
        .invoke(&mut other)
        .expect("EVALSHA");
    assert_eq!(released_by_b, 0);
    let still: Option<String> = redis::cmd("GET")
        .arg("lock:job:9")
        .query(&mut con)
        .expect("GET");
    assert_eq!(still.as_deref(), Some("owner-a"));
    let released_by_a: i64 = script
        .key("lock:job:9")
        .arg("owner-a")
        .invoke(&mut con)
        .expect("EVALSHA");
    assert_eq!(released_by_a, 1);
    let gone: Option<String> = redis::cmd("GET")
        .arg("lock:job:9")
        .query(&mut con)
        .expect("GET");
    assert_eq!(gone, None);

    // Pub/sub process events: two subscribers, every event, in order.
    let subscribers: Vec<_> = (0..2)
        .map(|_| {
            let mut c = connect(&gate);
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let t = std::thread::spawn(move || {
                let mut ps = c.as_pubsub();
                ps.subscribe("process:events").expect("SUBSCRIBE");
                ready_tx.send(()).expect("ready");
                let mut got = Vec::new();
                while got.len() < 20 {
                    let msg = ps.get_message().expect("message");
                    got.push(msg.get_payload::<String>().expect("payload"));
                }
                got
            });
            ready_rx.recv().expect("subscribed");
            t
        })
        .collect();
    for i in 0..20 {
        let n: i64 = redis::cmd("PUBLISH")
            .arg("process:events")
            .arg(format!("job-9 step {i}"))
            .query(&mut con)
            .expect("PUBLISH");
        assert_eq!(n, 2);
    }
    let expected: Vec<String> = (0..20).map(|i| format!("job-9 step {i}")).collect();
    for s in subscribers {
        assert_eq!(s.join().expect("subscriber"), expected);
    }

    // Restart with persistence on: the checkpoint is still there, with its TTL.
    drop(con);
    drop(other);
    gate.terminate();
    let gate = Respgate::start_with(&["--config", &cfg]);
    let mut con = connect(&gate);
    let back: String = redis::cmd("GET")
        .arg("wf:checkpoint:7")
        .query(&mut con)
        .expect("GET");
    assert_eq!(back, checkpoint_json(3));
    let ttl: i64 = redis::cmd("TTL")
        .arg("wf:checkpoint:7")
        .query(&mut con)
        .expect("TTL");
    assert!((86_000..=86_400).contains(&ttl), "ttl {ttl}");
    let total: i64 = redis::cmd("GET")
        .arg("rl:api:minute")
        .query(&mut con)
        .expect("GET");
    assert_eq!(total, 2000);
    gate.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}
