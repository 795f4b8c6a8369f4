//! Helpers shared by the engine's unit tests: run a command line, read the dirty counter.

use bytes::Bytes;

use super::{ClientView, Engine};
use crate::protocol::{Protocol, Reply};

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Runs one command (db 0, RESP2) through the engine as a client would.
pub fn run(e: &Engine, args: &[&str]) -> Reply {
    let argv: Vec<Bytes> = args.iter().map(|a| b(a)).collect();
    let spec = crate::command::table::lookup(args[0].as_bytes()).expect("command");
    let client = ClientView {
        db: 0,
        proto: Protocol::Resp2,
        tracker: None,
    };
    e.execute(client, spec, &argv)
}

pub fn dirty(e: &Engine) -> u64 {
    e.with_state(|s| s.dirty)
}
