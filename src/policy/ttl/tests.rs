//! Unit tests of TTL policy: which rule applies to a key, what each command does to a TTL,
//! the verdicts (default, maximum, required) and each mode's refusals and fix-ups.

use super::*;
use crate::command::CommandSpec;

const NOW: u64 = 1_000_000_000;
const MIN: u64 = 60_000;

fn rule(
    pattern: &str,
    default: Option<&str>,
    max: Option<&str>,
    require: bool,
    mode: TtlMode,
) -> TtlRule {
    TtlRule::compile(
        0,
        &TtlRuleConfig {
            pattern: pattern.into(),
            default_ttl: default.map(Into::into),
            max_ttl: max.map(Into::into),
            require_ttl: require,
            mode,
        },
    )
    .unwrap()
}

fn argv(line: &str) -> Vec<Bytes> {
    line.split(' ')
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

fn eff(line: &str, pos: usize, flags: &[&str]) -> Effect {
    let a = argv(line);
    let name = std::str::from_utf8(&a[0]).unwrap().to_ascii_lowercase();
    effect(&name, &a, pos, flags, NOW)
}

#[test]
fn first_matching_rule_wins_with_redis_globs() {
    let c = |p: &str| TtlRuleConfig {
        pattern: p.into(),
        default_ttl: Some("1m".into()),
        max_ttl: None,
        require_ttl: false,
        mode: TtlMode::Clamp,
    };
    let rules = TtlRules::compile(&[c("lock:*"), c("a?[bc]"), c("*")]).unwrap();
    assert_eq!(rules.rule_for(b"lock:1").unwrap().pattern, "lock:*");
    assert_eq!(rules.rule_for(b"lock:a/b").unwrap().pattern, "lock:*");
    assert_eq!(rules.rule_for(b"axb").unwrap().pattern, "a?[bc]");
    assert_eq!(rules.rule_for(b"axd").unwrap().pattern, "*");
    assert!(
        TtlRules::compile(&[c("x*")])
            .unwrap()
            .rule_for(b"y")
            .is_none()
    );
    assert!(TtlRules::default().is_empty());
}

#[test]
fn effects_of_the_ttl_commands() {
    let value = |at: Option<u64>, keep, nx, xx| Effect::Value {
        at: at.map(|a| a as i64),
        keep,
        nx,
        xx,
    };
    assert_eq!(eff("SET k v", 1, &[]), value(None, false, false, false));
    assert_eq!(
        eff("SET k v EX 10", 1, &[]),
        value(Some(NOW + 10_000), false, false, false)
    );
    assert_eq!(
        eff("set k v px 10 nx", 1, &[]),
        value(Some(NOW + 10), false, true, false)
    );
    assert_eq!(
        eff("SET k v EXAT 5000", 1, &[]),
        value(Some(5_000_000), false, false, false)
    );
    assert_eq!(
        eff("SET k v PXAT 5000 XX", 1, &[]),
        value(Some(5000), false, false, true)
    );
    assert_eq!(
        eff("SET k v KEEPTTL GET", 1, &[]),
        value(None, true, false, false)
    );
    assert_eq!(
        eff("SETEX k 10 v", 1, &[]),
        value(Some(NOW + 10_000), false, false, false)
    );
    assert_eq!(
        eff("PSETEX k 10 v", 1, &[]),
        value(Some(NOW + 10), false, false, false)
    );
    assert_eq!(
        eff("RESTORE k 0 x", 1, &[]),
        value(None, false, false, false)
    );
    assert_eq!(
        eff("RESTORE k 50 x REPLACE", 1, &[]),
        value(Some(NOW + 50), false, false, false)
    );
    assert_eq!(
        eff("RESTORE k 7000 x ABSTTL", 1, &[]),
        value(Some(7000), false, false, false)
    );
    assert_eq!(
        eff("EXPIRE k 10 GT", 1, &[]),
        Effect::Expire {
            at: (NOW + 10_000) as i64,
            cond: Cond::Gt
        }
    );
    assert_eq!(
        eff("PEXPIREAT k 10", 1, &[]),
        Effect::Expire {
            at: 10,
            cond: Cond::Always
        }
    );
    assert_eq!(
        eff("GETEX k PX 10", 1, &[]),
        Effect::Expire {
            at: (NOW + 10) as i64,
            cond: Cond::Always
        }
    );
    assert_eq!(eff("GETEX k PERSIST", 1, &[]), Effect::Persist);
    assert_eq!(eff("PERSIST k", 1, &[]), Effect::Persist);
    assert_eq!(
        eff("COPY a b", 2, &["OW", "update"]),
        Effect::CopyFrom {
            source: 1,
            keeps_existing: true
        }
    );
    assert_eq!(
        eff("COPY a b REPLACE", 2, &["OW", "update"]),
        Effect::CopyFrom {
            source: 1,
            keeps_existing: false
        }
    );
    assert_eq!(
        eff("RENAMENX a b", 2, &["OW", "insert"]),
        Effect::CopyFrom {
            source: 1,
            keeps_existing: true
        }
    );
    assert_eq!(
        eff("GETSET k v", 1, &["RW"]),
        Effect::Value {
            at: None,
            keep: false,
            nx: false,
            xx: false
        }
    );
    assert_eq!(
        eff("RENAME a b", 2, &["OW", "update"]),
        Effect::CopyFrom {
            source: 1,
            keeps_existing: false
        }
    );
    let write = |overwrite, creates| Effect::Write { overwrite, creates };
    assert_eq!(eff("HSET k f v", 1, &["RW", "update"]), write(false, true));
    assert_eq!(
        eff("INCR k", 1, &["RW", "access", "update"]),
        write(false, true)
    );
    assert_eq!(
        eff("SUNIONSTORE d a", 1, &["OW", "update"]),
        write(true, true)
    );
    assert_eq!(
        eff("LPOP k", 1, &["RW", "access", "delete"]),
        write(false, false)
    );
    assert_eq!(eff("DEL k", 1, &["RM", "delete"]), write(false, false));
    assert_eq!(eff("LPUSHX k v", 1, &["RW", "insert"]), write(false, false));
    // A TTL that is not a number: the command fails, nothing to judge.
    assert_eq!(eff("EXPIRE k x", 1, &[]), write(false, false));
}

#[test]
fn predictions() {
    use KeyState::*;
    let m = Missing;
    let set = eff("SET k v", 1, &[]);
    assert_eq!(predict(&set, m, m, NOW), Persistent);
    assert_eq!(predict(&set, Expires(NOW + 5), m, NOW), Persistent);
    let keep = eff("SET k v KEEPTTL", 1, &[]);
    assert_eq!(predict(&keep, Expires(NOW + 5), m, NOW), Expires(NOW + 5));
    assert_eq!(predict(&keep, m, m, NOW), Persistent);
    let nx = eff("SET k v NX", 1, &[]);
    assert_eq!(predict(&nx, Expires(NOW + 5), m, NOW), Expires(NOW + 5));
    let xx = eff("SET k v XX", 1, &[]);
    assert_eq!(predict(&xx, m, m, NOW), Missing);
    let ex = eff("SET k v EX 1", 1, &[]);
    assert_eq!(predict(&ex, m, m, NOW), Expires(NOW + 1000));
    // EXPIRE with conditions; a key without TTL is an infinite TTL for GT/LT.
    let at = NOW + 10_000;
    for (line, before, after) in [
        ("EXPIRE k 10", m, m),
        ("EXPIRE k 10", Persistent, Expires(at)),
        ("EXPIRE k 10 NX", Persistent, Expires(at)),
        ("EXPIRE k 10 NX", Expires(NOW + 1), Expires(NOW + 1)),
        ("EXPIRE k 10 XX", Persistent, Persistent),
        ("EXPIRE k 10 XX", Expires(NOW + 1), Expires(at)),
        ("EXPIRE k 10 GT", Persistent, Persistent),
        ("EXPIRE k 10 GT", Expires(NOW + 1), Expires(at)),
        ("EXPIRE k 10 GT", Expires(at + 1), Expires(at + 1)),
        ("EXPIRE k 10 LT", Persistent, Expires(at)),
        ("EXPIRE k 10 LT", Expires(at + 1), Expires(at)),
        ("EXPIRE k 10 LT", Expires(NOW + 1), Expires(NOW + 1)),
        ("EXPIRE k -1", Persistent, Missing),
    ] {
        assert_eq!(
            predict(&eff(line, 1, &[]), before, m, NOW),
            after,
            "{line} {before:?}"
        );
    }
    let persist = eff("PERSIST k", 1, &[]);
    assert_eq!(predict(&persist, Expires(at), m, NOW), Persistent);
    assert_eq!(predict(&persist, m, m, NOW), Missing);
    let copy = eff("COPY a b REPLACE", 2, &["OW"]);
    assert_eq!(predict(&copy, m, Expires(at), NOW), Expires(at));
    assert_eq!(predict(&copy, Expires(at), Persistent, NOW), Persistent);
    assert_eq!(predict(&copy, Expires(at), m, NOW), Expires(at));
    // Without REPLACE an existing destination is left alone.
    let keep = eff("COPY a b", 2, &["OW"]);
    assert_eq!(predict(&keep, Expires(at), Persistent, NOW), Expires(at));
    assert_eq!(predict(&keep, m, Persistent, NOW), Persistent);
    let hset = eff("HSET k f v", 1, &["RW", "update"]);
    assert_eq!(predict(&hset, m, m, NOW), Persistent);
    assert_eq!(predict(&hset, Expires(at), m, NOW), Expires(at));
    let store = eff("SUNIONSTORE d a", 1, &["OW", "update"]);
    assert_eq!(predict(&store, Expires(at), m, NOW), Persistent);
}

#[test]
fn verdicts_default_max_and_require() {
    use KeyState::*;
    let r = rule("*", Some("10m"), Some("1h"), false, TtlMode::Clamp);
    // Created without TTL: default.
    assert_eq!(verdict(&r, Missing, Persistent, false, NOW), Verdict::NoTtl);
    // TTL dropped by an overwrite: default again; by an explicit PERSIST: allowed.
    assert_eq!(
        verdict(&r, Expires(NOW + 5), Persistent, false, NOW),
        Verdict::NoTtl
    );
    assert_eq!(
        verdict(&r, Expires(NOW + 5), Persistent, true, NOW),
        Verdict::Fine
    );
    // A key that already had no TTL is not this write's doing.
    assert_eq!(
        verdict(&r, Persistent, Persistent, false, NOW),
        Verdict::Fine
    );
    // max_ttl: only a TTL this write set.
    assert_eq!(
        verdict(&r, Missing, Expires(NOW + 60 * MIN), false, NOW),
        Verdict::Fine
    );
    assert_eq!(
        verdict(&r, Missing, Expires(NOW + 60 * MIN + 1), false, NOW),
        Verdict::TooLong
    );
    let old = Expires(NOW + 100 * MIN);
    assert_eq!(verdict(&r, old, old, false, NOW), Verdict::Fine);
    assert_eq!(verdict(&r, Persistent, Missing, false, NOW), Verdict::Fine);
    // require_ttl forbids even an explicit PERSIST.
    let req = rule("*", None, Some("5m"), true, TtlMode::Reject);
    assert_eq!(
        verdict(&req, Expires(NOW + 5), Persistent, true, NOW),
        Verdict::NoTtl
    );
    // Without default or require, a key may be created without TTL.
    let only_max = rule("*", None, Some("5m"), false, TtlMode::Clamp);
    assert_eq!(
        verdict(&only_max, Missing, Persistent, false, NOW),
        Verdict::Fine
    );
}

#[test]
fn refusals_per_mode() {
    let reject = rule("lock:*", None, Some("5m"), true, TtlMode::Reject);
    assert_eq!(
        refusal(&reject, b"lock:1", Verdict::NoTtl).unwrap(),
        "ERR respgate: TTL policy lock:* requires a TTL for key 'lock:1'"
    );
    assert_eq!(
        refusal(&reject, b"lock:1", Verdict::TooLong).unwrap(),
        "ERR respgate: TTL policy lock:* allows at most 5m for key 'lock:1'"
    );
    assert!(refusal(&reject, b"lock:1", Verdict::Fine).is_none());
    // Reject mode with a default and no require: the default is given, nothing refused.
    let reject_default = rule("*", Some("1m"), None, false, TtlMode::Reject);
    assert!(refusal(&reject_default, b"k", Verdict::NoTtl).is_none());
    // Clamp mode refuses only a required TTL it has nothing to give.
    let clamp = rule("*", Some("1m"), Some("5m"), true, TtlMode::Clamp);
    assert!(refusal(&clamp, b"k", Verdict::NoTtl).is_none());
    assert!(refusal(&clamp, b"k", Verdict::TooLong).is_none());
    let bare = rule("*", None, None, true, TtlMode::Clamp);
    assert!(refusal(&bare, b"k", Verdict::NoTtl).is_some());
    let audit = rule("*", None, Some("5m"), true, TtlMode::Audit);
    assert!(refusal(&audit, b"k", Verdict::NoTtl).is_none());
    assert!(refusal(&audit, b"k", Verdict::TooLong).is_none());
    // Keys are shown as text even when not UTF-8.
    assert!(
        refusal(&reject, b"\xff", Verdict::NoTtl)
            .unwrap()
            .ends_with("key '\u{fffd}'")
    );
}

#[test]
fn fixes_per_mode() {
    let clamp = rule("*", Some("10m"), Some("1h"), false, TtlMode::Clamp);
    assert_eq!(
        fix(&clamp, Verdict::NoTtl, None),
        Fix::Give(10 * MIN, Action::DefaultApplied)
    );
    assert_eq!(fix(&clamp, Verdict::TooLong, None), Fix::Shorten(60 * MIN));
    assert_eq!(fix(&clamp, Verdict::Fine, None), Fix::None);
    let max_only = rule("*", None, Some("5m"), true, TtlMode::Clamp);
    assert_eq!(
        fix(&max_only, Verdict::NoTtl, None),
        Fix::Give(5 * MIN, Action::Clamped)
    );
    // An explicit PERSIST of a required TTL gets the old TTL back, not a longer one.
    let required = rule("*", Some("10m"), Some("1h"), true, TtlMode::Clamp);
    assert_eq!(
        fix(&required, Verdict::NoTtl, Some(5_000)),
        Fix::Give(5_000, Action::Clamped)
    );
    assert_eq!(
        fix(&required, Verdict::NoTtl, Some(0)),
        Fix::Give(1, Action::Clamped)
    );
    let audit = rule("*", Some("10m"), Some("1h"), true, TtlMode::Audit);
    assert_eq!(fix(&audit, Verdict::NoTtl, None), Fix::Record);
    assert_eq!(fix(&audit, Verdict::TooLong, None), Fix::Record);
    // Reject mode: what slipped past the prediction is still fixed.
    let reject = rule("*", Some("10m"), Some("1h"), true, TtlMode::Reject);
    assert_eq!(
        fix(&reject, Verdict::NoTtl, None),
        Fix::Give(10 * MIN, Action::DefaultApplied)
    );
}

#[test]
fn action_labels() {
    let labels: Vec<_> = Action::ALL.iter().map(|a| a.label()).collect();
    assert_eq!(
        labels,
        ["default_applied", "clamped", "rejected", "audited"]
    );
}

/// Every write command in the table is classified: the written keys of all of them may be
/// created, except those listed here (they only remove, or need the key to exist). A new
/// command in the table that cannot create its key must be added here knowingly.
#[test]
fn every_write_command_in_the_table_is_classified() {
    use crate::command::table::{self, flags};
    let mut specs: Vec<&CommandSpec> = Vec::new();
    for c in table::all() {
        specs.push(c);
        specs.extend(c.subcommands.iter());
    }
    let mut never_create = std::collections::BTreeSet::new();
    for c in specs.into_iter().filter(|c| c.has(flags::WRITE)) {
        for spec in c.key_specs {
            if has(spec.flags, "RO") {
                continue;
            }
            if let Effect::Write { creates: false, .. } = effect(c.name, &[], 1, spec.flags, NOW) {
                never_create.insert(c.name);
            }
        }
    }
    let expected = [
        // Removals and pops (sources of moves included).
        "blmove",
        "blmpop",
        "blpop",
        "brpop",
        "brpoplpush",
        "bzmpop",
        "bzpopmax",
        "bzpopmin",
        "del",
        "getdel",
        "hdel",
        "lmove",
        "lmpop",
        "lpop",
        "lrem",
        "ltrim",
        "migrate",
        "rename",
        "renamenx",
        "rpop",
        "rpoplpush",
        "smove",
        "spop",
        "srem",
        "unlink",
        "xautoclaim",
        "xdel",
        "xgroup|delconsumer",
        "xgroup|destroy",
        "xtrim",
        "zmpop",
        "zpopmax",
        "zpopmin",
        "zrem",
        "zremrangebylex",
        "zremrangebyrank",
        "zremrangebyscore",
        // TTL commands (judged by their arguments, which this walk does not give them).
        "expire",
        "expireat",
        "getex",
        "pexpire",
        "pexpireat",
        // Only into an existing key.
        "linsert",
        "lpushx",
        "lset",
        "pfdebug",
        "rpushx",
        "xack",
        "xclaim",
        "xgroup|create",
        "xgroup|createconsumer",
        "xgroup|setid",
        "xsetid",
    ];
    let expected: std::collections::BTreeSet<&str> = expected.into_iter().collect();
    assert_eq!(never_create, expected);
}
