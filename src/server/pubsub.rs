//! Channel subscriptions shared by all connections: SUBSCRIBE/UNSUBSCRIBE/PUBLISH.
//!
//! A first slice of pub/sub (enough for clients that subscribe on connect, such as
//! StackExchange.Redis); patterns, shard channels and PUBSUB introspection come with the
//! engine's pub/sub issue. Each subscriber has a bounded queue: a subscriber that stops
//! reading is disconnected when it fills, instead of growing our memory without bound.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::protocol::Reply;
use crate::server::clients::ClientHandle;

/// Messages queued for one subscriber before it counts as not reading.
pub const SUBSCRIBER_QUEUE: usize = 4096;

struct Subscriber {
    tx: mpsc::Sender<Reply>,
    client: Arc<ClientHandle>,
}

#[derive(Default)]
pub struct PubSub {
    channels: Mutex<HashMap<Bytes, HashMap<u64, Subscriber>>>,
}

impl PubSub {
    /// Adds a subscription; returns false if it already existed.
    pub fn subscribe(
        &self,
        channel: &Bytes,
        id: u64,
        tx: &mpsc::Sender<Reply>,
        client: &Arc<ClientHandle>,
    ) -> bool {
        let mut ch = self.channels.lock();
        let subs = ch.entry(Bytes::copy_from_slice(channel)).or_default();
        if subs.contains_key(&id) {
            return false;
        }
        subs.insert(
            id,
            Subscriber {
                tx: tx.clone(),
                client: client.clone(),
            },
        );
        true
    }

    pub fn unsubscribe(&self, channel: &Bytes, id: u64) {
        let mut ch = self.channels.lock();
        if let Some(subs) = ch.get_mut(channel) {
            subs.remove(&id);
            if subs.is_empty() {
                ch.remove(channel);
            }
        }
    }

    /// Delivers to every subscriber; returns how many received it. A subscriber whose
    /// queue is full is killed (Redis's client-output-buffer-limit pubsub behaviour).
    pub fn publish(&self, channel: &Bytes, message: &Bytes) -> i64 {
        let ch = self.channels.lock();
        let Some(subs) = ch.get(channel) else {
            return 0;
        };
        let mut n = 0;
        for sub in subs.values() {
            let msg = Reply::Push(vec![
                Reply::bulk_str("message"),
                Reply::Bulk(channel.clone()),
                Reply::Bulk(message.clone()),
            ]);
            match sub.tx.try_send(msg) {
                Ok(()) => n += 1,
                Err(mpsc::error::TrySendError::Full(_)) => sub.client.kill(),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        n
    }

    pub fn channel_count(&self) -> usize {
        self.channels.lock().len()
    }
}
