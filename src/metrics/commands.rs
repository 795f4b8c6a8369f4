//! Per-command metrics: `respgate_commands_total{command, tenant, result}` and the
//! `respgate_command_duration_seconds{command}` histogram.
//!
//! Every label comes from a bounded set: command names from the table, tenants from the
//! config, and `result` is `ok` or one of [`ERROR_CLASSES`] (the error's first word, as
//! Redis's errorstats groups them). Handles are resolved on a command's first use and then
//! kept, so recording is a map lookup and an atomic add.

use std::sync::OnceLock;
use std::time::Duration;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::command::table;

pub const COMMANDS: &str = "respgate_commands_total";
pub const COMMAND_DURATION: &str = "respgate_command_duration_seconds";

/// The `result` label of a failed command: the error's first word, lowercased. Errors whose
/// first word is not one of these (a backend module's own, say) count as `other`.
pub const ERROR_CLASSES: [&str; 22] = [
    "err",
    "wrongtype",
    "noperm",
    "noauth",
    "noscript",
    "crossslot",
    "execabort",
    "oom",
    "busy",
    "busykey",
    "loading",
    "readonly",
    "masterdown",
    "clusterdown",
    "tryagain",
    "moved",
    "ask",
    "noreplicas",
    "unblocked",
    "nogroup",
    "noproto",
    "other",
];

/// Index of `other` in [`ERROR_CLASSES`].
const OTHER: usize = ERROR_CLASSES.len() - 1;

/// How a command ended: `Ok(())`, or `Err(index into ERROR_CLASSES)`.
pub type Verdict = Result<(), usize>;

/// The class of an error reply's text (without the leading `-`), e.g. `WRONGTYPE Operation...`.
pub fn classify_error(text: &[u8]) -> usize {
    let word_len = text
        .iter()
        .position(|&b| b == b' ' || b == b'\r')
        .unwrap_or(text.len());
    let word = &text[..word_len];
    ERROR_CLASSES
        .iter()
        .position(|c| c.as_bytes().eq_ignore_ascii_case(word))
        .unwrap_or(OTHER)
}

/// The verdict of an encoded reply: an error (`-...` or RESP3's `!<len>\r\n...`) or not.
pub fn verdict_of_encoded(reply: &[u8]) -> Verdict {
    match reply.first() {
        Some(b'-') => Err(classify_error(&reply[1..])),
        Some(b'!') => {
            let body = reply
                .iter()
                .position(|&b| b == b'\n')
                .map_or(&[][..], |nl| &reply[nl + 1..]);
            Err(classify_error(body))
        }
        _ => Ok(()),
    }
}

/// Every command and subcommand name of the table, in a fixed order: a command's position
/// here is its index into each tenant's counts (no second hash lookup per command).
pub fn command_names() -> impl Iterator<Item = &'static str> {
    table::all()
        .iter()
        .flat_map(|cmd| std::iter::once(cmd.name).chain(cmd.subcommands.iter().map(|s| s.name)))
}

/// One command's counts for one tenant.
#[derive(Default)]
struct ResultCounters {
    ok: AtomicU64,
    // Most commands never fail: their error counts are not even allocated.
    errors: OnceLock<Box<[AtomicU64; ERROR_CLASSES.len()]>>,
}

/// `respgate_commands_total` of one tenant (`""`: clients of no tenant), indexed as
/// [`command_names`]: plain atomics, rendered at scrape time by [`render_commands`] (the
/// exporter's counters track recency on every increment, a measurable share of a
/// pipelined command). One per tenant name for the process's life, so a reload that
/// rebuilds the tenants keeps their counts.
pub struct TenantCommands {
    tenant: String,
    by_index: Vec<ResultCounters>,
}

impl std::fmt::Debug for TenantCommands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TenantCommands({})", self.tenant)
    }
}

/// Every tenant's counts by tenant name.
fn registry() -> &'static parking_lot::Mutex<std::collections::BTreeMap<String, Arc<TenantCommands>>>
{
    static R: OnceLock<
        parking_lot::Mutex<std::collections::BTreeMap<String, Arc<TenantCommands>>>,
    > = OnceLock::new();
    R.get_or_init(Default::default)
}

/// The table's names in [`command_names`] order, for rendering.
fn names() -> &'static [&'static str] {
    static N: OnceLock<Vec<&'static str>> = OnceLock::new();
    N.get_or_init(|| command_names().collect())
}

impl TenantCommands {
    /// The counts of `tenant` (created on first use, then shared).
    pub fn for_tenant(tenant: &str) -> Arc<TenantCommands> {
        registry()
            .lock()
            .entry(tenant.to_string())
            .or_insert_with(|| {
                Arc::new(TenantCommands {
                    tenant: tenant.to_string(),
                    by_index: command_names().map(|_| ResultCounters::default()).collect(),
                })
            })
            .clone()
    }

    /// Counts one command (`index`: its position in [`command_names`]) that ended so.
    pub fn count(&self, index: usize, verdict: Verdict) {
        self.count_many(index, verdict, 1);
    }

    /// [`Self::count`] for `n` commands with the same verdict.
    pub fn count_many(&self, index: usize, verdict: Verdict, n: u64) {
        let Some(c) = self.by_index.get(index) else {
            return;
        };
        match verdict {
            Ok(()) => c.ok.fetch_add(n, Ordering::Relaxed),
            Err(class) => c.errors.get_or_init(Default::default)[class.min(OTHER)]
                .fetch_add(n, Ordering::Relaxed),
        };
    }

    fn render(&self, out: &mut String) {
        use std::fmt::Write;
        let line = |out: &mut String, name: &str, result: &str, n: u64| {
            let _ = writeln!(
                out,
                "{COMMANDS}{{command=\"{name}\",tenant=\"{}\",result=\"{result}\"}} {n}",
                self.tenant
            );
        };
        for (c, name) in self.by_index.iter().zip(names()) {
            let ok = c.ok.load(Ordering::Relaxed);
            if ok > 0 {
                line(out, name, "ok", ok);
            }
            if let Some(errors) = c.errors.get() {
                for (e, class) in errors.iter().zip(ERROR_CLASSES) {
                    let n = e.load(Ordering::Relaxed);
                    if n > 0 {
                        line(out, name, class, n);
                    }
                }
            }
        }
    }
}

/// Appends the `respgate_commands_total` family.
pub fn render_commands(out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP {COMMANDS} Commands executed, by command, tenant and result (ok or the error's class)\n# TYPE {COMMANDS} counter"
    );
    let tenants: Vec<Arc<TenantCommands>> = registry().lock().values().cloned().collect();
    for t in tenants {
        t.render(out);
    }
}

/// `respgate_command_duration_seconds{command}`: a fixed-bucket histogram of atomics kept
/// by respgate itself and rendered at scrape time ([`DurationHistogram::render`]). A command
/// costs a short bucket search and three atomic adds; the exporter's own histograms queue
/// every sample, which cost several times more per command.
pub struct DurationHistogram {
    /// Per bucket of [`super::LATENCY_BUCKETS`] (not cumulative), then +Inf.
    buckets: [std::sync::atomic::AtomicU64; super::LATENCY_BUCKETS.len() + 1],
    sum_nanos: std::sync::atomic::AtomicU64,
}

impl Default for DurationHistogram {
    fn default() -> Self {
        DurationHistogram {
            buckets: std::array::from_fn(|_| std::sync::atomic::AtomicU64::new(0)),
            sum_nanos: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

/// The bucket bounds in nanoseconds.
const BOUND_NANOS: [u64; super::LATENCY_BUCKETS.len()] = {
    let mut out = [0u64; super::LATENCY_BUCKETS.len()];
    let mut i = 0;
    while i < out.len() {
        // 10 µs .. 10 s; exact in f64 and in ns.
        out[i] = (super::LATENCY_BUCKETS[i] * 1e9) as u64;
        i += 1;
    }
    out
};

impl DurationHistogram {
    pub fn record(&self, took: Duration) {
        self.record_many(took, 1);
    }

    /// Records `n` samples of the same time.
    pub fn record_many(&self, took: Duration, n: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUND_NANOS.partition_point(|&b| b < nanos);
        self.buckets[i].fetch_add(n, Relaxed);
        self.sum_nanos.fetch_add(nanos.saturating_mul(n), Relaxed);
    }

    /// Appends this command's `_bucket`, `_sum` and `_count` lines (nothing before its
    /// first call).
    pub fn render(&self, name: &str, out: &mut String) {
        self.render_as(COMMAND_DURATION, "command", name, out)
    }

    /// Appends `family`'s `_bucket`, `_sum` and `_count` lines for the series
    /// `{label="value"}` (nothing before the first sample).
    pub fn render_as(&self, family: &str, label: &str, value: &str, out: &mut String) {
        use std::fmt::Write;
        use std::sync::atomic::Ordering::Relaxed;
        let counts: Vec<u64> = self.buckets.iter().map(|b| b.load(Relaxed)).collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return;
        }
        let mut cumulative = 0;
        for (i, c) in counts.iter().enumerate() {
            cumulative += c;
            let le = match super::LATENCY_BUCKETS.get(i) {
                Some(b) => b.to_string(),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "{family}_bucket{{{label}=\"{value}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let sum = self.sum_nanos.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{family}_sum{{{label}=\"{value}\"}} {sum}");
        let _ = writeln!(out, "{family}_count{{{label}=\"{value}\"}} {cumulative}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_histogram_renders_cumulative_buckets() {
        let h = DurationHistogram::default();
        let mut out = String::new();
        h.render("get", &mut out);
        assert!(out.is_empty());
        h.record(Duration::from_micros(5));
        h.record(Duration::from_micros(10));
        h.record(Duration::from_millis(3));
        h.record(Duration::from_secs(20));
        h.render("get", &mut out);
        assert!(
            out.contains("_bucket{command=\"get\",le=\"0.00001\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("_bucket{command=\"get\",le=\"0.005\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("_bucket{command=\"get\",le=\"10\"} 3\n"),
            "{out}"
        );
        assert!(
            out.contains("_bucket{command=\"get\",le=\"+Inf\"} 4\n"),
            "{out}"
        );
        assert!(out.contains("_count{command=\"get\"} 4\n"), "{out}");
    }

    #[test]
    fn errors_are_classed_by_their_first_word() {
        let class = |s: &[u8]| ERROR_CLASSES[classify_error(s)];
        assert_eq!(
            class(b"WRONGTYPE Operation against a key holding the wrong kind of value"),
            "wrongtype"
        );
        assert_eq!(class(b"ERR syntax error"), "err");
        assert_eq!(class(b"MOVED 3999 127.0.0.1:6381"), "moved");
        assert_eq!(class(b"NOPERM this user has no permissions"), "noperm");
        assert_eq!(class(b"SOMETHINGNEW happened"), "other");
        assert_eq!(class(b""), "other");
        assert_eq!(verdict_of_encoded(b"+OK\r\n"), Ok(()));
        assert_eq!(
            verdict_of_encoded(b"-OOM command not allowed\r\n").map_err(|c| ERROR_CLASSES[c]),
            Err("oom")
        );
        assert_eq!(
            verdict_of_encoded(b"!21\r\nSYNTAX invalid syntax\r\n").map_err(|c| ERROR_CLASSES[c]),
            Err("other")
        );
        assert_eq!(
            verdict_of_encoded(b"!9\r\nERR oops!\r\n").map_err(|c| ERROR_CLASSES[c]),
            Err("err")
        );
    }
}
