//! Backend monitoring: the respgate_backend_* metrics follow a real redis-server, the
//! eviction risk alarm fires for durable tenants, /metrics passes `promtool check metrics`,
//! and `respgate status` prints the summary.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::redis_cluster::RedisCluster;
use common::redis_sentinel::{MASTER_NAME, SentinelSetup};
use common::redis_server::RedisServer;
use common::resp::{Conn, Value};
use common::respgate::{Respgate, temp_config};

/// Polls fast so tests need not wait 5 s for a change to show.
const FAST: &str = "[monitor]\ninterval = \"100ms\"\n";

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("metrics listener");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default()
}

/// The values of the samples of `name` whose labels include every `labels` pair.
fn samples<'a>(
    metrics: &'a str,
    name: &'a str,
    labels: &'a [(&'a str, &'a str)],
) -> impl Iterator<Item = f64> + 'a {
    metrics.lines().filter_map(move |line| {
        let rest = line.strip_prefix(name)?;
        let (labelset, value) = match rest.strip_prefix('{') {
            Some(r) => r.split_once("} ")?,
            None => ("", rest.strip_prefix(' ')?),
        };
        labels
            .iter()
            .all(|(k, v)| labelset.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

/// The value of the first sample of `name` whose labels include every `labels` pair.
fn sample(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(metrics, name, labels).next()
}

/// Scrapes until `want` holds for the metrics (returning them), or panics after 10 s.
fn wait_metrics(gate: &Respgate, what: &str, want: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let m = http_get(&gate.metrics_addr, "/metrics");
        if want(&m) {
            return m;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}; metrics:\n{m}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn info_field(conn: &mut Conn, section: &str, field: &str) -> String {
    let Value::Bulk(text) = conn.cmd(&[b"INFO", section.as_bytes()]) else {
        panic!("INFO did not answer a bulk string");
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in INFO {section}"))
}

fn status_cmd(metrics_addr: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_respgate"))
        .args(["status", "--metrics-addr", metrics_addr])
        .stdin(Stdio::null())
        .output()
        .expect("running respgate status");
    assert!(
        out.status.success(),
        "respgate status failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `promtool check metrics` on a scrape; fails the test if promtool is missing
/// (scripts/test.sh installs it).
fn promtool_check(m: &str) {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool not runnable ({e}): scripts/test.sh installs it (Debian package prometheus)"
        ),
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(m.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{m}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn backend_gauges_follow_a_real_redis_server() {
    let redis = RedisServer::start();
    let node = redis.addr();
    let gate = Respgate::standalone(&node, FAST);
    let mut direct = Conn::connect(&node);
    let labels = [("node", node.as_str()), ("role", "master")];
    wait_metrics(&gate, "the node to be up", |m| {
        sample(m, "respgate_backend_up", &labels) == Some(1.0)
    });

    // Limits set on the backend behind respgate's back show at the next poll.
    direct.cmd_str("CONFIG SET maxmemory 2mb");
    direct.cmd_str("CONFIG SET maxmemory-policy allkeys-lru");
    // Both settings in one poll: a poll between the two CONFIG SETs sees only the first
    // (this test failed once on exactly that).
    let policy = [labels[0], labels[1], ("policy", "allkeys-lru")];
    wait_metrics(&gate, "maxmemory 2mb and allkeys-lru", |m| {
        sample(m, "respgate_backend_maxmemory_bytes", &labels) == Some(2097152.0)
            && sample(m, "respgate_backend_maxmemory_policy_info", &policy) == Some(1.0)
    });

    // Fill it through respgate until it evicts: the node's evicted_keys is exported.
    let mut c = Conn::connect(&gate.addr);
    let value = "x".repeat(10_000);
    for i in 0..400 {
        let key = format!("fill:{i}");
        let reply = c.cmd(&[b"SET", key.as_bytes(), value.as_bytes()]);
        assert!(!reply.is_error(), "{reply:?}");
    }
    // The backend is read afresh on every scrape: commands (the monitor's INFO too) may
    // evict a little more while it sits at its limit.
    let direct = std::cell::RefCell::new(direct);
    let backend_now = || {
        let mut d = direct.borrow_mut();
        let evicted: f64 = info_field(&mut d, "stats", "evicted_keys")
            .parse()
            .unwrap_or(-1.0);
        let keys = match d.cmd_str("DBSIZE") {
            Value::Int(n) => n as f64,
            other => panic!("DBSIZE: {other:?}"),
        };
        (evicted, keys)
    };
    assert!(backend_now().0 > 0.0, "the backend should have evicted");
    let m = wait_metrics(&gate, "evicted_keys and keys to match INFO", |m| {
        let (evicted, keys) = backend_now();
        sample(m, "respgate_backend_evicted_keys_total", &labels) == Some(evicted)
            && sample(m, "respgate_backend_keys", &labels) == Some(keys)
    });
    let evicted = sample(&m, "respgate_backend_evicted_keys_total", &labels).unwrap_or(0.0);
    let used = sample(&m, "respgate_backend_used_memory_bytes", &labels).unwrap_or(0.0);
    assert!(used > 1_000_000.0, "used_memory {used}\n{m}");
    for name in [
        "respgate_backend_used_memory_rss_bytes",
        "respgate_backend_mem_fragmentation_ratio",
        "respgate_backend_connected_clients",
        "respgate_backend_expired_keys_total",
        "respgate_backend_keyspace_hits_total",
        "respgate_backend_keyspace_misses_total",
        "respgate_backend_aof_enabled",
    ] {
        assert!(sample(&m, name, &labels).is_some(), "no {name} in\n{m}");
    }
    assert_eq!(
        sample(&m, "respgate_backend_rdb_last_bgsave_ok", &labels),
        Some(1.0)
    );
    // No tenants: no durable keys at risk, so no eviction risk series.
    assert!(!m.contains("respgate_eviction_risk{"), "{m}");

    let text = status_cmd(&gate.metrics_addr);
    assert!(text.contains("mode standalone"), "{text}");
    assert!(text.contains(&format!("{node} master up")), "{text}");
    assert!(text.contains("policy allkeys-lru"), "{text}");
    assert!(text.contains(&format!("evicted {evicted}")), "{text}");
}

#[test]
fn an_unreachable_backend_reads_down() {
    // A port nobody listens on (bound, then released).
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let gate = Respgate::standalone(&addr, FAST);
    wait_metrics(&gate, "up = 0", |m| {
        sample(m, "respgate_backend_up", &[("node", addr.as_str())]) == Some(0.0)
    });
    let text = status_cmd(&gate.metrics_addr);
    assert!(text.contains(&format!("{addr} master DOWN")), "{text}");
}

#[test]
fn promtool_accepts_the_metrics() {
    let redis = RedisServer::start();
    let gate = Respgate::standalone(&redis.addr(), FAST);
    let mut c = Conn::connect(&gate.addr);
    c.cmd_str("SET k v");
    c.cmd_str("GET k");
    let m = wait_metrics(&gate, "backend gauges", |m| {
        m.contains("respgate_backend_maxmemory_policy_info{")
    });
    promtool_check(&m);
}

#[test]
fn durable_tenant_on_an_evicting_embedded_engine_raises_the_alarm() {
    let path = temp_config(&format!(
        "[embedded]\nmaxmemory = \"64mb\"\nmaxmemory_policy = \"allkeys-lru\"\n\
         [[tenants]]\nname = \"billing\"\npassword = \"b-secret\"\nprefix = \"billing:\"\ndurable = true\n\
         [[tenants]]\nname = \"cache\"\npassword = \"c-secret\"\nprefix = \"cache:\"\n{FAST}"
    ));
    let gate = Respgate::start_with(&["--config", &path]);
    let risk = |reason: &'static str| {
        [
            ("tenant", "billing"),
            ("node", "embedded"),
            ("reason", reason),
        ]
    };
    let m = wait_metrics(&gate, "the eviction risk gauge", |m| {
        sample(m, "respgate_eviction_risk", &risk("allkeys_policy")) == Some(1.0)
    });
    assert_eq!(
        sample(&m, "respgate_eviction_risk", &risk("volatile_policy")),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, "respgate_eviction_risk", &risk("memory_ratio")),
        Some(0.0)
    );
    // Only durable tenants are watched.
    assert!(
        !m.contains("respgate_eviction_risk{tenant=\"cache\""),
        "{m}"
    );

    // The startup check said so in the log.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = gate.logs.recv_timeout(Duration::from_millis(100)) {
            if line.contains("WARN") && line.contains("eviction risk") {
                assert!(line.contains("billing"), "{line}");
                assert!(line.contains("allkeys_policy"), "{line}");
                seen.push(line);
                break;
            }
            seen.push(line);
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("eviction risk")),
        "no warning in {seen:#?}"
    );

    // respgate status lists the tenants and the alarm.
    let text = status_cmd(&gate.metrics_addr);
    assert!(text.contains("mode embedded"), "{text}");
    assert!(text.contains("embedded master up"), "{text}");
    assert!(
        text.contains("billing prefix \"billing:\" durable"),
        "{text}"
    );
    assert!(
        text.contains("cache prefix \"cache:\", evicted 0\n"),
        "{text}"
    );
    assert!(
        text.contains("EVICTION RISK tenant billing on embedded (allkeys_policy)"),
        "{text}"
    );
    let json = http_get(&gate.metrics_addr, "/status");
    assert!(json.contains("\"alarms\""), "{json}");
}

#[test]
fn every_cluster_master_and_replica_is_polled_with_its_role() {
    let cluster = RedisCluster::shared();
    let gate = Respgate::cluster(&cluster.addrs()[..1], FAST);
    let masters = cluster.masters();
    let replicas = cluster.replicas();
    assert_eq!((masters.len(), replicas.len()), (3, 3));
    let m = wait_metrics(&gate, "all six nodes up", |m| {
        masters
            .iter()
            .map(|a| (a, "master"))
            .chain(replicas.iter().map(|a| (a, "replica")))
            .all(|(a, role)| {
                sample(m, "respgate_backend_up", &[("node", a), ("role", role)]) == Some(1.0)
            })
    });
    assert!(m.contains("respgate_backend_used_memory_bytes{"), "{m}");
    let text = status_cmd(&gate.metrics_addr);
    assert!(text.contains("backends (6)"), "{text}");
}

#[test]
fn sentinel_master_and_its_replicas_are_polled() {
    let setup = SentinelSetup::start();
    let master = setup.master.as_ref().map(|m| m.addr()).expect("master");
    let replica = setup.replica.as_ref().map(|r| r.addr()).expect("replica");
    let gate = Respgate::sentinel(&setup.sentinel_addrs(), MASTER_NAME, FAST);
    wait_metrics(&gate, "master and replica up", |m| {
        sample(
            m,
            "respgate_backend_up",
            &[("node", &master), ("role", "master")],
        ) == Some(1.0)
            && sample(
                m,
                "respgate_backend_up",
                &[("node", &replica), ("role", "replica")],
            ) == Some(1.0)
    });
    let text = status_cmd(&gate.metrics_addr);
    assert!(text.contains("mode sentinel"), "{text}");
    assert!(text.contains(&format!("{replica} replica up")), "{text}");
}

#[test]
fn a_node_above_memory_warn_ratio_alarms_until_it_is_not() {
    let redis = RedisServer::start();
    let node = redis.addr();
    let gate = Respgate::standalone(
        &node,
        "[monitor]\ninterval = \"100ms\"\nmemory_warn_ratio = 0.1\n",
    );
    let mut direct = Conn::connect(&node);
    // An idle redis-server uses about 1 MB: above 10% of 2 MB.
    direct.cmd_str("CONFIG SET maxmemory 2mb");
    let alarm = format!("EVICTION RISK on {node} (memory_ratio)");
    let wait_status = |want: bool| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = http_get(&gate.metrics_addr, "/status?format=text");
            if text.contains(&alarm) == want {
                return text;
            }
            assert!(Instant::now() < deadline, "alarm {want}? status:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_status(true);
    let deadline = Instant::now() + Duration::from_secs(5);
    let warned = loop {
        match gate.logs.recv_timeout(Duration::from_millis(100)) {
            Ok(line) if line.contains("WARN") && line.contains("memory_ratio") => break line,
            _ => assert!(Instant::now() < deadline, "no memory_ratio warning logged"),
        }
    };
    assert!(warned.contains(&node), "{warned}");
    direct.cmd_str("CONFIG SET maxmemory 0");
    wait_status(false);

    // A node that stops answering keeps its last alarms, marked as such.
    direct.cmd_str("CONFIG SET maxmemory 2mb");
    wait_status(true);
    drop(direct);
    let _port = redis.kill_holding_port();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = http_get(&gate.metrics_addr, "/status?format=text");
        if text.contains(&format!("{node} master DOWN")) {
            assert!(text.contains(&alarm), "{text}");
            assert!(text.contains("last known"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the node never read down:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn embedded_evictions_are_counted_per_tenant() {
    let path = temp_config(&format!(
        "[embedded]\nmaxmemory = \"2mb\"\nmaxmemory_policy = \"allkeys-lru\"\n\
         [[tenants]]\nname = \"billing\"\npassword = \"b-secret\"\nprefix = \"billing:\"\ndurable = true\n\
         [[tenants]]\nname = \"cache\"\npassword = \"c-secret\"\nprefix = \"cache:\"\n{FAST}"
    ));
    let gate = Respgate::start_with(&["--config", &path]);
    let value = "x".repeat(10_000);
    for (password, n) in [("b-secret", 150), ("c-secret", 300)] {
        let mut c = Conn::connect(&gate.addr);
        assert_eq!(
            c.cmd(&[b"AUTH", password.as_bytes()]),
            Value::Simple("OK".into())
        );
        for i in 0..n {
            let key = format!("k{i}");
            let reply = c.cmd(&[b"SET", key.as_bytes(), value.as_bytes()]);
            assert!(!reply.is_error(), "{reply:?}");
        }
    }
    let tenant = |t: &'static str| [("tenant", t)];
    let m = wait_metrics(&gate, "evictions per tenant", |m| {
        sample(m, "respgate_embedded_evicted_keys_total", &[]).unwrap_or(0.0) > 0.0
    });
    let total = sample(&m, "respgate_embedded_evicted_keys_total", &[]).unwrap_or(0.0);
    let billing = sample(&m, "respgate_tenant_evicted_keys_total", &tenant("billing"));
    let cache = sample(&m, "respgate_tenant_evicted_keys_total", &tenant("cache"));
    let none = sample(&m, "respgate_tenant_evicted_keys_total", &tenant(""));
    assert_eq!(none, Some(0.0), "{m}");
    // 450 values of 10 kB into 2 MB: billing's older keys go first.
    assert!(billing.unwrap_or(0.0) > 0.0, "{m}");
    assert_eq!(
        billing.unwrap_or(0.0) + cache.unwrap_or(0.0),
        total,
        "per-tenant evictions must sum to the engine's\n{m}"
    );
    assert_eq!(
        sample(
            &m,
            "respgate_eviction_risk",
            &[("tenant", "billing"), ("reason", "allkeys_policy")]
        ),
        Some(1.0)
    );
    // Empty `tenant` labels (keys of no tenant) included, the scrape is valid.
    promtool_check(&m);
    // The status shows the same count.
    let deadline = Instant::now() + Duration::from_secs(10);
    let want = format!(
        "billing prefix \"billing:\" durable, evicted {}",
        billing.unwrap_or(0.0)
    );
    loop {
        let text = status_cmd(&gate.metrics_addr);
        if text.contains(&want) {
            break;
        }
        assert!(Instant::now() < deadline, "no {want:?} in\n{text}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn status_says_when_respgate_is_not_there() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_respgate"))
        .args(["status", "--metrics-addr", &addr])
        .output()
        .expect("running respgate status");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot read http://{addr}/status")),
        "{err}"
    );
}

/// The sum of every `name` sample whose labels include all `labels`.
fn sum_samples(metrics: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples(metrics, name, labels).sum()
}

#[test]
fn evictions_on_a_redis_backend_are_attributed_to_tenants() {
    let redis =
        RedisServer::start_with(&["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"]);
    let node = redis.addr();
    let gate = Respgate::standalone(
        &node,
        "[monitor]\ninterval = \"100ms\"\nenable_keyspace_events = true\n\
         [[tenants]]\nname = \"cache\"\nusername = \"cache\"\npassword = \"pc\"\nprefix = \"c:\"\n\
         [[tenants]]\nname = \"wf\"\nusername = \"wf\"\npassword = \"pw\"\nprefix = \"w:\"\ndurable = true\n",
    );
    let mut direct = Conn::connect(&node);
    // respgate turned on the eviction events and subscribed before anything is written.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let subscribed = direct.cmd_str("PUBSUB NUMPAT") == Value::Int(1);
        let flags = direct.cmd_str("CONFIG GET notify-keyspace-events");
        let enabled = matches!(&flags, Value::Array(v) if v.get(1).and_then(Value::as_bytes).is_some_and(|f| f.contains(&b'E') && f.contains(&b'e')));
        if subscribed && enabled {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no eviction subscription: {flags:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Two applications fill the 2 MB server until it evicts.
    let mut cache = Conn::connect(&gate.addr);
    assert_eq!(cache.cmd_str("AUTH cache pc"), Value::Simple("OK".into()));
    let mut wf = Conn::connect(&gate.addr);
    assert_eq!(wf.cmd_str("AUTH wf pw"), Value::Simple("OK".into()));
    let value = "v".repeat(10_000);
    for i in 0..300 {
        for c in [&mut cache, &mut wf] {
            let key = format!("k{i}");
            let reply = c.cmd(&[b"SET", key.as_bytes(), value.as_bytes()]);
            assert!(!reply.is_error(), "{reply:?}");
        }
    }
    let node_evicted = || -> f64 {
        info_field(&mut Conn::connect(&node), "stats", "evicted_keys")
            .parse()
            .unwrap_or(-1.0)
    };
    assert!(node_evicted() > 0.0, "the backend should have evicted");

    // Once the events are in, the tenants' counts add up to the node's own count.
    let labels = [("node", node.as_str()), ("role", "master")];
    let m = wait_metrics(&gate, "per-tenant evictions to add up to the node's", |m| {
        let node_count = sample(m, "respgate_backend_evicted_keys_total", &labels);
        let tenants = sum_samples(m, "respgate_tenant_evicted_keys_total", &[]);
        node_count == Some(node_evicted()) && Some(tenants) == node_count
    });
    let cache_count = sample(
        &m,
        "respgate_tenant_evicted_keys_total",
        &[("tenant", "cache")],
    )
    .unwrap_or(0.0);
    let wf_count = sample(
        &m,
        "respgate_tenant_evicted_keys_total",
        &[("tenant", "wf")],
    )
    .unwrap_or(0.0);
    // LRU over alternating writes evicts both applications' oldest keys.
    assert!(cache_count > 0.0 && wf_count > 0.0, "{m}");
    // The durable tenant's keys sit on a node that evicts: the alarm is up for it only.
    assert_eq!(
        sample(
            &m,
            "respgate_eviction_risk",
            &[
                ("tenant", "wf"),
                ("node", &node),
                ("reason", "allkeys_policy")
            ]
        ),
        Some(1.0),
        "{m}"
    );
    assert!(
        !m.contains("respgate_eviction_risk{tenant=\"cache\""),
        "{m}"
    );
    let text = status_cmd(&gate.metrics_addr);
    assert!(text.contains("wf"), "{text}");
}

/// Load from 4 clients (one of them a tenant), each pipelining SETs, GETs and INCRs on a
/// string (which fail with ERR) while /metrics is scraped; afterwards every count equals
/// what was sent, each command's latency histogram holds one sample per call, and every
/// scrape passes promtool.
fn scrape_during_load(gate: &Respgate) {
    const ROUNDS: usize = 500;
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let addr = gate.addr.clone();
            std::thread::spawn(move || {
                let mut c = Conn::connect(&addr);
                if w == 0 {
                    assert_eq!(c.cmd_str("AUTH app pa"), Value::Simple("OK".into()));
                }
                for i in 0..ROUNDS {
                    let key = format!("w{w}:{i}");
                    c.send(&[b"SET", key.as_bytes(), b"v"]);
                    c.send(&[b"GET", key.as_bytes()]);
                    c.send(&[b"INCR", key.as_bytes()]);
                    assert_eq!(c.read(), Value::Simple("OK".into()));
                    assert_eq!(c.read(), Value::Bulk(b"v".to_vec()));
                    assert!(c.read().is_error());
                }
            })
        })
        .collect();
    let mut scrapes = 0;
    while !workers.iter().all(|w| w.is_finished()) {
        promtool_check(&http_get(&gate.metrics_addr, "/metrics"));
        scrapes += 1;
    }
    for w in workers {
        w.join().expect("load client");
    }
    assert!(scrapes > 0);
    let m = http_get(&gate.metrics_addr, "/metrics");
    promtool_check(&m);
    let count = |cmd: &str, tenant: &str, result: &str| {
        sample(
            &m,
            "respgate_commands_total",
            &[("command", cmd), ("tenant", tenant), ("result", result)],
        )
        .unwrap_or(0.0)
    };
    let rounds = ROUNDS as f64;
    for (tenant, clients) in [("app", 1.0), ("dev", 3.0)] {
        assert_eq!(count("set", tenant, "ok"), rounds * clients, "{m}");
        assert_eq!(count("get", tenant, "ok"), rounds * clients, "{m}");
        assert_eq!(count("incr", tenant, "err"), rounds * clients, "{m}");
        assert_eq!(count("incr", tenant, "ok"), 0.0, "{m}");
    }
    for cmd in ["set", "get", "incr"] {
        let calls = sum_samples(&m, "respgate_commands_total", &[("command", cmd)]);
        let histogram = sample(
            &m,
            "respgate_command_duration_seconds_count",
            &[("command", cmd)],
        );
        assert_eq!(histogram, Some(calls), "{cmd}: {m}");
        let inf = sample(
            &m,
            "respgate_command_duration_seconds_bucket",
            &[("command", cmd), ("le", "+Inf")],
        );
        assert_eq!(inf, Some(calls), "{cmd}: {m}");
    }
    let bytes_in = sample(&m, "respgate_net_input_bytes_total", &[]).unwrap_or(0.0);
    assert!(bytes_in > 0.0, "{m}");
    let depth = sample(&m, "respgate_pipeline_depth_count", &[]).unwrap_or(0.0);
    assert!(depth > 0.0, "{m}");
}

/// `app` logs in; everybody else is the default tenant `dev`.
fn plain_load_config() -> String {
    "[server]\ndefault_tenant = \"dev\"\n\
     [[tenants]]\nname = \"app\"\nusername = \"app\"\npassword = \"pa\"\nprefix = \"app:\"\n\
     [[tenants]]\nname = \"dev\"\nprefix = \"dev:\"\n"
        .to_string()
}

#[test]
fn metrics_count_every_command_during_load_embedded() {
    let gate = Respgate::start_with(&["--config", &temp_config(&plain_load_config())]);
    scrape_during_load(&gate);
}

#[test]
fn metrics_count_every_command_during_load_forwarding() {
    let redis = RedisServer::start();
    let gate = Respgate::standalone(&redis.addr(), &plain_load_config());
    scrape_during_load(&gate);
    let m = http_get(&gate.metrics_addr, "/metrics");
    let node = [("node", redis.addr())];
    let node: Vec<(&str, &str)> = node.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Every forwarded command's backend round trip is in the backend histogram.
    let backend = sample(&m, "respgate_backend_request_duration_seconds_count", &node);
    assert!(backend.unwrap_or(0.0) >= 6000.0, "{m}");
    assert!(
        sample(&m, "respgate_backend_connections", &node).unwrap_or(0.0) >= 1.0,
        "{m}"
    );
}

/// Metric names used by a shipped file that respgate does not define (histogram and
/// counter suffixes folded onto their family).
fn unknown_metrics(text: &str) -> Vec<String> {
    let mut sources = String::new();
    let mut dirs = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("src dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                sources += &std::fs::read_to_string(&path).unwrap_or_default();
            }
        }
    }
    let mut unknown = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("respgate_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let name = &text[start..end];
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        if !sources.contains(&format!("\"{family}\"")) && !unknown.contains(&name.to_string()) {
            unknown.push(name.to_string());
        }
        i = end;
    }
    unknown
}

#[test]
fn shipped_alert_rules_and_dashboard_are_valid_and_use_real_metrics() {
    let root = env!("CARGO_MANIFEST_DIR");
    let rules = format!("{root}/config/prometheus/alerts.yml");
    let out = Command::new("promtool")
        .args(["check", "rules", &rules])
        .output()
        .expect("promtool (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let rules_text = std::fs::read_to_string(&rules).unwrap();
    assert_eq!(unknown_metrics(&rules_text), Vec::<String>::new());
    for alert in [
        "RespgateDurableDataAtRisk",
        "RespgateBackendEvicting",
        "RespgateBackendMemoryHigh",
        "RespgateBackendDown",
        "RespgateHighErrorRatio",
        "RespgateHighLatencyP99",
    ] {
        assert!(rules_text.contains(&format!("alert: {alert}")), "{alert}");
    }

    let dashboard =
        std::fs::read_to_string(format!("{root}/config/grafana/respgate.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    let panels = json["panels"].as_array().expect("panels");
    assert!(panels.len() >= 8);
    for p in panels {
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}", p["title"]);
    }
    assert!(dashboard.contains("histogram_quantile(0.99"));
    assert_eq!(unknown_metrics(&dashboard), Vec::<String>::new());
}

fn slowlog_entries(c: &mut Conn) -> Vec<Vec<Value>> {
    match c.cmd_str("SLOWLOG GET -1") {
        Value::Array(entries) => entries
            .into_iter()
            .map(|e| match e {
                Value::Array(fields) => fields,
                other => panic!("slowlog entry {other:?}"),
            })
            .collect(),
        other => panic!("SLOWLOG GET: {other:?}"),
    }
}

#[test]
fn slowlog_and_latencystats_describe_respgate_itself() {
    // Embedded, logging every command: entries shaped as Redis's.
    let gate = Respgate::start_with(&[
        "--config",
        &temp_config("[server]\nslowlog_log_slower_than = 0\nslowlog_max_len = 3\n"),
    ]);
    let mut c = Conn::connect(&gate.addr);
    c.cmd_str("CLIENT SETNAME tester");
    c.cmd_str("SET k v");
    let long = "x".repeat(300);
    c.cmd(&[b"GET", long.as_bytes()]);
    let entries = slowlog_entries(&mut c);
    assert_eq!(entries.len(), 3, "{entries:?}");
    let newest = &entries[0];
    assert_eq!(newest.len(), 6, "{newest:?}");
    let Value::Array(args) = &newest[3] else {
        panic!("{newest:?}")
    };
    assert_eq!(args[0], Value::Bulk(b"GET".to_vec()));
    let shown = args[1].as_bytes().unwrap_or_default();
    assert!(shown.ends_with(b"... (172 more bytes)"), "{args:?}");
    assert_eq!(newest[5], Value::Bulk(b"tester".to_vec()));
    let (Value::Int(id_new), Value::Int(id_old)) = (&entries[0][0], &entries[1][0]) else {
        panic!("{entries:?}")
    };
    assert!(id_new > id_old);
    assert_eq!(c.cmd_str("SLOWLOG LEN"), Value::Int(3));
    // As Redis: the RESET (run before it is logged) and each LEN are logged too; the
    // CONFIG SET that turns logging off is not.
    assert_eq!(c.cmd_str("SLOWLOG RESET"), Value::Simple("OK".into()));
    assert_eq!(c.cmd_str("SLOWLOG LEN"), Value::Int(1));
    // CONFIG SET turns it off.
    c.cmd_str("CONFIG SET slowlog-log-slower-than -1");
    c.cmd_str("GET k");
    assert_eq!(c.cmd_str("SLOWLOG LEN"), Value::Int(2));
    let lat = match c.cmd_str("INFO latencystats") {
        Value::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("{other:?}"),
    };
    assert!(lat.contains("# Latencystats"), "{lat}");
    assert!(lat.contains("latency_percentiles_usec_set:p50="), "{lat}");

    // Forwarding: a command slow on the backend is logged by respgate (default 10 ms).
    let redis = RedisServer::start_with(&["--enable-debug-command", "yes"]);
    let gate = Respgate::standalone(&redis.addr(), "");
    let mut c = Conn::connect(&gate.addr);
    c.cmd_str("GET quick");
    assert_eq!(c.cmd_str("DEBUG SLEEP 0.05"), Value::Simple("OK".into()));
    let entries = slowlog_entries(&mut c);
    assert_eq!(entries.len(), 1, "{entries:?}");
    let Value::Int(micros) = entries[0][2] else {
        panic!("{entries:?}")
    };
    assert!(micros >= 50_000, "{micros}");
    let Value::Array(args) = &entries[0][3] else {
        panic!("{entries:?}")
    };
    assert_eq!(args[0], Value::Bulk(b"debug".to_vec()));
}
