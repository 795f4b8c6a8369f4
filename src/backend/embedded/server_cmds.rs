//! Database-wide commands of the embedded engine: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB.

use bytes::Bytes;

use super::{Ctx, arg_i64};
use crate::protocol::{Reply, errors};

pub(super) fn register(t: &mut crate::backend::embedded::Handlers) {
    t.insert("dbsize", dbsize);
    t.insert("flushdb", flushdb);
    t.insert("flushall", flushall);
    t.insert("swapdb", swapdb);
}

fn dbsize(ctx: &mut Ctx, _argv: &[Bytes]) -> Reply {
    Reply::Integer(ctx.db().len() as i64)
}

/// FLUSHDB/FLUSHALL take an optional SYNC or ASYNC; both free memory immediately here.
fn flush_mode_ok(argv: &[Bytes]) -> bool {
    match argv.len() {
        1 => true,
        2 => argv[1].eq_ignore_ascii_case(b"sync") || argv[1].eq_ignore_ascii_case(b"async"),
        _ => false,
    }
}

fn flushdb(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    if !flush_mode_ok(argv) {
        return Reply::err(errors::SYNTAX);
    }
    let n = ctx.db().len() as u64;
    ctx.db().clear();
    ctx.dirty(n.max(1));
    Reply::ok()
}

fn flushall(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    if !flush_mode_ok(argv) {
        return Reply::err(errors::SYNTAX);
    }
    for db in ctx.state.dbs.iter_mut() {
        db.clear();
    }
    ctx.dirty(1);
    Reply::ok()
}

fn swapdb(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let count = ctx.state.dbs.len();
    let index = |b: &Bytes, which: &str| -> Result<usize, Reply> {
        let n = arg_i64(b).map_err(|_| Reply::err(format!("ERR invalid {which} DB index")))?;
        if n < 0 || n as usize >= count {
            return Err(Reply::err(errors::DB_INDEX));
        }
        Ok(n as usize)
    };
    let a = match index(&argv[1], "first") {
        Ok(a) => a,
        Err(e) => return e,
    };
    let b = match index(&argv[2], "second") {
        Ok(b) => b,
        Err(e) => return e,
    };
    if a != b {
        ctx.state.dbs.swap(a, b);
        ctx.dirty(1);
    }
    Reply::ok()
}
