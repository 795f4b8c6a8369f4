//! Writing values in the RDB format of Redis 7.0 (RDB version 10), choosing the same
//! object types and string encodings Redis 7.0's rdbSaveObject does, so that DUMP output is
//! byte-identical to Redis's wherever our in-memory order matches Redis's.

use super::compact::{ListpackWriter, intset_blob};
use super::{lzf, types};
use crate::backend::embedded::Tunables;
use crate::backend::embedded::list_cmds::ListValue;
use crate::backend::embedded::num::parse_i64;
use crate::backend::embedded::stream_cmds::stream::{NodeDump, StreamId, StreamValue};
use crate::backend::embedded::value::Value;
use crate::protocol::reply::format_g17;

/// Redis's RDB length encoding: 6-bit, 14-bit, 32-bit or 64-bit (big-endian) lengths.
pub fn write_len(buf: &mut Vec<u8>, len: u64) {
    if len < (1 << 6) {
        buf.push(len as u8);
    } else if len < (1 << 14) {
        buf.push(0x40 | (len >> 8) as u8);
        buf.push(len as u8);
    } else if len <= u32::MAX as u64 {
        buf.push(0x80);
        buf.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        buf.push(0x81);
        buf.extend_from_slice(&len.to_be_bytes());
    }
}

/// A string as rdbSaveRawString writes it: as an 8/16/32-bit integer when it is the
/// canonical text of one, LZF-compressed when longer than 20 bytes and compression saves at
/// least 4 bytes, raw otherwise.
pub fn write_string(buf: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11
        && let Some(v) = parse_i64(s)
    {
        if let Ok(v) = i8::try_from(v) {
            buf.push(0xc0);
            buf.push(v as u8);
            return;
        }
        if let Ok(v) = i16::try_from(v) {
            buf.push(0xc1);
            buf.extend_from_slice(&v.to_le_bytes());
            return;
        }
        if let Ok(v) = i32::try_from(v) {
            buf.push(0xc2);
            buf.extend_from_slice(&v.to_le_bytes());
            return;
        }
    }
    if s.len() > 20
        && let Some(c) = lzf::compress(s, s.len() - 4)
    {
        buf.push(0xc3);
        write_len(buf, c.len() as u64);
        write_len(buf, s.len() as u64);
        buf.extend_from_slice(&c);
        return;
    }
    write_len(buf, s.len() as u64);
    buf.extend_from_slice(s);
}

/// Appends the object type byte and the object, as rdbSaveObjectType + rdbSaveObject.
pub fn write_typed_value(buf: &mut Vec<u8>, value: &Value, t: &Tunables) {
    match value {
        Value::Stream(st) => {
            buf.push(types::STREAM_LISTPACKS_2);
            write_stream(buf, st, types::STREAM_LISTPACKS_2);
        }
        Value::Str { data, .. } => {
            buf.push(types::STRING);
            write_string(buf, data);
        }
        Value::List(l) => {
            buf.push(types::LIST_QUICKLIST_2);
            write_quicklist(buf, l, t);
        }
        Value::Set(s) => {
            if s.encoding_name() == "intset" {
                let mut ints: Vec<i64> = s.members().filter_map(|m| parse_i64(&m)).collect();
                ints.sort_unstable();
                buf.push(types::SET_INTSET);
                write_string(buf, &intset_blob(&ints));
            } else {
                buf.push(types::SET);
                write_len(buf, s.len() as u64);
                for m in s.members() {
                    write_string(buf, &m);
                }
            }
        }
        Value::ZSet(z) => {
            if z.is_skiplist() {
                buf.push(types::ZSET_2);
                write_len(buf, z.len() as u64);
                // Redis saves from the greatest score down so loading inserts at the head.
                let mut pairs: Vec<_> = z.iter().collect();
                pairs.reverse();
                for (m, score) in pairs {
                    write_string(buf, m);
                    buf.extend_from_slice(&score.to_le_bytes());
                }
            } else {
                let mut lp = ListpackWriter::new();
                for (m, score) in z.iter() {
                    lp.push(m);
                    lp.push(listpack_score(score).as_bytes());
                }
                buf.push(types::ZSET_LISTPACK);
                write_string(buf, &lp.finish());
            }
        }
        Value::Hash(h) => {
            if h.is_listpack() {
                let mut lp = ListpackWriter::new();
                for (f, v) in h.iter() {
                    lp.push(f);
                    lp.push(v);
                }
                buf.push(types::HASH_LISTPACK);
                write_string(buf, &lp.finish());
            } else {
                buf.push(types::HASH);
                write_len(buf, h.len() as u64);
                for (f, v) in h.iter() {
                    write_string(buf, f);
                    write_string(buf, v);
                }
            }
        }
    }
}

/// A stream ID as Redis's rax keys and PELs store it: ms then seq, both big-endian, so
/// byte order is ID order.
fn raw_id(id: StreamId) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&id.ms.to_be_bytes());
    key[8..].copy_from_slice(&id.seq.to_be_bytes());
    key
}

/// A stream as Redis 7.0 saves it (RDB_TYPE_STREAM_LISTPACKS_2): each listpack node keyed
/// by its master ID, the counters, then the consumer groups with their PELs and consumers.
/// `kind` STREAM_LISTPACKS writes Redis 5/6's layout instead (tests of the loader).
pub(super) fn write_stream(buf: &mut Vec<u8>, s: &StreamValue, kind: u8) {
    let v2 = kind >= types::STREAM_LISTPACKS_2;
    let nodes = s.node_dumps();
    write_len(buf, nodes.len() as u64);
    for node in &nodes {
        write_string(buf, &raw_id(node.master));
        write_string(buf, &stream_node_listpack(node));
    }
    write_len(buf, s.len() as u64);
    let ids: &[StreamId] = if v2 {
        &[s.last_id, s.first_id, s.max_deleted_id]
    } else {
        &[s.last_id]
    };
    for id in ids {
        write_len(buf, id.ms);
        write_len(buf, id.seq);
    }
    if v2 {
        write_len(buf, s.entries_added);
    }
    write_len(buf, s.groups().len() as u64);
    for (name, g) in s.groups() {
        write_string(buf, name);
        write_len(buf, g.last_id.ms);
        write_len(buf, g.last_id.seq);
        // -1 (unknown) is saved as the 64-bit length it casts to, as Redis does.
        if v2 {
            write_len(buf, g.entries_read as u64);
        }
        write_len(buf, g.pel.len() as u64);
        for (id, nack) in &g.pel {
            buf.extend_from_slice(&raw_id(*id));
            buf.extend_from_slice(&nack.delivery_time.to_le_bytes());
            write_len(buf, nack.delivery_count);
        }
        write_len(buf, g.consumers.len() as u64);
        for (cname, c) in &g.consumers {
            write_string(buf, cname);
            buf.extend_from_slice(&c.seen_time.to_le_bytes());
            write_len(buf, c.pel.len() as u64);
            for id in &c.pel {
                buf.extend_from_slice(&raw_id(*id));
            }
        }
    }
}

/// One node's listpack in t_stream.c's layout: the master entry (live count, deleted
/// count, master fields, 0), then per entry its flags, ID deltas from the master ID, the
/// values (only, when its fields are the master's) or the field count and pairs, and the
/// entry's element count so the listpack can be walked backwards.
fn stream_node_listpack(node: &NodeDump) -> Vec<u8> {
    const DELETED: i64 = 1;
    const SAMEFIELDS: i64 = 2;
    let mf = node.master_fields;
    let dead = node.items.iter().filter(|i| i.2).count();
    let mut lp = ListpackWriter::new();
    lp.push_int((node.items.len() - dead) as i64);
    lp.push_int(dead as i64);
    lp.push_int(mf.len() as i64);
    for f in mf {
        lp.push(f);
    }
    lp.push_int(0);
    for (id, fields, deleted) in &node.items {
        let pairs = (fields.len() / 2) as i64;
        let same = fields.len() == mf.len() * 2
            && fields.iter().step_by(2).zip(mf.iter()).all(|(a, b)| a == b);
        let mut flags = if same { SAMEFIELDS } else { 0 };
        if *deleted {
            flags |= DELETED;
        }
        lp.push_int(flags);
        lp.push_int(id.ms.wrapping_sub(node.master.ms) as i64);
        lp.push_int(id.seq.wrapping_sub(node.master.seq) as i64);
        if same {
            for v in fields.iter().skip(1).step_by(2) {
                lp.push(v);
            }
            lp.push_int(pairs + 3);
        } else {
            lp.push_int(pairs);
            for f in fields.iter() {
                lp.push(f);
            }
            lp.push_int(2 * pairs + 4);
        }
    }
    lp.finish()
}

/// A score as a listpack sorted set holds it (Redis's d2string): integers within ±2^52 in
/// plain decimal, everything else `%.17g`.
fn listpack_score(score: f64) -> String {
    if score.is_nan() {
        "nan".into()
    } else if score.is_infinite() {
        if score > 0.0 { "inf" } else { "-inf" }.into()
    } else if score == 0.0 {
        if score.is_sign_negative() { "-0" } else { "0" }.into()
    } else if score > -4_503_599_627_370_495.0
        && score < 4_503_599_627_370_496.0
        && score == (score as i64) as f64
    {
        (score as i64).to_string()
    } else {
        format_g17(score)
    }
}

/// Elements of at least this size get a node of their own (Redis's packed_threshold).
const PLAIN_THRESHOLD: usize = 1 << 30;
/// Byte limits for negative list-max-listpack-size values -1..-5.
const NODE_SIZE_LIMITS: [usize; 5] = [4096, 8192, 16384, 32768, 65536];
/// Above this a node only grows if its entry-count limit (positive fill) allows.
const SIZE_SAFETY_LIMIT: usize = 8192;

/// Redis overestimates what one more entry costs a listpack node by this much.
const SIZE_ESTIMATE_OVERHEAD: usize = 8;

/// Would Redis 7.0's quicklist append an element of `len` bytes to a node of
/// `node_bytes`/`node_count` (`_quicklistNodeAllowInsert`)? Negative fills limit the node's
/// bytes; positive ones its entries (and bytes to the safety limit).
fn node_allows(node_bytes: usize, node_count: usize, len: usize, fill: i64) -> bool {
    let new_size = node_bytes + len + SIZE_ESTIMATE_OVERHEAD;
    if fill < 0 {
        let level = usize::try_from(-(fill + 1)).unwrap_or(usize::MAX);
        let limit = NODE_SIZE_LIMITS[level.min(NODE_SIZE_LIMITS.len() - 1)];
        return new_size <= limit;
    }
    new_size <= SIZE_SAFETY_LIMIT && i64::try_from(node_count + 1).is_ok_and(|c| c <= fill)
}

/// A list as QUICKLIST_2: the nodes Redis builds appending the elements one by one
/// (PACKED listpack nodes, PLAIN nodes for huge elements).
fn write_quicklist(buf: &mut Vec<u8>, l: &ListValue, t: &Tunables) {
    const PLAIN: u64 = 1;
    const PACKED: u64 = 2;
    let mut nodes: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut current: Option<ListpackWriter> = None;
    for e in l.iter() {
        if e.len() >= PLAIN_THRESHOLD {
            if let Some(lp) = current.take() {
                nodes.push((PACKED, lp.finish()));
            }
            nodes.push((PLAIN, e.to_vec()));
            continue;
        }
        let fits = current.as_ref().is_some_and(|lp| {
            node_allows(
                lp.total_bytes(),
                lp.count(),
                e.len(),
                t.list_max_listpack_size,
            )
        });
        if !fits && let Some(lp) = current.take() {
            nodes.push((PACKED, lp.finish()));
        }
        current.get_or_insert_with(ListpackWriter::new).push(e);
    }
    if let Some(lp) = current {
        nodes.push((PACKED, lp.finish()));
    }
    write_len(buf, nodes.len() as u64);
    for (container, blob) in nodes {
        write_len(buf, container);
        write_string(buf, &blob);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn string_bytes(s: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        write_string(&mut b, s);
        b
    }

    #[test]
    fn length_encodings() {
        for (len, want) in [
            (0u64, vec![0u8]),
            (63, vec![63]),
            (64, vec![0x40, 64]),
            (16383, vec![0x7f, 0xff]),
            (16384, vec![0x80, 0, 0, 0x40, 0]),
            (1 << 32, vec![0x81, 0, 0, 0, 1, 0, 0, 0, 0]),
        ] {
            let mut b = Vec::new();
            write_len(&mut b, len);
            assert_eq!(b, want, "{len}");
        }
    }

    #[test]
    fn strings_pick_integer_encodings() {
        assert_eq!(string_bytes(b"12"), vec![0xc0, 12]);
        assert_eq!(string_bytes(b"-129"), vec![0xc1, 0x7f, 0xff]);
        assert_eq!(string_bytes(b"100000"), vec![0xc2, 0xa0, 0x86, 1, 0]);
        // Outside int32, or not canonical: a plain string.
        assert_eq!(string_bytes(b"4294967296")[0], 10);
        assert_eq!(string_bytes(b"012"), vec![3, b'0', b'1', b'2']);
    }

    #[test]
    fn long_repetitive_strings_are_compressed() {
        let s = vec![b'a'; 100];
        let b = string_bytes(&s);
        assert_eq!(b[0], 0xc3);
        assert!(b.len() < 20);
        // Short or incompressible strings are not.
        assert_eq!(string_bytes(&[b'a'; 20])[0], 20);
    }

    #[test]
    fn listpack_scores_format_like_d2string() {
        assert_eq!(listpack_score(1.0), "1");
        assert_eq!(listpack_score(-0.0), "-0");
        assert_eq!(listpack_score(1.5), "1.5");
        assert_eq!(listpack_score(f64::INFINITY), "inf");
        assert_eq!(listpack_score(1e20), "1e+20");
    }

    #[test]
    fn quicklist_nodes_split_at_the_size_limit() {
        // fill -2: 8 KiB nodes; Redis 7.0 puts 681 ten-byte elements (8179 bytes) in one.
        assert!(node_allows(8167, 680, 10, -2));
        assert!(!node_allows(8179, 681, 10, -2));
        assert!(node_allows(60000, 1, 10, -9));
        // Positive fill: entry counts.
        assert!(node_allows(100, 4, 1, 5));
        assert!(!node_allows(100, 5, 1, 5));
    }
}
