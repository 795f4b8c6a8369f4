//! The cluster's shape as respgate routes by it: which node is master of each of the 16384
//! slots, and which replicas each master has; built from `CLUSTER SLOTS`, patched by MOVED
//! redirections, and discovered by asking seed nodes in turn.
//!
//! Nodes are numbered by their position in [`Topology::nodes`]; a slot holds the number of its
//! master. Numbers are stable for the life of one `Topology` (a MOVED to a new node appends
//! it), not across rediscoveries: callers keep addresses, not numbers, across refreshes.

use std::time::Duration;

use bytes::Bytes;

use super::raw;
use super::slots::SLOTS;
use crate::backend::remote::conn::{Init, connect, round_trip};
use crate::backend::remote::{BackendError, Target};
use crate::config::{BackendConfig, parse_duration};
use crate::protocol::reply_scan::Frame;

/// No master is known for the slot.
const UNASSIGNED: u16 = u16::MAX;

/// A CLUSTER SLOTS reply respgate cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    /// The node answered with an error (e.g. cluster support disabled, or NOAUTH).
    #[error("{0}")]
    Refused(String),
    #[error("malformed CLUSTER SLOTS reply: {0}")]
    Malformed(&'static str),
    #[error("too many cluster nodes (more than {0})")]
    TooManyNodes(usize),
}

/// No seed node gave a usable topology.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no cluster node gave its slot map: {}", describe(.attempts))]
pub struct DiscoverError {
    /// Each seed asked, with why it did not do.
    pub attempts: Vec<(String, String)>,
}

fn describe(attempts: &[(String, String)]) -> String {
    if attempts.is_empty() {
        return "no seed nodes configured".to_string();
    }
    attempts
        .iter()
        .map(|(addr, why)| format!("{addr}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One master and its replicas, by node number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub master: usize,
    pub replicas: Vec<usize>,
}

/// The slot map.
#[derive(Clone, PartialEq, Eq)]
pub struct Topology {
    /// Node addresses (`host:port`, IPv6 hosts in brackets), unique.
    nodes: Vec<String>,
    /// Master node number per slot, or [`UNASSIGNED`].
    slot_master: Box<[u16]>,
    /// Replicas of each node, by node number (empty for replicas and unknown ones).
    replicas: Vec<Vec<usize>>,
    /// [`Topology::masters`], kept up to date by every change: fan-out commands read it per
    /// command, and computing it walks all 16384 slots.
    masters: Vec<usize>,
}

impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // 16384 slot numbers are useless in a log line; ranges per master say it all.
        let shards: Vec<String> = self
            .shards()
            .iter()
            .map(|s| {
                let replicas: Vec<&str> = s.replicas.iter().map(|&r| self.address(r)).collect();
                format!(
                    "{} {:?} replicas {:?}",
                    self.address(s.master),
                    self.slot_ranges(s.master),
                    replicas
                )
            })
            .collect();
        f.debug_struct("Topology")
            .field("shards", &shards)
            .field("unassigned_slots", &self.unassigned_slots())
            .finish()
    }
}

impl Default for Topology {
    fn default() -> Self {
        Topology::new()
    }
}

impl Topology {
    /// An empty map: no nodes, every slot unassigned.
    pub fn new() -> Topology {
        Topology {
            nodes: Vec::new(),
            slot_master: vec![UNASSIGNED; usize::from(SLOTS)].into_boxed_slice(),
            replicas: Vec::new(),
            masters: Vec::new(),
        }
    }

    /// Parses a raw `CLUSTER SLOTS` reply (RESP2 or RESP3) received from the node at `from`.
    /// Node entries with an empty, `?` or null host are given `from`'s host: Redis reports
    /// them so when it does not know (or does not announce) the node's endpoint, and the
    /// client is meant to use the address it already reached the cluster on.
    pub fn from_cluster_slots(reply: &Bytes, from: &str) -> Result<Topology, TopologyError> {
        use TopologyError::Malformed;
        let frame = raw::decode(reply).ok_or(Malformed("not a RESP frame"))?;
        let ranges = match frame {
            Frame::Array(ranges) => ranges,
            Frame::Error(e) => {
                return Err(TopologyError::Refused(
                    String::from_utf8_lossy(&e).into_owned(),
                ));
            }
            _ => return Err(Malformed("not an array")),
        };
        let mut topo = Topology::new();
        for range in ranges {
            let Frame::Array(items) = range else {
                return Err(Malformed("slot range is not an array"));
            };
            let [
                Frame::Integer(start),
                Frame::Integer(end),
                master,
                replicas @ ..,
            ] = items.as_slice()
            else {
                return Err(Malformed("slot range lacks start, end and master"));
            };
            let (start, end) = match (u16::try_from(*start), u16::try_from(*end)) {
                (Ok(s), Ok(e)) if s <= e && e < SLOTS => (s, e),
                _ => return Err(Malformed("slot range out of bounds")),
            };
            let master_addr = node_address(master, from)?;
            let m = topo.intern(&master_addr)?;
            for r in replicas {
                let r = topo.intern(&node_address(r, from)?)?;
                if r != m && !topo.replicas[m].contains(&r) {
                    topo.replicas[m].push(r);
                }
            }
            let m = u16::try_from(m).map_err(|_| TopologyError::TooManyNodes(MAX_NODES))?;
            topo.slot_master[usize::from(start)..=usize::from(end)].fill(m);
        }
        topo.masters = topo.compute_masters();
        Ok(topo)
    }

    /// Every known node's address, by node number.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }

    /// The address of node `n`.
    pub fn address(&self, n: usize) -> &str {
        self.nodes.get(n).map_or("", String::as_str)
    }

    /// The number of the node at `addr`, if known.
    pub fn node_index(&self, addr: &str) -> Option<usize> {
        self.nodes.iter().position(|a| a == addr)
    }

    /// The master serving `slot`, if any (slots >= 16384 have none).
    pub fn master_for(&self, slot: u16) -> Option<usize> {
        match self.slot_master.get(usize::from(slot)) {
            Some(&m) if m != UNASSIGNED => Some(usize::from(m)),
            _ => None,
        }
    }

    /// The replicas of the master serving `slot` (for `read_from = replica`).
    pub fn replicas_for(&self, slot: u16) -> &[usize] {
        self.master_for(slot)
            .and_then(|m| self.replicas.get(m))
            .map_or(&[], Vec::as_slice)
    }

    /// The replicas of node `n`.
    pub fn replicas_of(&self, n: usize) -> &[usize] {
        self.replicas.get(n).map_or(&[], Vec::as_slice)
    }

    /// Nodes that serve at least one slot, ordered by the lowest slot each serves. This
    /// order survives a failover (the promoted replica takes over the same slots), which is
    /// why SCAN cursors number shards by it.
    pub fn masters(&self) -> &[usize] {
        &self.masters
    }

    fn compute_masters(&self) -> Vec<usize> {
        let mut seen = vec![false; self.nodes.len()];
        let mut out = Vec::new();
        for &m in self.slot_master.iter() {
            if m != UNASSIGNED && !std::mem::replace(&mut seen[usize::from(m)], true) {
                out.push(usize::from(m));
            }
        }
        out
    }

    /// Masters with their replicas, in [`Topology::masters`] order.
    pub fn shards(&self) -> Vec<Shard> {
        self.masters
            .iter()
            .map(|&master| Shard {
                master,
                replicas: self.replicas_of(master).to_vec(),
            })
            .collect()
    }

    /// The slots node `n` serves, as inclusive ranges.
    pub fn slot_ranges(&self, n: usize) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for (slot, &m) in (0..SLOTS).zip(self.slot_master.iter()) {
            if usize::from(m) != n || m == UNASSIGNED {
                continue;
            }
            match out.last_mut() {
                Some((_, end)) if *end + 1 == slot => *end = slot,
                _ => out.push((slot, slot)),
            }
        }
        out
    }

    /// How many slots have no known master (0 for a healthy cluster).
    pub fn unassigned_slots(&self) -> usize {
        self.slot_master
            .iter()
            .filter(|&&m| m == UNASSIGNED)
            .count()
    }

    /// True when every slot has a master.
    pub fn is_complete(&self) -> bool {
        self.unassigned_slots() == 0
    }

    /// Records a `MOVED slot addr`: the slot's master is now `addr` (added if new). Returns
    /// its node number. The rest of the map may be stale too (a MOVED usually means a
    /// resharding or a failover); callers should schedule a rediscovery as well.
    pub fn apply_moved(&mut self, slot: u16, addr: &str) -> Result<usize, TopologyError> {
        if slot >= SLOTS {
            return Err(TopologyError::Malformed("slot out of bounds"));
        }
        let n = self.intern(addr)?;
        let m = u16::try_from(n).map_err(|_| TopologyError::TooManyNodes(MAX_NODES))?;
        self.slot_master[usize::from(slot)] = m;
        self.masters = self.compute_masters();
        Ok(n)
    }

    /// Whom to ask on a rediscovery: the masters this map knows, then their replicas (a
    /// failover may have promoted one), then `seeds` (the configured nodes, in case every
    /// known node is gone); without duplicates.
    pub fn refresh_seeds(&self, seeds: &[String]) -> Vec<String> {
        let masters = &self.masters;
        let replicas = masters
            .iter()
            .flat_map(|&m| self.replicas_of(m).iter().copied());
        let mut out: Vec<String> = Vec::new();
        for addr in masters
            .iter()
            .copied()
            .chain(replicas)
            .map(|n| self.address(n).to_string())
            .chain(seeds.iter().cloned())
        {
            if !out.contains(&addr) {
                out.push(addr);
            }
        }
        out
    }

    /// The number of `addr`, adding it if new.
    fn intern(&mut self, addr: &str) -> Result<usize, TopologyError> {
        if let Some(n) = self.node_index(addr) {
            return Ok(n);
        }
        if self.nodes.len() >= MAX_NODES {
            return Err(TopologyError::TooManyNodes(MAX_NODES));
        }
        self.nodes.push(addr.to_string());
        self.replicas.push(Vec::new());
        Ok(self.nodes.len() - 1)
    }
}

/// Most nodes one map holds (Redis recommends at most ~1000; the bound keeps node numbers
/// below [`UNASSIGNED`] and a hostile reply from growing the map without limit).
const MAX_NODES: usize = 4096;

/// The address of one CLUSTER SLOTS node entry: `[host, port, id?, metadata?]`.
fn node_address(entry: &Frame, from: &str) -> Result<String, TopologyError> {
    use TopologyError::Malformed;
    let Frame::Array(items) = entry else {
        return Err(Malformed("node entry is not an array"));
    };
    let host = match items.first() {
        Some(Frame::Bulk(h) | Frame::Simple(h)) => Some(h.clone()),
        Some(Frame::Null) => None,
        _ => return Err(Malformed("node entry lacks a host")),
    };
    let port = match items.get(1) {
        Some(Frame::Integer(p)) => u16::try_from(*p).map_err(|_| Malformed("bad port"))?,
        _ => return Err(Malformed("node entry lacks a port")),
    };
    let host = host.as_deref().unwrap_or_default();
    let host = std::str::from_utf8(host).map_err(|_| Malformed("host is not UTF-8"))?;
    Ok(join_host_port(host, port, from))
}

/// `host:port` for connecting, with `from`'s host standing in for an unknown one (empty or
/// `?`), and IPv6 literals bracketed (Redis reports them bare: `::1`).
pub fn join_host_port(host: &str, port: u16, from: &str) -> String {
    if host.is_empty() || host == "?" {
        let from_host = from.rsplit_once(':').map_or(from, |(h, _)| h);
        return format!("{from_host}:{port}");
    }
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// A redirection a cluster node answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redirect {
    /// The slot lives on `addr` now: update the map and resend there.
    Moved { slot: u16, addr: String },
    /// This one command should be retried on `addr`, preceded by ASKING; the map is unchanged
    /// (the slot is being migrated).
    Ask { slot: u16, addr: String },
}

impl Redirect {
    pub fn slot(&self) -> u16 {
        match self {
            Redirect::Moved { slot, .. } | Redirect::Ask { slot, .. } => *slot,
        }
    }

    pub fn addr(&self) -> &str {
        match self {
            Redirect::Moved { addr, .. } | Redirect::Ask { addr, .. } => addr,
        }
    }
}

/// Parses a `-MOVED 3999 127.0.0.1:6381` or `-ASK 3999 127.0.0.1:6381` reply (the raw frame,
/// a RESP3 blob error, or the bare error text) received from the node at `from`. None for any
/// other reply. An endpoint Redis does not know (`:6381`, `?:6381`) means `from`'s host.
pub fn parse_redirect(reply: &[u8], from: &str) -> Option<Redirect> {
    let text = match reply.first() {
        Some(b'-' | b'!') => raw::error_text(reply)?,
        _ => reply.strip_suffix(b"\r\n").unwrap_or(reply),
    };
    let text = std::str::from_utf8(text).ok()?;
    let mut words = text.split(' ');
    let kind = words.next()?;
    let slot: u16 = words.next()?.parse().ok().filter(|s| *s < SLOTS)?;
    let endpoint = words.next()?;
    if words.next().is_some() {
        return None;
    }
    let (host, port) = endpoint.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let addr = join_host_port(host, port, from);
    match kind {
        "MOVED" => Some(Redirect::Moved { slot, addr }),
        "ASK" => Some(Redirect::Ask { slot, addr }),
        _ => None,
    }
}

/// Cluster errors a router should retry (after a short pause; for CLUSTERDOWN after a
/// rediscovery) rather than hand to the client, until its command timeout runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transient {
    /// `-TRYAGAIN Multiple keys request during rehashing of slot`: the keys of a multi-key
    /// command are split between the two ends of a migrating slot; it passes when the
    /// migration of that slot completes.
    TryAgain,
    /// `-CLUSTERDOWN ...`: the slot (or the whole cluster) is not served right now, e.g.
    /// between a master's failure and its replica's promotion.
    ClusterDown,
}

/// Whether `reply` (a raw frame or bare error text) is a [`Transient`] cluster error.
pub fn transient_error(reply: &[u8]) -> Option<Transient> {
    let text = match reply.first() {
        Some(b'-' | b'!') => raw::error_text(reply)?,
        _ => reply,
    };
    // Clients parse errors by their first word; so do we.
    let word = text.split(|&b| b == b' ' || b == b'\r').next()?;
    match word {
        b"TRYAGAIN" => Some(Transient::TryAgain),
        b"CLUSTERDOWN" => Some(Transient::ClusterDown),
        _ => None,
    }
}

/// How to log in to cluster nodes (every node shares the credentials).
#[derive(Debug, Clone, Default)]
pub struct ConnectParams {
    pub username: Option<String>,
    pub password: Option<String>,
    /// Bounds the connection, the login and the CLUSTER SLOTS round trip, each.
    pub connect_timeout: Duration,
    /// TLS to every node (`[backend] tls`), if configured.
    pub tls: Option<crate::tls::BackendTls>,
}

impl ConnectParams {
    /// The credentials and connect timeout of `[backend]` (as the standalone backend reads
    /// them: an unparsable timeout means 2 s).
    pub fn from_config(config: &BackendConfig) -> ConnectParams {
        ConnectParams {
            username: config.username.clone(),
            password: config.password.clone(),
            connect_timeout: parse_duration(&config.connect_timeout)
                .unwrap_or(Duration::from_secs(2)),
            tls: None,
        }
    }

    /// A standalone-style target for one node.
    pub fn target(&self, address: &str) -> Target {
        Target::new(
            address.to_string(),
            self.username.clone(),
            self.password.clone(),
            self.connect_timeout,
            self.tls.clone(),
        )
    }
}

/// Asks `seeds` for CLUSTER SLOTS, one after the other, and returns the first complete map
/// (every slot served). If no seed has a complete map (slots unassigned mid-failover), the
/// most complete one is returned, so routing works for the slots that are served.
pub async fn discover(seeds: &[String], params: &ConnectParams) -> Result<Topology, DiscoverError> {
    let mut attempts = Vec::new();
    let mut best: Option<Topology> = None;
    for seed in seeds {
        match ask_slots(seed, params).await {
            Ok(topo) if topo.is_complete() => return Ok(topo),
            Ok(topo) if topo.masters().is_empty() => {
                attempts.push((seed.clone(), "serves no slots".to_string()));
            }
            Ok(topo) => {
                attempts.push((
                    seed.clone(),
                    format!("{} slots unassigned", topo.unassigned_slots()),
                ));
                if best
                    .as_ref()
                    .is_none_or(|b| topo.unassigned_slots() < b.unassigned_slots())
                {
                    best = Some(topo);
                }
            }
            Err(e) => attempts.push((seed.clone(), e)),
        }
    }
    best.ok_or(DiscoverError { attempts })
}

/// One seed's slot map; the error is a description for [`DiscoverError`].
async fn ask_slots(seed: &str, params: &ConnectParams) -> Result<Topology, String> {
    let target = params.target(seed);
    let init = Init {
        resp3: false,
        db: 0,
        user: None,
    };
    let mut stream = connect(&target, init).await.map_err(|e| e.to_string())?;
    let reply = tokio::time::timeout(
        params.connect_timeout,
        round_trip(&mut stream, &[b"CLUSTER", b"SLOTS"]),
    )
    .await
    .map_err(|_| BackendError::Timeout(params.connect_timeout.as_millis()).to_string())?
    .map_err(|e| e.to_string())?;
    Topology::from_cluster_slots(&reply, seed).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A RESP2 CLUSTER SLOTS reply as redis-server 7.0 sends it: ranges of [start, end,
    /// master, replicas...], each node [ip, port, id, metadata].
    /// One slot range: start, end, then master and replicas as (host, port).
    type Range<'a> = (u16, u16, &'a [(&'a str, u16)]);

    fn slots_reply(ranges: &[Range]) -> Bytes {
        let mut out = format!("*{}\r\n", ranges.len());
        for (start, end, nodes) in ranges {
            out += &format!("*{}\r\n:{start}\r\n:{end}\r\n", 2 + nodes.len());
            for (host, port) in *nodes {
                out += &format!(
                    "*4\r\n${}\r\n{host}\r\n:{port}\r\n$40\r\n{}\r\n*0\r\n",
                    host.len(),
                    "a".repeat(40)
                );
            }
        }
        Bytes::from(out)
    }

    fn three_shards() -> Topology {
        let reply = slots_reply(&[
            (0, 5460, &[("127.0.0.1", 7000), ("127.0.0.1", 7004)]),
            (5461, 10922, &[("127.0.0.1", 7001), ("127.0.0.1", 7005)]),
            (10923, 16383, &[("127.0.0.1", 7002), ("127.0.0.1", 7003)]),
        ]);
        match Topology::from_cluster_slots(&reply, "127.0.0.1:7000") {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn parses_three_masters_with_replicas() {
        let t = three_shards();
        assert!(t.is_complete());
        let addr = |n: Option<usize>| n.map(|n| t.address(n).to_string());
        assert_eq!(addr(t.master_for(0)).as_deref(), Some("127.0.0.1:7000"));
        assert_eq!(addr(t.master_for(5460)).as_deref(), Some("127.0.0.1:7000"));
        assert_eq!(addr(t.master_for(5461)).as_deref(), Some("127.0.0.1:7001"));
        assert_eq!(addr(t.master_for(16383)).as_deref(), Some("127.0.0.1:7002"));
        assert_eq!(t.master_for(16384), None);
        let shards = t.shards();
        assert_eq!(shards.len(), 3);
        let replica_addrs: Vec<&str> = shards
            .iter()
            .map(|s| {
                assert_eq!(s.replicas.len(), 1);
                t.address(s.replicas[0])
            })
            .collect();
        assert_eq!(
            replica_addrs,
            ["127.0.0.1:7004", "127.0.0.1:7005", "127.0.0.1:7003"]
        );
        assert_eq!(t.replicas_for(12000), &shards[2].replicas[..]);
        assert_eq!(t.slot_ranges(shards[1].master), vec![(5461, 10922)]);
        assert_eq!(t.nodes().len(), 6);
    }

    #[test]
    fn a_master_with_several_ranges_is_one_shard() {
        let reply = slots_reply(&[
            (0, 99, &[("10.0.0.1", 6379), ("10.0.0.2", 6379)]),
            (100, 16283, &[("10.0.0.3", 6379)]),
            (16284, 16383, &[("10.0.0.1", 6379), ("10.0.0.2", 6379)]),
        ]);
        let t = Topology::from_cluster_slots(&reply, "10.0.0.3:6379").unwrap_or_default();
        assert_eq!(t.masters().len(), 2);
        let first = t.masters()[0];
        assert_eq!(t.slot_ranges(first), vec![(0, 99), (16284, 16383)]);
        assert_eq!(t.replicas_of(first).len(), 1);
    }

    #[test]
    fn unknown_endpoints_use_the_address_asked() {
        let reply = slots_reply(&[(0, 16383, &[("", 7000), ("?", 7001)])]);
        let t = Topology::from_cluster_slots(&reply, "10.1.2.3:7005").unwrap_or_default();
        assert_eq!(t.nodes(), ["10.1.2.3:7000", "10.1.2.3:7001"]);
        // A null host (RESP3 `_` or RESP2 `$-1`) too.
        let null_host = Bytes::from_static(b"*1\r\n*3\r\n:0\r\n:16383\r\n*2\r\n$-1\r\n:7000\r\n");
        let t = Topology::from_cluster_slots(&null_host, "[::1]:7005").unwrap_or_default();
        assert_eq!(t.nodes(), ["[::1]:7000"]);
        let v6 = slots_reply(&[(0, 16383, &[("::1", 7000)])]);
        let t = Topology::from_cluster_slots(&v6, "x:1").unwrap_or_default();
        assert_eq!(t.nodes(), ["[::1]:7000"]);
    }

    #[test]
    fn resp3_reply_with_metadata_maps() {
        let reply = Bytes::from_static(
            b"*1\r\n*3\r\n:0\r\n:16383\r\n*4\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n\
%1\r\n$8\r\nhostname\r\n$4\r\nnode\r\n",
        );
        let t = Topology::from_cluster_slots(&reply, "127.0.0.1:7000").unwrap_or_default();
        assert!(t.is_complete());
        assert_eq!(t.nodes(), ["127.0.0.1:7000"]);
    }

    #[test]
    fn incomplete_and_bad_replies() {
        let partial = slots_reply(&[(0, 99, &[("h", 1)])]);
        let t = Topology::from_cluster_slots(&partial, "h:1").unwrap_or_default();
        assert_eq!(t.unassigned_slots(), 16384 - 100);
        assert!(!t.is_complete());
        assert_eq!(t.master_for(100), None);

        let err = Topology::from_cluster_slots(
            &Bytes::from_static(b"-ERR This instance has cluster support disabled\r\n"),
            "h:1",
        );
        assert_eq!(
            err,
            Err(TopologyError::Refused(
                "ERR This instance has cluster support disabled".into()
            ))
        );
        for bad in [
            &b"+OK\r\n"[..],
            b"*1\r\n:1\r\n",
            b"*1\r\n*2\r\n:0\r\n:1\r\n",
            b"*1\r\n*3\r\n:5\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",
            b"*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",
            b"*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\nh\r\n:70000\r\n",
            b"*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\nh\r\n",
            b"*2\r\n",
        ] {
            assert!(
                matches!(
                    Topology::from_cluster_slots(&Bytes::from_static(bad), "h:1"),
                    Err(TopologyError::Malformed(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn moved_and_ask_replies() {
        assert_eq!(
            parse_redirect(b"-MOVED 3999 127.0.0.1:6381\r\n", "127.0.0.1:7000"),
            Some(Redirect::Moved {
                slot: 3999,
                addr: "127.0.0.1:6381".into()
            })
        );
        assert_eq!(
            parse_redirect(b"-ASK 3999 127.0.0.1:6381\r\n", "127.0.0.1:7000"),
            Some(Redirect::Ask {
                slot: 3999,
                addr: "127.0.0.1:6381".into()
            })
        );
        // Bare text (as `Frame::Error` holds it), RESP3 blob errors, unknown endpoints, IPv6.
        assert_eq!(
            parse_redirect(b"MOVED 1 :6381", "10.0.0.9:7000").map(|r| r.addr().to_string()),
            Some("10.0.0.9:6381".into())
        );
        assert_eq!(
            parse_redirect(b"!13\r\nASK 2 ?:6381 \r\n", "h:1"),
            None,
            "trailing space is not Redis's format"
        );
        assert_eq!(
            parse_redirect(b"!12\r\nASK 2 ?:6381\r\n", "h:1").map(|r| r.addr().to_string()),
            Some("h:6381".into())
        );
        assert_eq!(
            parse_redirect(b"-MOVED 7 ::1:6381\r\n", "x:1").map(|r| r.addr().to_string()),
            Some("[::1]:6381".into())
        );
        for other in [
            &b"-ERR MOVED 1 h:1\r\n"[..],
            b"-MOVED 16384 h:1\r\n",
            b"-MOVED x h:1\r\n",
            b"-MOVED 1 h\r\n",
            b"-MOVED 1 h:99999\r\n",
            b"-MOVED 1\r\n",
            b"+MOVED 1 h:1\r\n",
            b"-CROSSSLOT Keys in request don't hash to the same slot\r\n",
            b"",
        ] {
            assert_eq!(parse_redirect(other, "h:1"), None, "{other:?}");
        }
    }

    #[test]
    fn transient_cluster_errors() {
        assert_eq!(
            transient_error(b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"),
            Some(Transient::TryAgain)
        );
        assert_eq!(
            transient_error(b"-CLUSTERDOWN The cluster is down\r\n"),
            Some(Transient::ClusterDown)
        );
        assert_eq!(
            transient_error(b"CLUSTERDOWN Hash slot not served"),
            Some(Transient::ClusterDown)
        );
        assert_eq!(transient_error(b"-ERR TRYAGAIN\r\n"), None);
        assert_eq!(transient_error(b"-MOVED 1 h:1\r\n"), None);
        assert_eq!(transient_error(b"+TRYAGAIN\r\n"), None);
        assert_eq!(transient_error(b""), None);
    }

    #[test]
    fn refresh_asks_masters_then_replicas_then_seeds() {
        let t = three_shards();
        assert_eq!(
            t.refresh_seeds(&["127.0.0.1:7000".to_string(), "seed:1".to_string()]),
            [
                "127.0.0.1:7000",
                "127.0.0.1:7001",
                "127.0.0.1:7002",
                "127.0.0.1:7004",
                "127.0.0.1:7005",
                "127.0.0.1:7003",
                "seed:1"
            ]
        );
        assert_eq!(Topology::new().refresh_seeds(&["s:1".to_string()]), ["s:1"]);
    }

    #[test]
    fn moved_updates_one_slot() {
        let mut t = three_shards();
        let before = t.master_for(3999);
        let n = t.apply_moved(3999, "127.0.0.1:7002").unwrap_or(usize::MAX);
        assert_eq!(t.address(n), "127.0.0.1:7002");
        assert_eq!(t.master_for(3999), Some(n));
        assert_eq!(t.master_for(3998), before);
        // A node never seen before is added.
        let new = t.apply_moved(0, "127.0.0.1:7010").unwrap_or(usize::MAX);
        assert_eq!(t.nodes().len(), 7);
        assert_eq!(t.master_for(0), Some(new));
        assert_eq!(t.masters()[0], new, "masters are ordered by lowest slot");
        assert!(t.apply_moved(16384, "h:1").is_err());
    }

    #[test]
    fn a_failed_over_master_keeps_its_shard_position() {
        let t = three_shards();
        let swapped = slots_reply(&[
            (0, 5460, &[("127.0.0.1", 7000), ("127.0.0.1", 7004)]),
            (5461, 10922, &[("127.0.0.1", 7005)]),
            (10923, 16383, &[("127.0.0.1", 7002), ("127.0.0.1", 7003)]),
        ]);
        let after = Topology::from_cluster_slots(&swapped, "127.0.0.1:7000").unwrap_or_default();
        let addrs = |t: &Topology| -> Vec<String> {
            t.masters()
                .iter()
                .map(|&m| t.address(m).to_string())
                .collect()
        };
        assert_eq!(
            addrs(&t),
            ["127.0.0.1:7000", "127.0.0.1:7001", "127.0.0.1:7002"]
        );
        assert_eq!(
            addrs(&after),
            ["127.0.0.1:7000", "127.0.0.1:7005", "127.0.0.1:7002"]
        );
    }

    #[test]
    fn connect_params_from_config() {
        let config = BackendConfig {
            username: Some("proxy".into()),
            password: Some("pw".into()),
            connect_timeout: "250ms".into(),
            ..BackendConfig::default()
        };
        let p = ConnectParams::from_config(&config);
        assert_eq!(p.connect_timeout, Duration::from_millis(250));
        let t = p.target("10.0.0.1:7000");
        assert_eq!(t.address(), "10.0.0.1:7000");
        assert_eq!(t.username.as_deref(), Some("proxy"));
        assert_eq!(t.password.as_deref(), Some("pw"));
    }

    #[tokio::test]
    async fn discover_reports_every_seed_that_failed() {
        let params = ConnectParams {
            connect_timeout: Duration::from_millis(300),
            ..ConnectParams::default()
        };
        // Port 1 on loopback: nothing listens there.
        let err = discover(&["127.0.0.1:1".to_string()], &params).await;
        match err {
            Err(e) => {
                assert_eq!(e.attempts.len(), 1);
                assert!(e.to_string().contains("127.0.0.1:1"), "{e}");
            }
            Ok(t) => panic!("discovered {t:?}"),
        }
        let none = discover(&[], &params).await;
        assert!(none.is_err_and(|e| e.to_string().contains("no seed nodes")));
    }
}
