//! DUMP and RESTORE (cluster.c): values serialized as Redis 7.0 DUMP payloads (see
//! [`super::rdb`]), so keys move between respgate and a real redis-server both ways.

use bytes::Bytes;

use super::db::Entry;
use super::rdb::{self, RdbError};
use super::{Ctx, arg_i64};
use crate::protocol::{Reply, errors};

pub const BAD_PAYLOAD: &str = "ERR DUMP payload version or checksum are wrong";
pub const BAD_DATA: &str = "ERR Bad data format";
pub const BUSYKEY: &str = "BUSYKEY Target key name already exists.";
pub const INVALID_TTL: &str = "ERR Invalid TTL value, must be >= 0";
pub const INVALID_IDLETIME: &str = "ERR Invalid IDLETIME value, must be >= 0";
pub const INVALID_FREQ: &str = "ERR Invalid FREQ value, must be >= 0 and <= 255";

pub(super) fn register(t: &mut crate::backend::embedded::Handlers) {
    t.insert("dump", dump);
    t.insert("restore", restore);
}

/// DUMP key: the payload, or a null bulk for a missing key.
fn dump(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let Some(key) = argv.get(1) else {
        return Reply::err(errors::wrong_arity("dump"));
    };
    let tunables = ctx.state.tunables.clone();
    match ctx.lookup_read(key) {
        None => Reply::Null,
        Some(entry) => Reply::bulk(rdb::dump_payload(&entry.value, &tunables)),
    }
}

/// What RESTORE's options asked for.
#[derive(Default)]
struct RestoreOptions {
    replace: bool,
    absttl: bool,
    idle_secs: Option<i64>,
    freq: Option<i64>,
}

/// Parses the options after the payload in Redis's order: each one validated as met, and
/// IDLETIME and FREQ exclusive (the second one is a syntax error).
fn parse_restore_options(args: &[Bytes]) -> Result<RestoreOptions, Reply> {
    let mut o = RestoreOptions::default();
    let mut i = 0;
    while i < args.len() {
        let opt = args[i].to_ascii_lowercase();
        let has_value = i + 1 < args.len();
        match opt.as_slice() {
            b"replace" => o.replace = true,
            b"absttl" => o.absttl = true,
            b"idletime" if has_value && o.freq.is_none() => {
                let v = arg_i64(&args[i + 1])?;
                if v < 0 {
                    return Err(Reply::err(INVALID_IDLETIME));
                }
                o.idle_secs = Some(v);
                i += 1;
            }
            b"freq" if has_value && o.idle_secs.is_none() => {
                let v = arg_i64(&args[i + 1])?;
                if !(0..=255).contains(&v) {
                    return Err(Reply::err(INVALID_FREQ));
                }
                o.freq = Some(v);
                i += 1;
            }
            _ => return Err(Reply::err(errors::SYNTAX)),
        }
        i += 1;
    }
    Ok(o)
}

/// RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f].
fn restore(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let [_, key, ttl_arg, payload, rest @ ..] = argv else {
        return Reply::err(errors::wrong_arity("restore"));
    };
    let opts = match parse_restore_options(rest) {
        Ok(o) => o,
        Err(e) => return e,
    };
    if !opts.replace && ctx.lookup(key).is_some() {
        return Reply::err(BUSYKEY);
    }
    let ttl = match arg_i64(ttl_arg) {
        Ok(v) if v < 0 => return Reply::err(INVALID_TTL),
        Ok(v) => v,
        Err(e) => return e,
    };
    let value = match rdb::parse_dump_payload(payload, &ctx.state.tunables) {
        Ok(v) => v,
        Err(RdbError::VersionOrChecksum) => return Reply::err(BAD_PAYLOAD),
        Err(_) => return Reply::err(BAD_DATA),
    };
    let deleted = opts.replace && ctx.db().remove(key).is_some();
    let now = ctx.now_ms;
    let expire_at = match ttl {
        0 => None,
        t if opts.absttl => Some(t as u64),
        t => Some((t as u64).saturating_add(now)),
    };
    if expire_at.is_some_and(|at| at <= now) {
        // Already expired: the key is not created (an old one REPLACE removed stays gone).
        if deleted {
            ctx.dirty(1);
        }
        return Reply::ok();
    }
    let mut entry = Entry::new(value, expire_at, now);
    if let Some(idle) = opts.idle_secs
        && !ctx.state.lfu_policy()
    {
        entry.set_idle(now, (idle as u64).saturating_mul(1000));
    }
    ctx.db().insert_entry(key, entry);
    ctx.dirty(1);
    Reply::ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &[&str]) -> Vec<Bytes> {
        s.iter()
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect()
    }

    #[test]
    fn restore_options_follow_redis_rules() {
        let o = parse_restore_options(&args(&["REPLACE", "absttl", "IDLETIME", "5"])).unwrap();
        assert!(o.replace && o.absttl && o.idle_secs == Some(5));
        let err = |a: &[&str]| match parse_restore_options(&args(a)) {
            Err(Reply::Error(e)) => e,
            _ => panic!("expected an error for {a:?}"),
        };
        assert_eq!(err(&["IDLETIME", "-1"]), INVALID_IDLETIME);
        assert_eq!(err(&["FREQ", "256"]), INVALID_FREQ);
        assert_eq!(err(&["FREQ", "1", "IDLETIME", "1"]), errors::SYNTAX);
        assert_eq!(err(&["IDLETIME"]), errors::SYNTAX);
        assert_eq!(err(&["bogus"]), errors::SYNTAX);
        assert_eq!(err(&["FREQ", "x"]), errors::NOT_INTEGER);
    }
}
