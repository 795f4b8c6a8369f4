//! TTL policy, pure: a tenant's `[[tenants.ttl]]` rules compiled, which rule a key falls
//! under, what a write asks for a key's TTL ([`Effect`]), what it will leave behind
//! ([`predict`]), whether that must be refused before it runs ([`refusal`]), and what must be
//! done after it ran ([`after`]).
//!
//! The engine calls these around one write under its lock (see
//! `backend::embedded::ttl`): refusals are decided before the write, defaults and clamps are
//! applied after it as `PEXPIRE key ms NX` / `PEXPIRE key ms LT` in the same batch, so no
//! other client ever sees the key without its TTL and an existing TTL is never lengthened.
//!
//! Decisions, per rule (`mode`):
//! * `default_ttl`: a write that leaves the key without a TTL although it did not exist before,
//!   or had a TTL before (SET without KEEPTTL, a `*STORE` overwrite), gets the default — in
//!   clamp and reject modes. An explicit PERSIST / GETEX PERSIST is honoured unless
//!   `require_ttl` is set.
//! * `max_ttl`: a TTL this write set (or copied: COPY, RENAME, RESTORE) that is longer is
//!   shortened (clamp), refused (reject) or recorded (audit). A TTL the key already had is
//!   never touched.
//! * `require_ttl`: a write that leaves the key without a TTL gets default_ttl (or max_ttl) in
//!   clamp mode — an explicit PERSIST gets its old TTL back instead —, is refused in reject
//!   mode, recorded in audit mode.
//! * `audit` never changes anything: it records what clamp would have done.

use std::sync::OnceLock;

use bytes::Bytes;
use metrics::Counter;

use crate::config::{TtlMode, TtlRuleConfig, parse_duration};
use crate::glob::glob_match;

/// Why a rule could not be compiled (config validation catches these first).
#[derive(Debug, thiserror::Error)]
pub enum TtlRuleError {
    #[error("ttl[{index}].{field}: {message}")]
    Invalid {
        index: usize,
        field: &'static str,
        message: String,
    },
}

/// What the policy did; the `action` label of `respgate_ttl_policy_actions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    DefaultApplied,
    Clamped,
    Rejected,
    Audited,
}

impl Action {
    pub const ALL: [Action; 4] = [
        Action::DefaultApplied,
        Action::Clamped,
        Action::Rejected,
        Action::Audited,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Action::DefaultApplied => "default_applied",
            Action::Clamped => "clamped",
            Action::Rejected => "rejected",
            Action::Audited => "audited",
        }
    }
}

/// One compiled `[[tenants.ttl]]` rule.
#[derive(Debug)]
pub struct TtlRule {
    pub pattern: String,
    pub default_ms: Option<u64>,
    pub max_ms: Option<u64>,
    /// max_ttl as configured ("1h"), for the rejection text.
    pub max_text: String,
    pub require: bool,
    pub mode: TtlMode,
    /// `respgate_ttl_policy_actions_total{tenant, rule, action}`, one handle per action,
    /// resolved on first use (after the exporter is installed), labels from config only.
    counters: [OnceLock<Counter>; 4],
}

impl TtlRule {
    pub fn compile(index: usize, c: &TtlRuleConfig) -> Result<TtlRule, TtlRuleError> {
        let ms = |field: &'static str, v: &Option<String>| -> Result<Option<u64>, TtlRuleError> {
            v.as_deref()
                .map(|s| {
                    parse_duration(s)
                        .map(|d| d.as_millis() as u64)
                        .map_err(|message| TtlRuleError::Invalid {
                            index,
                            field,
                            message,
                        })
                })
                .transpose()
        };
        Ok(TtlRule {
            pattern: c.pattern.clone(),
            default_ms: ms("default_ttl", &c.default_ttl)?,
            max_ms: ms("max_ttl", &c.max_ttl)?,
            max_text: c.max_ttl.clone().unwrap_or_default(),
            require: c.require_ttl,
            mode: c.mode,
            counters: Default::default(),
        })
    }

    /// The TTL given to a key that would otherwise have none: default_ttl, else max_ttl.
    pub fn fallback_ms(&self) -> Option<u64> {
        self.default_ms.or(self.max_ms)
    }

    /// Counts one action of this rule for `tenant`.
    pub fn count(&self, tenant: &str, action: Action) {
        let i = Action::ALL.iter().position(|a| *a == action).unwrap_or(0);
        self.counters[i]
            .get_or_init(|| {
                metrics::counter!(
                    crate::metrics::TTL_POLICY_ACTIONS,
                    "tenant" => tenant.to_string(),
                    "rule" => self.pattern.clone(),
                    "action" => action.label(),
                )
            })
            .increment(1);
    }

    /// `-ERR respgate: TTL policy <pattern> requires a TTL for key '<key>'`.
    pub fn requires_text(&self, key: &[u8]) -> String {
        format!(
            "ERR respgate: TTL policy {} requires a TTL for key '{}'",
            self.pattern,
            String::from_utf8_lossy(key)
        )
    }

    /// `-ERR respgate: TTL policy <pattern> allows at most <max_ttl> for key '<key>'`.
    pub fn at_most_text(&self, key: &[u8]) -> String {
        format!(
            "ERR respgate: TTL policy {} allows at most {} for key '{}'",
            self.pattern,
            self.max_text,
            String::from_utf8_lossy(key)
        )
    }
}

/// A tenant's rules, in config order.
#[derive(Debug, Default)]
pub struct TtlRules {
    rules: Vec<TtlRule>,
}

impl TtlRules {
    pub fn compile(configs: &[TtlRuleConfig]) -> Result<TtlRules, TtlRuleError> {
        let rules = configs
            .iter()
            .enumerate()
            .map(|(i, c)| TtlRule::compile(i, c))
            .collect::<Result<_, _>>()?;
        Ok(TtlRules { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The first rule whose pattern matches `key` (without the tenant prefix).
    pub fn rule_for(&self, key: &[u8]) -> Option<&TtlRule> {
        self.rules
            .iter()
            .find(|r| glob_match(r.pattern.as_bytes(), key, false))
    }
}

/// A key's TTL state at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    Missing,
    Persistent,
    /// Expires at this unix time in ms.
    Expires(u64),
}

/// EXPIRE's NX / XX / GT / LT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    Always,
    Nx,
    Xx,
    Gt,
    Lt,
}

/// What a write asks of one key's TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A new value with this TTL (SET/SETEX/PSETEX/RESTORE): `at` None = no TTL, and
    /// `keep` = KEEPTTL. `nx`/`xx`: SET's conditions.
    Value {
        at: Option<i64>,
        keep: bool,
        nx: bool,
        xx: bool,
    },
    /// The EXPIRE family and GETEX EX/PX/EXAT/PXAT: an absolute time in ms (<= now deletes).
    Expire { at: i64, cond: Cond },
    /// PERSIST, GETEX PERSIST: the TTL removed on request.
    Persist,
    /// COPY / RENAME / RENAMENX destination: gets the source's TTL (argv index of the source);
    /// `keeps_existing`: COPY without REPLACE and RENAMENX leave an existing destination alone.
    CopyFrom { source: usize, keeps_existing: bool },
    /// Any other write: `overwrite` replaces the value (key spec OW: TTL dropped), `creates`
    /// may create the key without a TTL.
    Write { overwrite: bool, creates: bool },
}

/// Key-spec flags of the key, as the command table names them ("RW", "insert" ...).
fn has(flags: &[&str], f: &str) -> bool {
    flags.iter().any(|x| x.eq_ignore_ascii_case(f))
}

/// Parses a TTL argument to an absolute ms time; None when it is not a valid number (the
/// command will fail with its own error).
fn abs_ms(unit: &[u8], value: &[u8], now: u64) -> Option<i64> {
    let n: i64 = std::str::from_utf8(value).ok()?.parse().ok()?;
    let now = now as i64;
    let u = unit.to_ascii_lowercase();
    match u.as_slice() {
        b"ex" | b"expire" | b"setex" => Some(now.saturating_add(n.saturating_mul(1000))),
        b"px" | b"pexpire" | b"psetex" => Some(now.saturating_add(n)),
        b"exat" | b"expireat" => Some(n.saturating_mul(1000)),
        b"pxat" | b"pexpireat" => Some(n),
        _ => None,
    }
}

/// What `argv` (command `name`, already namespaced) does to the TTL of the key at `pos`,
/// whose key-spec flags are `flags`. `now` is the engine's clock in ms.
pub fn effect(name: &str, argv: &[Bytes], pos: usize, flags: &[&str], now: u64) -> Effect {
    let upper = |i: usize| argv.get(i).map(|a| a.to_ascii_lowercase());
    match name {
        "set" => {
            let (mut at, mut keep, mut nx, mut xx) = (None, false, false, false);
            let mut i = 3;
            while let Some(opt) = upper(i) {
                match opt.as_slice() {
                    b"ex" | b"px" | b"exat" | b"pxat" => {
                        at = argv.get(i + 1).and_then(|v| abs_ms(&opt, v, now));
                        i += 1;
                    }
                    b"keepttl" => keep = true,
                    b"nx" => nx = true,
                    b"xx" => xx = true,
                    _ => {}
                }
                i += 1;
            }
            Effect::Value { at, keep, nx, xx }
        }
        // GETSET is SET ... GET: the TTL goes.
        "getset" => Effect::Value {
            at: None,
            keep: false,
            nx: false,
            xx: false,
        },
        "setex" | "psetex" => Effect::Value {
            at: argv.get(2).and_then(|v| abs_ms(name.as_bytes(), v, now)),
            keep: false,
            nx: false,
            xx: false,
        },
        "restore" | "restore-asking" => {
            let absttl = argv
                .iter()
                .skip(4)
                .any(|a| a.eq_ignore_ascii_case(b"absttl"));
            let ttl: Option<i64> = argv
                .get(2)
                .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
            let at = match ttl {
                Some(0) | None => None,
                Some(t) if absttl => Some(t),
                Some(t) => Some((now as i64).saturating_add(t)),
            };
            Effect::Value {
                at,
                keep: false,
                nx: false,
                xx: false,
            }
        }
        "expire" | "pexpire" | "expireat" | "pexpireat" => {
            let cond = match upper(3).as_deref() {
                Some(b"nx") => Cond::Nx,
                Some(b"xx") => Cond::Xx,
                Some(b"gt") => Cond::Gt,
                Some(b"lt") => Cond::Lt,
                _ => Cond::Always,
            };
            match argv.get(2).and_then(|v| abs_ms(name.as_bytes(), v, now)) {
                Some(at) => Effect::Expire { at, cond },
                // Not a number: the command fails without writing.
                None => Effect::Write {
                    overwrite: false,
                    creates: false,
                },
            }
        }
        "getex" => match upper(2) {
            Some(opt) if opt.as_slice() == b"persist" => Effect::Persist,
            Some(opt) => match argv.get(3).and_then(|v| abs_ms(&opt, v, now)) {
                Some(at) => Effect::Expire {
                    at,
                    cond: Cond::Always,
                },
                None => Effect::Write {
                    overwrite: false,
                    creates: false,
                },
            },
            None => Effect::Write {
                overwrite: false,
                creates: false,
            },
        },
        "persist" => Effect::Persist,
        "copy" | "rename" | "renamenx" if pos == 2 => Effect::CopyFrom {
            source: 1,
            keeps_existing: name == "renamenx"
                || (name == "copy"
                    && !argv
                        .iter()
                        .skip(3)
                        .any(|a| a.eq_ignore_ascii_case(b"replace"))),
        },
        // Key specs say what a command may do to a key, not whether it needs the key to
        // exist: these write only into a key that is already there (or fail).
        "lpushx"
        | "rpushx"
        | "lset"
        | "linsert"
        | "xack"
        | "xclaim"
        | "xsetid"
        | "xgroup|setid"
        | "xgroup|createconsumer"
        | "pfdebug" => Effect::Write {
            overwrite: false,
            creates: false,
        },
        "xgroup|create" => Effect::Write {
            overwrite: false,
            creates: argv.iter().any(|a| a.eq_ignore_ascii_case(b"mkstream")),
        },
        // Redis 7.0 flags SINTERSTORE's destination RW, but it replaces it like SUNIONSTORE.
        "sinterstore" => Effect::Write {
            overwrite: true,
            creates: true,
        },
        _ => {
            let removes = has(flags, "RM") || (has(flags, "delete") && !has(flags, "insert"));
            Effect::Write {
                overwrite: has(flags, "OW"),
                creates: !removes && !has(flags, "RO"),
            }
        }
    }
}

/// Would EXPIRE with `cond` set `at` on a key in state `before`?
fn expire_applies(cond: Cond, before: KeyState, at: i64) -> bool {
    match (cond, before) {
        (_, KeyState::Missing) => false,
        (Cond::Always, _) => true,
        (Cond::Nx, s) => s == KeyState::Persistent,
        (Cond::Xx, s) => s != KeyState::Persistent,
        // A key without TTL counts as an infinite TTL.
        (Cond::Gt, KeyState::Persistent) => false,
        (Cond::Gt, KeyState::Expires(c)) => at > c as i64,
        (Cond::Lt, KeyState::Persistent) => true,
        (Cond::Lt, KeyState::Expires(c)) => at < c as i64,
    }
}

/// The key's state after the write, as far as can be told before it runs. `source` is the
/// state of the CopyFrom source key. A write that fails (wrong type, bad syntax) is predicted
/// as if it succeeded: reject mode may refuse a command that would have failed anyway.
pub fn predict(effect: &Effect, before: KeyState, source: KeyState, now: u64) -> KeyState {
    let expiring = |at: i64| {
        if at <= now as i64 {
            KeyState::Missing
        } else {
            KeyState::Expires(at as u64)
        }
    };
    match *effect {
        Effect::Value { at, keep, nx, xx } => {
            if (nx && before != KeyState::Missing) || (xx && before == KeyState::Missing) {
                return before;
            }
            match (at, keep) {
                (_, true) if before != KeyState::Missing => before,
                (Some(at), _) => expiring(at),
                _ => KeyState::Persistent,
            }
        }
        Effect::Expire { at, cond } => {
            if expire_applies(cond, before, at) {
                expiring(at)
            } else {
                before
            }
        }
        Effect::Persist => match before {
            KeyState::Expires(_) => KeyState::Persistent,
            s => s,
        },
        Effect::CopyFrom { keeps_existing, .. } => match source {
            KeyState::Missing => before,
            _ if keeps_existing && before != KeyState::Missing => before,
            s => s,
        },
        Effect::Write { overwrite, creates } => match before {
            KeyState::Missing if creates => KeyState::Persistent,
            KeyState::Expires(_) if overwrite => KeyState::Persistent,
            s => s,
        },
    }
}

/// What the rule makes of a write that takes the key from `before` to `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Fine,
    /// The write left the key without a TTL where it is required or defaulted.
    NoTtl,
    /// The write set a TTL longer than max_ttl (ms remaining).
    TooLong,
}

/// Judges one transition. `explicit_persist`: the command asked for the TTL to go (PERSIST,
/// GETEX PERSIST), which only `require_ttl` forbids.
pub fn verdict(
    rule: &TtlRule,
    before: KeyState,
    after: KeyState,
    explicit_persist: bool,
    now: u64,
) -> Verdict {
    match after {
        KeyState::Expires(at) if after != before => match rule.max_ms {
            Some(max) if at.saturating_sub(now) > max => Verdict::TooLong,
            _ => Verdict::Fine,
        },
        // The key was without TTL before this write: not its doing.
        KeyState::Persistent if before != KeyState::Persistent => {
            if rule.require || (rule.default_ms.is_some() && !explicit_persist) {
                Verdict::NoTtl
            } else {
                Verdict::Fine
            }
        }
        _ => Verdict::Fine,
    }
}

/// Must the write be refused before it runs? Reject mode refuses what it predicts breaks the
/// rule; so does clamp mode for a required TTL it has nothing to give (no default_ttl, no
/// max_ttl). Returns the error text.
pub fn refusal(rule: &TtlRule, key: &[u8], predicted: Verdict) -> Option<String> {
    let refuses = match rule.mode {
        TtlMode::Reject => true,
        TtlMode::Clamp => predicted == Verdict::NoTtl && rule.fallback_ms().is_none(),
        TtlMode::Audit => false,
    };
    if !refuses {
        return None;
    }
    match predicted {
        Verdict::Fine => None,
        // Reject mode with a default but no require: the default is applied, not refused.
        Verdict::NoTtl if !rule.require => None,
        Verdict::NoTtl => Some(rule.requires_text(key)),
        Verdict::TooLong => Some(rule.at_most_text(key)),
    }
}

/// The fix-up after the write ran, from the key's actual states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fix {
    None,
    /// `PEXPIRE key ms NX`: the key gets a TTL only if it still has none.
    Give(u64, Action),
    /// `PEXPIRE key ms LT`: the TTL is shortened, never lengthened.
    Shorten(u64),
    /// Only recorded (audit mode).
    Record,
}

/// The fix-up for `verdict`. `undone_ttl`: the ms the key had left before an explicit
/// PERSIST removed it — a required TTL is then given back, not replaced by a longer default.
pub fn fix(rule: &TtlRule, verdict: Verdict, undone_ttl: Option<u64>) -> Fix {
    if verdict == Verdict::Fine {
        return Fix::None;
    }
    if rule.mode == TtlMode::Audit {
        return Fix::Record;
    }
    match verdict {
        Verdict::NoTtl => match (undone_ttl, rule.default_ms, rule.max_ms) {
            (Some(left), _, _) => Fix::Give(left.max(1), Action::Clamped),
            (None, Some(d), _) => Fix::Give(d, Action::DefaultApplied),
            (None, None, Some(m)) => Fix::Give(m, Action::Clamped),
            (None, None, None) => Fix::None,
        },
        Verdict::TooLong => rule.max_ms.map_or(Fix::None, Fix::Shorten),
        Verdict::Fine => Fix::None,
    }
}

#[cfg(test)]
mod tests;
