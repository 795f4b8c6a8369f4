//! Forwarding to a real Redis server (standalone mode): shared pipelined connections, pinned
//! connections for clients that need their own (WATCH, SELECT, blocking commands), and the
//! pub/sub bridge.
//!
//! Each client is served by one shared connection per protocol version (chosen by client id),
//! so its commands reach Redis in the order it sent them; many clients share each one.

pub mod bridge;
pub mod cluster;
pub mod conn;

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::{BackendConfig, parse_duration};
use crate::protocol::Protocol;
use conn::{BackendConn, Init};

/// What went wrong between respgate and the backend. The client sees `ERR respgate: ...`;
/// none of these are the client's fault, and a retry may succeed once the backend is back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    #[error("backend refused respgate's login: {0}")]
    Refused(String),
    #[error("backend connection error: {0}")]
    Io(String),
    #[error("backend closed the connection")]
    Closed,
    #[error("backend did not answer within {0} ms")]
    Timeout(u128),
    #[error("{0}")]
    Protocol(String),
}

impl BackendError {
    /// The error reply a client gets.
    pub fn client_error(&self, address: &str) -> String {
        format!("ERR respgate: {self} ({address})")
    }
}

/// Where and how to connect.
#[derive(Debug)]
pub struct Target {
    pub address: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub connect_timeout: Duration,
}

/// The standalone backend.
pub struct Remote {
    pub target: Arc<Target>,
    /// Shared connections: [RESP2, RESP3] × `connections`.
    shared: [Vec<Mutex<Option<BackendConn>>>; 2],
    /// None: commands may wait for their reply forever.
    pub command_timeout: Option<Duration>,
}

impl Remote {
    pub fn new(config: &BackendConfig) -> Remote {
        let target = Arc::new(Target {
            address: config.address.clone().unwrap_or_default(),
            username: config.username.clone(),
            password: config.password.clone(),
            connect_timeout: parse_duration(&config.connect_timeout)
                .unwrap_or(Duration::from_secs(2)),
        });
        let slots = || (0..config.connections).map(|_| Mutex::new(None)).collect();
        Remote {
            target,
            shared: [slots(), slots()],
            command_timeout: parse_duration(&config.command_timeout)
                .ok()
                .filter(|d| !d.is_zero()),
        }
    }

    /// The shared connection that serves this client, (re)connecting it if needed.
    pub fn shared_conn(&self, proto: Protocol, client_id: u64) -> BackendConn {
        let pool = &self.shared[usize::from(proto == Protocol::Resp3)];
        let slot = &pool[(client_id as usize) % pool.len()];
        let mut slot = slot.lock();
        match slot.as_ref() {
            Some(c) if !c.is_dead() => c.clone(),
            _ => {
                let c = self.spawn(proto, 0);
                *slot = Some(c.clone());
                c
            }
        }
    }

    /// A connection of the client's own (closed when the client drops it).
    pub fn pinned_conn(&self, proto: Protocol, db: usize) -> BackendConn {
        self.spawn(proto, db)
    }

    /// Startup check: says in the log whether the backend answers (respgate starts either
    /// way and connects when it comes up).
    pub async fn log_reachability(&self) {
        match conn::connect(
            &self.target,
            Init {
                resp3: false,
                db: 0,
            },
        )
        .await
        {
            Ok(_) => {
                tracing::info!(backend = %self.target.address, "forwarding to redis (standalone)")
            }
            Err(e) => tracing::warn!(
                backend = %self.target.address,
                error = %e,
                "backend not reachable yet; clients get errors until it is"
            ),
        }
    }

    fn spawn(&self, proto: Protocol, db: usize) -> BackendConn {
        BackendConn::spawn(
            self.target.clone(),
            Init {
                resp3: proto == Protocol::Resp3,
                db,
            },
        )
    }
}
