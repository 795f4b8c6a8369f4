//! Forwarding to a real Redis server (standalone mode): shared pipelined connections, pinned
//! connections for clients that need their own (WATCH, SELECT, blocking commands), and the
//! pub/sub bridge.
//!
//! Each client is served by one shared connection per protocol version (chosen by client id),
//! so its commands reach Redis in the order it sent them; many clients share each one.

pub mod bridge;
pub mod cluster;
pub mod conn;
pub mod sentinel;
pub mod walk;

use std::sync::Arc;
use std::time::Duration;

/// Where respgate publishes an empty message right before forwarding a client's WAIT (a
/// tenant's inside its namespace): the PUBLISH is propagated to replicas, so the WAIT's
/// connection has written after every write of the client (see `Session::forward`).
pub const WAIT_SYNC_CHANNEL: &[u8] = b"__respgate__:wait";

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

use crate::config::{BackendConfig, parse_duration};
use crate::policy::tenant::BackendUser;
use crate::protocol::Protocol;
use conn::{BackendConn, Init};

/// What went wrong between respgate and the backend. The client sees `ERR respgate: ...`;
/// none of these are the client's fault, and a retry may succeed once the backend is back.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BackendError {
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    #[error("backend TLS handshake failed: {0}")]
    Tls(String),
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
    #[error(
        "the master changed (failover) while the command was in flight; it may or may not have run"
    )]
    Failover,
}

impl BackendError {
    /// The error reply a client gets.
    pub fn client_error(&self, address: &str) -> String {
        format!("ERR respgate: {self} ({address})")
    }
}

/// Where and how to connect. The address changes when Sentinel reports a new master.
#[derive(Debug)]
pub struct Target {
    address: parking_lot::RwLock<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub connect_timeout: Duration,
    /// TLS settings; None: plain TCP.
    pub tls: Option<crate::tls::BackendTls>,
    /// Bumped on every address change: connections to an older master are dead.
    generation: std::sync::atomic::AtomicU64,
    /// Announces address changes (the pub/sub bridge reconnects on them).
    changes: tokio::sync::watch::Sender<u64>,
    /// Something suggests the master moved (READONLY, a lost connection): Sentinel mode
    /// asks the sentinels again now instead of at the next poll.
    pub recheck: tokio::sync::Notify,
}

impl Target {
    pub fn new(
        address: String,
        username: Option<String>,
        password: Option<String>,
        connect_timeout: Duration,
        tls: Option<crate::tls::BackendTls>,
    ) -> Target {
        Target {
            address: parking_lot::RwLock::new(address),
            username,
            password,
            connect_timeout,
            tls,
            generation: std::sync::atomic::AtomicU64::new(0),
            changes: tokio::sync::watch::channel(0).0,
            recheck: tokio::sync::Notify::new(),
        }
    }

    /// Wakes up on every address change.
    pub fn watch_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The server to connect to now.
    pub fn address(&self) -> String {
        self.address.read().clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Points new connections at `address`; returns false if it already was the address.
    pub fn set_address(&self, address: &str) -> bool {
        let mut current = self.address.write();
        if *current == address {
            return false;
        }
        *current = address.to_string();
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            + 1;
        drop(current);
        self.changes.send_replace(generation);
        true
    }
}

/// Sentinel mode's settings, or None in other modes. `tls`: for the sentinels
/// ([`crate::tls::TlsSetup::sentinel`]).
pub fn sentinel_config(
    config: &BackendConfig,
    tls: Option<crate::tls::BackendTls>,
) -> Option<sentinel::Sentinels> {
    if config.mode != crate::config::BackendMode::Sentinel {
        return None;
    }
    Some(sentinel::Sentinels {
        addresses: config.sentinels.clone(),
        master_name: config.master_name.clone().unwrap_or_default(),
        username: config.sentinel_username.clone(),
        password: config.sentinel_password.clone(),
        connect_timeout: parse_duration(&config.connect_timeout).unwrap_or(Duration::from_secs(2)),
        tls,
    })
}

/// The backend of the forwarding modes (standalone; sentinel, whose master address follows
/// failovers).
pub struct Remote {
    pub target: Arc<Target>,
    /// Shared connections: [RESP2, RESP3] × `connections`.
    shared: [Vec<Mutex<Option<BackendConn>>>; 2],
    /// None: commands may wait for their reply forever.
    pub command_timeout: Option<Duration>,
    /// Every connection opened (shared, pinned, one-off), to close them all on a failover.
    live: Mutex<Vec<conn::WeakConn>>,
    /// Cluster mode: the slot map and per-node connections.
    pub cluster: Option<Arc<cluster::router::ClusterBackend>>,
    /// Shared connections of tenants that log in as their own ACL user, per user (same
    /// shape as `shared`). Same target: they follow a sentinel failover like the others.
    tenant_shared: Mutex<FxHashMap<Arc<BackendUser>, TenantPool>>,
    /// Sentinel mode with `read_from = "replica" | "prefer-replica"`: the replica read-only
    /// commands go to (its address follows the sentinels' list of healthy replicas; empty
    /// while none is known), and its shared connections.
    pub replica: Option<Arc<Target>>,
    replica_shared: [Vec<Mutex<Option<BackendConn>>>; 2],
    /// `read_from = "replica"`: without a healthy replica, reads fail instead of going to
    /// the master.
    pub replica_required: bool,
}

/// [RESP2, RESP3] × `connections` shared connections of one backend user.
type TenantPool = [Vec<Option<BackendConn>>; 2];

impl Remote {
    /// `tls`: for the Redis server(s) ([`crate::tls::TlsSetup::backend`]).
    pub fn new(config: &BackendConfig, tls: Option<crate::tls::BackendTls>) -> Remote {
        let target = Arc::new(Target::new(
            config.address.clone().unwrap_or_default(),
            config.username.clone(),
            config.password.clone(),
            parse_duration(&config.connect_timeout).unwrap_or(Duration::from_secs(2)),
            tls,
        ));
        let slots = || (0..config.connections).map(|_| Mutex::new(None)).collect();
        let cluster_tls = target.tls.clone();
        let replica = (config.mode == crate::config::BackendMode::Sentinel
            && config.read_from != "master")
            .then(|| {
                Arc::new(Target::new(
                    String::new(),
                    config.username.clone(),
                    config.password.clone(),
                    parse_duration(&config.connect_timeout).unwrap_or(Duration::from_secs(2)),
                    target.tls.clone(),
                ))
            });
        Remote {
            target,
            shared: [slots(), slots()],
            command_timeout: parse_duration(&config.command_timeout)
                .ok()
                .filter(|d| !d.is_zero()),
            live: Mutex::new(Vec::new()),
            tenant_shared: Mutex::new(FxHashMap::default()),
            replica,
            replica_shared: [slots(), slots()],
            replica_required: config.read_from == "replica",
            cluster: (config.mode == crate::config::BackendMode::Cluster).then(|| {
                Arc::new(cluster::router::ClusterBackend::new(
                    config.nodes.clone(),
                    cluster::topology::ConnectParams {
                        username: config.username.clone(),
                        password: config.password.clone(),
                        connect_timeout: parse_duration(&config.connect_timeout)
                            .unwrap_or(Duration::from_secs(2)),
                        tls: cluster_tls.clone(),
                    },
                    config.connections,
                    cluster::router::ReadFrom::parse(&config.read_from),
                ))
            }),
        }
    }

    /// Sentinel read replicas: the shared replica connection for this client; `Ok(None)`:
    /// no replica is known and reads may go to the master; `Err`: `read_from = "replica"`
    /// and none is known.
    pub fn replica_conn(
        &self,
        proto: Protocol,
        client_id: u64,
    ) -> Result<Option<BackendConn>, String> {
        let Some(target) = &self.replica else {
            return Ok(None);
        };
        if target.address().is_empty() {
            return if self.replica_required {
                Err(
                    "ERR respgate: no healthy replica to read from (read_from = \"replica\")"
                        .into(),
                )
            } else {
                Ok(None)
            };
        }
        let pool = &self.replica_shared[usize::from(proto == Protocol::Resp3)];
        let mut slot = pool[(client_id as usize) % pool.len()].lock();
        match slot.as_ref() {
            Some(c) if !c.is_dead() => Ok(Some(c.clone())),
            _ => {
                let c = self.spawn_to(target.clone(), None, proto, 0);
                *slot = Some(c.clone());
                Ok(Some(c))
            }
        }
    }

    /// Points replica reads at `address` ("" : none healthy), closing the connections to the
    /// replica read from before.
    pub fn set_read_replica(&self, address: &str) {
        let Some(target) = &self.replica else { return };
        if !target.set_address(address) {
            return;
        }
        tracing::info!(replica = %address, "reading from this replica");
        for pool in &self.replica_shared {
            for slot in pool {
                if let Some(c) = slot.lock().take() {
                    c.kill(BackendError::Failover);
                }
            }
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

    /// The shared connection that serves this client when it logs in to the backend as
    /// `user` (a tenant's own ACL user; None: the configured one).
    pub fn shared_conn_as(
        &self,
        user: Option<&Arc<BackendUser>>,
        proto: Protocol,
        client_id: u64,
    ) -> BackendConn {
        let Some(user) = user else {
            return self.shared_conn(proto, client_id);
        };
        let mut pools = self.tenant_shared.lock();
        let n = self.shared[0].len().max(1);
        let pool = pools
            .entry(user.clone())
            .or_insert_with(|| [vec![None; n], vec![None; n]]);
        let slots = &mut pool[usize::from(proto == Protocol::Resp3)];
        let slot = &mut slots[(client_id as usize) % n];
        match slot.as_ref() {
            Some(c) if !c.is_dead() => c.clone(),
            _ => {
                let c = self.spawn_to(self.target.clone(), Some(user.clone()), proto, 0);
                *slot = Some(c.clone());
                c
            }
        }
    }

    /// A connection of the client's own, logged in as `user` (None: the configured one).
    pub fn pinned_conn_as(
        &self,
        user: Option<&Arc<BackendUser>>,
        proto: Protocol,
        db: usize,
    ) -> BackendConn {
        self.spawn_to(self.target.clone(), user.cloned(), proto, db)
    }

    /// Startup check: says in the log whether the backend answers (respgate starts either
    /// way and connects when it comes up). A PING follows the connect because a refusal can
    /// come after it: in TLS 1.3 a server rejects a missing client certificate only after
    /// the client has finished its handshake, and a server may require AUTH.
    pub async fn log_reachability(&self) {
        let init = Init {
            resp3: false,
            db: 0,
            user: None,
        };
        let checked = async {
            let mut stream = conn::connect(&self.target, init).await?;
            let ping = conn::round_trip(&mut stream, &[b"PING"]);
            let reply = tokio::time::timeout(self.target.connect_timeout, ping)
                .await
                .map_err(|_| BackendError::Timeout(self.target.connect_timeout.as_millis()))??;
            if let crate::protocol::reply_scan::Frame::Error(e) =
                crate::protocol::reply_scan::decode(&reply)
            {
                return Err(BackendError::Refused(
                    String::from_utf8_lossy(&e).into_owned(),
                ));
            }
            if self.cluster.is_none() {
                // WAIT relies on this PUBLISH; a backend user without the channel gets its
                // clients' WAITs answered with the refusal.
                let publish = conn::round_trip(&mut stream, &[b"PUBLISH", WAIT_SYNC_CHANNEL, b""]);
                if let Ok(Ok(reply)) =
                    tokio::time::timeout(self.target.connect_timeout, publish).await
                    && let crate::protocol::reply_scan::Frame::Error(e) =
                        crate::protocol::reply_scan::decode(&reply)
                {
                    tracing::warn!(
                        backend = %self.target.address(),
                        error = %String::from_utf8_lossy(&e),
                        "the backend user may not PUBLISH to __respgate__:wait, so clients' WAITs get an error instead of a count (grant the channel, e.g. &__respgate__:wait)"
                    );
                }
            }
            Ok(())
        };
        match checked.await {
            Ok(()) => {
                tracing::info!(backend = %self.target.address(), "forwarding to redis")
            }
            Err(e) => tracing::warn!(
                backend = %self.target.address(),
                error = %e,
                "backend not reachable yet; clients get errors until it is"
            ),
        }
    }

    fn spawn(&self, proto: Protocol, db: usize) -> BackendConn {
        self.spawn_to(self.target.clone(), None, proto, db)
    }

    /// A new connection to `target` (the master, a read replica, a cluster node), tracked
    /// like the others, logged in as `user` (None: the configured backend user).
    pub fn spawn_to(
        &self,
        target: Arc<Target>,
        user: Option<Arc<BackendUser>>,
        proto: Protocol,
        db: usize,
    ) -> BackendConn {
        let conn = BackendConn::spawn(
            target,
            Init {
                resp3: proto == Protocol::Resp3,
                db,
                user,
            },
        );
        let mut live = self.live.lock();
        live.retain(|c| c.alive());
        live.push(conn.downgrade());
        conn
    }

    /// Follows a new master: new connections go to `address`, and every connection to the
    /// old one is closed, its in-flight commands answered with [`BackendError::Failover`]
    /// (never a reply from a server that is no longer the master).
    pub fn switch_master(&self, address: &str) -> bool {
        let old = self.target.address();
        if !self.target.set_address(address) {
            return false;
        }
        if !old.is_empty() {
            metrics::gauge!(crate::metrics::SENTINEL_MASTER, "address" => old).set(0.0);
        }
        metrics::gauge!(crate::metrics::SENTINEL_MASTER, "address" => address.to_string()).set(1.0);
        tracing::warn!(master = %address, "following the new master");
        crate::metrics::handles().sentinel_failovers.increment(1);
        let live = std::mem::take(&mut *self.live.lock());
        for conn in live {
            conn.kill(BackendError::Failover);
        }
        true
    }
}
