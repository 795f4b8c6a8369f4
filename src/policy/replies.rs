//! Namespacing on the way out: the tenant prefix removed from keys and channels in replies
//! and pub/sub messages, both on our [`Reply`] values (embedded engine) and on raw RESP2/RESP3
//! reply bytes (forwarding, where replies otherwise pass through untouched).
//!
//! Anything that should carry the prefix but does not (another tenant's key or message) is
//! dropped rather than shown: a filtered list is shorter, a filtered message is not delivered.

use bytes::{Bytes, BytesMut};

use super::namespace::{Namespace, Shape};
use crate::protocol::{Protocol, Reply};

/// Strips the prefix from the keys/channels of a reply of the given shape.
pub fn strip(ns: &Namespace, shape: Shape, reply: Reply) -> Reply {
    if ns.is_empty() {
        return reply;
    }
    if let Reply::Error(text) = reply {
        return Reply::Error(strip_error(ns, text));
    }
    match (shape, reply) {
        (Shape::Plain, r) => r,
        (Shape::Key, Reply::Bulk(k)) => ns.unkey(&k).map_or(Reply::Null, Reply::Bulk),
        (Shape::Keys, Reply::Array(items)) => Reply::Array(keys_only(ns, items)),
        (Shape::Keys, Reply::Set(items)) => Reply::Set(keys_only(ns, items)),
        (Shape::Scan, Reply::Array(mut parts)) if parts.len() == 2 => {
            if let Some(Reply::Array(items)) = parts.pop() {
                parts.push(Reply::Array(keys_only(ns, items)));
            }
            Reply::Array(parts)
        }
        (Shape::FirstKey, Reply::Array(mut items)) => {
            if let Some(first) = items.first_mut() {
                *first = unkey_reply(ns, std::mem::replace(first, Reply::Null));
            }
            Reply::Array(items)
        }
        (Shape::Streams, Reply::Map(pairs)) => Reply::Map(
            pairs
                .into_iter()
                .map(|(k, v)| (unkey_reply(ns, k), v))
                .collect(),
        ),
        (Shape::Streams, Reply::Array(streams)) => Reply::Array(
            streams
                .into_iter()
                .map(|s| match s {
                    Reply::Array(mut kv) => {
                        if let Some(first) = kv.first_mut() {
                            *first = unkey_reply(ns, std::mem::replace(first, Reply::Null));
                        }
                        Reply::Array(kv)
                    }
                    other => other,
                })
                .collect(),
        ),
        (Shape::Channels, Reply::Array(items)) => Reply::Array(
            items
                .into_iter()
                .filter_map(|r| match r {
                    Reply::Bulk(c) => ns.unchannel(&c).map(Reply::Bulk),
                    _ => None,
                })
                .collect(),
        ),
        (Shape::NumSub, Reply::Array(items)) => Reply::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, r)| match r {
                    Reply::Bulk(c) if i % 2 == 0 => {
                        Reply::Bulk(ns.unchannel(&c).unwrap_or_default())
                    }
                    other => other,
                })
                .collect(),
        ),
        (Shape::Info, Reply::Bulk(text)) => Reply::Bulk(without_keyspace_rows(&text)),
        (Shape::Info, Reply::Verbatim(fmt, text)) => {
            Reply::Verbatim(fmt, without_keyspace_rows(&text))
        }
        (_, r) => r,
    }
}

/// INFO text without its Keyspace rows (`db0:keys=3,expires=0,avg_ttl=0`); the section's
/// header stays, as in the INFO of an empty server.
fn without_keyspace_rows(text: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(text.len());
    for line in text.split_inclusive(|&b| b == b'\n') {
        let row = line
            .strip_prefix(b"db")
            .map(|rest| {
                let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
                digits > 0 && rest[digits..].starts_with(b":keys=")
            })
            .unwrap_or(false);
        if !row {
            out.extend_from_slice(line);
        }
    }
    Bytes::from(out)
}

/// Error texts quote keys as `'key'` (NOGROUP No such key 'k' ...): drop the prefix there.
fn strip_error(ns: &Namespace, text: String) -> String {
    let mut quoted = String::with_capacity(ns.prefix().len() + 1);
    quoted.push('\'');
    match std::str::from_utf8(ns.prefix()) {
        Ok(p) => quoted.push_str(p),
        Err(_) => return text,
    }
    text.replace(&quoted, "'")
}

fn unkey_reply(ns: &Namespace, r: Reply) -> Reply {
    match r {
        Reply::Bulk(k) => ns.unkey(&k).map_or(Reply::Null, Reply::Bulk),
        other => other,
    }
}

fn keys_only(ns: &Namespace, items: Vec<Reply>) -> Vec<Reply> {
    items
        .into_iter()
        .filter_map(|r| match r {
            Reply::Bulk(k) => ns.unkey(&k).map(Reply::Bulk),
            _ => None,
        })
        .collect()
}

/// A (un)subscribe confirmation `[verb, name, count]`: the name as the tenant gave it.
pub fn strip_confirmation(ns: &Namespace, reply: Reply) -> Reply {
    let Reply::Push(mut items) = reply else {
        return reply;
    };
    let pattern = matches!(items.first(), Some(Reply::Bulk(v)) if v.first() == Some(&b'p'));
    if let Some(Reply::Bulk(name)) = items.get(1) {
        let shown = if pattern {
            ns.unchannel_pattern(name)
        } else {
            ns.unchannel(name)
        };
        items[1] = Reply::Bulk(shown.unwrap_or_default());
    }
    Reply::Push(items)
}

/// A published message (`message`/`smessage` channel payload, `pmessage` pattern channel
/// payload) as the tenant sees it, or None if it is not for this tenant.
pub fn strip_message(ns: &Namespace, msg: Reply) -> Option<Reply> {
    if ns.is_empty() {
        return Some(msg);
    }
    let (push, mut items) = match msg {
        Reply::Push(items) => (true, items),
        Reply::Array(items) => (false, items),
        other => return Some(other),
    };
    let kind = match items.first() {
        Some(Reply::Bulk(k)) => k.clone(),
        _ => return None,
    };
    let channel_at = match &kind[..] {
        b"invalidate" => {
            // A tracking invalidation: the tenant's keys only (a null list, flush-all, as is).
            return match items.get(1) {
                Some(Reply::Array(keys)) => {
                    let keys = unkey_all(ns, keys)?;
                    let msg = vec![items[0].clone(), Reply::Array(keys)];
                    Some(if push {
                        Reply::Push(msg)
                    } else {
                        Reply::Array(msg)
                    })
                }
                Some(Reply::Null) => Some(if push {
                    Reply::Push(items)
                } else {
                    Reply::Array(items)
                }),
                _ => None,
            };
        }
        b"message" | b"smessage" => 1,
        b"pmessage" => {
            let Some(Reply::Bulk(p)) = items.get(1) else {
                return None;
            };
            items[1] = Reply::Bulk(ns.unchannel_pattern(p)?);
            2
        }
        _ => return None,
    };
    let Some(Reply::Bulk(ch)) = items.get(channel_at) else {
        return None;
    };
    let ch = ch.clone();
    let keyevent = Namespace::is_keyevent(&ch);
    if Namespace::is_invalidate(&ch)
        && let Some(Reply::Array(keys)) = items.get(channel_at + 1)
    {
        let mine = unkey_all(ns, keys)?;
        items[channel_at + 1] = Reply::Array(mine);
    }
    items[channel_at] = Reply::Bulk(ns.unchannel(&ch)?);
    if keyevent {
        let Some(Reply::Bulk(payload)) = items.get(channel_at + 1) else {
            return None;
        };
        items[channel_at + 1] = Reply::Bulk(ns.unkey(payload)?);
    }
    Some(if push {
        Reply::Push(items)
    } else {
        Reply::Array(items)
    })
}

/// The keys of an invalidation that are the tenant's, as it knows them; None when none is
/// (the message is not for this tenant).
fn unkey_all(ns: &Namespace, keys: &[Reply]) -> Option<Vec<Reply>> {
    let mine: Vec<Reply> = keys
        .iter()
        .filter_map(|k| match k {
            Reply::Bulk(k) => ns.unkey(k).map(Reply::Bulk),
            _ => None,
        })
        .collect();
    (!mine.is_empty()).then_some(mine)
}

/// Raw reply bytes that cannot be read as one RESP reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RawError {
    #[error("reply is not valid RESP at byte {0}")]
    Invalid(usize),
    #[error("reply nests deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("{0} trailing bytes after the reply")]
    Trailing(usize),
}

/// Nesting accepted when decoding a reply to strip (key-bearing replies are 3 deep at most).
const MAX_DEPTH: usize = 32;

/// [`strip`] over one complete raw reply (as a backend sent it to a client speaking `proto`),
/// re-encoded for that client. Forwarding calls this only for commands whose shape is not
/// `Plain`, or whose reply is an error.
pub fn strip_raw(
    ns: &Namespace,
    shape: Shape,
    frame: &[u8],
    proto: Protocol,
) -> Result<Bytes, RawError> {
    let reply = decode_whole(frame)?;
    Ok(encode(&strip(ns, shape, reply), proto))
}

/// [`strip_message`] over one raw pub/sub message; Ok(None): not for this tenant.
pub fn strip_raw_message(
    ns: &Namespace,
    frame: &[u8],
    proto: Protocol,
) -> Result<Option<Bytes>, RawError> {
    let reply = decode_whole(frame)?;
    Ok(strip_message(ns, reply).map(|r| encode(&r, proto)))
}

fn encode(r: &Reply, proto: Protocol) -> Bytes {
    let mut out = BytesMut::new();
    r.encode(proto, &mut out);
    out.freeze()
}

fn decode_whole(frame: &[u8]) -> Result<Reply, RawError> {
    let mut pos = 0;
    let reply = decode(frame, &mut pos, 0)?;
    if pos != frame.len() {
        return Err(RawError::Trailing(frame.len() - pos));
    }
    Ok(reply)
}

/// One reply from `buf[*pos..]`, every RESP2/RESP3 type kept (doubles keep their text, so
/// re-encoding gives back the backend's bytes wherever nothing was stripped).
fn decode(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Reply, RawError> {
    if depth > MAX_DEPTH {
        return Err(RawError::TooDeep);
    }
    let start = *pos;
    let bad = || RawError::Invalid(start);
    let kind = *buf.get(start).ok_or_else(bad)?;
    // The line starts after the type byte (a frame starting with CRLF has no type).
    let line_end = buf[start + 1..]
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|i| start + 1 + i)
        .ok_or_else(bad)?;
    let line = &buf[start + 1..line_end];
    *pos = line_end + 2;
    let text = || String::from_utf8_lossy(line).into_owned();
    let int = || -> Result<i64, RawError> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)
    };
    let body = |pos: &mut usize, n: i64| -> Result<Bytes, RawError> {
        let n = usize::try_from(n).map_err(|_| bad())?;
        let from = *pos;
        let to = from.checked_add(n).ok_or_else(bad)?;
        if buf.get(to..to + 2) != Some(b"\r\n") {
            return Err(bad());
        }
        *pos = to + 2;
        Ok(Bytes::copy_from_slice(&buf[from..to]))
    };
    let items = |pos: &mut usize, n: usize| -> Result<Vec<Reply>, RawError> {
        let mut v = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            v.push(decode(buf, pos, depth + 1)?);
        }
        Ok(v)
    };
    Ok(match kind {
        b'+' => Reply::Status(text()),
        b'-' => Reply::Error(text()),
        b':' => Reply::Integer(int()?),
        b'_' => Reply::Null,
        b'#' => Reply::Boolean(line == b"t"),
        b',' => Reply::DoubleText(text()),
        b'(' => Reply::BigNumber(text()),
        b'$' => match int()? {
            -1 => Reply::Null,
            n => Reply::Bulk(body(pos, n)?),
        },
        b'!' => Reply::Error(String::from_utf8_lossy(&body(pos, int()?)?).into_owned()),
        b'=' => {
            let b = body(pos, int()?)?;
            // The format is 3 letters and a colon; the two Redis sends are kept as such.
            let fmt = match b.get(..4) {
                Some(b"mkd:") => "mkd",
                _ => "txt",
            };
            Reply::Verbatim(fmt, b.slice(4.min(b.len())..))
        }
        b'*' => match int()? {
            -1 => Reply::NullArray,
            n => Reply::Array(items(pos, usize::try_from(n).map_err(|_| bad())?)?),
        },
        b'~' => Reply::Set(items(pos, usize::try_from(int()?).map_err(|_| bad())?)?),
        b'>' => Reply::Push(items(pos, usize::try_from(int()?).map_err(|_| bad())?)?),
        b'%' => {
            let n = usize::try_from(int()?).map_err(|_| bad())?;
            let mut pairs = Vec::with_capacity(n.min(1024));
            for _ in 0..n {
                let k = decode(buf, pos, depth + 1)?;
                let v = decode(buf, pos, depth + 1)?;
                pairs.push((k, v));
            }
            Reply::Map(pairs)
        }
        b'|' => {
            // Attributes are metadata about the reply that follows; the reply is kept.
            let n = usize::try_from(int()?).map_err(|_| bad())?;
            for _ in 0..n.saturating_mul(2) {
                decode(buf, pos, depth + 1)?;
            }
            decode(buf, pos, depth + 1)?
        }
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests;
