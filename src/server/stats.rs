//! Server-wide counters (INFO stats, commandstats, /metrics) and the CONFIG GET/SET parameters.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use std::time::Duration;

use crate::command::{CommandSpec, table};
use crate::config::{Config, parse_size};
use crate::metrics::commands::{DurationHistogram, TenantCommands, Verdict};
use crate::policy::tenant::Tenant;

/// Connection-level counters; each also feeds a Prometheus metric.
#[derive(Default)]
pub struct ServerStats {
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub total_commands: AtomicU64,
    pub net_input_bytes: AtomicU64,
    pub net_output_bytes: AtomicU64,
    pub protocol_errors: AtomicU64,
}

impl ServerStats {
    pub fn accepted(&self) {
        self.total_connections.fetch_add(1, Ordering::Relaxed);
        crate::metrics::handles().connections_accepted.increment(1);
    }

    pub fn rejected(&self) {
        self.rejected_connections.fetch_add(1, Ordering::Relaxed);
        crate::metrics::handles().connections_rejected.increment(1);
    }

    /// A client on the TLS listener that did not complete the handshake (plain-text
    /// client, untrusted or missing client certificate, timeout).
    pub fn tls_handshake_failed(&self) {
        crate::metrics::handles()
            .tls_handshake_failures
            .increment(1);
    }

    /// Bytes read from a client.
    pub fn input(&self, n: usize) {
        self.net_input_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Bytes written to a client.
    pub fn output(&self, n: usize) {
        self.net_output_bytes.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// CONFIG RESETSTAT, as Redis's resetServerStats.
    pub fn reset(&self) {
        for counter in [
            &self.total_connections,
            &self.rejected_connections,
            &self.total_commands,
            &self.net_input_bytes,
            &self.net_output_bytes,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    pub fn protocol_error(&self) {
        self.protocol_errors.fetch_add(1, Ordering::Relaxed);
        crate::metrics::handles().protocol_errors.increment(1);
    }
}

/// Per-command calls, time and failures (INFO commandstats), keyed by Redis's full name
/// (`get`, `client|list`). Built once from the command table, so recording is a lookup and
/// three atomic adds — no allocation, no lock.
pub struct CommandStats {
    // FxHash: fixed keys from the command table, looked up once per command.
    stats: Vec<(&'static str, CommandStat)>,
    by_name: rustc_hash::FxHashMap<&'static str, usize>,
    /// The same entries by the address of the table's name string: callers pass the
    /// table's own `&'static str`, so a lookup hashes one integer instead of the name and
    /// compares no bytes (the name lookup was a tenth of a pipelined forwarded command's
    /// CPU).
    by_addr: rustc_hash::FxHashMap<usize, usize>,
    /// Top-level commands' entries by [`table::ordinal`] (no hashing at all).
    by_ordinal: Vec<usize>,
    /// `respgate_commands_total` of clients of no tenant (`tenant=""`).
    untenanted: std::sync::Arc<TenantCommands>,
}

#[derive(Default)]
pub struct CommandStat {
    pub calls: AtomicU64,
    pub usec: AtomicU64,
    pub failed: AtomicU64,
    pub rejected: AtomicU64,
    /// Position in `metrics::commands::command_names` (the per-tenant counters' index).
    index: usize,
    duration: DurationHistogram,
    pub latency: LatencyBuckets,
}

/// Command times in log-linear buckets (8 per power of two of nanoseconds, so within
/// 12.5%), for INFO latencystats' percentiles. Allocated on a command's first call.
#[derive(Default)]
pub struct LatencyBuckets(std::sync::OnceLock<Box<[AtomicU64]>>);

const LATENCY_BUCKETS: usize = 16 + 8 * 44;

impl LatencyBuckets {
    fn index(nanos: u64) -> usize {
        if nanos < 16 {
            return nanos as usize;
        }
        let exp = 63 - nanos.leading_zeros() as usize; // >= 4
        let sub = ((nanos >> (exp - 3)) & 7) as usize;
        (16 + (exp - 4) * 8 + sub).min(LATENCY_BUCKETS - 1)
    }

    /// The smallest time (ns) bucket `i` holds.
    fn lower(i: usize) -> u64 {
        if i < 16 {
            return i as u64;
        }
        let exp = (i - 16) / 8 + 4;
        let sub = ((i - 16) % 8) as u64;
        (8 + sub) << (exp - 3)
    }

    fn record(&self, took: Duration) {
        self.add(Self::bucket_of(took), 1);
    }

    /// The bucket a command that took `took` counts in.
    fn bucket_of(took: Duration) -> usize {
        Self::index(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The given percentiles in microseconds (None before the first call).
    pub fn percentiles_usec(&self, wanted: &[f64]) -> Option<Vec<f64>> {
        let buckets = self.0.get()?;
        let counts: Vec<u64> = buckets.iter().map(|b| b.load(Ordering::Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        Some(
            wanted
                .iter()
                .map(|p| {
                    let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
                    let mut seen = 0;
                    for (i, c) in counts.iter().enumerate() {
                        seen += c;
                        if seen >= rank {
                            return Self::lower(i) as f64 / 1000.0;
                        }
                    }
                    Self::lower(LATENCY_BUCKETS - 1) as f64 / 1000.0
                })
                .collect(),
        )
    }

    /// `n` more calls in bucket `i` (see [`CommandTally`]).
    fn add(&self, i: usize, n: u64) {
        let buckets = self
            .0
            .get_or_init(|| (0..LATENCY_BUCKETS).map(|_| AtomicU64::new(0)).collect());
        if let Some(b) = buckets.get(i) {
            b.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn reset(&self) {
        if let Some(b) = self.0.get() {
            for c in b.iter() {
                c.store(0, Ordering::Relaxed);
            }
        }
    }
}

impl Default for CommandStats {
    fn default() -> Self {
        Self::new()
    }
}

impl CommandStats {
    pub fn new() -> CommandStats {
        let stats: Vec<(&'static str, CommandStat)> = crate::metrics::commands::command_names()
            .enumerate()
            .map(|(index, name)| {
                (
                    name,
                    CommandStat {
                        index,
                        ..CommandStat::default()
                    },
                )
            })
            .collect();
        let by_name = stats
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (*n, i))
            .collect();
        let by_addr = stats
            .iter()
            .enumerate()
            .map(|(i, (n, _))| (n.as_ptr() as usize, i))
            .collect();
        // command_names() lists each command followed by its subcommands.
        let mut by_ordinal = Vec::new();
        let mut at = 0;
        for cmd in table::all() {
            by_ordinal.push(at);
            at += 1 + cmd.subcommands.len();
        }
        CommandStats {
            stats,
            by_name,
            by_addr,
            by_ordinal,
            untenanted: TenantCommands::for_tenant(""),
        }
    }

    /// The entry of `name`: by the string's address when it is the table's, else by value.
    fn stat(&self, name: &'static str) -> Option<&CommandStat> {
        self.index_of(name)
            .and_then(|i| self.stats.get(i))
            .map(|(_, s)| s)
    }

    /// The position of `spec`'s entry: by its place in the table for a top-level command.
    fn index_of_spec(&self, spec: &'static CommandSpec) -> Option<usize> {
        match table::ordinal(spec).and_then(|i| self.by_ordinal.get(i)) {
            // The same string (the table's own), not just an equal one.
            Some(&i)
                if self.stats.get(i).is_some_and(|(n, _)| {
                    n.as_ptr() == spec.name.as_ptr() && n.len() == spec.name.len()
                }) =>
            {
                Some(i)
            }
            _ => self.index_of(spec.name),
        }
    }

    /// The position of `name`'s entry (what a [`CommandTally`] keeps).
    fn index_of(&self, name: &'static str) -> Option<usize> {
        match self.by_addr.get(&(name.as_ptr() as usize)) {
            Some(&i)
                if self
                    .stats
                    .get(i)
                    .is_some_and(|(n, _)| n.len() == name.len()) =>
            {
                Some(i)
            }
            _ => self.by_name.get(name).copied(),
        }
    }

    /// Records one executed command of `tenant`'s client, which took `took` inside respgate.
    pub fn record(
        &self,
        name: &'static str,
        tenant: Option<&Tenant>,
        took: Duration,
        verdict: Verdict,
    ) {
        let Some(s) = self.stat(name) else {
            return;
        };
        s.calls.fetch_add(1, Ordering::Relaxed);
        s.usec.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        if verdict.is_err() {
            s.failed.fetch_add(1, Ordering::Relaxed);
        }
        s.latency.record(took);
        self.record_metrics(s, tenant, took, verdict, 1);
    }

    /// The Prometheus side of one command (when metrics are on): its duration histogram and
    /// its tenant's counter.
    fn record_metrics(
        &self,
        s: &CommandStat,
        tenant: Option<&Tenant>,
        took: Duration,
        verdict: Verdict,
        n: u64,
    ) {
        if crate::metrics::enabled() {
            s.duration.record_many(took, n);
            tenant
                .map_or(&self.untenanted, |t| &t.commands)
                .count_many(s.index, verdict, n);
        }
    }

    /// Records a command refused before running (arity, auth): Redis's `rejected_calls`.
    /// `class` is the refusal's error class (see `metrics::commands::classify_error`).
    pub fn reject(&self, name: &'static str, tenant: Option<&Tenant>, class: usize) {
        let Some(s) = self.stat(name) else {
            return;
        };
        s.rejected.fetch_add(1, Ordering::Relaxed);
        tenant
            .map_or(&self.untenanted, |t| &t.commands)
            .count(s.index, Err(class));
    }

    /// The `respgate_command_duration_seconds` family in Prometheus text format.
    pub fn render_durations(&self, out: &mut String) {
        out.push_str(&format!(
            "# HELP {0} Time from reading a command to having its reply ready, inside respgate\n# TYPE {0} histogram\n",
            crate::metrics::COMMAND_DURATION
        ));
        let mut names: Vec<_> = self.stats.iter().collect();
        names.sort_by_key(|(n, _)| *n);
        names.dedup_by_key(|(n, _)| *n);
        for (name, s) in names {
            s.duration.render(name, out);
        }
    }

    /// Commands called at least once, sorted by name.
    pub fn used(&self) -> Vec<(&'static str, &CommandStat)> {
        let mut v: Vec<_> = self
            .stats
            .iter()
            .filter(|(_, s)| {
                s.calls.load(Ordering::Relaxed) + s.rejected.load(Ordering::Relaxed) > 0
            })
            .map(|(n, s)| (*n, s))
            .collect();
        v.sort_by_key(|(n, _)| *n);
        v
    }

    pub fn reset(&self) {
        for (_, s) in &self.stats {
            s.calls.store(0, Ordering::Relaxed);
            s.usec.store(0, Ordering::Relaxed);
            s.failed.store(0, Ordering::Relaxed);
            s.rejected.store(0, Ordering::Relaxed);
            s.latency.reset();
        }
    }
}

/// Commands one connection ran that are not yet in the shared [`CommandStats`] and
/// `total_commands`. A pipeline's commands are added once per command name when the
/// connection is about to wait (and before it runs any command that shows them), instead of
/// four atomic adds per command: on a pipelined GET those adds (an uncontended locked
/// instruction each) cost more than the lookup itself. Prometheus's per-command histogram
/// and tenant counters are still recorded per command, when metrics are on.
#[derive(Default)]
pub struct CommandTally {
    entries: Vec<TallyEntry>,
    commands: u64,
}

struct TallyEntry {
    stat: usize,
    calls: u64,
    usec: u64,
    failed: u64,
    /// Latency buckets hit and how often; a full list goes to the shared buckets at once.
    buckets: [(u32, u32); TALLY_BUCKETS],
    used_buckets: usize,
}

/// Distinct command names held before the tally adds itself to the shared stats.
const TALLY_ENTRIES: usize = 8;
/// Distinct latency buckets held per command name.
const TALLY_BUCKETS: usize = 8;

impl CommandTally {
    /// One command run (or refused while running) that counts in INFO commandstats.
    pub fn record(
        &mut self,
        stats: &CommandStats,
        spec: &'static CommandSpec,
        tenant: Option<&Tenant>,
        took: Duration,
        verdict: Verdict,
    ) {
        self.commands += 1;
        self.record_forwarded(stats, spec, tenant, took, verdict, 1);
    }

    /// `n` forwarded commands of one name whose replies came (counted in total_commands
    /// when they were sent, see [`CommandTally::count_forwarded`]), each taking `took`,
    /// all with `verdict`. Inlined, so the embedded engine's one call per command
    /// ([`Self::record`]) pays nothing for the count.
    #[inline(always)]
    pub fn record_forwarded(
        &mut self,
        stats: &CommandStats,
        spec: &'static CommandSpec,
        tenant: Option<&Tenant>,
        took: Duration,
        verdict: Verdict,
        n: u64,
    ) {
        let Some(index) = stats.index_of_spec(spec) else {
            return;
        };
        if let Some((_, s)) = stats.stats.get(index) {
            stats.record_metrics(s, tenant, took, verdict, n);
        }
        let at = match self.entries.iter().position(|e| e.stat == index) {
            Some(at) => at,
            None => {
                if self.entries.len() >= TALLY_ENTRIES {
                    self.add_to(stats);
                }
                self.entries.push(TallyEntry {
                    stat: index,
                    calls: 0,
                    usec: 0,
                    failed: 0,
                    buckets: [(0, 0); TALLY_BUCKETS],
                    used_buckets: 0,
                });
                self.entries.len() - 1
            }
        };
        let e = &mut self.entries[at];
        e.calls += n;
        e.usec += (took.as_micros() as u64).saturating_mul(n);
        e.failed += u64::from(verdict.is_err()) * n;
        let bucket = LatencyBuckets::bucket_of(took) as u32;
        let hits = u32::try_from(n).unwrap_or(u32::MAX);
        match e.buckets[..e.used_buckets]
            .iter_mut()
            .find(|(b, _)| *b == bucket)
        {
            Some((_, count)) => *count = count.saturating_add(hits),
            None => {
                if e.used_buckets == TALLY_BUCKETS {
                    e.add_buckets_to(stats);
                }
                e.buckets[e.used_buckets] = (bucket, hits);
                e.used_buckets += 1;
            }
        }
    }

    /// A forwarded command: in total_commands now, in commandstats when its reply comes.
    pub fn count_forwarded(&mut self) {
        self.commands += 1;
    }

    /// [`Self::count_forwarded`] for `n` commands at once.
    pub fn count_forwarded_n(&mut self, n: u64) {
        self.commands += n;
    }

    /// Adds what was tallied to the shared counters and starts again.
    pub fn flush(&mut self, stats: &CommandStats, server: &ServerStats) {
        if self.commands > 0 {
            server
                .total_commands
                .fetch_add(std::mem::take(&mut self.commands), Ordering::Relaxed);
        }
        self.add_to(stats);
    }

    fn add_to(&mut self, stats: &CommandStats) {
        for mut e in self.entries.drain(..) {
            e.add_buckets_to(stats);
            let Some((_, s)) = stats.stats.get(e.stat) else {
                continue;
            };
            s.calls.fetch_add(e.calls, Ordering::Relaxed);
            s.usec.fetch_add(e.usec, Ordering::Relaxed);
            if e.failed > 0 {
                s.failed.fetch_add(e.failed, Ordering::Relaxed);
            }
        }
    }
}

impl TallyEntry {
    fn add_buckets_to(&mut self, stats: &CommandStats) {
        if let Some((_, s)) = stats.stats.get(self.stat) {
            for &(b, n) in &self.buckets[..self.used_buckets] {
                s.latency.add(b as usize, u64::from(n));
            }
        }
        self.used_buckets = 0;
    }
}

/// How a CONFIG parameter's value is checked on CONFIG SET.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Int,
    Memory,
    YesNo,
    Text,
    /// One of a fixed set of words (case-insensitive, stored lowercase).
    OneOf(&'static [&'static str]),
    /// Shown by CONFIG GET, refused by CONFIG SET.
    Immutable,
    /// Redis refuses these at runtime unless enable-protected-configs is set.
    Protected,
}

use super::params_data::PARAMS;

/// Current CONFIG parameter values, with the ones respgate acts on also kept typed.
pub struct Params {
    values: BTreeMap<&'static str, String>,
    pub maxclients: usize,
    pub timeout_secs: u64,
}

/// A CONFIG SET refusal, worded like Redis 7's.
#[derive(Debug, thiserror::Error)]
pub enum ParamError {
    #[error("ERR Unknown option or number of arguments for CONFIG SET - '{0}'")]
    Unknown(String),
    #[error(
        "ERR CONFIG SET failed (possibly related to argument '{0}') - can't set immutable config"
    )]
    Immutable(String),
    #[error("ERR CONFIG SET failed (possibly related to argument '{name}') - {why}")]
    Invalid { name: String, why: String },
}

impl Params {
    pub fn from_config(config: &Config) -> Params {
        let mut values: BTreeMap<&'static str, String> =
            PARAMS.iter().map(|(n, d, _)| (*n, d.to_string())).collect();
        let port = config
            .server
            .listen
            .rsplit_once(':')
            .map(|(host, port)| (host.to_string(), port.to_string()));
        if let Some((host, port)) = port {
            values.insert("bind", host);
            values.insert("port", port);
        }
        let limits = config.parser_limits();
        values.insert("proto-max-bulk-len", limits.max_bulk_len.to_string());
        values.insert(
            "client-query-buffer-limit",
            limits.max_query_buffer.to_string(),
        );
        values.insert("databases", config.embedded.databases.to_string());
        values.insert("hz", config.embedded.hz.to_string());
        values.insert(
            "maxmemory",
            parse_size(&config.embedded.maxmemory)
                .unwrap_or(0)
                .to_string(),
        );
        values.insert("maxmemory-policy", config.embedded.maxmemory_policy.clone());
        values.insert("maxclients", config.server.max_clients.to_string());
        values.insert(
            "slowlog-log-slower-than",
            config.server.slowlog_log_slower_than.to_string(),
        );
        values.insert("slowlog-max-len", config.server.slowlog_max_len.to_string());
        let timeout = crate::config::parse_duration(&config.server.timeout)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        values.insert("timeout", timeout.to_string());
        if let Some(p) = &config.server.requirepass {
            values.insert("requirepass", p.clone());
        }
        Params {
            values,
            maxclients: config.server.max_clients,
            timeout_secs: timeout,
        }
    }

    /// (name, value) pairs whose name matches any of the glob patterns, sorted by name.
    pub fn get(&self, patterns: &[&[u8]]) -> Vec<(&'static str, String)> {
        self.values
            .iter()
            .filter(|(n, _)| {
                patterns
                    .iter()
                    .any(|p| crate::glob::glob_match(p, n.as_bytes(), true))
            })
            .map(|(n, v)| (*n, v.clone()))
            .collect()
    }

    /// Checks one CONFIG SET pair without applying it; returns the canonical name and value.
    pub fn check(&self, name: &[u8], value: &[u8]) -> Result<(&'static str, String), ParamError> {
        let lname = String::from_utf8_lossy(name).to_ascii_lowercase();
        let Some((pname, _, kind)) = PARAMS.iter().find(|(n, _, _)| *n == lname) else {
            return Err(ParamError::Unknown(
                String::from_utf8_lossy(name).into_owned(),
            ));
        };
        let v = String::from_utf8_lossy(value).into_owned();
        let invalid = |why: String| ParamError::Invalid {
            name: pname.to_string(),
            why,
        };
        let canonical = match kind {
            Kind::Immutable => return Err(ParamError::Immutable(pname.to_string())),
            Kind::Protected => return Err(invalid("can't set protected config".into())),
            Kind::Int => v
                .parse::<i64>()
                .map_err(|_| invalid("argument couldn't be parsed into an integer".into()))?
                .to_string(),
            Kind::Memory => parse_size(&v)
                .map_err(|_| invalid("argument must be a memory value".into()))?
                .to_string(),
            Kind::YesNo => match v.to_ascii_lowercase().as_str() {
                "yes" | "no" => v.to_ascii_lowercase(),
                _ => return Err(invalid("argument must be 'yes' or 'no'".into())),
            },
            Kind::Text => v,
            Kind::OneOf(words) => {
                let lower = v.to_ascii_lowercase();
                if !words.contains(&lower.as_str()) {
                    return Err(invalid(format!(
                        "argument(s) must be one of the following: {}",
                        words.join(", ")
                    )));
                }
                lower
            }
        };
        if *pname == "maxclients" && canonical.parse::<i64>().unwrap_or(0) < 1 {
            return Err(invalid(
                "argument must be between 1 and 4294967295 inclusive".into(),
            ));
        }
        if *pname == "timeout" && canonical.parse::<i64>().unwrap_or(-1) < 0 {
            return Err(invalid(
                "argument must be between 0 and 2147483647 inclusive".into(),
            ));
        }
        Ok((pname, canonical))
    }

    /// Applies pairs already accepted by [`Params::check`].
    pub fn apply(&mut self, name: &'static str, value: String) {
        match name {
            "maxclients" => self.maxclients = value.parse().unwrap_or(self.maxclients),
            "timeout" => self.timeout_secs = value.parse().unwrap_or(self.timeout_secs),
            _ => {}
        }
        // Redis keeps one value under two names (old `slave`/`ziplist` spellings); setting
        // either must show under both.
        if let Some(twin) = alias_twin(name) {
            self.values.insert(twin, value.clone());
        }
        self.values.insert(name, value);
    }
}

/// Pairs of names Redis 7.0 treats as one parameter (alias, canonical).
const ALIASES: &[(&str, &str)] = &[
    ("slave-read-only", "replica-read-only"),
    ("slave-serve-stale-data", "replica-serve-stale-data"),
    ("slave-ignore-maxmemory", "replica-ignore-maxmemory"),
    ("slave-lazy-flush", "replica-lazy-flush"),
    ("slave-priority", "replica-priority"),
    ("slave-announce-ip", "replica-announce-ip"),
    ("slave-announce-port", "replica-announce-port"),
    ("repl-ping-slave-period", "repl-ping-replica-period"),
    (
        "cluster-slave-validity-factor",
        "cluster-replica-validity-factor",
    ),
    ("cluster-slave-no-failover", "cluster-replica-no-failover"),
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
    ("list-max-ziplist-size", "list-max-listpack-size"),
    ("zset-max-ziplist-entries", "zset-max-listpack-entries"),
    ("zset-max-ziplist-value", "zset-max-listpack-value"),
    ("slaveof", "replicaof"),
    ("min-slaves-to-write", "min-replicas-to-write"),
    ("min-slaves-max-lag", "min-replicas-max-lag"),
];

/// The other name of an aliased parameter, as stored in [`PARAMS`].
fn alias_twin(name: &str) -> Option<&'static str> {
    ALIASES.iter().find_map(|(a, c)| {
        let twin = if *a == name {
            *c
        } else if *c == name {
            *a
        } else {
            return None;
        };
        PARAMS.iter().map(|(n, _, _)| *n).find(|n| *n == twin)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_keep_percentiles_within_an_eighth() {
        for nanos in [0u64, 1, 15, 16, 17, 1000, 6015, 123_456, 10_000_000_000] {
            let i = LatencyBuckets::index(nanos);
            let lower = LatencyBuckets::lower(i);
            assert!(lower <= nanos, "{nanos}: {lower}");
            assert!(nanos - lower <= nanos / 8, "{nanos}: {lower}");
        }
        let b = LatencyBuckets::default();
        assert_eq!(b.percentiles_usec(&[50.0]), None);
        for us in 1..=100u64 {
            b.record(Duration::from_micros(us));
        }
        let p = b.percentiles_usec(&[50.0, 99.0]).unwrap_or_default();
        assert!((44.0..=50.0).contains(&p[0]), "{p:?}");
        assert!((87.0..=99.0).contains(&p[1]), "{p:?}");
    }
}
