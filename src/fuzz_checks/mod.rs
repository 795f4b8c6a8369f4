//! Owns the checking logic of the fuzz targets: one function per target, taking the fuzzer's
//! raw bytes, that panics when an invariant breaks.
//!
//! The cargo-fuzz crate in `fuzz/` calls these from its libFuzzer targets (nightly), and
//! `tests/fuzz_smoke.rs` calls them on stable Rust over the saved corpus in
//! `fuzz/corpus/<target>/` plus seeded pseudo-random inputs, so a regression shows in the
//! ordinary test suite. Not part of respgate's API (`#[doc(hidden)]`).

mod config;
mod glob;
mod namespace;
mod parser;
mod replies;

pub use config::config;
pub use glob::{glob, redis_stringmatchlen};
pub use namespace::namespace;
pub use parser::{parser_raw, parser_structured};
pub use replies::replies;

/// A target's check: panics when an invariant breaks.
pub type Check = fn(&[u8]);

/// Every target by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` call it.
pub const TARGETS: &[(&str, Check)] = &[
    ("parser_raw", parser_raw),
    ("parser_structured", parser_structured),
    ("glob", glob),
    ("namespace", namespace),
    ("replies", replies),
    ("config", config),
];

/// Reads choices out of the fuzzer's bytes (like `arbitrary::Unstructured`, without the
/// dependency): past the end every read gives zeros, so any input decodes to something.
pub(crate) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub(crate) fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    pub(crate) fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let v = if n <= 256 {
            usize::from(self.byte())
        } else {
            usize::from(self.byte()) << 8 | usize::from(self.byte())
        };
        v % n
    }

    /// Up to `max` raw bytes (a length byte, then that many).
    pub(crate) fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.below(max + 1).min(self.data.len());
        let (b, rest) = self.data.split_at(n);
        self.data = rest;
        b
    }

    /// Up to `max` bytes, each picked from `alphabet`.
    pub(crate) fn word(&mut self, alphabet: &[u8], max: usize) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }

    /// One of `items`, which must not be empty.
    pub(crate) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// The rest of the input.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}
