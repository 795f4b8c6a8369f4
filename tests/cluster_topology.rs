//! The cluster building blocks against a real 3-master/3-replica Redis Cluster: topology
//! discovery, slots and CROSSSLOT as Redis computes them, MOVED/ASK after a slot migration,
//! and multi-key split/merge (plus KEYS and SCAN fan-out) giving byte for byte what a single
//! redis-server gives.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use respgate::net::Stream as TcpStream;

use common::redis_cluster::RedisCluster;
use common::redis_server::RedisServer;
use common::resp::{Conn, Value};
use respgate::backend::remote::Target;
use respgate::backend::remote::cluster::raw;
use respgate::backend::remote::cluster::slots::{CrossSlot, command_slot, key_slot};
use respgate::backend::remote::cluster::split::{
    FanOut, Merge, MultiKey, ScanPlan, fan_out, merge, merge_fan_out, plan_scan, scan_reply, split,
};
use respgate::backend::remote::cluster::topology::{
    ConnectParams, Redirect, Topology, Transient, discover, parse_redirect, transient_error,
};
use respgate::backend::remote::conn::{Init, connect, round_trip};
use respgate::command::table::lookup;
use respgate::protocol::reply_scan::Frame;

fn params() -> ConnectParams {
    ConnectParams {
        username: None,
        password: None,
        connect_timeout: Duration::from_secs(2),
        tls: None,
    }
}

async fn open(addr: &str, resp3: bool) -> TcpStream {
    let target = Target::new(addr.to_string(), None, None, Duration::from_secs(2), None);
    match connect(
        &target,
        Init {
            resp3,
            db: 0,
            user: None,
        },
    )
    .await
    {
        Ok(s) => s,
        Err(e) => panic!("connect {addr}: {e}"),
    }
}

async fn call(stream: &mut TcpStream, argv: &[Bytes]) -> Bytes {
    let args: Vec<&[u8]> = argv.iter().map(|a| &a[..]).collect();
    match round_trip(stream, &args).await {
        Ok(r) => r,
        Err(e) => panic!("{:?}: {e}", String::from_utf8_lossy(args[0])),
    }
}

fn words(line: &str) -> Vec<Bytes> {
    line.split(' ')
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 300 {
        format!("{}... ({} bytes)", &s[..300], s.len())
    } else {
        s.into_owned()
    }
}

async fn discovered(cluster: &RedisCluster) -> Topology {
    match discover(&cluster.addrs(), &params()).await {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

/// The keys the split test uses, per protocol; the migration test keeps clear of their slots.
fn split_keys(prefix: &str) -> Vec<Bytes> {
    (0..1000)
        .map(|i| Bytes::from(format!("{prefix}:key:{i}")))
        .collect()
}

#[tokio::test]
async fn discover_finds_three_masters_with_a_replica_each() {
    let cluster = RedisCluster::shared();
    // Seeds are asked in turn: a dead one first, then a replica (which knows the map too).
    let replicas = cluster.replicas();
    assert_eq!(replicas.len(), 3, "{replicas:?}");
    let seeds = vec!["127.0.0.1:1".to_string(), replicas[0].clone()];
    let topo = match discover(&seeds, &params()).await {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert!(topo.is_complete(), "{topo:?}");
    let shards = topo.shards();
    assert_eq!(shards.len(), 3, "{topo:?}");
    let masters: BTreeSet<String> = shards
        .iter()
        .map(|s| topo.address(s.master).to_string())
        .collect();
    assert_eq!(masters, cluster.masters().into_iter().collect());
    let mut covered = 0;
    for shard in &shards {
        assert_eq!(shard.replicas.len(), 1, "{topo:?}");
        let replica = topo.address(shard.replicas[0]);
        assert_eq!(
            cluster.master_of(replica).as_deref(),
            Some(topo.address(shard.master)),
            "{replica} replicates another master"
        );
        covered += topo
            .slot_ranges(shard.master)
            .iter()
            .map(|(a, b)| usize::from(b - a) + 1)
            .sum::<usize>();
    }
    assert_eq!(covered, 16384);

    // A RESP3 CLUSTER SLOTS (metadata maps) parses to the same map.
    let mut s = open(&replicas[0], true).await;
    let reply = call(&mut s, &words("CLUSTER SLOTS")).await;
    let resp3 = Topology::from_cluster_slots(&reply, &replicas[0]);
    assert_eq!(resp3.map(|t| t.shards().len()), Ok(3), "{}", show(&reply));
}

#[tokio::test]
async fn slots_crossslot_and_shard_channels_agree_with_redis() {
    let cluster = RedisCluster::shared();
    let addr = &cluster.addrs()[0];
    let mut c = Conn::connect(addr);
    for key in [
        "foo",
        "{user1000}.following",
        "a{}b",
        "{}",
        "x{y}{z}",
        "{{a}}",
        "é{ü}",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain((0..200).map(|i| format!("k{i}:{{t{}}}", i % 7)))
    {
        let want = c.cmd(&[b"CLUSTER", b"KEYSLOT", key.as_bytes()]);
        assert_eq!(
            want,
            Value::Int(i64::from(key_slot(key.as_bytes()))),
            "{key:?}"
        );
    }

    let topo = discovered(&cluster).await;
    // Keys of two slots: the owner of the first refuses with exactly our CROSSSLOT text.
    let argv = words("MGET foo bar");
    let spec = lookup(b"MGET").map(|s| command_slot(s, &argv));
    assert_eq!(spec, Some(Err(CrossSlot)));
    let owner = topo.master_for(key_slot(b"foo")).map(|n| topo.address(n));
    let mut s = open(owner.unwrap_or_default(), false).await;
    let reply = call(&mut s, &argv).await;
    assert_eq!(reply, Bytes::from(format!("-{CrossSlot}\r\n")));

    // Shard channels of two slots are refused like keys.
    let argv = words("SSUBSCRIBE foo bar");
    assert_eq!(
        lookup(b"SSUBSCRIBE").map(|s| command_slot(s, &argv)),
        Some(Err(CrossSlot))
    );
    let reply = call(&mut s, &argv).await;
    assert_eq!(reply, Bytes::from(format!("-{CrossSlot}\r\n")));

    // SPUBLISH is routed by its channel: a node not owning the slot redirects to the owner.
    let channel = b"news";
    let slot = key_slot(channel);
    let argv = vec![
        Bytes::from_static(b"SPUBLISH"),
        Bytes::from_static(channel),
        Bytes::from_static(b"hi"),
    ];
    assert_eq!(
        lookup(b"SPUBLISH").map(|s| command_slot(s, &argv)),
        Some(Ok(Some(slot)))
    );
    let (owner, other) = {
        let owner = topo.master_for(slot).unwrap_or(usize::MAX);
        let other = topo.masters().iter().copied().find(|&m| m != owner);
        (owner, other.unwrap_or(usize::MAX))
    };
    let mut s = open(topo.address(other), false).await;
    let reply = call(&mut s, &argv).await;
    assert_eq!(
        parse_redirect(&reply, topo.address(other)),
        Some(Redirect::Moved {
            slot,
            addr: topo.address(owner).to_string()
        }),
        "{}",
        show(&reply)
    );
}

/// Sends every part of `argv`'s split to its slot's master and merges the replies.
async fn split_and_merge(
    topo: &Topology,
    conns: &mut HashMap<String, TcpStream>,
    resp3: bool,
    kind: MultiKey,
    argv: &[Bytes],
) -> Bytes {
    let Some(s) = split(kind, argv) else {
        panic!("not split")
    };
    assert!(s.parts.len() > 1, "the keys should span slots");
    let mut replies = Vec::new();
    for part in &s.parts {
        let Some(node) = topo.master_for(part.slot) else {
            panic!("slot {} has no master", part.slot)
        };
        let addr = topo.address(node).to_string();
        if !conns.contains_key(&addr) {
            let stream = open(&addr, resp3).await;
            conns.insert(addr.clone(), stream);
        }
        let Some(stream) = conns.get_mut(&addr) else {
            unreachable!()
        };
        let reply = call(stream, &part.argv).await;
        assert!(
            parse_redirect(&reply, &addr).is_none(),
            "redirected: {}",
            show(&reply)
        );
        replies.push(reply);
    }
    match merge(&s, &replies) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn command(name: &str, args: impl IntoIterator<Item = Bytes>) -> Vec<Bytes> {
    std::iter::once(Bytes::copy_from_slice(name.as_bytes()))
        .chain(args)
        .collect()
}

async fn split_merge_case(cluster: &RedisCluster, single: &RedisServer, resp3: bool) {
    let prefix = if resp3 { "r3" } else { "r2" };
    let keys = split_keys(prefix);
    let topo = discovered(cluster).await;
    let mut conns = HashMap::new();
    let mut direct = open(&single.addr(), resp3).await;

    let mut check = async |kind: MultiKey, argv: Vec<Bytes>| {
        let want = call(&mut direct, &argv).await;
        let got = split_and_merge(&topo, &mut conns, resp3, kind, &argv).await;
        assert_eq!(
            show(&got),
            show(&want),
            "{} (resp3: {resp3})",
            String::from_utf8_lossy(&argv[0])
        );
    };

    // Every third key stays unset, so MGET has nulls between values.
    let mset = command(
        "MSET",
        keys.iter()
            .enumerate()
            .filter(|(i, _)| i % 3 != 0)
            .flat_map(|(i, k)| [k.clone(), Bytes::from(format!("value-{i}"))]),
    );
    check(MultiKey::Mset, mset).await;
    check(MultiKey::Mget, command("MGET", keys.iter().cloned())).await;
    // Duplicates and unknown keys count as on one Redis.
    let exists = command(
        "EXISTS",
        keys.iter()
            .cloned()
            .chain(keys[..10].iter().cloned())
            .chain([Bytes::from_static(b"nosuchkey")]),
    );
    check(MultiKey::Exists, exists).await;
    check(
        MultiKey::Touch,
        command("TOUCH", keys[..300].iter().cloned()),
    )
    .await;

    // KEYS on every master, and a SCAN walking every shard, find the same keys.
    let pattern = Bytes::from(format!("{prefix}:key:*"));
    let want_keys =
        match raw::elements(&call(&mut direct, &command("KEYS", [pattern.clone()])).await) {
            Some((_, items)) => items.iter().map(|i| i.to_vec()).collect::<BTreeSet<_>>(),
            None => panic!("KEYS"),
        };
    assert_eq!(want_keys.len(), 666);
    let mut replies = Vec::new();
    for &m in topo.masters() {
        let mut s = open(topo.address(m), resp3).await;
        replies.push(call(&mut s, &command("KEYS", [pattern.clone()])).await);
    }
    let merged = merge_fan_out(Merge::ConcatArrays, &replies).unwrap_or_default();
    let got_keys = match raw::elements(&merged) {
        Some((_, items)) => items.iter().map(|i| i.to_vec()).collect::<BTreeSet<_>>(),
        None => panic!("merged KEYS: {}", show(&merged)),
    };
    assert_eq!(got_keys, want_keys);

    let shards = topo.masters();
    let mut scanned = BTreeSet::new();
    let mut cursor = Bytes::from_static(b"0");
    let mut rounds = 0;
    loop {
        rounds += 1;
        assert!(rounds < 10_000, "SCAN does not end");
        let argv = command(
            "SCAN",
            [
                cursor.clone(),
                Bytes::from_static(b"MATCH"),
                pattern.clone(),
                Bytes::from_static(b"COUNT"),
                Bytes::from_static(b"50"),
            ],
        );
        let (shard, node_argv) = match plan_scan(&argv, shards.len()) {
            Ok(ScanPlan::Send { shard, argv }) => (shard, argv),
            other => panic!("{other:?}"),
        };
        let mut s = open(topo.address(shards[shard]), resp3).await;
        let reply = call(&mut s, &node_argv).await;
        let client_reply = match scan_reply(&reply, shard, shards.len()) {
            Ok(r) => r,
            Err(e) => panic!("{e}: {}", show(&reply)),
        };
        let Some((_, items)) = raw::elements(&client_reply) else {
            panic!("{}", show(&client_reply))
        };
        let (Some(Frame::Bulk(next)), Some((_, found))) = (
            raw::decode(&Bytes::copy_from_slice(items[0])),
            raw::elements(items[1]),
        ) else {
            panic!("{}", show(&client_reply))
        };
        scanned.extend(found.iter().map(|k| k.to_vec()));
        if &next[..] == b"0" {
            break;
        }
        cursor = next;
    }
    assert_eq!(scanned, want_keys);

    let mut check = async |kind: MultiKey, argv: Vec<Bytes>| {
        let want = call(&mut direct, &argv).await;
        let got = split_and_merge(&topo, &mut conns, resp3, kind, &argv).await;
        assert_eq!(show(&got), show(&want));
    };
    let del = command(
        "DEL",
        keys[..500].iter().cloned().chain(keys[..5].iter().cloned()),
    );
    check(MultiKey::Del, del).await;
    check(
        MultiKey::Unlink,
        command("UNLINK", keys[500..].iter().cloned()),
    )
    .await;
    check(MultiKey::Mget, command("MGET", keys.iter().cloned())).await;
}

#[tokio::test]
async fn split_and_merge_over_1000_keys_equals_a_single_redis() {
    let cluster = RedisCluster::shared();
    let single = RedisServer::start();
    split_merge_case(&cluster, &single, false).await;
    split_merge_case(&cluster, &single, true).await;
}

/// Runs `args` on `addr`, expecting +OK.
fn ok(addr: &str, args: &[&str]) {
    let argv: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
    let reply = Conn::connect(addr).cmd(&argv);
    assert_eq!(reply, Value::Simple("OK".into()), "{args:?} on {addr}");
}

/// Moves an empty slot from one master to another the way redis-cli's reshard does
/// (IMPORTING on the target, MIGRATING on the source, then NODE everywhere); `between` runs
/// while the slot is half-migrated.
fn move_slot(cluster: &RedisCluster, slot: u16, from: &str, to: &str, between: impl FnOnce()) {
    let (from_id, to_id) = (cluster.node_id(from), cluster.node_id(to));
    let slot_text = slot.to_string();
    ok(
        to,
        &["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &from_id],
    );
    ok(
        from,
        &["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &to_id],
    );
    between();
    move_slot_finish(cluster, slot, to, from);
}

/// The last step of a slot move: the slot is `to`'s, told to `to` first (it bumps its
/// config epoch), then `from`, then every other master.
fn move_slot_finish(cluster: &RedisCluster, slot: u16, to: &str, from: &str) {
    let to_id = cluster.node_id(to);
    let slot = slot.to_string();
    ok(to, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
    ok(from, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
    for m in cluster.masters() {
        if m != from && m != to {
            ok(&m, &["CLUSTER", "SETSLOT", &slot, "NODE", &to_id]);
        }
    }
}

/// Waits until a fresh discovery shows `slot` served by `addr`.
async fn wait_owner(cluster: &RedisCluster, slot: u16, addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let topo = discovered(cluster).await;
        if topo.master_for(slot).map(|n| topo.address(n)) == Some(addr) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "slot {slot} never moved to {addr}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn ask_and_moved_during_and_after_a_migration_are_parsed_and_applied() {
    let cluster = RedisCluster::shared();
    let mut topo = discovered(&cluster).await;
    let before = topo.clone();
    // A slot no other test's keys use, so the shared cluster's other tests never see it move.
    let used: BTreeSet<u16> = ["r2", "r3"]
        .iter()
        .flat_map(|p| split_keys(p))
        .map(|k| key_slot(&k))
        .chain([key_slot(b"foo"), key_slot(b"bar"), key_slot(b"news")])
        .collect();
    let slot = (0..16384u16).find(|s| !used.contains(s)).unwrap_or(0);
    let key = (0..)
        .map(|i| format!("migrating:{i}"))
        .find(|k| key_slot(k.as_bytes()) == slot)
        .unwrap_or_default();
    let from = topo
        .master_for(slot)
        .map(|n| topo.address(n).to_string())
        .unwrap_or_default();
    let to = topo
        .masters()
        .iter()
        .map(|&n| topo.address(n).to_string())
        .find(|a| *a != from)
        .unwrap_or_default();
    let get = words(&format!("GET {key}"));

    // A second key in the slot, present on the source, for the TRYAGAIN case.
    let other_key = (0..)
        .map(|i| format!("migrating-b:{i}"))
        .find(|k| key_slot(k.as_bytes()) == slot)
        .unwrap_or_default();
    ok(&from, &["SET", &other_key, "v"]);
    let mut asked = None;
    let mut try_again = None;
    move_slot(&cluster, slot, &from, &to, || {
        // Keys split between the two ends of the migration (one still on the source, one
        // not): Redis 7.0's source answers TRYAGAIN.
        let mget: [&[u8]; 3] = [b"MGET", key.as_bytes(), other_key.as_bytes()];
        if let Value::Error(e) = Conn::connect(&from).cmd(&mget) {
            try_again = transient_error(e.as_bytes());
        }
        // Half-migrated: the source sends a missing key's client to the target with ASK,
        // and the target serves it after ASKING (instead of redirecting back).
        let reply = Conn::connect(&from).cmd(&[b"GET", key.as_bytes()]);
        if let Value::Error(e) = &reply {
            asked = parse_redirect(e.as_bytes(), &from);
        }
        if let Some(r) = &asked {
            let mut t = Conn::connect(r.addr());
            assert_eq!(t.cmd(&[b"ASKING"]), Value::Simple("OK".into()));
            assert_eq!(t.cmd(&[b"GET", key.as_bytes()]), Value::NullBulk);
        }
        // Move the slot's one key, as redis-cli's reshard does.
        let port = to.rsplit_once(':').map_or("", |(_, p)| p);
        ok(
            &from,
            &["MIGRATE", "127.0.0.1", port, &other_key, "0", "5000"],
        );
    });
    assert_eq!(try_again, Some(Transient::TryAgain));
    assert_eq!(
        asked,
        Some(Redirect::Ask {
            slot,
            addr: to.clone()
        })
    );

    // Moved: the old owner redirects, and applying the MOVED routes the slot to the new one.
    let mut s = open(&from, false).await;
    let reply = call(&mut s, &get).await;
    let redirect = parse_redirect(&reply, &from);
    assert_eq!(
        redirect,
        Some(Redirect::Moved {
            slot,
            addr: to.clone()
        }),
        "{}",
        show(&reply)
    );
    let old_owner = topo.master_for(slot);
    let n = match topo.apply_moved(slot, &to) {
        Ok(n) => n,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(topo.address(n), to);
    assert_eq!(topo.master_for(slot), Some(n));
    assert_ne!(topo.master_for(slot), old_owner);
    // Only that slot changed.
    for other in (0..16384u16).filter(|s| *s != slot) {
        let addr = |t: &Topology| t.master_for(other).map(|n| t.address(n).to_string());
        assert_eq!(addr(&topo), addr(&before), "slot {other}");
    }
    let mut s = open(&to, false).await;
    assert_eq!(call(&mut s, &get).await, Bytes::from_static(b"$-1\r\n"));
    let get_other = words(&format!("GET {other_key}"));
    assert_eq!(
        call(&mut s, &get_other).await,
        Bytes::from_static(b"$1\r\nv\r\n")
    );
    wait_owner(&cluster, slot, &to).await;

    // Put the slot back for the other tests sharing the cluster (its key is moved by hand,
    // as redis-cli's reshard would with MIGRATE).
    let (to_id, from_id) = (cluster.node_id(&to), cluster.node_id(&from));
    let slot_text = slot.to_string();
    ok(
        &from,
        &["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &to_id],
    );
    ok(
        &to,
        &["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &from_id],
    );
    let port = from.rsplit_once(':').map_or("", |(_, p)| p);
    ok(
        &to,
        &["MIGRATE", "127.0.0.1", port, &other_key, "0", "5000"],
    );
    move_slot_finish(&cluster, slot, &from, &to);
    let mut s = open(&from, false).await;
    assert_eq!(
        call(&mut s, &get_other).await,
        Bytes::from_static(b"$1\r\nv\r\n")
    );
    call(&mut s, &words(&format!("DEL {other_key}"))).await;
    wait_owner(&cluster, slot, &from).await;
}

#[tokio::test]
async fn script_and_randomkey_fan_out_like_a_single_redis() {
    let cluster = RedisCluster::shared();
    let single = RedisServer::start();
    let topo = discovered(&cluster).await;
    let masters: Vec<String> = topo
        .masters()
        .iter()
        .map(|&m| topo.address(m).to_string())
        .collect();
    assert_eq!(masters.len(), 3);
    let mut direct = open(&single.addr(), false).await;
    let mut nodes = Vec::new();
    for m in &masters {
        nodes.push(open(m, false).await);
    }
    // Sends argv to every master and merges as fan_out says.
    async fn everywhere(nodes: &mut [TcpStream], argv: &[Bytes]) -> Bytes {
        let spec = lookup(&argv[0]).map(|s| fan_out(s, argv));
        let Some(Some(FanOut::AllMasters(how))) = spec else {
            panic!("{spec:?}")
        };
        let mut replies = Vec::new();
        for n in nodes.iter_mut() {
            replies.push(call(n, argv).await);
        }
        match merge_fan_out(how, &replies) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }
    let script = "return 'fan-out test'";
    let load = command("SCRIPT", [Bytes::from_static(b"LOAD"), Bytes::from(script)]);
    let sha = call(&mut direct, &load).await;
    assert_eq!(show(&everywhere(&mut nodes, &load).await), show(&sha));
    let Some(Frame::Bulk(sha_text)) = raw::decode(&sha) else {
        panic!("{}", show(&sha))
    };
    // A script on only one master does not exist for the cluster (EVALSHA could land on
    // another).
    let lonely = "return 'only on one master'";
    let lonely_load = command("SCRIPT", [Bytes::from_static(b"LOAD"), Bytes::from(lonely)]);
    let lonely_sha = call(&mut nodes[0], &lonely_load).await;
    let Some(Frame::Bulk(lonely_text)) = raw::decode(&lonely_sha) else {
        panic!("{}", show(&lonely_sha))
    };
    let exists = command(
        "SCRIPT",
        [
            Bytes::from_static(b"EXISTS"),
            sha_text,
            lonely_text,
            Bytes::from_static(b"0000000000000000000000000000000000000000"),
        ],
    );
    assert_eq!(
        show(&everywhere(&mut nodes, &exists).await),
        show(b"*3\r\n:1\r\n:0\r\n:0\r\n")
    );

    // RANDOMKEY finds a key wherever it is.
    let mut s = open(&masters[2], false).await;
    let key = (0..)
        .map(|i| format!("random:{i}"))
        .find(|k| {
            topo.master_for(key_slot(k.as_bytes()))
                .map(|n| topo.address(n))
                == Some(&masters[2])
        })
        .unwrap_or_default();
    call(&mut s, &words(&format!("SET {key} v"))).await;
    let got = everywhere(&mut nodes, &words("RANDOMKEY")).await;
    assert!(!raw::is_null(&got), "{}", show(&got));
    call(&mut s, &words(&format!("DEL {key}"))).await;

    // DBSIZE sums to the number of keys every master holds.
    let sum = everywhere(&mut nodes, &words("DBSIZE")).await;
    assert!(raw::integer(&sum).is_some_and(|n| n >= 0), "{}", show(&sum));
}

/// A one-node cluster serving every slot, with a password: enough to check discovery's
/// login, and it starts in a fraction of the time of a second six-node cluster.
#[tokio::test]
async fn discover_logs_in_with_the_backend_credentials() {
    let dir = std::env::temp_dir().join(format!("respgate-cluster-auth-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let conf = dir.join("nodes.conf");
    let conf = conf.to_string_lossy();
    let dir_text = dir.to_string_lossy();
    // Its own bus port: the default (port + 10000) does not exist for ports above 55535.
    let bus_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port().to_string())
        .unwrap_or_default();
    let server = RedisServer::start_with(&[
        "--cluster-port",
        &bus_port,
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        &conf,
        "--dir",
        &dir_text,
    ]);
    let addr = server.addr();
    let mut c = Conn::connect(&addr);
    assert_eq!(
        c.cmd_str("CLUSTER ADDSLOTSRANGE 0 16383"),
        Value::Simple("OK".into())
    );
    assert_eq!(
        c.cmd_str("CONFIG SET requirepass s3cret"),
        Value::Simple("OK".into())
    );
    let seeds = vec![addr.clone()];
    let expect_err = |r: Result<Topology, _>, word: &str| match r {
        Err(e) => assert!(format!("{e}").contains(word), "{e}"),
        Ok(t) => panic!("discovered without the right password: {t:?}"),
    };
    expect_err(discover(&seeds, &params()).await, "NOAUTH");
    let wrong = ConnectParams {
        password: Some("nope".into()),
        ..params()
    };
    expect_err(discover(&seeds, &wrong).await, "WRONGPASS");
    let right = ConnectParams {
        password: Some("s3cret".into()),
        ..params()
    };
    let topo = match discover(&seeds, &right).await {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    assert!(topo.is_complete(), "{topo:?}");
    assert_eq!(topo.masters().len(), 1);
    assert_eq!(topo.nodes(), [addr]);
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
