//! Backend memory and eviction monitoring.
//!
//! One task polls `INFO memory stats clients keyspace persistence replication` on every
//! backend node every `[monitor] interval`: the standalone server; the Sentinel master and
//! the replicas the sentinels list (`SENTINEL replicas`); every cluster master and replica of
//! the current slot map. It uses connections of its own (one kept per node, replaced when it
//! fails, logged in with the backend credentials), never the clients' connections, so a
//! slow or dead node delays no client command and no client command waits for INFO.
//!
//! Each poll exports per-node metrics ([`gauges`]), runs the eviction risk check ([`risk`])
//! for every tenant marked `durable` (and the memory ratio for every node), raises
//! `respgate_eviction_risk{tenant,node,reason}`, logs a rate-limited warning, and publishes
//! the whole picture on the [`status::StatusBoard`] that `GET /status` and `respgate status`
//! show. The embedded engine gets the same check from its own maxmemory and policy (node
//! `embedded`); its other numbers are already exported as `respgate_embedded_*`.
//!
//! The first poll runs at start and logs its result once: the startup eviction check.

pub mod gauges;
pub mod info;
pub mod keyevents;
pub mod risk;
pub mod status;
pub mod tenants;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::net::Stream as TcpStream;
use metrics::{Gauge, gauge};
use tracing::{debug, info, warn};

use crate::backend::embedded::Engine;
use crate::backend::remote::conn::{Init, connect, round_trip};
use crate::backend::remote::sentinel::Sentinels;
use crate::backend::remote::{BackendError, Remote, Target};
use crate::config::{BackendMode, Config, parse_duration};
use crate::protocol::reply_scan::{Frame, decode};
use gauges::NodeGauges;
use info::NodeInfo;
use risk::{Memory, Reason, WarnLimiter};
use status::{Alarm, NodeStatus, Status, StatusBoard, TenantStatus};

/// The node label of the embedded engine.
pub const EMBEDDED_NODE: &str = "embedded";

/// The INFO sections one poll asks for (Redis 7 takes several in one INFO).
const INFO_ARGS: [&[u8]; 7] = [
    b"INFO",
    b"memory",
    b"stats",
    b"clients",
    b"keyspace",
    b"persistence",
    b"replication",
];

/// The status before the first poll: mode, settings and tenants from the config.
pub fn initial_status(config: &Config) -> Status {
    Status {
        version: env!("CARGO_PKG_VERSION").to_string(),
        mode: mode_name(config.backend.mode).to_string(),
        interval_secs: config.monitor.interval().as_secs_f64(),
        memory_warn_ratio: config.monitor.memory_warn_ratio,
        polled_unix_ms: 0,
        nodes: Vec::new(),
        tenants: config
            .tenants
            .iter()
            .map(|t| TenantStatus {
                name: t.name.clone(),
                prefix: t.prefix.clone(),
                durable: t.durable,
                evicted_keys: None,
            })
            .collect(),
        alarms: Vec::new(),
    }
}

fn mode_name(mode: BackendMode) -> &'static str {
    match mode {
        BackendMode::Embedded => "embedded",
        BackendMode::Standalone => "standalone",
        BackendMode::Sentinel => "sentinel",
        BackendMode::Cluster => "cluster",
    }
}

/// Everything the monitor task needs; [`Monitor::spawn`] starts it.
pub struct Monitor {
    mode: BackendMode,
    interval: Duration,
    warn_ratio: f64,
    engine: Arc<Engine>,
    remote: Option<Arc<Remote>>,
    sentinels: Option<Sentinels>,
    /// Names of the tenants with `durable = true`.
    durable: Vec<String>,
    username: Option<String>,
    password: Option<String>,
    /// Bounds each connect and each INFO round trip.
    timeout: Duration,
    /// TLS to the nodes, as for clients' commands.
    tls: Option<crate::tls::BackendTls>,
    board: Arc<StatusBoard>,
    /// Evictions per tenant, where they can be attributed (embedded engine; Redis nodes
    /// through their eviction keyspace events).
    tenant_evictions: Option<Arc<tenants::TenantEvictions>>,
    /// `[monitor] enable_keyspace_events`: may turn on the nodes' eviction events.
    enable_keyspace_events: bool,
}

impl Monitor {
    pub fn new(
        config: &Config,
        engine: Arc<Engine>,
        remote: Option<Arc<Remote>>,
        board: Arc<StatusBoard>,
    ) -> Monitor {
        let node_tls = remote.as_ref().and_then(|r| r.target.tls.clone());
        Monitor {
            mode: config.backend.mode,
            interval: config.monitor.interval(),
            warn_ratio: config.monitor.memory_warn_ratio,
            engine,
            remote,
            // Plain TCP until `with_sentinel_tls` says otherwise.
            sentinels: crate::backend::remote::sentinel_config(&config.backend, None),
            durable: config
                .tenants
                .iter()
                .filter(|t| t.durable)
                .map(|t| t.name.clone())
                .collect(),
            username: config.backend.username.clone(),
            password: config.backend.password.clone(),
            timeout: parse_duration(&config.backend.connect_timeout)
                .unwrap_or(Duration::from_secs(2)),
            tls: node_tls,
            board,
            tenant_evictions: None,
            enable_keyspace_events: config.monitor.enable_keyspace_events,
        }
    }

    /// Reaches the sentinels over TLS as respgate's follower does.
    pub fn with_sentinel_tls(mut self, tls: Option<crate::tls::BackendTls>) -> Monitor {
        if let Some(s) = self.sentinels.as_mut() {
            s.tls = tls;
        }
        self
    }

    /// Shows these per-tenant eviction counts in the status.
    pub fn with_tenant_evictions(mut self, counts: Arc<tenants::TenantEvictions>) -> Monitor {
        self.tenant_evictions = Some(counts);
        self
    }

    /// Runs the startup check now, then polls every interval until the process exits
    /// (or the handle is aborted).
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        // Redis nodes report evictions only through keyspace events: watch every master.
        let watchers = match (&self.remote, &self.tenant_evictions) {
            (Some(_), Some(counts)) => Some(keyevents::EvictionWatchers::new(
                counts.clone(),
                self.enable_keyspace_events,
                self.username.clone(),
                self.password.clone(),
                self.timeout,
                self.tls.clone(),
            )),
            _ => None,
        };
        tokio::spawn(async move {
            let mut poller = Poller {
                watchers,
                monitor: self,
                conns: HashMap::new(),
                gauges: HashMap::new(),
                risk: HashMap::new(),
                limiter: WarnLimiter::default(),
                last_alarms: HashMap::new(),
                replicas: Vec::new(),
            };
            let alarms = poller.poll().await;
            poller.log_startup_check(&alarms);
            let every = poller.monitor.interval;
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                poller.poll().await;
            }
        })
    }
}

/// The monitor task's state between polls.
struct Poller {
    monitor: Monitor,
    /// One kept INFO connection per node address.
    conns: HashMap<String, TcpStream>,
    /// Metric handles per node address (with the role they were created for).
    gauges: HashMap<String, NodeGauges>,
    /// `respgate_eviction_risk` handles by (durable tenant index, node, reason).
    risk: HashMap<(usize, String, Reason), Gauge>,
    limiter: WarnLimiter,
    /// The alarms of each node's last answered poll (shown while it does not answer).
    last_alarms: HashMap<String, Vec<Alarm>>,
    /// Sentinel mode: the replicas last listed, kept when no sentinel answers.
    replicas: Vec<String>,
    /// Per-tenant eviction attribution on Redis nodes (tenants configured).
    watchers: Option<keyevents::EvictionWatchers>,
}

impl Poller {
    /// One round: every node's INFO, metrics, the risk check, the status board. Returns the
    /// alarms raised.
    async fn poll(&mut self) -> Vec<Alarm> {
        let mut nodes: Vec<NodeStatus> = Vec::new();
        if self.monitor.mode == BackendMode::Embedded {
            nodes.push(self.embedded_status());
        } else {
            let expected = self.discover().await;
            if let Some(w) = self.watchers.as_mut() {
                let masters: Vec<String> = expected
                    .iter()
                    .filter(|(_, role)| *role == "master")
                    .map(|(a, _)| a.clone())
                    .collect();
                w.watch(&masters);
            }
            nodes = self.poll_remote(&expected).await;
            self.forget_gone(&expected);
        }
        let alarms = self.check_risk(&nodes);
        let polled = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let shown = alarms.clone();
        let evictions = self.monitor.tenant_evictions.clone();
        self.monitor.board.update(move |s| {
            s.nodes = nodes;
            s.alarms = shown;
            s.polled_unix_ms = polled;
            if let Some(counts) = evictions {
                for t in &mut s.tenants {
                    t.evicted_keys = Some(counts.count(&t.name));
                }
            }
        });
        alarms
    }

    /// The embedded engine as a node: its own counters, limit and policy.
    fn embedded_status(&self) -> NodeStatus {
        let engine = &self.monitor.engine;
        let (used, policy, keys, expires) = engine.with_state(|st| {
            (
                st.dbs.iter().map(|d| d.used_memory() as u64).sum::<u64>(),
                st.maxmemory_policy.clone(),
                st.dbs.iter().map(|d| d.len() as u64).sum::<u64>(),
                st.dbs.iter().map(|d| d.expires_count() as u64).sum::<u64>(),
            )
        });
        let stat = |c: &std::sync::atomic::AtomicU64| Some(c.load(Ordering::Relaxed));
        NodeStatus {
            node: EMBEDDED_NODE.to_string(),
            role: "master".to_string(),
            up: true,
            error: None,
            info: NodeInfo {
                role: Some("master".to_string()),
                used_memory: Some(used),
                used_memory_rss: None,
                maxmemory: Some(engine.maxmemory()),
                maxmemory_policy: Some(policy),
                mem_fragmentation_ratio: None,
                evicted_keys: stat(&engine.stats.evicted_keys),
                expired_keys: stat(&engine.stats.expired_keys),
                keyspace_hits: stat(&engine.stats.keyspace_hits),
                keyspace_misses: stat(&engine.stats.keyspace_misses),
                connected_clients: None,
                rdb_last_bgsave_ok: None,
                aof_enabled: Some(engine.aof_enabled()),
                keys,
                expires,
            },
        }
    }

    /// The backend nodes to poll now, with the role the topology gives them.
    async fn discover(&mut self) -> Vec<(String, &'static str)> {
        let Some(remote) = self.monitor.remote.clone() else {
            return Vec::new();
        };
        let mut out: Vec<(String, &'static str)> = Vec::new();
        match self.monitor.mode {
            BackendMode::Embedded => {}
            BackendMode::Standalone => out.push((remote.target.address(), "master")),
            BackendMode::Sentinel => {
                let master = remote.target.address();
                if !master.is_empty() {
                    out.push((master.clone(), "master"));
                }
                if let Some(sentinels) = &self.monitor.sentinels {
                    match sentinels.ask_replicas(false).await {
                        Ok(list) => self.replicas = list,
                        Err(e) => {
                            debug!(error = %e, "no sentinel listed the replicas; keeping the last list")
                        }
                    }
                }
                for r in &self.replicas {
                    // After a failover the sentinels may still list the new master among
                    // the replicas of the old name for a moment.
                    if *r != master {
                        out.push((r.clone(), "replica"));
                    }
                }
            }
            BackendMode::Cluster => {
                if let Some(cluster) = &remote.cluster {
                    let topo = cluster.topology();
                    for &m in topo.masters() {
                        out.push((topo.address(m).to_string(), "master"));
                        for &r in topo.replicas_of(m) {
                            out.push((topo.address(r).to_string(), "replica"));
                        }
                    }
                }
            }
        }
        let mut seen = HashSet::new();
        out.retain(|(a, _)| !a.is_empty() && seen.insert(a.clone()));
        out
    }

    /// Polls every node at once (a dead node's timeout does not delay the others).
    async fn poll_remote(&mut self, expected: &[(String, &'static str)]) -> Vec<NodeStatus> {
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (addr, _)) in expected.iter().enumerate() {
            let target = Target::new(
                addr.clone(),
                self.monitor.username.clone(),
                self.monitor.password.clone(),
                self.monitor.timeout,
                self.monitor.tls.clone(),
            );
            let kept = self.conns.remove(addr);
            let timeout = self.monitor.timeout;
            tasks.spawn(async move {
                let (conn, result) = poll_node(&target, kept, timeout).await;
                (i, conn, result)
            });
        }
        let mut results: Vec<Option<Polled>> = (0..expected.len()).map(|_| None).collect();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((i, conn, result)) => {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = Some((conn, result));
                    }
                }
                Err(e) => warn!(error = %e, "a backend INFO poll task failed"),
            }
        }
        let mut nodes = Vec::with_capacity(expected.len());
        for ((addr, expected_role), result) in expected.iter().zip(results) {
            let (conn, result) = result.unwrap_or((
                None,
                Err(BackendError::Io("the poll task did not finish".into())),
            ));
            if let Some(conn) = conn {
                self.conns.insert(addr.clone(), conn);
            }
            // The node's own word on its role wins over the topology's (it may have just
            // been promoted).
            let role: &'static str = match &result {
                Ok(info) => match info.role.as_deref() {
                    Some("replica") => "replica",
                    Some("master") => "master",
                    _ => expected_role,
                },
                Err(_) => expected_role,
            };
            let gauges = self.gauges_for(addr, role);
            let status = match result {
                Ok(info) => {
                    gauges.record(&info);
                    NodeStatus {
                        node: addr.clone(),
                        role: role.to_string(),
                        up: true,
                        error: None,
                        info,
                    }
                }
                Err(e) => {
                    gauges.down();
                    debug!(node = %addr, error = %e, "backend node did not answer INFO");
                    NodeStatus {
                        node: addr.clone(),
                        role: role.to_string(),
                        up: false,
                        error: Some(e.to_string()),
                        info: NodeInfo::default(),
                    }
                }
            };
            nodes.push(status);
        }
        nodes
    }

    /// The cached handles of `addr`, created on first sight or when its role changed (the
    /// old role's series then reads down).
    fn gauges_for(&mut self, addr: &str, role: &'static str) -> &mut NodeGauges {
        if let Some(old) = self.gauges.get_mut(addr)
            && old.role() != role
        {
            old.down();
            self.gauges.remove(addr);
        }
        self.gauges
            .entry(addr.to_string())
            .or_insert_with(|| NodeGauges::new(addr, role))
    }

    /// Nodes that left the topology read down and lose their kept connection.
    fn forget_gone(&mut self, expected: &[(String, &'static str)]) {
        let current: HashSet<&str> = expected.iter().map(|(a, _)| a.as_str()).collect();
        self.gauges.retain(|addr, g| {
            let keep = current.contains(addr.as_str());
            if !keep {
                g.down();
            }
            keep
        });
        self.conns.retain(|addr, _| current.contains(addr.as_str()));
        // A node that left the backend holds no keys any more: its alarms are over.
        self.risk.retain(|(_, addr, _), g| {
            let keep = current.contains(addr.as_str());
            if !keep {
                g.set(0.0);
            }
            keep
        });
        self.last_alarms
            .retain(|addr, _| current.contains(addr.as_str()));
    }

    /// The eviction risk check over the polled nodes: gauges for every durable tenant ×
    /// node × reason, a rate-limited warning per raised (node, reason), and the alarms.
    fn check_risk(&mut self, nodes: &[NodeStatus]) -> Vec<Alarm> {
        let ratio = self.monitor.warn_ratio;
        let now = Instant::now();
        let mut alarms = Vec::new();
        for n in nodes {
            if !n.up {
                // Nothing new is known about a node that does not answer: its last alarms
                // (and gauges) stand until it answers again.
                if let Some(last) = self.last_alarms.get(&n.node) {
                    alarms.extend(last.iter().cloned().map(|mut a| {
                        a.detail += " (last known: the node is not answering)";
                        a
                    }));
                }
                continue;
            }
            let first = alarms.len();
            let (Some(used), Some(max)) = (n.info.used_memory, n.info.maxmemory) else {
                // An INFO without the memory fields (not a Redis?) proves nothing either way.
                self.last_alarms.remove(&n.node);
                continue;
            };
            let policy = n.info.maxmemory_policy.as_deref().unwrap_or("noeviction");
            let raised = risk::reasons(Memory { used, max, policy }, ratio);
            for (t, _) in self.monitor.durable.iter().enumerate() {
                for reason in Reason::ALL {
                    let gauge = self
                        .risk
                        .entry((t, n.node.clone(), reason))
                        .or_insert_with(|| {
                            gauge!(gauges::EVICTION_RISK,
                                "tenant" => self.monitor.durable[t].clone(),
                                "node" => n.node.clone(),
                                "reason" => reason.label())
                        });
                    gauge.set(if raised.contains(&reason) { 1.0 } else { 0.0 });
                }
            }
            for reason in raised {
                let detail = match reason {
                    Reason::MemoryRatio => format!(
                        "used_memory {used} is {:.0}% of maxmemory {max} (warn above {:.0}%)",
                        used as f64 * 100.0 / max as f64,
                        ratio * 100.0
                    ),
                    _ => format!("maxmemory {max}, maxmemory_policy {policy}"),
                };
                // Policy reasons matter only for keys that must not go; a full node matters
                // to everyone.
                let tenants: Vec<&str> = self.monitor.durable.iter().map(String::as_str).collect();
                if tenants.is_empty() && reason != Reason::MemoryRatio {
                    continue;
                }
                if self.limiter.allow(&n.node, reason, now) {
                    warn!(
                        node = %n.node,
                        role = %n.role,
                        reason = reason.label(),
                        durable_tenants = %tenants.join(","),
                        "eviction risk: {} ({detail})",
                        reason.explain()
                    );
                }
                if tenants.is_empty() {
                    alarms.push(Alarm {
                        tenant: String::new(),
                        node: n.node.clone(),
                        reason: reason.label().to_string(),
                        detail: detail.clone(),
                    });
                }
                for t in tenants {
                    alarms.push(Alarm {
                        tenant: t.to_string(),
                        node: n.node.clone(),
                        reason: reason.label().to_string(),
                        detail: detail.clone(),
                    });
                }
            }
            self.last_alarms
                .insert(n.node.clone(), alarms[first..].to_vec());
        }
        alarms
    }

    /// The startup check's line: the warnings above when something is at risk, else one
    /// info line saying what was checked.
    fn log_startup_check(&self, alarms: &[Alarm]) {
        if alarms.is_empty() {
            info!(
                nodes = self
                    .gauges
                    .len()
                    .max(usize::from(self.monitor.mode == BackendMode::Embedded)),
                durable_tenants = self.monitor.durable.len(),
                "eviction check: no durable tenant's keys can be evicted and no node is above memory_warn_ratio"
            );
        } else {
            warn!(
                alarms = alarms.len(),
                "eviction check: see the eviction risk warnings above (respgate status lists them)"
            );
        }
    }
}

/// A poll's outcome: the connection to keep, and the node's INFO or why there is none.
type Polled = (Option<TcpStream>, Result<NodeInfo, BackendError>);

/// One node's INFO over the kept connection `kept` (or a new one); returns the connection
/// to keep (None after any failure: the next poll reconnects).
async fn poll_node(target: &Target, kept: Option<TcpStream>, timeout: Duration) -> Polled {
    let mut stream = match kept {
        Some(s) => s,
        None => match connect(
            target,
            Init {
                resp3: false,
                db: 0,
                user: None,
            },
        )
        .await
        {
            Ok(s) => s,
            Err(e) => return (None, Err(e)),
        },
    };
    let reply = match tokio::time::timeout(timeout, round_trip(&mut stream, &INFO_ARGS)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return (None, Err(e)),
        Err(_) => return (None, Err(BackendError::Timeout(timeout.as_millis()))),
    };
    match decode(&reply) {
        Frame::Bulk(text) => (
            Some(stream),
            Ok(NodeInfo::parse(&String::from_utf8_lossy(&text))),
        ),
        Frame::Error(e) => (
            Some(stream),
            Err(BackendError::Refused(
                String::from_utf8_lossy(&e).into_owned(),
            )),
        ),
        _ => (
            None,
            Err(BackendError::Protocol("unexpected reply to INFO".into())),
        ),
    }
}

/// The replicas of the monitored master according to the first sentinel that answers
/// `SENTINEL replicas <name>`.
#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn bulk(s: &'static str) -> Frame {
        Frame::Bulk(Bytes::from_static(s.as_bytes()))
    }

    fn poller(config: &str) -> Poller {
        let config = Config::parse(config, "test").expect("test config");
        let engine = Arc::new(Engine::new(&config.embedded));
        let board = Arc::new(StatusBoard::new(initial_status(&config)));
        Poller {
            monitor: Monitor::new(&config, engine, None, board),
            conns: HashMap::new(),
            gauges: HashMap::new(),
            risk: HashMap::new(),
            limiter: WarnLimiter::default(),
            last_alarms: HashMap::new(),
            replicas: Vec::new(),
            watchers: None,
        }
    }

    fn node(addr: &str, up: bool, used: u64, max: u64, policy: &str) -> NodeStatus {
        NodeStatus {
            node: addr.to_string(),
            role: "master".to_string(),
            up,
            error: None,
            info: NodeInfo {
                used_memory: up.then_some(used),
                maxmemory: up.then_some(max),
                maxmemory_policy: up.then(|| policy.to_string()),
                ..NodeInfo::default()
            },
        }
    }

    fn reasons_of(alarms: &[Alarm]) -> Vec<(String, String, String)> {
        alarms
            .iter()
            .map(|a| (a.tenant.clone(), a.node.clone(), a.reason.clone()))
            .collect()
    }

    #[test]
    fn durable_tenants_alarm_on_every_node_that_can_evict() {
        let mut p = poller(
            "[[tenants]]\nname = \"keep\"\npassword = \"a\"\nprefix = \"k:\"\ndurable = true\n\
             [[tenants]]\nname = \"cache\"\npassword = \"b\"\nprefix = \"c:\"\n",
        );
        let alarms = p.check_risk(&[
            node("10.0.0.1:6379", true, 10, 100, "volatile-lru"),
            node("10.0.0.2:6379", true, 95, 100, "noeviction"),
            node("10.0.0.3:6379", true, 95, 0, "allkeys-lru"),
        ]);
        let keep = |n: &str, r: &str| ("keep".to_string(), n.to_string(), r.to_string());
        assert_eq!(
            reasons_of(&alarms),
            vec![
                keep("10.0.0.1:6379", "volatile_policy"),
                keep("10.0.0.2:6379", "memory_ratio"),
            ]
        );
        // The node goes down: its last alarms stand, marked; the others' are recomputed.
        let alarms = p.check_risk(&[
            node("10.0.0.1:6379", false, 0, 0, ""),
            node("10.0.0.2:6379", true, 10, 100, "noeviction"),
        ]);
        assert_eq!(
            reasons_of(&alarms),
            vec![keep("10.0.0.1:6379", "volatile_policy")]
        );
        assert!(alarms[0].detail.contains("last known"), "{alarms:?}");
        // Leaving the topology ends them.
        p.forget_gone(&[("10.0.0.2:6379".to_string(), "master")]);
        assert!(
            p.check_risk(&[node("10.0.0.1:6379", false, 0, 0, "")])
                .is_empty()
        );
    }

    #[test]
    fn without_durable_tenants_only_the_memory_ratio_alarms() {
        let mut p = poller("");
        let alarms = p.check_risk(&[
            node("10.0.0.1:6379", true, 10, 100, "allkeys-lru"),
            node("10.0.0.2:6379", true, 95, 100, "allkeys-lru"),
        ]);
        assert_eq!(
            reasons_of(&alarms),
            vec![(
                String::new(),
                "10.0.0.2:6379".to_string(),
                "memory_ratio".to_string()
            )]
        );
    }

    #[test]
    fn reads_replica_addresses_from_sentinel() {
        let reply = Frame::Array(vec![
            Frame::Array(vec![
                bulk("name"),
                bulk("127.0.0.1:7001"),
                bulk("ip"),
                bulk("127.0.0.1"),
                bulk("port"),
                bulk("7001"),
                bulk("flags"),
                bulk("slave"),
            ]),
            Frame::Array(vec![bulk("ip"), bulk("::1"), bulk("port"), bulk("7002")]),
            Frame::Array(vec![bulk("ip")]),
            Frame::Integer(3),
        ]);
        assert_eq!(
            crate::backend::remote::sentinel::parse_replicas(&reply, false),
            vec!["127.0.0.1:7001".to_string(), "[::1]:7002".to_string()]
        );
        assert!(crate::backend::remote::sentinel::parse_replicas(&Frame::Null, false).is_empty());
    }
}
