//! String commands of the embedded engine (t_string.c): GET, SET and friends.

use std::collections::HashMap;

use bytes::Bytes;

use super::value::Value;
use super::{Ctx, Handler};
use crate::protocol::{Reply, errors};

pub(super) fn register(t: &mut HashMap<&'static str, Handler>) {
    t.insert("get", get);
    t.insert("set", set);
}

/// Reads a string value: Ok(None) if absent, Err(WRONGTYPE) if another type.
pub(super) fn read_string(ctx: &mut Ctx, key: &Bytes) -> Result<Option<Bytes>, Reply> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match e.value.as_str() {
            Some(s) => Ok(Some(s.clone())),
            None => Err(Reply::err(errors::WRONGTYPE)),
        },
    }
}

fn get(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    match read_string(ctx, &argv[1]) {
        Ok(Some(v)) => Reply::Bulk(v),
        Ok(None) => Reply::Null,
        Err(e) => e,
    }
}

fn set(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    if argv.len() != 3 {
        return Reply::err(errors::SYNTAX);
    }
    let now = ctx.now_ms;
    ctx.db().set(&argv[1], Value::string(Bytes::copy_from_slice(&argv[2])), None, now);
    ctx.dirty(1);
    Reply::ok()
}
