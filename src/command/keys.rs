//! Key extraction: which argv positions of a command are keys, exactly as Redis 7's
//! `COMMAND GETKEYS` computes them (key specs first, then the per-command getkeys procedures).
//!
//! Redis tries the key specs (`getKeysUsingKeySpecs`) unless a spec has `variable_flags`; when a
//! spec cannot be resolved (unknown begin_search, `incomplete`, a bad numkeys, out of bounds) it
//! falls back to the command's own procedure (`sortGetKeys`, `migrateGetKeys`, ...). We mirror
//! both, including their quirks (e.g. the fallbacks parse numkeys with `atoi`), because namespacing
//! and slot routing must agree with what the backend will treat as keys.

use bytes::Bytes;

use super::table::{BeginSearch, CommandSpec, FindKeys, flags};

/// Why no key positions could be given; texts are Redis's `COMMAND GETKEYS` errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeysError {
    #[error("Invalid arguments specified for command")]
    InvalidArguments,
    #[error("The command has no key arguments")]
    NoKeyArguments,
    #[error("Invalid command specified")]
    InvalidCommand,
    #[error("Invalid number of arguments specified for command")]
    InvalidArity,
}

/// One key found in argv, with its key-spec flags as Redis names them (`RW`, `access`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef {
    pub pos: usize,
    pub flags: &'static [&'static str],
}

/// The argv indices of the keys of `argv` (argv[0] is the command name), as `COMMAND GETKEYS`.
///
/// `cmd` is the top-level command; for containers (`OBJECT ENCODING k`) the subcommand is
/// resolved from argv[1]. Indices are into the full argv.
pub fn key_positions(cmd: &CommandSpec, argv: &[Bytes]) -> Result<Vec<usize>, KeysError> {
    Ok(keys_and_flags(cmd, argv)?
        .into_iter()
        .map(|k| k.pos)
        .collect())
}

/// Like [`key_positions`] with each key's flags (`COMMAND GETKEYSANDFLAGS`).
pub fn keys_and_flags(cmd: &CommandSpec, argv: &[Bytes]) -> Result<Vec<KeyRef>, KeysError> {
    let cmd = resolve(cmd, argv)?;
    if !has_keys(cmd) {
        return Err(KeysError::NoKeyArguments);
    }
    if !cmd.arity_ok(argv.len()) {
        return Err(KeysError::InvalidArity);
    }
    let keys = find_keys(cmd, argv);
    if keys.is_empty() && !cmd.has(flags::NO_MANDATORY_KEYS) {
        return Err(KeysError::InvalidArguments);
    }
    Ok(keys)
}

/// The one key a write names when its command has a single plain key spec at argv[1] (SET,
/// INCR, LPUSH, HSET ...): read directly, without the walk of [`keys_and_flags`] and its
/// vector, for the per-command bookkeeping of the embedded engine. None: use the walk.
/// Specs whose flags the arguments decide (`variable_flags`, e.g. BITFIELD with only GETs
/// is RO) are left to the walk, except SET's, which are never RO.
pub fn sole_written_key<'a>(cmd: &CommandSpec, argv: &'a [Bytes]) -> Option<&'a Bytes> {
    if writes_argument_1_only(cmd) {
        argv.get(1)
    } else {
        None
    }
}

/// Whether [`sole_written_key`] reads argument 1: worked out once per command of the table
/// instead of comparing the key spec's flag strings on every call (for an INCR those
/// comparisons cost more than the rest of the engine's bookkeeping); subcommands are
/// worked out each time.
fn writes_argument_1_only(cmd: &CommandSpec) -> bool {
    static BY_ORDINAL: std::sync::OnceLock<Vec<bool>> = std::sync::OnceLock::new();
    super::table::per_command(&BY_ORDINAL, cmd, written_key_is_argument_1)
        .unwrap_or_else(|| written_key_is_argument_1(cmd))
}

/// The key-spec test behind [`writes_argument_1_only`]: the one key is argument 1
/// ([`only_key_is_argument_1`]) and the command writes it whatever its arguments.
fn written_key_is_argument_1(cmd: &CommandSpec) -> bool {
    let [spec] = cmd.key_specs else {
        return false;
    };
    only_key_is_argument_1(cmd)
        && !spec.flags.iter().any(|f| {
            f.eq_ignore_ascii_case("RO")
                || (f.eq_ignore_ascii_case("variable_flags") && cmd.name != "set")
        })
}

/// The command or subcommand argv names, like Redis's `lookupCommand`: a container with at least
/// one argument resolves to its subcommand (unknown subcommand: no command at all).
pub fn resolve<'a>(cmd: &'a CommandSpec, argv: &[Bytes]) -> Result<&'a CommandSpec, KeysError> {
    if cmd.subcommands.is_empty() || argv.len() < 2 {
        return Ok(cmd);
    }
    let sub = &argv[1];
    cmd.subcommands
        .iter()
        .find(|s| {
            let short = s.name.rsplit_once('|').map_or(s.name, |(_, b)| b);
            short.as_bytes().eq_ignore_ascii_case(sub)
        })
        .ok_or(KeysError::InvalidCommand)
}

/// Redis's `doesCommandHaveKeys`: a getkeys procedure, or a key spec that is not `not_key`.
pub fn has_keys(cmd: &CommandSpec) -> bool {
    fallback_for(cmd.name).is_some() || cmd.key_specs.iter().any(|s| !s.flags.contains(&"not_key"))
}

/// Whether `cmd`'s one key is argument 1, whatever its other arguments (GET, SET, INCR ...):
/// a single key spec that names exactly argv[1] (`variable_flags`, as on SET and BITFIELD,
/// changes a key's flags, not where it is; their getkeys procedures also give 1). For
/// such a command with a valid argument count, [`key_positions`] is `[1]`; forwarding's
/// cluster lane routes it by that key without building an argument vector.
pub fn only_key_is_argument_1(cmd: &CommandSpec) -> bool {
    match cmd.key_specs {
        [spec] => {
            cmd.subcommands.is_empty()
                && !spec.flags.contains(&"not_key")
                && spec.begin_search == BeginSearch::Index(1)
                && matches!(
                    spec.find_keys,
                    FindKeys::Range {
                        lastkey: 0,
                        step: 1,
                        limit: 0 | 1
                    }
                )
        }
        _ => false,
    }
}

/// Redis's `getKeysFromCommandWithSpecs` with default search flags.
fn find_keys(cmd: &CommandSpec, argv: &[Bytes]) -> Vec<KeyRef> {
    let has_keyspec = cmd.key_specs.iter().any(|s| !s.flags.contains(&"not_key"));
    let has_varflags = cmd
        .key_specs
        .iter()
        .any(|s| s.flags.contains(&"variable_flags"));
    if has_keyspec
        && !has_varflags
        && let Some(keys) = keys_from_specs(cmd, argv)
    {
        return keys;
    }
    match fallback_for(cmd.name) {
        Some(f) => f.keys(argv),
        None => Vec::new(),
    }
}

/// Redis's `getKeysUsingKeySpecs`; `None` where Redis returns -1 (an unusable spec).
fn keys_from_specs(cmd: &CommandSpec, argv: &[Bytes]) -> Option<Vec<KeyRef>> {
    // i64 throughout: argc and spec offsets are small, but client-supplied numkeys is not.
    let argc = argv.len() as i64;
    let mut keys = Vec::new();
    for spec in cmd.key_specs {
        if spec.flags.contains(&"not_key") {
            continue;
        }
        let first = match spec.begin_search {
            BeginSearch::Index(pos) => i64::from(pos),
            BeginSearch::Keyword { keyword, startfrom } => {
                match keyword_search(argv, keyword, i64::from(startfrom)) {
                    Some(first) => first,
                    // Keyword absent: this spec simply has no keys.
                    None => continue,
                }
            }
            BeginSearch::Unknown => return None,
        };
        let (first, last, step) = match spec.find_keys {
            FindKeys::Range {
                lastkey,
                step,
                limit,
            } => {
                let (lastkey, limit) = (i64::from(lastkey), i64::from(limit));
                let last = if lastkey >= 0 {
                    first + lastkey
                } else if limit == 0 {
                    argc + lastkey
                } else {
                    // Redis asserts lastkey == -1 here: 1/limit of the remaining args are keys.
                    first + ((argc - first) / limit + lastkey)
                };
                (first, last, i64::from(step))
            }
            FindKeys::Keynum {
                keynumidx,
                firstkey,
                step,
            } => {
                let idx = first + i64::from(keynumidx);
                // Redis only checks keynumidx < argc; we also refuse to read past argv.
                if i64::from(keynumidx) >= argc || idx < 0 || idx >= argc {
                    return None;
                }
                let numkeys = parse_ll(&argv[idx as usize]).filter(|n| *n >= 0)?;
                let first = first + i64::from(firstkey);
                // Redis casts numkeys to int; a huge value is caught by the bounds check below.
                (first, first.saturating_add(numkeys) - 1, i64::from(step))
            }
            FindKeys::Unknown => return None,
        };
        // Out of bounds means a syntax error the command itself will report.
        if last >= argc || last < first || first >= argc || first < 0 || step <= 0 {
            return None;
        }
        let mut i = first;
        while i <= last {
            keys.push(KeyRef {
                pos: i as usize,
                flags: spec.flags,
            });
            i += step;
        }
        if spec.flags.contains(&"incomplete") {
            return None;
        }
    }
    Some(keys)
}

/// The keyword search of a `keyword` begin_search: forwards from `startfrom`, or backwards from
/// `argc + startfrom` when negative. Like Redis, the end position itself is never examined
/// (argv[argc-1] forwards, argv[1] backwards). Returns the position after the keyword.
fn keyword_search(argv: &[Bytes], keyword: &str, startfrom: i64) -> Option<i64> {
    let argc = argv.len() as i64;
    let (start, end) = if startfrom > 0 {
        (startfrom, argc - 1)
    } else {
        (argc + startfrom, 1)
    };
    let dir = if start <= end { 1 } else { -1 };
    let mut i = start;
    while i != end {
        if i >= argc || i < 1 {
            break;
        }
        if argv[i as usize].eq_ignore_ascii_case(keyword.as_bytes()) {
            return Some(i + 1);
        }
        i += dir;
    }
    None
}

/// Redis's `string2ll`: an optional `-`, digits, no leading zeros or `+`, no spaces, in range.
fn parse_ll(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    if neg && digits == b"0" {
        return None;
    }
    let mut v: i64 = 0;
    for d in digits {
        let d = i64::from(d - b'0');
        v = v.checked_mul(10)?;
        v = if neg {
            v.checked_sub(d)?
        } else {
            v.checked_add(d)?
        };
    }
    Some(v)
}

/// C's `atoi` as glibc implements it (strtol, then truncation to int): leading whitespace,
/// optional sign, digits up to the first non-digit; 0 if there are none.
fn atoi(b: &[u8]) -> i32 {
    let mut i = 0;
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
        i += 1;
    }
    let neg = match b.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut v: i64 = 0;
    while let Some(d) = b.get(i).filter(|d| d.is_ascii_digit()) {
        // strtol saturates at LONG_MAX / LONG_MIN.
        v = v.saturating_mul(10).saturating_add(i64::from(d - b'0'));
        i += 1;
    }
    let v = if neg { v.saturating_neg() } else { v };
    v as i32
}

/// Which of Redis's getkeys procedures a command has (`get_keys_function` in its JSON).
#[derive(Clone, Copy, Debug)]
enum Fallback {
    /// `genericGetKeys(store, keycount, firstkey, step)`.
    Generic(usize, usize, usize, usize),
    Sort,
    SortRo,
    Migrate,
    Georadius,
    Xread,
    Set,
    Bitfield,
}

fn fallback_for(name: &str) -> Option<Fallback> {
    Some(match name {
        "zunionstore" | "zinterstore" | "zdiffstore" => Fallback::Generic(1, 2, 3, 1),
        "zunion" | "zinter" | "zdiff" | "lmpop" | "zmpop" | "sintercard" | "zintercard" => {
            Fallback::Generic(0, 1, 2, 1)
        }
        "eval" | "evalsha" | "eval_ro" | "evalsha_ro" | "fcall" | "fcall_ro" | "blmpop"
        | "bzmpop" => Fallback::Generic(0, 2, 3, 1),
        "sort" => Fallback::Sort,
        "sort_ro" => Fallback::SortRo,
        "migrate" => Fallback::Migrate,
        "georadius" | "georadiusbymember" => Fallback::Georadius,
        "xread" | "xreadgroup" => Fallback::Xread,
        "set" => Fallback::Set,
        "bitfield" => Fallback::Bitfield,
        _ => return None,
    })
}

// Flags the procedures report, in Redis's reply order (RO RW OW RM access update insert delete).
const NO_FLAGS: &[&str] = &[];
const RO_ACCESS: &[&str] = &["RO", "access"];
const OW_UPDATE: &[&str] = &["OW", "update"];
const RW_ACCESS_UPDATE: &[&str] = &["RW", "access", "update"];
const RW_ACCESS_DELETE: &[&str] = &["RW", "access", "delete"];

fn eq(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

impl Fallback {
    fn keys(self, argv: &[Bytes]) -> Vec<KeyRef> {
        let argc = argv.len();
        let key = |pos, flags| KeyRef { pos, flags };
        match self {
            Fallback::Generic(store, count_at, firstkey, step) => {
                let Some(count) = argv.get(count_at) else {
                    return Vec::new();
                };
                let num = atoi(count);
                // Redis returns no keys when the command would reply with a syntax error.
                let room = argc.saturating_sub(firstkey) / step.max(1);
                if num < 1 || num as usize > room {
                    return Vec::new();
                }
                let mut keys: Vec<KeyRef> = (0..num as usize)
                    .map(|i| key(firstkey + i * step, NO_FLAGS))
                    .collect();
                if store != 0 {
                    keys.push(key(store, NO_FLAGS));
                }
                keys
            }
            Fallback::SortRo => vec![key(1, RO_ACCESS)],
            Fallback::Sort => {
                // Options are assumed to take no arguments except LIMIT (2), GET and BY (1);
                // the last STORE wins, as in SORT itself.
                let mut store = None;
                let mut i = 2;
                while i < argc {
                    let arg = &argv[i];
                    if eq(arg, "limit") {
                        i += 2;
                    } else if eq(arg, "get") || eq(arg, "by") {
                        i += 1;
                    } else if eq(arg, "store") && i + 1 < argc {
                        // Redis does not skip the store key, so it is examined as an option too.
                        store = Some(i + 1);
                    }
                    i += 1;
                }
                let mut keys = vec![key(1, RO_ACCESS)];
                keys.extend(store.map(|p| key(p, OW_UPDATE)));
                keys
            }
            Fallback::Migrate => {
                // MIGRATE host port key|"" db timeout [COPY] [REPLACE] [AUTH pw | AUTH2 u pw]
                // [KEYS k ...]. AUTH/AUTH2 values are skipped so a password "keys" is not the
                // option; KEYS with a non-empty key argument is an error (no keys at all).
                let (mut first, mut num) = (3, 1);
                let mut i = 6;
                while argc > 6 && i < argc {
                    let arg = &argv[i];
                    if eq(arg, "keys") {
                        if argv.get(3).is_some_and(|k| !k.is_empty()) {
                            return Vec::new();
                        }
                        first = i + 1;
                        num = argc - first;
                        break;
                    }
                    if eq(arg, "auth") {
                        i += 1;
                    } else if eq(arg, "auth2") {
                        i += 2;
                    }
                    i += 1;
                }
                (first..first + num)
                    .map(|p| key(p, RW_ACCESS_DELETE))
                    .collect()
            }
            Fallback::Georadius => {
                let mut stored = None;
                let mut i = 5;
                while i < argc {
                    if (eq(&argv[i], "store") || eq(&argv[i], "storedist")) && i + 1 < argc {
                        stored = Some(i + 1);
                        i += 1;
                    }
                    i += 1;
                }
                let mut keys = vec![key(1, NO_FLAGS)];
                keys.extend(stored.map(|p| key(p, NO_FLAGS)));
                keys
            }
            Fallback::Xread => {
                // STREAMS may also be a group, consumer or key name, so parse the options.
                let mut streams_pos = None;
                let mut i = 1;
                while i < argc {
                    let arg = &argv[i];
                    if eq(arg, "block") || eq(arg, "count") {
                        i += 1;
                    } else if eq(arg, "group") {
                        i += 2;
                    } else if eq(arg, "noack") {
                    } else if eq(arg, "streams") {
                        streams_pos = Some(i);
                        break;
                    } else {
                        break;
                    }
                    i += 1;
                }
                let Some(sp) = streams_pos else {
                    return Vec::new();
                };
                let num = argc - sp - 1;
                if num == 0 || !num.is_multiple_of(2) {
                    return Vec::new();
                }
                (sp + 1..sp + 1 + num / 2)
                    .map(|p| key(p, NO_FLAGS))
                    .collect()
            }
            Fallback::Set => {
                let get = argv.iter().skip(3).any(|a| eq(a, "get"));
                vec![key(1, if get { RW_ACCESS_UPDATE } else { OW_UPDATE })]
            }
            Fallback::Bitfield => {
                let mut readonly = true;
                let mut i = 2;
                while i < argc {
                    let rem = argc - i - 1;
                    let arg = &argv[i];
                    if eq(arg, "get") && rem >= 2 {
                        i += 2;
                    } else if (eq(arg, "set") || eq(arg, "incrby")) && rem >= 3 {
                        readonly = false;
                        break;
                    } else if eq(arg, "overflow") && rem >= 1 {
                        i += 1;
                    } else {
                        // A syntax error: safer to assume the command writes.
                        readonly = false;
                        break;
                    }
                    i += 1;
                }
                vec![key(
                    1,
                    if readonly {
                        RO_ACCESS
                    } else {
                        RW_ACCESS_UPDATE
                    },
                )]
            }
        }
    }
}

/// Commands whose one key is argument 1 ([`only_key_is_argument_1`]), for tests of what
/// builds on it.
#[cfg(test)]
pub(crate) const ONE_KEY_AT_1: &[&str] = &["get", "set", "incr", "lpush", "hset", "expire"];

/// Commands with several keys, keys elsewhere, none, or subcommands: never
/// [`only_key_is_argument_1`].
#[cfg(test)]
pub(crate) const NOT_ONE_KEY_AT_1: &[&str] = &[
    "mset",
    "mget",
    "del",
    "eval",
    "publish",
    "georadius",
    "sort",
    "object",
];

/// Argument vectors for `cmd` with a few valid argument counts: `key` at argument 1 and
/// the rest named like keywords (`STORE2` ...), which no key search should take for keys.
#[cfg(test)]
pub(crate) fn sample_argvs(cmd: &CommandSpec, key: &'static [u8]) -> Vec<Vec<Bytes>> {
    let min = usize::try_from(cmd.arity.unsigned_abs())
        .unwrap_or(2)
        .max(2);
    [min, min + 1, min + 4]
        .into_iter()
        .filter(|&argc| cmd.arity_ok(argc))
        .map(|argc| {
            let mut argv = vec![
                Bytes::from_static(cmd.name.as_bytes()),
                Bytes::from_static(key),
            ];
            argv.extend((2..argc).map(|i| Bytes::from(format!("STORE{i}"))));
            argv
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::table::lookup;

    fn keys(line: &str) -> Result<Vec<usize>, KeysError> {
        let argv: Vec<Bytes> = line
            .split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        let cmd = lookup(&argv[0]).ok_or(KeysError::InvalidCommand)?;
        key_positions(cmd, &argv)
    }

    #[test]
    fn simple_and_ranges() {
        assert_eq!(keys("GET k"), Ok(vec![1]));
        assert_eq!(keys("MSET a 1 b 2 c 3"), Ok(vec![1, 3, 5]));
        assert_eq!(keys("DEL a b c"), Ok(vec![1, 2, 3]));
        assert_eq!(keys("SET k v GET"), Ok(vec![1]));
        assert_eq!(keys("PING"), Err(KeysError::NoKeyArguments));
        assert_eq!(keys("GET"), Err(KeysError::InvalidArity));
    }

    /// The table's cached answer is the key-spec test's, and where it holds the one key a
    /// key-spec walk finds written is argument 1.
    #[test]
    fn sole_written_key_is_the_written_key_a_walk_finds() {
        let mut holds = 0;
        for cmd in crate::command::table::all() {
            assert_eq!(
                writes_argument_1_only(cmd),
                written_key_is_argument_1(cmd),
                "{}",
                cmd.name
            );
            for sub in cmd.subcommands {
                assert_eq!(
                    writes_argument_1_only(sub),
                    written_key_is_argument_1(sub),
                    "{}",
                    sub.name
                );
            }
            if !writes_argument_1_only(cmd) {
                continue;
            }
            holds += 1;
            for argv in sample_argvs(cmd, b"STORE1") {
                let written: Vec<usize> = keys_and_flags(cmd, &argv)
                    .unwrap_or_default()
                    .iter()
                    .filter(|k| !k.flags.iter().any(|f| f.eq_ignore_ascii_case("RO")))
                    .map(|k| k.pos)
                    .collect();
                assert_eq!(written, vec![1], "{} {}", cmd.name, argv.len());
                assert_eq!(sole_written_key(cmd, &argv), argv.get(1), "{}", cmd.name);
            }
        }
        assert!(holds > 50, "only {holds} commands");
        for name in ["set", "incr", "lpush", "hset", "expire"] {
            assert!(
                lookup(name.as_bytes()).is_some_and(writes_argument_1_only),
                "{name}"
            );
        }
        for name in ["get", "mset", "bitfield", "rename"] {
            assert!(
                !lookup(name.as_bytes()).is_some_and(writes_argument_1_only),
                "{name}"
            );
        }
    }

    /// Where [`only_key_is_argument_1`] holds, the keys of any valid argument count are
    /// exactly `[1]`, however the other arguments read.
    #[test]
    fn only_key_is_argument_1_means_key_positions_1() {
        let mut holds = 0;
        for cmd in crate::command::table::all() {
            if !only_key_is_argument_1(cmd) {
                continue;
            }
            holds += 1;
            for argv in sample_argvs(cmd, b"STORE1") {
                assert_eq!(
                    key_positions(cmd, &argv),
                    Ok(vec![1]),
                    "{} {}",
                    cmd.name,
                    argv.len()
                );
            }
        }
        assert!(holds > 50, "only {holds} commands");
        for name in ONE_KEY_AT_1 {
            assert!(
                lookup(name.as_bytes()).is_some_and(only_key_is_argument_1),
                "{name}"
            );
        }
        for name in NOT_ONE_KEY_AT_1 {
            assert!(
                !lookup(name.as_bytes()).is_some_and(only_key_is_argument_1),
                "{name}"
            );
        }
    }

    #[test]
    fn numkeys() {
        assert_eq!(keys("EVAL s 2 a b x"), Ok(vec![3, 4]));
        // EVAL has no_mandatory_keys: zero keys is an empty answer, not an error.
        assert_eq!(keys("EVAL s 0"), Ok(vec![]));
        assert_eq!(keys("ZUNIONSTORE d 2 a b WEIGHTS 1 2"), Ok(vec![1, 3, 4]));
        assert_eq!(keys("LMPOP 2 a b LEFT"), Ok(vec![2, 3]));
        assert_eq!(keys("BLMPOP 0 2 a b LEFT"), Ok(vec![3, 4]));
    }

    #[test]
    fn malformed_numkeys() {
        assert_eq!(
            keys("ZUNIONSTORE d 5 a b"),
            Err(KeysError::InvalidArguments)
        );
        assert_eq!(
            keys("ZUNIONSTORE d x a b"),
            Err(KeysError::InvalidArguments)
        );
        assert_eq!(
            keys("ZUNIONSTORE d -1 a b"),
            Err(KeysError::InvalidArguments)
        );
        assert_eq!(
            keys("LMPOP 99999999999999999999 a LEFT"),
            Err(KeysError::InvalidArguments)
        );
        assert_eq!(keys("EVAL s 3 a"), Ok(vec![]));
        // The fallback parses with atoi, so a trailing junk numkeys still finds keys.
        assert_eq!(keys("EVAL s 1x a"), Ok(vec![3]));
    }

    #[test]
    fn keywords() {
        assert_eq!(keys("XREAD COUNT 2 STREAMS s1 s2 0 0"), Ok(vec![4, 5]));
        assert_eq!(keys("XREADGROUP GROUP g c STREAMS s 0"), Ok(vec![5]));
        assert_eq!(keys("XREAD STREAMS s1 0 1"), Ok(vec![2]));
        assert_eq!(keys("GEORADIUS g 0 0 1 km STORE d"), Ok(vec![1, 7]));
        assert_eq!(keys("GEORADIUS g 0 0 1 km"), Ok(vec![1]));
        assert_eq!(keys("SORT k BY w GET # STORE d"), Ok(vec![1, 7]));
        assert_eq!(keys("SORT k LIMIT 0 1"), Ok(vec![1]));
        assert_eq!(keys("MIGRATE h 6379 k 0 1000"), Ok(vec![3]));
        assert_eq!(
            keys("MIGRATE h 6379 k 0 1000 KEYS a"),
            Err(KeysError::InvalidArguments)
        );
        assert_eq!(keys("MIGRATE h 6379  0 1000 AUTH keys KEYS a"), Ok(vec![9]));
        assert_eq!(
            keys("MIGRATE h 6379  0 1000 REPLACE KEYS a b"),
            Ok(vec![8, 9])
        );
    }

    #[test]
    fn subcommands() {
        assert_eq!(keys("OBJECT ENCODING k"), Ok(vec![2]));
        assert_eq!(keys("OBJECT NOPE k"), Err(KeysError::InvalidCommand));
        assert_eq!(keys("CONFIG GET x"), Err(KeysError::NoKeyArguments));
        assert_eq!(keys("MEMORY USAGE k"), Ok(vec![2]));
    }

    #[test]
    fn number_parsers() {
        assert_eq!(parse_ll(b"12"), Some(12));
        assert_eq!(parse_ll(b"-3"), Some(-3));
        assert_eq!(parse_ll(b"012"), None);
        assert_eq!(parse_ll(b"+1"), None);
        assert_eq!(parse_ll(b"9223372036854775808"), None);
        assert_eq!(atoi(b" 7x"), 7);
        assert_eq!(atoi(b"-2"), -2);
        assert_eq!(atoi(b"x"), 0);
    }
}
