//! HyperLogLog (Redis's hyperloglog.c) stored byte for byte as Redis stores it, so GET,
//! DUMP/RESTORE and PFCOUNT estimates interoperate: the 16-byte "HYLL" header with the
//! cached cardinality, the sparse opcode encoding (ZERO, XZERO, VAL) promoted to dense
//! 6-bit registers, MurmurHash64A and the Ertl estimator of Redis 7.0. PFADD, PFCOUNT
//! and PFMERGE.

use bytes::Bytes;

use super::Ctx;
use super::value::Value;
use crate::protocol::Reply;
use crate::protocol::errors;

const INVALID_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";
const CORRUPTED_HLL: &str = "INVALIDOBJ Corrupted HLL object detected";

/// Register index bits, registers, pattern bits and register width.
const HLL_P: u32 = 14;
const HLL_REGISTERS: usize = 1 << HLL_P;
const HLL_Q: u32 = 64 - HLL_P;
const HLL_BITS: usize = 6;
const HDR: usize = 16;
const DENSE_SIZE: usize = HDR + (HLL_REGISTERS * HLL_BITS).div_ceil(8);
const ENC_DENSE: u8 = 0;
const ENC_SPARSE: u8 = 1;
/// hll-sparse-max-bytes default: a sparse HLL growing past it becomes dense.
const SPARSE_MAX_BYTES: usize = 3000;
const SPARSE_VAL_MAX_VALUE: u8 = 32;
const SPARSE_VAL_MAX_LEN: usize = 4;
const SPARSE_ZERO_MAX_LEN: usize = 64;
const SPARSE_XZERO_MAX_LEN: usize = 16384;

pub(super) fn register(t: &mut crate::backend::embedded::Handlers) {
    t.insert("pfadd", pfadd);
    t.insert("pfcount", pfcount);
    t.insert("pfmerge", pfmerge);
    t.insert("pfdebug", pfdebug);
    t.insert("pfselftest", pfselftest);
}

/// MurmurHash64A, little-endian block reads (what Redis computes on x86/ARM).
fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4a7935bd1e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for c in &mut chunks {
        let mut buf = [0u8; 8];
        buf.copy_from_slice(c);
        let mut k = u64::from_le_bytes(buf);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, &b) in tail.iter().enumerate() {
            h ^= (b as u64) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// hllPatLen: (register index, run length of the pattern + 1).
fn pat_len(ele: &[u8]) -> (usize, u8) {
    let hash = murmur64a(ele, 0xadc83b19);
    let index = (hash & (HLL_REGISTERS as u64 - 1)) as usize;
    let pattern = (hash >> HLL_P) | (1u64 << HLL_Q);
    (index, pattern.trailing_zeros() as u8 + 1)
}

fn new_sparse() -> Vec<u8> {
    let mut v = Vec::with_capacity(HDR + 2);
    v.extend_from_slice(b"HYLL");
    v.extend_from_slice(&[ENC_SPARSE, 0, 0, 0]);
    v.extend_from_slice(&[0; 8]);
    let len = SPARSE_XZERO_MAX_LEN - 1;
    v.push(0x40 | (len >> 8) as u8);
    v.push((len & 0xff) as u8);
    v
}

/// isHLLObjectOrReply's structural checks.
fn is_valid(data: &[u8]) -> bool {
    data.len() >= HDR
        && &data[..4] == b"HYLL"
        && data[4] <= ENC_SPARSE
        && (data[4] != ENC_DENSE || data.len() == DENSE_SIZE)
}

fn invalidate_cache(h: &mut [u8]) {
    h[15] |= 0x80;
}

fn cache_valid(h: &[u8]) -> bool {
    h[15] & 0x80 == 0
}

fn dense_get(regs: &[u8], i: usize) -> u8 {
    let bit = i * HLL_BITS;
    let (byte, fb) = (bit / 8, (bit % 8) as u32);
    let b0 = regs.get(byte).copied().unwrap_or(0) as u32;
    let b1 = regs.get(byte + 1).copied().unwrap_or(0) as u32;
    (((b0 >> fb) | (b1 << (8 - fb))) & 63) as u8
}

fn dense_put(regs: &mut [u8], i: usize, val: u8) {
    let bit = i * HLL_BITS;
    let (byte, fb) = (bit / 8, (bit % 8) as u32);
    let v = val as u32;
    if let Some(b) = regs.get_mut(byte) {
        *b = ((*b as u32 & !(63 << fb)) | (v << fb)) as u8;
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        *b = ((*b as u32 & !(63 >> (8 - fb))) | (v >> (8 - fb))) as u8;
    }
}

/// One decoded sparse opcode: (value, run length, opcode bytes).
fn sparse_op(body: &[u8], p: usize) -> Option<(u8, usize, usize)> {
    let b = *body.get(p)?;
    if b & 0xC0 == 0 {
        Some((0, (b & 0x3F) as usize + 1, 1))
    } else if b & 0xC0 == 0x40 {
        let lo = *body.get(p + 1)? as usize;
        Some((0, (((b & 0x3F) as usize) << 8 | lo) + 1, 2))
    } else {
        Some((((b >> 2) & 0x1F) + 1, (b & 3) as usize + 1, 1))
    }
}

/// Registers of any valid HLL; None if a sparse body does not cover exactly 16384.
fn registers(data: &[u8]) -> Option<Vec<u8>> {
    let mut regs = vec![0u8; HLL_REGISTERS];
    if data[4] == ENC_DENSE {
        for (i, r) in regs.iter_mut().enumerate() {
            *r = dense_get(&data[HDR..], i);
        }
        return Some(regs);
    }
    let body = &data[HDR..];
    let (mut p, mut idx) = (0, 0usize);
    while p < body.len() {
        let (val, run, len) = sparse_op(body, p)?;
        if idx + run > HLL_REGISTERS {
            return None;
        }
        if val > 0 {
            regs[idx..idx + run].fill(val);
        }
        idx += run;
        p += len;
    }
    (idx == HLL_REGISTERS).then_some(regs)
}

/// hllSparseToDense: same header with the dense encoding.
fn to_dense(data: &[u8]) -> Option<Vec<u8>> {
    let regs = registers(data)?;
    let mut out = vec![0u8; DENSE_SIZE];
    out[..HDR].copy_from_slice(&data[..HDR]);
    out[4] = ENC_DENSE;
    for (i, &r) in regs.iter().enumerate() {
        if r > 0 {
            dense_put(&mut out[HDR..], i, r);
        }
    }
    Some(out)
}

fn dense_set(data: &mut [u8], i: usize, count: u8) -> bool {
    if dense_get(&data[HDR..], i) < count {
        dense_put(&mut data[HDR..], i, count);
        true
    } else {
        false
    }
}

/// Raises register `index` to `count` (hllSparseSet step by step, so the opcodes are the
/// very bytes Redis writes), promoting to dense when a value or the size needs it.
/// Err(()) on a corrupt sparse body.
fn hll_set(data: &mut Vec<u8>, index: usize, count: u8) -> Result<bool, ()> {
    if data[4] == ENC_DENSE {
        return Ok(dense_set(data, index, count));
    }
    match sparse_set(data, index, count)? {
        Some(changed) => Ok(changed),
        None => {
            *data = to_dense(data).ok_or(())?;
            Ok(dense_set(data, index, count))
        }
    }
}

/// Ok(None): promote to dense and retry there.
fn sparse_set(data: &mut Vec<u8>, index: usize, count: u8) -> Result<Option<bool>, ()> {
    if count > SPARSE_VAL_MAX_VALUE {
        return Ok(None);
    }
    let val_op = |v: u8, len: usize| 0x80 | ((v - 1) << 2) | (len as u8 - 1);
    let body_start = HDR;
    let (mut p, mut first, mut prev) = (body_start, 0usize, None);
    let (val, span, oplen) = loop {
        let (val, span, oplen) = sparse_op(data, p).ok_or(())?;
        if index < first + span {
            break (val, span, oplen);
        }
        prev = Some(p);
        p += oplen;
        first += span;
    };
    let is_xzero = oplen == 2;
    let is_val = val > 0;
    let mut rewrite = true;
    if is_val {
        if val >= count {
            return Ok(Some(false));
        }
        if span == 1 {
            data[p] = val_op(count, 1);
            rewrite = false;
        }
    } else if !is_xzero && span == 1 {
        data[p] = val_op(count, 1);
        rewrite = false;
    }
    if rewrite {
        let last = first + span - 1;
        let mut seq: Vec<u8> = Vec::with_capacity(5);
        let zero_run = |seq: &mut Vec<u8>, len: usize| {
            if len > SPARSE_ZERO_MAX_LEN {
                seq.push(0x40 | ((len - 1) >> 8) as u8);
                seq.push(((len - 1) & 0xff) as u8);
            } else {
                seq.push((len - 1) as u8);
            }
        };
        if is_val {
            if index != first {
                seq.push(val_op(val, index - first));
            }
            seq.push(val_op(count, 1));
            if index != last {
                seq.push(val_op(val, last - index));
            }
        } else {
            if index != first {
                zero_run(&mut seq, index - first);
            }
            seq.push(val_op(count, 1));
            if index != last {
                zero_run(&mut seq, last - index);
            }
        }
        if seq.len() > oplen && data.len() + seq.len() - oplen > SPARSE_MAX_BYTES {
            return Ok(None);
        }
        data.splice(p..p + oplen, seq);
    }
    // Merge adjacent VAL opcodes of equal value, scanning up to 5 opcodes from prev.
    let mut q = prev.unwrap_or(body_start);
    let mut scan = 5;
    while q < data.len() && scan > 0 {
        scan -= 1;
        let b = data[q];
        if b & 0xC0 == 0x40 {
            q += 2;
            continue;
        }
        if b & 0xC0 == 0 {
            q += 1;
            continue;
        }
        if let Some(&n) = data.get(q + 1)
            && n & 0x80 != 0
        {
            let (v1, v2) = (((b >> 2) & 0x1F) + 1, ((n >> 2) & 0x1F) + 1);
            let len = (b & 3) as usize + (n & 3) as usize + 2;
            if v1 == v2 && len <= SPARSE_VAL_MAX_LEN {
                data[q + 1] = val_op(v1, len);
                data.remove(q);
                continue;
            }
        }
        q += 1;
    }
    Ok(Some(true))
}

fn hll_sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let prev = z;
        z += x * y;
        y += y;
        if prev == z {
            return z;
        }
    }
}

fn hll_tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let prev = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if prev == z {
            return z / 3.0;
        }
    }
}

/// hllCount: Ertl's improved estimator over the register histogram.
fn estimate(regs: &[u8]) -> u64 {
    let mut histo = [0u32; 64];
    for &r in regs {
        histo[(r as usize).min(63)] += 1;
    }
    let m = HLL_REGISTERS as f64;
    let q = HLL_Q as usize;
    let mut z = m * hll_tau((m - histo[q + 1] as f64) / m);
    for j in (1..=q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * hll_sigma(histo[0] as f64 / m);
    const ALPHA_INF: f64 = 0.721_347_520_444_481_7;
    (ALPHA_INF * m * m / z).round() as u64
}

/// Takes the HLL at `key` out for writing (Ok(None) if absent); the caller must put it
/// back with [`store`]. Taking it avoids copying 12 KiB per PFADD when the keyspace holds
/// the only reference to the buffer. The value goes back `raw`, as Redis's
/// dbUnshareStringValue leaves it even when nothing changes.
fn hll_for_write(ctx: &mut Ctx, key: &Bytes) -> Result<Option<Vec<u8>>, Reply> {
    match ctx.lookup(key) {
        None => Ok(None),
        Some(e) => {
            let s = e
                .value
                .as_str()
                .ok_or_else(|| Reply::err(errors::WRONGTYPE))?;
            if !is_valid(s) {
                return Err(Reply::err(INVALID_HLL));
            }
            let data = s.clone();
            e.value = Value::raw_string(Bytes::new());
            Ok(Some(Vec::from(data)))
        }
    }
}

/// Stores an HLL keeping the key's TTL (the value is modified in place in Redis).
fn store(ctx: &mut Ctx, key: &Bytes, data: Vec<u8>) {
    let now = ctx.now_ms;
    let v = Value::raw_string(Bytes::from(data));
    match ctx.lookup(key) {
        Some(e) => e.value = v,
        None => ctx.db().set(key, v, None, now),
    }
}

/// PFADD key [element ...]: 1 if the key was created or any register changed.
fn pfadd(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let Some(key) = argv.get(1) else {
        return Reply::err(errors::wrong_arity("pfadd"));
    };
    let (mut data, mut updated) = match hll_for_write(ctx, key) {
        Err(e) => return e,
        Ok(Some(d)) => (d, 0u64),
        Ok(None) => (new_sparse(), 1),
    };
    for ele in &argv[2..] {
        let (index, count) = pat_len(ele);
        match hll_set(&mut data, index, count) {
            Ok(true) => updated += 1,
            Ok(false) => {}
            Err(()) => {
                // Like Redis, which edits in place: earlier elements stay applied.
                store(ctx, key, data);
                return Reply::err(CORRUPTED_HLL);
            }
        }
    }
    if updated > 0 {
        invalidate_cache(&mut data);
        ctx.dirty(updated);
    }
    store(ctx, key, data);
    Reply::Integer((updated > 0) as i64)
}

/// PFCOUNT key [key ...]: one key uses (and refreshes) the cached cardinality; several
/// keys are merged into a temporary without touching them.
fn pfcount(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    if argv.len() < 2 {
        return Reply::err(errors::wrong_arity("pfcount"));
    }
    if argv.len() > 2 {
        let mut max = vec![0u8; HLL_REGISTERS];
        for key in &argv[1..] {
            let data = match ctx.lookup_read(key) {
                None => continue,
                Some(e) => match e.value.as_str() {
                    None => return Reply::err(errors::WRONGTYPE),
                    Some(s) if !is_valid(s) => return Reply::err(INVALID_HLL),
                    Some(s) => s.clone(),
                },
            };
            let Some(regs) = registers(&data) else {
                return Reply::err(CORRUPTED_HLL);
            };
            for (m, r) in max.iter_mut().zip(regs) {
                *m = (*m).max(r);
            }
        }
        return Reply::Integer(estimate(&max) as i64);
    }
    let key = &argv[1];
    let mut data = match hll_for_write(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::Integer(0),
        Ok(Some(d)) => d,
    };
    if cache_valid(&data) {
        let mut card = [0u8; 8];
        card.copy_from_slice(&data[8..16]);
        store(ctx, key, data);
        return Reply::Integer(u64::from_le_bytes(card) as i64);
    }
    let Some(regs) = registers(&data) else {
        store(ctx, key, data);
        return Reply::err(CORRUPTED_HLL);
    };
    let card = estimate(&regs);
    data[8..16].copy_from_slice(&card.to_le_bytes());
    store(ctx, key, data);
    ctx.dirty(1);
    Reply::Integer(card as i64)
}

/// PFMERGE dest [src ...]: register-wise max of dest and the sources; dense if any input
/// was dense, otherwise sparse built register by register as Redis does.
fn pfmerge(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    if argv.len() < 2 {
        return Reply::err(errors::wrong_arity("pfmerge"));
    }
    let mut max = vec![0u8; HLL_REGISTERS];
    let mut use_dense = false;
    for key in &argv[1..] {
        let data = match ctx.lookup_read(key) {
            None => continue,
            Some(e) => match e.value.as_str() {
                None => return Reply::err(errors::WRONGTYPE),
                Some(s) if !is_valid(s) => return Reply::err(INVALID_HLL),
                Some(s) => s.clone(),
            },
        };
        use_dense |= data[4] == ENC_DENSE;
        let Some(regs) = registers(&data) else {
            return Reply::err(CORRUPTED_HLL);
        };
        for (m, r) in max.iter_mut().zip(regs) {
            *m = (*m).max(r);
        }
    }
    let dest = &argv[1];
    let mut data = match hll_for_write(ctx, dest) {
        Err(e) => return e,
        Ok(Some(d)) => d,
        Ok(None) => new_sparse(),
    };
    if use_dense && data[4] == ENC_SPARSE {
        match to_dense(&data) {
            Some(d) => data = d,
            None => {
                store(ctx, dest, data);
                return Reply::err(CORRUPTED_HLL);
            }
        }
    }
    for (i, &m) in max.iter().enumerate() {
        if m > 0 && hll_set(&mut data, i, m).is_err() {
            store(ctx, dest, data);
            return Reply::err(CORRUPTED_HLL);
        }
    }
    invalidate_cache(&mut data);
    store(ctx, dest, data);
    ctx.dirty(1);
    Reply::Status("OK".into())
}

/// PFDEBUG GETREG|DECODE|ENCODING|TODENSE key (GETREG and TODENSE make the key dense).
fn pfdebug(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    let (Some(sub), Some(key)) = (argv.get(1), argv.get(2)) else {
        return Reply::err(errors::wrong_arity("pfdebug"));
    };
    let sub_name = String::from_utf8_lossy(sub).into_owned();
    if argv.len() != 3 {
        return Reply::err(format!(
            "ERR Wrong number of arguments for the '{sub_name}' subcommand"
        ));
    }
    let mut data = match hll_for_write(ctx, key) {
        Err(e) => return e,
        Ok(None) => return Reply::err("ERR The specified key does not exist"),
        Ok(Some(d)) => d,
    };
    let is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
    let sparse = data[4] == ENC_SPARSE;
    let reply = if is("getreg") || is("todense") {
        let converted = if sparse {
            match to_dense(&data) {
                Some(d) => {
                    // Redis bumps server.dirty here but signals no key modification, so
                    // WATCH is not affected; our dirty counter would touch watchers.
                    data = d;
                    true
                }
                None => {
                    store(ctx, key, data);
                    return Reply::err(CORRUPTED_HLL);
                }
            }
        } else {
            false
        };
        if is("todense") {
            Reply::Integer(converted as i64)
        } else {
            Reply::Array(
                (0..HLL_REGISTERS)
                    .map(|i| Reply::Integer(dense_get(&data[HDR..], i) as i64))
                    .collect(),
            )
        }
    } else if is("decode") {
        if !sparse {
            store(ctx, key, data);
            return Reply::err("ERR HLL encoding is not sparse");
        }
        let mut out: Vec<String> = Vec::new();
        let mut p = HDR;
        while let Some((val, run, len)) = sparse_op(&data, p) {
            out.push(match (val, len) {
                (0, 1) => format!("z:{run}"),
                (0, _) => format!("Z:{run}"),
                _ => format!("v:{val},{run}"),
            });
            p += len;
        }
        Reply::Bulk(Bytes::from(out.join(" ")))
    } else if is("encoding") {
        Reply::Status(if sparse { "sparse" } else { "dense" }.into())
    } else {
        Reply::err(format!("ERR Unknown PFDEBUG subcommand '{sub_name}'"))
    };
    store(ctx, key, data);
    reply
}

/// PFSELFTEST: checks the dense register packing, that sparse and dense forms agree, and
/// the estimator's error bound (a smaller run than Redis's, same checks in spirit).
fn pfselftest(_ctx: &mut Ctx, _argv: &[Bytes]) -> Reply {
    match self_test() {
        Ok(()) => Reply::Status("OK".into()),
        Err(msg) => Reply::err(format!("TESTFAILED {msg}")),
    }
}

fn self_test() -> Result<(), String> {
    // xorshift: deterministic values for the register test.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut regs = vec![0u8; DENSE_SIZE - HDR];
    let mut expect = vec![0u8; HLL_REGISTERS];
    for _ in 0..1000 {
        for (i, e) in expect.iter_mut().enumerate() {
            *e = (next() & 63) as u8;
            dense_put(&mut regs, i, *e);
        }
        if let Some(i) = (0..HLL_REGISTERS).find(|&i| dense_get(&regs, i) != expect[i]) {
            return Err(format!("Register error at {i}"));
        }
    }
    let mut sparse = new_sparse();
    let mut dense = to_dense(&sparse).ok_or("sparse to dense conversion failed")?;
    let mut checkpoint = 1;
    for n in 1..=100_000u64 {
        let (index, count) = pat_len(&next().to_le_bytes());
        let a = hll_set(&mut sparse, index, count);
        let b = hll_set(&mut dense, index, count);
        if a.is_err() || a != b {
            return Err(format!("sparse and dense disagree after {n} elements"));
        }
        if n == checkpoint {
            checkpoint *= 10;
            let est = registers(&dense).map(|r| estimate(&r)).unwrap_or(0) as f64;
            let rel = (est - n as f64).abs() / n as f64;
            // 5 standard errors (1.04/sqrt(m)), plus slack for tiny cardinalities.
            if rel > 5.0 * 1.04 / (HLL_REGISTERS as f64).sqrt() && (est - n as f64).abs() > 1.0 {
                return Err(format!("Approximation error at {n}: {est}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_registers_round_trip() {
        let mut regs = vec![0u8; DENSE_SIZE - HDR];
        for i in [0, 1, 2, 3, 777, HLL_REGISTERS - 1] {
            dense_put(&mut regs, i, (i % 63) as u8 + 1);
        }
        for i in [0, 1, 2, 3, 777, HLL_REGISTERS - 1] {
            assert_eq!(dense_get(&regs, i), (i % 63) as u8 + 1);
        }
        assert_eq!(dense_get(&regs, 4), 0);
    }

    #[test]
    fn sparse_set_splits_and_counts() {
        let mut h = new_sparse();
        assert_eq!(hll_set(&mut h, 100, 3), Ok(true));
        assert_eq!(hll_set(&mut h, 100, 2), Ok(false));
        assert_eq!(h[4], ENC_SPARSE);
        // XZERO(100) VAL(3,1) XZERO(16283)
        assert_eq!(&h[HDR..], &[0x40, 99, 0x88, 0x40 | 0x3F, 0x9A]);
        let regs = registers(&h).unwrap_or_default();
        assert_eq!(regs[100], 3);
        assert_eq!(hll_set(&mut h, 101, 3), Ok(true));
        assert_eq!(&h[HDR..], &[0x40, 99, 0x89, 0x40 | 0x3F, 0x99]);
    }

    #[test]
    fn big_values_promote_to_dense() {
        let mut h = new_sparse();
        assert_eq!(hll_set(&mut h, 5, 40), Ok(true));
        assert_eq!(h.len(), DENSE_SIZE);
        assert_eq!(h[4], ENC_DENSE);
        assert_eq!(registers(&h).map(|r| r[5]), Some(40));
    }

    #[test]
    fn estimates_are_close() {
        assert_eq!(estimate(&[0u8; HLL_REGISTERS]), 0);
        let mut h = new_sparse();
        for i in 0..10000 {
            let (idx, c) = pat_len(format!("ele{i}").as_bytes());
            assert!(hll_set(&mut h, idx, c).is_ok());
        }
        let est = registers(&h).map(|r| estimate(&r)).unwrap_or(0);
        assert!((9500..10500).contains(&est), "{est}");
    }

    #[test]
    fn self_test_passes() {
        assert_eq!(self_test(), Ok(()));
    }

    #[test]
    fn corrupt_headers_are_rejected() {
        assert!(is_valid(&new_sparse()));
        assert!(!is_valid(b"HYLL"));
        let mut bad = new_sparse();
        bad[4] = 0;
        assert!(!is_valid(&bad));
        bad[4] = 2;
        assert!(!is_valid(&bad));
    }
}
