//! Pub/sub across connections, compared with a real redis-server: channel, pattern and shard
//! subscriptions, message order, PUBSUB introspection, RESP3 pushes; and the output limit
//! that disconnects a subscriber who stops reading; MONITOR.

mod common;

use std::io::Read;
use std::time::Duration;

use common::redis_server::RedisServer;
use common::resp::{Conn, Value};
use common::respgate::Respgate;

/// The same conversation on any server; returns every reply in order.
fn scenario(addr: &str) -> Vec<Value> {
    let mut got = Vec::new();
    let mut sub = Conn::connect(addr);
    let mut psub = Conn::connect(addr);
    let mut shard = Conn::connect(addr);
    let mut resp3 = Conn::connect(addr);
    let mut publisher = Conn::connect(addr);

    sub.send(&[b"SUBSCRIBE", b"events", b"other"]);
    got.push(sub.read());
    got.push(sub.read());
    psub.send(&[b"PSUBSCRIBE", b"ev*", b"x?z"]);
    got.push(psub.read());
    got.push(psub.read());
    shard.send(&[b"SSUBSCRIBE", b"shardch"]);
    got.push(shard.read());
    let _ = resp3.cmd_str("HELLO 3");
    resp3.send(&[b"SUBSCRIBE", b"events"]);
    got.push(resp3.read());

    // Subscriber-mode rules in RESP2 and RESP3.
    got.push(sub.cmd_str("GET k"));
    got.push(sub.cmd_str("PING"));
    got.push(resp3.cmd_str("PING"));

    for i in 0..5 {
        let payload = format!("step-{i}");
        got.push(publisher.cmd(&[b"PUBLISH", b"events", payload.as_bytes()]));
    }
    for _ in 0..5 {
        got.push(sub.read());
        got.push(psub.read());
        got.push(resp3.read());
    }
    got.push(publisher.cmd_str("PUBLISH xyz hi"));
    got.push(psub.read());
    got.push(publisher.cmd_str("PUBLISH shardch not-for-shard"));
    got.push(publisher.cmd_str("SPUBLISH shardch for-shard"));
    got.push(shard.read());
    got.push(publisher.cmd_str("SPUBLISH nobody x"));

    got.push(publisher.cmd_str("PUBSUB CHANNELS").sorted());
    got.push(publisher.cmd_str("PUBSUB CHANNELS ev*"));
    got.push(publisher.cmd_str("PUBSUB NUMSUB events other nothing"));
    got.push(publisher.cmd_str("PUBSUB NUMSUB"));
    got.push(publisher.cmd_str("PUBSUB NUMPAT"));
    got.push(publisher.cmd_str("PUBSUB SHARDCHANNELS"));
    got.push(publisher.cmd_str("PUBSUB SHARDNUMSUB shardch nothing"));
    got.push(publisher.cmd_str("PUBSUB CHANNELS a b"));
    got.push(publisher.cmd_str("PUBSUB NOSUCH"));

    sub.send(&[b"UNSUBSCRIBE", b"other"]);
    got.push(sub.read());
    psub.send(&[b"PUNSUBSCRIBE"]);
    got.push(psub.read());
    got.push(psub.read());
    psub.send(&[b"PUNSUBSCRIBE"]);
    got.push(psub.read());
    shard.send(&[b"SUNSUBSCRIBE", b"shardch", b"never"]);
    got.push(shard.read());
    got.push(shard.read());
    got.push(psub.cmd_str("GET k"));
    got.push(publisher.cmd_str("PUBSUB NUMPAT"));
    got.push(publisher.cmd_str("PUBLISH events last"));
    got.push(sub.read());
    got.push(resp3.read());
    got
}

#[test]
fn pubsub_conversation_matches_real_redis() {
    let redis = RedisServer::start();
    let gate = Respgate::start();
    let expected = scenario(&redis.addr());
    let actual = scenario(&gate.addr);
    assert_eq!(expected.len(), actual.len());
    for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
        assert_eq!(e, a, "reply {i} differs");
    }
}

#[test]
fn a_subscriber_that_stops_reading_is_disconnected_at_the_output_limit() {
    let gate = Respgate::start();
    let mut admin = Conn::connect(&gate.addr);
    assert_eq!(
        admin.cmd(&[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"pubsub 1mb 0 0"
        ]),
        Value::Simple("OK".into())
    );
    let mut lazy = std::net::TcpStream::connect(&gate.addr).expect("connect");
    use std::io::Write;
    lazy.write_all(b"SUBSCRIBE flood\r\n").expect("subscribe");
    std::thread::sleep(Duration::from_millis(100));
    let payload = vec![b'x'; 64 * 1024];
    let mut delivered = 0;
    // 64 MiB offered; the lazy subscriber reads nothing.
    for _ in 0..1024 {
        match admin.cmd(&[b"PUBLISH", b"flood", &payload]) {
            Value::Int(n) => delivered += n,
            other => panic!("PUBLISH answered {other:?}"),
        }
        if delivered > 0 && admin.cmd_str("PUBSUB NUMSUB flood") == numsub_zero() {
            break;
        }
    }
    assert_eq!(admin.cmd_str("PUBSUB NUMSUB flood"), numsub_zero());
    // The server closed the lazy connection (after what the socket buffers held).
    lazy.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = vec![0u8; 1 << 20];
    let mut closed = false;
    for _ in 0..10_000 {
        match lazy.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert!(closed, "the lazy subscriber was not disconnected");
    // Everyone else is still served.
    assert_eq!(admin.cmd_str("PING"), Value::Simple("PONG".into()));
}

fn numsub_zero() -> Value {
    Value::Array(vec![Value::Bulk(b"flood".to_vec()), Value::Int(0)])
}

/// Keyspace notifications for a mix of writes and an expiry, in order.
fn notifications(addr: &str) -> Vec<Value> {
    let mut admin = Conn::connect(addr);
    assert_eq!(
        admin.cmd_str("CONFIG SET notify-keyspace-events KEA"),
        Value::Simple("OK".into())
    );
    let mut listener = Conn::connect(addr);
    listener.send(&[b"PSUBSCRIBE", b"__key*__:*"]);
    let mut got = vec![listener.read()];
    let writes = [
        "SET k v",
        "SET k v2 EX 100",
        "EXPIRE k 200",
        "PERSIST k",
        "INCR n",
        "INCRBY n 5",
        "APPEND k x",
        "LPUSH l a b",
        "RPOP l",
        "RPOP l",
        "HSET h f v",
        "HDEL h f",
        "SADD s m",
        "SREM s m",
        "ZADD z 1 m",
        "ZINCRBY z 2 m",
        // SORT ... STORE announces "sortstore" (a list event); an empty result deletes the
        // destination with only "del", like the other *STORE commands.
        "RPUSH sl 2 1",
        "SORT sl STORE sd",
        "SORT nothing STORE sd",
        "SADD s1 a",
        "SINTERSTORE sd s1 s1",
        "SINTERSTORE sd nothing",
        "GEOADD g 13.361389 38.115556 p",
        "GEORADIUS g 15 37 200 km STORE gd",
        "GEORADIUS g 15 37 1 km STORE gd",
        "SET bk a",
        "BITOP OR bd bk bk",
        "BITOP OR bd nothing",
        "ZUNIONSTORE zd 1 z",
        "ZUNIONSTORE zd 1 nothing",
        "DEL k nothing n",
        // Moves announce each side by its own event (srem/sadd; push on the destination
        // before the pop on the source), and del of an emptied source.
        "SADD m1 a",
        "SMOVE m1 m2 a",
        "RPUSH ml a b c",
        "LMOVE ml ml2 LEFT RIGHT",
        "RPOPLPUSH ml ml2",
        "LMOVE ml ml LEFT LEFT",
        "LMOVE ml ml2 RIGHT LEFT",
        "SET short v PX 50",
    ];
    let mut expected_events = 0;
    for w in writes {
        admin.cmd_str(w);
        expected_events += 1;
    }
    std::thread::sleep(Duration::from_millis(150));
    // Touching the key expires it if active expiry has not yet.
    admin.cmd_str("GET short");
    // Read until the "expired" keyevent arrives.
    for _ in 0..(expected_events * 6) {
        let v = listener.read();
        let done = matches!(&v, Value::Array(items)
            if items.get(2) == Some(&Value::Bulk(b"__keyevent@0__:expired".to_vec())));
        got.push(v);
        if done {
            break;
        }
    }
    admin.cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b""]);
    got
}

#[test]
fn keyspace_notifications_match_real_redis() {
    let redis = RedisServer::start();
    let gate = Respgate::start();
    let expected = notifications(&redis.addr());
    let actual = notifications(&gate.addr);
    for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
        assert_eq!(e, a, "notification {i} differs");
    }
    assert_eq!(expected.len(), actual.len());
}

/// MONITOR shows every other client's commands, as Redis prints them, in embedded and
/// forwarding modes.
#[test]
fn monitor_streams_commands_in_both_modes() {
    let backend = RedisServer::start();
    let embedded = Respgate::start();
    let forwarding = Respgate::standalone(&backend.addr(), "");
    for (what, gate) in [("embedded", &embedded), ("forwarding", &forwarding)] {
        let mut mon = Conn::connect(&gate.addr);
        assert_eq!(mon.cmd_str("MONITOR"), Value::Simple("OK".into()), "{what}");
        let mut c = Conn::connect(&gate.addr);
        c.cmd(&[b"SET", b"k", b"a \"quoted\"\nline"]);
        c.cmd_str("GET k");
        let mut lines = Vec::new();
        while lines.len() < 2 {
            match mon.read() {
                Value::Simple(line) => lines.push(line),
                other => panic!("{what}: {other:?}"),
            }
        }
        // `+1733460000.123456 [0 127.0.0.1:port] "SET" "k" "..."`
        let (head, rest) = lines[0]
            .split_once(" [0 127.0.0.1:")
            .expect("db and address");
        assert!(
            head.contains('.') && head.split('.').all(|p| p.parse::<u64>().is_ok()),
            "{what}: {}",
            lines[0]
        );
        assert!(
            rest.ends_with(r#"] "SET" "k" "a \"quoted\"\nline""#),
            "{what}: {}",
            lines[0]
        );
        assert!(lines[1].ends_with(r#"] "GET" "k""#), "{what}: {}", lines[1]);
    }
}
