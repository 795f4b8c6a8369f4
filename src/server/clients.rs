//! The registry of connected clients: ids, what CLIENT LIST/INFO shows, and CLIENT KILL.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use parking_lot::Mutex;

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

/// [`ClientHandle`] signal bits: CLIENT KILL (or an output limit) ...
pub const KILLED: u8 = 1;
/// ... and the server's graceful shutdown.
pub const SHUTDOWN: u8 = 2;

/// A registered client: its shared info and the signals that ask its task to close.
pub struct ClientHandle {
    pub info: Mutex<ClientInfo>,
    /// [`KILLED`] and [`SHUTDOWN`] bits.
    signals: AtomicU8,
    /// Killed for going over its output buffer limit (counted apart from CLIENT KILL).
    over_output_limit: AtomicBool,
    /// The connection task's waker, woken when a signal is raised.
    waker: Mutex<Option<Waker>>,
}

impl ClientHandle {
    pub fn kill(&self) {
        self.raise(KILLED);
    }

    /// The server is shutting down: the client finishes what it sent, then is closed.
    pub fn shut_down(&self) {
        self.raise(SHUTDOWN);
    }

    fn raise(&self, bit: u8) {
        self.signals.fetch_or(bit, Ordering::AcqRel);
        // Set before the waker is read: a poll that registers after this sees the bit. The
        // waker stays: a signal future that registered it before (and so does not again)
        // must still be woken by a later, different signal.
        if let Some(w) = self.waker.lock().as_ref() {
            w.wake_by_ref();
        }
    }

    /// The connection task ended: its waker goes (a handle others still hold must not
    /// keep the finished task's memory).
    pub fn forget_waker(&self) {
        self.waker.lock().take();
    }

    pub fn is_shutting_down(&self) -> bool {
        self.signals.load(Ordering::Acquire) & SHUTDOWN != 0
    }

    /// Resolves once one of the `mask` signals is raised. Polled on every wait of the
    /// connection task, so a poll with the waker it registered before is one atomic load
    /// (a `Notify` took a lock per poll, and the shutdown watch another).
    pub fn signalled(&self, mask: u8) -> Signalled<'_> {
        Signalled {
            handle: self,
            mask,
            registered: None,
        }
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
        self.signals.load(Ordering::Acquire) & KILLED != 0
    }
}

/// See [`ClientHandle::signalled`]. One connection task polls it; the waker it left in the
/// handle is replaced only when the task's waker changes.
pub struct Signalled<'a> {
    handle: &'a ClientHandle,
    mask: u8,
    registered: Option<Waker>,
}

impl Future for Signalled<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let (handle, mask) = (self.handle, self.mask);
        let raised = || handle.signals.load(Ordering::Acquire) & mask != 0;
        if raised() {
            return Poll::Ready(());
        }
        if !self
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            let waker = cx.waker().clone();
            *handle.waker.lock() = Some(waker.clone());
            self.registered = Some(waker);
            // Raised between the check above and the registration: its wake found no waker.
            if raised() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    }
}

#[derive(Default)]
pub struct ClientRegistry {
    next_id: AtomicU64,
    clients: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    /// Set (under the `clients` lock) when the shutdown notice went to every client.
    shutting_down: AtomicBool,
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
            signals: AtomicU8::new(0),
            over_output_limit: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        let mut clients = self.clients.lock();
        if self.shutting_down.load(Ordering::Acquire) {
            // Registered after the shutdown notice went round (checked under the same lock).
            handle.shut_down();
        }
        clients.insert(id, handle.clone());
        drop(clients);
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

    /// Graceful shutdown: every client, and any registered from now on, is told.
    pub fn shut_down_all(&self) {
        let clients = self.clients.lock();
        self.shutting_down.store(true, Ordering::Release);
        for c in clients.values() {
            c.shut_down();
        }
    }

    /// Snapshot of all clients in id order.
    pub fn snapshot(&self) -> Vec<Arc<ClientHandle>> {
        self.clients.lock().values().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_kill_after_the_shutdown_notice_still_wakes_the_kill_future() {
        let registry = Arc::new(ClientRegistry::default());
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let reg = registry.register(addr, addr);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut killed = reg.handle.signalled(KILLED);
        let mut killed = Pin::new(&mut killed);
        assert!(killed.as_mut().poll(&mut cx).is_pending());
        registry.shut_down_all();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(reg.handle.is_shutting_down());
        // Same waker: the future does not register again, yet the kill must wake it.
        assert!(killed.as_mut().poll(&mut cx).is_pending());
        reg.handle.kill();
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(killed.as_mut().poll(&mut cx).is_ready());
        // A client registered after the notice is told at once.
        let late = registry.register(addr, addr);
        assert!(late.handle.is_shutting_down());
    }
}
