#![allow(dead_code)]
pub mod redis_cluster;
pub mod redis_sentinel;
pub mod redis_server;
pub mod resp;
pub mod respgate;
pub mod rng;
pub mod tls;
