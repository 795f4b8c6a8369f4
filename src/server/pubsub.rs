//! The pub/sub registry shared by all connections: channel, pattern and shard-channel
//! subscriptions, message fan-out (PUBLISH, SPUBLISH, keyspace notifications) and the
//! per-subscriber output limit.
//!
//! Messages are queued per subscriber and written by its connection task. The bytes queued
//! are counted: a subscriber that stops reading is disconnected once its queue passes the
//! `client-output-buffer-limit pubsub` hard limit, instead of growing our memory without
//! bound (as Redis disconnects it).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::glob::glob_match;
use crate::protocol::Reply;
use crate::server::clients::ClientHandle;

/// The channel CLIENT TRACKING ... REDIRECT targets subscribe to (RESP2).
pub const INVALIDATE_CHANNEL: &[u8] = b"__redis__:invalidate";

/// Which registry a subscription belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Pattern,
    Shard,
}

/// One subscriber's delivery end: messages plus the count of their bytes not yet written.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Reply>,
    queued: Arc<AtomicUsize>,
    client: Arc<ClientHandle>,
}

/// The connection's receiving end of its [`Outbox`].
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Reply>,
    queued: Arc<AtomicUsize>,
}

impl Inbox {
    pub async fn recv(&mut self) -> Option<Reply> {
        let msg = self.rx.recv().await?;
        self.delivered(&msg);
        Some(msg)
    }

    pub fn try_recv(&mut self) -> Option<Reply> {
        let msg = self.rx.try_recv().ok()?;
        self.delivered(&msg);
        Some(msg)
    }

    fn delivered(&self, msg: &Reply) {
        let n = message_size(msg);
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(n))
            });
    }
}

/// A subscriber's message channel.
pub fn outbox(client: &Arc<ClientHandle>) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            tx,
            queued: queued.clone(),
            client: client.clone(),
        },
        Inbox { rx, queued },
    )
}

/// Bytes a message occupies while queued (its payloads plus framing).
fn message_size(msg: &Reply) -> usize {
    match msg {
        Reply::Push(items) | Reply::Array(items) => {
            items.iter().map(message_size).sum::<usize>() + 16
        }
        Reply::Bulk(b) => b.len() + 16,
        _ => 16,
    }
}

#[derive(Default)]
struct Registry {
    channels: HashMap<Bytes, HashMap<u64, Outbox>>,
    patterns: HashMap<Bytes, HashMap<u64, Outbox>>,
    shards: HashMap<Bytes, HashMap<u64, Outbox>>,
}

impl Registry {
    fn map(&mut self, kind: Kind) -> &mut HashMap<Bytes, HashMap<u64, Outbox>> {
        match kind {
            Kind::Channel => &mut self.channels,
            Kind::Pattern => &mut self.patterns,
            Kind::Shard => &mut self.shards,
        }
    }
}

pub struct PubSub {
    registry: Mutex<Registry>,
    /// client-output-buffer-limit pubsub hard limit in bytes (0 = none).
    hard_limit: AtomicUsize,
    /// Forwarding mode: told when a name gets its first subscriber or loses its last, so the
    /// backend subscription follows (see backend::remote::bridge).
    upstream: std::sync::OnceLock<mpsc::UnboundedSender<Upstream>>,
    /// Cluster mode: shard-channel changes go here instead (their subscriptions live on
    /// the slot's master, see backend::remote::cluster::shard_bridge).
    shard_upstream: std::sync::OnceLock<mpsc::UnboundedSender<Upstream>>,
    /// The backend client id of the pub/sub bridge's connection (0: not connected), where
    /// RESP2 tracking clients' backend connections redirect their invalidations, and how
    /// many times it changed (each change breaks the redirections made before).
    bridge_client_id: std::sync::atomic::AtomicU64,
    bridge_generation: std::sync::atomic::AtomicU64,
    /// MONITOR clients (their outboxes), and how many there are (checked per command).
    monitors: Mutex<Vec<Outbox>>,
    monitor_count: AtomicUsize,
}

/// A change the backend subscription must follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    Subscribe(Kind, Bytes),
    Unsubscribe(Kind, Bytes),
}

impl Default for PubSub {
    fn default() -> PubSub {
        PubSub {
            registry: Mutex::default(),
            hard_limit: AtomicUsize::new(32 * 1024 * 1024),
            upstream: std::sync::OnceLock::new(),
            shard_upstream: std::sync::OnceLock::new(),
            bridge_client_id: std::sync::atomic::AtomicU64::new(0),
            bridge_generation: std::sync::atomic::AtomicU64::new(0),
            monitors: Mutex::new(Vec::new()),
            monitor_count: AtomicUsize::new(0),
        }
    }
}

impl PubSub {
    /// A client entered MONITOR mode: it gets every command respgate runs from now on.
    pub fn add_monitor(&self, outbox: &Outbox) {
        let mut monitors = self.monitors.lock();
        monitors.push(outbox.clone());
        self.monitor_count.store(monitors.len(), Ordering::Release);
    }

    /// Whether any client is in MONITOR mode (one atomic load per command).
    pub fn monitoring(&self) -> bool {
        self.monitor_count.load(Ordering::Relaxed) > 0
    }

    /// Sends a MONITOR line to every monitor (each under the pub/sub output limit); gone
    /// ones are dropped.
    pub fn feed_monitors(&self, line: &str) {
        let mut monitors = self.monitors.lock();
        monitors.retain(|m| !m.tx.is_closed() && !m.client.is_killed());
        for m in monitors.iter() {
            self.deliver(m, Reply::Status(line.to_string()));
        }
        self.monitor_count.store(monitors.len(), Ordering::Release);
    }

    /// Adds a subscription; returns false if it already existed.
    pub fn subscribe(&self, kind: Kind, name: &Bytes, id: u64, outbox: &Outbox) -> bool {
        let mut reg = self.registry.lock();
        let subs = reg.map(kind).entry(name.clone()).or_default();
        if subs.contains_key(&id) {
            return false;
        }
        if subs.is_empty()
            && let Some(up) = self.upstream_for(kind)
        {
            // Sent under the registry lock, so the backend sees changes in their order.
            let _ = up.send(Upstream::Subscribe(kind, name.clone()));
        }
        subs.insert(id, outbox.clone());
        true
    }

    /// Forwarding mode: subscription changes go to `tx` from now on.
    pub fn set_upstream(&self, tx: mpsc::UnboundedSender<Upstream>) {
        let _ = self.upstream.set(tx);
    }

    /// Cluster mode: shard-channel changes go to `tx` from now on.
    pub fn set_shard_upstream(&self, tx: mpsc::UnboundedSender<Upstream>) {
        let _ = self.shard_upstream.set(tx);
    }

    /// Whether shard channels have a bridge of their own (cluster mode).
    pub fn has_shard_upstream(&self) -> bool {
        self.shard_upstream.get().is_some()
    }

    fn upstream_for(&self, kind: Kind) -> Option<&mpsc::UnboundedSender<Upstream>> {
        match kind {
            Kind::Shard => self.shard_upstream.get().or(self.upstream.get()),
            _ => self.upstream.get(),
        }
    }

    /// A message the backend delivered for one subscription: to that name's subscribers
    /// only (the backend sends a pattern's matches separately, as `pmessage`).
    pub fn deliver_from_upstream(
        &self,
        kind: Kind,
        name: &Bytes,
        channel: &Bytes,
        message: &Bytes,
    ) {
        let mut reg = self.registry.lock();
        let Some(subs) = reg.map(kind).get(name) else {
            return;
        };
        for sub in subs.values() {
            let msg = match kind {
                Kind::Channel => Reply::Push(vec![
                    Reply::bulk_str("message"),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]),
                Kind::Pattern => Reply::Push(vec![
                    Reply::bulk_str("pmessage"),
                    Reply::Bulk(name.clone()),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]),
                Kind::Shard => Reply::Push(vec![
                    Reply::bulk_str("smessage"),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]),
            };
            self.deliver(sub, msg);
        }
    }

    pub fn unsubscribe(&self, kind: Kind, name: &Bytes, id: u64) {
        let mut reg = self.registry.lock();
        let map = reg.map(kind);
        if let Some(subs) = map.get_mut(name) {
            subs.remove(&id);
            if subs.is_empty() {
                map.remove(name);
                if let Some(up) = self.upstream_for(kind) {
                    let _ = up.send(Upstream::Unsubscribe(kind, name.clone()));
                }
            }
        }
    }

    /// The bridge connected with backend client id `id` (0: it lost its connection).
    /// Redirect targets are told to flush: invalidations may have been lost meanwhile.
    pub fn set_bridge_client_id(&self, id: u64) {
        self.bridge_client_id.store(id, Ordering::Release);
        self.bridge_generation.fetch_add(1, Ordering::AcqRel);
        self.deliver_invalidation(None, None);
    }

    /// How many times the bridge connected or lost its connection.
    pub fn bridge_generation(&self) -> u64 {
        self.bridge_generation.load(Ordering::Acquire)
    }

    /// The bridge's backend client id and its generation (None: not connected).
    pub fn bridge_client(&self) -> Option<(u64, u64)> {
        let id = self.bridge_client_id.load(Ordering::Acquire);
        (id != 0).then(|| (id, self.bridge_generation.load(Ordering::Acquire)))
    }

    /// A tracking invalidation for redirect targets: clients subscribed to
    /// `__redis__:invalidate` (only client `only`, if given), as Redis sends it — a push for
    /// a RESP3 client, a `message` on that channel for a RESP2 one. `keys` None: flush all.
    pub fn deliver_invalidation(&self, only: Option<u64>, keys: Option<Vec<Bytes>>) {
        let reg = self.registry.lock();
        let Some(subs) = reg.channels.get(INVALIDATE_CHANNEL) else {
            return;
        };
        let payload = match keys {
            Some(keys) => Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
            None => Reply::Null,
        };
        for (id, sub) in subs {
            if only.is_some_and(|o| o != *id) {
                continue;
            }
            let msg = if sub.client.info.lock().resp >= 3 {
                Reply::Push(vec![Reply::bulk_str("invalidate"), payload.clone()])
            } else {
                Reply::Push(vec![
                    Reply::bulk_str("message"),
                    Reply::Bulk(Bytes::from_static(INVALIDATE_CHANNEL)),
                    payload.clone(),
                ])
            };
            self.deliver(sub, msg);
        }
    }

    /// Queues `msg` for one client (bounded by the pub/sub output limit).
    pub fn deliver_to(&self, to: &Outbox, msg: Reply) -> bool {
        self.deliver(to, msg)
    }

    /// CONFIG SET client-output-buffer-limit: takes the pubsub class's hard limit.
    pub fn set_output_limit(&self, config: &str) {
        if let Some(bytes) = hard_output_limit(config, "pubsub") {
            self.hard_limit.store(bytes, Ordering::Relaxed);
        }
    }

    fn deliver(&self, to: &Outbox, msg: Reply) -> bool {
        let size = message_size(&msg);
        let limit = self.hard_limit.load(Ordering::Relaxed);
        let queued = to.queued.fetch_add(size, Ordering::AcqRel) + size;
        if limit > 0 && queued > limit {
            tracing::warn!(
                client = to.client.info.lock().id,
                queued,
                "pub/sub client over its output buffer limit, disconnecting"
            );
            to.client.kill_over_output_limit();
            return false;
        }
        to.tx.send(msg).is_ok()
    }

    /// PUBLISH: to the channel's subscribers, then to every matching pattern's; returns
    /// how many deliveries were made, as Redis counts them.
    pub fn publish(&self, channel: &Bytes, message: &Bytes) -> i64 {
        let reg = self.registry.lock();
        let mut n = 0;
        if let Some(subs) = reg.channels.get(channel) {
            for sub in subs.values() {
                let msg = Reply::Push(vec![
                    Reply::bulk_str("message"),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]);
                if self.deliver(sub, msg) {
                    n += 1;
                }
            }
        }
        for (pattern, subs) in &reg.patterns {
            if !glob_match(pattern, channel, false) {
                continue;
            }
            for sub in subs.values() {
                let msg = Reply::Push(vec![
                    Reply::bulk_str("pmessage"),
                    Reply::Bulk(pattern.clone()),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]);
                if self.deliver(sub, msg) {
                    n += 1;
                }
            }
        }
        n
    }

    /// SPUBLISH: shard-channel subscribers only.
    pub fn spublish(&self, channel: &Bytes, message: &Bytes) -> i64 {
        let reg = self.registry.lock();
        let mut n = 0;
        if let Some(subs) = reg.shards.get(channel) {
            for sub in subs.values() {
                let msg = Reply::Push(vec![
                    Reply::bulk_str("smessage"),
                    Reply::Bulk(channel.clone()),
                    Reply::Bulk(message.clone()),
                ]);
                if self.deliver(sub, msg) {
                    n += 1;
                }
            }
        }
        n
    }

    /// Is anyone subscribed at all (keyspace notifications skip building messages if not)?
    pub fn has_subscribers(&self) -> bool {
        let reg = self.registry.lock();
        !reg.channels.is_empty() || !reg.patterns.is_empty()
    }

    /// PUBSUB CHANNELS / SHARDCHANNELS: active names matching the optional pattern.
    pub fn names(&self, kind: Kind, pattern: Option<&[u8]>) -> Vec<Bytes> {
        let mut reg = self.registry.lock();
        reg.map(kind)
            .keys()
            .filter(|name| pattern.is_none_or(|p| glob_match(p, name, false)))
            .cloned()
            .collect()
    }

    /// PUBSUB NUMSUB / SHARDNUMSUB: subscribers of one name.
    pub fn count(&self, kind: Kind, name: &Bytes) -> usize {
        let mut reg = self.registry.lock();
        reg.map(kind).get(name).map_or(0, |s| s.len())
    }

    /// PUBSUB NUMPAT: distinct patterns subscribed.
    pub fn pattern_count(&self) -> usize {
        self.registry.lock().patterns.len()
    }

    pub fn channel_count(&self) -> usize {
        self.registry.lock().channels.len()
    }
}

/// The hard limit of one class (`normal`, `pubsub`, ...) in a `client-output-buffer-limit`
/// value (`<class> <hard> <soft> <seconds>` repeated), if it names that class.
pub fn hard_output_limit(config: &str, class: &str) -> Option<usize> {
    let words: Vec<&str> = config.split_whitespace().collect();
    let mut found = None;
    for c in words.chunks(4) {
        if let [name, hard, ..] = c
            && name.eq_ignore_ascii_case(class)
            && let Ok(bytes) = crate::config::parse_size(hard)
        {
            found = Some(usize::try_from(bytes).unwrap_or(usize::MAX));
        }
    }
    found
}
