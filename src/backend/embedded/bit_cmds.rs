//! Bitmap commands on string values (Redis's bitops.c): SETBIT, GETBIT, BITCOUNT, BITPOS,
//! BITOP, BITFIELD and BITFIELD_RO. Bits are numbered from the most significant bit of the
//! first byte, as in Redis.

use bytes::{Bytes, BytesMut};

use super::Ctx;
use super::num::parse_i64;
use super::value::Value;
use crate::protocol::Reply;
use crate::protocol::errors;

const BIT_OFFSET_ERR: &str = "ERR bit offset is not an integer or out of range";
const BIT_VALUE_ERR: &str = "ERR bit is not an integer or out of range";
const BITPOS_BIT_ERR: &str = "ERR The bit argument must be 1 or 0.";
const BITOP_NOT_ERR: &str = "ERR BITOP NOT must be called with a single source key.";
const BITFIELD_TYPE_ERR: &str = "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";
const BITFIELD_OVERFLOW_ERR: &str = "ERR Invalid OVERFLOW type specified";
const BITFIELD_RO_ERR: &str = "ERR BITFIELD_RO only supports the GET subcommand";

/// proto-max-bulk-len: a bitmap may not grow past 512 MiB.
const MAX_BITMAP_BYTES: u64 = 512 * 1024 * 1024;

pub(super) fn register(t: &mut crate::backend::embedded::Handlers) {
    t.insert("setbit", setbit);
    t.insert("getbit", getbit);
    t.insert("bitcount", bitcount);
    t.insert("bitpos", bitpos);
    t.insert("bitop", bitop);
    t.insert("bitfield", bitfield);
    t.insert("bitfield_ro", bitfield_ro);
}

fn done(r: Result<Reply, Reply>) -> Reply {
    r.unwrap_or_else(|e| e)
}

fn wrongtype() -> Reply {
    Reply::err(errors::WRONGTYPE)
}

fn not_integer() -> Reply {
    Reply::err(errors::NOT_INTEGER)
}

/// The argument as C's strcasecmp sees it (up to the first NUL).
fn opt_is(arg: &[u8], name: &str) -> bool {
    let end = arg.iter().position(|&c| c == 0).unwrap_or(arg.len());
    arg[..end].eq_ignore_ascii_case(name.as_bytes())
}

/// getBitOffsetFromArgument: a bit offset, or with `#` (BITFIELD only) a multiple of the
/// field width; the byte holding it must stay under 512 MiB.
fn parse_bit_offset(arg: &[u8], hash_bits: Option<u32>) -> Result<u64, Reply> {
    let err = || Reply::err(BIT_OFFSET_ERR);
    let (digits, mul) = match (arg.first(), hash_bits) {
        (Some(b'#'), Some(bits)) => (&arg[1..], bits as i64),
        _ => (arg, 1),
    };
    let off = parse_i64(digits)
        .ok_or_else(err)?
        .checked_mul(mul)
        .ok_or_else(err)?;
    if off < 0 || (off as u64 >> 3) >= MAX_BITMAP_BYTES {
        return Err(err());
    }
    Ok(off as u64)
}

/// Reads a string for a read-only bit command: Ok(None) if absent.
fn read_string(ctx: &mut Ctx, key: &Bytes) -> Result<Option<Bytes>, Reply> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => e.value.as_str().cloned().map(Some).ok_or_else(wrongtype),
    }
}

/// lookupStringForBitCommand + an in-place edit: the string at `key` (created if absent),
/// zero-padded to at least `min_len` bytes, is handed to `edit`; the result is stored
/// `raw` keeping the TTL. The buffer is reused when the keyspace holds its only reference.
/// Also returns whether the key was created or grown.
fn edit_string<R>(
    ctx: &mut Ctx,
    key: &Bytes,
    min_len: usize,
    edit: impl FnOnce(&mut BytesMut) -> R,
) -> Result<(R, bool), Reply> {
    let now = ctx.now_ms;
    match ctx.lookup(key) {
        None => {
            let mut m = BytesMut::zeroed(min_len);
            let r = edit(&mut m);
            ctx.db().set(key, Value::raw_string(m.freeze()), None, now);
            Ok((r, true))
        }
        Some(e) => {
            let data = e.value.as_str().ok_or_else(wrongtype)?.clone();
            // Drop the entry's reference first so the buffer can be unique.
            e.value = Value::raw_string(Bytes::new());
            let mut m = match data.try_into_mut() {
                Ok(m) => m,
                Err(b) => BytesMut::from(&b[..]),
            };
            let grown = m.len() < min_len;
            if grown {
                // sdsMakeRoomFor-like spare room, so SETBITs walking forward through a
                // growing bitmap do not reallocate every time.
                if m.capacity() < min_len {
                    let room = if min_len < 1024 * 1024 {
                        min_len
                    } else {
                        1024 * 1024
                    };
                    m.reserve(min_len + room - m.len());
                }
                m.resize(min_len, 0);
            }
            let r = edit(&mut m);
            e.value = Value::raw_string(m.freeze());
            e.touch(now);
            Ok((r, grown))
        }
    }
}

fn get_bit(data: &[u8], bit: u64) -> bool {
    data.get((bit >> 3) as usize)
        .is_some_and(|b| b & (0x80 >> (bit & 7)) != 0)
}

fn put_bit(data: &mut [u8], bit: u64, on: bool) {
    if let Some(b) = data.get_mut((bit >> 3) as usize) {
        let mask = 0x80u8 >> (bit & 7);
        if on {
            *b |= mask;
        } else {
            *b &= !mask;
        }
    }
}

/// SETBIT key offset 0|1: returns the previous bit.
fn setbit(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() != 4 {
            return Err(Reply::err(errors::wrong_arity("setbit")));
        }
        let offset = parse_bit_offset(&argv[2], None)?;
        let on = match parse_i64(&argv[3]) {
            Some(0) => false,
            Some(1) => true,
            _ => return Err(Reply::err(BIT_VALUE_ERR)),
        };
        let (old, grown) = edit_string(ctx, &argv[1], (offset >> 3) as usize + 1, |m| {
            let old = get_bit(m, offset);
            put_bit(m, offset, on);
            old
        })?;
        // Redis 7.0 signals a modification only if the string was created, grew or the
        // bit flipped (WATCH sees nothing otherwise).
        if grown || old != on {
            ctx.dirty(1);
        }
        Ok(Reply::Integer(old as i64))
    })())
}

/// GETBIT key offset: bits past the end read as 0.
fn getbit(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() != 3 {
            return Err(Reply::err(errors::wrong_arity("getbit")));
        }
        let offset = parse_bit_offset(&argv[2], None)?;
        let data = read_string(ctx, &argv[1])?.unwrap_or_default();
        Ok(Reply::Integer(get_bit(&data, offset) as i64))
    })())
}

/// Parses an optional BYTE|BIT unit: true for BIT.
fn parse_unit(arg: Option<&Bytes>) -> Result<bool, Reply> {
    match arg {
        None => Ok(false),
        Some(a) if opt_is(a, "bit") => Ok(true),
        Some(a) if opt_is(a, "byte") => Ok(false),
        Some(_) => Err(Reply::err(errors::SYNTAX)),
    }
}

/// Normalizes a start..=end range the way bitops.c does (negative from the end, clamped to
/// `[0, total-1]`); returns it in bits, or None when it is empty.
fn bit_range(start: i64, end: i64, len_bytes: usize, in_bits: bool) -> Option<(u64, u64)> {
    let total = if in_bits {
        len_bytes as i64 * 8
    } else {
        len_bytes as i64
    };
    let (mut s, mut e) = (start, end);
    if s < 0 {
        s = s.saturating_add(total);
    }
    if e < 0 {
        e = e.saturating_add(total);
    }
    s = s.max(0);
    e = e.max(0);
    if e >= total {
        e = total - 1;
    }
    if s > e {
        return None;
    }
    if in_bits {
        Some((s as u64, e as u64))
    } else {
        Some((s as u64 * 8, e as u64 * 8 + 7))
    }
}

/// Counts the set bits of `data` in the inclusive bit range.
fn count_bits(data: &[u8], first: u64, last: u64) -> u64 {
    let (fb, lb) = ((first >> 3) as usize, (last >> 3) as usize);
    let Some(bytes) = data.get(fb..=lb) else {
        return 0;
    };
    let mut n: u64 = bytes.iter().map(|b| b.count_ones() as u64).sum();
    // Take back the bits of the edge bytes outside the range.
    let head_mask = !(0xFFu8 >> (first & 7));
    let tail_mask = 0xFFu8.checked_shr((last & 7) as u32 + 1).unwrap_or(0);
    n -= (bytes[0] & head_mask).count_ones() as u64;
    n -= (bytes[bytes.len() - 1] & tail_mask).count_ones() as u64;
    n
}

/// BITCOUNT key [start end [BYTE|BIT]]
fn bitcount(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        // Redis 7.0 looks the key up before parsing the range: a missing key is 0 even
        // with a malformed range.
        let Some(data) = read_string(ctx, &argv[1])? else {
            return Ok(Reply::Integer(0));
        };
        let range = match argv.len() {
            2 => None,
            4 | 5 => {
                let s = parse_i64(&argv[2]).ok_or_else(not_integer)?;
                let e = parse_i64(&argv[3]).ok_or_else(not_integer)?;
                Some((s, e, parse_unit(argv.get(4))?))
            }
            _ => return Err(Reply::err(errors::SYNTAX)),
        };
        let bits = match range {
            None if data.is_empty() => None,
            None => Some((0, data.len() as u64 * 8 - 1)),
            Some((s, e, _)) if s < 0 && e < 0 && s > e => None,
            Some((s, e, in_bits)) => bit_range(s, e, data.len(), in_bits),
        };
        Ok(Reply::Integer(match bits {
            Some((f, l)) => count_bits(&data, f, l) as i64,
            None => 0,
        }))
    })())
}

/// First bit equal to `bit` in the inclusive bit range.
fn find_bit(data: &[u8], bit: bool, first: u64, last: u64) -> Option<u64> {
    let mut pos = first;
    while pos <= last {
        let byte = *data.get((pos >> 3) as usize)?;
        // Skip whole bytes that cannot match.
        if pos & 7 == 0 && last - pos >= 7 && byte == if bit { 0 } else { 0xFF } {
            pos += 8;
            continue;
        }
        if get_bit(data, pos) == bit {
            return Some(pos);
        }
        pos += 1;
    }
    None
}

/// BITPOS key bit [start [end [BYTE|BIT]]]: a missing key is all zeros; looking for a
/// clear bit without an explicit end finds the first bit past the string.
fn bitpos(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() < 3 {
            return Err(Reply::err(errors::wrong_arity("bitpos")));
        }
        let bit = match parse_i64(&argv[2]).ok_or_else(not_integer)? {
            0 => false,
            1 => true,
            _ => return Err(Reply::err(BITPOS_BIT_ERR)),
        };
        let Some(data) = read_string(ctx, &argv[1])? else {
            return Ok(Reply::Integer(if bit { -1 } else { 0 }));
        };
        let (start, end, end_given, in_bits) = match argv.len() {
            3 => (0, -1, false, false),
            4..=6 => {
                let s = parse_i64(&argv[3]).ok_or_else(not_integer)?;
                let in_bits = parse_unit(argv.get(5))?;
                let e = match argv.get(4) {
                    Some(a) => parse_i64(a).ok_or_else(not_integer)?,
                    None => -1,
                };
                (s, e, argv.len() >= 5, in_bits)
            }
            _ => return Err(Reply::err(errors::SYNTAX)),
        };
        let Some((first, last)) = bit_range(start, end, data.len(), in_bits) else {
            return Ok(Reply::Integer(-1));
        };
        Ok(Reply::Integer(match find_bit(&data, bit, first, last) {
            Some(p) => p as i64,
            None if !bit && !end_given => last as i64 + 1,
            None => -1,
        }))
    })())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// BITOP AND|OR|XOR|NOT dest key...: missing keys are empty strings (zero-padded); the
/// destination is deleted when the result is empty. Replies the result length.
fn bitop(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done((|| {
        if argv.len() < 4 {
            return Err(Reply::err(errors::wrong_arity("bitop")));
        }
        let op = match &argv[1] {
            a if opt_is(a, "and") => BitOp::And,
            a if opt_is(a, "or") => BitOp::Or,
            a if opt_is(a, "xor") => BitOp::Xor,
            a if opt_is(a, "not") => BitOp::Not,
            _ => return Err(Reply::err(errors::SYNTAX)),
        };
        if op == BitOp::Not && argv.len() != 4 {
            return Err(Reply::err(BITOP_NOT_ERR));
        }
        let mut srcs = Vec::with_capacity(argv.len() - 3);
        for key in &argv[3..] {
            srcs.push(read_string(ctx, key)?.unwrap_or_default());
        }
        let maxlen = srcs.iter().map(|s| s.len()).max().unwrap_or(0);
        let dest = &argv[2];
        if maxlen == 0 {
            if ctx.db().remove(dest).is_some() {
                ctx.dirty(1);
            }
            return Ok(Reply::Integer(0));
        }
        let byte_at = |s: &Bytes, i: usize| s.get(i).copied().unwrap_or(0);
        let mut out = BytesMut::zeroed(maxlen);
        for (i, o) in out.iter_mut().enumerate() {
            let mut acc = byte_at(&srcs[0], i);
            if op == BitOp::Not {
                acc = !acc;
            }
            for s in &srcs[1..] {
                let b = byte_at(s, i);
                match op {
                    BitOp::And => acc &= b,
                    BitOp::Or => acc |= b,
                    BitOp::Xor => acc ^= b,
                    BitOp::Not => {}
                }
            }
            *o = acc;
        }
        let now = ctx.now_ms;
        // setKey without KEEPTTL: the destination loses any TTL.
        ctx.db()
            .set(dest, Value::raw_string(out.freeze()), None, now);
        ctx.dirty(1);
        Ok(Reply::Integer(maxlen as i64))
    })())
}

// ---------------------------------------------------------------------------------------
// BITFIELD
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FieldOp {
    Get,
    Set(i64),
    IncrBy(i64),
}

#[derive(Clone, Copy, Debug)]
struct Field {
    op: FieldOp,
    signed: bool,
    bits: u32,
    offset: u64,
    overflow: Overflow,
}

/// getBitfieldTypeFromArgument: `i1`..`i64` or `u1`..`u63` (lowercase only, as Redis).
fn parse_field_type(arg: &[u8]) -> Result<(bool, u32), Reply> {
    let err = || Reply::err(BITFIELD_TYPE_ERR);
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(err()),
    };
    let bits = parse_i64(&arg[1..]).ok_or_else(err)?;
    let max = if signed { 64 } else { 63 };
    if !(1..=max).contains(&bits) {
        return Err(err());
    }
    Ok((signed, bits as u32))
}

/// Reads `bits` bits (MSB first) starting at bit `offset`; bits past the end are 0.
fn read_field(data: &[u8], offset: u64, bits: u32) -> u64 {
    let mut v = 0u64;
    for i in 0..bits as u64 {
        v = (v << 1) | get_bit(data, offset + i) as u64;
    }
    v
}

fn write_field(data: &mut [u8], offset: u64, bits: u32, value: u64) {
    for i in 0..bits as u64 {
        let on = (value >> (bits as u64 - 1 - i)) & 1 == 1;
        put_bit(data, offset + i, on);
    }
}

fn sign_extend(raw: u64, bits: u32) -> i64 {
    if bits == 64 {
        raw as i64
    } else {
        let shift = 64 - bits;
        ((raw << shift) as i64) >> shift
    }
}

/// Adds `incr` to `value` (the field's old value for INCRBY, the new one with `incr` 0 for
/// SET; its 64 bits read as the field's signedness) and returns what is stored, or None
/// when it overflows under OVERFLOW FAIL. This is Redis's check{Signed,Unsigned}
/// BitfieldOverflow with its 64-bit wrapping arithmetic, quirks included, because clients
/// see them: `maxincr`/`minincr` wrap for out-of-range values, so a signed SET of
/// -2^63 into an i8 under SAT stores 127, and an unsigned SET of a negative number counts
/// as a huge positive one.
fn field_add(value: u64, incr: i64, signed: bool, bits: u32, ow: Overflow) -> Option<u64> {
    let full = bits == 64;
    let (limit, sum) = if signed {
        let v = value as i64;
        let max = if full {
            i64::MAX
        } else {
            (1i64 << (bits - 1)) - 1
        };
        let min = -max - 1;
        let maxincr = (max as u64).wrapping_sub(value) as i64;
        let minincr = min.wrapping_sub(v);
        let limit =
            if v > max || (!full && incr > maxincr) || (v >= 0 && incr > 0 && incr > maxincr) {
                Some(max as u64)
            } else if v < min || (!full && incr < minincr) || (v < 0 && incr < 0 && incr < minincr)
            {
                Some(min as u64)
            } else {
                None
            };
        (limit, v.wrapping_add(incr) as u64)
    } else {
        let max = low_bits(bits);
        let maxincr = max.wrapping_sub(value) as i64;
        let minincr = (value as i64).wrapping_neg();
        let limit = if value > max || (incr > 0 && incr > maxincr) {
            Some(max)
        } else if incr < 0 && incr < minincr {
            Some(0)
        } else {
            None
        };
        (limit, value.wrapping_add(incr as u64))
    };
    match (limit, ow) {
        (None, _) => Some(sum),
        (Some(_), Overflow::Fail) => None,
        (Some(limit), Overflow::Sat) => Some(limit),
        // Two's complement truncation to `bits`; the caller masks on write.
        (Some(_), Overflow::Wrap) => Some(sum),
    }
}

fn bitfield(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(bitfield_generic(ctx, argv, false))
}

fn bitfield_ro(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    done(bitfield_generic(ctx, argv, true))
}

/// BITFIELD key [GET type offset] [SET type offset value] [INCRBY type offset incr]
/// [OVERFLOW WRAP|SAT|FAIL] ...: every subcommand is parsed (and errors reported) before
/// anything runs; OVERFLOW applies to the SET/INCRBY after it.
fn bitfield_generic(ctx: &mut Ctx, argv: &[Bytes], ro_command: bool) -> Result<Reply, Reply> {
    if argv.len() < 2 {
        let name = if ro_command {
            "bitfield_ro"
        } else {
            "bitfield"
        };
        return Err(Reply::err(errors::wrong_arity(name)));
    }
    let mut fields = Vec::new();
    let mut overflow = Overflow::Wrap;
    let mut j = 2;
    while j < argv.len() {
        let rem = argv.len() - j - 1;
        let sub = &argv[j];
        let kind = if opt_is(sub, "get") && rem >= 2 {
            0
        } else if opt_is(sub, "set") && rem >= 3 {
            1
        } else if opt_is(sub, "incrby") && rem >= 3 {
            2
        } else if opt_is(sub, "overflow") && rem >= 1 {
            let a = &argv[j + 1];
            overflow = if opt_is(a, "wrap") {
                Overflow::Wrap
            } else if opt_is(a, "sat") {
                Overflow::Sat
            } else if opt_is(a, "fail") {
                Overflow::Fail
            } else {
                return Err(Reply::err(BITFIELD_OVERFLOW_ERR));
            };
            j += 2;
            continue;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        };
        let (signed, bits) = parse_field_type(&argv[j + 1])?;
        let offset = parse_bit_offset(&argv[j + 2], Some(bits))?;
        let op = match kind {
            0 => FieldOp::Get,
            _ => {
                let v = parse_i64(&argv[j + 3]).ok_or_else(not_integer)?;
                if kind == 1 {
                    FieldOp::Set(v)
                } else {
                    FieldOp::IncrBy(v)
                }
            }
        };
        fields.push(Field {
            op,
            signed,
            bits,
            offset,
            overflow,
        });
        j += if kind == 0 { 3 } else { 4 };
    }

    let highest_write = fields
        .iter()
        .filter(|f| f.op != FieldOp::Get)
        .map(|f| f.offset + f.bits as u64 - 1)
        .max();
    let Some(highest) = highest_write else {
        let data = read_string(ctx, &argv[1])?.unwrap_or_default();
        return Ok(Reply::Array(
            fields
                .iter()
                .map(|f| Reply::Integer(field_value(&data, f)))
                .collect(),
        ));
    };
    if ro_command {
        return Err(Reply::err(BITFIELD_RO_ERR));
    }
    let ((replies, changes), grown) =
        edit_string(ctx, &argv[1], (highest >> 3) as usize + 1, |m| {
            let mut changes = 0u64;
            let replies: Vec<Reply> = fields
                .iter()
                .map(|f| {
                    let (incr, base, is_set) = match f.op {
                        FieldOp::Get => return Reply::Integer(field_value(m, f)),
                        FieldOp::Set(v) => (0, v as u64, true),
                        FieldOp::IncrBy(v) => (v, field_value(m, f) as u64, false),
                    };
                    let old = field_value(m, f);
                    match field_add(base, incr, f.signed, f.bits, f.overflow) {
                        None => Reply::Null,
                        Some(new) => {
                            // Only writes that change the bits count, as in Redis (an
                            // OVERFLOW FAIL one, or one storing the same value, does not:
                            // it neither dirties nor touches a WATCH).
                            if read_field(m, f.offset, f.bits) != new & low_bits(f.bits) {
                                changes += 1;
                            }
                            write_field(m, f.offset, f.bits, new);
                            if is_set {
                                Reply::Integer(old)
                            } else {
                                Reply::Integer(field_value(m, f))
                            }
                        }
                    }
                })
                .collect();
            (replies, changes)
        })?;
    // Creating or growing the key is a keyspace change too, even if every write failed.
    ctx.dirty(changes.max(grown as u64));
    Ok(Reply::Array(replies))
}

/// A mask of the low `bits` bits (all 64 for 64): the largest unsigned value a field of
/// that width holds, and what it keeps of a wider one.
fn low_bits(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

/// The field's current value: signed fields sign-extended, unsigned ones (at most 63 bits)
/// always fit an i64.
fn field_value(data: &[u8], f: &Field) -> i64 {
    let raw = read_field(data, f.offset, f.bits);
    if f.signed {
        sign_extend(raw, f.bits)
    } else {
        raw as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_msb_first() {
        let mut d = vec![0u8; 2];
        put_bit(&mut d, 0, true);
        put_bit(&mut d, 9, true);
        assert_eq!(d, vec![0x80, 0x40]);
        assert!(get_bit(&d, 9));
        assert!(!get_bit(&d, 100));
    }

    #[test]
    fn count_bits_masks_edges() {
        let d = [0xFFu8, 0xFF, 0x0F];
        assert_eq!(count_bits(&d, 0, 23), 20);
        assert_eq!(count_bits(&d, 3, 5), 3);
        assert_eq!(count_bits(&d, 4, 19), 12);
        assert_eq!(count_bits(&d, 20, 23), 4);
    }

    #[test]
    fn ranges_clamp_like_redis() {
        assert_eq!(bit_range(0, -1, 3, false), Some((0, 23)));
        assert_eq!(bit_range(-100, 100, 2, true), Some((0, 15)));
        assert_eq!(bit_range(2, 1, 3, false), None);
        assert_eq!(bit_range(5, 10, 2, false), None);
        assert_eq!(bit_range(i64::MIN, i64::MAX, 2, false), Some((0, 15)));
    }

    #[test]
    fn find_bit_both_ways() {
        let d = [0x00u8, 0x01, 0xFF];
        assert_eq!(find_bit(&d, true, 0, 23), Some(15));
        assert_eq!(find_bit(&d, false, 16, 23), None);
        assert_eq!(find_bit(&d, false, 0, 23), Some(0));
    }

    #[test]
    fn fields_round_trip_and_overflow() {
        let mut d = vec![0u8; 3];
        write_field(&mut d, 3, 10, 0x2AB);
        assert_eq!(read_field(&d, 3, 10), 0x2AB);
        assert_eq!(sign_extend(0xFF, 8), -1);
        assert_eq!(
            field_add(127, 1, true, 8, Overflow::Wrap).map(|v| sign_extend(v & 0xFF, 8)),
            Some(-128)
        );
        assert_eq!(field_add(127, 1, true, 8, Overflow::Sat), Some(127));
        assert_eq!(field_add(127, 1, true, 8, Overflow::Fail), None);
        assert_eq!(field_add(0, -1, false, 8, Overflow::Sat), Some(0));
        assert_eq!(field_add(u64::MAX, 0, false, 8, Overflow::Sat), Some(255));
        assert_eq!(
            field_add(i64::MAX as u64, 1, true, 64, Overflow::Sat),
            Some(i64::MAX as u64)
        );
        // Redis's wrapped maxincr: SET of -2^63 into an i8 saturates at the top.
        assert_eq!(
            field_add(i64::MIN as u64, 0, true, 8, Overflow::Sat),
            Some(127)
        );
    }

    #[test]
    fn offsets_and_types_validate() {
        assert_eq!(parse_bit_offset(b"#3", Some(8)).ok(), Some(24));
        assert!(parse_bit_offset(b"#3", None).is_err());
        assert!(parse_bit_offset(b"-1", None).is_err());
        assert!(parse_bit_offset(b"4294967296", None).is_err());
        assert_eq!(parse_bit_offset(b"4294967295", None).ok(), Some(4294967295));
        assert!(parse_field_type(b"u64").is_err());
        assert!(parse_field_type(b"I8").is_err());
        assert_eq!(parse_field_type(b"i64").ok(), Some((true, 64)));
    }
}
