//! CLIENT TRACKING (server-assisted client-side caching): the same checks pass against a
//! real redis-server and against respgate forwarding to one (standalone mode): RESP3
//! invalidation pushes, RESP2 REDIRECT to a `__redis__:invalidate` subscriber, BCAST
//! prefixes, OPTIN with CLIENT CACHING, TRACKINGINFO/GETREDIR and the option errors word
//! for word; and tracking survives respgate's backend connection dying (the client is told
//! to flush, then tracked again).

mod common;

use std::time::Duration;

use common::redis_server::RedisServer;
use common::resp::{Conn, Value};
use common::respgate::Respgate;

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

fn ok() -> Value {
    Value::Simple("OK".into())
}

fn resp3(addr: &str) -> Conn {
    let mut c = Conn::connect(addr);
    assert!(matches!(c.cmd_str("HELLO 3"), Value::Map(_)));
    c
}

fn invalidate(keys: &[&str]) -> Value {
    Value::Push(vec![
        bulk("invalidate"),
        Value::Array(keys.iter().map(|k| bulk(k)).collect()),
    ])
}

/// Reads until a push arrives (replies to earlier commands may come first through a
/// proxy: an invalidation may follow a later reply, never precede an earlier one).
fn next_push(c: &mut Conn) -> Value {
    for _ in 0..10 {
        match c.read() {
            Value::Push(p) => return Value::Push(p),
            Value::Array(a) if a.first() == Some(&bulk("message")) => return Value::Array(a),
            _ => {}
        }
    }
    panic!("no push")
}

/// The checks every Redis-compatible server passes; `p` prefixes the keys.
fn tracking_behaves_as_redis(addr: &str, p: &str) {
    let k = |s: &str| format!("{p}{s}");
    let mut writer = Conn::connect(addr);

    // Errors, word for word.
    let mut c = resp3(addr);
    for (line, want) in [
        (
            "CLIENT TRACKING on redirect 999999",
            "ERR The client ID you want redirect to does not exist",
        ),
        (
            "CLIENT TRACKING on prefix a",
            "ERR PREFIX option requires BCAST mode to be enabled",
        ),
        (
            "CLIENT TRACKING on optin optout",
            "ERR You can't specify both OPTIN mode and OPTOUT mode",
        ),
        (
            "CLIENT TRACKING on bcast optin",
            "ERR OPTIN and OPTOUT are not compatible with BCAST",
        ),
        ("CLIENT TRACKING maybe", "ERR syntax error"),
        (
            "CLIENT CACHING yes",
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ),
        (
            "CLIENT TRACKING on bcast prefix a prefix ab",
            "ERR Prefix 'a' overlaps with another provided prefix 'ab'. Prefixes for a single client must not overlap.",
        ),
    ] {
        assert_eq!(
            c.cmd_str(line),
            Value::Error(want.into()),
            "{line} on {addr}"
        );
    }
    assert_eq!(c.cmd_str("CLIENT GETREDIR"), Value::Int(-1));

    // Default mode over RESP3: keys read are tracked; another client's write invalidates.
    assert_eq!(c.cmd_str("CLIENT TRACKING on"), ok());
    assert_eq!(c.cmd_str("CLIENT GETREDIR"), Value::Int(0));
    writer.cmd_str(&format!("SET {} 1", k("a")));
    assert_eq!(c.cmd_str(&format!("GET {}", k("a"))), bulk("1"));
    writer.cmd_str(&format!("SET {} 2", k("a")));
    assert_eq!(next_push(&mut c), invalidate(&[&k("a")]));
    // Invalidated keys are forgotten: another write is silent until read again.
    writer.cmd_str(&format!("SET {} 3", k("a")));
    assert_eq!(c.cmd_str("PING"), Value::Simple("PONG".into()));
    assert!(
        c.nothing_within(Duration::from_millis(150)),
        "{addr}: push for a forgotten key"
    );
    assert_eq!(
        c.cmd_str("CLIENT TRACKINGINFO"),
        Value::Map(vec![
            (bulk("flags"), Value::Set(vec![bulk("on")])),
            (bulk("redirect"), Value::Int(0)),
            (bulk("prefixes"), Value::Array(vec![])),
        ])
    );
    assert_eq!(c.cmd_str("CLIENT TRACKING off"), ok());
    assert_eq!(c.cmd_str("CLIENT GETREDIR"), Value::Int(-1));

    // OPTIN: only reads after CLIENT CACHING yes are tracked.
    let mut o = resp3(addr);
    assert_eq!(o.cmd_str("CLIENT TRACKING on optin"), ok());
    assert_eq!(
        o.cmd_str("CLIENT CACHING no"),
        Value::Error(
            "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.".into()
        )
    );
    o.cmd_str(&format!("GET {}", k("o1")));
    assert_eq!(o.cmd_str("CLIENT CACHING yes"), ok());
    o.cmd_str(&format!("GET {}", k("o2")));
    writer.cmd_str(&format!("SET {} x", k("o1")));
    writer.cmd_str(&format!("SET {} x", k("o2")));
    assert_eq!(next_push(&mut o), invalidate(&[&k("o2")]));
    assert_eq!(o.cmd_str("PING"), Value::Simple("PONG".into()));
    assert!(
        o.nothing_within(Duration::from_millis(150)),
        "{addr}: OPTIN tracked an uncached read"
    );
    // CLIENT CACHING yes holds for a whole transaction.
    assert_eq!(o.cmd_str("CLIENT CACHING yes"), ok());
    assert_eq!(o.cmd_str("MULTI"), ok());
    assert_eq!(
        o.cmd_str(&format!("GET {}", k("o3"))),
        Value::Simple("QUEUED".into())
    );
    assert!(matches!(o.cmd_str("EXEC"), Value::Array(_)));
    writer.cmd_str(&format!("SET {} x", k("o3")));
    assert_eq!(next_push(&mut o), invalidate(&[&k("o3")]));

    // BCAST: every key under the prefixes, read or not.
    let mut b = resp3(addr);
    let prefix = k("bc:");
    assert_eq!(
        b.cmd_str(&format!("CLIENT TRACKING on bcast prefix {prefix}")),
        ok()
    );
    writer.cmd_str(&format!("SET {} v", k("bc:1")));
    assert_eq!(next_push(&mut b), invalidate(&[&k("bc:1")]));
    writer.cmd_str(&format!("SET {} v", k("other")));
    assert_eq!(b.cmd_str("PING"), Value::Simple("PONG".into()));
    assert!(
        b.nothing_within(Duration::from_millis(150)),
        "{addr}: BCAST outside its prefix"
    );

    // RESP2 with REDIRECT to a client subscribed to __redis__:invalidate.
    let mut target = Conn::connect(addr);
    let Value::Int(target_id) = target.cmd_str("CLIENT ID") else {
        panic!("CLIENT ID")
    };
    target.cmd_str("SUBSCRIBE __redis__:invalidate");
    let mut r2 = Conn::connect(addr);
    assert_eq!(
        r2.cmd_str(&format!("CLIENT TRACKING on REDIRECT {target_id}")),
        ok()
    );
    assert_eq!(r2.cmd_str("CLIENT GETREDIR"), Value::Int(target_id));
    r2.cmd_str(&format!("GET {}", k("r")));
    writer.cmd_str(&format!("SET {} 1", k("r")));
    assert_eq!(
        next_push(&mut target),
        Value::Array(vec![
            bulk("message"),
            bulk("__redis__:invalidate"),
            Value::Array(vec![bulk(&k("r"))]),
        ])
    );
}

#[test]
fn tracking_matches_a_real_redis_server() {
    let redis = RedisServer::start();
    tracking_behaves_as_redis(&redis.addr(), "direct:");
    let gate = Respgate::standalone(&redis.addr(), "");
    tracking_behaves_as_redis(&gate.addr, "fwd:");
}

#[test]
fn tracking_in_the_embedded_engine_matches_redis() {
    let gate = Respgate::start();
    tracking_behaves_as_redis(&gate.addr, "emb:");
    // Expiry and FLUSHALL invalidate too.
    let mut c = resp3(&gate.addr);
    let mut writer = Conn::connect(&gate.addr);
    assert_eq!(c.cmd_str("CLIENT TRACKING on"), ok());
    writer.cmd_str("SET emb:ttl v PX 50");
    assert_eq!(c.cmd_str("GET emb:ttl"), bulk("v"));
    assert_eq!(next_push(&mut c), invalidate(&["emb:ttl"]));
    assert_eq!(writer.cmd_str("FLUSHALL"), ok());
    assert_eq!(
        next_push(&mut c),
        Value::Push(vec![bulk("invalidate"), Value::Null])
    );
}

#[test]
fn tracking_survives_the_backend_connection_dying() {
    let redis = RedisServer::start();
    let gate = Respgate::standalone(&redis.addr(), "");
    let mut c = resp3(&gate.addr);
    let mut writer = Conn::connect(&gate.addr);
    let mut admin = Conn::connect(&redis.addr());
    assert_eq!(c.cmd_str("CLIENT SETNAME tracker"), ok());
    assert_eq!(c.cmd_str("CLIENT TRACKING on"), ok());
    c.cmd_str("GET surv:a");
    // The backend drops respgate's connection that tracks for this client.
    let Value::Int(killed) = admin.cmd_str("CLIENT KILL TYPE normal SKIPME yes") else {
        panic!("CLIENT KILL")
    };
    assert!(killed >= 1);
    // Whatever the client cached may be stale now: it is told to flush everything.
    assert_eq!(
        next_push(&mut c),
        Value::Push(vec![bulk("invalidate"), Value::Null])
    );
    // The next command tracks again on a new connection.
    assert_eq!(c.cmd_str("GET surv:b"), Value::Null);
    writer.cmd_str("SET surv:b 1");
    assert_eq!(next_push(&mut c), invalidate(&["surv:b"]));
}

const TENANTS: &str = r#"
[[tenants]]
name = "a"
username = "ua"
password = "pa"
prefix = "a:"
[[tenants]]
name = "b"
username = "ub"
password = "pb"
prefix = "b:"
"#;

/// Tenants see invalidations of their own keys only, under the names they know.
fn tenants_hear_only_their_keys(addr: &str) {
    let login = |user: &str, pass: &str| {
        let mut c = Conn::connect(addr);
        assert!(matches!(
            c.cmd_str(&format!("HELLO 3 AUTH {user} {pass}")),
            Value::Map(_)
        ));
        c
    };
    let mut a = login("ua", "pa");
    let mut a_bcast = login("ua", "pa");
    let mut b = login("ub", "pb");
    assert_eq!(a.cmd_str("CLIENT TRACKING on"), ok());
    assert_eq!(a_bcast.cmd_str("CLIENT TRACKING on bcast"), ok());
    a.cmd_str("GET shared");
    // Tenant b's key of the same name is another key: a hears nothing of it.
    b.cmd_str("SET shared 1");
    assert_eq!(a.cmd_str("PING"), Value::Simple("PONG".into()));
    assert!(
        a.nothing_within(Duration::from_millis(150)),
        "{addr}: a heard b's key"
    );
    assert_eq!(a_bcast.cmd_str("PING"), Value::Simple("PONG".into()));
    assert!(
        a_bcast.nothing_within(Duration::from_millis(150)),
        "{addr}: a's BCAST heard b's key"
    );
    // Its own write: the key by the name a knows.
    b.cmd_str("HELLO 3 AUTH ua pa");
    b.cmd_str("SET shared 2");
    assert_eq!(next_push(&mut a), invalidate(&["shared"]));
    assert_eq!(next_push(&mut a_bcast), invalidate(&["shared"]));
}

#[test]
fn tenants_hear_only_their_own_invalidations() {
    let gate = Respgate::start_with(&["--config", &common::respgate::temp_config(TENANTS)]);
    tenants_hear_only_their_keys(&gate.addr);
    let redis = RedisServer::start();
    let cfg = format!(
        "[backend]\nmode = \"standalone\"\naddress = \"{}\"\n{TENANTS}",
        redis.addr()
    );
    let gate = Respgate::start_with(&["--config", &common::respgate::temp_config(&cfg)]);
    tenants_hear_only_their_keys(&gate.addr);
}

/// REDIRECT goes through respgate's pub/sub bridge connection: when the backend drops it,
/// the redirect target is told to flush, and the tracking client's next command makes the
/// redirection again on the new connection.
#[test]
fn redirected_tracking_survives_the_bridge_reconnecting() {
    let redis = RedisServer::start();
    let gate = Respgate::standalone(&redis.addr(), "");
    let mut target = Conn::connect(&gate.addr);
    let Value::Int(target_id) = target.cmd_str("CLIENT ID") else {
        panic!("CLIENT ID")
    };
    target.cmd_str("SUBSCRIBE __redis__:invalidate");
    let mut tracker = Conn::connect(&gate.addr);
    let mut writer = Conn::connect(&gate.addr);
    assert_eq!(
        tracker.cmd_str(&format!("CLIENT TRACKING on REDIRECT {target_id}")),
        ok()
    );
    tracker.cmd_str("GET bridge:a");
    // The backend drops respgate's subscriber connection (the bridge).
    let mut admin = Conn::connect(&redis.addr());
    assert!(matches!(admin.cmd_str("CLIENT KILL TYPE pubsub"), Value::Int(n) if n >= 1));
    // A flush as Redis sends it to a RESP2 redirect target: a null bulk for the keys.
    let flush = Value::Array(vec![
        bulk("message"),
        bulk("__redis__:invalidate"),
        Value::NullBulk,
    ]);
    assert_eq!(next_push(&mut target), flush);
    // Once the bridge is back, the tracker's next command redirects to it again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        tracker.cmd_str("GET bridge:b");
        writer.cmd_str("SET bridge:b 1");
        match target.try_read_within(Duration::from_millis(300)) {
            Some(Value::Array(m)) if m.get(2) == Some(&Value::Array(vec![bulk("bridge:b")])) => {
                break;
            }
            _ => {}
        }
        assert!(
            std::time::Instant::now() < deadline,
            "redirected invalidations never came back"
        );
    }
}
