//! SUBSCRIBE/PSUBSCRIBE/SSUBSCRIBE, their UNSUBSCRIBEs, PUBLISH/SPUBLISH and PUBSUB over the
//! server's registry, with RESP2's subscriber-mode rules.

use bytes::Bytes;

use crate::protocol::{Protocol, Reply};
use crate::server::pubsub::Kind;
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

/// The (un)subscribe commands, which answer with one push per channel.
pub fn kind_of(name: &[u8]) -> Option<(Kind, bool)> {
    // Asked for every command: no allocation, and most names are ruled out by length.
    if !(9..=12).contains(&name.len()) {
        return None;
    }
    const NAMES: [(&[u8], Kind, bool); 6] = [
        (b"subscribe", Kind::Channel, true),
        (b"psubscribe", Kind::Pattern, true),
        (b"ssubscribe", Kind::Shard, true),
        (b"unsubscribe", Kind::Channel, false),
        (b"punsubscribe", Kind::Pattern, false),
        (b"sunsubscribe", Kind::Shard, false),
    ];
    NAMES
        .iter()
        .find(|(n, _, _)| name.eq_ignore_ascii_case(n))
        .map(|&(_, kind, subscribe)| (kind, subscribe))
}

fn verb(kind: Kind, subscribe: bool) -> &'static str {
    match (kind, subscribe) {
        (Kind::Channel, true) => "subscribe",
        (Kind::Pattern, true) => "psubscribe",
        (Kind::Shard, true) => "ssubscribe",
        (Kind::Channel, false) => "unsubscribe",
        (Kind::Pattern, false) => "punsubscribe",
        (Kind::Shard, false) => "sunsubscribe",
    }
}

/// The count Redis reports after each (un)subscription: channels + patterns, or the shard
/// channels for the S forms.
fn count(s: &Session, kind: Kind) -> i64 {
    match kind {
        Kind::Shard => s.shard_channels.len() as i64,
        _ => (s.subscriptions.len() + s.patterns.len()) as i64,
    }
}

fn list_of(s: &mut Session, kind: Kind) -> &mut Vec<Bytes> {
    match kind {
        Kind::Channel => &mut s.subscriptions,
        Kind::Pattern => &mut s.patterns,
        Kind::Shard => &mut s.shard_channels,
    }
}

/// One confirmation per channel.
pub fn subscribe(s: &mut Session, kind: Kind, argv: &[Bytes]) -> Vec<Reply> {
    let outbox = s.ensure_outbox();
    let id = s.client_id();
    let mut out = Vec::new();
    for name in &argv[1..] {
        let added = s.shared.pubsub.subscribe(kind, name, id, &outbox);
        if added {
            list_of(s, kind).push(name.clone());
        }
        out.push(Reply::Push(vec![
            Reply::bulk_str(verb(kind, true)),
            Reply::Bulk(name.clone()),
            Reply::Integer(count(s, kind)),
        ]));
    }
    s.sync_subscription_counts();
    out
}

pub fn unsubscribe(s: &mut Session, kind: Kind, argv: &[Bytes]) -> Vec<Reply> {
    let id = s.client_id();
    let targets: Vec<Bytes> = if argv.len() > 1 {
        argv[1..].to_vec()
    } else {
        list_of(s, kind).clone()
    };
    if targets.is_empty() {
        return vec![Reply::Push(vec![
            Reply::bulk_str(verb(kind, false)),
            Reply::Null,
            Reply::Integer(count(s, kind)),
        ])];
    }
    let mut out = Vec::new();
    for name in targets {
        s.shared.pubsub.unsubscribe(kind, &name, id);
        list_of(s, kind).retain(|c| *c != name);
        out.push(Reply::Push(vec![
            Reply::bulk_str(verb(kind, false)),
            Reply::Bulk(name),
            Reply::Integer(count(s, kind)),
        ]));
    }
    s.sync_subscription_counts();
    out
}

pub fn publish(s: &Session, argv: &[Bytes]) -> Reply {
    Reply::Integer(s.shared.pubsub.publish(&argv[1], &argv[2]))
}

pub fn spublish(s: &Session, argv: &[Bytes]) -> Reply {
    Reply::Integer(s.shared.pubsub.spublish(&argv[1], &argv[2]))
}

/// PUBSUB CHANNELS | NUMSUB | NUMPAT | SHARDCHANNELS | SHARDNUMSUB | HELP.
pub fn pubsub(s: &Session, argv: &[Bytes]) -> Reply {
    let registry = &s.shared.pubsub;
    let sub = argv[1].to_ascii_lowercase();
    let names = |kind| {
        let pattern = argv.get(2).map(|p| p.as_ref());
        Reply::Array(
            registry
                .names(kind, pattern)
                .into_iter()
                .map(Reply::Bulk)
                .collect(),
        )
    };
    let counts = |kind| {
        let mut out = Vec::new();
        for name in &argv[2..] {
            out.push(Reply::Bulk(name.clone()));
            out.push(Reply::Integer(registry.count(kind, name) as i64));
        }
        Reply::Array(out)
    };
    match sub.as_slice() {
        b"channels" if argv.len() <= 3 => names(Kind::Channel),
        b"shardchannels" if argv.len() <= 3 => names(Kind::Shard),
        b"numsub" => counts(Kind::Channel),
        b"shardnumsub" => counts(Kind::Shard),
        b"numpat" if argv.len() == 2 => Reply::Integer(registry.pattern_count() as i64),
        b"help" if argv.len() == 2 => Reply::Array(
            PUBSUB_HELP
                .iter()
                .map(|l| Reply::Status((*l).to_string()))
                .collect(),
        ),
        _ => Reply::err(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
            String::from_utf8_lossy(&argv[1])
        )),
    }
}

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    Return the currently active channels matching a <pattern> (default: '*').",
    "NUMPAT",
    "    Return number of subscriptions to patterns.",
    "NUMSUB [<channel> ...]",
    "    Return the number of subscribers for the specified channels, excluding",
    "    pattern subscriptions(default: no channels).",
    "SHARDCHANNELS [<pattern>]",
    "    Return the currently active shard level channels matching a <pattern> (default: '*').",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Return the number of subscribers for the specified shard level channel(s)",
    "HELP",
    "    Prints this help.",
];

/// PING while subscribed in RESP2 answers `["pong", arg]`.
pub fn subscribed_ping(s: &Session, argv: &[Bytes]) -> Option<Reply> {
    if s.proto == Protocol::Resp2 && s.in_subscriber_mode() {
        let arg = argv.get(1).cloned().unwrap_or_default();
        return Some(Reply::Array(vec![
            Reply::bulk_str("pong"),
            Reply::Bulk(arg),
        ]));
    }
    None
}
