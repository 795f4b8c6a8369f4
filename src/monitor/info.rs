//! Reading a backend node's `INFO` text: the handful of fields the monitor exports.
//!
//! The text comes from the network, so nothing here may panic: unknown, missing or
//! malformed fields are simply absent (`None`), and the caller exports what it has.

use serde::{Deserialize, Serialize};

/// What one `INFO memory stats keyspace persistence replication` reply says.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// `role:master` or `role:slave` (reported as "replica").
    pub role: Option<String>,
    pub used_memory: Option<u64>,
    pub used_memory_rss: Option<u64>,
    pub maxmemory: Option<u64>,
    pub maxmemory_policy: Option<String>,
    pub mem_fragmentation_ratio: Option<f64>,
    pub evicted_keys: Option<u64>,
    pub expired_keys: Option<u64>,
    pub keyspace_hits: Option<u64>,
    pub keyspace_misses: Option<u64>,
    pub connected_clients: Option<u64>,
    /// `rdb_last_bgsave_status:ok` → true.
    pub rdb_last_bgsave_ok: Option<bool>,
    pub aof_enabled: Option<bool>,
    /// Keys over all databases (`# Keyspace`: `db0:keys=3,expires=1,...`).
    pub keys: u64,
    /// Keys with a TTL over all databases.
    pub expires: u64,
}

impl NodeInfo {
    /// Parses INFO's `field:value` lines; `# Section` headers and blank lines are skipped.
    pub fn parse(text: &str) -> NodeInfo {
        let mut info = NodeInfo::default();
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.starts_with('#') {
                continue;
            }
            let Some((field, value)) = line.split_once(':') else {
                continue;
            };
            let num = || value.trim().parse::<u64>().ok();
            match field {
                "role" => {
                    info.role = Some(match value {
                        "slave" | "replica" => "replica".to_string(),
                        other => other.to_string(),
                    })
                }
                "used_memory" => info.used_memory = num(),
                "used_memory_rss" => info.used_memory_rss = num(),
                "maxmemory" => info.maxmemory = num(),
                "maxmemory_policy" => info.maxmemory_policy = Some(value.to_string()),
                "mem_fragmentation_ratio" => {
                    info.mem_fragmentation_ratio =
                        value.trim().parse::<f64>().ok().filter(|r| r.is_finite())
                }
                "evicted_keys" => info.evicted_keys = num(),
                "expired_keys" => info.expired_keys = num(),
                "keyspace_hits" => info.keyspace_hits = num(),
                "keyspace_misses" => info.keyspace_misses = num(),
                "connected_clients" => info.connected_clients = num(),
                "rdb_last_bgsave_status" => info.rdb_last_bgsave_ok = Some(value == "ok"),
                "aof_enabled" => info.aof_enabled = Some(value == "1"),
                db if db.len() > 2
                    && db.starts_with("db")
                    && db[2..].bytes().all(|b| b.is_ascii_digit()) =>
                {
                    for pair in value.split(',') {
                        match pair.split_once('=') {
                            Some(("keys", n)) => {
                                info.keys = info.keys.saturating_add(n.parse().unwrap_or(0))
                            }
                            Some(("expires", n)) => {
                                info.expires = info.expires.saturating_add(n.parse().unwrap_or(0))
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        info
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Memory\r\nused_memory:1048576\r\nused_memory_rss:2097152\r\n\
        maxmemory:4194304\r\nmaxmemory_policy:allkeys-lru\r\nmem_fragmentation_ratio:2.00\r\n\
        \r\n# Stats\r\nevicted_keys:7\r\nexpired_keys:3\r\nkeyspace_hits:10\r\nkeyspace_misses:4\r\n\
        # Clients\r\nconnected_clients:5\r\n\
        # Persistence\r\nrdb_last_bgsave_status:err\r\naof_enabled:1\r\n\
        # Replication\r\nrole:slave\r\n\
        # Keyspace\r\ndb0:keys=3,expires=1,avg_ttl=0\r\ndb12:keys=2,expires=2,avg_ttl=5\r\n";

    #[test]
    fn reads_the_exported_fields() {
        let i = NodeInfo::parse(SAMPLE);
        assert_eq!(i.role.as_deref(), Some("replica"));
        assert_eq!(i.used_memory, Some(1 << 20));
        assert_eq!(i.used_memory_rss, Some(2 << 20));
        assert_eq!(i.maxmemory, Some(4 << 20));
        assert_eq!(i.maxmemory_policy.as_deref(), Some("allkeys-lru"));
        assert_eq!(i.mem_fragmentation_ratio, Some(2.0));
        assert_eq!(i.evicted_keys, Some(7));
        assert_eq!(i.expired_keys, Some(3));
        assert_eq!(i.keyspace_hits, Some(10));
        assert_eq!(i.keyspace_misses, Some(4));
        assert_eq!(i.connected_clients, Some(5));
        assert_eq!(i.rdb_last_bgsave_ok, Some(false));
        assert_eq!(i.aof_enabled, Some(true));
        assert_eq!((i.keys, i.expires), (5, 3));
    }

    #[test]
    fn garbage_never_panics_and_yields_nothing() {
        for text in [
            "",
            "x",
            ":::",
            "used_memory:lots",
            "dbx:keys=1",
            "db:keys=zz",
            "\u{0}:1",
        ] {
            let i = NodeInfo::parse(text);
            assert_eq!(i.used_memory, None, "{text:?}");
            assert_eq!(i.keys, 0, "{text:?}");
        }
        assert_eq!(
            NodeInfo::parse("mem_fragmentation_ratio:nan").mem_fragmentation_ratio,
            None
        );
    }
}
