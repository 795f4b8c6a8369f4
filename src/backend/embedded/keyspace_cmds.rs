//! Generic key commands of the embedded engine (db.c, expire.c): DEL, EXISTS, TTL, SCAN ...

use std::collections::HashMap;

use bytes::Bytes;

use super::{Ctx, Handler};
use crate::protocol::Reply;

pub(super) fn register(t: &mut HashMap<&'static str, Handler>) {
    t.insert("del", del);
    t.insert("unlink", del);
    t.insert("exists", exists);
}

fn del(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let mut n = 0;
    for key in &argv[1..] {
        if ctx.lookup(key).is_some() {
            ctx.db().remove(key);
            n += 1;
        }
    }
    ctx.dirty(n as u64);
    Reply::Integer(n)
}

fn exists(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let n = argv[1..]
        .iter()
        .filter(|k| ctx.lookup(k).is_some())
        .count();
    Reply::Integer(n as i64)
}
