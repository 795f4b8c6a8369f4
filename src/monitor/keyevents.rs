//! Evictions per tenant on Redis backends: one subscriber connection per master node
//! listening to `__keyevent@*__:evicted`, each evicted key counted for the tenant whose
//! prefix it carries (see [`super::tenants::TenantEvictions`]).
//!
//! Redis publishes these events only when `notify-keyspace-events` holds `E` (key-event
//! channels) and `e` (evictions, also part of `A`). respgate turns them on itself only with
//! `[monitor] enable_keyspace_events = true`, adding the two flags to whatever the node
//! already has; otherwise it subscribes anyway (an operator may have enabled them) and says
//! once per node that attribution needs them.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tracing::{debug, info, warn};

use super::tenants::TenantEvictions;
use crate::backend::remote::conn::{Init, connect, encode_command, round_trip, write_flush};
use crate::backend::remote::{BackendError, Target};
use crate::protocol::reply_scan::{Frame, ReplyScanner, decode};

const PATTERN: &[u8] = b"__keyevent@*__:evicted";

/// The watchers, one per master node address, started and stopped as the poller sees
/// the masters change.
pub struct EvictionWatchers {
    counts: Arc<TenantEvictions>,
    enable: bool,
    username: Option<String>,
    password: Option<String>,
    timeout: Duration,
    tls: Option<crate::tls::BackendTls>,
    running: HashMap<String, tokio::task::JoinHandle<()>>,
}

impl EvictionWatchers {
    pub fn new(
        counts: Arc<TenantEvictions>,
        enable: bool,
        username: Option<String>,
        password: Option<String>,
        timeout: Duration,
        tls: Option<crate::tls::BackendTls>,
    ) -> EvictionWatchers {
        EvictionWatchers {
            counts,
            enable,
            username,
            password,
            timeout,
            tls,
            running: HashMap::new(),
        }
    }

    /// Watches exactly these masters: starts what is missing, stops what left.
    pub fn watch(&mut self, masters: &[String]) {
        self.running.retain(|addr, task| {
            let keep = masters.contains(addr) && !task.is_finished();
            if !keep {
                task.abort();
            }
            keep
        });
        for addr in masters {
            if self.running.contains_key(addr) {
                continue;
            }
            let target = Target::new(
                addr.clone(),
                self.username.clone(),
                self.password.clone(),
                self.timeout,
                self.tls.clone(),
            );
            let task = tokio::spawn(watch_node(target, self.counts.clone(), self.enable));
            self.running.insert(addr.clone(), task);
        }
    }
}

impl Drop for EvictionWatchers {
    fn drop(&mut self) {
        for task in self.running.values() {
            task.abort();
        }
    }
}

/// Subscribes on one node and counts its evictions until the connection fails; the
/// poller starts a new watcher on its next round.
async fn watch_node(target: Target, counts: Arc<TenantEvictions>, enable: bool) {
    let addr = target.address();
    if let Err(e) = run(&target, &counts, enable).await {
        debug!(node = %addr, error = %e, "eviction watcher stopped");
    }
}

async fn run(target: &Target, counts: &TenantEvictions, enable: bool) -> Result<(), BackendError> {
    let addr = target.address();
    let mut stream = connect(
        target,
        Init {
            resp3: false,
            db: 0,
            user: None,
        },
    )
    .await?;
    let flags = match decode(
        &round_trip(&mut stream, &[b"CONFIG", b"GET", b"notify-keyspace-events"]).await?,
    ) {
        Frame::Array(items) => items
            .get(1)
            .and_then(Frame::as_bytes)
            .map(|b| String::from_utf8_lossy(b).into_owned()),
        _ => None,
    };
    match flags {
        Some(flags) if !publishes_evictions(&flags) => {
            if enable {
                let wanted = with_eviction_flags(&flags);
                match decode(
                    &round_trip(
                        &mut stream,
                        &[
                            b"CONFIG",
                            b"SET",
                            b"notify-keyspace-events",
                            wanted.as_bytes(),
                        ],
                    )
                    .await?,
                ) {
                    Frame::Error(e) => warn!(
                        node = %addr,
                        error = %String::from_utf8_lossy(&e),
                        "cannot enable eviction events: evictions are not attributed to tenants on this node"
                    ),
                    _ => info!(node = %addr, flags = %wanted, "enabled eviction keyspace events"),
                }
            } else {
                info!(
                    node = %addr,
                    flags = %flags,
                    "evictions on this node are not attributed to tenants: its notify-keyspace-events lacks \"Ee\" (set it, or [monitor] enable_keyspace_events = true)"
                );
            }
        }
        Some(_) => {}
        // CONFIG refused (managed Redis often renames it): subscribe and hope.
        None => debug!(node = %addr, "CONFIG GET notify-keyspace-events refused"),
    }
    let mut out = BytesMut::new();
    encode_command(&mut out, &[b"PSUBSCRIBE".as_slice(), PATTERN]);
    write_flush(&mut stream, &out).await?;
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut scanner = ReplyScanner::new();
    loop {
        while let Some(n) = scanner
            .scan(&buf)
            .map_err(|e| BackendError::Protocol(e.to_string()))?
        {
            let frame = buf.split_to(n).freeze();
            if let Frame::Array(items) = decode(&frame)
                && items.len() == 4
                && items[0]
                    .as_bytes()
                    .is_some_and(|k| k.as_ref() == b"pmessage")
                && let Some(key) = items[3].as_bytes()
            {
                counts.record(key);
            }
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) => return Err(BackendError::Closed),
            Ok(_) => {}
            Err(e) => return Err(BackendError::Io(e.to_string())),
        }
    }
}

/// Whether these `notify-keyspace-events` flags publish evictions on key-event channels.
fn publishes_evictions(flags: &str) -> bool {
    flags.contains('E') && (flags.contains('e') || flags.contains('A'))
}

/// The flags plus what eviction events need (the node's other flags stay).
fn with_eviction_flags(flags: &str) -> String {
    let mut out = flags.to_string();
    if !out.contains('E') {
        out.push('E');
    }
    if !out.contains('e') && !out.contains('A') {
        out.push('e');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eviction_flags_are_added_to_the_existing_ones() {
        assert!(!publishes_evictions(""));
        assert!(!publishes_evictions("Ex"));
        assert!(publishes_evictions("Ee"));
        assert!(publishes_evictions("KEA"));
        assert_eq!(with_eviction_flags(""), "Ee");
        assert_eq!(with_eviction_flags("Kx"), "KxEe");
        assert_eq!(with_eviction_flags("KA"), "KAE");
    }
}
