//! Fuzz check of namespace rewriting on the way out: any reply (a made-up value, or any raw
//! bytes as a backend reply) of any shape is stripped without a panic; lists of keys lose
//! the prefix and drop foreign keys; a raw RESP3 reply strips exactly like its value; a
//! message published on a tenant's channel reaches it under the tenant's name. Also the
//! cutter every forwarded reply goes through (`ReplyScanner`): any bytes cut the same
//! whether they arrive at once or read by read, and an encoded reply is exactly one frame.

use bytes::{Bytes, BytesMut};

use super::Input;
use crate::policy::replies::{
    strip, strip_confirmation, strip_message, strip_raw, strip_raw_message,
};
use crate::policy::{Namespace, Shape};
use crate::protocol::reply_scan::{ReplyScanner, ScanError};
use crate::protocol::{Protocol, Reply};

const SHAPES: &[Shape] = &[
    Shape::Plain,
    Shape::Key,
    Shape::Keys,
    Shape::Scan,
    Shape::FirstKey,
    Shape::Streams,
    Shape::Channels,
    Shape::NumSub,
    Shape::Info,
];

/// A bulk string: one of the tenant's keys, someone else's, or a made-up word.
fn bulk(input: &mut Input, ns: &Namespace) -> Bytes {
    let word = input.word(b"ab:_*", 5);
    match input.below(3) {
        0 => ns.key(&word),
        1 => Bytes::from([&b"zz:"[..], &word].concat()),
        _ => Bytes::from(word),
    }
}

/// A reply value whose RESP3 encoding decodes back to the same bytes.
fn reply(input: &mut Input, ns: &Namespace, depth: usize) -> Reply {
    let leaf = depth >= 4;
    match input.below(if leaf { 9 } else { 14 }) {
        0 => Reply::Null,
        1 => Reply::Integer(i64::from(input.byte()) - 128),
        2 => Reply::Status("OK".into()),
        3 => Reply::Error(format!(
            "NOGROUP No such key '{}' or consumer group",
            String::from_utf8_lossy(&bulk(input, ns))
        )),
        4 => Reply::Boolean(input.bool()),
        5 => Reply::DoubleText("1.5".into()),
        6 => Reply::BigNumber("12345678901234567890".into()),
        7 => Reply::Verbatim("txt", bulk(input, ns)),
        9 => Reply::Array(items(input, ns, depth)),
        10 => Reply::Set(items(input, ns, depth)),
        11 => Reply::Push(items(input, ns, depth)),
        12 => {
            let n = input.below(4);
            Reply::Map(
                (0..n)
                    .map(|_| (reply(input, ns, depth + 1), reply(input, ns, depth + 1)))
                    .collect(),
            )
        }
        _ => Reply::Bulk(bulk(input, ns)),
    }
}

fn items(input: &mut Input, ns: &Namespace, depth: usize) -> Vec<Reply> {
    let n = input.below(6);
    (0..n).map(|_| reply(input, ns, depth + 1)).collect()
}

/// Cuts `bytes` into whole frames as the backend reader does, the bytes arriving `read`
/// at a time into a buffer that loses each frame once it is cut: the frames' lengths,
/// and the error that stopped the cutting, if any.
fn cut_frames(bytes: &[u8], read: usize) -> (Vec<usize>, Option<ScanError>) {
    let mut scanner = ReplyScanner::new();
    let mut buf: Vec<u8> = Vec::new();
    let mut frames = Vec::new();
    for piece in bytes.chunks(read.max(1)) {
        buf.extend_from_slice(piece);
        loop {
            match scanner.scan(&buf) {
                Ok(Some(n)) => {
                    assert!(
                        n > 0 && n <= buf.len(),
                        "frame of {n} in {} bytes",
                        buf.len()
                    );
                    frames.push(n);
                    buf.drain(..n);
                }
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
    }
    (frames, None)
}

fn encode(r: &Reply, proto: Protocol) -> Bytes {
    let mut out = BytesMut::new();
    r.encode(proto, &mut out);
    out.freeze()
}

pub fn replies(data: &[u8]) {
    let mut input = Input::new(data);
    let prefix = input.word(b"a:*?[\\", 4);
    let ns = Namespace::new(&prefix);
    let shape = input.pick(SHAPES);
    let proto = if input.bool() {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    };
    let read = 1 + input.below(17);
    let raw_mode = input.below(4) == 0;
    if raw_mode {
        // Any bytes as a backend reply: a clean error or a reply, never a panic.
        let raw = input.rest();
        assert_eq!(
            cut_frames(raw, read),
            cut_frames(raw, raw.len()),
            "read size {read}"
        );
        let _ = strip_raw(&ns, shape, raw, proto);
        let _ = strip_raw_message(&ns, raw, proto);
        return;
    }
    let r = reply(&mut input, &ns, 0);

    // Value and raw RESP3 bytes strip alike.
    let stripped = strip(&ns, shape, r.clone());
    let raw = strip_raw(&ns, shape, &encode(&r, Protocol::Resp3), Protocol::Resp3);
    assert_eq!(
        raw.as_ref().ok(),
        Some(&encode(&stripped, Protocol::Resp3)),
        "shape {shape:?} reply {r:?}"
    );
    // RESP2 loses types (maps flatten), so only: it decodes and strips.
    assert!(strip_raw(&ns, shape, &encode(&r, Protocol::Resp2), Protocol::Resp2).is_ok());
    // Each encoding is one whole frame to the backend reader, whatever the read size.
    for proto in [Protocol::Resp3, Protocol::Resp2] {
        let bytes = encode(&r, proto);
        assert_eq!(cut_frames(&bytes, read), (vec![bytes.len()], None), "{r:?}");
    }
    let _ = strip_message(&ns, r.clone());
    let _ = strip_confirmation(&ns, r.clone());

    // A list of keys keeps the tenant's, without the prefix, in order.
    if !ns.is_empty()
        && let Reply::Array(list) = &r
    {
        let want: Vec<Reply> = list
            .iter()
            .filter_map(|i| match i {
                Reply::Bulk(k) => k
                    .strip_prefix(&prefix[..])
                    .map(|k| Reply::Bulk(Bytes::copy_from_slice(k))),
                _ => None,
            })
            .collect();
        match strip(&ns, Shape::Keys, r.clone()) {
            Reply::Array(got) => assert_eq!(got, want),
            other => panic!("KEYS reply became {other:?}"),
        }
    }

    // A message on the tenant's channel reaches it as the tenant named the channel.
    let ch = input.word(b"ab:*", 6);
    let payload = bulk(&mut input, &ns);
    let msg = Reply::Push(vec![
        Reply::bulk_str("message"),
        Reply::Bulk(ns.channel(&ch)),
        Reply::Bulk(payload.clone()),
    ]);
    let want = Reply::Push(vec![
        Reply::bulk_str("message"),
        Reply::Bulk(Bytes::from(ch.clone())),
        Reply::Bulk(payload),
    ]);
    assert_eq!(strip_message(&ns, msg.clone()), Some(want.clone()));
    let raw = strip_raw_message(&ns, &encode(&msg, Protocol::Resp3), Protocol::Resp3);
    assert_eq!(raw.ok().flatten(), Some(encode(&want, Protocol::Resp3)));
}
