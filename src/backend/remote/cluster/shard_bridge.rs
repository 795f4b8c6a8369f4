//! SSUBSCRIBE in cluster mode: shard channels live on the master that owns their slot (an
//! SPUBLISH reaches only that shard), so respgate keeps one subscriber connection per master
//! that owns a channel some client subscribed to, and moves each subscription when its slot
//! moves (reshard, failover).
//!
//! A coordinator task holds the wanted channels (from the registry) and where each one is
//! subscribed; a task per node holds that node's connection. The coordinator re-checks every
//! channel's owner against the slot map a few times a second; a node that drops a
//! subscription by itself (Redis sends `sunsubscribe` when the slot leaves the node), refuses
//! one (MOVED) or loses its connection makes the coordinator ask for a fresh slot map and
//! subscribe again where the slot now lives. Messages published while a subscription moves
//! are lost, as they are for a Redis cluster client in the same spot.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::router::ClusterBackend;
use super::slots::key_slot;
use super::topology::parse_redirect;
use crate::backend::remote::conn::{Init, RECONNECT_PAUSE, TurnTaking, connect, encode_command};
use crate::protocol::reply_scan::{Frame, decode};
use crate::server::pubsub::{Kind, PubSub, Upstream};

/// How often the coordinator compares subscriptions with the slot map.
const RECHECK_EVERY: Duration = Duration::from_millis(200);

/// Starts the shard-channel bridge; shard subscription changes go to it from now on.
pub fn spawn(cluster: Arc<ClusterBackend>, pubsub: Arc<PubSub>) {
    let (tx, rx) = mpsc::unbounded_channel();
    pubsub.set_shard_upstream(tx);
    tokio::spawn(coordinate(cluster, pubsub, rx));
}

/// What the coordinator tells a node task.
#[derive(Debug)]
enum NodeCmd {
    Subscribe(Bytes),
    Unsubscribe(Bytes),
}

/// What a node task tells the coordinator: the node no longer carries `channel` although
/// nobody asked it to drop it (slot moved away, MOVED, connection lost).
#[derive(Debug)]
struct Dropped {
    addr: String,
    channel: Bytes,
}

async fn coordinate(
    cluster: Arc<ClusterBackend>,
    pubsub: Arc<PubSub>,
    mut changes: mpsc::UnboundedReceiver<Upstream>,
) {
    let (dropped_tx, mut dropped_rx) = mpsc::unbounded_channel::<Dropped>();
    // Channels some client is subscribed to, and the node each one is subscribed on.
    let mut wanted: HashSet<Bytes> = HashSet::new();
    let mut placed: HashMap<Bytes, String> = HashMap::new();
    let mut nodes: HashMap<String, mpsc::UnboundedSender<NodeCmd>> = HashMap::new();
    let mut tick = tokio::time::interval(RECHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Some(Upstream::Subscribe(Kind::Shard, name)) => {
                    wanted.insert(name);
                }
                Some(Upstream::Unsubscribe(Kind::Shard, name)) => {
                    wanted.remove(&name);
                }
                Some(_) => {}
                None => return,
            },
            Some(d) = dropped_rx.recv() => {
                if placed.get(&d.channel) == Some(&d.addr) {
                    placed.remove(&d.channel);
                    cluster.request_refresh();
                }
            }
            _ = tick.tick() => {}
        }
        // Take every queued change before acting on them.
        while let Ok(change) = changes.try_recv() {
            match change {
                Upstream::Subscribe(Kind::Shard, name) => {
                    wanted.insert(name);
                }
                Upstream::Unsubscribe(Kind::Shard, name) => {
                    wanted.remove(&name);
                }
                _ => {}
            }
        }
        reconcile(
            &cluster,
            &pubsub,
            &wanted,
            &mut placed,
            &mut nodes,
            &dropped_tx,
        );
    }
}

/// Makes `placed` match `wanted` and the slot map: subscribes where a channel's slot lives,
/// unsubscribes where it no longer should be, and lets go of nodes that carry nothing.
fn reconcile(
    cluster: &Arc<ClusterBackend>,
    pubsub: &Arc<PubSub>,
    wanted: &HashSet<Bytes>,
    placed: &mut HashMap<Bytes, String>,
    nodes: &mut HashMap<String, mpsc::UnboundedSender<NodeCmd>>,
    dropped: &mpsc::UnboundedSender<Dropped>,
) {
    placed.retain(|channel, addr| {
        if wanted.contains(channel) {
            return true;
        }
        if let Some(node) = nodes.get(addr.as_str()) {
            let _ = node.send(NodeCmd::Unsubscribe(channel.clone()));
        }
        false
    });
    for channel in wanted {
        let Some(owner) = cluster.master_addr(key_slot(channel)) else {
            continue;
        };
        if placed.get(channel) == Some(&owner) {
            continue;
        }
        if let Some(old) = placed.get(channel)
            && let Some(node) = nodes.get(old.as_str())
        {
            let _ = node.send(NodeCmd::Unsubscribe(channel.clone()));
        }
        let node = nodes.entry(owner.clone()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(node_link(
                cluster.clone(),
                pubsub.clone(),
                owner.clone(),
                rx,
                dropped.clone(),
            ));
            tx
        });
        let _ = node.send(NodeCmd::Subscribe(channel.clone()));
        placed.insert(channel.clone(), owner);
    }
    // A node task ends when its sender is dropped.
    nodes.retain(|addr, _| placed.values().any(|a| a == addr));
}

/// One node's subscriber connection: carries the channels the coordinator placed on it,
/// reconnecting (and resubscribing) while it has any.
async fn node_link(
    cluster: Arc<ClusterBackend>,
    pubsub: Arc<PubSub>,
    addr: String,
    mut commands: mpsc::UnboundedReceiver<NodeCmd>,
    dropped: mpsc::UnboundedSender<Dropped>,
) {
    let target = cluster.node_target(&addr);
    let mut channels: HashSet<Bytes> = HashSet::new();
    let mut pause = RECONNECT_PAUSE;
    loop {
        let connecting = connect(
            &target,
            Init {
                resp3: false,
                db: 0,
                user: None,
            },
        );
        let stream = tokio::select! {
            connected = connecting => match connected {
                Ok(s) => s,
                Err(e) => {
                    warn!(node = %addr, error = %e, "shard-channel subscriber cannot connect");
                    // The channels may have to move: the coordinator decides from a fresh map.
                    for channel in channels.drain() {
                        let _ = dropped.send(Dropped { addr: addr.clone(), channel });
                    }
                    cluster.request_refresh();
                    if !wait_for_commands(&mut commands, &mut channels, pause).await {
                        return;
                    }
                    pause = (pause * 2).min(Duration::from_secs(2));
                    continue;
                }
            },
            cmd = commands.recv() => match cmd {
                Some(cmd) => {
                    apply(&mut channels, cmd);
                    continue;
                }
                None => return,
            },
        };
        pause = RECONNECT_PAUSE;
        let mut out = BytesMut::new();
        // What was sent and not yet confirmed, in order: errors carry no channel name.
        let mut pending: VecDeque<(bool, Bytes)> = VecDeque::new();
        for channel in &channels {
            encode_command(&mut out, &[b"SSUBSCRIBE".as_slice(), channel]);
            pending.push_back((true, channel.clone()));
        }
        info!(node = %addr, channels = channels.len(), "shard-channel subscriber connected");
        let mut link = TurnTaking::new(stream);
        link.out = out;
        let failure: String = 'conn: loop {
            if let Err(e) = link.flush().await {
                break 'conn e;
            }
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    Some(NodeCmd::Subscribe(channel)) => {
                        encode_command(&mut link.out, &[b"SSUBSCRIBE".as_slice(), &channel]);
                        pending.push_back((true, channel.clone()));
                        channels.insert(channel);
                    }
                    Some(NodeCmd::Unsubscribe(channel)) => {
                        encode_command(&mut link.out, &[b"SUNSUBSCRIBE".as_slice(), &channel]);
                        pending.push_back((false, channel.clone()));
                        channels.remove(&channel);
                    }
                    None => return,
                },
                read = link.read_frames(|frame| {
                    let lost = handle_frame(&pubsub, &cluster, &addr, &frame, &mut pending);
                    if let Some(channel) = lost
                        && channels.remove(&channel)
                    {
                        let _ = dropped.send(Dropped { addr: addr.clone(), channel });
                    }
                }) => {
                    if let Err(e) = read {
                        break 'conn e;
                    }
                }
            }
        };
        warn!(node = %addr, error = %failure, "shard-channel subscriber lost its connection");
        cluster.request_refresh();
        if !wait_for_commands(&mut commands, &mut channels, RECONNECT_PAUSE).await {
            return;
        }
    }
}

fn apply(channels: &mut HashSet<Bytes>, cmd: NodeCmd) {
    match cmd {
        NodeCmd::Subscribe(channel) => {
            channels.insert(channel);
        }
        NodeCmd::Unsubscribe(channel) => {
            channels.remove(&channel);
        }
    }
}

/// Sleeps for `pause` while still taking commands; false when the coordinator let go.
async fn wait_for_commands(
    commands: &mut mpsc::UnboundedReceiver<NodeCmd>,
    channels: &mut HashSet<Bytes>,
    pause: Duration,
) -> bool {
    let sleep = tokio::time::sleep(pause);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            _ = &mut sleep => return true,
            cmd = commands.recv() => match cmd {
                Some(cmd) => apply(channels, cmd),
                None => return false,
            },
        }
    }
}

/// Handles one frame from a node's subscriber connection; returns a channel the node no
/// longer carries without having been asked to drop it.
fn handle_frame(
    pubsub: &PubSub,
    cluster: &ClusterBackend,
    addr: &str,
    frame: &Bytes,
    pending: &mut VecDeque<(bool, Bytes)>,
) -> Option<Bytes> {
    let items = match decode(frame) {
        Frame::Array(items) => items,
        Frame::Error(e) => {
            // The refusal of the oldest unconfirmed command (MOVED: the slot moved on).
            if let Some(redirect) = parse_redirect(frame, addr) {
                cluster.moved(redirect.slot(), redirect.addr());
            } else {
                warn!(node = %addr, error = %String::from_utf8_lossy(&e), "node refused a shard subscription");
            }
            return match pending.pop_front() {
                Some((true, channel)) => Some(channel),
                _ => None,
            };
        }
        _ => return None,
    };
    let text: Vec<Option<&Bytes>> = items.iter().map(Frame::as_bytes).collect();
    match text.as_slice() {
        [Some(verb), Some(channel), Some(msg)] if verb.as_ref() == b"smessage" => {
            pubsub.deliver_from_upstream(Kind::Shard, channel, channel, msg);
            None
        }
        [Some(verb), Some(_), ..] if verb.as_ref() == b"ssubscribe" => {
            pending.pop_front();
            None
        }
        [Some(verb), Some(channel), ..] if verb.as_ref() == b"sunsubscribe" => {
            if pending
                .front()
                .is_some_and(|(sub, c)| !*sub && c == *channel)
            {
                pending.pop_front();
                None
            } else {
                // Not asked for: the node gave the slot away.
                Some((*channel).clone())
            }
        }
        _ => None,
    }
}
