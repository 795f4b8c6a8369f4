//! A throwaway Redis Cluster for tests: 6 redis-server processes (3 masters, 3 replicas) on
//! free loopback ports, each in its own temp dir, joined with `redis-cli --cluster create`,
//! ready once every node says `cluster_state:ok` and knows every master's replica; stopped
//! by pid (never by name) and its dirs removed on drop.
//!
//! Startup takes about 3 s. [`RedisCluster::shared`] lets the tests of one binary that run
//! at the same time share one cluster (it stops when the last of them drops it); tests that
//! change the cluster's shape must put it back, or start their own.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::resp::{Conn, Value};

/// Masters, and replicas per master.
const MASTERS: usize = 3;
const NODES: usize = MASTERS * 2;
/// Short, so tests that kill a master see the failover quickly.
const NODE_TIMEOUT_MS: &str = "2000";

pub struct ClusterNode {
    pub port: u16,
    /// The cluster bus port (`cluster-port`), chosen free like `port` rather than Redis's
    /// default port + 10000, which may be taken or out of range.
    pub bus_port: u16,
    child: Option<Child>,
}

impl ClusterNode {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id; None once the node was stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

pub struct RedisCluster {
    pub nodes: Vec<ClusterNode>,
    /// `requirepass` (and `masterauth`) of every node, if any.
    pub password: Option<String>,
    root: PathBuf,
}

impl RedisCluster {
    /// Starts and joins a 3-master/3-replica cluster; panics (after stopping what it
    /// started) if it cannot.
    pub fn start() -> RedisCluster {
        Self::start_inner(None)
    }

    /// Like [`RedisCluster::start`], every node requiring `password` (replicas use it to
    /// reach their masters).
    pub fn start_with_password(password: &str) -> RedisCluster {
        Self::start_inner(Some(password))
    }

    fn start_inner(password: Option<&str>) -> RedisCluster {
        let mut last = String::new();
        // A port taken between our probe and redis-server's bind makes a node exit: retry.
        for _ in 0..5 {
            match Self::try_start(password) {
                Ok(c) => return c,
                Err(e) => last = e,
            }
        }
        panic!("could not start a redis cluster: {last}");
    }

    /// The cluster every concurrently running test of this binary shares.
    pub fn shared() -> Arc<RedisCluster> {
        static SHARED: Mutex<Weak<RedisCluster>> = Mutex::new(Weak::new());
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = slot.upgrade() {
            return c;
        }
        let c = Arc::new(RedisCluster::start());
        *slot = Arc::downgrade(&c);
        c
    }

    fn try_start(password: Option<&str>) -> Result<RedisCluster, String> {
        static RUN: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "respgate-cluster-{}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
        // From here on, Drop stops whatever was started and removes the dirs.
        let mut cluster = RedisCluster {
            nodes: Vec::new(),
            password: password.map(str::to_string),
            root,
        };
        let auth: Vec<&str> = match password {
            Some(p) => vec!["--requirepass", p, "--masterauth", p],
            None => vec![],
        };
        let ports = free_ports(NODES * 2);
        for pair in ports.chunks(2) {
            let (port, bus_port) = (pair[0], pair[1]);
            let dir = cluster.root.join(format!("node-{port}"));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let conf = dir.join(format!("nodes-{port}.conf"));
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes"])
                .arg("--cluster-config-file")
                .arg(&conf)
                .args(["--cluster-port", &bus_port.to_string()])
                .args(["--cluster-node-timeout", NODE_TIMEOUT_MS])
                .arg("--dir")
                .arg(&dir)
                .args(["--save", "", "--appendonly", "no"])
                // A replica appears in CLUSTER SLOTS only once its replication offset is
                // not 0: without writes that takes the master's first replication PING
                // (every 10 s by default), and a diskless full sync first waits 5 s for
                // other replicas. Both would make startup ~11 s instead of ~3 s.
                .args(["--repl-ping-replica-period", "1"])
                .args(["--repl-diskless-sync-delay", "0"])
                .args(&auth)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("spawning redis-server: {e}"))?;
            cluster.nodes.push(ClusterNode {
                port,
                bus_port,
                child: Some(child),
            });
        }
        for node in &mut cluster.nodes {
            wait_ready(node, password)?;
        }
        cluster.create()?;
        cluster.wait_converged(Duration::from_secs(20))?;
        Ok(cluster)
    }

    /// `redis-cli --cluster create ... --cluster-replicas 1 --cluster-yes`, bounded in time.
    fn create(&self) -> Result<(), String> {
        let out_path = self.root.join("create.log");
        let out = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(self.addrs())
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .args(
                self.password
                    .iter()
                    .flat_map(|p| ["-a", p.as_str(), "--no-auth-warning"]),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawning redis-cli: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break std::process::ExitStatus::default();
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(&out_path).unwrap_or_default();
        Err(format!(
            "redis-cli --cluster create failed ({status}):\n{log}"
        ))
    }

    /// Waits until every live node reports `cluster_state:ok` and lists every master with
    /// its replica in CLUSTER SLOTS (so a test reading the topology from any node sees it
    /// whole).
    pub fn wait_converged(&self, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.converged() {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("cluster did not converge: {last}"))
    }

    fn converged(&self) -> Result<(), String> {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let addr = node.addr();
            let mut c = self
                .try_conn(&addr)
                .ok_or(format!("{addr}: no connection"))?;
            c.send(&[b"CLUSTER", b"INFO"]);
            let info = c.try_read().map_err(|e| e.to_string())?;
            let ok = info
                .as_bytes()
                .is_some_and(|b| String::from_utf8_lossy(b).contains("cluster_state:ok"));
            if !ok {
                return Err(format!("{addr}: cluster_state not ok"));
            }
            c.send(&[b"CLUSTER", b"SLOTS"]);
            let slots = c.try_read().map_err(|e| e.to_string())?;
            let Value::Array(ranges) = slots else {
                return Err(format!("{addr}: CLUSTER SLOTS: {slots:?}"));
            };
            // Each range: start, end, master, replica.
            let whole = ranges.len() >= MASTERS
                && ranges
                    .iter()
                    .all(|r| matches!(r, Value::Array(items) if items.len() == 4));
            if !whole {
                return Err(format!("{addr}: CLUSTER SLOTS incomplete: {ranges:?}"));
            }
        }
        Ok(())
    }

    /// A connection to `addr`, logged in if the cluster has a password; None if it fails.
    pub fn try_conn(&self, addr: &str) -> Option<Conn> {
        let mut c = Conn::try_connect(addr)?;
        if let Some(p) = &self.password {
            c.send(&[b"AUTH", p.as_bytes()]);
            if c.try_read().ok()? != Value::Simple("OK".into()) {
                return None;
            }
        }
        Some(c)
    }

    /// Like [`RedisCluster::try_conn`]; panics if it fails.
    pub fn conn(&self, addr: &str) -> Conn {
        self.try_conn(addr)
            .unwrap_or_else(|| panic!("no connection to cluster node {addr}"))
    }

    /// Every node's address, in start order (which says nothing about roles).
    pub fn addrs(&self) -> Vec<String> {
        self.nodes.iter().map(ClusterNode::addr).collect()
    }

    /// Process ids of the nodes still running.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().filter_map(ClusterNode::pid).collect()
    }

    /// Addresses of the nodes that are masters now (by ROLE).
    pub fn masters(&self) -> Vec<String> {
        self.by_role("master")
    }

    /// Addresses of the nodes that are replicas now (by ROLE).
    pub fn replicas(&self) -> Vec<String> {
        self.by_role("slave")
    }

    fn by_role(&self, role: &str) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(ClusterNode::addr)
            .filter(|a| {
                let mut c = self.conn(a);
                match c.cmd(&[b"ROLE"]) {
                    Value::Array(items) => {
                        items.first().and_then(Value::as_bytes) == Some(role.as_bytes())
                    }
                    _ => false,
                }
            })
            .collect()
    }

    /// The master a replica (by address) replicates from, as `127.0.0.1:port`.
    pub fn master_of(&self, replica: &str) -> Option<String> {
        let mut c = self.conn(replica);
        match c.cmd(&[b"ROLE"]) {
            Value::Array(items) => {
                let Some(Value::Int(port)) = items.get(2) else {
                    return None;
                };
                Some(format!("127.0.0.1:{port}"))
            }
            _ => None,
        }
    }

    /// A node's cluster id (CLUSTER MYID).
    pub fn node_id(&self, addr: &str) -> String {
        let mut c = self.conn(addr);
        match c.cmd(&[b"CLUSTER", b"MYID"]) {
            Value::Bulk(b) => String::from_utf8_lossy(&b).into_owned(),
            other => panic!("CLUSTER MYID on {addr}: {other:?}"),
        }
    }

    /// Kills node `i` (by its pid) and waits for it to exit.
    pub fn stop_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes.get_mut(i).and_then(|n| n.child.take()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// `n` distinct free loopback ports: all probe listeners are held at once so the OS gives
/// distinct ones, then released for the servers to bind.
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("binding a probe port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("probe port address").port())
        .collect()
}

/// Waits until the node answers as itself (its pid in INFO): another process holding the
/// port would answer too, while ours exits failing to bind.
fn wait_ready(node: &mut ClusterNode, password: Option<&str>) -> Result<(), String> {
    let addr = node.addr();
    let Some(child) = node.child.as_mut() else {
        return Err(format!("{addr}: not started"));
    };
    let ours = format!("process_id:{}\r\n", child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server on {addr} exited: {status}"));
        }
        if let Some(mut c) = Conn::try_connect(&addr) {
            if let Some(p) = password {
                c.send(&[b"AUTH", p.as_bytes()]);
                let _ = c.try_read();
            }
            c.send(&[b"INFO", b"server"]);
            if c.try_read().is_ok_and(|v| {
                v.as_bytes()
                    .is_some_and(|b| String::from_utf8_lossy(b).contains(&ours))
            }) {
                return Ok(());
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(format!("redis-server on {addr} did not answer"))
}

/// The positions of a command's key arguments, from respgate's command table (none for a
/// command it does not know): where a test puts a hash tag so that all keys of a command
/// share one slot.
pub fn key_positions(args: &[&[u8]]) -> Vec<usize> {
    let argv: Vec<bytes::Bytes> = args
        .iter()
        .map(|a| bytes::Bytes::copy_from_slice(a))
        .collect();
    argv.first()
        .and_then(|name| respgate::command::table::lookup(name))
        .and_then(|spec| respgate::command::keys::key_positions(spec, &argv).ok())
        .unwrap_or_default()
}
