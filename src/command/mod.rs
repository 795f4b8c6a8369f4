//! The command table and what reads it: lookup, key positions, and the COMMAND command.

pub mod introspection;
pub mod keys;
pub mod table;
mod table_data;

pub use table::CommandSpec;
pub mod client;
pub mod config_cmd;
pub mod connection;
pub mod info;
pub mod pubsub;
pub mod tracking;
pub mod transaction;
