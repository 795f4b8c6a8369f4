//! Metric handles per backend node, created once when a node is first seen and reused by
//! every later poll (no per-poll registry lookups by name).
//!
//! Redis's own counters (evicted_keys, ...) are exported as Prometheus counters that advance
//! by what the node's counter advanced between two polls; a node restart (its counter going
//! back) counts the new value from zero, as Prometheus's own reset handling would. Their
//! value thus equals the node's counter as long as the node did not restart while respgate ran.

use metrics::{Counter, Gauge, counter, gauge};

use super::info::NodeInfo;
// The maxmemory policies Redis knows; anything else is labelled "other", so a misbehaving
// node cannot grow the label set.
use crate::config::POLICIES;

pub const UP: &str = "respgate_backend_up";
pub const USED_MEMORY: &str = "respgate_backend_used_memory_bytes";
pub const USED_MEMORY_RSS: &str = "respgate_backend_used_memory_rss_bytes";
pub const MAXMEMORY: &str = "respgate_backend_maxmemory_bytes";
pub const MAXMEMORY_POLICY: &str = "respgate_backend_maxmemory_policy_info";
pub const EVICTED_KEYS: &str = "respgate_backend_evicted_keys_total";
pub const EXPIRED_KEYS: &str = "respgate_backend_expired_keys_total";
pub const KEYSPACE_HITS: &str = "respgate_backend_keyspace_hits_total";
pub const KEYSPACE_MISSES: &str = "respgate_backend_keyspace_misses_total";
pub const FRAGMENTATION: &str = "respgate_backend_mem_fragmentation_ratio";
pub const CONNECTED_CLIENTS: &str = "respgate_backend_connected_clients";
pub const RDB_LAST_BGSAVE_OK: &str = "respgate_backend_rdb_last_bgsave_ok";
pub const AOF_ENABLED: &str = "respgate_backend_aof_enabled";
pub const KEYS: &str = "respgate_backend_keys";
pub const EXPIRES: &str = "respgate_backend_expires";
pub const EVICTION_RISK: &str = "respgate_eviction_risk";

/// Describes every monitor metric (HELP lines); call once after the recorder is installed.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge};
    describe_gauge!(
        UP,
        "1 if the backend node answered the last INFO poll, else 0"
    );
    describe_gauge!(USED_MEMORY, "Backend node's INFO used_memory");
    describe_gauge!(USED_MEMORY_RSS, "Backend node's INFO used_memory_rss");
    describe_gauge!(MAXMEMORY, "Backend node's maxmemory (0 = no limit)");
    describe_gauge!(
        MAXMEMORY_POLICY,
        "1 for the backend node's current maxmemory-policy (0 for earlier ones)"
    );
    describe_counter!(
        EVICTED_KEYS,
        "Keys the backend node evicted (INFO evicted_keys)"
    );
    describe_counter!(
        EXPIRED_KEYS,
        "Keys the backend node expired (INFO expired_keys)"
    );
    describe_counter!(KEYSPACE_HITS, "Backend node's INFO keyspace_hits");
    describe_counter!(KEYSPACE_MISSES, "Backend node's INFO keyspace_misses");
    describe_gauge!(FRAGMENTATION, "Backend node's INFO mem_fragmentation_ratio");
    describe_gauge!(CONNECTED_CLIENTS, "Clients connected to the backend node");
    describe_gauge!(
        RDB_LAST_BGSAVE_OK,
        "1 if the backend node's last RDB save succeeded, else 0"
    );
    describe_gauge!(AOF_ENABLED, "1 if the backend node has appendonly on");
    describe_gauge!(KEYS, "Keys on the backend node, all databases");
    describe_gauge!(
        EXPIRES,
        "Keys with a TTL on the backend node, all databases"
    );
    describe_counter!(
        super::tenants::TENANT_EVICTED_KEYS,
        "Keys of the tenant the embedded engine evicted (tenant \"\": keys of no tenant)"
    );
    describe_gauge!(
        EVICTION_RISK,
        "1 if a durable tenant's keys can be lost on the node for the reason given, else 0"
    );
}

/// A Prometheus counter following one of the node's own counters.
struct Follower {
    counter: Counter,
    last: Option<u64>,
}

impl Follower {
    fn new(name: &'static str, node: &str, role: &'static str) -> Follower {
        Follower {
            counter: counter!(name, "node" => node.to_string(), "role" => role),
            last: None,
        }
    }

    fn observe(&mut self, value: Option<u64>) {
        let Some(v) = value else { return };
        let step = match self.last {
            Some(last) if v >= last => v - last,
            // First sight, or the node restarted (its counter went back).
            _ => v,
        };
        self.counter.increment(step);
        self.last = Some(v);
    }
}

/// Every handle of one (node, role).
pub struct NodeGauges {
    node: String,
    role: &'static str,
    up: Gauge,
    used_memory: Gauge,
    used_memory_rss: Gauge,
    maxmemory: Gauge,
    fragmentation: Gauge,
    connected_clients: Gauge,
    rdb_ok: Gauge,
    aof_enabled: Gauge,
    keys: Gauge,
    expires: Gauge,
    evicted: Follower,
    expired: Follower,
    hits: Follower,
    misses: Follower,
    /// The policy series seen so far (at most the 9 labels), and which one is current.
    policies: Vec<(&'static str, Gauge)>,
    policy_now: Option<&'static str>,
}

impl NodeGauges {
    pub fn new(node: &str, role: &'static str) -> NodeGauges {
        let g = |name: &'static str| gauge!(name, "node" => node.to_string(), "role" => role);
        NodeGauges {
            node: node.to_string(),
            role,
            up: g(UP),
            used_memory: g(USED_MEMORY),
            used_memory_rss: g(USED_MEMORY_RSS),
            maxmemory: g(MAXMEMORY),
            fragmentation: g(FRAGMENTATION),
            connected_clients: g(CONNECTED_CLIENTS),
            rdb_ok: g(RDB_LAST_BGSAVE_OK),
            aof_enabled: g(AOF_ENABLED),
            keys: g(KEYS),
            expires: g(EXPIRES),
            evicted: Follower::new(EVICTED_KEYS, node, role),
            expired: Follower::new(EXPIRED_KEYS, node, role),
            hits: Follower::new(KEYSPACE_HITS, node, role),
            misses: Follower::new(KEYSPACE_MISSES, node, role),
            policies: Vec::new(),
            policy_now: None,
        }
    }

    /// The node did not answer.
    pub fn down(&mut self) {
        self.up.set(0.0);
    }

    pub fn record(&mut self, info: &NodeInfo) {
        self.up.set(1.0);
        let set = |g: &Gauge, v: Option<u64>| {
            if let Some(v) = v {
                g.set(v as f64);
            }
        };
        set(&self.used_memory, info.used_memory);
        set(&self.used_memory_rss, info.used_memory_rss);
        set(&self.maxmemory, info.maxmemory);
        set(&self.connected_clients, info.connected_clients);
        set(&self.rdb_ok, info.rdb_last_bgsave_ok.map(u64::from));
        set(&self.aof_enabled, info.aof_enabled.map(u64::from));
        self.keys.set(info.keys as f64);
        self.expires.set(info.expires as f64);
        if let Some(r) = info.mem_fragmentation_ratio {
            self.fragmentation.set(r);
        }
        self.evicted.observe(info.evicted_keys);
        self.expired.observe(info.expired_keys);
        self.hits.observe(info.keyspace_hits);
        self.misses.observe(info.keyspace_misses);
        if let Some(p) = info.maxmemory_policy.as_deref() {
            self.set_policy(p);
        }
    }

    fn set_policy(&mut self, policy: &str) {
        let label = POLICIES
            .iter()
            .copied()
            .find(|&p| p == policy)
            .unwrap_or("other");
        if self.policy_now == Some(label) {
            return;
        }
        for (_, g) in &self.policies {
            g.set(0.0);
        }
        let gauge = match self.policies.iter().find(|(p, _)| *p == label) {
            Some((_, g)) => g.clone(),
            None => {
                let g = gauge!(MAXMEMORY_POLICY, "node" => self.node.clone(), "role" => self.role, "policy" => label);
                self.policies.push((label, g.clone()));
                g
            }
        };
        gauge.set(1.0);
        self.policy_now = Some(label);
    }

    pub fn role(&self) -> &'static str {
        self.role
    }
}
