//! Cluster mode against a real 3-master/3-replica Redis Cluster: respgate looks like one
//! plain Redis. Keys are routed by slot, multi-key commands split and merged, keyless ones
//! fanned out, and the replies equal those of a single redis-server given the same commands.

mod common;

use std::time::Duration;

use common::redis_cluster::RedisCluster;
use common::redis_server::RedisServer;
use common::resp::{Conn, Value};
use common::respgate::Respgate;

fn ok() -> Value {
    Value::Simple("OK".into())
}

fn args(parts: &[String]) -> Vec<&[u8]> {
    parts.iter().map(|p| p.as_bytes()).collect()
}

#[test]
fn multi_key_commands_over_1000_keys_match_a_single_redis() {
    let cluster = RedisCluster::shared();
    let gate = Respgate::cluster(&cluster.addrs()[..1], "");
    let single = RedisServer::start();
    let mut g = Conn::connect(&gate.addr);
    let mut r = Conn::connect(&single.addr());
    // Unique to this test: the cluster is shared with the other tests of this file.
    let keys: Vec<String> = (0..1000).map(|i| format!("multi:{i}")).collect();
    let mut mset = vec!["MSET".to_string()];
    for (i, k) in keys.iter().enumerate() {
        mset.push(k.clone());
        mset.push(format!("v{i}"));
    }
    assert_eq!(g.cmd(&args(&mset)), ok());
    assert_eq!(r.cmd(&args(&mset)), ok());
    // MGET with a missing key and duplicates in between, in RESP2 and RESP3.
    let mut mget = vec!["MGET".to_string()];
    mget.extend(keys.iter().cloned());
    mget.insert(500, "multi:missing".into());
    mget.push("multi:3".into());
    assert_eq!(g.cmd(&args(&mget)), r.cmd(&args(&mget)));
    let mut g3 = Conn::connect(&gate.addr);
    let mut r3 = Conn::connect(&single.addr());
    g3.cmd_str("HELLO 3");
    r3.cmd_str("HELLO 3");
    assert_eq!(g3.cmd(&args(&mget)), r3.cmd(&args(&mget)));
    for cmd in ["EXISTS", "TOUCH", "UNLINK", "DEL"] {
        let mut v = vec![cmd.to_string()];
        v.extend(keys.iter().step_by(3).cloned());
        v.push("multi:nothing".into());
        assert_eq!(g.cmd(&args(&v)), r.cmd(&args(&v)), "{cmd}");
    }
    // Every key really lives on the node that serves its slot (those DEL did not remove).
    for k in keys.iter().skip(1).step_by(97).filter(|k| {
        k.trim_start_matches("multi:")
            .parse::<usize>()
            .is_ok_and(|i| i % 3 != 0)
    }) {
        let mut found = 0;
        for addr in cluster.masters() {
            let mut c = Conn::connect(&addr);
            c.cmd_str("READONLY");
            if matches!(c.cmd(&[b"EXISTS", k.as_bytes()]), Value::Int(1)) {
                found += 1;
            }
        }
        assert_eq!(found, 1, "{k} on {found} masters");
    }
}

#[test]
fn single_slot_commands_hash_tags_crossslot_and_transactions() {
    let cluster = RedisCluster::shared();
    let gate = Respgate::cluster(&cluster.addrs(), "");
    let mut g = Conn::connect(&gate.addr);
    assert_eq!(g.cmd_str("SET tags:{user1}:a 1"), ok());
    assert_eq!(g.cmd_str("SET tags:{user1}:b 2"), ok());
    // Hash-tagged keys share a slot: multi-key commands just work.
    assert_eq!(
        g.cmd_str("SUNIONSTORE tags:{user1}:u tags:{user1}:s1 tags:{user1}:s2"),
        Value::Int(0)
    );
    assert_eq!(g.cmd_str("RENAME tags:{user1}:a tags:{user1}:c"), ok());
    // Keys of different slots in a command that cannot be split: Redis's words.
    assert_eq!(
        g.cmd_str("RENAME tags:x tags:y"),
        Value::Error("CROSSSLOT Keys in request don't hash to the same slot".into())
    );
    assert_eq!(
        g.cmd_str("SELECT 1"),
        Value::Error("ERR SELECT is not allowed in cluster mode".into())
    );
    // WAIT would count replicas of one master for writes that went to others: refused.
    assert_eq!(
        g.cmd_str("WAIT 1 100"),
        Value::Error(
            "ERR respgate: WAIT is not supported in cluster mode (a client's writes go to several masters)"
                .into()
        )
    );
    // A transaction on one slot runs on its node.
    g.cmd_str("MULTI");
    g.cmd_str("INCR tags:{user1}:n");
    g.cmd_str("INCR tags:{user1}:n");
    assert_eq!(
        g.cmd_str("EXEC"),
        Value::Array(vec![Value::Int(1), Value::Int(2)])
    );
    // WATCH on the key's node.
    let mut other = Conn::connect(&gate.addr);
    assert_eq!(g.cmd_str("WATCH tags:{user1}:n"), ok());
    other.cmd_str("INCR tags:{user1}:n");
    g.cmd_str("MULTI");
    g.cmd_str("INCR tags:{user1}:n");
    assert_eq!(g.cmd_str("EXEC"), Value::NullArray);
    // A script whose keys share a slot.
    assert_eq!(
        g.cmd_str("EVAL return(redis.call('GET',KEYS[1])) 1 tags:{user1}:b"),
        Value::Bulk(b"2".to_vec())
    );
    // Blocking on one node does not hold others.
    let mut waiter = Conn::connect(&gate.addr);
    waiter.send(&[b"BLPOP", b"tags:queue", b"5"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(g.cmd_str("RPUSH tags:queue x"), Value::Int(1));
    assert_eq!(
        waiter.read(),
        Value::Array(vec![
            Value::Bulk(b"tags:queue".to_vec()),
            Value::Bulk(b"x".to_vec())
        ])
    );
}

#[test]
fn keyless_commands_fan_out_across_masters() {
    let cluster = RedisCluster::shared();
    let gate = Respgate::cluster(&cluster.addrs()[..2], "");
    let mut g = Conn::connect(&gate.addr);
    let keys: Vec<String> = (0..200).map(|i| format!("fan:{i}")).collect();
    for k in &keys {
        assert_eq!(g.cmd(&[b"SET", k.as_bytes(), b"1"]), ok());
    }
    let mut expected: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    expected.sort();
    // KEYS over every master.
    match g.cmd_str("KEYS fan:*") {
        Value::Array(items) => {
            let mut got: Vec<Vec<u8>> = items
                .iter()
                .filter_map(|v| v.as_bytes().map(|b| b.to_vec()))
                .collect();
            got.sort();
            assert_eq!(got, expected);
        }
        other => panic!("KEYS: {other:?}"),
    }
    // SCAN walks every master with one cursor.
    let mut cursor = b"0".to_vec();
    let mut seen = Vec::new();
    for _ in 0..10_000 {
        match g.cmd(&[b"SCAN", &cursor, b"MATCH", b"fan:*", b"COUNT", b"50"]) {
            Value::Array(parts) => {
                cursor = parts[0].as_bytes().unwrap_or(b"0").to_vec();
                if let Value::Array(items) = &parts[1] {
                    seen.extend(
                        items
                            .iter()
                            .filter_map(|v| v.as_bytes().map(|b| b.to_vec())),
                    );
                }
            }
            other => panic!("SCAN: {other:?}"),
        }
        if cursor == b"0" {
            break;
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen, expected);
    // DBSIZE sums the masters (other tests add keys too: at least ours).
    match g.cmd_str("DBSIZE") {
        Value::Int(n) => assert!(n >= 200, "DBSIZE {n}"),
        other => panic!("DBSIZE: {other:?}"),
    }
    // INFO backend: every master's INFO under its own header; INFO respgate: respgate's own.
    let info = g.cmd_str("INFO backend keyspace");
    let text = String::from_utf8_lossy(info.as_bytes().unwrap_or_default()).into_owned();
    assert_eq!(text.matches("# node ").count(), 3, "{text}");
    assert_eq!(text.matches("# Keyspace").count(), 3, "{text}");
    let own = g.cmd_str("INFO respgate server");
    let port = gate.addr.rsplit(':').next().unwrap_or_default();
    assert!(
        String::from_utf8_lossy(own.as_bytes().unwrap_or_default())
            .contains(&format!("tcp_port:{port}\r\n")),
        "{own:?}"
    );
    // SCRIPT LOAD reaches every master, so EVALSHA works whatever the key's node.
    let sha = g.cmd_str("SCRIPT LOAD return(1)");
    let sha = sha.as_bytes().expect("sha").to_vec();
    for k in keys.iter().take(20) {
        assert_eq!(
            g.cmd(&[b"EVALSHA", &sha, b"1", k.as_bytes()]),
            Value::Int(1)
        );
    }
    // Pipelined GETs over all slots come back in order.
    let mut batch = Vec::new();
    for k in &keys {
        batch.extend(Conn::encode(&[b"GET", k.as_bytes()]));
    }
    g.send_raw(&batch).expect("pipeline");
    for _ in &keys {
        assert_eq!(g.read(), Value::Bulk(b"1".to_vec()));
    }
}

/// What a load client saw: operations that succeeded, errors, wrong values.
type Tally = (u64, Vec<String>, Vec<String>);

/// 20 clients write and read their own keys (every value carries its writer and round)
/// until told to stop; returns (operations, errors, wrong values).
fn load(
    addr: &str,
    prefix: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<std::thread::JoinHandle<Tally>> {
    use std::sync::atomic::Ordering;
    (0..20)
        .map(|i| {
            let addr = addr.to_string();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = Conn::connect(&addr);
                let (mut ops, mut errors, mut wrong) = (0u64, Vec::new(), Vec::new());
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let key = format!("{prefix}:{i}:{}", n % 64);
                    let value = format!("{i}-{n}");
                    match c.cmd(&[b"SET", key.as_bytes(), value.as_bytes()]) {
                        Value::Simple(_) => {}
                        other => {
                            errors.push(format!("SET {key}: {other:?}"));
                            continue;
                        }
                    }
                    match c.cmd(&[b"GET", key.as_bytes()]) {
                        Value::Bulk(b) if b == value.as_bytes() => ops += 2,
                        Value::Error(e) => errors.push(format!("GET {key}: {e}")),
                        other => wrong.push(format!("GET {key}: {other:?}, wanted {value}")),
                    }
                }
                (ops, errors, wrong)
            })
        })
        .collect()
}

fn finish(clients: Vec<std::thread::JoinHandle<Tally>>) -> Tally {
    let (mut ops, mut errors, mut wrong) = (0, Vec::new(), Vec::new());
    for c in clients {
        let (o, e, w) = c.join().expect("client thread");
        ops += o;
        errors.extend(e);
        wrong.extend(w);
    }
    (ops, errors, wrong)
}

#[test]
fn a_slot_migration_under_load_is_invisible_to_clients() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    // A cluster of its own: its slots move.
    let cluster = RedisCluster::start();
    let gate = Respgate::cluster(&cluster.addrs(), "");
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&gate.addr, "mig", stop.clone());
    std::thread::sleep(Duration::from_millis(300));
    let masters = cluster.masters();
    let (from, to) = (cluster.node_id(&masters[0]), cluster.node_id(&masters[1]));
    let status = std::process::Command::new("redis-cli")
        .args(["--cluster", "reshard", &masters[0]])
        .args(["--cluster-from", &from, "--cluster-to", &to])
        .args(["--cluster-slots", "300", "--cluster-yes"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("redis-cli --cluster reshard");
    assert!(status.success(), "reshard failed");
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let (ops, errors, wrong) = finish(clients);
    eprintln!(
        "migration under load: {ops} operations, {} errors, {} wrong",
        errors.len(),
        wrong.len()
    );
    assert!(ops > 1000, "only {ops} operations");
    assert!(
        errors.is_empty(),
        "client-visible errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    assert!(
        wrong.is_empty(),
        "wrong values: {:?}",
        &wrong[..wrong.len().min(5)]
    );
}

#[test]
fn killing_a_master_under_load_spares_other_slots_and_recovers_after_promotion() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    let mut cluster = RedisCluster::start();
    // While the cluster has no master for the victim's slots it refuses every slot
    // (CLUSTERDOWN, cluster-require-full-coverage); respgate retries that until the command
    // timeout, which must outlast the failover (node timeout 2 s + election).
    let gate = Respgate::cluster(&cluster.addrs(), "command_timeout = \"8s\"");
    let victim = cluster.masters()[0].clone();
    let replica = cluster
        .replicas()
        .into_iter()
        .find(|r| cluster.master_of(r).as_deref() == Some(victim.as_str()))
        .expect("the victim has a replica");
    // One key per client; note which ones the victim serves.
    let mut setup = Conn::connect(&gate.addr);
    let mut on_victim = Vec::new();
    let mut direct = Conn::connect(&victim);
    for i in 0..20 {
        let key = format!("fo:{i}");
        assert_eq!(setup.cmd(&[b"SET", key.as_bytes(), b"0"]), ok());
        on_victim.push(matches!(
            direct.cmd(&[b"EXISTS", key.as_bytes()]),
            Value::Int(1)
        ));
    }
    assert!(on_victim.iter().any(|v| *v) && on_victim.iter().any(|v| !*v));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let clients: Vec<_> = (0..20)
        .map(|i| {
            let addr = gate.addr.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut c = Conn::connect(&addr);
                let key = format!("fo:{i}");
                // (time of each error, time of the first success after the last error)
                let mut errors: Vec<Duration> = Vec::new();
                let mut recovered: Option<Duration> = None;
                let mut wrong = Vec::new();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let value = format!("{i}-{n}");
                    let set = c.cmd(&[b"SET", key.as_bytes(), value.as_bytes()]);
                    let get = if set == Value::Simple("OK".into()) {
                        c.cmd(&[b"GET", key.as_bytes()])
                    } else {
                        set
                    };
                    match get {
                        Value::Bulk(b) if b == value.as_bytes() => {
                            if !errors.is_empty() && recovered.is_none() {
                                recovered = Some(started.elapsed());
                            }
                        }
                        Value::Error(_) => {
                            errors.push(started.elapsed());
                            recovered = None;
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        other => wrong.push(format!("{other:?} for {value}")),
                    }
                }
                (errors, recovered, wrong)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let index = cluster
        .addrs()
        .iter()
        .position(|a| *a == victim)
        .expect("victim index");
    cluster.stop_node(index);
    // Promotion: the replica says it is a master.
    let deadline = Instant::now() + Duration::from_secs(20);
    let promoted = loop {
        if let Some(mut c) = Conn::try_connect(&replica) {
            c.send(&[b"ROLE"]);
            if let Ok(Value::Array(v)) = c.try_read()
                && v.first().and_then(|r| r.as_bytes()) == Some(b"master".as_slice())
            {
                break started.elapsed();
            }
        }
        assert!(Instant::now() < deadline, "the replica was never promoted");
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    for (i, c) in clients.into_iter().enumerate() {
        let (errors, recovered, wrong) = c.join().expect("client");
        assert!(wrong.is_empty(), "client {i}: wrong values {wrong:?}");
        if on_victim[i] {
            if !errors.is_empty() {
                let back = recovered.expect("served again after the promotion");
                assert!(
                    back < promoted + Duration::from_millis(500),
                    "client {i} served again {:?} after the promotion",
                    back.saturating_sub(promoted)
                );
            }
        } else {
            assert!(
                errors.is_empty(),
                "client {i} on a healthy master saw {} errors",
                errors.len()
            );
        }
    }
}

fn get_calls(addr: &str) -> i64 {
    let info = Conn::connect(addr).cmd_str("INFO commandstats");
    let text = String::from_utf8_lossy(info.as_bytes().unwrap_or_default()).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn read_from_replica_sends_reads_to_replicas_and_writes_to_masters() {
    let cluster = RedisCluster::shared();
    let gate = Respgate::cluster(&cluster.addrs(), "read_from = \"replica\"");
    let mut g = Conn::connect(&gate.addr);
    let replicas = cluster.replicas();
    let before: i64 = replicas.iter().map(|r| get_calls(r)).sum();
    let keys: Vec<String> = (0..100).map(|i| format!("rr:{i}")).collect();
    for k in &keys {
        assert_eq!(g.cmd(&[b"SET", k.as_bytes(), b"v"]), ok());
    }
    // Replication is asynchronous: each read eventually sees the write.
    for k in &keys {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match g.cmd(&[b"GET", k.as_bytes()]) {
                Value::Bulk(b) if b == b"v" => break,
                Value::NullBulk => {}
                other => panic!("GET {k}: {other:?}"),
            }
            assert!(std::time::Instant::now() < deadline, "{k} never replicated");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let after: i64 = replicas.iter().map(|r| get_calls(r)).sum();
    assert!(
        after - before >= 100,
        "replicas served {} GETs",
        after - before
    );
}

/// The master that serves `key`'s slot (the one that does not answer MOVED).
fn owner_of(cluster: &RedisCluster, key: &str) -> String {
    cluster
        .masters()
        .into_iter()
        .find(|m| {
            !Conn::connect(m)
                .cmd(&[b"EXISTS", key.as_bytes()])
                .is_error()
        })
        .expect("some master serves every slot")
}

/// Moves `key`'s slot, with its keys, from its master to another, as redis-cli's reshard
/// does (IMPORTING, MIGRATING, MIGRATE each key, NODE everywhere); returns the new owner.
fn migrate_slot_of(cluster: &RedisCluster, key: &str) -> String {
    let from = owner_of(cluster, key);
    let to = cluster
        .masters()
        .into_iter()
        .find(|m| *m != from)
        .expect("three masters");
    let slot = match Conn::connect(&from).cmd(&[b"CLUSTER", b"KEYSLOT", key.as_bytes()]) {
        Value::Int(n) => n.to_string(),
        other => panic!("CLUSTER KEYSLOT: {other:?}"),
    };
    let (from_id, to_id) = (cluster.node_id(&from), cluster.node_id(&to));
    let run = |addr: &str, args: &[&str]| {
        let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        let reply = Conn::connect(addr).cmd(&argv);
        assert!(!reply.is_error(), "{args:?} on {addr}: {reply:?}");
        reply
    };
    run(&to, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &from_id]);
    run(&from, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &to_id]);
    let (host, port) = to.rsplit_once(':').expect("host:port");
    loop {
        let Value::Array(keys) = run(&from, &["CLUSTER", "GETKEYSINSLOT", &slot, "100"]) else {
            panic!("GETKEYSINSLOT")
        };
        if keys.is_empty() {
            break;
        }
        for k in keys {
            let k = String::from_utf8_lossy(k.as_bytes().unwrap_or_default()).into_owned();
            run(&from, &["MIGRATE", host, port, &k, "0", "5000"]);
        }
    }
    for node in [to.clone(), from.clone()].into_iter().chain(
        cluster
            .masters()
            .into_iter()
            .filter(|m| *m != from && *m != to),
    ) {
        run(&node, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
    }
    to
}

/// Publishes through respgate until the shard channel has a subscriber (the bridge
/// subscribes asynchronously); returns how long that took.
fn spublish_until_heard(g: &mut Conn, channel: &str, message: &str) -> Duration {
    let start = std::time::Instant::now();
    loop {
        match g.cmd(&[b"SPUBLISH", channel.as_bytes(), message.as_bytes()]) {
            Value::Int(1) => return start.elapsed(),
            Value::Int(0) => {}
            other => panic!("SPUBLISH {channel}: {other:?}"),
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no subscriber on the owner of {channel} after 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn smessage(channel: &str, message: &str) -> Value {
    Value::Array(vec![
        Value::Bulk(b"smessage".to_vec()),
        Value::Bulk(channel.as_bytes().to_vec()),
        Value::Bulk(message.as_bytes().to_vec()),
    ])
}

#[test]
fn shard_channels_are_subscribed_on_their_owner_and_follow_a_slot_migration() {
    let cluster = RedisCluster::shared();
    let gate = Respgate::cluster(&cluster.addrs()[..1], "");
    // One channel on each master; respgate is a plain Redis to its clients, so one
    // SSUBSCRIBE may name channels of different slots.
    let mut channels: Vec<String> = Vec::new();
    for i in 0.. {
        let ch = format!("shardch:{i}");
        let owner = owner_of(&cluster, &ch);
        if !channels.iter().any(|c| owner_of(&cluster, c) == owner) {
            channels.push(ch);
        }
        if channels.len() == 3 {
            break;
        }
    }
    let mut sub = Conn::connect(&gate.addr);
    let mut argv: Vec<&[u8]> = vec![b"SSUBSCRIBE"];
    argv.extend(channels.iter().map(|c| c.as_bytes()));
    sub.send(&argv);
    for (i, ch) in channels.iter().enumerate() {
        assert_eq!(
            sub.read(),
            Value::Array(vec![
                Value::Bulk(b"ssubscribe".to_vec()),
                Value::Bulk(ch.as_bytes().to_vec()),
                Value::Int(i as i64 + 1),
            ])
        );
    }
    let mut g = Conn::connect(&gate.addr);
    for ch in &channels {
        spublish_until_heard(&mut g, ch, "via-respgate");
        assert_eq!(sub.read(), smessage(ch, "via-respgate"));
        // Published on the owner directly (not through respgate): heard as well.
        let owner = owner_of(&cluster, ch);
        assert_eq!(
            Conn::connect(&owner).cmd(&[b"SPUBLISH", ch.as_bytes(), b"direct"]),
            Value::Int(1)
        );
        assert_eq!(sub.read(), smessage(ch, "direct"));
    }

    // The slot of the first channel moves to another master: the subscription follows.
    let moved = &channels[0];
    let new_owner = migrate_slot_of(&cluster, moved);
    let took = spublish_until_heard(&mut g, moved, "after-move");
    eprintln!("shard subscription followed the slot to {new_owner} in {took:?}");
    assert_eq!(sub.read(), smessage(moved, "after-move"));
    assert!(
        took < Duration::from_secs(3),
        "the subscription took {took:?} to follow its slot"
    );
    assert_eq!(
        Conn::connect(&new_owner).cmd(&[b"SPUBLISH", moved.as_bytes(), b"direct"]),
        Value::Int(1)
    );
    assert_eq!(sub.read(), smessage(moved, "direct"));

    // The last subscriber leaves: the owner loses respgate's subscription too.
    let gone = &channels[1];
    sub.send(&[b"SUNSUBSCRIBE", gone.as_bytes()]);
    assert_eq!(
        sub.read(),
        Value::Array(vec![
            Value::Bulk(b"sunsubscribe".to_vec()),
            Value::Bulk(gone.as_bytes().to_vec()),
            Value::Int(2),
        ])
    );
    let owner = owner_of(&cluster, gone);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while Conn::connect(&owner).cmd(&[b"SPUBLISH", gone.as_bytes(), b"x"]) != Value::Int(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "respgate kept its subscription to {gone}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The others are still heard.
    spublish_until_heard(&mut g, &channels[2], "still");
    assert_eq!(sub.read(), smessage(&channels[2], "still"));
}

#[test]
fn a_pipeline_mixing_redirected_and_answered_commands_keeps_every_reply_in_place() {
    let cluster = RedisCluster::shared();
    let gate = Respgate::cluster(&cluster.addrs(), "");
    let mut g = Conn::connect(&gate.addr);
    // Two keys of different slots on the same master.
    let a = "redir:pipe:a";
    let owner = owner_of(&cluster, a);
    let mut node = Conn::connect(&owner);
    let mut slot_of = |k: &str| node.cmd(&[b"CLUSTER", b"KEYSLOT", k.as_bytes()]);
    let a_slot = slot_of(a);
    let b = (0..)
        .map(|i| format!("redir:pipe:b{i}"))
        .find(|k| owner_of(&cluster, k) == owner && slot_of(k) != a_slot)
        .expect("a key of another slot on the same master");
    assert_eq!(g.cmd(&[b"SET", a.as_bytes(), b"a1"]), ok());
    assert_eq!(g.cmd(&[b"SET", b.as_bytes(), b"b1"]), ok());
    // respgate still sends `a` to its old master, which now answers MOVED for it but
    // serves `b`: one chunk of replies mixes redirections with plain answers.
    let moved_to = migrate_slot_of(&cluster, a);
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let pipeline: Vec<Vec<&[u8]>> = vec![
        vec![b"SET", a, b"a2"],
        vec![b"GET", b],
        vec![b"GET", a],
        vec![b"SET", b, b"b2"],
        vec![b"INCR", a],
        vec![b"GET", b],
        vec![b"APPEND", a, b"x"],
        vec![b"GET", a],
    ];
    let mut bytes = Vec::new();
    for command in &pipeline {
        bytes.extend(Conn::encode(command));
    }
    g.send_raw(&bytes).unwrap();
    let replies: Vec<Value> = pipeline.iter().map(|_| g.read()).collect();
    let bulk = |s: &str| Value::Bulk(s.as_bytes().to_vec());
    assert_eq!(
        replies,
        vec![
            ok(),
            bulk("b1"),
            bulk("a2"),
            ok(),
            Value::Error("ERR value is not an integer or out of range".into()),
            bulk("b2"),
            Value::Int(3),
            bulk("a2x"),
        ]
    );
    assert_eq!(Conn::connect(&moved_to).cmd(&[b"GET", a]), bulk("a2x"));
    assert_eq!(Conn::connect(&owner).cmd(&[b"GET", b]), bulk("b2"));
}
