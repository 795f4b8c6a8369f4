//! Micro-benchmarks (divan) of the per-command work respgate does for every client: the
//! request parser, a tenant's namespace rewrite, and the glob matcher (KEYS, SCAN MATCH,
//! PSUBSCRIBE). `cargo bench --bench hot_path`; `cargo test --all-targets` runs each once.

use bytes::Bytes;
use respgate::command::table;
use respgate::glob::glob_match;
use respgate::policy::Namespace;
use respgate::protocol::{ParserLimits, RequestParser};

fn main() {
    divan::main();
}

/// 16 pipelined commands as redis-benchmark sends them (`-P 16`, GET and SET).
fn pipeline() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..8 {
        let key = format!("key:{i:012}");
        out.extend_from_slice(format!("*2\r\n$3\r\nGET\r\n${}\r\n{key}\r\n", key.len()).as_bytes());
        out.extend_from_slice(
            format!(
                "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$3\r\nxxx\r\n",
                key.len()
            )
            .as_bytes(),
        );
    }
    out
}

/// Parsing a 16-command pipeline into argument vectors.
#[divan::bench]
fn parse_pipeline_of_16(bencher: divan::Bencher) {
    let input = pipeline();
    bencher.bench_local(|| {
        let mut parser = RequestParser::new(ParserLimits::default());
        parser.buffer_mut().extend_from_slice(&input);
        let mut n = 0;
        while let Ok(Some(argv)) = parser.next_command() {
            n += argv.len();
        }
        divan::black_box(n)
    });
}

/// The same, as a connection parses: into one argument vector reused for every command.
#[divan::bench]
fn parse_pipeline_of_16_into_one_vector(bencher: divan::Bencher) {
    let input = pipeline();
    let mut argv = Vec::new();
    bencher.bench_local(|| {
        let mut parser = RequestParser::new(ParserLimits::default());
        parser.buffer_mut().extend_from_slice(&input);
        let mut n = 0;
        while let Ok(true) = parser.next_command_into(&mut argv) {
            n += argv.len();
        }
        divan::black_box(n)
    });
}

/// A tenant's MSET of 4 keys: every key gets the prefix.
#[divan::bench]
fn namespace_plan_mset_4_keys(bencher: divan::Bencher) {
    let ns = Namespace::new(b"shop:");
    let spec = table::lookup(b"mset").expect("mset in the table");
    let argv: Vec<Bytes> = ["MSET", "a", "1", "b", "2", "c", "3", "d", "4"]
        .iter()
        .map(|s| Bytes::from_static(s.as_bytes()))
        .collect();
    bencher.bench_local(|| divan::black_box(ns.plan(spec, &argv).is_ok()));
}

/// A SCAN MATCH-style pattern against a key that matches and one that does not.
#[divan::bench(args = [("user:*:session", "user:12345:session"), ("user:*:session", "user:12345:cart"), ("*[0-9]?x", "abcdefgh1zx")])]
fn glob(bencher: divan::Bencher, (pattern, text): (&str, &str)) {
    bencher.bench_local(|| {
        divan::black_box(glob_match(
            divan::black_box(pattern.as_bytes()),
            divan::black_box(text.as_bytes()),
            false,
        ))
    });
}
