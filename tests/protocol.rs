//! Raw-socket tests of the wire protocol: pipelining, inline commands, RESP3, protocol
//! errors and limits. After every bad client, another client must still be served.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::resp::{Conn, Value};
use common::respgate::Respgate;

fn raw(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads until the server closes the connection; returns everything it sent.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("expected the server to close the connection: {e}"),
        }
    }
}

fn still_serving(gate: &Respgate) {
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(c.cmd_str("PING"), Value::Simple("PONG".into()));
}

#[test]
fn pipelined_replies_come_back_in_order() {
    let gate = Respgate::start();
    let mut c = Conn::connect(&gate.addr);
    let mut batch = Vec::new();
    for i in 0..1000 {
        batch.extend(Conn::encode(&[
            b"SET".as_slice(),
            format!("k{i}").as_bytes(),
            format!("{i}").as_bytes(),
        ]));
        batch.extend(Conn::encode(&[
            b"GET".as_slice(),
            format!("k{i}").as_bytes(),
        ]));
    }
    c.send_raw(&batch).unwrap();
    for i in 0..1000 {
        assert_eq!(c.read(), Value::Simple("OK".into()));
        assert_eq!(c.read(), Value::Bulk(format!("{i}").into_bytes()));
    }
}

#[test]
fn inline_commands_like_nc_and_telnet() {
    let gate = Respgate::start();
    let mut c = Conn::connect(&gate.addr);
    c.send_raw(b"PING\r\nSET a \"hello world\"\nGET a\r\n\r\nECHO 'x y'\r\n")
        .unwrap();
    assert_eq!(c.read(), Value::Simple("PONG".into()));
    assert_eq!(c.read(), Value::Simple("OK".into()));
    assert_eq!(c.read(), Value::Bulk(b"hello world".to_vec()));
    assert_eq!(c.read(), Value::Bulk(b"x y".to_vec()));
}

#[test]
fn a_command_trickled_byte_by_byte_is_parsed() {
    let gate = Respgate::start();
    let mut s = raw(&gate.addr);
    s.set_nodelay(true).unwrap();
    for b in b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n" {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+OK\r\n");
}

#[test]
fn resp3_after_hello() {
    let gate = Respgate::start();
    let mut c = Conn::connect(&gate.addr);
    match c.cmd_str("HELLO 3") {
        Value::Map(m) => {
            assert!(
                m.contains(&(Value::Bulk(b"proto".to_vec()), Value::Int(3))),
                "{m:?}"
            );
            assert!(m.contains(&(
                Value::Bulk(b"server".to_vec()),
                Value::Bulk(b"redis".to_vec())
            )));
        }
        other => panic!("HELLO 3: {other:?}"),
    }
    assert_eq!(c.cmd_str("GET missing"), Value::Null);
    match c.cmd_str("CONFIG GET maxmemory") {
        Value::Map(m) => assert_eq!(m.len(), 1),
        other => panic!("{other:?}"),
    }
    match c.cmd_str("HELLO 2") {
        Value::Array(v) => assert_eq!(v.len(), 14),
        other => panic!("HELLO 2: {other:?}"),
    }
    assert_eq!(c.cmd_str("GET missing"), Value::NullBulk);
}

fn protocol_error_closes(payload: &[u8], expected: &str) {
    let gate = Respgate::start();
    let mut s = raw(&gate.addr);
    s.write_all(payload).unwrap();
    let got = read_to_close(&mut s);
    assert_eq!(String::from_utf8_lossy(&got), format!("-{expected}\r\n"));
    still_serving(&gate);
}

#[test]
fn huge_bulk_length_is_refused() {
    protocol_error_closes(
        b"*2\r\n$3\r\nGET\r\n$1099511627776\r\n",
        "ERR Protocol error: invalid bulk length",
    );
}

#[test]
fn bad_multibulk_length_is_refused() {
    protocol_error_closes(b"*abc\r\n", "ERR Protocol error: invalid multibulk length");
    protocol_error_closes(
        b"*99999999999999999999\r\n",
        "ERR Protocol error: invalid multibulk length",
    );
}

#[test]
fn negative_multibulk_is_ignored_like_redis() {
    let gate = Respgate::start();
    let mut c = Conn::connect(&gate.addr);
    c.send_raw(b"*-5\r\n*0\r\n").unwrap();
    assert_eq!(c.cmd_str("PING"), Value::Simple("PONG".into()));
}

#[test]
fn unbalanced_inline_quote_is_refused() {
    protocol_error_closes(
        b"SET a \"unterminated\r\n",
        "ERR Protocol error: unbalanced quotes in request",
    );
}

#[test]
fn expected_dollar() {
    protocol_error_closes(
        b"*1\r\n+PING\r\n",
        "ERR Protocol error: expected '$', got '+'",
    );
}

#[test]
fn too_big_inline_request() {
    let gate = Respgate::start();
    let mut s = raw(&gate.addr);
    let junk = vec![b'a'; 200 * 1024];
    let _ = s.write_all(&junk);
    let got = read_to_close(&mut s);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR Protocol error: too big inline request\r\n"
    );
    still_serving(&gate);
}

#[test]
fn ten_megabytes_of_random_bytes() {
    let gate = Respgate::start();
    let mut s = raw(&gate.addr);
    let mut junk = vec![0u8; 10 << 20];
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for b in junk.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    // The server may close the socket mid-write; that's expected.
    let _ = s.write_all(&junk);
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = [0u8; 1024];
    while let Ok(n) = s.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    still_serving(&gate);
}

#[test]
fn a_never_finished_request_does_not_block_others() {
    let gate = Respgate::start();
    let mut s = raw(&gate.addr);
    s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nhalf")
        .unwrap();
    still_serving(&gate);
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(c.cmd_str("SET other 1"), Value::Simple("OK".into()));
    drop(s);
    still_serving(&gate);
}

#[test]
fn configured_limits_apply() {
    let dir = std::env::temp_dir().join(format!("respgate-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("limits.toml");
    std::fs::write(
        &cfg,
        "[limits]\nmax_bulk_len = \"1kb\"\nmax_args = 4\nmax_query_buffer = \"64kb\"\n",
    )
    .unwrap();
    let gate = Respgate::start_with(&["--config", cfg.to_str().unwrap()]);
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(
        c.cmd(&[b"SET".as_slice(), b"k", &[b'x'; 1024]]),
        Value::Simple("OK".into())
    );
    let mut s = raw(&gate.addr);
    s.write_all(&Conn::encode(&[b"SET".as_slice(), b"k", &[b'x'; 1025]]))
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_to_close(&mut s)),
        "-ERR Protocol error: invalid bulk length\r\n"
    );
    let mut s = raw(&gate.addr);
    s.write_all(&Conn::encode(&[b"DEL".as_slice(), b"a", b"b", b"c", b"d"]))
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&read_to_close(&mut s)),
        "-ERR Protocol error: invalid multibulk length\r\n"
    );
    still_serving(&gate);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn noauth_and_wrongpass_with_requirepass() {
    let dir = std::env::temp_dir().join(format!("respgate-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("auth.toml");
    std::fs::write(&cfg, "[server]\nrequirepass = \"s3cret\"\n").unwrap();
    let gate = Respgate::start_with(&["--config", cfg.to_str().unwrap()]);
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(
        c.cmd_str("GET k"),
        Value::Error("NOAUTH Authentication required.".into())
    );
    assert_eq!(
        c.cmd_str("AUTH wrong"),
        Value::Error("WRONGPASS invalid username-password pair or user is disabled.".into())
    );
    assert!(
        matches!(c.cmd_str("HELLO 3"), Value::Error(e) if e.starts_with("NOAUTH HELLO must be called"))
    );
    assert_eq!(c.cmd_str("AUTH s3cret"), Value::Simple("OK".into()));
    assert_eq!(c.cmd_str("GET k"), Value::NullBulk);
    let mut c2 = Conn::connect(&gate.addr);
    assert!(matches!(
        c2.cmd_str("HELLO 3 AUTH default s3cret"),
        Value::Map(_)
    ));
    assert_eq!(c2.cmd_str("GET k"), Value::Null);
    assert_eq!(c2.cmd_str("RESET"), Value::Simple("RESET".into()));
    assert_eq!(
        c2.cmd_str("GET k"),
        Value::Error("NOAUTH Authentication required.".into())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn quit_replies_then_closes() {
    let gate = Respgate::start();
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(c.cmd_str("QUIT"), Value::Simple("OK".into()));
    assert!(c.is_closed());
}

#[test]
fn client_kill_by_id_closes_that_client() {
    let gate = Respgate::start();
    let mut victim = Conn::connect(&gate.addr);
    let Value::Int(id) = victim.cmd_str("CLIENT ID") else {
        panic!()
    };
    let mut killer = Conn::connect(&gate.addr);
    assert_eq!(
        killer.cmd_str(&format!("CLIENT KILL ID {id}")),
        Value::Int(1)
    );
    assert!(victim.is_closed());
    assert_eq!(killer.cmd_str("CLIENT KILL ID 999999"), Value::Int(0));
}

#[test]
fn publish_reaches_subscribers_in_resp2_and_resp3() {
    let gate = Respgate::start();
    let mut sub2 = Conn::connect(&gate.addr);
    let mut sub3 = Conn::connect(&gate.addr);
    assert!(matches!(sub3.cmd_str("HELLO 3"), Value::Map(_)));
    for s in [&mut sub2, &mut sub3] {
        let confirm = s.cmd_str("SUBSCRIBE events");
        let items = match confirm {
            Value::Array(v) | Value::Push(v) => v,
            other => panic!("{other:?}"),
        };
        assert_eq!(items[0], Value::Bulk(b"subscribe".to_vec()));
    }
    let mut publisher = Conn::connect(&gate.addr);
    assert_eq!(publisher.cmd_str("PUBLISH events hello"), Value::Int(2));
    let msg = vec![
        Value::Bulk(b"message".to_vec()),
        Value::Bulk(b"events".to_vec()),
        Value::Bulk(b"hello".to_vec()),
    ];
    assert_eq!(sub2.read(), Value::Array(msg.clone()));
    assert_eq!(sub3.read(), Value::Push(msg));
    // RESP3 subscribers may run normal commands between pushes.
    assert_eq!(sub3.cmd_str("SET a 1"), Value::Simple("OK".into()));
    drop(sub2);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(publisher.cmd_str("PUBLISH events again"), Value::Int(1));
}

/// Commands of a pipeline are counted together (see `CommandTally`): a command that shows
/// the counts, later in the same pipeline or from another client once the replies are in,
/// sees every one of them, and CLIENT LIST shows the last command run.
#[test]
fn pipelined_commands_are_counted_before_anything_shows_the_counts() {
    let gate = Respgate::start();
    let mut c = Conn::connect(&gate.addr);
    let field = |info: &Value, prefix: &str| -> String {
        let text = String::from_utf8_lossy(info.as_bytes().expect("bulk")).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {prefix} in {text}"))
    };
    let mut batch = Vec::new();
    for _ in 0..25 {
        batch.extend(Conn::encode(&[b"GET".as_slice(), b"nothing"]));
    }
    batch.extend(Conn::encode(&[b"INFO".as_slice(), b"commandstats"]));
    batch.extend(Conn::encode(&[b"SELECT".as_slice(), b"3"]));
    batch.extend(Conn::encode(&[b"CLIENT".as_slice(), b"INFO"]));
    c.send_raw(&batch).unwrap();
    for _ in 0..25 {
        assert_eq!(c.read(), Value::NullBulk);
    }
    let stats = c.read();
    assert!(
        field(&stats, "cmdstat_get:").starts_with("calls=25,"),
        "{stats:?}"
    );
    assert_eq!(c.read(), Value::Simple("OK".into()));
    let me = c.read();
    let me = String::from_utf8_lossy(me.as_bytes().expect("bulk")).into_owned();
    assert!(
        me.contains(" db=3 ") && me.contains(" cmd=client|info "),
        "{me}"
    );
    // Another client, after the replies: the GETs, INFO, SELECT and CLIENT INFO were
    // counted, and the first client's last command shows in CLIENT LIST.
    c.cmd_str("GET nothing");
    let mut other = Conn::connect(&gate.addr);
    let stats = other.cmd_str("INFO commandstats");
    assert!(
        field(&stats, "cmdstat_get:").starts_with("calls=26,"),
        "{stats:?}"
    );
    let info = other.cmd_str("INFO stats");
    let total: u64 = field(&info, "total_commands_processed:")
        .trim()
        .parse()
        .unwrap();
    assert!(total >= 29, "total_commands_processed {total}");
    let list = other.cmd_str("CLIENT LIST");
    let list = String::from_utf8_lossy(list.as_bytes().expect("bulk")).into_owned();
    assert!(
        list.lines()
            .any(|l| l.contains(" db=3 ") && l.contains(" cmd=get ")),
        "{list}"
    );
    assert_eq!(c.cmd_str("SELECT 5"), Value::Simple("OK".into()));
    let list = other.cmd_str("CLIENT LIST");
    let list = String::from_utf8_lossy(list.as_bytes().expect("bulk")).into_owned();
    assert!(
        list.lines()
            .any(|l| l.contains(" db=5 ") && l.contains(" cmd=select ")),
        "{list}"
    );
}

/// CONFIG RESETSTAT zeroes INFO stats' counters as redis-server does (compared with one).
#[test]
fn config_resetstat_zeroes_the_stats_as_redis_does() {
    let redis = common::redis_server::RedisServer::start();
    let gate = Respgate::start();
    let field = |info: &Value, name: &str| -> String {
        let text = String::from_utf8_lossy(info.as_bytes().expect("bulk")).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")).map(str::to_owned))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    let names = [
        "keyspace_hits",
        "keyspace_misses",
        "total_commands_processed",
        "total_connections_received",
    ];
    let mut seen = Vec::new();
    for addr in [redis.addr(), gate.addr.clone()] {
        let mut c = Conn::connect(&addr);
        c.cmd_str("SET k v");
        c.cmd_str("GET k");
        c.cmd_str("GET nothing");
        let before = c.cmd_str("INFO stats");
        assert_eq!(field(&before, "keyspace_hits"), "1", "{addr}");
        assert_eq!(field(&before, "keyspace_misses"), "1", "{addr}");
        assert_eq!(c.cmd_str("CONFIG RESETSTAT"), Value::Simple("OK".into()));
        let after = c.cmd_str("INFO stats");
        seen.push(names.map(|n| field(&after, n)));
    }
    assert_eq!(seen[0], seen[1], "redis-server, respgate: {names:?}");
    assert_eq!(seen[1][0], "0");
}
