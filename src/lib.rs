//! respgate: a Redis-protocol proxy.
//!
//! The path of one command: a client's bytes are cut into commands by
//! [`protocol::RequestParser`] (flat, resumable, with explicit limits, inline commands too);
//! the connection's [`server`] session handles connection state (AUTH, HELLO/RESP version,
//! SELECT, CLIENT ...), looks the command up in the [`command`] table (arity, flags, key
//! positions) and hands it to the backend — for now the [`backend::embedded`] engine — whose
//! [`protocol::Reply`] is encoded in the client's protocol version. Pipelined commands are
//! answered in order, and a batch of replies leaves in one write.

#![forbid(unsafe_code)]

pub mod backend;
pub mod command;
pub mod config;
#[doc(hidden)]
pub mod fuzz_checks;
pub mod glob;
pub mod metrics;
pub mod monitor;
pub mod net;
pub mod policy;
pub mod protocol;
pub mod server;
pub mod tls;
