//! Sorted sets: the zset value type (O(log n) rank and range) and the Z* commands.

use std::collections::HashMap;

use super::Handler;

/// A sorted set: member -> score, ordered by (score, member).
#[derive(Clone, Debug, Default)]
pub struct ZSetValue {}

impl ZSetValue {
    /// OBJECT ENCODING's answer, as Redis 7.0 would pick it for the same data.
    pub fn encoding_name(&self) -> &'static str {
        "skiplist"
    }

    /// Approximate bytes held; must be O(1) (keep a running total as elements change).
    pub fn mem_size(&self) -> usize {
        0
    }
}

pub(super) fn register(_t: &mut HashMap<&'static str, Handler>) {}
