//! Reading values in the RDB format, every object type Redis 7.0 can save or load except
//! streams and modules (those answer [`RdbError::Unsupported`] until they exist here). Every
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
        // Streams (and modules, and Redis 7.2's set listpacks) have no representation here
        // yet; a stream decoder slots in as one more arm.
        types::STREAM_LISTPACKS
        | types::STREAM_LISTPACKS_2
        | types::STREAM_LISTPACKS_3
        | types::MODULE_2
        | types::SET_LISTPACK => Err(RdbError::Unsupported(kind)),
        _ => Err(RdbError::BadFormat),
    }
}
