//! Redis's compact blob encodings found inside RDB objects: listpack (written and read),
//! intset (written and read), and the older ziplist and zipmap (read only, for loading
//! payloads from older servers). Readers validate every length against the blob so hostile
//! input fails cleanly.

use bytes::Bytes;

use crate::backend::embedded::num::parse_i64;

const LP_HEADER: usize = 6;
const LP_EOF: u8 = 0xff;

/// A listpack under construction, entries appended at the tail.
pub struct ListpackWriter {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackWriter {
    fn default() -> ListpackWriter {
        ListpackWriter::new()
    }
}

impl ListpackWriter {
    pub fn new() -> ListpackWriter {
        ListpackWriter {
            buf: vec![0; LP_HEADER],
            count: 0,
        }
    }

    /// Bytes the finished listpack occupies (header + entries + terminator), Redis's lpBytes.
    pub fn total_bytes(&self) -> usize {
        self.buf.len() + 1
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// Appends a string, stored as an integer when it is one (as lpAppend does).
    pub fn push(&mut self, s: &[u8]) {
        let start = self.buf.len();
        match parse_i64(s) {
            Some(v) => encode_int(&mut self.buf, v),
            None => encode_str(&mut self.buf, s),
        }
        let entry_len = self.buf.len() - start;
        encode_backlen(&mut self.buf, entry_len);
        self.count += 1;
    }

    /// Appends an integer (lpAppendInteger).
    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        encode_int(&mut self.buf, v);
        let entry_len = self.buf.len() - start;
        encode_backlen(&mut self.buf, entry_len);
        self.count += 1;
    }

    pub fn finish(mut self) -> Vec<u8> {
        self.buf.push(LP_EOF);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let count = self.count.min(u16::MAX as usize) as u16;
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

fn encode_int(buf: &mut Vec<u8>, v: i64) {
    if (0..=127).contains(&v) {
        buf.push(v as u8);
    } else if (-4096..=4095).contains(&v) {
        let u = (v as u16) & 0x1fff;
        buf.push(0xc0 | (u >> 8) as u8);
        buf.push(u as u8);
    } else if (-32768..=32767).contains(&v) {
        buf.push(0xf1);
        buf.extend_from_slice(&(v as i16).to_le_bytes());
    } else if (-8_388_608..=8_388_607).contains(&v) {
        buf.push(0xf2);
        buf.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
    } else if (i32::MIN as i64..=i32::MAX as i64).contains(&v) {
        buf.push(0xf3);
        buf.extend_from_slice(&(v as i32).to_le_bytes());
    } else {
        buf.push(0xf4);
        buf.extend_from_slice(&v.to_le_bytes());
    }
}

fn encode_str(buf: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 64 {
        buf.push(0x80 | len as u8);
    } else if len < 4096 {
        buf.push(0xe0 | (len >> 8) as u8);
        buf.push(len as u8);
    } else {
        buf.push(0xf0);
        buf.extend_from_slice(&(len as u32).to_le_bytes());
    }
    buf.extend_from_slice(s);
}

/// The entry length written after each entry so the listpack can be walked backwards:
/// 7 bits per byte, most significant group first, every byte but the first flagged 0x80.
fn encode_backlen(buf: &mut Vec<u8>, len: usize) {
    let groups = match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    };
    for g in (0..groups).rev() {
        let bits = ((len >> (7 * g)) & 0x7f) as u8;
        buf.push(if g == groups - 1 { bits } else { bits | 0x80 });
    }
}

fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

fn int_bytes(v: i64) -> Bytes {
    let mut b = itoa::Buffer::new();
    Bytes::copy_from_slice(b.format(v).as_bytes())
}

fn take(blob: &[u8], at: usize, n: usize) -> Option<&[u8]> {
    blob.get(at..at.checked_add(n)?)
}

fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// Every entry of a listpack, as strings (integers in decimal). None if the blob is not a
/// well-formed listpack (sizes, back-lengths, count and terminator are all checked).
pub fn listpack_entries(blob: &[u8]) -> Option<Vec<Bytes>> {
    let header = take(blob, 0, LP_HEADER)?;
    let total = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let count = u16::from_le_bytes(header[4..6].try_into().ok()?) as usize;
    if total != blob.len() || blob.last() != Some(&LP_EOF) {
        return None;
    }
    let end = blob.len() - 1;
    let mut entries = Vec::with_capacity(count.min(end));
    let mut p = LP_HEADER;
    while p < end {
        let b = blob[p];
        let (value, entry_len) = if b & 0x80 == 0 {
            (int_bytes(b as i64), 1)
        } else if b & 0xc0 == 0x80 {
            let len = (b & 0x3f) as usize;
            (Bytes::copy_from_slice(take(blob, p + 1, len)?), 1 + len)
        } else if b & 0xe0 == 0xc0 {
            let lo = *blob.get(p + 1)? as u64;
            let v = (((b & 0x1f) as u64) << 8) | lo;
            (int_bytes(sign_extend(v, 13)), 2)
        } else if b & 0xf0 == 0xe0 {
            let len = (((b & 0x0f) as usize) << 8) | *blob.get(p + 1)? as usize;
            (Bytes::copy_from_slice(take(blob, p + 2, len)?), 2 + len)
        } else {
            match b {
                0xf0 => {
                    let len = u32::from_le_bytes(take(blob, p + 1, 4)?.try_into().ok()?) as usize;
                    (Bytes::copy_from_slice(take(blob, p + 5, len)?), 5 + len)
                }
                0xf1..=0xf4 => {
                    let width = match b {
                        0xf1 => 2,
                        0xf2 => 3,
                        0xf3 => 4,
                        _ => 8,
                    };
                    let raw = take(blob, p + 1, width)?;
                    let mut le = [0u8; 8];
                    le[..width].copy_from_slice(raw);
                    let v = sign_extend(u64::from_le_bytes(le), (width * 8) as u32);
                    (int_bytes(v), 1 + width)
                }
                _ => return None,
            }
        };
        let back = backlen_size(entry_len);
        let mut check = Vec::with_capacity(5);
        encode_backlen(&mut check, entry_len);
        if take(blob, p + entry_len, back)? != check.as_slice() {
            return None;
        }
        p += entry_len + back;
        entries.push(value);
    }
    if p != end || (count != u16::MAX as usize && count != entries.len()) {
        return None;
    }
    Some(entries)
}

/// Every entry of a ziplist (Redis < 7 compact lists, hashes and sorted sets).
pub fn ziplist_entries(blob: &[u8]) -> Option<Vec<Bytes>> {
    let header = take(blob, 0, 10)?;
    let total = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
    let count = u16::from_le_bytes(header[8..10].try_into().ok()?) as usize;
    if total != blob.len() || blob.last() != Some(&0xff) {
        return None;
    }
    let end = blob.len() - 1;
    let mut entries = Vec::with_capacity(count.min(end));
    let mut p = 10;
    let mut prev_len = 0usize;
    while p < end {
        let start = p;
        let (stored_prev, prev_size) = if blob[p] < 254 {
            (blob[p] as usize, 1)
        } else if blob[p] == 254 {
            (
                u32::from_le_bytes(take(blob, p + 1, 4)?.try_into().ok()?) as usize,
                5,
            )
        } else {
            return None;
        };
        if stored_prev != prev_len {
            return None;
        }
        p += prev_size;
        let enc = *blob.get(p)?;
        let value = match enc >> 6 {
            0 => {
                let len = (enc & 0x3f) as usize;
                p += 1;
                let s = take(blob, p, len)?;
                p += len;
                Bytes::copy_from_slice(s)
            }
            1 => {
                let len = (((enc & 0x3f) as usize) << 8) | *blob.get(p + 1)? as usize;
                p += 2;
                let s = take(blob, p, len)?;
                p += len;
                Bytes::copy_from_slice(s)
            }
            2 => {
                let len = u32::from_be_bytes(take(blob, p + 1, 4)?.try_into().ok()?) as usize;
                p += 5;
                let s = take(blob, p, len)?;
                p += len;
                Bytes::copy_from_slice(s)
            }
            _ => {
                p += 1;
                let (width, v) = match enc {
                    0xc0 => (2, None),
                    0xd0 => (4, None),
                    0xe0 => (8, None),
                    0xf0 => (3, None),
                    0xfe => (1, None),
                    0xf1..=0xfd => (0, Some((enc & 0x0f) as i64 - 1)),
                    _ => return None,
                };
                let v = match v {
                    Some(v) => v,
                    None => {
                        let raw = take(blob, p, width)?;
                        let mut le = [0u8; 8];
                        le[..width].copy_from_slice(raw);
                        sign_extend(u64::from_le_bytes(le), (width * 8) as u32)
                    }
                };
                p += width;
                int_bytes(v)
            }
        };
        if p > end {
            return None;
        }
        prev_len = p - start;
        entries.push(value);
    }
    if p != end || (count != u16::MAX as usize && count != entries.len()) {
        return None;
    }
    Some(entries)
}

/// An intset blob (encoding width, length, sorted little-endian integers).
pub fn intset_blob(sorted: &[i64]) -> Vec<u8> {
    let fits = |lo: i64, hi: i64| sorted.iter().all(|v| (lo..=hi).contains(v));
    let width: usize = if fits(i16::MIN as i64, i16::MAX as i64) {
        2
    } else if fits(i32::MIN as i64, i32::MAX as i64) {
        4
    } else {
        8
    };
    let mut buf = Vec::with_capacity(8 + width * sorted.len());
    buf.extend_from_slice(&(width as u32).to_le_bytes());
    buf.extend_from_slice(&(sorted.len() as u32).to_le_bytes());
    for v in sorted {
        buf.extend_from_slice(&v.to_le_bytes()[..width]);
    }
    buf
}

/// The members of an intset blob; None unless well-formed, strictly increasing.
pub fn intset_members(blob: &[u8]) -> Option<Vec<i64>> {
    let width = u32::from_le_bytes(take(blob, 0, 4)?.try_into().ok()?) as usize;
    let len = u32::from_le_bytes(take(blob, 4, 4)?.try_into().ok()?) as usize;
    if !matches!(width, 2 | 4 | 8) || blob.len() - 8 != len.checked_mul(width)? {
        return None;
    }
    let mut out = Vec::with_capacity(len);
    for chunk in blob[8..].chunks_exact(width) {
        let mut le = [0u8; 8];
        le[..width].copy_from_slice(chunk);
        let v = sign_extend(u64::from_le_bytes(le), (width * 8) as u32);
        if out.last().is_some_and(|&last| last >= v) {
            return None;
        }
        out.push(v);
    }
    Some(out)
}

/// The (field, value) pairs of a zipmap (hashes saved by Redis < 2.6).
pub fn zipmap_pairs(blob: &[u8]) -> Option<Vec<(Bytes, Bytes)>> {
    let mut p = 1; // skip the (unreliable) count byte
    let mut pairs = Vec::new();
    let read_len = |p: &mut usize| -> Option<usize> {
        let b = *blob.get(*p)?;
        match b {
            0..=253 => {
                *p += 1;
                Some(b as usize)
            }
            254 => {
                let v = u32::from_le_bytes(take(blob, *p + 1, 4)?.try_into().ok()?) as usize;
                *p += 5;
                Some(v)
            }
            _ => None,
        }
    };
    loop {
        if *blob.get(p)? == 0xff {
            return (p + 1 == blob.len()).then_some(pairs);
        }
        let flen = read_len(&mut p)?;
        let field = Bytes::copy_from_slice(take(blob, p, flen)?);
        p += flen;
        let vlen = read_len(&mut p)?;
        let free = *blob.get(p)? as usize;
        p += 1;
        let value = Bytes::copy_from_slice(take(blob, p, vlen)?);
        p = p.checked_add(vlen + free)?;
        pairs.push((field, value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn listpack_round_trips_every_encoding() {
        let long = "x".repeat(5000);
        let mid = "y".repeat(300);
        let items = [
            "0",
            "127",
            "128",
            "-1",
            "-4096",
            "4095",
            "4096",
            "-32768",
            "32767",
            "40000",
            "-8388608",
            "8388607",
            "8388608",
            "2147483647",
            "-2147483648",
            "2147483648",
            "9223372036854775807",
            "-9223372036854775808",
            "abc",
            "",
            "007",
            &mid,
            &long,
        ];
        let mut w = ListpackWriter::new();
        for i in items {
            w.push(i.as_bytes());
        }
        let blob = w.finish();
        let got = listpack_entries(&blob).expect("valid");
        assert_eq!(got, items.iter().map(|s| b(s)).collect::<Vec<_>>());
    }

    #[test]
    fn listpack_bytes_match_redis() {
        // Redis 7.0: the listpack of RPUSH l a 1 is 0c000000 0200 8161 02 01 01 ff.
        let mut w = ListpackWriter::new();
        w.push(b"a");
        w.push(b"1");
        assert_eq!(w.total_bytes(), 12);
        assert_eq!(w.finish(), [12, 0, 0, 0, 2, 0, 0x81, b'a', 2, 1, 1, 0xff]);
    }

    #[test]
    fn listpack_rejects_corruption() {
        let mut w = ListpackWriter::new();
        w.push(b"hello");
        w.push(b"12345");
        let blob = w.finish();
        for cut in 0..blob.len() {
            assert!(
                listpack_entries(&blob[..cut]).is_none(),
                "truncated at {cut}"
            );
        }
        let mut bad = blob.clone();
        bad[4] = 7; // count
        assert!(listpack_entries(&bad).is_none());
        let mut bad = blob.clone();
        bad[6] = 0x8f; // string length past the end
        assert!(listpack_entries(&bad).is_none());
        let mut bad = blob;
        bad[0] = 0xff; // total bytes
        assert!(listpack_entries(&bad).is_none());
    }

    #[test]
    fn intset_round_trips_and_picks_width() {
        for (vals, width) in [
            (vec![1i64, 2, 3], 2u32),
            (vec![-5, 70000], 4),
            (vec![0, i64::MAX], 8),
        ] {
            let blob = intset_blob(&vals);
            assert_eq!(u32::from_le_bytes(blob[0..4].try_into().unwrap()), width);
            assert_eq!(intset_members(&blob), Some(vals));
        }
        assert!(intset_members(&[2, 0, 0, 0, 2, 0, 0, 0, 1, 0]).is_none());
        assert!(intset_members(&[2, 0, 0, 0, 2, 0, 0, 0, 5, 0, 1, 0]).is_none());
        assert!(intset_members(&[3, 0, 0, 0, 0, 0, 0, 0]).is_none());
    }

    #[test]
    fn ziplist_reads_strings_and_integers() {
        // Hand-built ziplist: "ab", 5 (immediate), 300 (int16).
        let mut body = vec![];
        body.extend([0u8, 0x02, b'a', b'b']);
        body.extend([4u8, 0xf6]);
        body.extend([2u8, 0xc0, 0x2c, 0x01]);
        let mut blob = vec![0u8; 10];
        blob.extend(&body);
        blob.push(0xff);
        let total = blob.len() as u32;
        blob[0..4].copy_from_slice(&total.to_le_bytes());
        blob[8..10].copy_from_slice(&3u16.to_le_bytes());
        assert_eq!(
            ziplist_entries(&blob),
            Some(vec![b("ab"), b("5"), b("300")])
        );
        let mut bad = blob.clone();
        bad[14] = 9; // wrong prevlen
        assert!(ziplist_entries(&bad).is_none());
        assert!(ziplist_entries(&blob[..blob.len() - 2]).is_none());
    }

    #[test]
    fn zipmap_reads_pairs() {
        let blob = [1u8, 1, b'f', 2, 0, b'v', b'w', 0xff];
        assert_eq!(zipmap_pairs(&blob), Some(vec![(b("f"), b("vw"))]));
        assert!(zipmap_pairs(&blob[..5]).is_none());
    }
}
