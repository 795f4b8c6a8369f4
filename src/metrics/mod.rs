//! Metric names, handles created once, and the Prometheus `/metrics` endpoint.
//!
//! Handles are resolved once (a cached handle costs a few ns, the `counter!` macro a hash
//! lookup); labels come only from bounded sets: command names from the table, tenants from
//! the config, results, backend nodes. Gauges that mirror state respgate keeps anyway
//! (clients blocked, keys per db ...) are set when /metrics is scraped, not on every change.

pub mod commands;
pub mod scrape;

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::debug;

/// SIGHUP reloads that failed (the running config stayed).
pub const CONFIG_RELOAD_FAILURES: &str = "respgate_config_reload_failures_total";
pub const CONNECTIONS_ACCEPTED: &str = "respgate_connections_accepted_total";
pub const CONNECTIONS_REJECTED: &str = "respgate_connections_rejected_total";
pub const CONNECTED_CLIENTS: &str = "respgate_connected_clients";
pub const PROTOCOL_ERRORS: &str = "respgate_protocol_errors_total";
pub const TLS_HANDSHAKE_FAILURES: &str = "respgate_tls_handshake_failures_total";
pub use commands::{COMMAND_DURATION, COMMANDS};
/// `{reason}`: why respgate closed a client connection, or that the client did.
pub const CLIENT_DISCONNECTS: &str = "respgate_client_disconnects_total";
pub const NET_INPUT_BYTES: &str = "respgate_net_input_bytes_total";
pub const NET_OUTPUT_BYTES: &str = "respgate_net_output_bytes_total";
/// Commands found in one read from a client: how deep clients pipeline.
pub const PIPELINE_DEPTH: &str = "respgate_pipeline_depth";
/// `{tenant, reason}`: commands a tenant's policy refused (noperm, read_only, namespace).
pub const POLICY_DENIALS: &str = "respgate_policy_denials_total";
/// `{node}`: time from handing a command to a backend connection to its reply arriving.
pub const BACKEND_DURATION: &str = "respgate_backend_request_duration_seconds";
pub const BACKEND_CONNECTIONS: &str = "respgate_backend_connections";
pub const BACKEND_CONNECTS: &str = "respgate_backend_connects_total";
/// `{node, kind}`: backend connections lost or never made (connect, timeout, io, closed,
/// protocol, auth).
pub const BACKEND_ERRORS: &str = "respgate_backend_connection_errors_total";
/// `{kind}`: MOVED / ASK redirections respgate followed for its clients.
pub const CLUSTER_REDIRECTS: &str = "respgate_cluster_redirects_total";
pub const CLUSTER_REFRESHES: &str = "respgate_cluster_topology_refreshes_total";
pub const CLUSTER_SLOT_MAP_AGE: &str = "respgate_cluster_slot_map_age_seconds";
pub const SENTINEL_FAILOVERS: &str = "respgate_sentinel_failovers_total";
/// `{address}`: 1 for the master respgate sends to now.
pub const SENTINEL_MASTER: &str = "respgate_sentinel_master_info";

/// Latency buckets, 10 µs to 10 s (1-2.5-5 steps): real histograms, so any percentile can be
/// computed across instances with `histogram_quantile`.
pub const LATENCY_BUCKETS: [f64; 19] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const DEPTH_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// `respgate_backend_request_duration_seconds{node}` of every node seen, kept in atomic
/// buckets by respgate (rendered at scrape time, as the command durations).
fn backend_histograms() -> &'static parking_lot::Mutex<
    std::collections::BTreeMap<String, std::sync::Arc<commands::DurationHistogram>>,
> {
    static H: OnceLock<
        parking_lot::Mutex<
            std::collections::BTreeMap<String, std::sync::Arc<commands::DurationHistogram>>,
        >,
    > = OnceLock::new();
    H.get_or_init(Default::default)
}

/// The backend round-trip histogram of `node` (one per node, shared by its connections).
pub fn backend_histogram(node: &str) -> std::sync::Arc<commands::DurationHistogram> {
    backend_histograms()
        .lock()
        .entry(node.to_string())
        .or_default()
        .clone()
}

/// Appends the backend round-trip family.
pub fn render_backend_durations(out: &mut String) {
    use std::fmt::Write;
    let _ = writeln!(
        out,
        "# HELP {BACKEND_DURATION} Backend round trip: from handing commands to a backend connection to their replies arriving\n# TYPE {BACKEND_DURATION} histogram"
    );
    for (node, h) in backend_histograms().lock().iter() {
        h.render_as(BACKEND_DURATION, "node", node, out);
    }
}

/// Whether a recorder is installed (false with `metrics_listen = ""`): hot paths skip work
/// that only feeds metrics, such as clock reads.
static ENABLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn enabled() -> bool {
    ENABLED.load(std::sync::atomic::Ordering::Relaxed)
}
pub const EMBEDDED_EVICTED: &str = "respgate_embedded_evicted_keys_total";
pub const EMBEDDED_EXPIRED: &str = "respgate_embedded_expired_keys_total";
pub const EMBEDDED_USED_MEMORY: &str = "respgate_embedded_used_memory_bytes";
pub const AUTH_FAILURES: &str = "respgate_auth_failures_total";
/// `{tenant, rule, action}`: what TTL rules did (default_applied, clamped, rejected, audited).
pub const TTL_POLICY_ACTIONS: &str = "respgate_ttl_policy_actions_total";

/// Process-wide metric handles.
pub struct Handles {
    pub connections_accepted: Counter,
    pub connections_rejected: Counter,
    pub connected_clients: Gauge,
    pub protocol_errors: Counter,
    pub tls_handshake_failures: Counter,
    pub evicted_keys: Counter,
    pub expired_keys: Counter,
    pub used_memory: Gauge,
    /// Failed AUTH / HELLO AUTH attempts, including those refused by the rate limit.
    pub auth_failures: Counter,
    pub pipeline_depth: Histogram,
    pub cluster_moved: Counter,
    pub cluster_ask: Counter,
    pub cluster_refreshes: Counter,
    pub sentinel_failovers: Counter,
}

/// The handles, created on first use (after [`install`] so they reach the exporter).
pub fn handles() -> &'static Handles {
    static H: OnceLock<Handles> = OnceLock::new();
    H.get_or_init(|| Handles {
        connections_accepted: counter!(CONNECTIONS_ACCEPTED),
        connections_rejected: counter!(CONNECTIONS_REJECTED),
        connected_clients: gauge!(CONNECTED_CLIENTS),
        protocol_errors: counter!(PROTOCOL_ERRORS),
        tls_handshake_failures: counter!(TLS_HANDSHAKE_FAILURES),
        evicted_keys: counter!(EMBEDDED_EVICTED),
        expired_keys: counter!(EMBEDDED_EXPIRED),
        used_memory: gauge!(EMBEDDED_USED_MEMORY),
        auth_failures: counter!(AUTH_FAILURES),
        pipeline_depth: histogram!(PIPELINE_DEPTH),
        cluster_moved: counter!(CLUSTER_REDIRECTS, "kind" => "moved"),
        cluster_ask: counter!(CLUSTER_REDIRECTS, "kind" => "ask"),
        cluster_refreshes: counter!(CLUSTER_REFRESHES),
        sentinel_failovers: counter!(SENTINEL_FAILOVERS),
    })
}

/// Why a client connection ended (the `reason` label of [`CLIENT_DISCONNECTS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Disconnect {
    /// The client closed it (or QUIT, or its socket failed).
    Closed,
    ProtocolError,
    QueryBufferLimit,
    OutputBufferLimit,
    IdleTimeout,
    /// CLIENT KILL, or a reload that removed its tenant's login.
    Killed,
    Shutdown,
}

impl Disconnect {
    const ALL: [Disconnect; 7] = [
        Disconnect::Closed,
        Disconnect::ProtocolError,
        Disconnect::QueryBufferLimit,
        Disconnect::OutputBufferLimit,
        Disconnect::IdleTimeout,
        Disconnect::Killed,
        Disconnect::Shutdown,
    ];

    fn label(self) -> &'static str {
        match self {
            Disconnect::Closed => "closed",
            Disconnect::ProtocolError => "protocol_error",
            Disconnect::QueryBufferLimit => "query_buffer_limit",
            Disconnect::OutputBufferLimit => "output_buffer_limit",
            Disconnect::IdleTimeout => "idle_timeout",
            Disconnect::Killed => "killed",
            Disconnect::Shutdown => "shutdown",
        }
    }

    /// Counts one disconnect for this reason.
    pub fn count(self) {
        static COUNTERS: OnceLock<Vec<Counter>> = OnceLock::new();
        let all = COUNTERS.get_or_init(|| {
            Disconnect::ALL
                .iter()
                .map(|d| counter!(CLIENT_DISCONNECTS, "reason" => d.label()))
                .collect()
        });
        if let Some(c) = Disconnect::ALL
            .iter()
            .position(|d| *d == self)
            .and_then(|i| all.get(i))
        {
            c.increment(1);
        }
    }
}

/// Per-tenant policy refusals, by reason (`noperm`, `read_only`, `namespace`).
pub fn policy_denied(tenant: &str, reason: &'static str) {
    counter!(POLICY_DENIALS, "tenant" => tenant.to_string(), "reason" => reason).increment(1);
}

/// Installs the Prometheus recorder globally.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(BACKEND_DURATION.into()), &LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(PIPELINE_DEPTH.into()), &DEPTH_BUCKETS)
        })
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    ENABLED.store(true, std::sync::atomic::Ordering::Relaxed);
    // Histogram samples wait in a queue until drained: drain them even when nobody scrapes.
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    metrics::describe_counter!(CONNECTIONS_ACCEPTED, "Client connections accepted");
    metrics::describe_counter!(
        CONNECTIONS_REJECTED,
        "Client connections refused because max_clients was reached"
    );
    metrics::describe_gauge!(CONNECTED_CLIENTS, "Client connections open now");
    metrics::describe_counter!(
        PROTOCOL_ERRORS,
        "Clients disconnected for breaking the protocol or its limits"
    );
    metrics::describe_counter!(
        TLS_HANDSHAKE_FAILURES,
        "Client connections dropped because their TLS handshake failed or timed out"
    );
    metrics::describe_counter!(
        CLIENT_DISCONNECTS,
        "Client connections closed, by reason (closed by the client, protocol_error, query_buffer_limit, output_buffer_limit, idle_timeout, killed, shutdown)"
    );
    metrics::describe_counter!(NET_INPUT_BYTES, "Bytes read from clients");
    metrics::describe_counter!(NET_OUTPUT_BYTES, "Bytes written to clients");
    metrics::describe_histogram!(PIPELINE_DEPTH, "Commands found in one read from a client");
    metrics::describe_counter!(
        POLICY_DENIALS,
        "Commands a tenant's policy refused, by reason (noperm, read_only, namespace)"
    );
    metrics::describe_gauge!(BACKEND_CONNECTIONS, "Open connections to the backend node");
    metrics::describe_counter!(BACKEND_CONNECTS, "Connections made to the backend node");
    metrics::describe_counter!(
        BACKEND_ERRORS,
        "Backend connections that failed or were lost, by kind (connect, timeout, io, closed, protocol, auth)"
    );
    metrics::describe_counter!(CLUSTER_REDIRECTS, "MOVED and ASK redirections followed");
    metrics::describe_counter!(CLUSTER_REFRESHES, "Cluster slot map refreshes");
    metrics::describe_gauge!(
        CLUSTER_SLOT_MAP_AGE,
        metrics::Unit::Seconds,
        "Seconds since the cluster slot map was last read"
    );
    metrics::describe_counter!(SENTINEL_FAILOVERS, "Sentinel master switches followed");
    metrics::describe_gauge!(SENTINEL_MASTER, "1 for the master respgate forwards to now");
    scrape::describe();
    metrics::describe_counter!(
        AUTH_FAILURES,
        "Failed AUTH and HELLO AUTH attempts (wrong credentials or rate-limited)"
    );
    metrics::describe_counter!(
        TTL_POLICY_ACTIONS,
        "TTL policy actions per tenant and rule: default_applied, clamped, rejected, audited"
    );
    metrics::describe_counter!(
        EMBEDDED_EVICTED,
        "Keys the embedded engine evicted to stay under maxmemory"
    );
    metrics::describe_counter!(EMBEDDED_EXPIRED, "Keys the embedded engine expired");
    metrics::describe_gauge!(
        EMBEDDED_USED_MEMORY,
        "Bytes the embedded engine's keys and values use (INFO used_memory)"
    );
    crate::monitor::gauges::describe();
    Ok(handle)
}

/// Serves `GET /metrics` (Prometheus text format), `GET /status` (the monitor's view as
/// JSON; `/status?format=text` for the human summary) and `POST /reload` (as SIGHUP) on
/// `listener`. A deliberately tiny
/// HTTP/1 responder: one request per connection, bounded header size and time, so a scraper
/// or a stray client can never hold resources.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    status: std::sync::Arc<crate::monitor::status::StatusBoard>,
) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let handle = handle.clone();
        let status = status.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(1024);
            let read_head = async {
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return false,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                true
            };
            match tokio::time::timeout(Duration::from_secs(5), read_head).await {
                Ok(true) => {}
                _ => return,
            }
            let first = buf.split(|&b| b == b'\n').next().unwrap_or_default();
            let method = first.split(|&b| b == b' ').next().unwrap_or_default();
            let path = first.split(|&b| b == b' ').nth(1).unwrap_or_default();
            let (route, query) = match path.iter().position(|&b| b == b'?') {
                Some(q) => (&path[..q], &path[q + 1..]),
                None => (path, &b""[..]),
            };
            let (code, ctype, body) = match route {
                b"/metrics" => {
                    scrape::refresh();
                    let mut text = handle.render();
                    scrape::render_own(&mut text);
                    ("200 OK", "text/plain; version=0.0.4", text)
                }
                b"/status" if query == b"format=text" => (
                    "200 OK",
                    "text/plain; charset=utf-8",
                    crate::monitor::status::render_text(&status.snapshot()),
                ),
                b"/status" => ("200 OK", "application/json", status.to_json()),
                // A reload changes state: POST only, so a crawler or a stray GET cannot.
                b"/reload" if method == b"POST" => match scrape::reload() {
                    Ok(n) => ("200 OK", "text/plain", format!("reloaded: {n} tenants\n")),
                    Err(e) => (
                        "500 Internal Server Error",
                        "text/plain",
                        format!("reload failed, the running config stays: {e}\n"),
                    ),
                },
                b"/reload" => (
                    "405 Method Not Allowed",
                    "text/plain",
                    "use POST /reload\n".to_string(),
                ),
                _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
            };
            let head = format!(
                "HTTP/1.1 {code}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if let Err(e) = async {
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await?;
                stream.shutdown().await
            }
            .await
            {
                debug!(error = %e, "metrics client went away");
            }
        });
    }
}
