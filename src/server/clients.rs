//! The registry of connected clients: ids, what CLIENT LIST/INFO shows, and CLIENT KILL.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// What CLIENT LIST shows about one client; updated by its own connection task.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub name: String,
    pub lib_name: String,
    pub lib_ver: String,
    pub db: usize,
    pub resp: u8,
    pub user: String,
    /// Last command, as Redis prints it (`client|list`).
    pub last_cmd: &'static str,
    pub created: Instant,
    pub last_interaction: Instant,
    pub qbuf: usize,
    /// Subscribed channels, patterns and shard channels.
    pub sub: usize,
    pub psub: usize,
    pub ssub: usize,
    /// The client certificate's identity, on a TLS listener with `client_ca` (for mapping
    /// to a tenant later; not shown in CLIENT LIST, which keeps Redis's fields).
    pub tls_peer: Option<crate::tls::PeerIdentity>,
}

impl ClientInfo {
    /// One line of CLIENT LIST / the CLIENT INFO reply, fields in Redis 7.2's order.
    pub fn render(&self) -> String {
        let now = Instant::now();
        format!(
            "id={} addr={} laddr={} fd=8 name={} age={} idle={} flags={} db={} sub={} psub={} ssub={} multi=-1 qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user={} redir=-1 resp={} lib-name={} lib-ver={}",
            self.id,
            self.addr,
            self.laddr,
            self.name,
            now.duration_since(self.created).as_secs(),
            now.duration_since(self.last_interaction).as_secs(),
            if self.sub + self.psub + self.ssub > 0 {
                "P"
            } else {
                "N"
            },
            self.db,
            self.sub,
            self.psub,
            self.ssub,
            self.qbuf,
            self.last_cmd,
            self.user,
            self.resp,
            self.lib_name,
            self.lib_ver,
        )
    }
}

/// A registered client: its shared info and the switch that asks its task to close.
pub struct ClientHandle {
    pub info: Mutex<ClientInfo>,
    killed: AtomicBool,
    /// Killed for going over its output buffer limit (counted apart from CLIENT KILL).
    over_output_limit: AtomicBool,
    kill_notify: Notify,
}

impl ClientHandle {
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.kill_notify.notify_one();
    }

    /// Kills the client for going over its output buffer limit.
    pub fn kill_over_output_limit(&self) {
        self.over_output_limit.store(true, Ordering::Release);
        self.kill();
    }

    pub fn was_over_output_limit(&self) -> bool {
        self.over_output_limit.load(Ordering::Acquire)
    }

    pub fn is_killed(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    /// Resolves once [`ClientHandle::kill`] has been called.
    pub async fn killed(&self) {
        loop {
            if self.is_killed() {
                return;
            }
            self.kill_notify.notified().await;
        }
    }
}

#[derive(Default)]
pub struct ClientRegistry {
    next_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
}

/// Removes the client from the registry when its connection task ends, however it ends.
pub struct Registration {
    registry: Arc<ClientRegistry>,
    pub handle: Arc<ClientHandle>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let id = self.handle.info.lock().id;
        self.registry.clients.lock().remove(&id);
    }
}

impl ClientRegistry {
    pub fn register(self: &Arc<Self>, addr: SocketAddr, laddr: SocketAddr) -> Registration {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let now = Instant::now();
        let handle = Arc::new(ClientHandle {
            info: Mutex::new(ClientInfo {
                id,
                addr,
                laddr,
                name: String::new(),
                lib_name: String::new(),
                lib_ver: String::new(),
                db: 0,
                resp: 2,
                user: "default".into(),
                last_cmd: "NULL",
                created: now,
                last_interaction: now,
                qbuf: 0,
                sub: 0,
                psub: 0,
                ssub: 0,
                tls_peer: None,
            }),
            killed: AtomicBool::new(false),
            over_output_limit: AtomicBool::new(false),
            kill_notify: Notify::new(),
        });
        self.clients.lock().insert(id, handle.clone());
        Registration {
            registry: self.clone(),
            handle,
        }
    }

    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a client with this id is connected (CLIENT TRACKING REDIRECT's check).
    pub fn exists(&self, id: u64) -> bool {
        self.clients.lock().contains_key(&id)
    }

    /// Snapshot of all clients in id order.
    pub fn snapshot(&self) -> Vec<Arc<ClientHandle>> {
        self.clients.lock().values().cloned().collect()
    }
}
