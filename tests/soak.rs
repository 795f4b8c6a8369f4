//! Soak under backend faults, with a reply checker: clients pipeline SET/GET/INCR whose every
//! reply is predictable (each client owns its keys; values carry client, key, version and a
//! checksum) while the harness restarts the standalone backend (kill -9, AOF fsync always),
//! kills the Sentinel master, kills a cluster master, and reshards cluster slots holding the
//! clients' keys back and forth between two masters. Checked: no reply ever belongs to
//! another request (a wrong value, another client's value, a counter out of order); what
//! acknowledged writes were lost (none where Redis's own persistence keeps them: the
//! standalone restart and the reshard; counted and reported for the failovers, whose
//! replication is asynchronous); how long after each fault respgate served again; and, for
//! the reshard, that no client ever saw an error (respgate follows MOVED and ASK itself).
//!
//! Each topology runs `RESPGATE_SOAK_SECS` seconds (default 60, the suite's one-minute soak;
//! two at a time on two cores, the five take about three minutes together);
//! `scripts/soak.sh` runs them longer.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::redis_cluster::RedisCluster;
use common::redis_sentinel::{MASTER_NAME, SentinelSetup};
use common::redis_server::RedisServer;
use common::resp::{Conn, Value};
use common::respgate::Respgate;

const CLIENTS: usize = 8;
const KEYS: usize = 40;
/// Commands a client sends before reading their replies.
const PIPELINE: usize = 4;

fn soak_secs() -> u64 {
    std::env::var("RESPGATE_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// FNV-1a of the value's identity, so a value cannot be mistaken for another.
fn checksum(client: usize, key: usize, version: u64) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in format!("{client}/{key}/{version}").bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

fn value_of(client: usize, key: usize, version: u64) -> String {
    format!(
        "{client}:{key}:{version}:{:016x}",
        checksum(client, key, version)
    )
}

/// (client, key, version) of a value this harness wrote, if it is one (checksum intact).
fn parse_value(v: &[u8]) -> Option<(usize, usize, u64)> {
    let text = std::str::from_utf8(v).ok()?;
    let mut parts = text.split(':');
    let client = parts.next()?.parse().ok()?;
    let key = parts.next()?.parse().ok()?;
    let version = parts.next()?.parse().ok()?;
    let sum = u64::from_str_radix(parts.next()?, 16).ok()?;
    (parts.next().is_none() && sum == checksum(client, key, version))
        .then_some((client, key, version))
}

/// Totals over all clients.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    errors: AtomicU64,
    /// A reply that cannot be the answer to the request it came back for.
    wrong: AtomicU64,
    /// An acknowledged write missing afterwards (older value, or a counter going back).
    lost: AtomicU64,
    reconnects: AtomicU64,
    /// Unix-ish millis (since the run started) of the last error and last success.
    last_error_ms: AtomicU64,
    wrong_examples: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn wrong(&self, what: String) {
        self.wrong.fetch_add(1, Ordering::Relaxed);
        let mut ex = self
            .wrong_examples
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if ex.len() < 10 {
            ex.push(what);
        }
    }
}

/// One key's state as the client knows it.
#[derive(Clone, Copy, Default, Debug)]
struct KeyState {
    /// Last version the server acknowledged (0: never written).
    acked: u64,
    /// The newest version whose SET got an error or no reply (0: none since the last
    /// acknowledgement): every version after `acked` up to it may or may not have been
    /// applied (versions in between that were acknowledged would have moved `acked`).
    maybe: u64,
    next: u64,
}

enum Op {
    Set(usize, u64),
    Get(usize),
    Incr,
}

/// One client: pipelines of SET/GET/INCR on its own keys until `stop`, every reply checked.
fn client(
    id: usize,
    addr: String,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    started: Instant,
) -> Vec<KeyState> {
    let mut keys = vec![KeyState::default(); KEYS];
    // The counter: last acknowledged value, and INCRs whose outcome is unknown.
    let (mut counter, mut counter_unknown) = (0i64, 0i64);
    let counter_key = format!("soak:{id}:counter");
    let mut rng = 0x9e3779b97f4a7c15u64 ^ (id as u64).wrapping_mul(0x2545f4914f6cdd1d);
    let mut next_rand = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut conn: Option<Conn> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            conn = Conn::try_connect(&addr);
            if conn.is_none() {
                std::thread::sleep(Duration::from_millis(50));
            } else {
                tally.reconnects.fetch_add(1, Ordering::Relaxed);
            }
            continue;
        };
        let mut ops = Vec::with_capacity(PIPELINE);
        let mut bytes = Vec::new();
        for _ in 0..PIPELINE {
            let key = (next_rand() % KEYS as u64) as usize;
            let name = format!("soak:{id}:k{key}");
            let op = match next_rand() % 10 {
                0..=4 => {
                    keys[key].next += 1;
                    let version = keys[key].next;
                    let value = value_of(id, key, version);
                    bytes.extend(Conn::encode(&[b"SET", name.as_bytes(), value.as_bytes()]));
                    Op::Set(key, version)
                }
                5..=7 => {
                    bytes.extend(Conn::encode(&[b"GET", name.as_bytes()]));
                    Op::Get(key)
                }
                _ => {
                    bytes.extend(Conn::encode(&[b"INCR", counter_key.as_bytes()]));
                    Op::Incr
                }
            };
            ops.push(op);
        }
        if c.send_raw(&bytes).is_err() {
            conn = None;
            continue;
        }
        for op in ops {
            let reply = match c.try_read() {
                Ok(r) => r,
                Err(_) => {
                    // The connection broke: what was in flight has an unknown outcome.
                    if let Op::Set(key, version) = op {
                        keys[key].maybe = version;
                    }
                    if let Op::Incr = op {
                        counter_unknown += 1;
                    }
                    conn = None;
                    break;
                }
            };
            let now_ms = started.elapsed().as_millis() as u64;
            if let Value::Error(_) = &reply {
                tally.errors.fetch_add(1, Ordering::Relaxed);
                tally.last_error_ms.fetch_max(now_ms, Ordering::Relaxed);
                match op {
                    Op::Set(key, version) => keys[key].maybe = version,
                    Op::Incr => counter_unknown += 1,
                    Op::Get(_) => {}
                }
                continue;
            }
            tally.ok.fetch_add(1, Ordering::Relaxed);
            match op {
                Op::Set(key, version) => {
                    if reply == Value::Simple("OK".into()) {
                        keys[key].acked = version;
                        keys[key].maybe = 0;
                    } else {
                        tally.wrong(format!("client {id} SET k{key} v{version}: {reply:?}"));
                    }
                }
                Op::Get(key) => {
                    let st = &mut keys[key];
                    match &reply {
                        Value::Bulk(v) => match parse_value(v) {
                            Some((c2, k2, version)) if c2 == id && k2 == key => {
                                if version == st.acked
                                    || (version > st.acked && version <= st.maybe)
                                {
                                    // Later unknown SETs were not applied before this GET,
                                    // and respgate never retries them afterwards.
                                    st.acked = version;
                                    st.maybe = 0;
                                } else if version < st.acked {
                                    tally.lost.fetch_add(1, Ordering::Relaxed);
                                    st.acked = version;
                                } else {
                                    tally.wrong(format!(
                                        "client {id} GET k{key}: v{version}, acked v{}",
                                        st.acked
                                    ));
                                }
                            }
                            _ => tally.wrong(format!(
                                "client {id} GET k{key}: foreign value {:?}",
                                String::from_utf8_lossy(v)
                            )),
                        },
                        Value::NullBulk | Value::Null => {
                            if st.acked > 0 {
                                tally.lost.fetch_add(1, Ordering::Relaxed);
                                st.acked = 0;
                            }
                            st.maybe = 0;
                        }
                        other => tally.wrong(format!("client {id} GET k{key}: {other:?}")),
                    }
                }
                Op::Incr => match reply {
                    Value::Int(n) => {
                        if n > counter && n <= counter + 1 + counter_unknown {
                            counter = n;
                            counter_unknown = 0;
                        } else if n <= counter {
                            // The counter went back: acknowledged INCRs were lost.
                            tally.lost.fetch_add(1, Ordering::Relaxed);
                            counter = n;
                            counter_unknown = 0;
                        } else {
                            tally.wrong(format!(
                                "client {id} INCR: {n}, expected {}..={}",
                                counter + 1,
                                counter + 1 + counter_unknown
                            ));
                        }
                    }
                    other => tally.wrong(format!("client {id} INCR: {other:?}")),
                },
            }
        }
    }
    keys
}

/// Every client's keys, read directly from the Redis at `addr` after the run, hold what the
/// client was last told (or a write whose outcome it never learnt): nothing acknowledged is
/// missing.
/// In a cluster, `addr` is any node: a GET answered with MOVED is asked again where it points.
fn verify_backend(addr: &str, states: &[Vec<KeyState>]) {
    let mut conns: HashMap<String, Conn> = HashMap::new();
    let mut get = |name: &str| {
        let mut at = addr.to_string();
        for _ in 0..3 {
            let c = conns
                .entry(at.clone())
                .or_insert_with(|| Conn::connect(&at));
            match c.cmd(&[b"GET", name.as_bytes()]) {
                // "MOVED <slot> <host:port>"
                Value::Error(e) if e.starts_with("MOVED ") => {
                    at = e.split(' ').nth(2).unwrap_or_default().to_string();
                }
                other => return other,
            }
        }
        panic!("GET {name}: MOVED more than twice");
    };
    let mut checked = 0;
    for (id, keys) in states.iter().enumerate() {
        for (key, st) in keys.iter().enumerate() {
            let name = format!("soak:{id}:k{key}");
            let found = match get(&name) {
                Value::Bulk(v) => parse_value(&v)
                    .filter(|(c2, k2, _)| *c2 == id && *k2 == key)
                    .map(|(_, _, version)| version),
                Value::NullBulk | Value::Null => Some(0),
                other => panic!("GET {name} on the backend: {other:?}"),
            };
            let ok = found.is_some_and(|v| v == st.acked || (v > st.acked && v <= st.maybe));
            assert!(
                ok,
                "{name}: the backend holds {found:?}, the client was told v{} (unknown up to v{})",
                st.acked, st.maybe
            );
            checked += 1;
        }
    }
    assert!(checked > 0);
}

/// Runs the clients against `gate` for the soak time, calling `fault` once a third of the way
/// in; returns the tally and the outage (time from the fault to the last error after it,
/// i.e. until every client was served again).
fn soak(
    gate: &Respgate,
    what: &str,
    fault: impl FnOnce(),
) -> (Arc<Tally>, Duration, Vec<Vec<KeyState>>) {
    let secs = soak_secs();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let (addr, stop, tally) = (gate.addr.clone(), stop.clone(), tally.clone());
            std::thread::spawn(move || client(id, addr, stop, tally, started))
        })
        .collect();
    std::thread::sleep(Duration::from_secs(secs) / 3);
    let fault_ms = started.elapsed().as_millis() as u64;
    fault();
    let end = started + Duration::from_secs(secs);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    let states: Vec<Vec<KeyState>> = workers
        .into_iter()
        .map(|w| w.join().expect("soak client"))
        .collect();
    let last_error = tally.last_error_ms.load(Ordering::Relaxed);
    let outage = Duration::from_millis(last_error.saturating_sub(fault_ms));
    eprintln!(
        "soak {what}: {secs} s, {} ok, {} errors, {} lost acknowledged writes, {} wrong replies, {} reconnects; served again {:.2} s after the fault",
        tally.ok.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed),
        tally.lost.load(Ordering::Relaxed),
        tally.wrong.load(Ordering::Relaxed),
        tally.reconnects.load(Ordering::Relaxed),
        outage.as_secs_f64()
    );
    let examples = tally
        .wrong_examples
        .lock()
        .map(|e| e.join("\n"))
        .unwrap_or_default();
    assert_eq!(
        tally.wrong.load(Ordering::Relaxed),
        0,
        "{what}: replies that were not the answer to their request:\n{examples}"
    );
    assert!(
        tally.ok.load(Ordering::Relaxed) > 1000,
        "{what}: too little traffic"
    );
    (tally, outage, states)
}

#[test]
fn standalone_backend_restart() {
    // AOF with fsync always: whatever Redis acknowledged survives kill -9.
    let args = ["--appendonly", "yes", "--appendfsync", "always"];
    let redis = RedisServer::start_with(&args);
    let port = redis.port;
    let gate = Respgate::standalone(
        &redis.addr(),
        "connect_timeout = \"200ms\"\ncommand_timeout = \"2s\"\n",
    );
    let mut redis = Some(redis);
    let mut restarted = None;
    let (tally, outage, states) = soak(&gate, "standalone restart", || {
        if let Some(old) = redis.take() {
            let _ = std::process::Command::new("kill")
                .args(["-9", &old.pid().to_string()])
                .status();
            // Its data directory (with the AOF) is the restarted server's: keep it.
            std::mem::forget(old);
        }
        std::thread::sleep(Duration::from_millis(500));
        let deadline = Instant::now() + Duration::from_secs(10);
        while restarted.is_none() && Instant::now() < deadline {
            restarted = RedisServer::try_start_on(port, &args);
        }
        assert!(
            restarted.is_some(),
            "redis-server did not restart on {port}"
        );
    });
    assert_eq!(
        tally.lost.load(Ordering::Relaxed),
        0,
        "acknowledged writes lost across a restart with appendfsync always"
    );
    assert!(
        outage < Duration::from_secs(5),
        "served again only after {outage:?}"
    );
    verify_backend(&format!("127.0.0.1:{port}"), &states);
}

#[test]
fn sigterm_under_load_finishes_what_was_acknowledged() {
    let redis = RedisServer::start();
    let mut gate = Respgate::standalone(&redis.addr(), "");
    let pid = gate.pid();
    let (_tally, _outage, states) = soak(&gate, "SIGTERM under load", || {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    });
    let status = gate
        .wait_exit(Duration::from_secs(10))
        .expect("respgate did not exit within 10 s of SIGTERM");
    assert!(status.success(), "{status:?}");
    // Every write a client was told succeeded is on the backend.
    verify_backend(&redis.addr(), &states);
}

#[test]
fn sentinel_master_killed() {
    let mut setup = SentinelSetup::start();
    let gate = Respgate::sentinel(
        &setup.sentinel_addrs(),
        MASTER_NAME,
        "connect_timeout = \"200ms\"\ncommand_timeout = \"2s\"\n",
    );
    let mut held = None;
    let (_tally, outage, _) = soak(&gate, "sentinel failover", || {
        if let Some(master) = setup.master.take() {
            held = master.kill_holding_port();
        }
    });
    // Replication is asynchronous: writes acknowledged just before the kill may be gone
    // (counted and printed above, not a failure). Sentinels need down-after (1 s) plus an
    // election; respgate follows within moments of the switch.
    assert!(
        outage < Duration::from_secs(15),
        "served again only after {outage:?}"
    );
    drop(held);
}

#[test]
fn cluster_master_killed() {
    let mut cluster = RedisCluster::start();
    let gate = Respgate::cluster(
        &cluster.addrs(),
        "connect_timeout = \"200ms\"\ncommand_timeout = \"3s\"\n",
    );
    let victim = cluster
        .masters()
        .first()
        .cloned()
        .expect("a cluster master");
    let index = cluster
        .nodes
        .iter()
        .position(|n| n.addr() == victim)
        .expect("the victim's node");
    let (_tally, outage, _) = soak(&gate, "cluster failover", || cluster.stop_node(index));
    assert!(
        outage < Duration::from_secs(20),
        "served again only after {outage:?}"
    );
}

/// Slots each reshard moves: about a twelfth of the key space, so a fair share of the soak
/// clients' keys (checked below) changes master every time.
const RESHARD_SLOTS: usize = 1500;

/// Which master serves each slot, as `127.0.0.1:port`, according to the node at `addr`.
fn slot_owners(cluster: &RedisCluster, addr: &str) -> Vec<String> {
    let mut owners = vec![String::new(); 16384];
    let Value::Array(ranges) = cluster.conn(addr).cmd(&[b"CLUSTER", b"SLOTS"]) else {
        panic!("CLUSTER SLOTS on {addr}");
    };
    for range in ranges {
        let Value::Array(items) = range else { continue };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(master))) =
            (items.first(), items.get(1), items.get(2))
        else {
            panic!("CLUSTER SLOTS range on {addr}: {items:?}");
        };
        let Some(Value::Int(port)) = master.get(1) else {
            panic!("CLUSTER SLOTS master on {addr}: {master:?}");
        };
        for slot in *start..=*end {
            owners[slot as usize] = format!("127.0.0.1:{port}");
        }
    }
    owners
}

/// Waits until every node reports the same owner for every slot, and returns that map.
fn agreed_owners(cluster: &RedisCluster) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let views: Vec<Vec<String>> = cluster
            .addrs()
            .iter()
            .map(|a| slot_owners(cluster, a))
            .collect();
        if views.windows(2).all(|w| w[0] == w[1]) {
            return views.into_iter().next().unwrap_or_default();
        }
        assert!(
            Instant::now() < deadline,
            "the cluster's nodes disagree on slot owners"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `redis-cli --cluster reshard` of `slots` slots from one master to another, bounded in time.
fn reshard(via: &str, from_id: &str, to_id: &str, slots: usize) {
    let mut child = std::process::Command::new("redis-cli")
        .args(["--cluster", "reshard", via])
        .args(["--cluster-from", from_id, "--cluster-to", to_id])
        .args(["--cluster-slots", &slots.to_string(), "--cluster-yes"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("redis-cli --cluster reshard");
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for redis-cli") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("redis-cli --cluster reshard took over 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert!(
        status.success(),
        "redis-cli --cluster reshard: {status}\n{err}"
    );
}

/// respgate's count of MOVED or ASK (`kind`) redirections it followed, from /metrics.
fn redirects(gate: &Respgate, kind: &str) -> u64 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&gate.metrics_addr).expect("metrics listener");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .expect("metrics request");
    let mut body = String::new();
    s.read_to_string(&mut body).expect("metrics response");
    let series = format!("respgate_cluster_redirects_total{{kind=\"{kind}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn cluster_slots_resharded() {
    let cluster = RedisCluster::start();
    let gate = Respgate::cluster(
        &cluster.addrs(),
        "connect_timeout = \"200ms\"\ncommand_timeout = \"3s\"\n",
    );
    let masters = cluster.masters();
    let (a, b) = (masters[0].clone(), masters[1].clone());
    let ids = [cluster.node_id(&a), cluster.node_id(&b)];
    // The slot of every key the clients use (their SET/GET keys and counters).
    let mut c = cluster.conn(&a);
    let key_slots: Vec<usize> = (0..CLIENTS)
        .flat_map(|id| {
            (0..KEYS)
                .map(move |k| format!("soak:{id}:k{k}"))
                .chain([format!("soak:{id}:counter")])
        })
        .map(
            |name| match c.cmd(&[b"CLUSTER", b"KEYSLOT", name.as_bytes()]) {
                Value::Int(slot) => slot as usize,
                other => panic!("CLUSTER KEYSLOT {name}: {other:?}"),
            },
        )
        .collect();
    let secs = soak_secs();
    let mut moves = Vec::new();
    let (tally, _outage, states) = soak(&gate, "cluster reshard", || {
        // Slots go back and forth between two masters until half the run is over (at least
        // there and back), then the clients run on the final layout.
        let since = Instant::now();
        let mut dir = 0;
        while moves.len() < 2 || since.elapsed() < Duration::from_secs(secs) / 2 {
            let (from, to) = ([&a, &b][dir], [&a, &b][1 - dir]);
            let before = agreed_owners(&cluster);
            let t = Instant::now();
            reshard(&a, &ids[dir], &ids[1 - dir], RESHARD_SLOTS);
            let took = t.elapsed();
            let after = agreed_owners(&cluster);
            let moved: Vec<usize> = (0..16384)
                .filter(|&s| before[s] == *from && after[s] == *to)
                .collect();
            let keys = key_slots
                .iter()
                .filter(|s| moved.binary_search(s).is_ok())
                .count();
            assert_eq!(moved.len(), RESHARD_SLOTS, "slots moved {from} -> {to}");
            moves.push((moved.len(), keys, took));
            dir = 1 - dir;
        }
    });
    let (moved, ask) = (redirects(&gate, "moved"), redirects(&gate, "ask"));
    eprintln!("  respgate followed {moved} MOVED and {ask} ASK redirections");
    for (slots, keys, took) in &moves {
        eprintln!(
            "  reshard: {slots} slots holding {keys} of the clients' keys moved in {:.2} s",
            took.as_secs_f64()
        );
        // The moved slots hold keys the clients were using: the reshard is under their load.
        assert!(*keys >= 10, "only {keys} client keys in the moved slots");
    }
    assert!(moved > 0, "no client request met a moved slot");
    // respgate follows MOVED and ASK itself and nothing is lost in a migration: no client
    // ever sees an error, and every acknowledged write is where the cluster says it is.
    assert_eq!(
        tally.errors.load(Ordering::Relaxed),
        0,
        "client-visible errors during the reshard"
    );
    assert_eq!(
        tally.lost.load(Ordering::Relaxed),
        0,
        "acknowledged writes lost in the reshard"
    );
    assert_eq!(
        tally.reconnects.load(Ordering::Relaxed),
        CLIENTS as u64,
        "clients had to reconnect"
    );
    verify_backend(&a, &states);
}
