//! XREAD BLOCK and XREADGROUP BLOCK over real sockets: every scenario runs against a real
//! redis-server and against respgate, and the transcripts of replies must be equal.

mod common;

use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::resp::{Conn, Value};
use common::respgate::Respgate;

/// Long enough for a command sent on one connection to be blocked before another
/// connection's write arrives.
const SETTLE: Duration = Duration::from_millis(120);

fn settle() {
    std::thread::sleep(SETTLE);
}

fn args(line: &str) -> Vec<Vec<u8>> {
    common::resp::split_args(line)
}

fn send(c: &mut Conn, line: &str) {
    let a = args(line);
    let refs: Vec<&[u8]> = a.iter().map(|x| x.as_slice()).collect();
    c.send(&refs);
}

/// The scenarios: each pushes the replies it saw, in order.
fn transcript(addr: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut admin = Conn::connect(addr);
    let mut a = Conn::connect(addr);
    let mut b = Conn::connect(addr);

    // `$` is pinned when the client blocks: the entry added later is served.
    out.push(admin.cmd_str("XADD s1 1-0 f v"));
    send(&mut a, "XREAD BLOCK 0 STREAMS s1 $");
    settle();
    send(&mut b, "XREAD BLOCK 0 STREAMS s1 $");
    settle();
    out.push(admin.cmd_str("XADD s1 2-0 f w"));
    out.push(a.read());
    out.push(b.read());

    // Several streams: a write to the second one wakes the reader.
    send(&mut a, "XREAD COUNT 5 BLOCK 0 STREAMS s1 s2 2-0 0-0");
    settle();
    out.push(admin.cmd_str("XADD s2 7-1 x y"));
    out.push(a.read());

    // Consumer group waiters are served in arrival order, one new entry each.
    out.push(admin.cmd_str("XGROUP CREATE g1 grp $ MKSTREAM"));
    send(&mut a, "XREADGROUP GROUP grp alice BLOCK 0 STREAMS g1 >");
    settle();
    send(&mut b, "XREADGROUP GROUP grp bob BLOCK 0 STREAMS g1 >");
    settle();
    out.push(admin.cmd_str("XADD g1 1-0 n 1"));
    out.push(a.read());
    out.push(admin.cmd_str("XADD g1 2-0 n 2"));
    out.push(b.read());
    out.push(admin.cmd_str("XPENDING g1 grp"));

    // A write inside MULTI/EXEC wakes a waiter once the transaction is done; COUNT holds.
    send(
        &mut a,
        "XREADGROUP GROUP grp alice COUNT 1 BLOCK 0 STREAMS g1 >",
    );
    settle();
    out.push(admin.cmd_str("MULTI"));
    out.push(admin.cmd_str("XADD g1 3-0 n 3"));
    out.push(admin.cmd_str("XADD g1 4-0 n 4"));
    out.push(admin.cmd_str("EXEC"));
    out.push(a.read());

    // ... and so does one from a script.
    send(
        &mut b,
        "XREADGROUP GROUP grp bob NOACK BLOCK 0 STREAMS g1 >",
    );
    settle();
    out.push(admin.cmd(&[
        b"EVAL",
        b"return redis.call('XADD', KEYS[1], '5-0', 'n', '5')",
        b"1",
        b"g1",
    ]));
    out.push(b.read());
    out.push(admin.cmd_str("XPENDING g1 grp"));
    out.push(admin.cmd_str("XINFO GROUPS g1"));

    // Inside MULTI and scripts XREAD BLOCK does not block.
    out.push(a.cmd_str("MULTI"));
    out.push(a.cmd_str("XREAD BLOCK 0 STREAMS s1 $"));
    out.push(a.cmd_str("XREADGROUP GROUP grp alice BLOCK 0 STREAMS g1 >"));
    out.push(a.cmd_str("EXEC"));
    out.push(a.cmd(&[
        b"EVAL",
        b"return redis.call('XREAD', 'BLOCK', '0', 'STREAMS', KEYS[1], '$')",
        b"1",
        b"s1",
    ]));
    out.push(a.cmd(&[
        b"EVAL",
        b"return redis.call('XREADGROUP', 'GROUP', 'grp', 'x', 'BLOCK', '0', 'STREAMS', KEYS[1], '>')",
        b"1",
        b"g1",
    ]));

    // Timeouts: a null array in RESP2, `_` in RESP3.
    let started = Instant::now();
    out.push(a.cmd_str("XREAD BLOCK 150 STREAMS s1 $"));
    out.push(Value::Bool(started.elapsed() >= Duration::from_millis(140)));
    out.push(a.cmd_str("XREADGROUP GROUP grp alice BLOCK 100 STREAMS g1 >"));
    // HELLO's reply names the server: not compared.
    b.cmd_str("HELLO 3");
    out.push(b.cmd_str("XREAD BLOCK 100 STREAMS s1 $"));
    b.cmd_str("HELLO 2");

    // Bad BLOCK arguments are answered at once.
    out.push(a.cmd_str("XREAD BLOCK -1 STREAMS s1 $"));
    out.push(a.cmd_str("XREAD BLOCK x STREAMS s1 $"));
    // An ID that can be served right away never blocks, nor does an XREADGROUP history read.
    out.push(a.cmd_str("XREAD BLOCK 0 STREAMS s1 0"));
    out.push(a.cmd_str("XREADGROUP GROUP grp alice BLOCK 0 STREAMS g1 0"));

    // The group or the key going away ends an XREADGROUP wait with an error.
    send(&mut a, "XREADGROUP GROUP grp alice BLOCK 0 STREAMS g1 >");
    settle();
    out.push(admin.cmd_str("XGROUP DESTROY g1 grp"));
    out.push(a.read());
    out.push(admin.cmd_str("XGROUP CREATE g1 grp $"));
    send(&mut a, "XREADGROUP GROUP grp alice BLOCK 0 STREAMS g1 >");
    settle();
    out.push(admin.cmd_str("DEL g1"));
    out.push(a.read());
    out.push(admin.cmd_str("XGROUP CREATE g1 grp $ MKSTREAM"));
    send(&mut a, "XREADGROUP GROUP grp alice BLOCK 0 STREAMS g1 >");
    settle();
    out.push(admin.cmd_str("SET g1 string"));
    out.push(a.read());
    out.push(admin.cmd_str("DEL g1"));
    out.push(admin.cmd_str("XGROUP CREATE g1 grp $ MKSTREAM"));
    send(&mut a, "XREADGROUP GROUP grp alice BLOCK 0 STREAMS g1 >");
    settle();
    out.push(admin.cmd_str("FLUSHALL"));
    out.push(a.read());

    // ... as does the stream expiring (found by the active expiry cycle).
    out.push(admin.cmd_str("XGROUP CREATE g1 grp $ MKSTREAM"));
    out.push(admin.cmd_str("PEXPIRE g1 200"));
    send(&mut a, "XREADGROUP GROUP grp alice BLOCK 0 STREAMS g1 >");
    out.push(a.read());

    // XGROUP SETID moving the group back does not wake its waiter (the next XADD does,
    // which then serves from the new position).
    out.push(admin.cmd_str("XADD g1 1-0 a b"));
    out.push(admin.cmd_str("XGROUP CREATE g1 grp $"));
    send(&mut a, "XREADGROUP GROUP grp alice BLOCK 0 STREAMS g1 >");
    settle();
    out.push(admin.cmd_str("XGROUP SETID g1 grp 0"));
    settle();
    out.push(admin.cmd_str("XADD g1 2-0 c d"));
    out.push(a.read());

    // A plain XREAD waiter just keeps waiting through such changes.
    send(&mut a, "XREAD BLOCK 0 STREAMS s3 $");
    settle();
    out.push(admin.cmd_str("SET s3 string"));
    out.push(admin.cmd_str("DEL s3"));
    out.push(admin.cmd_str("XADD s3 3-0 a b"));
    out.push(a.read());

    // CLIENT UNBLOCK: as a timeout, or with the UNBLOCKED error.
    let id = match a.cmd_str("CLIENT ID") {
        Value::Int(i) => i,
        other => panic!("CLIENT ID: {other:?}"),
    };
    send(&mut a, "XREAD BLOCK 0 STREAMS s3 $");
    settle();
    out.push(admin.cmd_str(&format!("CLIENT UNBLOCK {id}")));
    out.push(a.read());
    send(&mut a, "XREAD BLOCK 0 STREAMS s3 $");
    settle();
    out.push(admin.cmd_str(&format!("CLIENT UNBLOCK {id} ERROR")));
    out.push(a.read());

    // A waiter that disconnects stops waiting: the next one in line gets the entry.
    out.push(admin.cmd_str("XGROUP CREATE g2 grp $ MKSTREAM"));
    let mut gone = Conn::connect(addr);
    send(&mut gone, "XREADGROUP GROUP grp gone BLOCK 0 STREAMS g2 >");
    settle();
    send(&mut b, "XREADGROUP GROUP grp bob BLOCK 0 STREAMS g2 >");
    settle();
    drop(gone);
    settle();
    out.push(admin.cmd_str("XADD g2 1-0 k v"));
    out.push(b.read());
    // (The summary: the extended form shows idle times, which move with the clock.)
    out.push(admin.cmd_str("XPENDING g2 grp"));
    out.push(
        admin
            .cmd_str("INFO clients")
            .as_bytes()
            .map_or(Value::Null, |info| {
                let text = String::from_utf8_lossy(info);
                let line = text
                    .lines()
                    .find(|l| l.starts_with("blocked_clients:"))
                    .unwrap_or("missing");
                Value::Bulk(line.as_bytes().to_vec())
            }),
    );
    out
}

#[test]
fn stream_blocking_matches_redis() {
    let redis = RedisServer::start();
    let expected = transcript(&redis.addr());
    let gate = Respgate::start();
    let got = transcript(&gate.addr);
    for (i, (e, g)) in expected.iter().zip(got.iter()).enumerate() {
        assert_eq!(g, e, "reply {i} differs");
    }
    assert_eq!(got.len(), expected.len());
}
