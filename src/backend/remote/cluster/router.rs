//! Cluster mode's live state: the current slot map (refreshed in the background after MOVED,
//! failures and periodically), connections per node, and the async steps the forwarding path
//! needs beyond "send to the slot's master": following MOVED/ASK/TRYAGAIN/CLUSTERDOWN for one
//! command, and running split or fan-out commands across nodes and merging their replies.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::split::{self, FanOut, Merge, ScanPlan, Split};
use super::topology::{ConnectParams, Redirect, Topology, discover, parse_redirect};
use crate::backend::remote::conn::{BackendConn, Batch, Owed, OwedList, encode_command};
use crate::backend::remote::{BackendError, Remote, Target};
use crate::policy::tenant::BackendUser;
use crate::protocol::Protocol;
use crate::protocol::reply_scan::ReplyScanner;

/// Redirections and transient errors followed for one command before giving up.
const MAX_ATTEMPTS: usize = 16;
/// Pause before retrying TRYAGAIN / CLUSTERDOWN.
const RETRY_PAUSE: Duration = Duration::from_millis(20);
/// The slot map is re-read this often even when nothing suggests a change.
const REFRESH_EVERY: Duration = Duration::from_secs(10);

/// A command the cluster answers only with several nodes' help.
pub enum Deferred {
    /// MGET/MSET/DEL/... whose keys span slots.
    Split(Split),
    /// KEYS, DBSIZE, FLUSHALL ... on every master.
    AllMasters(Vec<Bytes>, Merge),
    /// SCAN, one master at a time.
    Scan(Vec<Bytes>),
    /// `INFO backend [section ...]`: every master's INFO, each under a `# node <addr>` line.
    InfoBackend(Vec<Bytes>),
    /// A tenant's DBSIZE or FLUSHDB: its keys counted or unlinked in bounded steps (every
    /// master in a cluster; the client's connection otherwise).
    Walk(crate::backend::remote::walk::Walk),
}

/// What a command needs to be resent after a redirection.
pub struct Resend {
    /// None for keyless commands (sent to any master; followed if one redirects anyway).
    pub slot: Option<u16>,
    pub sent: Sent,
    /// The node it was sent to (for error texts and ASK/MOVED endpoints without a host);
    /// shared by the commands of a fast-lane run.
    pub node: Arc<str>,
    /// The backend user it was sent as (a tenant's own; None: the configured one): a
    /// resend goes over a connection logged in as the same user.
    pub user: Option<Arc<BackendUser>>,
}

impl Resend {
    /// Does this reply call for [`follow`]: a redirection, or EXECABORT of a transaction
    /// (which may hide one)?
    pub fn wants_follow(&self, reply: &[u8]) -> bool {
        needs_resend(reply)
            || (matches!(self.sent, Sent::Transaction(_)) && reply.starts_with(b"-EXECABORT"))
    }
}

/// What was sent for one client reply.
pub enum Sent {
    /// One command; its reply is the client's.
    One(Vec<Bytes>),
    /// One command as the client sent it, in canonical RESP (forwarding's fast lane keeps
    /// the bytes rather than an argument vector).
    Raw(Bytes),
    /// `MULTI`, these commands, `EXEC` (a client's transaction, or a tenant's write with its
    /// TTL fix-ups); EXEC's reply is the one that counts. A redirection of one of the
    /// commands shows only in a reply nobody reads (EXEC then answers EXECABORT), so an
    /// EXECABORT is resent to the slot's master with every reply read, which finds it.
    Transaction(Vec<Vec<Bytes>>),
}

struct NodePool {
    target: Arc<Target>,
    /// Shared connections per protocol version.
    shared: [Vec<Option<BackendConn>>; 2],
}

/// A node's pool of connections logging in as one backend user (None: the configured one;
/// Some: a tenant's own ACL user, whose connections are never shared with other users).
type PoolKey = (String, Option<Arc<BackendUser>>);

/// Where read-only commands go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    Master,
    /// A replica of the slot's master; an error if it has none.
    Replica,
    /// A replica if the slot's master has one, else the master.
    PreferReplica,
}

impl ReadFrom {
    pub fn parse(s: &str) -> ReadFrom {
        match s {
            "replica" => ReadFrom::Replica,
            "prefer-replica" => ReadFrom::PreferReplica,
            _ => ReadFrom::Master,
        }
    }
}

pub struct ClusterBackend {
    pub read_from: ReadFrom,
    topology: RwLock<Arc<Topology>>,
    seeds: Vec<String>,
    params: ConnectParams,
    pools: Mutex<FxHashMap<PoolKey, NodePool>>,
    connections: usize,
    refresh: tokio::sync::Notify,
    /// When the slot map was last read successfully (None: never).
    refreshed_at: Mutex<Option<Instant>>,
}

impl ClusterBackend {
    pub fn new(
        seeds: Vec<String>,
        params: ConnectParams,
        connections: usize,
        read_from: ReadFrom,
    ) -> ClusterBackend {
        ClusterBackend {
            read_from,
            topology: RwLock::new(Arc::new(Topology::new())),
            seeds,
            params,
            pools: Mutex::new(FxHashMap::default()),
            connections: connections.max(1),
            refresh: tokio::sync::Notify::new(),
            refreshed_at: Mutex::new(None),
        }
    }

    /// Time since the slot map was last read (since start while it never was).
    pub fn slot_map_age(&self) -> Duration {
        self.refreshed_at
            .lock()
            .map_or(Duration::ZERO, |at| at.elapsed())
    }

    pub fn topology(&self) -> Arc<Topology> {
        self.topology.read().clone()
    }

    /// The addresses of the masters now serving slots (fan-outs go to each).
    pub fn master_addresses(&self) -> Vec<String> {
        let topo = self.topology();
        topo.masters()
            .iter()
            .map(|&n| topo.address(n).to_string())
            .collect()
    }

    /// Reads the slot map from the seeds and the nodes already known.
    pub async fn refresh_now(&self) -> Result<(), String> {
        // Masters, replicas, then the configured seeds (which may be gone by now).
        let seeds = self.topology().refresh_seeds(&self.seeds);
        match discover(&seeds, &self.params).await {
            Ok(t) => {
                *self.refreshed_at.lock() = Some(Instant::now());
                crate::metrics::handles().cluster_refreshes.increment(1);
                let changed = **self.topology.read() != t;
                if changed {
                    info!(masters = t.masters().len(), "cluster slot map updated");
                    *self.topology.write() = Arc::new(t);
                }
                Ok(())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// Keeps the slot map current: on request (MOVED, failures) and every few seconds.
    pub fn spawn_refresher(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(cluster) = me.upgrade() else { return };
                tokio::select! {
                    _ = cluster.refresh.notified() => {}
                    _ = tokio::time::sleep(REFRESH_EVERY) => {}
                }
                if let Err(e) = cluster.refresh_now().await {
                    warn!(error = %e, "cannot read the cluster slot map");
                }
                drop(cluster);
                // Coalesce bursts of requests (many clients hitting the same MOVED).
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }

    /// A MOVED reply: the slot lives on `addr` now; the whole map is re-read soon.
    pub fn moved(&self, slot: u16, addr: &str) {
        {
            let mut topo = self.topology.write();
            let mut t = (**topo).clone();
            if t.apply_moved(slot, addr).is_ok() {
                *topo = Arc::new(t);
            }
        }
        self.refresh.notify_one();
    }

    pub fn request_refresh(&self) {
        self.refresh.notify_one();
    }

    /// How to connect to node `addr` as the configured backend user.
    pub fn node_target(&self, addr: &str) -> Target {
        self.params.target(addr)
    }

    /// The address of the master serving `slot`.
    pub fn master_addr(&self, slot: u16) -> Option<String> {
        let t = self.topology.read();
        t.master_for(slot).map(|n| t.address(n).to_string())
    }

    /// Where a read-only command on `slot` goes under `read_from` (a replica, spread over
    /// the slot's replicas by client); Err when `replica` is required and there is none.
    pub fn read_addr(&self, slot: u16, client_id: u64) -> Result<Option<String>, String> {
        let t = self.topology.read();
        let replicas = t.replicas_for(slot);
        if replicas.is_empty() {
            return match self.read_from {
                ReadFrom::Replica => Err(format!(
                    "ERR respgate: read_from = \"replica\" but no replica serves slot {slot}"
                )),
                _ => Ok(t.master_for(slot).map(|n| t.address(n).to_string())),
            };
        }
        let n = replicas[(client_id as usize) % replicas.len()];
        Ok(Some(t.address(n).to_string()))
    }

    /// A master for keyless commands, spread over the masters by client.
    pub fn any_master(&self, client_id: u64) -> Option<String> {
        let t = self.topology.read();
        let masters = t.masters();
        if masters.is_empty() {
            return None;
        }
        let n = masters[(client_id as usize) % masters.len()];
        Some(t.address(n).to_string())
    }

    /// The pool of node `addr` for connections logging in as `user`.
    fn pool<'a>(
        &self,
        pools: &'a mut FxHashMap<PoolKey, NodePool>,
        addr: &str,
        user: Option<&Arc<BackendUser>>,
    ) -> &'a mut NodePool {
        let connections = self.connections;
        pools
            .entry((addr.to_string(), user.cloned()))
            .or_insert_with(|| NodePool {
                target: Arc::new(self.params.target(addr)),
                shared: [vec![None; connections], vec![None; connections]],
            })
    }

    /// The shared connection to `addr`, logged in as `user` (None: the configured backend
    /// user), that serves this client.
    pub fn conn_to(
        &self,
        remote: &Remote,
        addr: &str,
        user: Option<&Arc<BackendUser>>,
        proto: Protocol,
        client_id: u64,
    ) -> BackendConn {
        let mut pools = self.pools.lock();
        let pool = self.pool(&mut pools, addr, user);
        let slots = &mut pool.shared[usize::from(proto == Protocol::Resp3)];
        let i = (client_id as usize) % slots.len();
        match &slots[i] {
            Some(c) if !c.is_dead() => c.clone(),
            _ => {
                let c = remote.spawn_to(pool.target.clone(), user.cloned(), proto, 0);
                if self.read_from != ReadFrom::Master {
                    // Replicas serve their master's slots to connections in READONLY mode;
                    // on a master the flag changes nothing. Queued before any command.
                    let mut bytes = BytesMut::new();
                    encode_command(&mut bytes, &[b"READONLY"]);
                    let _ = c.send(Batch {
                        bytes: bytes.freeze(),
                        owed: smallvec::smallvec![Owed {
                            sink: None,
                            count: 1,
                        }],
                    });
                }
                slots[i] = Some(c.clone());
                c
            }
        }
    }

    /// A connection of the client's own to `addr`, logged in as `user`.
    pub fn pinned_to(
        &self,
        remote: &Remote,
        addr: &str,
        user: Option<&Arc<BackendUser>>,
        proto: Protocol,
    ) -> BackendConn {
        let target = {
            let mut pools = self.pools.lock();
            self.pool(&mut pools, addr, user).target.clone()
        };
        remote.spawn_to(target, user.cloned(), proto, 0)
    }
}

/// Sends encoded commands to `conn` and waits for the last of their replies (the `skip`
/// before it are dropped), at most `timeout`.
pub async fn ask(
    conn: &BackendConn,
    bytes: Bytes,
    skip: usize,
    timeout: Option<Duration>,
) -> Result<Bytes, BackendError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut owed = OwedList::new();
    Owed::push(&mut owed, None, skip);
    Owed::push(&mut owed, Some(&tx), 1);
    conn.send(Batch { bytes, owed }).map_err(|(_, e)| e)?;
    let wait = async {
        match rx.recv().await {
            Some(Ok(chunk)) => Ok(chunk.bytes),
            Some(Err(e)) => Err(e),
            None => Err(BackendError::Closed),
        }
    };
    within(conn, timeout, wait).await
}

/// An error reply in the client's protocol, as raw bytes.
pub fn error_frame(text: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(text.len() + 3);
    out.extend_from_slice(b"-");
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

/// Does this reply ask for a resend (MOVED, ASK, TRYAGAIN, CLUSTERDOWN)?
pub fn needs_resend(reply: &[u8]) -> bool {
    reply.first() == Some(&b'-')
        && (reply.starts_with(b"-MOVED ")
            || reply.starts_with(b"-ASK ")
            || reply.starts_with(b"-TRYAGAIN")
            || reply.starts_with(b"-CLUSTERDOWN"))
}

/// Follows redirections for one command whose first answer was `first`: MOVED (the map is
/// patched and re-read) and ASK (resent once with ASKING) up to [`MAX_ATTEMPTS`] times;
/// TRYAGAIN, CLUSTERDOWN and a node that refuses connections (a failed master whose replica
/// is taking over) are retried against whoever serves the slot then, until the command
/// timeout. A connection that broke after the command was sent is not retried: the command
/// may have run, so the client gets the error.
pub async fn follow(
    remote: &Remote,
    cluster: &ClusterBackend,
    resend: &Resend,
    first: Result<Bytes, BackendError>,
    proto: Protocol,
    client_id: u64,
) -> Bytes {
    let timeout = remote.command_timeout;
    let deadline = Instant::now() + timeout.unwrap_or(Duration::from_secs(10));
    let mut from = resend.node.to_string();
    let mut current = first;
    let mut redirects = 0;
    if let Sent::Transaction(_) = &resend.sent
        && matches!(&current, Ok(r) if r.starts_with(b"-EXECABORT"))
        && let Some(addr) = resend.slot.and_then(|s| cluster.master_addr(s))
    {
        // An aborted transaction ran nothing: running it again (reading every reply) is
        // safe, and shows a MOVED/ASK that aborted it; a real error aborts it again.
        let conn = cluster.conn_to(remote, &addr, resend.user.as_ref(), proto, client_id);
        current = send(&conn, &resend.sent, false, timeout).await;
        from = addr;
    }
    loop {
        let (addr, asking) = match &current {
            Ok(reply) if !needs_resend(reply) => return reply.clone(),
            Ok(reply) => match parse_redirect(reply, &from) {
                Some(_) if redirects >= MAX_ATTEMPTS => return reply.clone(),
                Some(Redirect::Moved { slot, addr }) => {
                    redirects += 1;
                    crate::metrics::handles().cluster_moved.increment(1);
                    cluster.moved(slot, &addr);
                    (addr, false)
                }
                Some(Redirect::Ask { addr, .. }) => {
                    redirects += 1;
                    crate::metrics::handles().cluster_ask.increment(1);
                    (addr, true)
                }
                // TRYAGAIN (a slot mid-migration) or CLUSTERDOWN (mid-failover).
                None => match retry_target(cluster, resend.slot, deadline).await {
                    Some(addr) => (addr, false),
                    None => return reply.clone(),
                },
            },
            Err(BackendError::Unavailable(_)) => {
                match retry_target(cluster, resend.slot, deadline).await {
                    Some(addr) => (addr, false),
                    None => {
                        let e = current
                            .err()
                            .unwrap_or(BackendError::Unavailable(String::new()));
                        return error_frame(&e.client_error(&from));
                    }
                }
            }
            Err(e) => return error_frame(&e.client_error(&from)),
        };
        let conn = cluster.conn_to(remote, &addr, resend.user.as_ref(), proto, client_id);
        current = send(&conn, &resend.sent, asking, timeout).await;
        if current.is_err() {
            cluster.request_refresh();
        }
        from = addr;
    }
}

/// Sends a command or transaction (after ASKING when `asking`) and returns its reply: for a
/// transaction, the first redirection among its replies if there is one, else EXEC's.
async fn send(
    conn: &BackendConn,
    sent: &Sent,
    asking: bool,
    timeout: Option<Duration>,
) -> Result<Bytes, BackendError> {
    let mut bytes = BytesMut::new();
    if asking {
        // Inside MULTI the ASKING flag lasts until EXEC, so it covers every queued command.
        encode_command(&mut bytes, &[b"ASKING"]);
    }
    match sent {
        Sent::One(argv) => {
            encode_command(&mut bytes, argv);
            ask(conn, bytes.freeze(), usize::from(asking), timeout).await
        }
        Sent::Raw(frame) => {
            bytes.extend_from_slice(frame);
            ask(conn, bytes.freeze(), usize::from(asking), timeout).await
        }
        Sent::Transaction(commands) => {
            encode_command(&mut bytes, &[b"MULTI"]);
            for argv in commands {
                encode_command(&mut bytes, argv);
            }
            encode_command(&mut bytes, &[b"EXEC"]);
            let n = usize::from(asking) + commands.len() + 2;
            let replies = ask_all(conn, bytes.freeze(), n, timeout).await?;
            let redirect = replies.iter().find(|r| needs_resend(r));
            match redirect.or(replies.last()) {
                Some(r) => Ok(r.clone()),
                None => Err(BackendError::Protocol(
                    "ERR respgate: no reply to EXEC".into(),
                )),
            }
        }
    }
}

/// Like [`ask`], but returns all `n` replies, each as its own frame.
async fn ask_all(
    conn: &BackendConn,
    bytes: Bytes,
    n: usize,
    timeout: Option<Duration>,
) -> Result<Vec<Bytes>, BackendError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut owed = OwedList::new();
    Owed::push(&mut owed, Some(&tx), n);
    conn.send(Batch { bytes, owed }).map_err(|(_, e)| e)?;
    let wait = async {
        let mut replies = Vec::with_capacity(n);
        while replies.len() < n {
            let chunk = match rx.recv().await {
                Some(Ok(chunk)) => chunk,
                Some(Err(e)) => return Err(e),
                None => return Err(BackendError::Closed),
            };
            // A chunk is whole replies in a row; cut it into them.
            let mut scanner = ReplyScanner::new();
            let mut at = 0;
            for _ in 0..chunk.count {
                match scanner.scan(&chunk.bytes[at..]) {
                    Ok(Some(len)) => {
                        replies.push(chunk.bytes.slice(at..at + len));
                        at += len;
                    }
                    _ => return Err(BackendError::Protocol("ERR respgate: bad reply".into())),
                }
            }
        }
        Ok(replies)
    };
    within(conn, timeout, wait).await
}

/// Waits for `wait` up to `timeout`; when that passes, `conn` is given up (everything owed
/// on it is answered with the timeout) and so is the wait.
async fn within<T>(
    conn: &BackendConn,
    timeout: Option<Duration>,
    wait: impl std::future::Future<Output = Result<T, BackendError>>,
) -> Result<T, BackendError> {
    match timeout {
        Some(t) => match tokio::time::timeout(t, wait).await {
            Ok(r) => r,
            Err(_) => {
                conn.kill(BackendError::Timeout(t.as_millis()));
                Err(BackendError::Timeout(t.as_millis()))
            }
        },
        None => wait.await,
    }
}

/// After a pause and a map refresh, the master now serving `slot` (any master for keyless
/// commands); None once `deadline` has passed.
async fn retry_target(
    cluster: &ClusterBackend,
    slot: Option<u16>,
    deadline: Instant,
) -> Option<String> {
    if Instant::now() + RETRY_PAUSE >= deadline {
        return None;
    }
    cluster.request_refresh();
    tokio::time::sleep(RETRY_PAUSE).await;
    match slot {
        Some(slot) => cluster.master_addr(slot),
        None => cluster.any_master(rand::random()),
    }
}

/// Who a deferred command runs for: the client's protocol version, its id (which picks its
/// shared connections) and the backend user its connections log in as.
#[derive(Clone, Copy)]
pub struct Client<'a> {
    pub proto: Protocol,
    pub id: u64,
    pub user: Option<&'a Arc<BackendUser>>,
}

/// Sends one command to the master serving `slot` and follows redirections.
async fn run_on_slot(
    remote: &Remote,
    cluster: &ClusterBackend,
    slot: u16,
    argv: Vec<Bytes>,
    client: Client<'_>,
) -> Bytes {
    let Some(addr) = cluster.master_addr(slot) else {
        cluster.request_refresh();
        return error_frame("CLUSTERDOWN Hash slot not served");
    };
    run_on_node(remote, cluster, &addr, Some(slot), argv, client).await
}

async fn run_on_node(
    remote: &Remote,
    cluster: &ClusterBackend,
    addr: &str,
    slot: Option<u16>,
    argv: Vec<Bytes>,
    client: Client<'_>,
) -> Bytes {
    let Client {
        proto,
        id: client_id,
        user,
    } = client;
    let conn = cluster.conn_to(remote, addr, user, proto, client_id);
    let mut bytes = BytesMut::new();
    encode_command(&mut bytes, &argv);
    let reply = ask(&conn, bytes.freeze(), 0, remote.command_timeout).await;
    if reply.is_err() {
        cluster.request_refresh();
    }
    let resend = Resend {
        slot,
        sent: Sent::One(argv),
        node: addr.into(),
        user: user.cloned(),
    };
    follow(remote, cluster, &resend, reply, proto, client_id).await
}

/// Runs a split or fan-out command and merges the replies into the one Redis would give.
pub async fn run_deferred(
    remote: &Remote,
    cluster: &ClusterBackend,
    deferred: Deferred,
    client: Client<'_>,
) -> Bytes {
    let proto = client.proto;
    let merged = match deferred {
        Deferred::Split(split) => {
            // Every part at once (they are independent), each following its redirections.
            let parts = split
                .parts
                .iter()
                .map(|p| run_on_slot(remote, cluster, p.slot, p.argv.clone(), client));
            let replies = futures_join_all(parts).await;
            split::merge(&split, &replies)
        }
        Deferred::AllMasters(argv, merge) => {
            let mut masters = cluster.master_addresses();
            if masters.is_empty() {
                return error_frame("CLUSTERDOWN The cluster is down");
            }
            if merge == Merge::FirstNonNull {
                // RANDOMKEY: start at a random master.
                let k = rand::random_range(0..masters.len());
                masters.rotate_left(k);
            }
            let runs = masters
                .iter()
                .map(|addr| run_on_node(remote, cluster, addr, None, argv.clone(), client));
            let replies = futures_join_all(runs).await;
            split::merge_fan_out(merge, &replies)
        }
        Deferred::InfoBackend(argv) => {
            let masters = cluster.master_addresses();
            let runs = masters
                .iter()
                .map(|addr| run_on_node(remote, cluster, addr, None, argv.clone(), client));
            let replies = futures_join_all(runs).await;
            Ok(info_by_node(&masters, &replies, proto))
        }
        Deferred::Walk(walk) => {
            return crate::backend::remote::walk::run(remote, walk, client).await;
        }
        Deferred::Scan(argv) => {
            let topo = cluster.topology();
            let masters = topo.masters();
            match split::plan_scan(&argv, masters.len()) {
                Err(e) => return error_frame(&e.to_string()),
                Ok(ScanPlan::Done) => Ok(Bytes::from_static(split::SCAN_DONE)),
                Ok(ScanPlan::Send { shard, argv }) => {
                    let addr = topo.address(masters[shard]).to_string();
                    let reply = run_on_node(remote, cluster, &addr, None, argv, client).await;
                    split::scan_reply(&reply, shard, masters.len())
                }
            }
        }
    };
    merged.unwrap_or_else(|e| {
        error_frame(&format!("ERR respgate: cannot merge cluster replies: {e}"))
    })
}

/// Every node's INFO text under a `# node <addr>` header, as one bulk (RESP2) or verbatim
/// (RESP3) string like INFO's own reply; a node's error reply is shown in its place.
pub fn info_by_node(nodes: &[String], replies: &[Bytes], proto: Protocol) -> Bytes {
    let mut text = Vec::new();
    for (addr, reply) in nodes.iter().zip(replies) {
        text.extend_from_slice(format!("# node {addr}\r\n").as_bytes());
        match crate::protocol::reply_scan::decode(reply) {
            crate::protocol::reply_scan::Frame::Bulk(b) => {
                // RESP3 INFO is a verbatim string: drop its "txt:" format tag.
                let body = if b.starts_with(b"txt:") {
                    b.slice(4..)
                } else {
                    b
                };
                text.extend_from_slice(&body);
            }
            crate::protocol::reply_scan::Frame::Error(e) => {
                text.extend_from_slice(b"error:");
                text.extend_from_slice(&e);
                text.extend_from_slice(b"\r\n");
            }
            _ => {}
        }
        text.extend_from_slice(b"\r\n");
    }
    let mut out = BytesMut::with_capacity(text.len() + 16);
    if proto == Protocol::Resp3 {
        out.extend_from_slice(format!("={}\r\ntxt:", text.len() + 4).as_bytes());
    } else {
        out.extend_from_slice(format!("${}\r\n", text.len()).as_bytes());
    }
    out.extend_from_slice(&text);
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

/// Awaits futures concurrently, keeping their order (a tiny join_all: they are few).
async fn futures_join_all<F: std::future::Future<Output = Bytes>>(
    futures: impl Iterator<Item = F>,
) -> Vec<Bytes> {
    let mut set: Vec<std::pin::Pin<Box<F>>> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<Bytes>> = vec![None; set.len()];
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_some() {
                continue;
            }
            match f.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => out[i] = Some(v),
                std::task::Poll::Pending => pending = true,
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap_or_default).collect()
}

/// Where a keyless command goes: a fan-out plan, or None for "any master".
pub fn plan_keyless(spec: &crate::command::CommandSpec, argv: &[Bytes]) -> Option<Deferred> {
    match split::fan_out(spec, argv)? {
        FanOut::AllMasters(merge) => Some(Deferred::AllMasters(argv.to_vec(), merge)),
        FanOut::Scan => Some(Deferred::Scan(argv.to_vec())),
        FanOut::AnyNode => None,
    }
}
