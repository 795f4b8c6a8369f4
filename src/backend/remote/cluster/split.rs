//! Commands a single cluster node cannot answer alone, made to work as on one Redis:
//!
//! * **Multi-key commands split by slot** (MGET, MSET, DEL, UNLINK, EXISTS, TOUCH): the keys
//!   are grouped into one sub-command per hash slot (a cluster node refuses keys of two slots
//!   in one command even when it owns both, so per-node grouping is not enough; sub-commands
//!   for the same node can still travel in one pipelined batch), and the sub-replies are
//!   merged into the reply one Redis would give.
//! * **Fan-out commands** (KEYS, SCAN, DBSIZE, FLUSHDB, FLUSHALL, SCRIPT LOAD/FLUSH/EXISTS,
//!   CONFIG SET/RESETSTAT/REWRITE, RANDOMKEY, PUBLISH): where they go and how their replies combine.
//!
//! Merging works on raw reply frames: values are copied byte for byte, so RESP2 and RESP3
//! clients each get their own null encoding (`$-1` / `_`), and an error reply from any node
//! is what the client gets, as is. Redirections (MOVED/ASK/TRYAGAIN) are the caller's to
//! follow before merging: each part is a self-contained command it can resend.

use bytes::{Bytes, BytesMut};
use rustc_hash::FxHashMap;

use super::raw;
use super::slots::key_slot;
use crate::command::CommandSpec;
use crate::command::keys::resolve;

/// The multi-key commands respgate splits across slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultiKey {
    Mget,
    Mset,
    Del,
    Unlink,
    Exists,
    Touch,
}

impl MultiKey {
    /// The splittable command named `name` (the command table's lowercase name).
    pub fn of(name: &str) -> Option<MultiKey> {
        Some(match name {
            "mget" => MultiKey::Mget,
            "mset" => MultiKey::Mset,
            "del" => MultiKey::Del,
            "unlink" => MultiKey::Unlink,
            "exists" => MultiKey::Exists,
            "touch" => MultiKey::Touch,
            _ => return None,
        })
    }

    /// Arguments per key (MSET: key and value).
    fn stride(self) -> usize {
        match self {
            MultiKey::Mset => 2,
            _ => 1,
        }
    }
}

/// One sub-command: the keys of one slot, in their original order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub slot: u16,
    /// A complete command (name, then the keys — with their values for MSET).
    pub argv: Vec<Bytes>,
    /// For each key of this part, in order: its position among the original command's keys
    /// (0 = the first key). MGET's merge puts values back there.
    pub key_indices: Vec<usize>,
}

/// A multi-key command cut by slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub kind: MultiKey,
    /// In the order each slot first appears among the keys.
    pub parts: Vec<Part>,
    /// Keys in the original command.
    pub keys: usize,
}

impl Split {
    /// All keys are in one slot: the original command can be sent as it is.
    pub fn is_single_slot(&self) -> bool {
        self.parts.len() == 1
    }
}

/// Cuts a multi-key command into one part per slot. None when argv is malformed (no keys,
/// MSET without a value for its last key): the command should be sent unchanged to any node,
/// whose arity error is the right reply.
pub fn split(kind: MultiKey, argv: &[Bytes]) -> Option<Split> {
    let (name, args) = argv.split_first()?;
    let stride = kind.stride();
    if args.is_empty() || !args.len().is_multiple_of(stride) {
        return None;
    }
    let mut parts: Vec<Part> = Vec::new();
    let mut by_slot: FxHashMap<u16, usize> = FxHashMap::default();
    for (index, chunk) in args.chunks_exact(stride).enumerate() {
        let slot = key_slot(&chunk[0]);
        let p = *by_slot.entry(slot).or_insert_with(|| {
            parts.push(Part {
                slot,
                argv: vec![name.clone()],
                key_indices: Vec::new(),
            });
            parts.len() - 1
        });
        // Duplicate keys share a slot, so they stay in one part in their original order:
        // `DEL a a` still counts 1, `MSET a 1 a 2` still leaves 2.
        parts[p].argv.extend_from_slice(chunk);
        parts[p].key_indices.push(index);
    }
    Some(Split {
        kind,
        parts,
        keys: args.len() / stride,
    })
}

/// Groups parts by the node serving their slot (`node_of`, e.g. `Topology::master_for`), so
/// each node's parts can be pipelined together: `(node, part indices)` in first-seen order.
/// Parts whose slot has no node are grouped under `None`.
pub fn group_by_node(
    parts: &[Part],
    node_of: impl Fn(u16) -> Option<usize>,
) -> Vec<(Option<usize>, Vec<usize>)> {
    let mut groups: Vec<(Option<usize>, Vec<usize>)> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let node = node_of(part.slot);
        match groups.iter_mut().find(|(n, _)| *n == node) {
            Some((_, members)) => members.push(i),
            None => groups.push((node, vec![i])),
        }
    }
    groups
}

/// Sub-replies that cannot be merged (a node answered something Redis never would).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MergeError {
    #[error("expected {expected} sub-replies, got {got}")]
    Count { expected: usize, got: usize },
    #[error("unexpected reply from a cluster node to {0}")]
    Shape(&'static str),
    #[error("cluster nodes disagree on the reply to {0}")]
    Disagree(&'static str),
    #[error("SCAN cursor {0} from a cluster node is too large to encode")]
    CursorTooLarge(u64),
}

/// The first error reply among `replies`, copied as is.
fn first_error<R: AsRef<[u8]>>(replies: &[R]) -> Option<Bytes> {
    replies
        .iter()
        .map(AsRef::as_ref)
        .find(|r| raw::is_error(r))
        .map(Bytes::copy_from_slice)
}

/// An aggregate's header (`*3\r\n`), for replies assembled from raw elements.
pub(crate) fn push_header(out: &mut BytesMut, kind: u8, n: usize) {
    out.extend_from_slice(&[kind]);
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn integer_reply(n: i64) -> Bytes {
    let mut out = BytesMut::with_capacity(24);
    out.extend_from_slice(b":");
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.freeze()
}

fn sum_integers<R: AsRef<[u8]>>(replies: &[R], what: &'static str) -> Result<Bytes, MergeError> {
    let mut total: i64 = 0;
    for r in replies {
        let n = raw::integer(r.as_ref()).ok_or(MergeError::Shape(what))?;
        total = total.checked_add(n).ok_or(MergeError::Shape(what))?;
    }
    Ok(integer_reply(total))
}

/// Merges the replies to `split`'s parts (one per part, in part order) into the reply one
/// Redis gives to the original command. An error reply from any part is returned as is (the
/// first, in part order); note that the other parts may have run (as when a single Redis
/// fails midway through a pipeline), which is why MSET across slots is not atomic.
pub fn merge<R: AsRef<[u8]>>(split: &Split, replies: &[R]) -> Result<Bytes, MergeError> {
    if replies.len() != split.parts.len() {
        return Err(MergeError::Count {
            expected: split.parts.len(),
            got: replies.len(),
        });
    }
    if let Some(err) = first_error(replies) {
        return Ok(err);
    }
    match split.kind {
        MultiKey::Mget => merge_mget(split, replies),
        MultiKey::Mset => {
            if replies.iter().all(|r| r.as_ref() == b"+OK\r\n") {
                Ok(Bytes::from_static(b"+OK\r\n"))
            } else {
                Err(MergeError::Shape("MSET"))
            }
        }
        MultiKey::Del => sum_integers(replies, "DEL"),
        MultiKey::Unlink => sum_integers(replies, "UNLINK"),
        MultiKey::Exists => sum_integers(replies, "EXISTS"),
        MultiKey::Touch => sum_integers(replies, "TOUCH"),
    }
}

fn merge_mget<R: AsRef<[u8]>>(split: &Split, replies: &[R]) -> Result<Bytes, MergeError> {
    let mut values: Vec<Option<&[u8]>> = vec![None; split.keys];
    let mut size = 16;
    for (part, reply) in split.parts.iter().zip(replies) {
        let (_, items) = raw::elements(reply.as_ref()).ok_or(MergeError::Shape("MGET"))?;
        if items.len() != part.key_indices.len() {
            return Err(MergeError::Shape("MGET"));
        }
        for (&index, item) in part.key_indices.iter().zip(items) {
            let slot = values.get_mut(index).ok_or(MergeError::Shape("MGET"))?;
            *slot = Some(item);
            size += item.len();
        }
    }
    let mut out = BytesMut::with_capacity(size);
    push_header(&mut out, b'*', split.keys);
    for value in values {
        // Every index is filled when the parts came from `split`.
        out.extend_from_slice(value.ok_or(MergeError::Shape("MGET"))?);
    }
    Ok(out.freeze())
}

/// Where a keyless command goes in cluster mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanOut {
    /// Send to every master; combine the replies with [`merge_fan_out`].
    AllMasters(Merge),
    /// Any one node (PUBLISH: the cluster bus delivers the message to every node's
    /// subscribers).
    AnyNode,
    /// SCAN: one master at a time, named by the cursor ([`plan_scan`], [`scan_reply`]).
    Scan,
}

/// How the replies of every master combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merge {
    /// DBSIZE: the sum of the integers.
    SumIntegers,
    /// FLUSHDB, FLUSHALL, SCRIPT FLUSH (`+OK`), SCRIPT LOAD (the script's SHA1): every master
    /// must give the same reply, which is the client's.
    Same,
    /// KEYS: all the arrays' elements in one array (KEYS's order is unspecified anyway).
    ConcatArrays,
    /// SCRIPT EXISTS: 1 where the script is on every master (a later EVALSHA may land on any
    /// of them), else 0.
    AndIntegerArrays,
    /// RANDOMKEY: the first non-null reply, in the order the caller asked the masters (it
    /// should start at a random one); null only if every master is empty, as on one Redis.
    FirstNonNull,
}

/// How `argv` (whose top-level command is `spec`) runs in cluster mode if it is one of the
/// keyless commands that concern the whole keyspace; None for every other command (and for
/// malformed ones: any node then gives the command's own error).
pub fn fan_out(spec: &CommandSpec, argv: &[Bytes]) -> Option<FanOut> {
    let cmd = resolve(spec, argv).ok()?;
    if !cmd.arity_ok(argv.len()) {
        return None;
    }
    Some(match cmd.name {
        "keys" => FanOut::AllMasters(Merge::ConcatArrays),
        "scan" => FanOut::Scan,
        "dbsize" => FanOut::AllMasters(Merge::SumIntegers),
        // CONFIG SET & co.: settings must hold on every node, as on one Redis.
        "flushdb" | "flushall" | "script|flush" | "script|load" | "config|set"
        | "config|resetstat" | "config|rewrite" => FanOut::AllMasters(Merge::Same),
        "script|exists" => FanOut::AllMasters(Merge::AndIntegerArrays),
        "randomkey" => FanOut::AllMasters(Merge::FirstNonNull),
        "publish" => FanOut::AnyNode,
        _ => return None,
    })
}

/// Combines every master's reply (any order, except for [`Merge::FirstNonNull`]). An error
/// reply from any master is returned as is.
pub fn merge_fan_out<R: AsRef<[u8]>>(merge: Merge, replies: &[R]) -> Result<Bytes, MergeError> {
    let Some(first) = replies.first().map(AsRef::as_ref) else {
        return Err(MergeError::Count {
            expected: 1,
            got: 0,
        });
    };
    if let Some(err) = first_error(replies) {
        return Ok(err);
    }
    match merge {
        Merge::SumIntegers => sum_integers(replies, "DBSIZE"),
        Merge::Same => {
            if replies.iter().all(|r| r.as_ref() == first) {
                Ok(Bytes::copy_from_slice(first))
            } else {
                Err(MergeError::Disagree("a command sent to every master"))
            }
        }
        Merge::ConcatArrays => {
            let mut total = 0;
            let mut all = Vec::with_capacity(replies.len());
            for r in replies {
                let (_, items) = raw::elements(r.as_ref()).ok_or(MergeError::Shape("KEYS"))?;
                total += items.len();
                all.push(items);
            }
            let size = replies.iter().map(|r| r.as_ref().len()).sum::<usize>();
            let mut out = BytesMut::with_capacity(size + 16);
            push_header(&mut out, b'*', total);
            for item in all.into_iter().flatten() {
                out.extend_from_slice(item);
            }
            Ok(out.freeze())
        }
        Merge::AndIntegerArrays => {
            let mut acc: Option<Vec<bool>> = None;
            for r in replies {
                let (_, items) =
                    raw::elements(r.as_ref()).ok_or(MergeError::Shape("SCRIPT EXISTS"))?;
                let flags = items
                    .iter()
                    .map(|i| raw::integer(i).map(|n| n != 0))
                    .collect::<Option<Vec<bool>>>()
                    .ok_or(MergeError::Shape("SCRIPT EXISTS"))?;
                acc = Some(match acc {
                    None => flags,
                    Some(prev) if prev.len() == flags.len() => {
                        prev.iter().zip(&flags).map(|(a, b)| *a && *b).collect()
                    }
                    Some(_) => return Err(MergeError::Disagree("SCRIPT EXISTS")),
                });
            }
            let flags = acc.unwrap_or_default();
            let mut out = BytesMut::with_capacity(8 + 4 * flags.len());
            push_header(&mut out, b'*', flags.len());
            for f in flags {
                out.extend_from_slice(if f { b":1\r\n" } else { b":0\r\n" });
            }
            Ok(out.freeze())
        }
        Merge::FirstNonNull => {
            let pick = replies
                .iter()
                .map(AsRef::as_ref)
                .find(|r| !raw::is_null(r))
                .unwrap_or(first);
            Ok(Bytes::copy_from_slice(pick))
        }
    }
}

/// Bits of a client's SCAN cursor holding the current master's own cursor; the master's
/// position in [`Topology::masters`](super::topology::Topology::masters) order (the shard
/// ordinal) sits above them. A node's cursor is below its dict's bucket count, far under
/// 2^48; with fewer than 2^15 shards the whole cursor stays below 2^63, so clients that parse
/// cursors as signed 64-bit integers (StackExchange.Redis, ...) still read it right.
pub const SCAN_NODE_BITS: u32 = 48;
const SCAN_NODE_MASK: u64 = (1 << SCAN_NODE_BITS) - 1;

/// A SCAN cursor that is not a number; the text is Redis's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ERR invalid cursor")]
pub struct InvalidCursor;

/// The next step of a client's SCAN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanPlan {
    /// Send `argv` (the client's, with the node's own cursor) to the master at `shard` in
    /// [`Topology::masters`](super::topology::Topology::masters) order, then pass its reply
    /// through [`scan_reply`].
    Send { shard: usize, argv: Vec<Bytes> },
    /// The cursor names a shard that no longer exists (the cluster shrank): the scan is over;
    /// reply [`SCAN_DONE`].
    Done,
}

/// The reply ending a scan with nothing more: cursor 0, no keys (same in RESP2 and RESP3).
pub const SCAN_DONE: &[u8] = b"*2\r\n$1\r\n0\r\n*0\r\n";

/// Encodes a client cursor: `shard` in the high bits, the node's cursor in the low ones.
pub fn encode_scan_cursor(shard: usize, node_cursor: u64) -> Result<u64, MergeError> {
    if node_cursor > SCAN_NODE_MASK {
        return Err(MergeError::CursorTooLarge(node_cursor));
    }
    let shard = u64::try_from(shard)
        .ok()
        .filter(|s| *s < 1 << (64 - SCAN_NODE_BITS))
        .ok_or(MergeError::CursorTooLarge(node_cursor))?;
    Ok(shard << SCAN_NODE_BITS | node_cursor)
}

/// Splits a client cursor into (shard, node cursor).
pub fn decode_scan_cursor(cursor: &[u8]) -> Result<(usize, u64), InvalidCursor> {
    let c: u64 = std::str::from_utf8(cursor)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(InvalidCursor)?;
    let shard = usize::try_from(c >> SCAN_NODE_BITS).map_err(|_| InvalidCursor)?;
    Ok((shard, c & SCAN_NODE_MASK))
}

/// Where a client's `SCAN cursor [MATCH ..] [COUNT ..] [TYPE ..]` goes, with `shards` masters.
pub fn plan_scan(argv: &[Bytes], shards: usize) -> Result<ScanPlan, InvalidCursor> {
    let cursor = argv.get(1).ok_or(InvalidCursor)?;
    let (shard, node_cursor) = decode_scan_cursor(cursor)?;
    if shard >= shards {
        return Ok(ScanPlan::Done);
    }
    let mut out = argv.to_vec();
    out[1] = Bytes::from(node_cursor.to_string());
    Ok(ScanPlan::Send { shard, argv: out })
}

/// Rewrites the SCAN reply of the master at `shard` for the client: the node's next cursor
/// becomes a client cursor (the next shard's start when this node is done, 0 after the last
/// shard); the keys are passed through. Error replies are returned as is.
pub fn scan_reply(reply: &[u8], shard: usize, shards: usize) -> Result<Bytes, MergeError> {
    if raw::is_error(reply) {
        return Ok(Bytes::copy_from_slice(reply));
    }
    let shape = MergeError::Shape("SCAN");
    let (_, items) = raw::elements(reply).ok_or(shape.clone())?;
    let [cursor, keys] = items.as_slice() else {
        return Err(shape);
    };
    let cursor_frame = Bytes::copy_from_slice(cursor);
    let node_cursor = match raw::decode(&cursor_frame) {
        Some(crate::protocol::reply_scan::Frame::Bulk(b)) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(shape.clone())?,
        _ => return Err(shape),
    };
    let next = if node_cursor != 0 {
        encode_scan_cursor(shard, node_cursor)?
    } else if shard + 1 < shards {
        encode_scan_cursor(shard + 1, 0)?
    } else {
        0
    };
    let next = itoa::Buffer::new().format(next).to_string();
    let mut out = BytesMut::with_capacity(keys.len() + 32);
    out.extend_from_slice(b"*2\r\n");
    push_header(&mut out, b'$', next.len());
    out.extend_from_slice(next.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(keys);
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::table::lookup;

    fn argv(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn split_line(kind: MultiKey, line: &str) -> Split {
        match split(kind, &argv(line)) {
            Some(s) => s,
            None => panic!("{line}: not split"),
        }
    }

    fn text(parts: &[Part]) -> Vec<String> {
        parts
            .iter()
            .map(|p| {
                let words: Vec<String> = p
                    .argv
                    .iter()
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                words.join(" ")
            })
            .collect()
    }

    #[test]
    fn splits_by_slot_in_first_seen_order() {
        // foo: 12182, bar: 5061; {foo}x shares foo's slot.
        let s = split_line(MultiKey::Mget, "MGET foo bar {foo}x bar");
        assert_eq!(text(&s.parts), ["MGET foo {foo}x", "MGET bar bar"]);
        assert_eq!(s.parts[0].slot, 12182);
        assert_eq!(s.parts[0].key_indices, [0, 2]);
        assert_eq!(s.parts[1].key_indices, [1, 3]);
        assert_eq!(s.keys, 4);
        assert!(!s.is_single_slot());

        let s = split_line(MultiKey::Mset, "MSET foo 1 bar 2 {foo}y 3 foo 4");
        assert_eq!(text(&s.parts), ["MSET foo 1 {foo}y 3 foo 4", "MSET bar 2"]);
        assert_eq!(s.keys, 4);

        let s = split_line(MultiKey::Del, "DEL {a}1 {a}2");
        assert!(s.is_single_slot());
    }

    #[test]
    fn malformed_commands_are_not_split() {
        assert_eq!(split(MultiKey::Mget, &argv("MGET")), None);
        assert_eq!(split(MultiKey::Mset, &argv("MSET a 1 b")), None);
        assert_eq!(split(MultiKey::Mset, &argv("MSET")), None);
        assert_eq!(split(MultiKey::Del, &[]), None);
    }

    #[test]
    fn mget_merge_restores_key_order_in_both_protocols() {
        let s = split_line(MultiKey::Mget, "MGET foo bar {foo}x bar");
        // RESP2: nulls are $-1.
        let r2 = [
            &b"*2\r\n$1\r\n1\r\n$-1\r\n"[..],
            b"*2\r\n$1\r\n2\r\n$1\r\n2\r\n",
        ];
        assert_eq!(
            merge(&s, &r2),
            Ok(Bytes::from_static(
                b"*4\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n$1\r\n2\r\n"
            ))
        );
        // RESP3: nulls are _.
        let r3 = [&b"*2\r\n_\r\n$1\r\nx\r\n"[..], b"*2\r\n_\r\n_\r\n"];
        assert_eq!(
            merge(&s, &r3),
            Ok(Bytes::from_static(b"*4\r\n_\r\n_\r\n$1\r\nx\r\n_\r\n"))
        );
    }

    #[test]
    fn errors_win_and_bad_shapes_are_refused() {
        let s = split_line(MultiKey::Mget, "MGET foo bar");
        let moved_err = [&b"*1\r\n$1\r\na\r\n"[..], b"-OOM no\r\n"];
        assert_eq!(
            merge(&s, &moved_err),
            Ok(Bytes::from_static(b"-OOM no\r\n"))
        );
        assert_eq!(
            merge(&s, &[&b"*1\r\n$1\r\na\r\n"[..]]),
            Err(MergeError::Count {
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            merge(&s, &[&b"*1\r\n$1\r\na\r\n"[..], b"*2\r\n_\r\n_\r\n"]),
            Err(MergeError::Shape("MGET"))
        );
        assert_eq!(
            merge(&s, &[&b"*1\r\n$1\r\na\r\n"[..], b":1\r\n"]),
            Err(MergeError::Shape("MGET"))
        );
        let d = split_line(MultiKey::Del, "DEL foo bar");
        assert_eq!(
            merge(&d, &[&b":1\r\n"[..], b"+OK\r\n"]),
            Err(MergeError::Shape("DEL"))
        );
        let m = split_line(MultiKey::Mset, "MSET foo 1 bar 2");
        assert_eq!(
            merge(&m, &[&b"+OK\r\n"[..], b"$2\r\nOK\r\n"]),
            Err(MergeError::Shape("MSET"))
        );
    }

    #[test]
    fn counts_are_summed() {
        for (kind, cmd) in [
            (MultiKey::Del, "DEL"),
            (MultiKey::Unlink, "UNLINK"),
            (MultiKey::Exists, "EXISTS"),
            (MultiKey::Touch, "TOUCH"),
        ] {
            let s = split_line(kind, &format!("{cmd} foo bar foo"));
            assert_eq!(
                merge(&s, &[&b":2\r\n"[..], b":1\r\n"]),
                Ok(Bytes::from_static(b":3\r\n"))
            );
        }
        let m = split_line(MultiKey::Mset, "MSET foo 1 bar 2");
        assert_eq!(
            merge(&m, &[&b"+OK\r\n"[..], b"+OK\r\n"]),
            Ok(Bytes::from_static(b"+OK\r\n"))
        );
    }

    #[test]
    fn parts_group_by_node() {
        let s = split_line(MultiKey::Exists, "EXISTS foo bar hello {foo}z");
        // foo 12182, bar 5061, hello 866: two nodes, split at 10000.
        let node_of = |slot: u16| Some(usize::from(slot >= 10000));
        assert_eq!(
            group_by_node(&s.parts, node_of),
            vec![(Some(1), vec![0]), (Some(0), vec![1, 2])]
        );
        assert_eq!(
            group_by_node(&s.parts, |_| None),
            vec![(None, vec![0, 1, 2])]
        );
    }

    fn fan(line: &str) -> Option<FanOut> {
        let a = argv(line);
        let spec = lookup(&a[0])?;
        fan_out(spec, &a)
    }

    #[test]
    fn fan_out_commands() {
        assert_eq!(fan("KEYS *"), Some(FanOut::AllMasters(Merge::ConcatArrays)));
        assert_eq!(fan("SCAN 0 MATCH a*"), Some(FanOut::Scan));
        assert_eq!(fan("DBSIZE"), Some(FanOut::AllMasters(Merge::SumIntegers)));
        assert_eq!(fan("FLUSHALL ASYNC"), Some(FanOut::AllMasters(Merge::Same)));
        assert_eq!(fan("flushdb"), Some(FanOut::AllMasters(Merge::Same)));
        assert_eq!(fan("SCRIPT LOAD x"), Some(FanOut::AllMasters(Merge::Same)));
        assert_eq!(fan("SCRIPT FLUSH"), Some(FanOut::AllMasters(Merge::Same)));
        assert_eq!(
            fan("SCRIPT EXISTS a b"),
            Some(FanOut::AllMasters(Merge::AndIntegerArrays))
        );
        assert_eq!(
            fan("RANDOMKEY"),
            Some(FanOut::AllMasters(Merge::FirstNonNull))
        );
        assert_eq!(fan("PUBLISH ch m"), Some(FanOut::AnyNode));
        // Not fan-out: keyed, other subcommands, malformed.
        assert_eq!(fan("GET foo"), None);
        assert_eq!(fan("SCRIPT KILL"), None);
        assert_eq!(fan("KEYS"), None);
        assert_eq!(fan("DBSIZE x"), None);
        assert_eq!(fan("PUBLISH ch"), None);
    }

    #[test]
    fn fan_out_merges() {
        assert_eq!(
            merge_fan_out(Merge::SumIntegers, &[&b":3\r\n"[..], b":0\r\n", b":4\r\n"]),
            Ok(Bytes::from_static(b":7\r\n"))
        );
        assert_eq!(
            merge_fan_out(Merge::Same, &[&b"+OK\r\n"[..], b"+OK\r\n"]),
            Ok(Bytes::from_static(b"+OK\r\n"))
        );
        assert_eq!(
            merge_fan_out(Merge::Same, &[&b"$1\r\na\r\n"[..], b"$1\r\nb\r\n"]),
            Err(MergeError::Disagree("a command sent to every master"))
        );
        assert_eq!(
            merge_fan_out(
                Merge::ConcatArrays,
                &[
                    &b"*1\r\n$1\r\na\r\n"[..],
                    b"*0\r\n",
                    b"*2\r\n$1\r\nb\r\n$1\r\nc\r\n"
                ]
            ),
            Ok(Bytes::from_static(
                b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
            ))
        );
        assert_eq!(
            merge_fan_out(
                Merge::AndIntegerArrays,
                &[
                    &b"*3\r\n:1\r\n:1\r\n:0\r\n"[..],
                    b"*3\r\n:1\r\n:0\r\n:0\r\n"
                ]
            ),
            Ok(Bytes::from_static(b"*3\r\n:1\r\n:0\r\n:0\r\n"))
        );
        assert_eq!(
            merge_fan_out(
                Merge::AndIntegerArrays,
                &[&b"*1\r\n:1\r\n"[..], b"*2\r\n:1\r\n:1\r\n"]
            ),
            Err(MergeError::Disagree("SCRIPT EXISTS"))
        );
        assert_eq!(
            merge_fan_out(Merge::FirstNonNull, &[&b"_\r\n"[..], b"$1\r\nk\r\n"]),
            Ok(Bytes::from_static(b"$1\r\nk\r\n"))
        );
        assert_eq!(
            merge_fan_out(Merge::FirstNonNull, &[&b"$-1\r\n"[..], b"$-1\r\n"]),
            Ok(Bytes::from_static(b"$-1\r\n"))
        );
        assert_eq!(
            merge_fan_out(Merge::SumIntegers, &[&b":3\r\n"[..], b"-LOADING x\r\n"]),
            Ok(Bytes::from_static(b"-LOADING x\r\n"))
        );
        let none: [&[u8]; 0] = [];
        assert!(merge_fan_out(Merge::SumIntegers, &none).is_err());
    }

    #[test]
    fn scan_cursor_walks_every_shard_then_ends() {
        // Start: shard 0 with cursor 0; options are kept.
        assert_eq!(
            plan_scan(&argv("SCAN 0 COUNT 5"), 3),
            Ok(ScanPlan::Send {
                shard: 0,
                argv: argv("SCAN 0 COUNT 5")
            })
        );
        // Shard 0 has more: the client cursor carries shard 0 and the node's cursor.
        let r = scan_reply(b"*2\r\n$2\r\n12\r\n*1\r\n$1\r\na\r\n", 0, 3);
        assert_eq!(
            r,
            Ok(Bytes::from_static(b"*2\r\n$2\r\n12\r\n*1\r\n$1\r\na\r\n"))
        );
        // Shard 0 is done: next is shard 1 from its start.
        let next = (1u64 << SCAN_NODE_BITS).to_string();
        let r = scan_reply(b"*2\r\n$1\r\n0\r\n*0\r\n", 0, 3);
        assert_eq!(
            r,
            Ok(Bytes::from(format!(
                "*2\r\n${}\r\n{next}\r\n*0\r\n",
                next.len()
            )))
        );
        assert_eq!(
            plan_scan(&argv(&format!("SCAN {next} MATCH x*")), 3),
            Ok(ScanPlan::Send {
                shard: 1,
                argv: argv("SCAN 0 MATCH x*")
            })
        );
        let mid = ((2u64 << SCAN_NODE_BITS) | 77).to_string();
        assert_eq!(
            plan_scan(&argv(&format!("scan {mid}")), 3),
            Ok(ScanPlan::Send {
                shard: 2,
                argv: argv("scan 77")
            })
        );
        // Last shard done: cursor 0.
        assert_eq!(
            scan_reply(b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nz\r\n", 2, 3),
            Ok(Bytes::from_static(b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nz\r\n"))
        );
        // A shard that is gone ends the scan.
        let gone = (5u64 << SCAN_NODE_BITS).to_string();
        assert_eq!(
            plan_scan(&argv(&format!("SCAN {gone}")), 3),
            Ok(ScanPlan::Done)
        );
        assert_eq!(plan_scan(&argv("SCAN x"), 3), Err(InvalidCursor));
        assert_eq!(plan_scan(&argv("SCAN -1"), 3), Err(InvalidCursor));
        assert_eq!(InvalidCursor.to_string(), "ERR invalid cursor");
    }

    #[test]
    fn scan_cursor_bounds_and_bad_replies() {
        assert_eq!(encode_scan_cursor(0, 0), Ok(0));
        assert_eq!(encode_scan_cursor(3, 5), Ok(3 << 48 | 5));
        assert!(encode_scan_cursor(0, 1 << 48).is_err());
        assert!(encode_scan_cursor(1 << 16, 0).is_err());
        // Clients that read cursors as i64 stay positive for any realistic shard count.
        assert!(encode_scan_cursor(4095, SCAN_NODE_MASK).is_ok_and(|c| c < i64::MAX as u64));
        assert_eq!(decode_scan_cursor(b"281474976710661"), Ok((1, 5)));
        assert_eq!(
            scan_reply(b"-ERR x\r\n", 0, 1),
            Ok(Bytes::from_static(b"-ERR x\r\n"))
        );
        assert!(scan_reply(b"*1\r\n$1\r\n0\r\n", 0, 1).is_err());
        assert!(scan_reply(b"*2\r\n$1\r\nx\r\n*0\r\n", 0, 1).is_err());
        assert!(scan_reply(b"*2\r\n:1\r\n*0\r\n", 0, 1).is_err());
        assert_eq!(
            scan_reply(b"*2\r\n$15\r\n281474976710656\r\n*0\r\n", 0, 1),
            Err(MergeError::CursorTooLarge(1 << 48))
        );
    }
}
