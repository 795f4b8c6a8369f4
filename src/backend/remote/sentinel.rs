//! Sentinel mode: finds the master through `SENTINEL get-master-addr-by-name` on any reachable
//! sentinel, follows `+switch-master` announcements, and re-asks when something suggests the
//! master moved (a `-READONLY` reply, a lost connection) and once a second anyway, so a
//! missed announcement costs at most that second.
//!
//! A switch points new backend connections at the new master and closes every connection
//! to the old one; commands in flight there get an error (they may or may not have run),
//! never a reply from a server that is no longer the master.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tracing::{debug, info, warn};

use super::conn::{Init, connect, encode_command, round_trip, write_flush};
use super::{BackendError, Remote, Target};
use crate::protocol::reply_scan::{Frame, ReplyScanner, decode};

/// How often the master is re-asked even without any sign of trouble.
const POLL: Duration = Duration::from_secs(1);

/// Sentinels and the master they watch.
#[derive(Debug, Clone)]
pub struct Sentinels {
    pub addresses: Vec<String>,
    pub master_name: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub connect_timeout: Duration,
    /// TLS to the sentinels (`sentinel_tls`, or `tls` reused); None: plain TCP.
    pub tls: Option<crate::tls::BackendTls>,
}

impl Sentinels {
    /// The replicas of our master as the first answering sentinel lists them; with
    /// `healthy_only`, only those it sees up and in sync (for serving reads).
    pub async fn ask_replicas(&self, healthy_only: bool) -> Result<Vec<String>, BackendError> {
        let mut last = BackendError::Unavailable("no sentinel configured".into());
        for address in &self.addresses {
            let attempt = async {
                let reply = self
                    .command(
                        address,
                        &[b"SENTINEL", b"replicas", self.master_name.as_bytes()],
                    )
                    .await?;
                match decode(&reply) {
                    Frame::Error(e) => Err(BackendError::Refused(
                        String::from_utf8_lossy(&e).into_owned(),
                    )),
                    frame => Ok(parse_replicas(&frame, healthy_only)),
                }
            };
            match attempt.await {
                Ok(list) => return Ok(list),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn target(&self, address: &str) -> Target {
        Target::new(
            address.to_string(),
            self.username.clone(),
            self.password.clone(),
            self.connect_timeout,
            self.tls.clone(),
        )
    }

    /// Sends one command to the sentinel at `address` (a connection of its own) and returns
    /// the reply, within the connect timeout.
    pub async fn command(&self, address: &str, args: &[&[u8]]) -> Result<Bytes, BackendError> {
        let target = self.target(address);
        let mut stream = self.open(&target).await?;
        tokio::time::timeout(self.connect_timeout, round_trip(&mut stream, args))
            .await
            .map_err(|_| BackendError::Timeout(self.connect_timeout.as_millis()))?
    }

    async fn open(&self, target: &Target) -> Result<crate::net::Stream, BackendError> {
        connect(
            target,
            Init {
                resp3: false,
                db: 0,
                user: None,
            },
        )
        .await
    }

    /// The master's address according to the first sentinel that knows it.
    pub async fn ask_master(&self) -> Result<String, BackendError> {
        let mut last = BackendError::Unavailable("no sentinel configured".into());
        for address in &self.addresses {
            match self.ask_one(address).await {
                Ok(master) => return Ok(master),
                Err(e) => {
                    debug!(sentinel = %address, error = %e, "sentinel did not answer");
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn ask_one(&self, address: &str) -> Result<String, BackendError> {
        let reply = self
            .command(
                address,
                &[
                    b"SENTINEL",
                    b"get-master-addr-by-name",
                    self.master_name.as_bytes(),
                ],
            )
            .await?;
        match decode(&reply) {
            Frame::Array(items) => match items.as_slice() {
                [host, port] => match (host.as_bytes(), port.as_bytes()) {
                    (Some(h), Some(p)) => Ok(join_host_port(
                        &String::from_utf8_lossy(h),
                        &String::from_utf8_lossy(p),
                    )),
                    _ => Err(BackendError::Protocol(
                        "sentinel sent a malformed master address".into(),
                    )),
                },
                _ => Err(BackendError::Protocol(
                    "sentinel sent a malformed master address".into(),
                )),
            },
            Frame::Null => Err(BackendError::Unavailable(format!(
                "sentinel {address} does not know master {:?}",
                self.master_name
            ))),
            Frame::Error(e) => Err(BackendError::Refused(
                String::from_utf8_lossy(&e).into_owned(),
            )),
            _ => Err(BackendError::Protocol(
                "unexpected reply to SENTINEL get-master-addr-by-name".into(),
            )),
        }
    }
}

fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Starts following the master; runs until the process exits.
pub fn spawn(remote: Arc<Remote>, sentinels: Sentinels) {
    if remote.replica.is_some() {
        tokio::spawn(follow_replicas(remote.clone(), sentinels.clone()));
    }
    tokio::spawn(follow(remote, sentinels));
}

/// `read_from` replica / prefer-replica: keeps reads on a replica the sentinels see up and
/// in sync with the master, re-asked every [`POLL`]; the current one is kept while it stays
/// healthy.
async fn follow_replicas(remote: Arc<Remote>, sentinels: Sentinels) {
    loop {
        match sentinels.ask_replicas(true).await {
            Ok(healthy) => {
                let current = remote
                    .replica
                    .as_ref()
                    .map(|t| t.address())
                    .unwrap_or_default();
                if !healthy.contains(&current) {
                    remote.set_read_replica(healthy.first().map_or("", |s| s.as_str()));
                }
            }
            Err(e) => debug!(error = %e, "no sentinel listed the replicas"),
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn follow(remote: Arc<Remote>, sentinels: Sentinels) {
    let mut next = 0usize;
    loop {
        let n = sentinels.addresses.len().max(1);
        let address = sentinels.addresses[next % n].clone();
        next += 1;
        match watch_one(&remote, &sentinels, &address).await {
            Ok(()) => {}
            Err(e) => {
                debug!(sentinel = %address, error = %e, "lost the sentinel; trying the next one");
            }
        }
        // Between sentinels, still keep the master current.
        if let Ok(master) = sentinels.ask_master().await {
            remote.switch_master(&master);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Subscribes to `+switch-master` on one sentinel and follows it until that connection fails;
/// meanwhile re-asks the sentinels on every recheck request and every [`POLL`].
async fn watch_one(
    remote: &Remote,
    sentinels: &Sentinels,
    address: &str,
) -> Result<(), BackendError> {
    let target = sentinels.target(address);
    let mut stream = sentinels.open(&target).await?;
    let mut out = BytesMut::new();
    encode_command(&mut out, &[b"SUBSCRIBE".as_slice(), b"+switch-master"]);
    write_flush(&mut stream, &out).await?;
    info!(sentinel = %address, master = %sentinels.master_name, "watching for failovers");
    // Announcements missed before the subscription took effect: ask once now.
    if let Ok(master) = sentinels.ask_master().await {
        remote.switch_master(&master);
    }
    let mut buf = BytesMut::with_capacity(4096);
    let mut scanner = ReplyScanner::new();
    let mut poll = tokio::time::interval(POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            read = stream.read_buf(&mut buf) => match read {
                Ok(0) => return Err(BackendError::Closed),
                Err(e) => return Err(BackendError::Io(e.to_string())),
                Ok(_) => loop {
                    let n = match scanner.scan(&buf) {
                        Ok(Some(n)) => n,
                        Ok(None) => break,
                        Err(e) => return Err(BackendError::Protocol(e.to_string())),
                    };
                    let frame = buf.split_to(n).freeze();
                    if let Some(master) = switch_master_message(&decode(&frame), &sentinels.master_name) {
                        remote.switch_master(&master);
                    }
                },
            },
            _ = remote.target.recheck.notified() => recheck(remote, sentinels).await,
            _ = poll.tick() => recheck(remote, sentinels).await,
        }
    }
}

async fn recheck(remote: &Remote, sentinels: &Sentinels) {
    match sentinels.ask_master().await {
        Ok(master) => {
            remote.switch_master(&master);
        }
        Err(e) => warn!(error = %e, "no sentinel could name the master"),
    }
}

/// The new master's address from a `+switch-master` message about our master:
/// `<name> <old-ip> <old-port> <new-ip> <new-port>`.
fn switch_master_message(frame: &Frame, master_name: &str) -> Option<String> {
    let Frame::Array(items) = frame else {
        return None;
    };
    let [kind, _, payload] = items.as_slice() else {
        return None;
    };
    if kind.as_bytes()?.as_ref() != b"message" {
        return None;
    }
    let text = String::from_utf8_lossy(payload.as_bytes()?).into_owned();
    let parts: Vec<&str> = text.split_whitespace().collect();
    match parts.as_slice() {
        [name, _, _, ip, port] if *name == master_name => Some(join_host_port(ip, port)),
        _ => None,
    }
}

/// Addresses from a `SENTINEL replicas` reply (one flat field/value array per replica); with
/// `healthy_only`, without replicas flagged down or disconnected or whose link to the master
/// is not `ok`.
pub fn parse_replicas(frame: &Frame, healthy_only: bool) -> Vec<String> {
    let Frame::Array(replicas) = frame else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for r in replicas {
        let Frame::Array(fields) = r else { continue };
        let (mut ip, mut port, mut healthy) = (None, None, true);
        for pair in fields.chunks(2) {
            let [k, v] = pair else { continue };
            let text = || {
                v.as_bytes()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
            };
            match k.as_bytes().map(|b| b.as_ref()) {
                Some(b"ip") => ip = text(),
                Some(b"port") => port = text(),
                Some(b"flags") => {
                    let flags = text().unwrap_or_default();
                    healthy &= !["s_down", "o_down", "disconnected"]
                        .iter()
                        .any(|f| flags.contains(f));
                }
                Some(b"master-link-status") => healthy &= text().as_deref() == Some("ok"),
                _ => {}
            }
        }
        if healthy_only && !healthy {
            continue;
        }
        if let (Some(ip), Some(port)) = (ip, port) {
            out.push(if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn reads_switch_master_announcements_for_our_master_only() {
        let msg = |payload: &'static str| {
            Frame::Array(vec![
                Frame::Bulk(Bytes::from_static(b"message")),
                Frame::Bulk(Bytes::from_static(b"+switch-master")),
                Frame::Bulk(Bytes::from_static(payload.as_bytes())),
            ])
        };
        assert_eq!(
            switch_master_message(&msg("mymaster 127.0.0.1 7000 127.0.0.1 7001"), "mymaster"),
            Some("127.0.0.1:7001".to_string())
        );
        assert_eq!(
            switch_master_message(&msg("other 127.0.0.1 7000 127.0.0.1 7001"), "mymaster"),
            None
        );
        assert_eq!(
            switch_master_message(&msg("mymaster ::1 7000 ::1 7001"), "mymaster"),
            Some("[::1]:7001".to_string())
        );
        assert_eq!(switch_master_message(&Frame::Integer(1), "mymaster"), None);
    }
}
