//! Sets: the set value type and the S* commands.

use std::collections::HashMap;

use super::Handler;

/// A set of members.
#[derive(Clone, Debug, Default)]
pub struct SetValue {}

impl SetValue {
    /// OBJECT ENCODING's answer, as Redis 7.0 would pick it for the same data.
    pub fn encoding_name(&self) -> &'static str {
        "hashtable"
    }

    /// Approximate bytes held; must be O(1) (keep a running total as elements change).
    pub fn mem_size(&self) -> usize {
        0
    }
}

pub(super) fn register(_t: &mut HashMap<&'static str, Handler>) {}
