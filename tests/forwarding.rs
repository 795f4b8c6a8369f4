//! Standalone forwarding through real sockets: respgate in front of a real redis-server, with
//! the connection-affinity, pub/sub, failure and timeout cases a differential script cannot
//! express. (tests/differential.rs runs every diff script through this mode too.)

mod common;

use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::resp::{Conn, Value};
use common::respgate::Respgate;

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("not an integer: {other:?}"),
    }
}

fn error_text(v: &Value) -> String {
    match v {
        Value::Error(e) => e.clone(),
        other => panic!("not an error: {other:?}"),
    }
}

#[test]
fn pipelined_clients_each_get_their_own_replies_in_order() {
    let backend = RedisServer::start();
    // One worker thread (the default on this machine): tokio's current-thread runtime.
    let gate = Respgate::standalone(&backend.addr(), "connections = 2");
    eight_pipelining_clients_each_get_their_own_replies(&gate.addr, &backend.addr(), "a");
}

#[test]
fn pipelined_clients_on_several_worker_threads_each_get_their_own_replies_in_order() {
    let backend = RedisServer::start();
    // Machines with more cores forward on several threads (the multi-thread runtime):
    // clients and backend connections then run on different threads at once.
    let path = common::respgate::temp_config(&format!(
        "[server]\nworker_threads = 3\n[backend]\nmode = \"standalone\"\naddress = \"{}\"\nconnections = 2\n",
        backend.addr()
    ));
    let gate = Respgate::start_with(&["--config", &path]);
    eight_pipelining_clients_each_get_their_own_replies(&gate.addr, &backend.addr(), "b");
}

/// Eight clients each INCR their own counter in 20 pipelines of 50 and read back every reply
/// in order; the backend ends with each counter at 1000.
fn eight_pipelining_clients_each_get_their_own_replies(addr: &str, backend: &str, tag: &str) {
    let threads: Vec<_> = (0..8)
        .map(|c| {
            let addr = addr.to_string();
            let key = format!("counter:{tag}:{c}");
            std::thread::spawn(move || {
                let mut conn = Conn::connect(&addr);
                for round in 0..20 {
                    // 50 commands in one write; every reply must be this client's, in order.
                    let mut batch = Vec::new();
                    for _ in 0..50 {
                        batch.extend(Conn::encode(&[b"INCR", key.as_bytes()]));
                    }
                    batch.extend(Conn::encode(&[b"GET", key.as_bytes()]));
                    conn.send_raw(&batch).unwrap();
                    for i in 1..=50 {
                        assert_eq!(conn.read(), Value::Int(round * 50 + i));
                    }
                    assert_eq!(
                        conn.read(),
                        Value::Bulk(((round + 1) * 50).to_string().into_bytes())
                    );
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread");
    }
    let mut direct = Conn::connect(backend);
    for c in 0..8 {
        assert_eq!(
            direct.cmd_str(&format!("GET counter:{tag}:{c}")),
            bulk("1000")
        );
    }
}

#[test]
fn resp3_clients_get_resp3_replies_and_resp2_clients_resp2() {
    let backend = RedisServer::start();
    let gate = Respgate::standalone(&backend.addr(), "");
    let mut c2 = Conn::connect(&gate.addr);
    c2.cmd_str("HSET h f v");
    assert_eq!(
        c2.cmd_str("HGETALL h"),
        Value::Array(vec![bulk("f"), bulk("v")])
    );
    let mut c3 = Conn::connect(&gate.addr);
    assert!(matches!(c3.cmd_str("HELLO 3"), Value::Map(_)));
    assert_eq!(
        c3.cmd_str("HGETALL h"),
        Value::Map(vec![(bulk("f"), bulk("v"))])
    );
    assert_eq!(c3.cmd_str("GET missing"), Value::Null);
    assert!(matches!(c3.cmd_str("ZSCORE nokey m"), Value::Null));
    // INFO is the backend's (transparent); INFO respgate is respgate's own; INFO backend too.
    let port_of = |v: &Value| {
        String::from_utf8_lossy(v.as_bytes().unwrap_or_default())
            .lines()
            .find_map(|l| l.strip_prefix("tcp_port:").map(str::to_string))
    };
    let backend_port = backend.port.to_string();
    assert_eq!(
        port_of(&c2.cmd_str("INFO server")).as_deref(),
        Some(backend_port.as_str())
    );
    assert_eq!(
        port_of(&c2.cmd_str("INFO backend server")).as_deref(),
        Some(backend_port.as_str())
    );
    let gate_port = gate.addr.rsplit(':').next().unwrap_or_default().to_string();
    assert_eq!(
        port_of(&c2.cmd_str("INFO respgate server")).as_deref(),
        Some(gate_port.as_str())
    );
    // Back to RESP2 on the same connection.
    c3.cmd_str("HELLO 2");
    assert_eq!(c3.cmd_str("GET missing"), Value::NullBulk);
}

#[test]
fn a_blocked_client_does_not_delay_others_and_its_disconnect_unblocks_the_backend() {
    let backend = RedisServer::start();
    let gate = Respgate::standalone(&backend.addr(), "connections = 1");
    let mut waiter = Conn::connect(&gate.addr);
    waiter.send(&[b"BLPOP", b"q", b"5"]);
    std::thread::sleep(Duration::from_millis(100));
    let mut other = Conn::connect(&gate.addr);
    other.cmd_str("SET k v");
    let mut worst = Duration::ZERO;
    for _ in 0..50 {
        let t = Instant::now();
        assert_eq!(other.cmd_str("GET k"), bulk("v"));
        worst = worst.max(t.elapsed());
    }
    assert!(
        worst < Duration::from_millis(100),
        "GET took {worst:?} while another client blocked"
    );

    // Served by a push from another client.
    assert_eq!(other.cmd_str("RPUSH q x"), Value::Int(1));
    assert_eq!(waiter.read(), Value::Array(vec![bulk("q"), bulk("x")]));

    // Blocked again, then gone: the backend stops holding a blocked client for it.
    let mut direct = Conn::connect(&backend.addr());
    waiter.send(&[b"BLPOP", b"q", b"0"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(blocked_clients(&mut direct), 1);
    drop(waiter);
    let deadline = Instant::now() + Duration::from_secs(5);
    while blocked_clients(&mut direct) != 0 {
        assert!(
            Instant::now() < deadline,
            "backend still has a blocked client"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn blocked_clients(direct: &mut Conn) -> i64 {
    let info = direct.cmd_str("INFO clients");
    let text = String::from_utf8_lossy(info.as_bytes().unwrap_or_default()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

#[test]
fn watch_multi_exec_and_select_keep_redis_semantics() {
    let backend = RedisServer::start();
    let gate = Respgate::standalone(&backend.addr(), "");
    let mut a = Conn::connect(&gate.addr);
    let mut b = Conn::connect(&gate.addr);
    a.cmd_str("SET x 1");
    assert_eq!(a.cmd_str("WATCH x"), Value::Simple("OK".into()));
    b.cmd_str("SET x 2");
    a.cmd_str("MULTI");
    assert_eq!(a.cmd_str("INCR x"), Value::Simple("QUEUED".into()));
    assert_eq!(a.cmd_str("EXEC"), Value::NullArray);
    // Unwatched now: the next transaction runs.
    a.cmd_str("MULTI");
    a.cmd_str("INCR x");
    assert_eq!(a.cmd_str("EXEC"), Value::Array(vec![Value::Int(3)]));

    // Another client's transaction on the same shared connection is never interleaved.
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let addr = gate.addr.clone();
            std::thread::spawn(move || {
                let mut c = Conn::connect(&addr);
                for _ in 0..50 {
                    c.cmd_str("MULTI");
                    c.cmd_str("INCR t");
                    c.cmd_str("INCR t");
                    match c.cmd_str("EXEC") {
                        Value::Array(v) => assert_eq!(int(&v[1]) - int(&v[0]), 1),
                        other => panic!("EXEC: {other:?}"),
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("transaction thread");
    }

    // SELECT moves this client (only) to another db.
    a.cmd_str("SELECT 3");
    a.cmd_str("SET only3 yes");
    assert_eq!(b.cmd_str("EXISTS only3"), Value::Int(0));
    let mut direct = Conn::connect(&backend.addr());
    direct.cmd_str("SELECT 3");
    assert_eq!(direct.cmd_str("GET only3"), bulk("yes"));
}

#[test]
fn pubsub_through_one_backend_subscription() {
    let backend = RedisServer::start();
    let gate = Respgate::standalone(&backend.addr(), "");
    let mut s1 = Conn::connect(&gate.addr);
    let mut s2 = Conn::connect(&gate.addr);
    s1.cmd_str("SUBSCRIBE events");
    s2.cmd_str("PSUBSCRIBE ev*");
    let mut s3 = Conn::connect(&gate.addr);
    s3.cmd_str("HELLO 3");
    s3.cmd_str("SUBSCRIBE events");
    let mut direct = Conn::connect(&backend.addr());
    // The bridge subscribes asynchronously: wait until the backend sees both subscriptions.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let numsub = direct.cmd_str("PUBSUB NUMSUB events");
        let numpat = direct.cmd_str("PUBSUB NUMPAT");
        if numsub == Value::Array(vec![bulk("events"), Value::Int(1)]) && numpat == Value::Int(1) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "bridge did not subscribe: {numsub:?} {numpat:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Published directly on the backend, in order.
    for i in 0..20 {
        direct.cmd(&[b"PUBLISH", b"events", format!("m{i}").as_bytes()]);
    }
    for i in 0..20 {
        let m = format!("m{i}");
        assert_eq!(
            s1.read(),
            Value::Array(vec![bulk("message"), bulk("events"), bulk(&m)])
        );
        assert_eq!(
            s2.read(),
            Value::Array(vec![
                bulk("pmessage"),
                bulk("ev*"),
                bulk("events"),
                bulk(&m)
            ])
        );
        assert_eq!(
            s3.read(),
            Value::Push(vec![bulk("message"), bulk("events"), bulk(&m)])
        );
    }
    // A client publishing through respgate reaches subscribers too.
    let mut publisher = Conn::connect(&gate.addr);
    assert_eq!(publisher.cmd_str("PUBLISH events last"), Value::Int(2));
    assert_eq!(
        s1.read(),
        Value::Array(vec![bulk("message"), bulk("events"), bulk("last")])
    );
    // Last local subscriber gone: the backend subscription goes too.
    s1.cmd_str("UNSUBSCRIBE events");
    drop(s3);
    let deadline = Instant::now() + Duration::from_secs(5);
    while direct.cmd_str("PUBSUB NUMSUB events")
        != Value::Array(vec![bulk("events"), Value::Int(0)])
    {
        assert!(Instant::now() < deadline, "bridge kept its subscription");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn backend_down_gives_a_quick_error_and_respgate_reconnects() {
    let backend = RedisServer::start();
    let port = backend.port;
    let gate = Respgate::standalone(&backend.addr(), "connect_timeout = \"500ms\"");
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(c.cmd_str("SET k v"), Value::Simple("OK".into()));
    drop(backend);
    let t = Instant::now();
    let mut saw_error = false;
    for _ in 0..3 {
        let reply = c.cmd_str("GET k");
        if reply.is_error() {
            assert!(
                error_text(&reply).starts_with("ERR respgate: backend"),
                "{reply:?}"
            );
            saw_error = true;
        }
    }
    assert!(saw_error);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "errors took {:?}",
        t.elapsed()
    );
    // The same client keeps working once a server is back on that port.
    let Some(_back) = RedisServer::try_start_on(port, &[]) else {
        // Someone else took the port meanwhile: nothing more to check here.
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if c.cmd_str("SET k again") == Value::Simple("OK".into()) {
            break;
        }
        assert!(Instant::now() < deadline, "respgate did not reconnect");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.cmd_str("GET k"), bulk("again"));
}

#[test]
fn a_backend_that_stops_answering_times_out_commands_and_recovers() {
    let backend = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let gate = Respgate::standalone(
        &backend.addr(),
        "command_timeout = \"300ms\"\nconnections = 1",
    );
    let mut sleeper = Conn::connect(&backend.addr());
    let mut c = Conn::connect(&gate.addr);
    c.cmd_str("SET k v");
    sleeper.send(&[b"DEBUG", b"SLEEP", b"1"]);
    std::thread::sleep(Duration::from_millis(50));
    let t = Instant::now();
    let reply = c.cmd_str("GET k");
    assert!(
        error_text(&reply).contains("did not answer within 300 ms"),
        "{reply:?}"
    );
    assert!(t.elapsed() < Duration::from_millis(900));
    sleeper.read();
    // A fresh connection serves the client afterwards, with no stale reply mixed in.
    assert_eq!(c.cmd_str("GET k"), bulk("v"));
    assert_eq!(c.cmd_str("ECHO hello"), bulk("hello"));
}

#[test]
fn backend_acl_user_and_password() {
    let backend =
        RedisServer::start_with(&["--user", "proxy", "on", ">s3cret", "~*", "&*", "+@all"]);
    let good = Respgate::standalone(
        &backend.addr(),
        "username = \"proxy\"\npassword = \"s3cret\"",
    );
    let mut c = Conn::connect(&good.addr);
    assert_eq!(c.cmd_str("SET k v"), Value::Simple("OK".into()));
    c.cmd_str("HELLO 3");
    assert_eq!(c.cmd_str("GET k"), bulk("v"));
    let mut direct = Conn::connect(&backend.addr());
    let list = direct.cmd_str("CLIENT LIST");
    assert!(String::from_utf8_lossy(list.as_bytes().unwrap_or_default()).contains("user=proxy"));

    let bad = Respgate::standalone(
        &backend.addr(),
        "username = \"proxy\"\npassword = \"wrong\"",
    );
    let mut c = Conn::connect(&bad.addr);
    let reply = c.cmd_str("GET k");
    assert!(
        error_text(&reply).contains("refused respgate's login: WRONGPASS"),
        "{reply:?}"
    );
}

/// The bytes a server sends for a pipeline ending in PING, up to and including its +PONG.
fn raw_replies(addr: &str, commands: &[&str]) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut req = Vec::new();
    for c in commands {
        let parts: Vec<&[u8]> = c.split_whitespace().map(str::as_bytes).collect();
        req.extend(Conn::encode(&parts));
    }
    req.extend(Conn::encode(&[b"PING"]));
    s.write_all(&req).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(b"+PONG\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

#[test]
fn client_reply_off_skip_on_as_redis_does() {
    let script = [
        "CLIENT REPLY OFF",
        "SET a 1",
        "GET a",
        "CLIENT REPLY ON",
        "GET a",
        "CLIENT REPLY SKIP",
        "INCR a",
        "GET a",
        "CLIENT REPLY SKIP",
        "GET nokey",
        "CLIENT REPLY OFF",
        "CLIENT REPLY ON",
        "GET a",
    ];
    let redis = RedisServer::start();
    let expected = raw_replies(&redis.addr(), &script);
    assert_eq!(
        String::from_utf8_lossy(&expected),
        "+OK\r\n$1\r\n1\r\n$1\r\n2\r\n+OK\r\n$1\r\n2\r\n+PONG\r\n"
    );
    let embedded = Respgate::start();
    let backend = RedisServer::start();
    let forwarding = Respgate::standalone(&backend.addr(), "");
    for (what, addr) in [
        ("embedded", &embedded.addr),
        ("forwarding", &forwarding.addr),
    ] {
        let got = raw_replies(addr, &script);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "{what}"
        );
    }
}

/// Canonical RESP is sent on to the backend byte for byte; anything else respgate reads
/// more leniently than Redis (bare `\n` line ends, junk where a payload's CRLF belongs) is
/// re-encoded, so the shared backend connection never sees bytes Redis would misread and
/// the other clients on it are not disturbed.
#[test]
fn lenient_input_is_re_encoded_not_passed_through() {
    let redis = RedisServer::start();
    let gate = Respgate::standalone(&redis.addr(), "");
    let mut other = Conn::connect(&gate.addr);
    assert_eq!(other.cmd_str("SET lenient:k v"), Value::Simple("OK".into()));
    let mut c = Conn::connect(&gate.addr);
    // Bare LF headers, and two junk bytes after each payload (skipped unchecked, as Redis
    // skips them).
    c.send_raw(b"*2\n$3\nGETxx$9\nlenient:kxx").unwrap();
    assert_eq!(c.read(), bulk("v"));
    c.send_raw(b"*3\r\n$3\r\nSET\r\n$9\r\nlenient:k\r\n$2\r\nw2\n\n")
        .unwrap();
    assert_eq!(c.read(), Value::Simple("OK".into()));
    // Canonical commands (passed through) around them, on both clients.
    assert_eq!(c.cmd_str("GET lenient:k"), bulk("w2"));
    assert_eq!(other.cmd_str("GET lenient:k"), bulk("w2"));
    let mut direct = Conn::connect(&redis.addr());
    assert_eq!(direct.cmd_str("GET lenient:k"), bulk("w2"));
}

/// The rest of a pipeline that arrives while respgate waits for the backend's reply to its
/// start is answered too: respgate once read those bytes during the wait and then waited
/// for more, and the client hung (found by tests/random_differential.rs, pipelined).
#[test]
fn pipeline_rest_sent_during_a_backend_wait_is_answered() {
    let backend = RedisServer::start();
    let gate = Respgate::standalone(&backend.addr(), "");
    let mut c = Conn::connect(&gate.addr);
    c.send(&[b"BLPOP", b"nothing-here", b"0.3"]);
    std::thread::sleep(Duration::from_millis(100));
    c.send(&[b"PING"]);
    assert_eq!(c.read(), Value::NullArray);
    assert_eq!(
        c.try_read_within(Duration::from_secs(3)),
        Some(Value::Simple("PONG".into()))
    );
}

/// CLIENT NO-EVICT marks the connection it is sent on. respgate answers it itself: sent on,
/// it would mark a backend connection that other clients share.
#[test]
fn client_no_evict_does_not_mark_a_shared_backend_connection() {
    let backend = RedisServer::start();
    let gate = Respgate::standalone(&backend.addr(), "");
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(c.cmd_str("SET k v"), Value::Simple("OK".into()));
    assert_eq!(c.cmd_str("CLIENT NO-EVICT on"), Value::Simple("OK".into()));
    assert!(c.cmd_str("CLIENT NO-EVICT maybe").is_error());
    assert_eq!(c.cmd_str("GET k"), bulk("v"));
    let mut direct = Conn::connect(&backend.addr());
    let list = match direct.cmd_str("CLIENT LIST") {
        Value::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("CLIENT LIST {other:?}"),
    };
    for line in list.lines() {
        let flags = line
            .split(' ')
            .find_map(|f| f.strip_prefix("flags="))
            .unwrap_or_default();
        assert!(
            !flags.contains('e'),
            "a no-evict backend connection: {line}"
        );
    }
}

/// WAIT counts the replicas that have the client's writes, as from Redis: respgate sends it
/// on a connection of its own (it blocks), so it first makes that connection's last write
/// come after the client's. Without that, a WAIT there counted a sleeping replica as having
/// a write it never received.
#[test]
fn wait_counts_only_replicas_that_have_the_clients_writes() {
    let master = RedisServer::start();
    let port = master
        .addr()
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .to_string();
    let replica = RedisServer::start_with(&[
        "--replicaof",
        "127.0.0.1",
        &port,
        "--enable-debug-command",
        "yes",
    ]);
    let mut direct = Conn::connect(&master.addr());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = match direct.cmd_str("INFO replication") {
            Value::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("INFO {other:?}"),
        };
        if info.contains("state=online") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica never came online: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let gate = Respgate::standalone(&master.addr(), "");
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(c.cmd_str("SET k 1"), Value::Simple("OK".into()));
    assert_eq!(c.cmd_str("WAIT 1 5000"), Value::Int(1));
    // The replica sleeps (a second connection's PING gets no answer): the next write cannot
    // reach it, and WAIT must time out with 0 replicas, as Redis answers directly.
    let mut sleeper = Conn::connect(&replica.addr());
    sleeper.send(&[b"DEBUG", b"SLEEP", b"2"]);
    let mut probe = Conn::connect(&replica.addr());
    probe.send(&[b"PING"]);
    assert!(probe.nothing_within(Duration::from_millis(100)));
    assert_eq!(c.cmd_str("SET k 2"), Value::Simple("OK".into()));
    let started = Instant::now();
    assert_eq!(c.cmd_str("WAIT 1 300"), Value::Int(0));
    assert!(started.elapsed() >= Duration::from_millis(250));
    // Awake again, it catches up and is counted.
    assert_eq!(probe.read(), Value::Simple("PONG".into()));
    assert_eq!(c.cmd_str("WAIT 1 5000"), Value::Int(1));
}

/// A redis-server with the user `nochan` (password `pw`): every key and command, no
/// pub/sub channel (as Redis 7 creates users unless told otherwise).
fn backend_with_a_user_without_channels() -> RedisServer {
    RedisServer::start_with(&[
        "--user",
        "nochan",
        "on",
        ">pw",
        "~*",
        "resetchannels",
        "+@all",
    ])
}

/// A backend user that may not publish to respgate's WAIT channel is said in the log at
/// start (WAIT then cannot cover the client's writes); one that may is not.
#[test]
fn a_backend_user_without_the_wait_channel_is_logged() {
    let backend = backend_with_a_user_without_channels();
    let warned = |gate: &Respgate| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match gate.logs.recv_timeout(left) {
                Ok(line) if line.contains("may not PUBLISH to __respgate__:wait") => return true,
                Ok(line) if line.contains("forwarding to redis") => return false,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    };
    let gate = Respgate::standalone(&backend.addr(), "username = \"nochan\"\npassword = \"pw\"");
    assert!(warned(&gate));
    let gate = Respgate::standalone(&backend.addr(), "");
    assert!(!warned(&gate));
}

/// A WAIT whose PUBLISH the backend refuses (a backend user without respgate's channel)
/// answers with the refusal, not with a count that would not cover the client's writes;
/// the replies around it keep their places, and once the channel is granted WAIT counts.
#[test]
fn a_wait_whose_publish_is_refused_answers_an_error_not_a_count() {
    let backend = backend_with_a_user_without_channels();
    let gate = Respgate::standalone(&backend.addr(), "username = \"nochan\"\npassword = \"pw\"");
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(c.cmd_str("SET k 1"), Value::Simple("OK".into()));
    let refused = |v: Value| match v {
        Value::Error(e) => {
            assert!(
                e.starts_with("NOPERM respgate: WAIT cannot count")
                    && e.contains("__respgate__:wait"),
                "{e}"
            );
        }
        other => panic!("WAIT answered {other:?}, not the refusal"),
    };
    refused(c.cmd_str("WAIT 0 0"));
    // One write: a reply before, the refused WAIT, and replies after it, in order.
    c.send_raw(b"GET k\r\nWAIT 0 0\r\nINCR n\r\nGET k\r\n")
        .expect("pipeline sent");
    assert_eq!(c.read(), bulk("1"));
    refused(c.read());
    assert_eq!(c.read(), Value::Int(1));
    assert_eq!(c.read(), bulk("1"));
    let mut direct = Conn::connect(&backend.addr());
    assert_eq!(
        direct.cmd_str("ACL SETUSER nochan &__respgate__:wait"),
        Value::Simple("OK".into())
    );
    // No replica: Redis counts 0.
    assert_eq!(c.cmd_str("WAIT 0 0"), Value::Int(0));
    assert_eq!(c.cmd_str("GET k"), bulk("1"));
}

/// A plain client's ordinary commands take forwarding's fast lane (sent on as they came);
/// the rest of a pipeline takes the full path. Mixed in one write, the replies keep their
/// order and match a real Redis's, and each command is counted and shown as before.
#[test]
fn a_pipeline_mixing_the_fast_lane_and_the_full_path_answers_as_redis() {
    let backend = RedisServer::start();
    let gate = Respgate::standalone(&backend.addr(), "");
    let lines: Vec<&str> = [
        "SET k v",
        "INCR n",
        "INCR n",
        "GET k",
        "GET",
        "NOSUCH x",
        "SELECT 1",
        "GET k",
        "SET k x",
        "INCR n",
        "SELECT 0",
        "GET k",
        "INCR n",
        "CLIENT REPLY SKIP",
        "GET k",
        "PING",
        "MULTI",
        "INCR n",
        "GET k",
        "EXEC",
        "WATCH k",
        "SET k w",
        "MULTI",
        "GET k",
        "EXEC",
        "UNWATCH",
        "BLPOP nolist 0.01",
        "LPUSH l a b",
        "LRANGE l 0 -1",
        "MGET k n nokey",
        "EVAL return(redis.call('incr','n')) 0",
        "PUBLISH nobody x",
        "EVALSHA 0000000000000000000000000000000000000000 0",
        "DEL k n l",
    ]
    .to_vec();
    let mut batch = Vec::new();
    for line in &lines {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        batch.extend(Conn::encode(&args));
    }
    // CLIENT REPLY SKIP: no reply for itself nor for the GET after it.
    let replies = lines.len() - 2;
    let mut direct = Conn::connect(&backend.addr());
    direct.send_raw(&batch).unwrap();
    let want: Vec<Value> = (0..replies).map(|_| direct.read()).collect();
    direct.cmd_str("FLUSHALL");
    direct.cmd_str("SELECT 1");
    direct.cmd_str("FLUSHDB");
    let mut client = Conn::connect(&gate.addr);
    client.cmd_str("CLIENT SETNAME laner");
    client.send_raw(&batch).unwrap();
    let got: Vec<Value> = (0..replies).map(|_| client.read()).collect();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "reply {i} of {lines:?}");
    }
    // 300 pipelined GETs: counted in respgate's commandstats, and CLIENT LIST shows GET as
    // the client's last command.
    // (GET calls, total_commands_processed); the INFO itself is one more command.
    let stat = |gate: &Respgate| {
        let Value::Bulk(text) =
            Conn::connect(&gate.addr).cmd_str("INFO respgate stats commandstats")
        else {
            panic!("INFO respgate stats commandstats");
        };
        let text = String::from_utf8_lossy(&text).to_string();
        let field = |prefix: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .and_then(|rest| rest.split(',').next())
                .and_then(|n| n.trim().parse::<u64>().ok())
                .unwrap_or_else(|| panic!("{prefix} in {text}"))
        };
        let incr = text
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_incr:"))
            .map(|l| {
                let f = |name: &str| {
                    l.split(',')
                        .find_map(|kv| kv.strip_prefix(name))
                        .and_then(|n| n.parse::<u64>().ok())
                        .unwrap_or_else(|| panic!("{name} in {l}"))
                };
                (f("calls="), f("failed_calls="))
            })
            .unwrap_or((0, 0));
        (
            field("cmdstat_get:calls="),
            field("total_commands_processed:"),
            incr,
        )
    };
    let before = stat(&gate);
    let mut gets = Vec::new();
    for _ in 0..300 {
        gets.extend(Conn::encode(&[b"GET", b"k"]));
    }
    client.send_raw(&gets).unwrap();
    for _ in 0..300 {
        assert_eq!(client.read(), Value::NullBulk);
    }
    let after = stat(&gate);
    assert_eq!(after.0, before.0 + 300);
    assert_eq!(after.1, before.1 + 301);
    let Value::Bulk(list) = Conn::connect(&gate.addr).cmd_str("CLIENT LIST") else {
        panic!("CLIENT LIST");
    };
    let list = String::from_utf8_lossy(&list).to_string();
    let line = list
        .lines()
        .find(|l| l.contains(" name=laner "))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(line.contains(" cmd=get "), "{line}");
    // Failures in the middle of a pipeline of one command are counted as such.
    client.cmd_str("SET s text");
    let mut incrs = Vec::new();
    for i in 0..100 {
        let key: &[u8] = if (50..60).contains(&i) { b"s" } else { b"c" };
        incrs.extend(Conn::encode(&[b"INCR", key]));
    }
    client.send_raw(&incrs).unwrap();
    for i in 0..100 {
        let reply = client.read();
        if (50..60).contains(&i) {
            assert!(matches!(reply, Value::Error(_)), "{i}: {reply:?}");
        } else {
            assert_eq!(reply, Value::Int(if i < 50 { i + 1 } else { i - 9 }));
        }
    }
    let counted = stat(&gate);
    assert_eq!(counted.2, (after.2.0 + 100, after.2.1 + 10));
}
