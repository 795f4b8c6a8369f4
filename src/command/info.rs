//! INFO: respgate's state in Redis's INFO format (server, clients, memory, persistence,
//! stats, replication, cpu, modules, errorstats, cluster, keyspace, commandstats).

use std::fmt::Write;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::connection::REDIS_VERSION;
use crate::protocol::Reply;
use crate::server::session::Session;

/// Sections in INFO's order; `default` marks those shown by a bare INFO.
const SECTIONS: &[(&str, bool)] = &[
    ("server", true),
    ("clients", true),
    ("memory", true),
    ("persistence", true),
    ("stats", true),
    ("replication", true),
    ("cpu", true),
    ("modules", true),
    ("errorstats", true),
    ("cluster", true),
    ("keyspace", true),
    ("commandstats", false),
    ("latencystats", false),
];

pub fn info(s: &Session, args: &[Bytes]) -> Reply {
    let wanted = |name: &str, default: bool| -> bool {
        if args.is_empty() {
            return default;
        }
        args.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == name.as_bytes()
                || a == b"all" && name != "modules"
                || a == b"everything"
                || a == b"default" && default
        })
    };
    let mut out = String::new();
    for (name, default) in SECTIONS {
        if !wanted(name, *default) {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        section(s, name, &mut out);
    }
    Reply::Verbatim("txt", Bytes::from(out))
}

fn section(s: &Session, name: &str, out: &mut String) {
    let sh = &s.shared;
    let title = {
        let mut t = name.to_string();
        if let Some(f) = t.get_mut(0..1) {
            f.make_ascii_uppercase();
        }
        t
    };
    let _ = write!(out, "# {title}\r\n");
    let mut line = |k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    match name {
        "server" => {
            let uptime = sh.started.elapsed().as_secs();
            line("redis_version", &REDIS_VERSION);
            line("respgate_version", &env!("CARGO_PKG_VERSION"));
            line("redis_mode", &"standalone");
            line("os", &std::env::consts::OS);
            line("arch_bits", &64);
            line("process_id", &std::process::id());
            line("run_id", &sh.run_id);
            line("tcp_port", &sh.listen_addr.port());
            line(
                "server_time_usec",
                &(crate::backend::embedded::unix_ms() * 1000),
            );
            line("uptime_in_seconds", &uptime);
            line("uptime_in_days", &(uptime / 86400));
            line("hz", &sh.config.embedded.hz);
            line(
                "executable",
                &std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            );
        }
        "clients" => {
            line("connected_clients", &sh.clients.len());
            line("maxclients", &sh.params.read().maxclients);
            line("blocked_clients", &sh.engine.blocked_clients());
            line("pubsub_clients", &0);
        }
        "memory" => {
            let used = sh
                .engine
                .with_state(|st| st.dbs.iter().map(|d| d.approx_memory()).sum::<usize>());
            let maxmemory = sh
                .params
                .read()
                .get(&[b"maxmemory"])
                .first()
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            line("used_memory", &used);
            line("used_memory_human", &human(used as u64));
            line("used_memory_rss", &rss_bytes());
            line("maxmemory", &maxmemory);
            line("maxmemory_policy", &sh.config.embedded.maxmemory_policy);
            line("mem_allocator", &mem_allocator());
        }
        "persistence" => {
            let dirty = sh.engine.with_state(|st| st.dirty);
            line("loading", &0);
            line("rdb_changes_since_last_save", &dirty);
            line("rdb_bgsave_in_progress", &0);
            line(
                "rdb_last_save_time",
                &sh.engine.last_save.load(Ordering::Relaxed),
            );
            line("aof_enabled", &(sh.engine.aof_enabled() as u8));
            line("aof_rewrite_in_progress", &0);
        }
        "stats" => {
            let st = &sh.stats;
            let es = &sh.engine.stats;
            line(
                "total_connections_received",
                &st.total_connections.load(Ordering::Relaxed),
            );
            line(
                "total_commands_processed",
                &st.total_commands.load(Ordering::Relaxed),
            );
            line(
                "total_net_input_bytes",
                &st.net_input_bytes.load(Ordering::Relaxed),
            );
            line(
                "total_net_output_bytes",
                &st.net_output_bytes.load(Ordering::Relaxed),
            );
            line(
                "rejected_connections",
                &st.rejected_connections.load(Ordering::Relaxed),
            );
            line("expired_keys", &es.expired_keys.load(Ordering::Relaxed));
            line("evicted_keys", &es.evicted_keys.load(Ordering::Relaxed));
            line("keyspace_hits", &es.keyspace_hits.load(Ordering::Relaxed));
            line(
                "keyspace_misses",
                &es.keyspace_misses.load(Ordering::Relaxed),
            );
            line("pubsub_channels", &0);
            line("pubsub_patterns", &0);
            line(
                "total_error_replies",
                &sh.cmdstats
                    .used()
                    .iter()
                    .map(|(_, c)| {
                        c.failed.load(Ordering::Relaxed) + c.rejected.load(Ordering::Relaxed)
                    })
                    .sum::<u64>(),
            );
            line(
                "protocol_errors",
                &st.protocol_errors.load(Ordering::Relaxed),
            );
        }
        "replication" => {
            line("role", &"master");
            line("connected_slaves", &0);
            line("master_replid", &sh.run_id);
            line("master_repl_offset", &0);
        }
        "cpu" => {
            let (user, sys) = cpu_times();
            line("used_cpu_sys", &format!("{sys:.6}"));
            line("used_cpu_user", &format!("{user:.6}"));
        }
        "cluster" => line("cluster_enabled", &0),
        "keyspace" => {
            let rows = sh.engine.with_state(|st| match &s.tenant {
                None => st
                    .dbs
                    .iter()
                    .enumerate()
                    .filter(|(_, d)| !d.is_empty())
                    .map(|(i, d)| (i, d.len(), d.expires_count()))
                    .collect::<Vec<_>>(),
                // A tenant's counts are its own keys' (a walk of each db, like DBSIZE):
                // other tenants' key counts are not its business.
                Some(t) => {
                    let prefix = t.namespace.prefix();
                    let now = crate::backend::embedded::unix_ms();
                    let mut rows = Vec::new();
                    for (i, d) in st.dbs.iter().enumerate() {
                        let (mut keys, mut expires) = (0, 0);
                        d.for_each_live(now, |key, e| {
                            if key.starts_with(prefix) {
                                keys += 1;
                                expires += usize::from(e.expire_at().is_some());
                            }
                        });
                        if keys > 0 {
                            rows.push((i, keys, expires));
                        }
                    }
                    rows
                }
            });
            for (i, keys, expires) in rows {
                line(
                    &format!("db{i}"),
                    &format!("keys={keys},expires={expires},avg_ttl=0"),
                );
            }
        }
        "latencystats" => {
            for (name, c) in sh.cmdstats.used() {
                if let Some(p) = c.latency.percentiles_usec(&[50.0, 99.0, 99.9]) {
                    line(
                        &format!("latency_percentiles_usec_{name}"),
                        &format!("p50={:.3},p99={:.3},p99.9={:.3}", p[0], p[1], p[2]),
                    );
                }
            }
        }
        "commandstats" => {
            for (name, c) in sh.cmdstats.used() {
                let calls = c.calls.load(Ordering::Relaxed);
                let usec = c.usec.load(Ordering::Relaxed);
                let per = if calls > 0 {
                    usec as f64 / calls as f64
                } else {
                    0.0
                };
                line(
                    &format!("cmdstat_{name}"),
                    &format!(
                        "calls={calls},usec={usec},usec_per_call={per:.2},rejected_calls={},failed_calls={}",
                        c.rejected.load(Ordering::Relaxed),
                        c.failed.load(Ordering::Relaxed)
                    ),
                );
            }
        }
        _ => {}
    }
}

fn human(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.2}G", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.2}M", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.2}K", n as f64 / 1024.0),
        n => format!("{n}B"),
    }
}

static MEM_ALLOCATOR: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Names the global allocator for INFO's `mem_allocator`: the binary chooses it, the library
/// cannot see which one it got.
pub fn set_mem_allocator(name: &'static str) {
    let _ = MEM_ALLOCATOR.set(name);
}

/// INFO's `mem_allocator`: as set by the binary, else the system allocator ("libc", as Redis
/// built with MALLOC=libc says).
fn mem_allocator() -> &'static str {
    MEM_ALLOCATOR.get().copied().unwrap_or("libc")
}

/// Resident set size from /proc (Linux); 0 elsewhere.
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map(|pages| pages * 4096)
        .unwrap_or(0)
}

/// (user, system) CPU seconds from /proc/self/stat (Linux, 100 ticks/s); zeros elsewhere.
fn cpu_times() -> (f64, f64) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return (0.0, 0.0);
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) / 100.0;
    (ticks(11), ticks(12))
}
