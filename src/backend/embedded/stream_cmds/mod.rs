//! Streams (t_stream.c semantics, Redis 7.0.15): XADD XLEN XRANGE XREVRANGE XDEL XTRIM
//! XREAD XSETID, consumer groups (XGROUP XREADGROUP XACK XPENDING XCLAIM XAUTOCLAIM) and
//! XINFO. The value type lives in [`stream`]. XREAD/XREADGROUP ... BLOCK answer as Redis
//! does when it cannot block (inside MULTI): serve what is there or reply a null array; the
//! blocking layer re-runs them with [`resolve_ids_for_block`]'s argv.
//!
//! Writes whose argv would not replay to the same state set `State::propagate_as` to what
//! Redis propagates instead (t_stream.c): XADD with its generated ID, `~` trims made exact,
//! PEL changes as idempotent XCLAIMs, group positions as XGROUP SETID.

pub mod stream;

use bytes::Bytes;

use self::stream::{Group, INVALID_ENTRIES_READ, StreamId, StreamValue, Trim};
use super::value::Value;
use super::{Ctx, arg_i64};
use crate::protocol::{Protocol, Reply, errors};

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";
const XADD_TOO_SMALL: &str =
    "ERR The ID specified in XADD is equal or smaller than the target stream top item";
const XADD_ZERO: &str = "ERR The ID specified in XADD must be greater than 0-0";
const XADD_EXHAUSTED: &str =
    "ERR The stream has exhausted the last possible ID, unable to add more items";
const MAXLEN_NEGATIVE: &str = "ERR The MAXLEN argument must be >= 0.";
const LIMIT_NEGATIVE: &str = "ERR The LIMIT argument must be >= 0.";
const MAXLEN_AND_MINID: &str =
    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible";
const LIMIT_WITHOUT_STRATEGY: &str =
    "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy";
const XTRIM_WITHOUT_STRATEGY: &str =
    "ERR syntax error, XTRIM must be called with a trimming strategy";
const LIMIT_WITHOUT_TILDE: &str =
    "ERR syntax error, LIMIT cannot be used without the special ~ option";
const BAD_START: &str = "ERR invalid start ID for the interval";
const BAD_END: &str = "ERR invalid end ID for the interval";
const TIMEOUT_NOT_INT: &str = "ERR timeout is not an integer or out of range";
const TIMEOUT_NEGATIVE: &str = "ERR timeout is negative";
const TIMEOUT_RANGE: &str = "ERR timeout is out of range";
const GROUP_ONLY_XREADGROUP: &str =
    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.";
const NOACK_ONLY_XREADGROUP: &str =
    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.";
const MISSING_GROUP: &str = "ERR Missing GROUP option for XREADGROUP";
const DOLLAR_IN_XREADGROUP: &str = "ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.";
const GT_IN_XREAD: &str = "ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.";
const XGROUP_NEEDS_KEY: &str = "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.";
const BUSYGROUP: &str = "BUSYGROUP Consumer Group name already exists";
const ENTRIESREAD_RANGE: &str = "ERR value for ENTRIESREAD must be positive or -1";
const ENTRIES_ADDED_NEGATIVE: &str = "ERR entries_added must be positive";
const XSETID_BELOW_MAXDEL: &str =
    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id";
const XSETID_BELOW_TOP: &str =
    "ERR The ID specified in XSETID is smaller than the target stream top item";
const XSETID_ADDED_BELOW_LEN: &str =
    "ERR The entries_added specified in XSETID is smaller than the target stream length";
const COUNT_NOT_POSITIVE: &str = "ERR COUNT must be > 0";

const XGROUP_HELP: &[&str] = &[
    "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CREATE <key> <groupname> <id|$> [option]",
    "    Create a new consumer group. Options are:",
    "    * MKSTREAM",
    "      Create the empty stream if it does not exist.",
    "    * ENTRIESREAD entries_read",
    "      Set the group's entries_read counter (internal use).",
    "CREATECONSUMER <key> <groupname> <consumer>",
    "    Create a new consumer in the specified group.",
    "DELCONSUMER <key> <groupname> <consumer>",
    "    Remove the specified consumer.",
    "DESTROY <key> <groupname>",
    "    Remove the specified group.",
    "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
    "    Set the current group ID and entries_read counter.",
    "HELP",
    "    Prints this help.",
];

const XINFO_HELP: &[&str] = &[
    "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CONSUMERS <key> <groupname>",
    "    Show consumers of <groupname>.",
    "GROUPS <key>",
    "    Show the stream consumer groups.",
    "STREAM <key> [FULL [COUNT <count>]",
    "    Show information about the stream.",
    "HELP",
    "    Prints this help.",
];

pub fn register(t: &mut crate::backend::embedded::Handlers) {
    t.insert("xadd", xadd);
    t.insert("xlen", xlen);
    t.insert("xrange", xrange);
    t.insert("xrevrange", xrevrange);
    t.insert("xdel", xdel);
    t.insert("xtrim", xtrim);
    t.insert("xread", xread);
    t.insert("xreadgroup", xread);
    t.insert("xsetid", xsetid);
    t.insert("xgroup", xgroup);
    t.insert("xack", xack);
    t.insert("xpending", xpending);
    t.insert("xclaim", xclaim);
    t.insert("xautoclaim", xautoclaim);
    t.insert("xinfo", xinfo);
}

// --- argument parsing ---

/// Redis's string2ull: a non-negative long long, or else what strtoull accepts whole.
fn parse_u64(b: &[u8]) -> Option<u64> {
    if let Some(v) = super::num::parse_i64(b) {
        return u64::try_from(v).ok();
    }
    let s = std::str::from_utf8(b).ok()?;
    let s = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let v: u64 = digits.parse().ok()?;
    Some(if neg { v.wrapping_neg() } else { v })
}

/// streamGenericParseIDOrReply: `-`, `+` (unless strict), `ms` or `ms-seq`. With
/// `allow_star_seq` (XADD), `ms-*` gives (ms, false) = sequence to be generated.
fn parse_id_full(
    arg: &[u8],
    missing_seq: u64,
    strict: bool,
    allow_star_seq: bool,
) -> Result<(StreamId, bool), Reply> {
    let invalid = || Reply::err(INVALID_ID);
    if arg.len() > 127 {
        return Err(invalid());
    }
    if arg == b"-" || arg == b"+" {
        if strict {
            return Err(invalid());
        }
        return Ok((
            if arg == b"-" {
                StreamId::ZERO
            } else {
                StreamId::MAX
            },
            true,
        ));
    }
    let (ms_part, seq_part) = match arg.iter().position(|&c| c == b'-') {
        Some(i) => (&arg[..i], Some(&arg[i + 1..])),
        None => (arg, None),
    };
    let ms = parse_u64(ms_part).ok_or_else(invalid)?;
    match seq_part {
        Some(b"*") if allow_star_seq => Ok((StreamId::new(ms, 0), false)),
        Some(seq) => Ok((StreamId::new(ms, parse_u64(seq).ok_or_else(invalid)?), true)),
        None => Ok((StreamId::new(ms, missing_seq), true)),
    }
}

fn parse_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, Reply> {
    parse_id_full(arg, missing_seq, false, false).map(|r| r.0)
}

fn parse_strict_id(arg: &[u8], missing_seq: u64) -> Result<StreamId, Reply> {
    parse_id_full(arg, missing_seq, true, false).map(|r| r.0)
}

/// A range bound: `(id` is exclusive (then `-`/`+` are not accepted).
fn parse_interval(arg: &[u8], missing_seq: u64) -> Result<(StreamId, bool), Reply> {
    if arg.len() > 1 && arg[0] == b'(' {
        Ok((parse_strict_id(&arg[1..], missing_seq)?, true))
    } else {
        Ok((parse_id(arg, missing_seq)?, false))
    }
}

fn parse_range_start(arg: &[u8]) -> Result<StreamId, Reply> {
    let (id, ex) = parse_interval(arg, 0)?;
    if ex {
        id.incr().ok_or_else(|| Reply::err(BAD_START))
    } else {
        Ok(id)
    }
}

fn parse_range_end(arg: &[u8]) -> Result<StreamId, Reply> {
    let (id, ex) = parse_interval(arg, u64::MAX)?;
    if ex {
        id.decr().ok_or_else(|| Reply::err(BAD_END))
    } else {
        Ok(id)
    }
}

fn eq(a: &[u8], b: &str) -> bool {
    a.eq_ignore_ascii_case(b.as_bytes())
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn nogroup_key_or_group(key: &[u8], group: &[u8]) -> Reply {
    Reply::err(errors::sanitize(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        lossy(key),
        lossy(group)
    )))
}

fn nogroup_for_key(key: &[u8], group: &[u8]) -> Reply {
    Reply::err(errors::sanitize(format!(
        "NOGROUP No such consumer group '{}' for key name '{}'",
        lossy(group),
        lossy(key)
    )))
}

fn subcommand_syntax(argv: &[Bytes], container: &str) -> Reply {
    let sub = argv
        .get(1)
        .map(|s| lossy(&s[..s.len().min(128)]))
        .unwrap_or_default();
    Reply::err(errors::sanitize(format!(
        "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try {container} HELP."
    )))
}

// --- replies ---

fn id_reply(id: StreamId) -> Reply {
    Reply::Bulk(id.to_bytes())
}

fn entry_reply(id: StreamId, fields: &[Bytes]) -> Reply {
    Reply::Array(vec![
        id_reply(id),
        Reply::Array(fields.iter().map(|f| Reply::Bulk(f.clone())).collect()),
    ])
}

// --- keyspace access ---

/// The stream at `key`: Ok(None) if missing, WRONGTYPE for other types.
fn stream_at<'a>(
    ctx: &'a mut Ctx,
    key: &Bytes,
    read: bool,
) -> Result<Option<&'a mut StreamValue>, Reply> {
    let entry = if read {
        ctx.lookup_read(key)
    } else {
        ctx.lookup(key)
    };
    match entry {
        None => Ok(None),
        Some(e) => match &mut e.value {
            Value::Stream(s) => Ok(Some(s)),
            _ => Err(Reply::err(errors::WRONGTYPE)),
        },
    }
}

fn create_stream<'a>(ctx: &'a mut Ctx, key: &Bytes) -> Result<&'a mut StreamValue, Reply> {
    let now = ctx.now_ms;
    ctx.db().set(key, Value::Stream(Box::default()), None, now);
    stream_at(ctx, key, false)?.ok_or_else(|| Reply::err(errors::NO_SUCH_KEY))
}

/// The clock for times a stream keeps (delivery and seen times, `*` IDs): the wall clock
/// while replaying the AOF, whose command clock is stopped at 0 so keys do not expire.
fn stream_clock(ctx: &Ctx) -> u64 {
    if ctx.state.loading() {
        super::unix_ms()
    } else {
        ctx.now_ms
    }
}

/// Sets what this command propagates to the AOF instead of its argv.
fn propagate_as(ctx: &mut Ctx, cmds: Vec<Vec<Bytes>>) {
    ctx.state.propagate_as = Some(cmds);
}

fn cmd(parts: &[&[u8]]) -> Vec<Bytes> {
    parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()
}

/// streamPropagateXCLAIM: an idempotent XCLAIM that recreates one PEL entry as it is now
/// (on a deleted entry it removes the NACK on replay, as it did here).
fn xclaim_effect(
    key: &[u8],
    group: &[u8],
    consumer: &[u8],
    id: StreamId,
    delivery_time: u64,
    delivery_count: u64,
    last_id: StreamId,
) -> Vec<Bytes> {
    cmd(&[
        b"XCLAIM",
        key,
        group,
        consumer,
        b"0",
        id.to_string().as_bytes(),
        b"TIME",
        delivery_time.to_string().as_bytes(),
        b"RETRYCOUNT",
        delivery_count.to_string().as_bytes(),
        b"FORCE",
        b"JUSTID",
        b"LASTID",
        last_id.to_string().as_bytes(),
    ])
}

/// streamPropagateGroupID: the group's last delivered ID and entries_read.
fn setid_effect(key: &[u8], group: &[u8], g: &Group) -> Vec<Bytes> {
    cmd(&[
        b"XGROUP",
        b"SETID",
        key,
        group,
        g.last_id.to_string().as_bytes(),
        b"ENTRIESREAD",
        g.entries_read.to_string().as_bytes(),
    ])
}

/// XADD/XTRIM with `~` trimmed as far as node boundaries allowed: the copy that is
/// propagated trims exactly to what is left (streamRewriteApproxSpecifier and
/// streamRewriteTrimArgument), so a replay removes the same entries.
fn rewrite_approx_trim(prop: &mut [Bytes], a: &TrimArgs, s: &StreamValue) {
    let Some(how) = a.how else {
        return;
    };
    if !a.approx || a.value_pos == 0 || a.value_pos >= prop.len() {
        return;
    }
    prop[a.value_pos - 1] = Bytes::from_static(b"=");
    prop[a.value_pos] = match how {
        Trim::MaxLen(_) => Bytes::from(s.len().to_string()),
        // An emptied stream answers the largest ID, which trims everything on replay.
        Trim::MinId(_) => s
            .first_entry()
            .map(|(id, _)| *id)
            .unwrap_or(StreamId::MAX)
            .to_bytes(),
    };
}

// --- XADD / XTRIM ---

struct TrimArgs {
    how: Option<Trim>,
    approx: bool,
    limit: u64,
    nomkstream: bool,
    /// XADD: the explicit ID and whether its sequence was given.
    id: Option<(StreamId, bool)>,
    /// Index of the ID (or `*`) argument for XADD; argv.len() when not found.
    id_pos: usize,
    /// Index of the MAXLEN/MINID threshold (0: none).
    value_pos: usize,
}

/// streamParseAddOrTrimArgsOrReply. `loading`: from the AOF, which Redis trusts (LIMIT is
/// then ignored, as it comes with an exact threshold).
fn parse_trim_args(argv: &[Bytes], xadd: bool, loading: bool) -> Result<TrimArgs, Reply> {
    let mut a = TrimArgs {
        how: None,
        approx: false,
        limit: 0,
        nomkstream: false,
        id: None,
        id_pos: argv.len(),
        value_pos: 0,
    };
    let mut limit_given = false;
    let mut i = 2;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let opt = &argv[i];
        if xadd && opt.as_ref() == b"*" {
            a.id_pos = i;
            break;
        } else if (eq(opt, "maxlen") || eq(opt, "minid")) && more > 0 {
            if a.how.is_some() {
                return Err(Reply::err(MAXLEN_AND_MINID));
            }
            let maxlen = eq(opt, "maxlen");
            a.approx = false;
            let next = &argv[i + 1];
            if more >= 2 && next.as_ref() == b"~" {
                a.approx = true;
                i += 1;
            } else if more >= 2 && next.as_ref() == b"=" {
                i += 1;
            }
            let val = &argv[i + 1];
            a.value_pos = i + 1;
            if maxlen {
                let n = arg_i64(val)?;
                if n < 0 {
                    return Err(Reply::err(MAXLEN_NEGATIVE));
                }
                a.how = Some(Trim::MaxLen(n as u64));
            } else {
                a.how = Some(Trim::MinId(parse_strict_id(val, 0)?));
            }
            i += 2;
        } else if eq(opt, "limit") && more > 0 {
            let n = arg_i64(&argv[i + 1])?;
            if n < 0 {
                return Err(Reply::err(LIMIT_NEGATIVE));
            }
            a.limit = n as u64;
            limit_given = true;
            i += 2;
        } else if xadd && eq(opt, "nomkstream") {
            a.nomkstream = true;
            i += 1;
        } else if xadd {
            a.id = Some(parse_id_full(opt, 0, true, true)?);
            a.id_pos = i;
            break;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
    }
    if a.limit > 0 && a.how.is_none() {
        return Err(Reply::err(LIMIT_WITHOUT_STRATEGY));
    }
    if !xadd && a.how.is_none() {
        return Err(Reply::err(XTRIM_WITHOUT_STRATEGY));
    }
    if loading {
        a.limit = 0;
    } else if limit_given {
        if !a.approx {
            return Err(Reply::err(LIMIT_WITHOUT_TILDE));
        }
    } else if a.approx {
        a.limit = (100 * stream::NODE_MAX_ENTRIES).min(10_000);
    } else {
        a.limit = 0;
    }
    Ok(a)
}

fn xadd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let a = match parse_trim_args(argv, true, ctx.state.loading()) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let field_pos = a.id_pos + 1;
    let nfields = argv.len().saturating_sub(field_pos);
    if field_pos > argv.len() || nfields < 2 || nfields % 2 == 1 {
        return Reply::err(errors::wrong_arity("xadd"));
    }
    if let Some((id, true)) = a.id
        && id.is_zero()
    {
        return Reply::err(XADD_ZERO);
    }
    let key = &argv[1];
    let now = stream_clock(ctx);
    let s = match stream_at(ctx, key, false) {
        Err(e) => return e,
        Ok(Some(s)) => s,
        Ok(None) if a.nomkstream => return Reply::Null,
        Ok(None) => match create_stream(ctx, key) {
            Ok(s) => s,
            Err(e) => return e,
        },
    };
    if s.last_id == StreamId::MAX {
        return Reply::err(XADD_EXHAUSTED);
    }
    let id = match a.id {
        Some((id, true)) => Some(id),
        Some((id, false)) => {
            if s.last_id.ms == id.ms {
                if s.last_id.seq == u64::MAX {
                    None
                } else {
                    Some(StreamId::new(id.ms, s.last_id.seq + 1))
                }
            } else {
                Some(id)
            }
        }
        None => {
            if now > s.last_id.ms {
                Some(StreamId::new(now, 0))
            } else {
                s.last_id.incr()
            }
        }
    };
    let Some(id) = id.filter(|id| *id > s.last_id) else {
        return Reply::err(XADD_TOO_SMALL);
    };
    s.append(id, argv[field_pos..].to_vec());
    if let Some(how) = a.how {
        s.trim(how, a.approx, a.limit);
    }
    // Propagated with the ID it got (and exact trimming), so a replay adds the same.
    let mut prop = argv.to_vec();
    prop[a.id_pos] = id.to_bytes();
    rewrite_approx_trim(&mut prop, &a, s);
    propagate_as(ctx, vec![prop]);
    ctx.dirty(1);
    id_reply(id)
}

fn xtrim(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let a = match parse_trim_args(argv, false, ctx.state.loading()) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let s = match stream_at(ctx, &argv[1], false) {
        Err(e) => return e,
        Ok(None) => return Reply::Integer(0),
        Ok(Some(s)) => s,
    };
    let Some(how) = a.how else {
        return Reply::err(XTRIM_WITHOUT_STRATEGY);
    };
    let deleted = s.trim(how, a.approx, a.limit);
    if deleted > 0 {
        let mut prop = argv.to_vec();
        rewrite_approx_trim(&mut prop, &a, s);
        propagate_as(ctx, vec![prop]);
        ctx.dirty(deleted);
    }
    Reply::Integer(deleted as i64)
}

// --- XLEN XRANGE XREVRANGE XDEL XSETID ---

fn xlen(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match stream_at(ctx, &argv[1], true) {
        Err(e) => e,
        Ok(None) => Reply::Integer(0),
        Ok(Some(s)) => Reply::Integer(s.len() as i64),
    }
}

fn xrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    range_generic(ctx, argv, false)
}

fn xrevrange(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    range_generic(ctx, argv, true)
}

fn range_generic(ctx: &mut Ctx, argv: &[Bytes], rev: bool) -> Reply {
    let (start_arg, end_arg) = if rev {
        (&argv[3], &argv[2])
    } else {
        (&argv[2], &argv[3])
    };
    let start = match parse_range_start(start_arg) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let end = match parse_range_end(end_arg) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut count: i64 = -1;
    let mut j = 4;
    while j < argv.len() {
        if eq(&argv[j], "count") && j + 1 < argv.len() {
            count = match arg_i64(&argv[j + 1]) {
                Ok(v) => v.max(0),
                Err(e) => return e,
            };
            j += 2;
        } else {
            return Reply::err(errors::SYNTAX);
        }
    }
    let s = match stream_at(ctx, &argv[1], true) {
        Err(e) => return e,
        Ok(None) => return Reply::Array(Vec::new()),
        Ok(Some(s)) => s,
    };
    if count == 0 {
        return Reply::NullArray;
    }
    let limit = if count < 0 {
        usize::MAX
    } else {
        count as usize
    };
    Reply::Array(
        s.range(start, end, rev)
            .take(limit)
            .map(|(id, f)| entry_reply(*id, f))
            .collect(),
    )
}

fn xdel(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let s = match stream_at(ctx, &argv[1], false) {
        Err(e) => return e,
        Ok(None) => return Reply::Integer(0),
        Ok(Some(s)) => s,
    };
    let mut ids = Vec::with_capacity(argv.len() - 2);
    for a in &argv[2..] {
        match parse_strict_id(a, 0) {
            Ok(id) => ids.push(id),
            Err(e) => return e,
        }
    }
    let deleted = ids.into_iter().filter(|id| s.delete(*id)).count() as u64;
    if deleted > 0 {
        ctx.dirty(deleted);
    }
    Reply::Integer(deleted as i64)
}

fn xsetid(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let id = match parse_strict_id(&argv[2], 0) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut entries_added: i64 = -1;
    let mut max_del = StreamId::ZERO;
    let mut i = 3;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if eq(&argv[i], "entriesadded") && more > 0 {
            entries_added = match arg_i64(&argv[i + 1]) {
                Ok(v) if v < 0 => return Reply::err(ENTRIES_ADDED_NEGATIVE),
                Ok(v) => v,
                Err(e) => return e,
            };
        } else if eq(&argv[i], "maxdeletedid") && more > 0 {
            max_del = match parse_strict_id(&argv[i + 1], 0) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if id < max_del {
                return Reply::err(XSETID_BELOW_MAXDEL);
            }
        } else {
            return Reply::err(errors::SYNTAX);
        }
        i += 2;
    }
    let s = match stream_at(ctx, &argv[1], false) {
        Err(e) => return e,
        Ok(None) => return Reply::err(errors::NO_SUCH_KEY),
        Ok(Some(s)) => s,
    };
    if !s.is_empty() {
        if id < s.last_valid_id() {
            return Reply::err(XSETID_BELOW_TOP);
        }
        if entries_added != -1 && (s.len() as u64) > entries_added as u64 {
            return Reply::err(XSETID_ADDED_BELOW_LEN);
        }
    }
    s.last_id = id;
    if entries_added != -1 {
        s.entries_added = entries_added as u64;
    }
    if !max_del.is_zero() {
        s.max_deleted_id = max_del;
    }
    ctx.dirty(1);
    Reply::ok()
}

// --- XREAD / XREADGROUP ---

/// A parsed XREAD/XREADGROUP.
struct ReadArgs {
    block: Option<u64>,
    count: usize,
    group: Option<(Bytes, Bytes)>,
    noack: bool,
    streams_at: usize,
    nstreams: usize,
}

fn parse_timeout_ms(arg: &[u8], now: u64) -> Result<u64, Reply> {
    let v = super::num::parse_i64(arg).ok_or_else(|| Reply::err(TIMEOUT_NOT_INT))?;
    if v < 0 {
        return Err(Reply::err(TIMEOUT_NEGATIVE));
    }
    if v > 0 && v > i64::MAX - now as i64 {
        return Err(Reply::err(TIMEOUT_RANGE));
    }
    Ok(v as u64)
}

fn parse_read_args(argv: &[Bytes], xreadgroup: bool, now: u64) -> Result<ReadArgs, Reply> {
    let mut r = ReadArgs {
        block: None,
        count: 0,
        group: None,
        noack: false,
        streams_at: 0,
        nstreams: 0,
    };
    let mut i = 1;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let o = &argv[i];
        if eq(o, "block") && more > 0 {
            r.block = Some(parse_timeout_ms(&argv[i + 1], now)?);
            i += 2;
        } else if eq(o, "count") && more > 0 {
            let c = arg_i64(&argv[i + 1])?;
            r.count = usize::try_from(c.max(0)).unwrap_or(usize::MAX);
            i += 2;
        } else if eq(o, "streams") && more > 0 {
            r.streams_at = i + 1;
            let n = argv.len() - r.streams_at;
            if !n.is_multiple_of(2) {
                let (name, sym) = if xreadgroup {
                    ("XREADGROUP", '>')
                } else {
                    ("XREAD", '$')
                };
                return Err(Reply::err(format!(
                    "ERR Unbalanced {name} list of streams: for each stream key an ID or '{sym}' must be specified."
                )));
            }
            r.nstreams = n / 2;
            break;
        } else if eq(o, "group") && more >= 2 {
            if !xreadgroup {
                return Err(Reply::err(GROUP_ONLY_XREADGROUP));
            }
            r.group = Some((argv[i + 1].clone(), argv[i + 2].clone()));
            i += 3;
        } else if eq(o, "noack") {
            if !xreadgroup {
                return Err(Reply::err(NOACK_ONLY_XREADGROUP));
            }
            r.noack = true;
            i += 1;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
    }
    if r.streams_at == 0 {
        return Err(Reply::err(errors::SYNTAX));
    }
    if xreadgroup && r.group.is_none() {
        return Err(Reply::err(MISSING_GROUP));
    }
    Ok(r)
}

/// The BLOCK argument of an XREAD/XREADGROUP, if present and valid (0 = forever).
pub(crate) fn block_timeout_ms(argv: &[Bytes]) -> Option<u64> {
    let xreadgroup = argv.first().is_some_and(|n| eq(n, "xreadgroup"));
    parse_read_args(argv, xreadgroup, super::unix_ms())
        .ok()
        .and_then(|r| r.block)
}

/// The argv with each `$` ID replaced by its stream's current last ID (0-0 if missing), so
/// re-running the command after later writes serves what Redis serves a blocked client.
pub(crate) fn resolve_ids_for_block(ctx: &mut Ctx, argv: &[Bytes]) -> Vec<Bytes> {
    let mut out = argv.to_vec();
    let xreadgroup = argv.first().is_some_and(|n| eq(n, "xreadgroup"));
    let Ok(r) = parse_read_args(argv, xreadgroup, ctx.now_ms) else {
        return out;
    };
    for k in 0..r.nstreams {
        let id_at = r.streams_at + r.nstreams + k;
        if argv.get(id_at).is_some_and(|a| a.as_ref() == b"$") {
            let key = argv[r.streams_at + k].clone();
            let now = ctx.now_ms;
            let last = match ctx.db().peek(&key, now).map(|e| &e.value) {
                Some(Value::Stream(s)) => s.last_id,
                _ => StreamId::ZERO,
            };
            out[id_at] = last.to_bytes();
        }
    }
    out
}

/// Redis refuses BLOCK in XREAD/XREADGROUP called from a script (rather than answering
/// at once, as inside MULTI), when it meets the option: earlier bad options win.
pub(crate) fn block_from_script_error(argv: &[Bytes]) -> Option<Reply> {
    let mut i = 1;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        let o = &argv[i];
        if eq(o, "streams") {
            return None;
        } else if eq(o, "block") && more > 0 {
            return Some(Reply::err(format!(
                "ERR {} command is not allowed with BLOCK option from scripts",
                lossy(&argv[0])
            )));
        } else if eq(o, "count") && more > 0 {
            arg_i64(&argv[i + 1]).ok()?;
            i += 2;
        } else if eq(o, "group") && more >= 2 {
            i += 3;
        } else {
            i += 1;
        }
    }
    None
}

/// For an XREADGROUP waiter re-checked after a write to one of its keys: Redis's error if
/// that key no longer holds a stream or its group is gone (the wait then ends), else None.
pub(crate) fn blocked_group_gone(value: Option<&Value>, argv: &[Bytes]) -> Option<&'static str> {
    let Some(Value::Stream(s)) = value else {
        return Some(super::blocking::STREAM_KEY_GONE);
    };
    let r = parse_read_args(argv, true, 0).ok()?;
    let (group, _) = r.group?;
    s.group(&group)
        .is_none()
        .then_some(super::blocking::STREAM_GROUP_GONE)
}

/// What to read from one stream: entries after `after`, or the consumer's history
/// (`history`) starting after it, or new entries for the group (`>`).
#[derive(Clone, Copy)]
enum ReadFrom {
    After(StreamId),
    NewForGroup,
}

fn xread(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let xreadgroup = eq(&argv[0], "xreadgroup");
    let r = match parse_read_args(argv, xreadgroup, ctx.now_ms) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let mut froms = Vec::with_capacity(r.nstreams);
    for k in 0..r.nstreams {
        let key = &argv[r.streams_at + k];
        let id_arg = &argv[r.streams_at + r.nstreams + k];
        let s = match stream_at(ctx, key, true) {
            Err(e) => return e,
            Ok(s) => s,
        };
        if let Some((group, _)) = &r.group
            && s.as_ref().and_then(|s| s.group(group)).is_none()
        {
            return Reply::err(errors::sanitize(format!(
                "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                lossy(key),
                lossy(group)
            )));
        }
        let from = if id_arg.as_ref() == b"$" {
            if xreadgroup {
                return Reply::err(DOLLAR_IN_XREADGROUP);
            }
            ReadFrom::After(s.map(|s| s.last_id).unwrap_or(StreamId::ZERO))
        } else if id_arg.as_ref() == b">" {
            if !xreadgroup {
                return Reply::err(GT_IN_XREAD);
            }
            ReadFrom::NewForGroup
        } else {
            match parse_strict_id(id_arg, 0) {
                Ok(id) => ReadFrom::After(id),
                Err(e) => return e,
            }
        };
        froms.push(from);
    }
    let now = stream_clock(ctx);
    let mut served: Vec<(Reply, Reply)> = Vec::new();
    let mut dirty = 0;
    // XREADGROUP propagates its effects, not itself (a replay must not re-read).
    let mut prop: Vec<Vec<Bytes>> = Vec::new();
    for (k, from) in froms.into_iter().enumerate() {
        let key = &argv[r.streams_at + k];
        let Ok(Some(s)) = stream_at(ctx, key, true) else {
            continue;
        };
        let entries = match &r.group {
            None => {
                let ReadFrom::After(gt) = from else {
                    continue;
                };
                if s.is_empty() || s.last_valid_id() <= gt {
                    continue;
                }
                let Some(start) = gt.incr() else {
                    continue;
                };
                let limit = if r.count == 0 { usize::MAX } else { r.count };
                s.range(start, StreamId::MAX, false)
                    .take(limit)
                    .map(|(id, f)| entry_reply(*id, f))
                    .collect::<Vec<_>>()
            }
            Some((group, consumer)) => {
                // Redis 7.0 creates/refreshes the consumer only when it serves it.
                let mut touch = |s: &mut StreamValue| {
                    if s.ensure_consumer(group, consumer, now) {
                        dirty += 1;
                        return true;
                    }
                    if let Some(c) = s
                        .group_mut(group)
                        .and_then(|g| g.consumers.get_mut(consumer))
                    {
                        c.seen_time = now;
                    }
                    false
                };
                match from {
                    ReadFrom::After(gt) => {
                        touch(s);
                        dirty += 1;
                        read_history(s, group, consumer, gt, r.count, now)
                    }
                    ReadFrom::NewForGroup => {
                        let last = s.group(group).map(|g| g.last_id).unwrap_or_default();
                        if s.is_empty() || s.last_valid_id() <= last {
                            continue;
                        }
                        let created = touch(s);
                        dirty += 1;
                        let (entries, ids) =
                            read_new(s, group, consumer, last, r.count, r.noack, now);
                        // Each new PEL entry as an XCLAIM (which also creates the
                        // consumer); with NOACK the consumer's creation. Then the group's
                        // last ID with entries_read: 7.0.15 writes that only for NOACK, so
                        // its replay loses entries_read (XCLAIM's LASTID does not carry it);
                        // later Redis writes it always, and so do we.
                        for id in ids {
                            prop.push(xclaim_effect(key, group, consumer, id, now, 1, id));
                        }
                        if r.noack && created && !entries.is_empty() {
                            prop.push(cmd(&[b"XGROUP", b"CREATECONSUMER", key, group, consumer]));
                        }
                        if !entries.is_empty()
                            && let Some(g) = s.group(group)
                        {
                            prop.push(setid_effect(key, group, g));
                        }
                        entries
                    }
                }
            }
        };
        served.push((Reply::Bulk(key.clone()), Reply::Array(entries)));
    }
    if dirty > 0 {
        if xreadgroup {
            propagate_as(ctx, prop);
        }
        ctx.dirty(dirty);
    }
    if served.is_empty() {
        return Reply::NullArray;
    }
    match ctx.client.proto {
        Protocol::Resp2 => Reply::Array(
            served
                .into_iter()
                .map(|(k, v)| Reply::Array(vec![k, v]))
                .collect(),
        ),
        _ => Reply::Map(served),
    }
}

/// XREADGROUP with an explicit ID: the consumer's own pending entries after `gt`
/// (deleted ones come back as [id, nil]); each served one counts a delivery.
fn read_history(
    s: &mut StreamValue,
    group: &[u8],
    consumer: &Bytes,
    gt: StreamId,
    count: usize,
    now: u64,
) -> Vec<Reply> {
    let Some(start) = gt.incr() else {
        return Vec::new();
    };
    let limit = if count == 0 { usize::MAX } else { count };
    let ids: Vec<StreamId> = s
        .group(group)
        .and_then(|g| g.consumers.get(consumer))
        .map(|c| c.pel.range(start..).take(limit).copied().collect())
        .unwrap_or_default();
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        match s.get(&id) {
            Some(f) => {
                out.push(entry_reply(id, f));
                if let Some(n) = s.group_mut(group).and_then(|g| g.pel.get_mut(&id)) {
                    n.delivery_time = now;
                    n.delivery_count += 1;
                }
            }
            None => out.push(Reply::Array(vec![id_reply(id), Reply::NullArray])),
        }
    }
    out
}

/// XREADGROUP `>`: entries after the group's last delivered ID, advancing it and the
/// entries_read counter, and adding them to the PELs unless NOACK. Also returns the IDs
/// added to the PEL.
fn read_new(
    s: &mut StreamValue,
    group: &[u8],
    consumer: &Bytes,
    last: StreamId,
    count: usize,
    noack: bool,
    now: u64,
) -> (Vec<Reply>, Vec<StreamId>) {
    let Some(start) = last.incr() else {
        return (Vec::new(), Vec::new());
    };
    let limit = if count == 0 { usize::MAX } else { count };
    let mut pending = Vec::new();
    let picked: Vec<(StreamId, Vec<Bytes>)> = s
        .range(start, StreamId::MAX, false)
        .take(limit)
        .map(|(id, f)| (*id, f.clone()))
        .collect();
    let mut out = Vec::with_capacity(picked.len());
    for (id, fields) in picked {
        let tomb = s.has_tombstones_from(id);
        let estimate = s.estimate_distance(id);
        let added = s.entries_added;
        if let Some(g) = s.group_mut(group)
            && id > g.last_id
        {
            if g.entries_read != INVALID_ENTRIES_READ && !tomb {
                g.entries_read += 1;
            } else if added > 0 {
                g.entries_read = estimate;
            }
            g.last_id = id;
        }
        if !noack {
            s.assign_nack(group, consumer, id, now, 1);
            pending.push(id);
        }
        out.push(entry_reply(id, &fields));
    }
    (out, pending)
}

// --- XGROUP ---

fn xgroup(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let sub = &argv[1];
    if argv.len() == 2 && eq(sub, "help") {
        return Reply::Array(XGROUP_HELP.iter().map(|l| Reply::Simple(l)).collect());
    }
    let known = [
        "create",
        "setid",
        "destroy",
        "createconsumer",
        "delconsumer",
    ];
    if !known.iter().any(|k| eq(sub, k)) {
        return Reply::err(errors::unknown_subcommand(sub, "xgroup"));
    }
    if argv.len() < 4 {
        return subcommand_syntax(argv, "XGROUP");
    }
    let mut mkstream = false;
    let mut entries_read = INVALID_ENTRIES_READ;
    let create = eq(sub, "create");
    if create || eq(sub, "setid") {
        let mut i = 5;
        while i < argv.len() {
            if create && eq(&argv[i], "mkstream") {
                mkstream = true;
                i += 1;
            } else if eq(&argv[i], "entriesread") && i + 1 < argv.len() {
                entries_read = match arg_i64(&argv[i + 1]) {
                    Ok(v) if v < 0 && v != INVALID_ENTRIES_READ => {
                        return Reply::err(ENTRIESREAD_RANGE);
                    }
                    Ok(v) => v,
                    Err(e) => return e,
                };
                i += 2;
            } else {
                return subcommand_syntax(argv, "XGROUP");
            }
        }
    }
    let key = &argv[1 + 1];
    let gname = argv[3].clone();
    let exists = match stream_at(ctx, key, false) {
        Err(e) => return e,
        Ok(s) => s.map(|s| s.group(&gname).is_some()),
    };
    if !mkstream {
        match exists {
            None => return Reply::err(XGROUP_NEEDS_KEY),
            Some(false) if !create && !eq(sub, "destroy") => {
                return nogroup_for_key(key, &gname);
            }
            _ => {}
        }
    }
    let n = argv.len();
    if create && (5..=8).contains(&n) {
        let id = if argv[4].as_ref() == b"$" {
            None
        } else {
            match parse_strict_id(&argv[4], 0) {
                Ok(id) => Some(id),
                Err(e) => return e,
            }
        };
        let s = match exists {
            Some(_) => match stream_at(ctx, key, false) {
                Ok(Some(s)) => s,
                _ => return Reply::err(errors::NO_SUCH_KEY),
            },
            None => match create_stream(ctx, key) {
                Ok(s) => s,
                Err(e) => return e,
            },
        };
        let id = id.unwrap_or(s.last_id);
        if s.create_group(gname, id, entries_read) {
            ctx.dirty(1);
            Reply::ok()
        } else {
            if exists.is_none() {
                ctx.dirty(1);
            }
            Reply::err(BUSYGROUP)
        }
    } else if eq(sub, "setid") && (n == 5 || n == 7) {
        let Ok(Some(s)) = stream_at(ctx, key, false) else {
            return Reply::err(XGROUP_NEEDS_KEY);
        };
        let id = if argv[4].as_ref() == b"$" {
            s.last_id
        } else {
            match parse_id(&argv[4], 0) {
                Ok(id) => id,
                Err(e) => return e,
            }
        };
        if let Some(g) = s.group_mut(&gname) {
            g.last_id = id;
            g.entries_read = entries_read;
        }
        ctx.dirty(1);
        Reply::ok()
    } else if eq(sub, "destroy") && n == 4 {
        let Ok(Some(s)) = stream_at(ctx, key, false) else {
            return Reply::err(XGROUP_NEEDS_KEY);
        };
        if s.destroy_group(&gname) {
            ctx.dirty(1);
            Reply::Integer(1)
        } else {
            Reply::Integer(0)
        }
    } else if eq(sub, "createconsumer") && n == 5 {
        let now = stream_clock(ctx);
        let Ok(Some(s)) = stream_at(ctx, key, false) else {
            return Reply::err(XGROUP_NEEDS_KEY);
        };
        if s.ensure_consumer(&gname, &argv[4], now) {
            ctx.dirty(1);
            Reply::Integer(1)
        } else {
            Reply::Integer(0)
        }
    } else if eq(sub, "delconsumer") && n == 5 {
        let Ok(Some(s)) = stream_at(ctx, key, false) else {
            return Reply::err(XGROUP_NEEDS_KEY);
        };
        match s.delete_consumer(&gname, &argv[4]) {
            Some(pending) => {
                ctx.dirty(1);
                Reply::Integer(pending as i64)
            }
            None => Reply::Integer(0),
        }
    } else {
        subcommand_syntax(argv, "XGROUP")
    }
}

// --- XACK XPENDING XCLAIM XAUTOCLAIM ---

fn xack(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let s = match stream_at(ctx, &argv[1], true) {
        Err(e) => return e,
        Ok(Some(s)) if s.group(&argv[2]).is_some() => s,
        Ok(_) => return Reply::Integer(0),
    };
    let mut ids = Vec::with_capacity(argv.len() - 3);
    for a in &argv[3..] {
        match parse_strict_id(a, 0) {
            Ok(id) => ids.push(id),
            Err(e) => return e,
        }
    }
    let acked = ids.into_iter().filter(|id| s.ack(&argv[2], *id)).count() as u64;
    if acked > 0 {
        ctx.dirty(acked);
    }
    Reply::Integer(acked as i64)
}

fn xpending(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let n = argv.len();
    if n != 3 && !(6..=9).contains(&n) {
        return Reply::err(errors::SYNTAX);
    }
    let mut range = None;
    if n >= 6 {
        let mut at = 3;
        let mut min_idle = 0;
        if eq(&argv[3], "idle") {
            min_idle = match arg_i64(&argv[4]) {
                Ok(v) => v,
                Err(e) => return e,
            };
            if n < 8 {
                return Reply::err(errors::SYNTAX);
            }
            at += 2;
        }
        let Some(count_arg) = argv.get(at + 2) else {
            return Reply::err(errors::SYNTAX);
        };
        let count = match arg_i64(count_arg) {
            Ok(v) => v.max(0) as u64,
            Err(e) => return e,
        };
        let start = match parse_range_start(&argv[at]) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let end = match parse_range_end(&argv[at + 1]) {
            Ok(v) => v,
            Err(e) => return e,
        };
        range = Some((start, end, count, min_idle, argv.get(at + 3).cloned()));
    }
    let now = ctx.now_ms;
    let g = match stream_at(ctx, &argv[1], false) {
        Err(e) => return e,
        Ok(s) => match s.and_then(|s| s.group(&argv[2])) {
            Some(g) => g,
            None => return nogroup_key_or_group(&argv[1], &argv[2]),
        },
    };
    let Some((start, end, count, min_idle, consumer)) = range else {
        let (Some(first), Some(last)) = (g.pel.keys().next(), g.pel.keys().next_back()) else {
            return Reply::Array(vec![
                Reply::Integer(0),
                Reply::Null,
                Reply::Null,
                Reply::NullArray,
            ]);
        };
        let owners = g
            .consumers
            .iter()
            .filter(|(_, c)| !c.pel.is_empty())
            .map(|(name, c)| {
                Reply::Array(vec![
                    Reply::Bulk(name.clone()),
                    Reply::bulk_int(c.pel.len() as i64),
                ])
            })
            .collect();
        return Reply::Array(vec![
            Reply::Integer(g.pel.len() as i64),
            id_reply(*first),
            id_reply(*last),
            Reply::Array(owners),
        ]);
    };
    let ids: Vec<StreamId> = match &consumer {
        Some(name) => match g.consumers.get(name) {
            None => return Reply::Array(Vec::new()),
            Some(c) if start <= end => c.pel.range(start..=end).copied().collect(),
            Some(_) => Vec::new(),
        },
        None if start <= end => g.pel.range(start..=end).map(|(k, _)| *k).collect(),
        None => Vec::new(),
    };
    let mut out = Vec::new();
    for id in ids {
        if out.len() as u64 >= count {
            break;
        }
        let Some(nack) = g.pel.get(&id) else {
            continue;
        };
        let idle = now as i64 - nack.delivery_time as i64;
        if min_idle != 0 && idle < min_idle {
            continue;
        }
        out.push(Reply::Array(vec![
            id_reply(id),
            Reply::Bulk(nack.consumer.clone()),
            Reply::Integer(idle.max(0)),
            Reply::Integer(nack.delivery_count as i64),
        ]));
    }
    Reply::Array(out)
}

fn xclaim(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match stream_at(ctx, &argv[1], true) {
        Err(e) => return e,
        Ok(s) => {
            if s.and_then(|s| s.group(&argv[2])).is_none() {
                return nogroup_key_or_group(&argv[1], &argv[2]);
            }
        }
    }
    let min_idle = match super::num::parse_i64(&argv[4]) {
        Some(v) => v.max(0),
        None => return Reply::err("ERR Invalid min-idle-time argument for XCLAIM"),
    };
    let mut j = 5;
    let mut ids = Vec::new();
    while j < argv.len() {
        match parse_strict_id(&argv[j], 0) {
            Ok(id) => ids.push(id),
            Err(_) => break,
        }
        j += 1;
    }
    let now = stream_clock(ctx) as i64;
    let (mut force, mut justid) = (false, false);
    let mut retrycount: i64 = -1;
    let mut delivery: i64 = -1;
    let mut last_id = StreamId::ZERO;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let opt = &argv[j];
        let int_opt = |name: &str| -> Result<i64, Reply> {
            super::num::parse_i64(&argv[j + 1])
                .ok_or_else(|| Reply::err(format!("ERR Invalid {name} option argument for XCLAIM")))
        };
        if eq(opt, "force") {
            force = true;
        } else if eq(opt, "justid") {
            justid = true;
        } else if eq(opt, "idle") && more > 0 {
            delivery = match int_opt("IDLE") {
                Ok(v) => now.wrapping_sub(v),
                Err(e) => return e,
            };
            j += 1;
        } else if eq(opt, "time") && more > 0 {
            delivery = match int_opt("TIME") {
                Ok(v) => v,
                Err(e) => return e,
            };
            j += 1;
        } else if eq(opt, "retrycount") && more > 0 {
            retrycount = match int_opt("RETRYCOUNT") {
                Ok(v) => v,
                Err(e) => return e,
            };
            j += 1;
        } else if eq(opt, "lastid") && more > 0 {
            last_id = match parse_strict_id(&argv[j + 1], 0) {
                Ok(v) => v,
                Err(e) => return e,
            };
            j += 1;
        } else {
            return Reply::err(errors::sanitize(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                lossy(opt)
            )));
        }
        j += 1;
    }
    if delivery < 0 || delivery > now {
        delivery = now;
    }
    let (group, name) = (&argv[2], &argv[3]);
    let Ok(Some(s)) = stream_at(ctx, &argv[1], false) else {
        return Reply::Array(Vec::new());
    };
    let mut dirty = 0;
    let mut moved_last_id = false;
    if let Some(g) = s.group_mut(group)
        && last_id > g.last_id
    {
        g.last_id = last_id;
        moved_last_id = true;
        dirty += 1;
    }
    let group_last = s.group(group).map(|g| g.last_id).unwrap_or_default();
    let key = &argv[1];
    // Propagated as one idempotent XCLAIM per PEL change (streamPropagateXCLAIM).
    let mut prop = Vec::new();
    let mut out = Vec::new();
    for id in ids {
        let pending = s.group(group).and_then(|g| g.pel.get(&id)).cloned();
        let Some(fields) = s.get(&id).cloned() else {
            if let Some(n) = pending {
                prop.push(xclaim_effect(
                    key,
                    group,
                    &n.consumer,
                    id,
                    n.delivery_time,
                    n.delivery_count,
                    group_last,
                ));
                s.ack(group, id);
                dirty += 1;
            }
            continue;
        };
        let (prev_count, had_owner) = match &pending {
            Some(n) => {
                if min_idle > 0 && now - (n.delivery_time as i64) < min_idle {
                    continue;
                }
                (n.delivery_count, true)
            }
            None if force => (1, false),
            None => continue,
        };
        let _ = had_owner;
        s.ensure_consumer(group, name, now as u64);
        let count = if retrycount >= 0 {
            retrycount as u64
        } else if !justid {
            prev_count + 1
        } else {
            prev_count
        };
        s.assign_nack(group, name, id, delivery as u64, count);
        if let Some(c) = s.group_mut(group).and_then(|g| g.consumers.get_mut(name)) {
            c.seen_time = now as u64;
        }
        prop.push(xclaim_effect(
            key,
            group,
            name,
            id,
            delivery as u64,
            count,
            group_last,
        ));
        out.push(if justid {
            id_reply(id)
        } else {
            entry_reply(id, &fields)
        });
        dirty += 1;
    }
    // The XCLAIMs carry LASTID; without any, a moved last ID needs its own record.
    if moved_last_id
        && prop.is_empty()
        && let Some(g) = s.group(group)
    {
        prop.push(setid_effect(key, group, g));
    }
    if dirty > 0 {
        propagate_as(ctx, prop);
        ctx.dirty(dirty);
    }
    Reply::Array(out)
}

fn xautoclaim(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let min_idle = match super::num::parse_i64(&argv[4]) {
        Some(v) => v.max(0),
        None => return Reply::err("ERR Invalid min-idle-time argument for XAUTOCLAIM"),
    };
    let start = match parse_range_start(&argv[5]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let mut count: i64 = 100;
    let mut justid = false;
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if eq(&argv[j], "count") && more > 0 {
            let max = i64::MAX / 16;
            count = match super::num::parse_i64(&argv[j + 1]) {
                Some(v) if (1..=max).contains(&v) => v,
                _ => return Reply::err(COUNT_NOT_POSITIVE),
            };
            j += 2;
        } else if eq(&argv[j], "justid") {
            justid = true;
            j += 1;
        } else {
            return Reply::err(errors::SYNTAX);
        }
    }
    let now = stream_clock(ctx);
    let (group, name) = (&argv[2], &argv[3]);
    let s = match stream_at(ctx, &argv[1], true) {
        Err(e) => return e,
        Ok(Some(s)) if s.group(group).is_some() => s,
        Ok(_) => return nogroup_key_or_group(&argv[1], group),
    };
    let mut attempts = count.saturating_mul(10);
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut cursor = start;
    let mut next: Option<StreamId>;
    let mut dirty = 0;
    let key = &argv[1];
    let group_last = s.group(group).map(|g| g.last_id).unwrap_or_default();
    // Each PEL change as an idempotent XCLAIM, as for XCLAIM itself.
    let mut prop = Vec::new();
    loop {
        next = s
            .group(group)
            .and_then(|g| g.pel.range(cursor..).next().map(|(k, _)| *k));
        if attempts == 0 || count == 0 {
            break;
        }
        attempts -= 1;
        let Some(id) = next else {
            break;
        };
        cursor = match id.incr() {
            Some(c) => c,
            None => StreamId::MAX,
        };
        let Some(nack) = s.group(group).and_then(|g| g.pel.get(&id)).cloned() else {
            break;
        };
        let Some(fields) = s.get(&id).cloned() else {
            prop.push(xclaim_effect(
                key,
                group,
                &nack.consumer,
                id,
                nack.delivery_time,
                nack.delivery_count,
                group_last,
            ));
            s.ack(group, id);
            deleted.push(id_reply(id));
            count -= 1;
            dirty += 1;
            if id == StreamId::MAX {
                next = None;
                break;
            }
            continue;
        };
        if min_idle > 0 && (now as i64 - nack.delivery_time as i64) < min_idle {
            if id == StreamId::MAX {
                next = None;
                break;
            }
            continue;
        }
        s.ensure_consumer(group, name, now);
        let dc = if justid {
            nack.delivery_count
        } else {
            nack.delivery_count + 1
        };
        s.assign_nack(group, name, id, now, dc);
        if let Some(c) = s.group_mut(group).and_then(|g| g.consumers.get_mut(name)) {
            c.seen_time = now;
        }
        prop.push(xclaim_effect(key, group, name, id, now, dc, group_last));
        claimed.push(if justid {
            id_reply(id)
        } else {
            entry_reply(id, &fields)
        });
        count -= 1;
        dirty += 1;
        if id == StreamId::MAX {
            next = None;
            break;
        }
    }
    if dirty > 0 {
        propagate_as(ctx, prop);
        ctx.dirty(dirty);
    }
    Reply::Array(vec![
        id_reply(next.unwrap_or(StreamId::ZERO)),
        Reply::Array(claimed),
        Reply::Array(deleted),
    ])
}

// --- XINFO ---

fn entry_or_null(e: Option<(&StreamId, &Vec<Bytes>)>) -> Reply {
    match e {
        Some((id, f)) => entry_reply(*id, f),
        None => Reply::Null,
    }
}

fn opt_int(v: Option<i64>) -> Reply {
    v.map(Reply::Integer).unwrap_or(Reply::Null)
}

fn entries_read_reply(g: &Group) -> Reply {
    opt_int((g.entries_read != INVALID_ENTRIES_READ).then_some(g.entries_read))
}

fn field(name: &'static str, v: Reply) -> (Reply, Reply) {
    (Reply::bulk_str(name), v)
}

/// Rax node count estimate for XINFO's radix-tree-nodes (exact for 0 and 1 keys).
fn rax_nodes(keys: usize) -> i64 {
    if keys == 0 { 1 } else { keys as i64 + 1 }
}

fn xinfo(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let sub = &argv[1];
    if eq(sub, "help") {
        if argv.len() != 2 {
            return subcommand_syntax(argv, "XINFO");
        }
        return Reply::Array(XINFO_HELP.iter().map(|l| Reply::Simple(l)).collect());
    }
    if !["stream", "groups", "consumers"].iter().any(|k| eq(sub, k)) {
        return Reply::err(errors::unknown_subcommand(sub, "xinfo"));
    }
    let Some(key) = argv.get(2) else {
        return subcommand_syntax(argv, "XINFO");
    };
    let now = ctx.now_ms;
    let s = match stream_at(ctx, key, true) {
        Err(e) => return e,
        Ok(None) => return Reply::err(errors::NO_SUCH_KEY),
        Ok(Some(s)) => s,
    };
    if eq(sub, "consumers") && argv.len() == 4 {
        let Some(g) = s.group(&argv[3]) else {
            return nogroup_for_key(key, &argv[3]);
        };
        Reply::Array(
            g.consumers
                .iter()
                .map(|(name, c)| {
                    Reply::Map(vec![
                        field("name", Reply::Bulk(name.clone())),
                        field("pending", Reply::Integer(c.pel.len() as i64)),
                        field(
                            "idle",
                            Reply::Integer((now as i64 - c.seen_time as i64).max(0)),
                        ),
                    ])
                })
                .collect(),
        )
    } else if eq(sub, "groups") && argv.len() == 3 {
        Reply::Array(
            s.groups()
                .iter()
                .map(|(name, g)| {
                    Reply::Map(vec![
                        field("name", Reply::Bulk(name.clone())),
                        field("consumers", Reply::Integer(g.consumers.len() as i64)),
                        field("pending", Reply::Integer(g.pel.len() as i64)),
                        field("last-delivered-id", id_reply(g.last_id)),
                        field("entries-read", entries_read_reply(g)),
                        field("lag", opt_int(s.lag(g))),
                    ])
                })
                .collect(),
        )
    } else if eq(sub, "stream") {
        match xinfo_stream(s, &argv[3..]) {
            Some(r) => r,
            None => subcommand_syntax(argv, "XINFO"),
        }
    } else {
        subcommand_syntax(argv, "XINFO")
    }
}

/// None: bad options (Redis answers with the subcommand syntax error).
fn xinfo_stream(s: &StreamValue, opts: &[Bytes]) -> Option<Reply> {
    let mut count: i64 = 10;
    match opts.len() {
        0 => {
            return Some(Reply::Map(vec![
                field("length", Reply::Integer(s.len() as i64)),
                field("radix-tree-keys", Reply::Integer(s.node_count() as i64)),
                field(
                    "radix-tree-nodes",
                    Reply::Integer(rax_nodes(s.node_count())),
                ),
                field("last-generated-id", id_reply(s.last_id)),
                field("max-deleted-entry-id", id_reply(s.max_deleted_id)),
                field("entries-added", Reply::Integer(s.entries_added as i64)),
                field("recorded-first-entry-id", id_reply(s.first_id)),
                field("groups", Reply::Integer(s.groups().len() as i64)),
                field("first-entry", entry_or_null(s.first_entry())),
                field("last-entry", entry_or_null(s.last_entry())),
            ]));
        }
        1 | 3 => {
            if !eq(&opts[0], "full") {
                return None;
            }
            if opts.len() == 3 {
                if !eq(&opts[1], "count") {
                    return None;
                }
                count = match arg_i64(&opts[2]) {
                    Ok(v) if v < 0 => 10,
                    Ok(v) => v,
                    Err(e) => return Some(e),
                };
            }
        }
        _ => return None,
    }
    let limit = if count == 0 {
        usize::MAX
    } else {
        count as usize
    };
    let entries = s
        .range(StreamId::ZERO, StreamId::MAX, false)
        .take(limit)
        .map(|(id, f)| entry_reply(*id, f))
        .collect();
    let groups = s
        .groups()
        .iter()
        .map(|(name, g)| {
            let pending = g
                .pel
                .iter()
                .take(limit)
                .map(|(id, n)| {
                    Reply::Array(vec![
                        id_reply(*id),
                        Reply::Bulk(n.consumer.clone()),
                        Reply::Integer(n.delivery_time as i64),
                        Reply::Integer(n.delivery_count as i64),
                    ])
                })
                .collect();
            let consumers = g
                .consumers
                .iter()
                .map(|(cname, c)| {
                    let pel = c
                        .pel
                        .iter()
                        .take(limit)
                        .filter_map(|id| g.pel.get(id).map(|n| (id, n)))
                        .map(|(id, n)| {
                            Reply::Array(vec![
                                id_reply(*id),
                                Reply::Integer(n.delivery_time as i64),
                                Reply::Integer(n.delivery_count as i64),
                            ])
                        })
                        .collect();
                    Reply::Map(vec![
                        field("name", Reply::Bulk(cname.clone())),
                        field("seen-time", Reply::Integer(c.seen_time as i64)),
                        field("pel-count", Reply::Integer(c.pel.len() as i64)),
                        field("pending", Reply::Array(pel)),
                    ])
                })
                .collect();
            Reply::Map(vec![
                field("name", Reply::Bulk(name.clone())),
                field("last-delivered-id", id_reply(g.last_id)),
                field("entries-read", entries_read_reply(g)),
                field("lag", opt_int(s.lag(g))),
                field("pel-count", Reply::Integer(g.pel.len() as i64)),
                field("pending", Reply::Array(pending)),
                field("consumers", Reply::Array(consumers)),
            ])
        })
        .collect();
    Some(Reply::Map(vec![
        field("length", Reply::Integer(s.len() as i64)),
        field("radix-tree-keys", Reply::Integer(s.node_count() as i64)),
        field(
            "radix-tree-nodes",
            Reply::Integer(rax_nodes(s.node_count())),
        ),
        field("last-generated-id", id_reply(s.last_id)),
        field("max-deleted-entry-id", id_reply(s.max_deleted_id)),
        field("entries-added", Reply::Integer(s.entries_added as i64)),
        field("recorded-first-entry-id", id_reply(s.first_id)),
        field("entries", Reply::Array(entries)),
        field("groups", Reply::Array(groups)),
    ]))
}
