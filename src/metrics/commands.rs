//! Per-command metrics: `respgate_commands_total{command, tenant, result}` and the
//! `respgate_command_duration_seconds{command}` histogram.
//!
//! Every label comes from a bounded set: command names from the table, tenants from the
//! config, and `result` is `ok` or one of [`ERROR_CLASSES`] (the error's first word, as
//! Redis's errorstats groups them). Handles are resolved on a command's first use and then
//! kept, so recording is a map lookup and an atomic add.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Histogram, counter, histogram};

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

/// One command's counters for one tenant.
#[derive(Default)]
struct ResultCounters {
    ok: OnceLock<Counter>,
    // Most commands never fail: their error handles are not even allocated.
    errors: OnceLock<Box<[OnceLock<Counter>; ERROR_CLASSES.len()]>>,
}

/// Every command and subcommand name of the table, in a fixed order: a command's position
/// here is its index into each tenant's counters (no second hash lookup per command).
pub fn command_names() -> impl Iterator<Item = &'static str> {
    table::all()
        .iter()
        .flat_map(|cmd| std::iter::once(cmd.name).chain(cmd.subcommands.iter().map(|s| s.name)))
}

/// `respgate_commands_total` handles of one tenant (`""`: clients of no tenant), indexed
/// as [`command_names`].
pub struct TenantCommands {
    tenant: String,
    by_index: Vec<ResultCounters>,
}

impl std::fmt::Debug for TenantCommands {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TenantCommands({})", self.tenant)
    }
}

impl TenantCommands {
    pub fn new(tenant: &str) -> TenantCommands {
        TenantCommands {
            tenant: tenant.to_string(),
            by_index: command_names().map(|_| ResultCounters::default()).collect(),
        }
    }

    /// Counts one command `name` (a table name: `get`, `client|list`; `index` its position
    /// in [`command_names`]) that ended so.
    pub fn count(&self, index: usize, name: &'static str, verdict: Verdict) {
        let Some(c) = self.by_index.get(index) else {
            return;
        };
        let counter = match verdict {
            Ok(()) => c.ok.get_or_init(|| self.counter(name, "ok")),
            Err(class) => {
                let errors = c.errors.get_or_init(Default::default);
                let class = class.min(OTHER);
                errors[class].get_or_init(|| self.counter(name, ERROR_CLASSES[class]))
            }
        };
        counter.increment(1);
    }

    fn counter(&self, name: &'static str, result: &'static str) -> Counter {
        counter!(COMMANDS, "command" => name, "tenant" => self.tenant.clone(), "result" => result)
    }
}

/// `respgate_command_duration_seconds{command}`, resolved on the command's first use.
#[derive(Default)]
pub struct DurationHistogram(OnceLock<Histogram>);

impl DurationHistogram {
    pub fn record(&self, name: &'static str, took: Duration) {
        self.0
            .get_or_init(|| histogram!(COMMAND_DURATION, "command" => name))
            .record(took.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
