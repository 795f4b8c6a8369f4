//! SUBSCRIBE, UNSUBSCRIBE and PUBLISH over the server's channel registry, with RESP2's
//! subscriber-mode rules.

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::protocol::{Protocol, Reply};
use crate::server::pubsub::SUBSCRIBER_QUEUE;
use crate::server::session::Session;

/// In RESP2 a subscribed client may only run these (Redis's wording lists them).
pub fn allowed_in_subscriber_mode(name: &str) -> bool {
    matches!(
        name,
        "subscribe"
            | "unsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "ssubscribe"
            | "sunsubscribe"
            | "ping"
            | "quit"
            | "reset"
    )
}

pub fn subscriber_mode_error(name: &str) -> Reply {
    Reply::err(format!(
        "ERR Can't execute '{name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}

/// One confirmation per channel; several replies are returned as a sequence of pushes.
pub fn subscribe(s: &mut Session, argv: &[Bytes]) -> Vec<Reply> {
    if s.push_tx.is_none() {
        let (tx, rx) = mpsc::channel(SUBSCRIBER_QUEUE);
        s.push_tx = Some(tx);
        s.push_rx = Some(rx);
    }
    let id = s.client.info.lock().id;
    let mut out = Vec::new();
    for ch in &argv[1..] {
        if let Some(tx) = &s.push_tx
            && s.shared.pubsub.subscribe(ch, id, tx, &s.client)
        {
            s.subscriptions.push(ch.clone());
        }
        out.push(Reply::Push(vec![
            Reply::bulk_str("subscribe"),
            Reply::Bulk(ch.clone()),
            Reply::Integer(s.subscriptions.len() as i64),
        ]));
    }
    out
}

pub fn unsubscribe(s: &mut Session, argv: &[Bytes]) -> Vec<Reply> {
    let id = s.client.info.lock().id;
    let targets: Vec<Bytes> = if argv.len() > 1 {
        argv[1..].to_vec()
    } else {
        s.subscriptions.clone()
    };
    if targets.is_empty() {
        return vec![Reply::Push(vec![
            Reply::bulk_str("unsubscribe"),
            Reply::Null,
            Reply::Integer(0),
        ])];
    }
    let mut out = Vec::new();
    for ch in targets {
        s.shared.pubsub.unsubscribe(&ch, id);
        s.subscriptions.retain(|c| *c != ch);
        out.push(Reply::Push(vec![
            Reply::bulk_str("unsubscribe"),
            Reply::Bulk(ch),
            Reply::Integer(s.subscriptions.len() as i64),
        ]));
    }
    out
}

pub fn publish(s: &Session, argv: &[Bytes]) -> Reply {
    Reply::Integer(s.shared.pubsub.publish(&argv[1], &argv[2]))
}

/// PING while subscribed in RESP2 answers `["pong", arg]`.
pub fn subscribed_ping(s: &Session, argv: &[Bytes]) -> Option<Reply> {
    if s.proto == Protocol::Resp2 && !s.subscriptions.is_empty() {
        let arg = argv.get(1).cloned().unwrap_or_default();
        return Some(Reply::Array(vec![
            Reply::bulk_str("pong"),
            Reply::Bulk(arg),
        ]));
    }
    None
}
