//! The eviction risk check: can a node lose a durable tenant's keys?
//!
//! Pure functions (no I/O, no clock), so every case is a unit test. A node can lose keys
//! when it has a memory limit and a policy that evicts: `allkeys-*` may evict any key,
//! `volatile-*` the keys that carry a TTL (a durable tenant's keys may). A node near its limit
//! is a risk by itself: it is about to evict (or, under noeviction, to refuse writes).

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Why a node puts durable keys at risk. A closed set: it is a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// maxmemory > 0 and an `allkeys-*` policy: any key may be evicted.
    AllkeysPolicy,
    /// maxmemory > 0 and a `volatile-*` policy: keys with a TTL may be evicted.
    VolatilePolicy,
    /// used_memory / maxmemory above `[monitor] memory_warn_ratio`.
    MemoryRatio,
}

impl Reason {
    pub const ALL: [Reason; 3] = [
        Reason::AllkeysPolicy,
        Reason::VolatilePolicy,
        Reason::MemoryRatio,
    ];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            Reason::AllkeysPolicy => "allkeys_policy",
            Reason::VolatilePolicy => "volatile_policy",
            Reason::MemoryRatio => "memory_ratio",
        }
    }

    /// One line for logs and `respgate status`.
    pub fn explain(self) -> &'static str {
        match self {
            Reason::AllkeysPolicy => "maxmemory is set and the policy may evict any key",
            Reason::VolatilePolicy => "maxmemory is set and the policy may evict keys with a TTL",
            Reason::MemoryRatio => "used_memory is above memory_warn_ratio of maxmemory",
        }
    }
}

/// A node's memory settings as the check needs them.
#[derive(Debug, Clone, Copy)]
pub struct Memory<'a> {
    pub used: u64,
    /// 0 = no limit.
    pub max: u64,
    pub policy: &'a str,
}

/// The reasons `mem` puts keys at risk (empty: none).
pub fn reasons(mem: Memory<'_>, warn_ratio: f64) -> Vec<Reason> {
    let mut out = Vec::new();
    if mem.max == 0 {
        // No limit: Redis never evicts (the OS may kill it, which is not eviction).
        return out;
    }
    if mem.policy.starts_with("allkeys-") {
        out.push(Reason::AllkeysPolicy);
    } else if mem.policy.starts_with("volatile-") {
        out.push(Reason::VolatilePolicy);
    }
    if mem.used as f64 / mem.max as f64 > warn_ratio {
        out.push(Reason::MemoryRatio);
    }
    out
}

/// How often the same (node, reason) warning may be logged.
pub const WARN_EVERY: Duration = Duration::from_secs(600);

/// Rate limit for the warning log: once per (node, reason) per [`WARN_EVERY`].
#[derive(Debug, Default)]
pub struct WarnLimiter {
    last: HashMap<(String, Reason), Instant>,
}

impl WarnLimiter {
    /// Should the warning for `(node, reason)` be logged at `now`? Records it if so.
    pub fn allow(&mut self, node: &str, reason: Reason, now: Instant) -> bool {
        let key = (node.to_string(), reason);
        match self.last.get(&key) {
            Some(&t) if now.saturating_duration_since(t) < WARN_EVERY => false,
            _ => {
                self.last.insert(key, now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(used: u64, max: u64, policy: &str) -> Vec<Reason> {
        reasons(Memory { used, max, policy }, 0.9)
    }

    #[test]
    fn policies_that_evict_only_count_with_a_limit() {
        assert_eq!(mem(10, 0, "allkeys-lru"), vec![]);
        assert_eq!(mem(10, 100, "allkeys-lru"), vec![Reason::AllkeysPolicy]);
        assert_eq!(mem(10, 100, "allkeys-random"), vec![Reason::AllkeysPolicy]);
        assert_eq!(mem(10, 100, "volatile-ttl"), vec![Reason::VolatilePolicy]);
        assert_eq!(mem(10, 100, "noeviction"), vec![]);
    }

    #[test]
    fn memory_ratio_is_strictly_above() {
        assert_eq!(mem(90, 100, "noeviction"), vec![]);
        assert_eq!(mem(91, 100, "noeviction"), vec![Reason::MemoryRatio]);
        assert_eq!(
            mem(100, 100, "allkeys-lfu"),
            vec![Reason::AllkeysPolicy, Reason::MemoryRatio]
        );
    }

    #[test]
    fn warnings_are_rate_limited_per_node_and_reason() {
        let mut l = WarnLimiter::default();
        let t0 = Instant::now();
        assert!(l.allow("a:1", Reason::AllkeysPolicy, t0));
        assert!(!l.allow("a:1", Reason::AllkeysPolicy, t0 + Duration::from_secs(599)));
        assert!(l.allow("a:1", Reason::MemoryRatio, t0));
        assert!(l.allow("b:1", Reason::AllkeysPolicy, t0));
        assert!(l.allow("a:1", Reason::AllkeysPolicy, t0 + WARN_EVERY));
    }
}
