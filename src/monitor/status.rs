//! What `GET /status` serves and `respgate status` prints: the monitor's latest view of
//! every backend node, the tenants and the raised alarms.
//!
//! The same types serialize (server) and deserialize (CLI), so the two cannot drift apart.

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};

use super::info::NodeInfo;

/// The whole status document.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    /// embedded | standalone | sentinel | cluster.
    pub mode: String,
    /// Seconds between polls.
    pub interval_secs: f64,
    pub memory_warn_ratio: f64,
    /// Unix milliseconds of the last completed poll (0: none yet).
    pub polled_unix_ms: u64,
    pub nodes: Vec<NodeStatus>,
    pub tenants: Vec<TenantStatus>,
    pub alarms: Vec<Alarm>,
}

/// One backend node (or the embedded engine, node "embedded").
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: String,
    /// master | replica.
    pub role: String,
    pub up: bool,
    /// Why the last poll failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub info: NodeInfo,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TenantStatus {
    pub name: String,
    pub prefix: String,
    pub durable: bool,
    /// Its keys evicted so far, where respgate can attribute evictions (embedded engine).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evicted_keys: Option<u64>,
}

/// One raised eviction risk alarm.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Alarm {
    /// The durable tenant at risk; empty for a node over the memory ratio with no durable
    /// tenant configured.
    pub tenant: String,
    pub node: String,
    pub reason: String,
    pub detail: String,
}

/// The latest status, shared between the monitor (writer) and the HTTP endpoint (reader).
#[derive(Debug, Default)]
pub struct StatusBoard {
    current: RwLock<Status>,
}

impl StatusBoard {
    pub fn new(initial: Status) -> StatusBoard {
        StatusBoard {
            current: RwLock::new(initial),
        }
    }

    pub fn update(&self, f: impl FnOnce(&mut Status)) {
        f(&mut self.current.write());
    }

    pub fn snapshot(&self) -> Status {
        self.current.read().clone()
    }

    /// The JSON `/status` body.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&*self.current.read())
            .unwrap_or_else(|e| format!("{{\"error\":\"cannot serialize the status: {e}\"}}"))
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "K", "M", "G", "T"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.2}{}", UNITS[unit])
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "?".to_string(), |v| v.to_string())
}

/// The human summary `respgate status` prints.
pub fn render_text(s: &Status) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "respgate {} — mode {}, polling every {}s, memory warn ratio {}",
        s.version, s.mode, s.interval_secs, s.memory_warn_ratio
    );
    let _ = writeln!(out, "\nbackends ({}):", s.nodes.len());
    if s.nodes.is_empty() {
        let _ = writeln!(out, "  (none polled yet)");
    }
    for n in &s.nodes {
        let i = &n.info;
        let state = if n.up { "up" } else { "DOWN" };
        let max = match i.maxmemory {
            Some(0) => "no limit".to_string(),
            Some(m) => human(m),
            None => "?".to_string(),
        };
        let _ = writeln!(
            out,
            "  {} {} {}: used {} (rss {}) of {}, policy {}, evicted {}, expired {}, keys {}, clients {}",
            n.node,
            n.role,
            state,
            i.used_memory.map_or_else(|| "?".to_string(), human),
            i.used_memory_rss.map_or_else(|| "?".to_string(), human),
            max,
            i.maxmemory_policy.as_deref().unwrap_or("?"),
            opt(i.evicted_keys),
            opt(i.expired_keys),
            i.keys,
            opt(i.connected_clients),
        );
        if let Some(e) = &n.error {
            let _ = writeln!(out, "    error: {e}");
        }
    }
    let _ = writeln!(out, "\ntenants ({}):", s.tenants.len());
    if s.tenants.is_empty() {
        let _ = writeln!(out, "  (none: single-user mode)");
    }
    for t in &s.tenants {
        let evicted = t
            .evicted_keys
            .map_or_else(String::new, |n| format!(", evicted {n}"));
        let _ = writeln!(
            out,
            "  {} prefix {:?}{}{evicted}",
            t.name,
            t.prefix,
            if t.durable { " durable" } else { "" }
        );
    }
    let _ = writeln!(out, "\nalarms ({}):", s.alarms.len());
    if s.alarms.is_empty() {
        let _ = writeln!(out, "  none");
    }
    for a in &s.alarms {
        let who = if a.tenant.is_empty() {
            String::new()
        } else {
            format!("tenant {} ", a.tenant)
        };
        let _ = writeln!(
            out,
            "  EVICTION RISK {who}on {} ({}): {}",
            a.node, a.reason, a.detail
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_nodes_tenants_and_alarms() {
        let s = Status {
            version: "0.1.0".into(),
            mode: "standalone".into(),
            interval_secs: 5.0,
            memory_warn_ratio: 0.9,
            polled_unix_ms: 1,
            nodes: vec![NodeStatus {
                node: "127.0.0.1:6380".into(),
                role: "master".into(),
                up: true,
                error: None,
                info: NodeInfo {
                    used_memory: Some(3 << 20),
                    maxmemory: Some(4 << 20),
                    maxmemory_policy: Some("allkeys-lru".into()),
                    evicted_keys: Some(12),
                    ..NodeInfo::default()
                },
            }],
            tenants: vec![TenantStatus {
                name: "billing".into(),
                prefix: "b:".into(),
                durable: true,
                evicted_keys: Some(4),
            }],
            alarms: vec![Alarm {
                tenant: "billing".into(),
                node: "127.0.0.1:6380".into(),
                reason: "allkeys_policy".into(),
                detail: "policy allkeys-lru".into(),
            }],
        };
        let text = render_text(&s);
        assert!(text.contains("mode standalone"), "{text}");
        assert!(
            text.contains("127.0.0.1:6380 master up: used 3.00M"),
            "{text}"
        );
        assert!(
            text.contains("of 4.00M, policy allkeys-lru, evicted 12"),
            "{text}"
        );
        assert!(
            text.contains("billing prefix \"b:\" durable, evicted 4"),
            "{text}"
        );
        assert!(
            text.contains("EVICTION RISK tenant billing on 127.0.0.1:6380"),
            "{text}"
        );
        // The JSON round-trips (the CLI reads what the server writes).
        let json = StatusBoard::new(s).to_json();
        let back: Status = serde_json::from_str(&json).expect("own JSON parses");
        assert_eq!(back.alarms.len(), 1);
    }
}
