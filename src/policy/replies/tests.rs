//! Unit tests of stripping a tenant's prefix from replies: key lists, pops and streams, errors
//! that quote keys, pub/sub lists and messages, and raw RESP replies (garbage is an error).

use super::*;

fn ns() -> Namespace {
    Namespace::new(b"a:")
}

fn b(s: &str) -> Reply {
    Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
}

#[test]
fn keys_lists_lose_the_prefix_and_strangers_are_dropped() {
    let ns = ns();
    let r = strip(
        &ns,
        Shape::Keys,
        Reply::Array(vec![b("a:x"), b("b:y"), b("a:a:z")]),
    );
    assert_eq!(r, Reply::Array(vec![b("x"), b("a:z")]));
    let r = strip(
        &ns,
        Shape::Scan,
        Reply::Array(vec![b("17"), Reply::Array(vec![b("a:k"), b("c")])]),
    );
    assert_eq!(r, Reply::Array(vec![b("17"), Reply::Array(vec![b("k")])]));
    assert_eq!(strip(&ns, Shape::Key, b("a:r")), b("r"));
    assert_eq!(strip(&ns, Shape::Key, Reply::Null), Reply::Null);
}

#[test]
fn pops_and_streams() {
    let ns = ns();
    let r = strip(&ns, Shape::FirstKey, Reply::Array(vec![b("a:l"), b("v")]));
    assert_eq!(r, Reply::Array(vec![b("l"), b("v")]));
    let r = strip(
        &ns,
        Shape::FirstKey,
        Reply::Array(vec![
            b("a:z"),
            Reply::Array(vec![b("m"), Reply::Double(1.0)]),
        ]),
    );
    assert_eq!(
        r,
        Reply::Array(vec![b("z"), Reply::Array(vec![b("m"), Reply::Double(1.0)])])
    );
    assert_eq!(
        strip(&ns, Shape::FirstKey, Reply::NullArray),
        Reply::NullArray
    );
    let entries = Reply::Array(vec![]);
    let r = strip(
        &ns,
        Shape::Streams,
        Reply::Map(vec![(b("a:s"), entries.clone())]),
    );
    assert_eq!(r, Reply::Map(vec![(b("s"), entries.clone())]));
    let r = strip(
        &ns,
        Shape::Streams,
        Reply::Array(vec![Reply::Array(vec![b("a:s"), entries.clone()])]),
    );
    assert_eq!(r, Reply::Array(vec![Reply::Array(vec![b("s"), entries])]));
}

#[test]
fn errors_quoting_keys() {
    let ns = ns();
    let e = Reply::err("NOGROUP No such key 'a:s' or consumer group 'g' in XREADGROUP");
    assert_eq!(
        strip(&ns, Shape::Plain, e),
        Reply::err("NOGROUP No such key 's' or consumer group 'g' in XREADGROUP")
    );
}

#[test]
fn pubsub_lists() {
    let ns = ns();
    let r = strip(&ns, Shape::Channels, Reply::Array(vec![b("a:c"), b("b:c")]));
    assert_eq!(r, Reply::Array(vec![b("c")]));
    let r = strip(
        &ns,
        Shape::NumSub,
        Reply::Array(vec![b("a:c"), Reply::Integer(2)]),
    );
    assert_eq!(r, Reply::Array(vec![b("c"), Reply::Integer(2)]));
}

#[test]
fn messages_are_stripped_or_dropped() {
    let ns = ns();
    let msg = |items: Vec<Reply>| Reply::Push(items);
    assert_eq!(
        strip_message(&ns, msg(vec![b("message"), b("a:c"), b("hi")])),
        Some(msg(vec![b("message"), b("c"), b("hi")]))
    );
    assert_eq!(
        strip_message(&ns, msg(vec![b("message"), b("b:c"), b("hi")])),
        None
    );
    assert_eq!(
        strip_message(&ns, msg(vec![b("pmessage"), b("a:*"), b("a:c"), b("hi")])),
        Some(msg(vec![b("pmessage"), b("*"), b("c"), b("hi")]))
    );
    assert_eq!(
        strip_message(
            &ns,
            msg(vec![
                b("pmessage"),
                b("__keyspace@*__:a:*"),
                b("__keyspace@0__:a:k"),
                b("set")
            ])
        ),
        Some(msg(vec![
            b("pmessage"),
            b("__keyspace@*__:*"),
            b("__keyspace@0__:k"),
            b("set")
        ]))
    );
    // keyevent payloads are keys: another tenant's event is not delivered.
    assert_eq!(
        strip_message(
            &ns,
            msg(vec![b("message"), b("__keyevent@0__:del"), b("a:k")])
        ),
        Some(msg(vec![b("message"), b("__keyevent@0__:del"), b("k")]))
    );
    assert_eq!(
        strip_message(
            &ns,
            msg(vec![b("message"), b("__keyevent@0__:del"), b("b:k")])
        ),
        None
    );
    assert_eq!(
        strip_confirmation(&ns, msg(vec![b("subscribe"), b("a:c"), Reply::Integer(1)])),
        msg(vec![b("subscribe"), b("c"), Reply::Integer(1)])
    );
    assert_eq!(
        strip_confirmation(
            &ns,
            msg(vec![b("psubscribe"), b("a:x\\*"), Reply::Integer(1)])
        ),
        msg(vec![b("psubscribe"), b("x\\*"), Reply::Integer(1)])
    );
}

#[test]
fn raw_resp2_and_resp3() {
    let ns = ns();
    let raw = b"*2\r\n$4\r\na:k1\r\n$3\r\nb:x\r\n";
    assert_eq!(
        strip_raw(&ns, Shape::Keys, raw, Protocol::Resp2).unwrap(),
        &b"*1\r\n$2\r\nk1\r\n"[..]
    );
    let scan = b"*2\r\n$1\r\n0\r\n*1\r\n$3\r\na:k\r\n";
    assert_eq!(
        strip_raw(&ns, Shape::Scan, scan, Protocol::Resp2).unwrap(),
        &b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n"[..]
    );
    // RESP3 XREAD: a map keyed by stream name; the double text is kept byte for byte.
    let xread = b"%1\r\n$3\r\na:s\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n,1.50\r\n";
    assert_eq!(
        strip_raw(&ns, Shape::Streams, xread, Protocol::Resp3).unwrap(),
        &b"%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n,1.50\r\n"[..]
    );
    let bzpop = b"*3\r\n$3\r\na:z\r\n$1\r\nm\r\n$1\r\n1\r\n";
    assert_eq!(
        strip_raw(&ns, Shape::FirstKey, bzpop, Protocol::Resp2).unwrap(),
        &b"*3\r\n$1\r\nz\r\n$1\r\nm\r\n$1\r\n1\r\n"[..]
    );
    assert_eq!(
        strip_raw(&ns, Shape::FirstKey, b"*-1\r\n", Protocol::Resp2).unwrap(),
        &b"*-1\r\n"[..]
    );
    assert_eq!(
        strip_raw(&ns, Shape::Key, b"_\r\n", Protocol::Resp3).unwrap(),
        &b"_\r\n"[..]
    );
    assert_eq!(
        strip_raw(
            &ns,
            Shape::Plain,
            b"-NOGROUP No such key 'a:s'\r\n",
            Protocol::Resp2
        )
        .unwrap(),
        &b"-NOGROUP No such key 's'\r\n"[..]
    );
    let push = b">3\r\n$7\r\nmessage\r\n$3\r\na:c\r\n$2\r\nhi\r\n";
    assert_eq!(
        strip_raw_message(&ns, push, Protocol::Resp3)
            .unwrap()
            .unwrap(),
        &b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n"[..]
    );
    let other = b"*3\r\n$7\r\nmessage\r\n$3\r\nb:c\r\n$2\r\nhi\r\n";
    assert_eq!(
        strip_raw_message(&ns, other, Protocol::Resp2).unwrap(),
        None
    );
}

#[test]
fn raw_garbage_is_an_error_not_a_panic() {
    let ns = ns();
    for bad in [
        &b""[..],
        b"*2\r\n$1\r\na\r\n",
        b"$5\r\nab\r\n",
        b"$-7\r\n",
        b"*1\r\n:x\r\n",
        b"?\r\n",
        b"+OK\r\nextra",
        b"*99999999999999\r\n",
    ] {
        assert!(strip_raw(&ns, Shape::Keys, bad, Protocol::Resp2).is_err());
    }
    let deep = b"*1\r\n".repeat(100);
    assert_eq!(
        strip_raw(&ns, Shape::Keys, &deep, Protocol::Resp2),
        Err(RawError::TooDeep)
    );
}

/// Every RESP2/RESP3 frame kind survives decode + re-encode byte for byte where nothing is
/// stripped (forwarding may run any reply through it), except the two kinds Redis never
/// sends to a client's command: blob errors come back as simple errors, attributes dropped.
#[test]
fn raw_frames_round_trip() {
    let ns = ns();
    let frames: &[(&[u8], Protocol)] = &[
        (b"+OK\r\n", Protocol::Resp2),
        (b"-ERR x\r\n", Protocol::Resp2),
        (b":-12\r\n", Protocol::Resp2),
        (b"$3\r\nabc\r\n", Protocol::Resp2),
        (b"$0\r\n\r\n", Protocol::Resp2),
        (b"$-1\r\n", Protocol::Resp2),
        (b"*-1\r\n", Protocol::Resp2),
        (b"*0\r\n", Protocol::Resp2),
        (b"*2\r\n$1\r\na\r\n*2\r\n:1\r\n:2\r\n", Protocol::Resp2),
        (b"%1\r\n+k\r\n*1\r\n_\r\n", Protocol::Resp3),
        (b"~2\r\n#t\r\n,1.5\r\n", Protocol::Resp3),
        (b",inf\r\n", Protocol::Resp3),
        (
            b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$0\r\n\r\n",
            Protocol::Resp3,
        ),
        (b"=8\r\ntxt:abcd\r\n", Protocol::Resp3),
        (b"(123456789012345678901234567890\r\n", Protocol::Resp3),
    ];
    for (frame, proto) in frames {
        assert_eq!(
            strip_raw(&ns, Shape::Plain, frame, *proto).unwrap(),
            &frame[..],
            "{:?}",
            String::from_utf8_lossy(frame)
        );
    }
    assert_eq!(
        strip_raw(&ns, Shape::Plain, b"!3\r\nbad\r\n", Protocol::Resp3).unwrap(),
        &b"-bad\r\n"[..]
    );
    assert_eq!(
        strip_raw(
            &ns,
            Shape::Plain,
            b"|1\r\n+a\r\n+b\r\n:7\r\n",
            Protocol::Resp3
        )
        .unwrap(),
        &b":7\r\n"[..]
    );
}

/// Corrupted replies give an error or some reply, never a panic or a hang.
#[test]
fn raw_mutations_never_panic() {
    let ns = ns();
    let seeds: &[&[u8]] = &[
        b"*2\r\n$1\r\n0\r\n*2\r\n$3\r\na:k\r\n$3\r\nb:x\r\n",
        b"%1\r\n$3\r\na:s\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n,1.5\r\n",
        b">4\r\n$8\r\npmessage\r\n$3\r\na:*\r\n$3\r\na:c\r\n$2\r\nhi\r\n",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..20_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let seed = seeds[(x % seeds.len() as u64) as usize];
        let mut frame = seed.to_vec();
        let at = (x >> 8) as usize % frame.len();
        match (x >> 40) % 3 {
            0 => frame[at] = (x >> 16) as u8,
            1 => frame.truncate(at),
            _ => frame.insert(at, (x >> 24) as u8),
        }
        for shape in [Shape::Keys, Shape::Scan, Shape::Streams, Shape::FirstKey] {
            let _ = strip_raw(&ns, shape, &frame, Protocol::Resp3);
        }
        let _ = strip_raw_message(&ns, &frame, Protocol::Resp2);
    }
}

/// Found by the `replies` fuzz target: a frame (or a nested element) starting with CRLF
/// sliced `buf[start + 1..start]` and panicked.
#[test]
fn frame_starting_with_crlf_is_an_error() {
    let ns = ns();
    for frame in [
        &b"\r\n"[..],
        b"\r\n\r\n",
        b"*1\r\n\r\n",
        b"*2\r\n$1\r\nx\r\n\r\nab",
    ] {
        assert!(
            strip_raw(&ns, Shape::Keys, frame, Protocol::Resp3).is_err(),
            "{frame:?}"
        );
        assert!(
            strip_raw_message(&ns, frame, Protocol::Resp2).is_err(),
            "{frame:?}"
        );
    }
}

#[test]
fn a_backends_info_loses_its_keyspace_rows() {
    let text = "# Server\r\nredis_version:7.0.15\r\n\r\n# Keyspace\r\ndb0:keys=3,expires=0,avg_ttl=0\r\ndb12:keys=1,expires=1,avg_ttl=9\r\n";
    let kept = "# Server\r\nredis_version:7.0.15\r\n\r\n# Keyspace\r\n";
    assert_eq!(strip(&ns(), Shape::Info, b(text)), b(kept));
    assert_eq!(
        strip(
            &ns(),
            Shape::Info,
            Reply::Verbatim("txt", Bytes::from(text))
        ),
        Reply::Verbatim("txt", Bytes::from(kept))
    );
    // Only rows of that form go: a line about "db" elsewhere stays.
    let other = "dbfilename:dump.rdb\r\ndb0:x\r\n";
    assert_eq!(strip(&ns(), Shape::Info, b(other)), b(other));
}
