//! Gauges read from live state when `/metrics` is scraped: clients blocked and subscribed,
//! the embedded engine's keyspace, memory limit, hit counters and AOF, the cluster slot
//! map's age. Keeping them current on every change would put work on the hot path for a
//! value read every few seconds.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock, Weak};

use metrics::{counter, describe_counter, describe_gauge, gauge};

use crate::server::Shared;

pub const BLOCKED_CLIENTS: &str = "respgate_blocked_clients";
pub const PUBSUB_CLIENTS: &str = "respgate_pubsub_clients";
pub const EMBEDDED_KEYS: &str = "respgate_embedded_keys";
pub const EMBEDDED_EXPIRES: &str = "respgate_embedded_expires";
pub const EMBEDDED_MAXMEMORY: &str = "respgate_embedded_maxmemory_bytes";
pub const EMBEDDED_HITS: &str = "respgate_embedded_keyspace_hits_total";
pub const EMBEDDED_MISSES: &str = "respgate_embedded_keyspace_misses_total";
pub const EMBEDDED_AOF_SIZE: &str = "respgate_embedded_aof_size_bytes";
pub const EMBEDDED_AOF_LAST_FSYNC: &str = "respgate_embedded_aof_last_fsync_timestamp_seconds";
pub const EMBEDDED_AOF_LAST_REWRITE: &str = "respgate_embedded_aof_last_rewrite_timestamp_seconds";

static SERVER: OnceLock<Weak<Shared>> = OnceLock::new();

/// The server whose state the scrape reads (once, at start).
pub fn register(shared: &Arc<Shared>) {
    let _ = SERVER.set(Arc::downgrade(shared));
}

pub fn describe() {
    describe_gauge!(
        BLOCKED_CLIENTS,
        "Clients waiting in a blocking command (BLPOP, XREAD BLOCK ...) of the embedded engine"
    );
    describe_gauge!(
        PUBSUB_CLIENTS,
        "Clients subscribed to at least one channel, pattern or shard channel"
    );
    describe_gauge!(EMBEDDED_KEYS, "Keys in the embedded engine, per db");
    describe_gauge!(
        EMBEDDED_EXPIRES,
        "Keys with a TTL in the embedded engine, per db"
    );
    describe_gauge!(
        EMBEDDED_MAXMEMORY,
        "The embedded engine's maxmemory (0 = no limit)"
    );
    describe_counter!(EMBEDDED_HITS, "Key lookups that found the key (embedded)");
    describe_counter!(EMBEDDED_MISSES, "Key lookups that did not (embedded)");
    describe_gauge!(EMBEDDED_AOF_SIZE, "Bytes in the embedded engine's AOF");
    describe_gauge!(
        EMBEDDED_AOF_LAST_FSYNC,
        "Unix time of the AOF's last everysec fsync (0: none yet)"
    );
    describe_gauge!(
        EMBEDDED_AOF_LAST_REWRITE,
        "Unix time of the AOF's last rewrite (0: none since start)"
    );
}

/// Sets the scrape-time gauges from the live state.
pub fn refresh() {
    let Some(shared) = SERVER.get().and_then(Weak::upgrade) else {
        return;
    };
    let mut subscribed = 0usize;
    for client in shared.clients.snapshot() {
        let info = client.info.lock();
        if info.sub + info.psub + info.ssub > 0 {
            subscribed += 1;
        }
    }
    gauge!(PUBSUB_CLIENTS).set(subscribed as f64);
    // The byte counters are INFO's own (counted once per read and write, not twice).
    let stats = &shared.stats;
    counter!(super::NET_INPUT_BYTES).absolute(stats.net_input_bytes.load(Ordering::Relaxed));
    counter!(super::NET_OUTPUT_BYTES).absolute(stats.net_output_bytes.load(Ordering::Relaxed));
    if let Some(remote) = &shared.remote {
        if let Some(cluster) = &remote.cluster {
            gauge!(super::CLUSTER_SLOT_MAP_AGE).set(cluster.slot_map_age().as_secs_f64());
        }
        return;
    }
    let engine = &shared.engine;
    gauge!(BLOCKED_CLIENTS).set(engine.blocked_clients() as f64);
    let per_db: Vec<(usize, usize, usize)> = engine.with_state(|st| {
        st.dbs
            .iter()
            .enumerate()
            .map(|(i, d)| (i, d.len(), d.expires_count()))
            .collect()
    });
    for (i, keys, expires) in per_db {
        // Only databases in use: 16 series of zeros would say nothing.
        if keys == 0 && i != 0 {
            continue;
        }
        let db = i.to_string();
        gauge!(EMBEDDED_KEYS, "db" => db.clone()).set(keys as f64);
        gauge!(EMBEDDED_EXPIRES, "db" => db).set(expires as f64);
    }
    let maxmemory = shared
        .params
        .read()
        .get(&[b"maxmemory"])
        .first()
        .and_then(|(_, v)| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    gauge!(EMBEDDED_MAXMEMORY).set(maxmemory);
    let es = &engine.stats;
    counter!(EMBEDDED_HITS).absolute(es.keyspace_hits.load(Ordering::Relaxed));
    counter!(EMBEDDED_MISSES).absolute(es.keyspace_misses.load(Ordering::Relaxed));
    if let Some(size) = engine.aof_size() {
        gauge!(EMBEDDED_AOF_SIZE).set(size as f64);
        gauge!(EMBEDDED_AOF_LAST_FSYNC).set(es.aof_last_fsync.load(Ordering::Relaxed) as f64);
        gauge!(EMBEDDED_AOF_LAST_REWRITE).set(es.aof_last_rewrite.load(Ordering::Relaxed) as f64);
    }
}

/// Appends the families respgate renders itself (the command duration histograms).
pub fn render_own(out: &mut String) {
    let Some(shared) = SERVER.get().and_then(Weak::upgrade) else {
        return;
    };
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    super::commands::render_commands(out);
    shared.cmdstats.render_durations(out);
    super::render_backend_durations(out);
}

/// `POST /reload`: the same as SIGHUP (tenants and policies from the config file).
pub fn reload() -> Result<usize, String> {
    match SERVER.get().and_then(Weak::upgrade) {
        Some(shared) => shared.reload_logged(),
        None => Err("respgate is still starting".into()),
    }
}
