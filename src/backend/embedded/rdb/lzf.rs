//! LZF compression as Redis uses it for long strings in DUMP payloads and RDB files. The
//! compressor follows liblzf's choices as Redis builds it (HLOG 16, VERY_FAST) so that our
//! DUMP output is byte-identical to Redis's; the decompressor accepts any valid LZF stream
//! and refuses malformed ones instead of reading out of bounds.

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

fn idx(h: u32) -> usize {
    ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// Compresses `input` into at most `max_out` bytes; None when it does not fit (Redis then
/// stores the string uncompressed).
pub fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let in_len = input.len();
    if in_len == 0 || max_out == 0 {
        return None;
    }
    // Slots hold position + 1 so that 0 means "never seen" (liblzf's `ref > in_data` test
    // rejects position 0 anyway).
    let mut htab = vec![0usize; HSIZE];
    let mut out = vec![0u8; max_out];
    let mut op = 1usize; // out[0] is the length byte of the first literal run
    let mut lit = 0usize;
    let mut ip = 0usize;
    let frst = |p: usize| ((input[p] as u32) << 8) | input[p + 1] as u32;
    let next = |v: u32, p: usize| (v << 8) | input[p + 2] as u32;
    let mut hval = if in_len >= 2 { frst(0) } else { 0 };

    while ip + 2 < in_len {
        hval = next(hval, ip);
        let slot = idx(hval);
        let reference = htab[slot];
        htab[slot] = ip + 1;
        let matched = reference > 1 && {
            let r = reference - 1;
            ip - r - 1 < MAX_OFF
                && input[r + 2] == input[ip + 2]
                && input[r] == input[ip]
                && input[r + 1] == input[ip + 1]
        };
        if matched {
            let r = reference - 1;
            let off = ip - r - 1;
            let mut len = 2usize;
            let maxlen = (in_len - ip - len).min(MAX_REF);
            if op + 3 + 1 >= max_out && op - usize::from(lit == 0) + 3 + 1 >= max_out {
                return None;
            }
            out[op - lit - 1] = (lit as u8).wrapping_sub(1);
            op -= usize::from(lit == 0);
            loop {
                len += 1;
                if len >= maxlen || input[r + len] != input[ip + len] {
                    break;
                }
            }
            len -= 2;
            ip += 1;
            if len < 7 {
                out[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((off >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = off as u8;
            op += 1;
            lit = 0;
            op += 1;
            ip += len + 1;
            if ip + 2 >= in_len {
                break;
            }
            // VERY_FAST: re-hash the two positions before the new input position.
            ip -= 2;
            hval = frst(ip);
            hval = next(hval, ip);
            htab[idx(hval)] = ip + 1;
            ip += 1;
            hval = next(hval, ip);
            htab[idx(hval)] = ip + 1;
            ip += 1;
        } else {
            if op >= max_out {
                return None;
            }
            lit += 1;
            out[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
        }
    }
    if op + 3 > max_out {
        return None;
    }
    while ip < in_len {
        if op >= max_out {
            return None;
        }
        lit += 1;
        out[op] = input[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    op -= usize::from(lit == 0);
    out.truncate(op);
    Some(out)
}

/// Decompresses `input`, which must expand to exactly `out_len` bytes.
pub fn decompress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(out_len);
    let mut ip = 0usize;
    while ip < input.len() {
        let ctrl = input[ip] as usize;
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            let lits = input.get(ip..ip + run)?;
            if out.len() + run > out_len {
                return None;
            }
            out.extend_from_slice(lits);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += *input.get(ip)? as usize;
                ip += 1;
            }
            len += 2;
            let off = ((ctrl & 0x1f) << 8) + *input.get(ip)? as usize + 1;
            ip += 1;
            if off > out.len() || out.len() + len > out_len {
                return None;
            }
            // Overlapping copies are how LZF encodes runs: copy byte by byte.
            let start = out.len() - off;
            for i in 0..len {
                let b = out[start + i];
                out.push(b);
            }
        }
    }
    (out.len() == out_len).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_compressible_data() {
        let data = b"abcabcabcabcabcabcabcabcabcabcabcabcabcabc hello hello hello".repeat(20);
        let c = compress(&data, data.len() - 4).expect("compressible");
        assert!(c.len() < data.len() / 4);
        assert_eq!(decompress(&c, data.len()).as_deref(), Some(&data[..]));
    }

    #[test]
    fn incompressible_data_does_not_fit() {
        let data: Vec<u8> = (0..200u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(compress(&data, data.len() - 4).is_none());
    }

    #[test]
    fn long_runs_and_literals_round_trip() {
        let mut data = vec![b'x'; 5000];
        data.extend((0..300u32).map(|i| (i * 7 % 251) as u8));
        data.extend(vec![b'y'; 700]);
        let c = compress(&data, data.len()).expect("fits");
        assert_eq!(decompress(&c, data.len()), Some(data));
    }

    #[test]
    fn decompress_refuses_malformed_input() {
        // Back-reference before any output.
        assert!(decompress(&[0x20, 0x00], 3).is_none());
        // Literal run longer than the input.
        assert!(decompress(&[0x05, b'a'], 6).is_none());
        // Wrong announced length.
        assert!(decompress(&[0x00, b'a'], 2).is_none());
        // Expansion beyond the announced length.
        assert!(decompress(&[0x00, b'a', 0xe0, 0xff, 0x00], 4).is_none());
    }
}
