//! The command table's types and lookup: one entry per Redis 7 command (and subcommand),
//! with arity, flags, ACL categories and Redis's own key specs. The data itself lives in
//! `table_data.rs`, generated from a real redis-server by `scripts/gen_command_table.py`.

/// Command flags, as Redis names them in `COMMAND INFO` (bit per flag).
pub mod flags {
    pub const WRITE: u64 = 1 << 0;
    pub const READONLY: u64 = 1 << 1;
    pub const DENYOOM: u64 = 1 << 2;
    pub const MODULE: u64 = 1 << 3;
    pub const ADMIN: u64 = 1 << 4;
    pub const PUBSUB: u64 = 1 << 5;
    pub const NOSCRIPT: u64 = 1 << 6;
    pub const BLOCKING: u64 = 1 << 7;
    pub const LOADING: u64 = 1 << 8;
    pub const STALE: u64 = 1 << 9;
    pub const SKIP_MONITOR: u64 = 1 << 10;
    pub const SKIP_SLOWLOG: u64 = 1 << 11;
    pub const ASKING: u64 = 1 << 12;
    pub const FAST: u64 = 1 << 13;
    pub const NO_AUTH: u64 = 1 << 14;
    pub const MAY_REPLICATE: u64 = 1 << 15;
    pub const SENTINEL: u64 = 1 << 16;
    pub const ONLY_SENTINEL: u64 = 1 << 17;
    pub const NO_MANDATORY_KEYS: u64 = 1 << 18;
    pub const PROTECTED: u64 = 1 << 19;
    pub const MODULE_GETKEYS: u64 = 1 << 20;
    pub const MODULE_NO_CLUSTER: u64 = 1 << 21;
    pub const NO_ASYNC_LOADING: u64 = 1 << 22;
    pub const NO_MULTI: u64 = 1 << 23;
    pub const MOVABLEKEYS: u64 = 1 << 24;
    pub const ALLOW_BUSY: u64 = 1 << 25;
    pub const MODULE_GETCHANNELS: u64 = 1 << 26;
    pub const TOUCHES_ARBITRARY_KEYS: u64 = 1 << 27;

    /// Names in Redis's `COMMAND INFO` order and spelling.
    pub const NAMES: &[(u64, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (MODULE, "module"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (ASKING, "asking"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (SENTINEL, "sentinel"),
        (ONLY_SENTINEL, "only_sentinel"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (PROTECTED, "protected"),
        (MODULE_GETKEYS, "module_getkeys"),
        (MODULE_NO_CLUSTER, "module_no_cluster"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (MOVABLEKEYS, "movablekeys"),
        (ALLOW_BUSY, "allow_busy"),
        (MODULE_GETCHANNELS, "module_getchannels"),
        (TOUCHES_ARBITRARY_KEYS, "touches_arbitrary_keys"),
    ];
}

/// Where a key spec starts looking for keys (Redis's `begin_search`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BeginSearch {
    /// A fixed argument index (argv[0] is the command name).
    Index(i32),
    /// The first argument after `startfrom` (negative: from the end, searching backwards)
    /// that equals `keyword`, case-insensitively.
    Keyword {
        keyword: &'static str,
        startfrom: i32,
    },
    /// Keys cannot be found by the spec (Redis then relies on a getkeys procedure).
    Unknown,
}

/// How keys are found after the begin-search position (Redis's `find_keys`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindKeys {
    /// `lastkey` relative to the begin position (-1: the last argument), every `step`;
    /// `limit` > 1 means only 1/limit of the remaining arguments are keys.
    Range {
        lastkey: i32,
        step: i32,
        limit: i32,
    },
    /// The number of keys is at `keynumidx`; keys start at `firstkey`, both relative to begin.
    Keynum {
        keynumidx: i32,
        firstkey: i32,
        step: i32,
    },
    Unknown,
}

/// One key spec, as in Redis's command JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySpec {
    /// Redis's free-text note on the spec (COMMAND INFO shows it as `notes`).
    pub notes: Option<&'static str>,
    /// Key spec flags by name, e.g. `["RW", "ACCESS", "DELETE"]`.
    pub flags: &'static [&'static str],
    pub begin_search: BeginSearch,
    pub find_keys: FindKeys,
}

/// One documented argument (COMMAND DOCS `arguments`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DocArg {
    pub name: &'static str,
    /// `key`, `string`, `integer`, `double`, `pattern`, `unix-time`, `pure-token`, `oneof`, `block`.
    pub kind: &'static str,
    pub display_text: Option<&'static str>,
    pub key_spec_index: Option<i32>,
    pub token: Option<&'static str>,
    pub summary: Option<&'static str>,
    pub since: Option<&'static str>,
    pub deprecated_since: Option<&'static str>,
    /// `optional`, `multiple`, `multiple_token`.
    pub flags: &'static [&'static str],
    pub value: Option<&'static str>,
    pub arguments: &'static [DocArg],
}

/// COMMAND DOCS fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandDocs {
    pub summary: &'static str,
    pub since: &'static str,
    pub group: &'static str,
    pub complexity: Option<&'static str>,
    pub doc_flags: &'static [&'static str],
    pub deprecated_since: Option<&'static str>,
    pub replaced_by: Option<&'static str>,
    /// `(version, description)` pairs.
    pub history: &'static [(&'static str, &'static str)],
    pub arguments: &'static [DocArg],
}

/// One command or subcommand.
#[derive(Clone, Copy, Debug)]
pub struct CommandSpec {
    /// Lowercase; subcommands are `container|sub` as Redis names them (`client|setname`).
    pub name: &'static str,
    /// Redis arity: positive = exact argc, negative = at least -arity.
    pub arity: i32,
    /// Bits from [`flags`].
    pub flags: u64,
    /// ACL categories without the `@`, e.g. `["write", "string", "slow"]`.
    pub acl_categories: &'static [&'static str],
    /// COMMAND INFO tips, e.g. `["nondeterministic_output"]`.
    pub tips: &'static [&'static str],
    /// Legacy (first key, last key, step) triple as COMMAND INFO reports it.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    pub key_specs: &'static [KeySpec],
    pub subcommands: &'static [CommandSpec],
    pub docs: CommandDocs,
}

impl CommandSpec {
    pub fn has(&self, flag: u64) -> bool {
        self.flags & flag != 0
    }

    /// Does `argc` (including the command name) satisfy the arity?
    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let a = self.arity as i64;
        if a >= 0 { argc == a } else { argc >= -a }
    }
}

/// Every command (top-level; subcommands hang off their container), sorted by name.
pub fn all() -> &'static [CommandSpec] {
    super::table_data::COMMANDS
}

/// `answer(cmd)` for a top-level command, worked out once for the whole table and kept in
/// `side_table` (indexed by [`ordinal`]): for per-command facts the hot path asks for every
/// command. None for a subcommand (not in the table's order).
pub fn per_command<T: Copy>(
    side_table: &std::sync::OnceLock<Vec<T>>,
    cmd: &CommandSpec,
    answer: impl Fn(&'static CommandSpec) -> T,
) -> Option<T> {
    let i = ordinal(cmd)?;
    side_table
        .get_or_init(|| all().iter().map(answer).collect())
        .get(i)
        .copied()
}

/// The position of a top-level table entry in [`all`], found from its address (no hashing):
/// what per-command side tables (handlers, stats) are indexed by. None for subcommands.
pub fn ordinal(spec: &CommandSpec) -> Option<usize> {
    let size = std::mem::size_of::<CommandSpec>();
    let offset = (spec as *const CommandSpec as usize).checked_sub(all().as_ptr() as usize)?;
    let i = offset / size;
    (offset % size == 0 && i < all().len()).then_some(i)
}

/// Longest command name we look up; Redis's longest is well under this, and a bounded
/// stack buffer keeps the per-command lookup allocation-free.
const MAX_NAME: usize = 64;

// FxHash: the keys are our own command names (no attacker picks them), and this lookup runs
// once per command.
fn index() -> &'static rustc_hash::FxHashMap<&'static str, &'static CommandSpec> {
    static INDEX: std::sync::OnceLock<rustc_hash::FxHashMap<&'static str, &'static CommandSpec>> =
        std::sync::OnceLock::new();
    INDEX.get_or_init(|| all().iter().map(|c| (c.name, c)).collect())
}

/// Lowercases `name` into `buf`; `None` if it is too long or not UTF-8 (no command is).
fn lower<'a>(name: &[u8], buf: &'a mut [u8; MAX_NAME]) -> Option<&'a str> {
    let dst = buf.get_mut(..name.len())?;
    for (d, s) in dst.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    std::str::from_utf8(dst).ok()
}

/// The top-level command called `name`, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; MAX_NAME];
    let lowered = lower(name, &mut buf)?;
    index().get(lowered).copied()
}

/// A connection's last command lookup: a pipeline mostly repeats one command name, and
/// comparing a few bytes is cheaper than lowercasing and hashing them again.
#[derive(Default)]
pub struct LookupMemo {
    name: [u8; 16],
    len: usize,
    spec: Option<&'static CommandSpec>,
}

impl LookupMemo {
    /// [`lookup`], remembered for the exact bytes of `name`.
    #[inline(always)]
    pub fn lookup(&mut self, name: &[u8]) -> Option<&'static CommandSpec> {
        // Byte by byte: names are a few bytes, and a slice comparison calls memcmp.
        if let Some(spec) = self.spec
            && name.len() == self.len
            && name.iter().zip(&self.name).all(|(a, b)| a == b)
        {
            return Some(spec);
        }
        self.look_up_and_remember(name)
    }

    #[inline(never)]
    fn look_up_and_remember(&mut self, name: &[u8]) -> Option<&'static CommandSpec> {
        let spec = lookup(name)?;
        if let Some(slot) = self.name.get_mut(..name.len()) {
            slot.copy_from_slice(name);
            self.len = name.len();
            self.spec = Some(spec);
        }
        Some(spec)
    }
}

/// The subcommand `sub` of `container` (e.g. `setname` of `client`), case-insensitively.
pub fn lookup_subcommand(container: &CommandSpec, sub: &[u8]) -> Option<&'static CommandSpec> {
    // `container` may be a copy; resolve the static entry so we can hand out 'static refs.
    let parent = index().get(container.name).copied()?;
    parent.subcommands.iter().find(|s| {
        let short = s.name.rsplit_once('|').map_or(s.name, |(_, b)| b);
        short.as_bytes().eq_ignore_ascii_case(sub)
    })
}

/// Flag names of `bits`, in Redis's `COMMAND INFO` order.
pub fn flag_names(bits: u64) -> impl Iterator<Item = &'static str> {
    flags::NAMES
        .iter()
        .filter(move |(b, _)| bits & b != 0)
        .map(|(_, n)| *n)
}

/// The bit for a flag name as Redis spells it (used by the generator's output check).
pub fn flag_bit(name: &str) -> Option<u64> {
    flags::NAMES
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(b, _)| *b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinal_is_the_position_in_the_table_and_none_elsewhere() {
        for (i, spec) in all().iter().enumerate() {
            assert_eq!(ordinal(spec), Some(i), "{}", spec.name);
            for sub in spec.subcommands {
                assert_eq!(ordinal(sub), None, "{}", sub.name);
            }
        }
        let copy = lookup(b"get").cloned().unwrap();
        assert_eq!(ordinal(&copy), None);
    }

    #[test]
    fn the_lookup_memo_answers_as_lookup_does() {
        let mut memo = LookupMemo::default();
        let long = [b'x'; 40];
        for name in [
            &b"GET"[..],
            b"GET",
            b"get",
            b"SET",
            b"nosuchcommand",
            b"GET",
            &long,
            b"client",
            b"",
        ] {
            let want = lookup(name).map(|s| s.name);
            assert_eq!(memo.lookup(name).map(|s| s.name), want, "{name:?}");
        }
    }

    #[test]
    fn lookup_is_case_insensitive_and_bounded() {
        assert_eq!(lookup(b"GeT").map(|c| c.name), Some("get"));
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(&[b'a'; 200]).is_none());
        assert!(lookup(b"").is_none());
        let client = lookup(b"CLIENT").expect("client is in the table");
        assert_eq!(
            lookup_subcommand(client, b"SetName").map(|c| c.name),
            Some("client|setname")
        );
        assert_eq!(
            lookup_subcommand(client, b"setinfo").map(|c| c.arity),
            Some(4)
        );
        assert!(lookup_subcommand(client, b"client|setname").is_none());
    }

    #[test]
    fn table_is_sorted_and_flags_round_trip() {
        let names: Vec<&str> = all().iter().map(|c| c.name).collect();
        assert!(names.windows(2).all(|w| w[0] < w[1]));
        assert!(all().len() > 200);
        let get = lookup(b"get").expect("get");
        assert_eq!(
            flag_names(get.flags).collect::<Vec<_>>(),
            ["readonly", "fast"]
        );
        assert_eq!(flag_bit("movablekeys"), Some(flags::MOVABLEKEYS));
    }
}
