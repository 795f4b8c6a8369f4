//! Lists: the list value type and the L*/R* commands (blocking variants are woken by the engine).

use std::collections::HashMap;

use super::Handler;

/// A list of elements.
#[derive(Clone, Debug, Default)]
pub struct ListValue {}

impl ListValue {
    /// OBJECT ENCODING's answer, as Redis 7.0 would pick it for the same data.
    pub fn encoding_name(&self) -> &'static str {
        "quicklist"
    }

    /// Approximate bytes held; must be O(1) (keep a running total as elements change).
    pub fn mem_size(&self) -> usize {
        0
    }
}

pub(super) fn register(_t: &mut HashMap<&'static str, Handler>) {}
