//! Owns the short, stable-Rust run of every fuzz target: each check in
//! `respgate::fuzz_checks` runs over the saved corpus in `fuzz/corpus/<target>/` and over a few
//! thousand inputs from a seeded PRNG, so a regression the fuzzers would find shows up in the
//! ordinary test suite (no nightly, no cargo-fuzz). The long runs are described in
//! fuzz/README.md.

mod common;

use std::path::Path;

use common::rng::Rng;

use respgate::fuzz_checks::TARGETS;

/// Pseudo-random inputs per target.
const RANDOM_INPUTS: usize = 3000;

/// Pieces that make random bytes look like RESP, globs and TOML more often than noise does.
const TOKENS: &[&[u8]] = &[
    b"*",
    b"$",
    b"\r\n",
    b"\n",
    b"0",
    b"1",
    b"2",
    b"3",
    b"-1",
    b"PING",
    b"SET",
    b" ",
    b"\"",
    b"'",
    b"\\x41",
    b"\\",
    b"[",
    b"]",
    b"^",
    b"-",
    b"?",
    b"a",
    b"b",
    b":",
    b"\xfe",
    b"\x00",
    b"[server]",
    b"[[tenants]]",
    b"prefix = ",
    b"= ",
    b"\"a:\"",
    b"max_clients",
];

fn random_input(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(400);
    let mut v = Vec::with_capacity(len);
    if rng.below(2) == 0 {
        v.extend((0..len).map(|_| rng.next() as u8));
    } else {
        while v.len() < len {
            v.extend_from_slice(TOKENS[rng.below(TOKENS.len())]);
        }
    }
    v
}

fn corpus(name: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(name);
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if let Ok(data) = std::fs::read(e.path()) {
                files.push((e.path().display().to_string(), data));
            }
        }
    }
    files.sort();
    files
}

fn run_target(name: &str, check: fn(&[u8])) {
    let saved = corpus(name);
    assert!(
        !saved.is_empty(),
        "fuzz/corpus/{name}/ is empty: the saved corpus belongs in the repository"
    );
    for (path, data) in &saved {
        let ok = std::panic::catch_unwind(|| check(data));
        assert!(ok.is_ok(), "{name}: corpus file {path} fails");
    }
    let mut rng = Rng(0x5eed ^ name.len() as u64);
    for i in 0..RANDOM_INPUTS {
        let data = random_input(&mut rng);
        let ok = std::panic::catch_unwind(|| check(&data));
        assert!(ok.is_ok(), "{name}: random input #{i} fails: {data:?}");
    }
}

macro_rules! target_tests {
    ($($name:ident),* $(,)?) => {$(
        #[test]
        fn $name() {
            let (name, check) = TARGETS
                .iter()
                .find(|(n, _)| *n == stringify!($name))
                .expect("target listed in fuzz_checks::TARGETS");
            run_target(name, *check);
        }
    )*};
}

target_tests!(
    parser_raw,
    parser_structured,
    glob,
    namespace,
    replies,
    config
);

#[test]
fn every_target_is_tested_here() {
    let here = [
        "parser_raw",
        "parser_structured",
        "glob",
        "namespace",
        "replies",
        "config",
    ];
    for (name, _) in TARGETS {
        assert!(here.contains(name), "add a test for fuzz target {name}");
    }
}
