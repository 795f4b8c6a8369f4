//! Redis Cluster building blocks, pure where possible: hash slots and the slot of a command
//! ([`slots`]), the slot map and its discovery and MOVED/ASK handling ([`topology`]),
//! multi-key splitting and fan-out merging ([`split`]), and the raw-frame readers they share
//! ([`raw`]). The forwarding path (src/server) wires them to connections.

pub mod raw;
pub mod router;
pub mod slots;
pub mod split;
pub mod topology;
