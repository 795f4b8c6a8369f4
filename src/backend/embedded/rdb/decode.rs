//! Reading values in the RDB format, every object type Redis 7.0 can save or load except
//! modules (those answer [`RdbError::Unsupported`]); streams also from Redis 5/6 (type 15)
//! and 7.2 (type 21) payloads. Every
//! length is checked against the bytes that remain, so hostile input fails with an error
//! and never allocates more than the input could describe.

use bytes::Bytes;

use super::compact::{intset_members, listpack_entries, ziplist_entries, zipmap_pairs};
use super::{RdbError, lzf, types};
use crate::backend::embedded::Tunables;
use crate::backend::embedded::hash_cmds::HashValue;
use crate::backend::embedded::list_cmds::ListValue;
use crate::backend::embedded::num::parse_f64;
use crate::backend::embedded::set_cmds::SetValue;
use crate::backend::embedded::stream_cmds::stream::{
    Consumer, Group, INVALID_ENTRIES_READ, LoadedMeta, LoadedNode, Nack, StreamId, StreamValue,
};
use crate::backend::embedded::value::Value;
use crate::backend::embedded::zset_cmds::ZSetValue;

/// LZF expands at most 264 bytes out of 2 input bytes (a long back-reference): any larger
/// announced size is a lie, refused before allocating.
const LZF_MAX_RATIO: usize = 133;

/// A length field: a plain count, or the tag of a special string encoding.
enum Len {
    Plain(u64),
    Encoded(u8),
}

/// A cursor over an RDB byte stream.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
        if n > self.remaining() {
            return Err(RdbError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn byte(&mut self) -> Result<u8, RdbError> {
        Ok(self.take(1)?[0])
    }

    pub fn u32_le(&mut self) -> Result<u32, RdbError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64_le(&mut self) -> Result<u64, RdbError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    fn raw_len(&mut self) -> Result<Len, RdbError> {
        let first = self.byte()?;
        Ok(match first >> 6 {
            0 => Len::Plain((first & 0x3f) as u64),
            1 => Len::Plain((((first & 0x3f) as u64) << 8) | self.byte()? as u64),
            2 => match first {
                0x80 => {
                    let b = self.take(4)?;
                    Len::Plain(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64)
                }
                0x81 => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    Len::Plain(u64::from_be_bytes(a))
                }
                _ => return Err(RdbError::BadFormat),
            },
            _ => Len::Encoded(first & 0x3f),
        })
    }

    /// A length (not a string encoding).
    pub fn length(&mut self) -> Result<u64, RdbError> {
        match self.raw_len()? {
            Len::Plain(n) => Ok(n),
            Len::Encoded(_) => Err(RdbError::BadFormat),
        }
    }

    /// A count of items that take at least `min_item_bytes` each: bounded by what remains.
    fn count(&mut self, min_item_bytes: usize) -> Result<usize, RdbError> {
        let n = self.length()?;
        match usize::try_from(n) {
            Ok(n) if n.saturating_mul(min_item_bytes) <= self.remaining() => Ok(n),
            _ => Err(RdbError::BadFormat),
        }
    }

    /// A string in any of its encodings (raw, int8/16/32, LZF).
    pub fn string(&mut self) -> Result<Bytes, RdbError> {
        match self.raw_len()? {
            Len::Plain(n) => {
                let n = usize::try_from(n).map_err(|_| RdbError::BadFormat)?;
                Ok(Bytes::copy_from_slice(self.take(n)?))
            }
            Len::Encoded(0) => Ok(int_text(self.take(1)?[0] as i8 as i64)),
            Len::Encoded(1) => {
                let b = self.take(2)?;
                Ok(int_text(i16::from_le_bytes([b[0], b[1]]) as i64))
            }
            Len::Encoded(2) => {
                let b = self.take(4)?;
                Ok(int_text(i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64))
            }
            Len::Encoded(3) => {
                let clen = usize::try_from(self.length()?).map_err(|_| RdbError::BadFormat)?;
                let len = usize::try_from(self.length()?).map_err(|_| RdbError::BadFormat)?;
                let compressed = self.take(clen)?;
                if len == 0 || len > clen.saturating_mul(LZF_MAX_RATIO) {
                    return Err(RdbError::BadFormat);
                }
                lzf::decompress(compressed, len)
                    .map(Bytes::from)
                    .ok_or(RdbError::BadFormat)
            }
            Len::Encoded(_) => Err(RdbError::BadFormat),
        }
    }

    /// A score as old ZSET objects store it: a length byte then ASCII (253 nan, 254 inf,
    /// 255 -inf).
    fn text_double(&mut self) -> Result<f64, RdbError> {
        match self.byte()? {
            253 => Ok(f64::NAN),
            254 => Ok(f64::INFINITY),
            255 => Ok(f64::NEG_INFINITY),
            n => {
                let s = self.take(n as usize)?;
                parse_f64(s).ok_or(RdbError::BadFormat)
            }
        }
    }
}

fn int_text(v: i64) -> Bytes {
    let mut b = itoa::Buffer::new();
    Bytes::copy_from_slice(b.format(v).as_bytes())
}

fn pairs_of(entries: Vec<Bytes>) -> Result<Vec<(Bytes, Bytes)>, RdbError> {
    if !entries.len().is_multiple_of(2) {
        return Err(RdbError::BadFormat);
    }
    let mut it = entries.into_iter();
    let mut out = Vec::with_capacity(it.len() / 2);
    while let (Some(a), Some(b)) = (it.next(), it.next()) {
        out.push((a, b));
    }
    Ok(out)
}

fn no_duplicates<'a>(keys: impl Iterator<Item = &'a Bytes>) -> Result<(), RdbError> {
    let mut seen = std::collections::HashSet::new();
    for k in keys {
        if !seen.insert(k) {
            return Err(RdbError::BadFormat);
        }
    }
    Ok(())
}

fn hash_from(pairs: Vec<(Bytes, Bytes)>, t: &Tunables) -> Result<Value, RdbError> {
    if pairs.is_empty() {
        return Err(RdbError::BadFormat);
    }
    no_duplicates(pairs.iter().map(|(f, _)| f))?;
    Ok(Value::Hash(Box::new(HashValue::from_pairs(pairs, t))))
}

fn zset_from(pairs: Vec<(Bytes, f64)>, t: &Tunables) -> Result<Value, RdbError> {
    if pairs.is_empty() || pairs.iter().any(|(_, s)| s.is_nan()) {
        return Err(RdbError::BadFormat);
    }
    no_duplicates(pairs.iter().map(|(m, _)| m))?;
    Ok(Value::ZSet(Box::new(ZSetValue::from_pairs(pairs, t))))
}

fn zset_from_entries(entries: Vec<Bytes>, t: &Tunables) -> Result<Value, RdbError> {
    let pairs = pairs_of(entries)?
        .into_iter()
        .map(|(m, s)| parse_f64(&s).map(|s| (m, s)).ok_or(RdbError::BadFormat))
        .collect::<Result<Vec<_>, _>>()?;
    zset_from(pairs, t)
}

fn set_from(members: Vec<Bytes>, t: &Tunables) -> Result<Value, RdbError> {
    if members.is_empty() {
        return Err(RdbError::BadFormat);
    }
    no_duplicates(members.iter())?;
    Ok(Value::Set(Box::new(SetValue::from_members(members, t))))
}

fn list_from(elements: Vec<Bytes>) -> Result<Value, RdbError> {
    if elements.is_empty() {
        return Err(RdbError::BadFormat);
    }
    Ok(Value::List(Box::new(ListValue::from_elements(elements))))
}

/// Reads one object of RDB type `kind`, converted to our representation with the encoding
/// Redis would pick under `t`.
pub fn read_value(r: &mut Reader, kind: u8, t: &Tunables) -> Result<Value, RdbError> {
    match kind {
        types::STRING => Ok(Value::string(r.string()?)),
        types::LIST => {
            let n = r.count(1)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(r.string()?);
            }
            list_from(items)
        }
        types::LIST_ZIPLIST => list_from(ziplist_entries(&r.string()?).ok_or(RdbError::BadFormat)?),
        types::LIST_QUICKLIST | types::LIST_QUICKLIST_2 => {
            let v2 = kind == types::LIST_QUICKLIST_2;
            let nodes = r.count(1)?;
            let mut items = Vec::new();
            for _ in 0..nodes {
                let container = if v2 { r.length()? } else { 2 };
                let blob = r.string()?;
                match container {
                    1 => items.push(blob),
                    2 => {
                        let entries = if v2 {
                            listpack_entries(&blob)
                        } else {
                            ziplist_entries(&blob)
                        }
                        .ok_or(RdbError::BadFormat)?;
                        // Redis skips empty nodes rather than failing.
                        items.extend(entries);
                    }
                    _ => return Err(RdbError::BadFormat),
                }
            }
            list_from(items)
        }
        types::SET => {
            let n = r.count(1)?;
            let mut members = Vec::with_capacity(n);
            for _ in 0..n {
                members.push(r.string()?);
            }
            set_from(members, t)
        }
        types::SET_INTSET => {
            let ints = intset_members(&r.string()?).ok_or(RdbError::BadFormat)?;
            set_from(ints.into_iter().map(int_text).collect(), t)
        }
        types::ZSET | types::ZSET_2 => {
            let n = r.count(2)?;
            let mut pairs = Vec::with_capacity(n);
            for _ in 0..n {
                let m = r.string()?;
                let score = if kind == types::ZSET_2 {
                    f64::from_bits(r.u64_le()?)
                } else {
                    r.text_double()?
                };
                pairs.push((m, score));
            }
            zset_from(pairs, t)
        }
        types::ZSET_ZIPLIST => {
            zset_from_entries(ziplist_entries(&r.string()?).ok_or(RdbError::BadFormat)?, t)
        }
        types::ZSET_LISTPACK => zset_from_entries(
            listpack_entries(&r.string()?).ok_or(RdbError::BadFormat)?,
            t,
        ),
        types::HASH => {
            let n = r.count(2)?;
            let mut pairs = Vec::with_capacity(n);
            for _ in 0..n {
                let f = r.string()?;
                let v = r.string()?;
                pairs.push((f, v));
            }
            hash_from(pairs, t)
        }
        types::HASH_ZIPMAP => hash_from(zipmap_pairs(&r.string()?).ok_or(RdbError::BadFormat)?, t),
        types::HASH_ZIPLIST => hash_from(
            pairs_of(ziplist_entries(&r.string()?).ok_or(RdbError::BadFormat)?)?,
            t,
        ),
        types::HASH_LISTPACK => hash_from(
            pairs_of(listpack_entries(&r.string()?).ok_or(RdbError::BadFormat)?)?,
            t,
        ),
        types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 | types::STREAM_LISTPACKS_3 => {
            read_stream(r, kind).map(|s| Value::Stream(Box::new(s)))
        }
        // Modules and Redis 7.2's set listpacks have no representation here.
        types::MODULE_2 | types::SET_LISTPACK => Err(RdbError::Unsupported(kind)),
        _ => Err(RdbError::BadFormat),
    }
}

/// An ID stored raw (16 bytes, big-endian ms then seq), as rax keys and PELs hold it.
fn raw_id(b: &[u8]) -> Result<StreamId, RdbError> {
    if b.len() != 16 {
        return Err(RdbError::BadFormat);
    }
    let (mut ms, mut seq) = ([0u8; 8], [0u8; 8]);
    ms.copy_from_slice(&b[..8]);
    seq.copy_from_slice(&b[8..]);
    Ok(StreamId::new(
        u64::from_be_bytes(ms),
        u64::from_be_bytes(seq),
    ))
}

fn id_pair(r: &mut Reader) -> Result<StreamId, RdbError> {
    Ok(StreamId::new(r.length()?, r.length()?))
}

/// An integer element of a stream listpack.
fn lp_int(items: &[Bytes], at: usize) -> Result<i64, RdbError> {
    items
        .get(at)
        .and_then(|b| crate::backend::embedded::num::parse_i64(b))
        .ok_or(RdbError::BadFormat)
}

/// A count element of a stream listpack (non-negative, within the listpack).
fn lp_count(items: &[Bytes], at: usize) -> Result<usize, RdbError> {
    usize::try_from(lp_int(items, at)?)
        .ok()
        .filter(|n| *n <= items.len())
        .ok_or(RdbError::BadFormat)
}

/// One node's listpack (t_stream.c's layout: master entry, then flagged entries with ID
/// deltas from `master`), every count and element checked.
fn read_stream_node(master: StreamId, blob: &[u8]) -> Result<LoadedNode, RdbError> {
    const DELETED: i64 = 1;
    const SAMEFIELDS: i64 = 2;
    let e = listpack_entries(blob).ok_or(RdbError::BadFormat)?;
    let live = lp_count(&e, 0)?;
    let dead = lp_count(&e, 1)?;
    let nf = lp_count(&e, 2)?;
    let master_fields: Vec<Bytes> = e.get(3..3 + nf).ok_or(RdbError::BadFormat)?.to_vec();
    if lp_int(&e, 3 + nf)? != 0 {
        return Err(RdbError::BadFormat);
    }
    let mut i = 4 + nf;
    let mut items = Vec::new();
    while i < e.len() {
        let flags = lp_int(&e, i)?;
        let ms = master.ms.wrapping_add(lp_int(&e, i + 1)? as u64);
        let seq = master.seq.wrapping_add(lp_int(&e, i + 2)? as u64);
        i += 3;
        let (fields, elements) = if flags & SAMEFIELDS != 0 {
            let values = e.get(i..i + nf).ok_or(RdbError::BadFormat)?;
            i += nf;
            let fields = master_fields
                .iter()
                .zip(values)
                .flat_map(|(f, v)| [f.clone(), v.clone()])
                .collect::<Vec<_>>();
            (fields, nf + 3)
        } else {
            let n = lp_count(&e, i)?;
            i += 1;
            let fields = e.get(i..i + 2 * n).ok_or(RdbError::BadFormat)?.to_vec();
            i += 2 * n;
            (fields, 2 * n + 4)
        };
        if lp_count(&e, i)? != elements {
            return Err(RdbError::BadFormat);
        }
        i += 1;
        items.push((StreamId::new(ms, seq), fields, flags & DELETED != 0));
    }
    let dead_found = items.iter().filter(|x| x.2).count();
    if dead_found != dead || items.len() - dead_found != live {
        return Err(RdbError::BadFormat);
    }
    Ok(LoadedNode {
        master,
        master_fields,
        items,
        bytes: blob.len(),
    })
}

/// A stream object: types 15 (Redis 5/6), 19 (7.0) and 21 (7.2, consumers also carry an
/// active time, not kept here).
fn read_stream(r: &mut Reader, kind: u8) -> Result<StreamValue, RdbError> {
    let v2 = kind >= types::STREAM_LISTPACKS_2;
    let v3 = kind >= types::STREAM_LISTPACKS_3;
    let n_nodes = r.count(2)?;
    let mut nodes = Vec::with_capacity(n_nodes);
    for _ in 0..n_nodes {
        let key = r.string()?;
        if key.len() != 16 {
            return Err(RdbError::BadFormat);
        }
        let blob = r.string()?;
        nodes.push(read_stream_node(raw_id(&key)?, &blob)?);
    }
    let length = r.length()?;
    let live: usize = nodes
        .iter()
        .map(|n| n.items.iter().filter(|x| !x.2).count())
        .sum();
    if live as u64 != length {
        return Err(RdbError::BadFormat);
    }
    let last_id = id_pair(r)?;
    let meta = if v2 {
        let first_id = id_pair(r)?;
        let max_deleted_id = id_pair(r)?;
        LoadedMeta {
            last_id,
            first_id,
            max_deleted_id,
            entries_added: r.length()?,
        }
    } else {
        // Older payloads lack these: Redis 7.0 derives them the same way on load.
        let first_id = nodes
            .iter()
            .flat_map(|n| n.items.iter())
            .find(|x| !x.2)
            .map(|x| x.0)
            .unwrap_or(StreamId::ZERO);
        LoadedMeta {
            last_id,
            first_id,
            max_deleted_id: StreamId::ZERO,
            entries_added: length,
        }
    };
    let n_groups = r.count(1)?;
    let mut groups = Vec::with_capacity(n_groups);
    for _ in 0..n_groups {
        let name = r.string()?;
        let last = id_pair(r)?;
        let entries_read = if v2 {
            r.length()? as i64
        } else {
            INVALID_ENTRIES_READ
        };
        // The group PEL holds delivery times and counts; consumers then claim its IDs.
        let n_pel = r.count(16 + 8 + 1)?;
        let mut unowned = std::collections::BTreeMap::new();
        for _ in 0..n_pel {
            let id = raw_id(r.take(16)?)?;
            let time = r.u64_le()?;
            let count = r.length()?;
            if unowned.insert(id, (time, count)).is_some() {
                return Err(RdbError::BadFormat);
            }
        }
        let mut g = Group {
            last_id: last,
            entries_read,
            pel: std::collections::BTreeMap::new(),
            consumers: std::collections::BTreeMap::new(),
        };
        let n_consumers = r.count(1 + 8 + 1)?;
        for _ in 0..n_consumers {
            let cname = r.string()?;
            let seen_time = r.u64_le()?;
            if v3 {
                r.u64_le()?;
            }
            let n_own = r.count(16)?;
            let mut own = std::collections::BTreeSet::new();
            for _ in 0..n_own {
                let id = raw_id(r.take(16)?)?;
                let (delivery_time, delivery_count) =
                    unowned.remove(&id).ok_or(RdbError::BadFormat)?;
                g.pel.insert(
                    id,
                    Nack {
                        consumer: cname.clone(),
                        delivery_time,
                        delivery_count,
                    },
                );
                own.insert(id);
            }
            let consumer = Consumer {
                seen_time,
                pel: own,
            };
            if g.consumers.insert(cname, consumer).is_some() {
                return Err(RdbError::BadFormat);
            }
        }
        // A pending entry nobody owns cannot be represented (Redis's deep check refuses it).
        if !unowned.is_empty() {
            return Err(RdbError::BadFormat);
        }
        if groups.iter().any(|(n, _): &(Bytes, Group)| *n == name) {
            return Err(RdbError::BadFormat);
        }
        groups.push((name, g));
    }
    let mut s = StreamValue::from_rdb(nodes, meta, groups).ok_or(RdbError::BadFormat)?;
    if !v2 {
        // Redis 7.0 estimates a group's entries_read for payloads that predate it.
        let names: Vec<Bytes> = s.groups().keys().cloned().collect();
        for name in names {
            let last = s.group(&name).map(|g| g.last_id).unwrap_or_default();
            let estimate = s.estimate_distance(last);
            if let Some(g) = s.group_mut(&name) {
                g.entries_read = estimate;
            }
        }
    }
    Ok(s)
}
