//! Metric names, handles created once, and the Prometheus `/metrics` endpoint.
//!
//! Handles are resolved once (a cached handle costs a few ns, the `counter!` macro a hash
//! lookup); labels come only from bounded sets: command names from the table and results.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{Counter, Gauge, counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
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
pub const COMMANDS: &str = "respgate_commands_total";
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
    })
}

/// `respgate_commands_total{command, result}` for one command, resolved on its first call.
#[derive(Default)]
pub struct CommandMetric {
    ok: OnceLock<Counter>,
    err: OnceLock<Counter>,
}

impl CommandMetric {
    pub fn record(&self, name: &'static str, failed: bool) {
        let (slot, result) = if failed {
            (&self.err, "error")
        } else {
            (&self.ok, "ok")
        };
        slot.get_or_init(|| counter!(COMMANDS, "command" => name, "result" => result))
            .increment(1);
    }
}

/// Installs the Prometheus recorder globally.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| e.to_string())?;
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
    metrics::describe_counter!(COMMANDS, "Commands executed, by command and result");
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

/// Serves `GET /metrics` (Prometheus text format) and `GET /status` (the monitor's view as
/// JSON; `/status?format=text` for the human summary) on `listener`. A deliberately tiny
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
            let path = first.split(|&b| b == b' ').nth(1).unwrap_or_default();
            let (route, query) = match path.iter().position(|&b| b == b'?') {
                Some(q) => (&path[..q], &path[q + 1..]),
                None => (path, &b""[..]),
            };
            let (code, ctype, body) = match route {
                b"/metrics" => ("200 OK", "text/plain; version=0.0.4", handle.render()),
                b"/status" if query == b"format=text" => (
                    "200 OK",
                    "text/plain; charset=utf-8",
                    crate::monitor::status::render_text(&status.snapshot()),
                ),
                b"/status" => ("200 OK", "application/json", status.to_json()),
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
