//! The pub/sub bridge: one backend connection in subscriber mode carries every channel,
//! pattern and shard channel that some client of respgate is subscribed to, and hands the
//! backend's messages to the local registry, which fans them out to the subscribers.
//!
//! Clients' SUBSCRIBE/UNSUBSCRIBE are answered by respgate (subscriber-mode rules, output
//! limits and RESP3 push frames all stay in one place); the backend subscription follows the
//! registry: first subscriber of a name subscribes upstream, last one leaving unsubscribes.
//! The bridge connects at start (CLIENT TRACKING ... REDIRECT needs its backend client id).
//! After a reconnect the bridge resubscribes to everything the registry holds. Messages
//! published while the bridge is down are lost, as they would be for a Redis client.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Target;
use super::conn::{Init, RECONNECT_PAUSE, TurnTaking, connect, encode_command, round_trip};
use crate::protocol::reply_scan::{Frame, decode};
use crate::server::pubsub::{INVALIDATE_CHANNEL, Kind, PubSub, Upstream};

/// Starts the bridge for `pubsub`; it runs until the process exits.
pub fn spawn(target: Arc<Target>, pubsub: Arc<PubSub>) {
    let (tx, rx) = mpsc::unbounded_channel();
    pubsub.set_upstream(tx);
    tokio::spawn(run(target, pubsub, rx));
}

fn verb(kind: Kind, subscribe: bool) -> &'static [u8] {
    match (kind, subscribe) {
        (Kind::Channel, true) => b"SUBSCRIBE",
        (Kind::Channel, false) => b"UNSUBSCRIBE",
        (Kind::Pattern, true) => b"PSUBSCRIBE",
        (Kind::Pattern, false) => b"PUNSUBSCRIBE",
        (Kind::Shard, true) => b"SSUBSCRIBE",
        (Kind::Shard, false) => b"SUNSUBSCRIBE",
    }
}

async fn run(target: Arc<Target>, pubsub: Arc<PubSub>, mut rx: mpsc::UnboundedReceiver<Upstream>) {
    let mut pause = RECONNECT_PAUSE;
    loop {
        // Connected even with nothing to carry: CLIENT TRACKING ... REDIRECT needs its
        // backend client id at once.
        let mut stream = match connect(
            &target,
            Init {
                resp3: false,
                db: 0,
                user: None,
            },
        )
        .await
        {
            Ok(s) => s,
            Err(e) => {
                warn!(backend = %target.address(), error = %e, "pub/sub bridge cannot connect; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        // RESP2 tracking clients' connections redirect their invalidations here.
        let asked = tokio::time::timeout(
            target.connect_timeout,
            round_trip(&mut stream, &[b"CLIENT", b"ID"]),
        )
        .await
        .unwrap_or(Err(super::BackendError::Timeout(
            target.connect_timeout.as_millis(),
        )));
        match asked {
            Ok(reply) => match decode(&reply) {
                Frame::Integer(id) if id > 0 => pubsub.set_bridge_client_id(id as u64),
                _ => {
                    warn!(backend = %target.address(), "CLIENT ID refused on the pub/sub bridge; CLIENT TRACKING REDIRECT unavailable")
                }
            },
            Err(e) => {
                warn!(backend = %target.address(), error = %e, "pub/sub bridge lost its connection at once; retrying");
                tokio::time::sleep(pause).await;
                continue;
            }
        }
        pause = RECONNECT_PAUSE;
        // Everything queued so far is covered by subscribing to what the registry holds now.
        while rx.try_recv().is_ok() {}
        let mut out = BytesMut::new();
        for kind in [Kind::Channel, Kind::Pattern, Kind::Shard] {
            if kind == Kind::Shard && pubsub.has_shard_upstream() {
                // Cluster mode: shard channels have their own bridge.
                continue;
            }
            for name in pubsub.names(kind, None) {
                encode_command(&mut out, &[verb(kind, true), &name]);
            }
        }
        info!(backend = %target.address(), "pub/sub bridge connected");
        let mut moved = target.watch_changes();
        moved.mark_unchanged();
        let mut link = TurnTaking::new(stream);
        link.out = out;
        let failure: String = 'conn: loop {
            if let Err(e) = link.flush().await {
                break 'conn e;
            }
            tokio::select! {
                _ = moved.changed() => break 'conn "the master changed".to_string(),
                change = rx.recv() => match change {
                    Some(Upstream::Subscribe(kind, name)) => encode_command(&mut link.out, &[verb(kind, true), &name]),
                    Some(Upstream::Unsubscribe(kind, name)) => encode_command(&mut link.out, &[verb(kind, false), &name]),
                    None => return,
                },
                read = link.read_frames(|frame| dispatch(&pubsub, &frame)) => {
                    if let Err(e) = read {
                        break 'conn e;
                    }
                }
            }
        };
        warn!(backend = %target.address(), error = %failure, "pub/sub bridge lost its connection; reconnecting");
        if pubsub.bridge_client().is_some() {
            pubsub.set_bridge_client_id(0);
        }
        tokio::time::sleep(RECONNECT_PAUSE).await;
    }
}

/// Hands one frame from the subscriber connection to the registry.
fn dispatch(pubsub: &PubSub, frame: &Bytes) {
    let Frame::Array(items) = decode(frame) else {
        if let Frame::Error(e) = decode(frame) {
            warn!(error = %String::from_utf8_lossy(&e), "backend refused a bridge subscription");
        }
        return;
    };
    if let [Frame::Bulk(verb), Frame::Bulk(channel), payload] = items.as_slice()
        && verb.as_ref() == b"message"
        && channel.as_ref() == INVALIDATE_CHANNEL
    {
        // A tracking invalidation redirected to this connection (see command::tracking).
        let keys = match payload {
            Frame::Array(keys) => Some(keys.iter().filter_map(Frame::as_bytes).cloned().collect()),
            _ => None,
        };
        pubsub.deliver_invalidation(None, keys);
        return;
    }
    let text: Vec<Option<&Bytes>> = items.iter().map(Frame::as_bytes).collect();
    match text.as_slice() {
        [Some(verb), Some(channel), Some(msg)] if verb.as_ref() == b"message" => {
            pubsub.deliver_from_upstream(Kind::Channel, channel, channel, msg)
        }
        [Some(verb), Some(pattern), Some(channel), Some(msg)] if verb.as_ref() == b"pmessage" => {
            pubsub.deliver_from_upstream(Kind::Pattern, pattern, channel, msg)
        }
        [Some(verb), Some(channel), Some(msg)] if verb.as_ref() == b"smessage" => {
            pubsub.deliver_from_upstream(Kind::Shard, channel, channel, msg)
        }
        // Subscribe/unsubscribe confirmations.
        _ => {}
    }
}
