//! The listener, per-connection tasks, shared server state and graceful shutdown.

pub mod clients;
mod connection;
pub mod forward;
mod forward_lane;
mod forward_tenancy;
mod forward_tracking;
mod forward_ttl;
mod params_data;
pub mod pubsub;
pub mod session;
pub mod slowlog;
pub mod stats;
mod tenancy;

pub use tenancy::{AUTH_RATE_LIMITED, show_user};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::backend::embedded::Engine;
use crate::config::Config;
use crate::net::Stream;
use crate::protocol::ParserLimits;
use crate::tls::TlsSetup;
use clients::ClientRegistry;
use stats::{CommandStats, ServerStats};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot install metrics: {0}")]
    Metrics(String),
    #[error("cannot load the append-only file: {0}")]
    Aof(crate::backend::embedded::aof::AofError),
    #[error("invalid tenants: {0}")]
    Tenants(#[from] crate::policy::tenant::TenantError),
    /// A TLS certificate or key named in the config cannot be used.
    #[error("{0}")]
    Tls(crate::config::ConfigError),
}

/// State every connection task shares.
pub struct Shared {
    pub config: Config,
    pub engine: Arc<Engine>,
    pub clients: Arc<ClientRegistry>,
    /// Clients accepted but not registered yet (a task not started yet, a TLS handshake),
    /// each holding a socket: counted against max_clients, so a burst of connections or
    /// silent TLS clients cannot go past it.
    pub handshaking: std::sync::atomic::AtomicUsize,
    /// `limits.max_output_buffer` (also set by CONFIG SET client-output-buffer-limit normal
    /// in embedded mode), 0 = none: a client whose replies waiting in respgate exceed it is
    /// disconnected. Matters when forwarding, where a pipeline's replies are collected
    /// before they are written.
    pub normal_output_limit: std::sync::atomic::AtomicUsize,
    pub pubsub: Arc<pubsub::PubSub>,
    /// The Redis backend in forwarding modes; None: the embedded engine answers.
    pub remote: Option<Arc<crate::backend::remote::Remote>>,
    pub stats: ServerStats,
    pub cmdstats: CommandStats,
    pub slowlog: slowlog::SlowLog,
    pub limits: ParserLimits,
    /// Parameters CONFIG GET/SET see.
    pub params: RwLock<stats::Params>,
    pub started: Instant,
    pub started_unix: u64,
    pub listen_addr: SocketAddr,
    pub run_id: String,
    /// Configured tenants (empty: single-user mode, as Redis without ACL users).
    /// The tenants in force; replaced as a whole when SIGHUP reloads the config.
    tenants: RwLock<Arc<crate::policy::Tenants>>,
    /// Bumped on every reload: sessions re-resolve their tenant when it moved.
    pub tenants_generation: std::sync::atomic::AtomicU64,
    /// Failed AUTHs per client address, for `auth_failures_per_minute`.
    pub auth_limiter: tenancy::AuthLimiter,
    /// Embedded engine, CLIENT TRACKING: where each tracking client's invalidations go.
    pub tracking_targets:
        parking_lot::Mutex<std::collections::HashMap<u64, crate::command::tracking::Target>>,
}

impl Shared {
    /// The tenants in force now.
    pub fn tenants(&self) -> Arc<crate::policy::Tenants> {
        self.tenants.read().clone()
    }

    /// [`Shared::reload`], logged, and counted when it fails (SIGHUP and `POST /reload`).
    pub fn reload_logged(&self) -> Result<usize, String> {
        let result = self.reload();
        match &result {
            Ok(n) => info!(tenants = n, "config reloaded"),
            Err(e) => {
                metrics::counter!(crate::metrics::CONFIG_RELOAD_FAILURES).increment(1);
                tracing::error!(error = %e, "config reload failed; the running config stays");
            }
        }
        result
    }

    /// SIGHUP: reads the config file again and puts its tenants (namespaces, command
    /// policy, TTL rules) in force for every connection, without dropping any. A file that
    /// does not load leaves everything as it was. Listener, backend and engine settings
    /// need a restart: a change there is reported, not applied.
    pub fn reload(&self) -> Result<usize, String> {
        let Some(path) = &self.config.source else {
            return Err("respgate was started without --config: nothing to reload".into());
        };
        let new = crate::config::Config::load(path).map_err(|e| e.to_string())?;
        let tenants = crate::policy::Tenants::from_config(&new).map_err(|e| e.to_string())?;
        let differs =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
        for (section, changed) in [
            ("[server]", differs(&self.config.server, &new.server)),
            ("[backend]", differs(&self.config.backend, &new.backend)),
            ("[embedded]", differs(&self.config.embedded, &new.embedded)),
            ("[limits]", differs(&self.config.limits, &new.limits)),
            ("[monitor]", differs(&self.config.monitor, &new.monitor)),
        ] {
            if changed {
                warn!(
                    section,
                    "config reload: this section changed and needs a restart; only [[tenants]] was reloaded"
                );
            }
        }
        let n = new.tenants.len();
        *self.tenants.write() = Arc::new(tenants);
        self.tenants_generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(n)
    }

    /// Idle timeout from the (runtime-settable) `timeout` parameter; None = never.
    pub fn idle_timeout(&self) -> Option<Duration> {
        let secs = self.params.read().timeout_secs;
        (secs > 0).then(|| Duration::from_secs(secs))
    }
}

/// Bound listeners, ready to serve: lets main report both addresses before serving and
/// lets tests bind port 0.
pub struct Bound {
    listener: TcpListener,
    metrics: Option<TcpListener>,
    config: Config,
    tls: TlsSetup,
    signals: Signals,
}

impl Bound {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// What answers the commands, for the startup line.
    pub fn backend_description(&self) -> String {
        match self.config.backend.mode {
            crate::config::BackendMode::Embedded => "embedded engine".to_string(),
            crate::config::BackendMode::Standalone => format!(
                "forwarding to redis {}",
                self.config.backend.address.as_deref().unwrap_or("")
            ),
            crate::config::BackendMode::Sentinel => format!(
                "forwarding to master {:?} of sentinels {}",
                self.config.backend.master_name.as_deref().unwrap_or(""),
                self.config.backend.sentinels.join(",")
            ),
            crate::config::BackendMode::Cluster => format!(
                "forwarding to redis cluster via {}",
                self.config.backend.nodes.join(",")
            ),
        }
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// Redis's default `tcp-backlog`: connections the kernel completes and queues before respgate
/// accepts them. The default of `TcpListener::bind` (128) made a burst of a few thousand
/// connections wait for SYN retransmissions (a second or more each).
const TCP_BACKLOG: u32 = 511;

/// A listening socket on `addr` (host:port) with [`TCP_BACKLOG`].
async fn listen(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for a in tokio::net::lookup_host(addr).await? {
        let socket = if a.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        match socket.bind(a).and_then(|()| socket.listen(TCP_BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")
    }))
}

/// Descriptors kept for respgate's own use beyond one per client: listeners, backend and
/// monitor connections, the AOF, epoll, log files (Redis keeps 32).
const RESERVED_FDS: u64 = 64;

/// As Redis does at start: raise the soft RLIMIT_NOFILE to what `wanted` clients need (up to
/// the hard limit); if that is not enough, lower max_clients to fit, with a warning. Past the
/// descriptor limit accept() fails (EMFILE), and clients would wait in the listen queue
/// instead of being refused with "max number of clients reached".
fn fit_max_clients(wanted: usize) -> usize {
    let need = (wanted as u64).saturating_add(RESERVED_FDS);
    match rlimit::increase_nofile_limit(need) {
        Ok(limit) if limit >= need => wanted,
        Ok(limit) => {
            let fit = limit.saturating_sub(RESERVED_FDS).max(1) as usize;
            warn!(
                requested = wanted,
                open_files_limit = limit,
                max_clients = fit,
                "max_clients reduced to fit the open files limit (raise it with ulimit -n)"
            );
            fit
        }
        Err(e) => {
            warn!(error = %e, "cannot read or raise the open files limit; max_clients unchanged");
            wanted
        }
    }
}

/// Binds the client and metrics listeners named in `config`, after reading its TLS files.
pub async fn bind(config: Config) -> Result<Bound, ServerError> {
    let tls = TlsSetup::load(&config, "config").map_err(ServerError::Tls)?;
    bind_with_tls(config, tls).await
}

/// [`bind`] with TLS configurations already loaded (main loads them first, to report a bad
/// file with the config file's name).
pub async fn bind_with_tls(config: Config, tls: TlsSetup) -> Result<Bound, ServerError> {
    let listener = listen(&config.server.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.server.listen.clone(),
            source,
        })?;
    let metrics = if config.server.metrics_listen.is_empty() {
        None
    } else {
        Some(
            TcpListener::bind(&config.server.metrics_listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.server.metrics_listen.clone(),
                    source,
                })?,
        )
    };
    Ok(Bound {
        listener,
        metrics,
        config,
        tls,
        signals: Signals::install(),
    })
}

/// Serves until SIGINT/SIGTERM, then stops accepting, lets every connection finish the
/// commands it has already received, and returns.
pub async fn serve(bound: Bound) -> Result<(), ServerError> {
    let Bound {
        listener,
        metrics,
        config,
        tls,
        signals,
    } = bound;
    let listen_addr = listener.local_addr().map_err(|source| ServerError::Bind {
        addr: config.server.listen.clone(),
        source,
    })?;
    // The monitor fills it; /status shows it from the start (mode, tenants, no nodes yet).
    let board = Arc::new(crate::monitor::status::StatusBoard::new(
        crate::monitor::initial_status(&config),
    ));
    if let Some(m) = metrics {
        let handle = crate::metrics::install().map_err(ServerError::Metrics)?;
        tokio::spawn(crate::metrics::serve(m, handle, board.clone()));
    }
    let engine = Arc::new(Engine::new(&config.embedded));
    if config.embedded.appendonly {
        let path = config.embedded.aof_path();
        let fsync = crate::backend::embedded::aof::Fsync::parse(&config.embedded.appendfsync);
        let applied = engine.start_aof(&path, fsync).map_err(ServerError::Aof)?;
        info!(path = %path.display(), commands = applied, "AOF loaded");
    }
    let expiry = engine.spawn_expiry();
    let _fsync = engine.spawn_aof_fsync();
    let mut params = stats::Params::from_config(&config);
    let max_clients = fit_max_clients(config.server.max_clients);
    if max_clients != config.server.max_clients {
        params.apply("maxclients", max_clients.to_string());
    }
    let tenants = Arc::new(crate::policy::Tenants::from_config(&config)?);
    let remote = match config.backend.mode {
        crate::config::BackendMode::Embedded => None,
        _ => Some(Arc::new(crate::backend::remote::Remote::new(
            &config.backend,
            tls.backend.clone(),
        ))),
    };
    if let Some(cluster) = remote.as_ref().and_then(|r| r.cluster.clone()) {
        // Read the slot map before accepting clients; without it they get CLUSTERDOWN-style
        // errors until a node answers.
        match cluster.refresh_now().await {
            Ok(()) => info!(
                masters = cluster.topology().masters().len(),
                "forwarding to redis cluster"
            ),
            Err(e) => warn!(error = %e, "no cluster node could give the slot map yet"),
        }
        cluster.spawn_refresher();
        // Pub/sub: any node hears every PUBLISH of the cluster; the bridge uses the first
        // master (and follows the map when it changes).
        if let (Some(r), Some(addr)) = (&remote, cluster.any_master(0)) {
            r.switch_master(&addr);
        }
    }
    if let (Some(remote), Some(sentinels)) = (
        &remote,
        crate::backend::remote::sentinel_config(&config.backend, tls.sentinel.clone()),
    ) {
        // Find the master before accepting clients; if no sentinel answers yet, start anyway
        // (clients get errors) and keep asking.
        match sentinels.ask_master().await {
            Ok(master) => {
                remote.switch_master(&master);
            }
            Err(e) => warn!(error = %e, "no sentinel could name the master yet"),
        }
        crate::backend::remote::sentinel::spawn(remote.clone(), sentinels);
    }
    let shared = Arc::new(Shared {
        limits: config.parser_limits(),
        engine,
        clients: Arc::new(ClientRegistry::default()),
        handshaking: std::sync::atomic::AtomicUsize::new(0),
        normal_output_limit: std::sync::atomic::AtomicUsize::new(config.max_output_buffer()),
        pubsub: Arc::new(pubsub::PubSub::default()),
        remote: remote.clone(),
        stats: ServerStats::default(),
        cmdstats: CommandStats::new(),
        slowlog: slowlog::SlowLog::new(
            config.server.slowlog_log_slower_than,
            config.server.slowlog_max_len,
        ),
        params: RwLock::new(params),
        started: Instant::now(),
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        listen_addr,
        run_id: random_run_id(),
        tenants: RwLock::new(tenants),
        tenants_generation: std::sync::atomic::AtomicU64::new(0),
        auth_limiter: tenancy::AuthLimiter::new(config.auth_failures_per_minute()),
        tracking_targets: parking_lot::Mutex::default(),
        config,
    });

    crate::metrics::scrape::register(&shared);
    // Keyspace notifications go to the pub/sub registry (which never takes the engine
    // lock, so publishing under it cannot deadlock).
    let weak = Arc::downgrade(&shared);
    shared.engine.set_notifier(Box::new(move |channel, msg| {
        if let Some(shared) = weak.upgrade() {
            shared.pubsub.publish(channel, msg);
        }
    }));
    // CLIENT TRACKING invalidations, handed over under the engine lock: the targets map
    // and the pub/sub queues never take it.
    let weak = Arc::downgrade(&shared);
    shared
        .engine
        .set_invalidation_sink(Box::new(move |client, keys| {
            if let Some(shared) = weak.upgrade() {
                crate::command::tracking::deliver(&shared, client, keys);
            }
        }));

    if let Some(remote) = &remote {
        if let Some(cluster) = &remote.cluster {
            // Shard channels are heard only on their slot's master: a subscriber per owner.
            // Set up before the bridge starts, so it leaves shard channels alone.
            crate::backend::remote::cluster::shard_bridge::spawn(
                cluster.clone(),
                shared.pubsub.clone(),
            );
        }
        crate::backend::remote::bridge::spawn(remote.target.clone(), shared.pubsub.clone());
        remote.log_reachability().await;
    }
    // Its first poll is the startup eviction check (logged once, for durable tenants).
    let mut monitor =
        crate::monitor::Monitor::new(&shared.config, shared.engine.clone(), remote.clone(), board)
            .with_sentinel_tls(tls.sentinel.clone());
    if !shared.config.tenants.is_empty() {
        let counts = Arc::new(crate::monitor::tenants::TenantEvictions::new(
            &shared.config.tenants,
        ));
        if remote.is_none() {
            // The embedded engine names every key it evicts: exact per-tenant attribution.
            let hook = counts.clone();
            shared
                .engine
                .set_eviction_hook(Box::new(move |key| hook.record(key)));
        }
        monitor = monitor.with_tenant_evictions(counts);
    }
    let monitor = monitor.spawn();

    let acceptor = tls.server.clone().map(tokio_rustls::TlsAcceptor::from);
    spawn_reload_on_sighup(&shared);

    let mut tasks = tokio::task::JoinSet::new();
    let stop = signals.recv();
    tokio::pin!(stop);
    let mut accept_failures = 0u64;
    let mut last_accept_warning: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    shared.stats.accepted();
                    let max = shared.params.read().maxclients;
                    let handshaking = shared.handshaking.load(std::sync::atomic::Ordering::Relaxed);
                    let over_limit = shared.clients.len() + handshaking >= max;
                    if over_limit {
                        shared.stats.rejected();
                    }
                    match &acceptor {
                        None if over_limit => {
                            tasks.spawn(connection::reject(stream));
                        }
                        None => {
                            // Counted until its task registers it: a burst of accepts
                            // must not all pass the max_clients check before any task ran.
                            let counted = connection::Handshaking::new(&shared);
                            tasks.spawn(connection::serve(shared.clone(), Stream::Plain(stream), peer, counted));
                        }
                        // The handshake runs in the client's own task: a slow or silent
                        // client must not hold up the accept loop.
                        Some(acceptor) => {
                            tasks.spawn(connection::serve_tls(
                                shared.clone(),
                                acceptor.clone(),
                                stream,
                                peer,
                                over_limit,
                                connection::Handshaking::new(&shared),
                            ));
                        }
                    }
                }
                // Out of file descriptors and the like: back off instead of spinning, and
                // log once a second at most (the error repeats until descriptors free up).
                Err(e) => {
                    accept_failures += 1;
                    if last_accept_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        warn!(error = %e, failures = accept_failures, "accept failed");
                        last_accept_warning = Some(std::time::Instant::now());
                        accept_failures = 0;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            // Reap finished connection tasks so the set does not grow without bound.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    info!("shutting down: no new connections, finishing in-flight commands");
    // A runaway script would hold the engine forever; stop it as SCRIPT KILL would (a script
    // that already wrote is left to finish, like Redis's UNKILLABLE).
    let _ = shared.engine.script_run.kill();
    drop(listener);
    // Every connection finishes what it received, then closes (and one still in its TLS
    // handshake is told as it registers).
    shared.clients.shut_down_all();
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(10), drain)
        .await
        .is_err()
    {
        warn!("some connections did not finish within 10s; closing them");
    }
    expiry.abort();
    monitor.abort();
    info!("bye");
    Ok(())
}

/// SIGINT/SIGTERM handlers, installed when the listeners are bound: from the moment respgate
/// reports its address, a signal means the graceful stop, never the default immediate exit
/// (handlers installed only when the accept loop first polled them left a window in which a
/// SIGTERM killed the process).
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Signals {}
        }
    }

    /// Resolves on the first SIGINT or SIGTERM.
    async fn recv(self) {
        #[cfg(unix)]
        {
            let (term, int) = (self.term, self.int);
            match (term, int) {
                (Some(mut term), Some(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                (Some(mut term), None) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                (None, _) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// SIGHUP reloads the config file's tenants (see [`Shared::reload`]); a file that does not
/// load is logged and counted, and the running config stays.
fn spawn_reload_on_sighup(shared: &Arc<Shared>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            warn!("cannot listen for SIGHUP; config reload is unavailable");
            return;
        };
        let weak = Arc::downgrade(shared);
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let Some(shared) = weak.upgrade() else { return };
                let _ = shared.reload_logged();
            }
        });
    }
    #[cfg(not(unix))]
    let _ = shared;
}

fn random_run_id() -> String {
    (0..40)
        .map(|_| char::from_digit(rand::random_range(0..16u32), 16).unwrap_or('0'))
        .collect()
}
