//! Evictions per tenant, attributed by key prefix.
//!
//! In the embedded engine this is exact: the engine reports every key it evicts (see
//! `Engine::set_eviction_hook`) and the key's prefix names its tenant (prefixes never start
//! one another, so at most one matches). Keys outside every tenant's prefix are counted
//! under `tenant=""`, so the per-tenant counts always sum to the engine's own.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, counter};

use crate::config::TenantConfig;

pub const TENANT_EVICTED_KEYS: &str = "respgate_tenant_evicted_keys_total";

/// One tenant's (or the no-tenant bucket's) counters.
struct Bucket {
    prefix: Vec<u8>,
    counter: Counter,
    /// The same count, for `respgate status` (a metrics Counter cannot be read back).
    count: AtomicU64,
}

/// Per-tenant eviction counters, handles created once at start.
pub struct TenantEvictions {
    /// Tenants by name, in config order, and last the bucket for keys of no tenant.
    names: Vec<String>,
    buckets: Vec<Bucket>,
}

impl TenantEvictions {
    pub fn new(tenants: &[TenantConfig]) -> TenantEvictions {
        let bucket = |name: &str, prefix: &[u8]| Bucket {
            prefix: prefix.to_vec(),
            counter: counter!(TENANT_EVICTED_KEYS, "tenant" => name.to_string()),
            count: AtomicU64::new(0),
        };
        let mut names: Vec<String> = tenants.iter().map(|t| t.name.clone()).collect();
        let mut buckets: Vec<Bucket> = tenants
            .iter()
            .map(|t| bucket(&t.name, t.prefix.as_bytes()))
            .collect();
        names.push(String::new());
        buckets.push(bucket("", b""));
        TenantEvictions { names, buckets }
    }

    /// Counts one evicted key for the tenant whose prefix it carries.
    pub fn record(&self, key: &[u8]) {
        // The last bucket's empty prefix matches every key: the fallback.
        if let Some(b) = self.buckets.iter().find(|b| key.starts_with(&b.prefix)) {
            b.counter.increment(1);
            b.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Evictions so far of the tenant `name` ("" for keys of no tenant).
    pub fn count(&self, name: &str) -> u64 {
        self.names
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.buckets.get(i))
            .map_or(0, |b| b.count.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(name: &str, prefix: &str) -> TenantConfig {
        let text = format!("name = \"{name}\"\nprefix = \"{prefix}\"\n");
        toml::from_str(&text).expect("tenant config")
    }

    #[test]
    fn keys_go_to_the_tenant_of_their_prefix_and_the_rest_to_none() {
        let e = TenantEvictions::new(&[tenant("a", "a:"), tenant("b", "b:")]);
        for key in ["a:1", "a:2", "b:1", "c:1", ""] {
            e.record(key.as_bytes());
        }
        assert_eq!((e.count("a"), e.count("b"), e.count("")), (2, 1, 2));
        assert_eq!(e.count("zz"), 0);
    }
}
