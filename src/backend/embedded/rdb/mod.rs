//! Redis's serialization format (RDB version 10, as written by Redis 7.0): DUMP payloads
//! for DUMP/RESTORE and whole snapshot files. Values are encoded the way Redis 7.0 encodes
//! them so payloads move between respgate and a real redis-server in both directions.

pub mod compact;
pub mod crc64;
pub mod decode;
pub mod encode;
pub mod lzf;

use bytes::Bytes;

use super::db::Db;
use super::value::Value;
use super::{State, Tunables};
use decode::Reader;

/// The RDB version Redis 7.0 writes (and the newest one accepted in DUMP payloads).
pub const RDB_VERSION: u16 = 10;

/// Object type bytes (rdb.h).
pub mod types {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
}

/// Snapshot file opcodes (rdb.h).
mod opcodes {
    pub const FUNCTION_PRE_GA: u8 = 246;
    pub const FUNCTION2: u8 = 245;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RdbError {
    #[error("unexpected end of RDB data")]
    Truncated,
    #[error("malformed RDB data")]
    BadFormat,
    #[error("RDB object type {0} is not supported")]
    Unsupported(u8),
    #[error("RDB version or checksum is wrong")]
    VersionOrChecksum,
    #[error("not an RDB file")]
    NotRdb,
}

/// DUMP's payload: type byte, object, RDB version (little endian) and CRC64 of all that.
pub fn dump_payload(value: &Value, t: &Tunables) -> Vec<u8> {
    let mut buf = Vec::new();
    encode::write_typed_value(&mut buf, value, t);
    buf.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64::crc64(0, &buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

/// Checks a DUMP payload's footer (Redis's verifyDumpPayload).
pub fn verify_dump_payload(payload: &[u8]) -> Result<(), RdbError> {
    if payload.len() < 10 {
        return Err(RdbError::VersionOrChecksum);
    }
    let footer = &payload[payload.len() - 10..];
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION {
        return Err(RdbError::VersionOrChecksum);
    }
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    if crc64::crc64(0, &payload[..payload.len() - 8]) != u64::from_le_bytes(crc) {
        return Err(RdbError::VersionOrChecksum);
    }
    Ok(())
}

/// The value in a verified DUMP payload. Like Redis, the object is read from the whole
/// payload, footer included (an object running into the footer bytes is accepted), and
/// anything after the object is ignored.
pub fn parse_dump_payload(payload: &[u8], t: &Tunables) -> Result<Value, RdbError> {
    verify_dump_payload(payload)?;
    let mut r = Reader::new(payload);
    let kind = r.byte()?;
    decode::read_value(&mut r, kind, t)
}

fn write_aux(buf: &mut Vec<u8>, key: &str, value: &[u8]) {
    buf.push(opcodes::AUX);
    encode::write_string(buf, key.as_bytes());
    encode::write_string(buf, value);
}

/// A complete RDB file of every live key, as Redis 7.0's SAVE writes it.
pub fn write_snapshot(state: &State) -> Vec<u8> {
    write_snapshot_dbs(&state.dbs, &state.tunables)
}

/// [`write_snapshot`] over given databases (tests and tools build these without a `State`).
pub fn write_snapshot_dbs(dbs: &[Db], tunables: &Tunables) -> Vec<u8> {
    let now = super::unix_ms();
    let mut buf = Vec::from(&b"REDIS0010"[..]);
    write_aux(&mut buf, "redis-ver", b"7.0.15");
    write_aux(&mut buf, "redis-bits", b"64");
    write_aux(&mut buf, "ctime", (now / 1000).to_string().as_bytes());
    let used: usize = dbs.iter().map(|d| d.approx_memory()).sum();
    write_aux(&mut buf, "used-mem", used.to_string().as_bytes());
    write_aux(&mut buf, "aof-base", b"0");
    for (index, db) in dbs.iter().enumerate() {
        let mut body = Vec::new();
        let (mut keys, mut expires) = (0u64, 0u64);
        db.for_each_live(now, |key, entry| {
            let mut obj = Vec::new();
            encode::write_typed_value(&mut obj, &entry.value, tunables);
            keys += 1;
            if let Some(at) = entry.expire_at() {
                expires += 1;
                body.push(opcodes::EXPIRETIME_MS);
                body.extend_from_slice(&at.to_le_bytes());
            }
            // Type byte first, then the key, then the object.
            body.push(obj[0]);
            encode::write_string(&mut body, key);
            body.extend_from_slice(&obj[1..]);
        });
        if keys == 0 {
            continue;
        }
        buf.push(opcodes::SELECTDB);
        encode::write_len(&mut buf, index as u64);
        buf.push(opcodes::RESIZEDB);
        encode::write_len(&mut buf, keys);
        encode::write_len(&mut buf, expires);
        buf.extend_from_slice(&body);
    }
    buf.push(opcodes::EOF);
    let crc = crc64::crc64(0, &buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

/// One key loaded from a snapshot: database, key, value, absolute expiry (unix ms).
pub type SnapshotEntry = (usize, Bytes, Value, Option<u64>);

/// Every key of an RDB file (ours or one saved by redis-server up to 7.0), in file order.
/// Expired keys are returned too: the loader decides what to do with them.
pub fn read_snapshot(bytes: &[u8], tunables: &Tunables) -> Result<Vec<SnapshotEntry>, RdbError> {
    let mut r = Reader::new(bytes);
    let magic = r.take(9).map_err(|_| RdbError::NotRdb)?;
    if &magic[..5] != b"REDIS" {
        return Err(RdbError::NotRdb);
    }
    let version: u16 = std::str::from_utf8(&magic[5..])
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or(RdbError::NotRdb)?;
    if version == 0 || version > RDB_VERSION + 1 {
        return Err(RdbError::VersionOrChecksum);
    }
    let mut out = Vec::new();
    let mut db = 0usize;
    let mut expire_at: Option<u64> = None;
    loop {
        let op = r.byte()?;
        match op {
            opcodes::EOF => break,
            opcodes::SELECTDB => {
                db = usize::try_from(r.length()?).map_err(|_| RdbError::BadFormat)?;
            }
            opcodes::RESIZEDB => {
                r.length()?;
                r.length()?;
            }
            opcodes::AUX => {
                r.string()?;
                r.string()?;
            }
            opcodes::EXPIRETIME_MS => expire_at = Some(r.u64_le()?),
            opcodes::EXPIRETIME => expire_at = Some(r.u32_le()? as u64 * 1000),
            opcodes::IDLE => {
                r.length()?;
            }
            opcodes::FREQ => {
                r.byte()?;
            }
            // Function libraries are not ours to load; skip their code.
            opcodes::FUNCTION2 => {
                r.string()?;
            }
            opcodes::FUNCTION_PRE_GA | opcodes::MODULE_AUX => {
                return Err(RdbError::Unsupported(op));
            }
            kind => {
                let key = r.string()?;
                let value = decode::read_value(&mut r, kind, tunables)?;
                out.push((db, key, value, expire_at.take()));
            }
        }
    }
    let body_len = r.position();
    if version >= 5 {
        let crc = r.u64_le()?;
        if crc != 0 && crc != crc64::crc64(0, &bytes[..body_len]) {
            return Err(RdbError::VersionOrChecksum);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::embedded::hash_cmds::HashValue;
    use crate::backend::embedded::list_cmds::ListValue;
    use crate::backend::embedded::set_cmds::SetValue;
    use crate::backend::embedded::stream_cmds::stream::{StreamId, StreamValue};
    use crate::backend::embedded::zset_cmds::ZSetValue;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn samples(t: &Tunables) -> Vec<Value> {
        let big: Vec<Bytes> = (0..600).map(|i| b(&format!("member-{i}"))).collect();
        vec![
            Value::string(b("12")),
            Value::string(b("hello")),
            Value::string(Bytes::from("abc".repeat(100))),
            Value::List(Box::new(ListValue::from_elements([b("a"), b("1"), b("")]))),
            Value::List(Box::new(ListValue::from_elements(big.clone()))),
            Value::Set(Box::new(SetValue::from_members([b("3"), b("-70000")], t))),
            Value::Set(Box::new(SetValue::from_members(big.clone(), t))),
            Value::ZSet(Box::new(ZSetValue::from_pairs(
                vec![(b("a"), 1.5), (b("b"), -2.0)],
                t,
            ))),
            Value::ZSet(Box::new(ZSetValue::from_pairs(
                big.iter()
                    .cloned()
                    .zip((0..).map(|i| i as f64 / 3.0))
                    .collect(),
                t,
            ))),
            Value::Hash(Box::new(HashValue::from_pairs([(b("f"), b("v"))], t))),
            Value::Hash(Box::new(HashValue::from_pairs(
                big.iter().cloned().zip(big.iter().cloned()),
                t,
            ))),
            Value::Stream(Box::new(sample_stream())),
        ]
    }

    /// Two nodes, a tombstone, an entry with its own fields, groups with and without a
    /// PEL, an unknown entries_read.
    fn sample_stream() -> StreamValue {
        let mut s = StreamValue::new();
        for i in 1..=150u64 {
            s.append(StreamId::new(i, i), vec![b("f"), b(&format!("v{i}"))]);
        }
        s.append(
            StreamId::new(200, 0),
            vec![b("other"), b("x"), b("y"), b("-5")],
        );
        s.delete(StreamId::new(3, 3));
        s.create_group(b("g"), StreamId::new(10, 10), 10);
        s.ensure_consumer(b"g", &b("alice"), 1000);
        s.ensure_consumer(b"g", &b("bob"), 1001);
        s.assign_nack(b"g", &b("alice"), StreamId::new(5, 5), 999, 2);
        s.assign_nack(b"g", &b("alice"), StreamId::new(3, 3), 998, 1);
        s.create_group(b("h"), StreamId::ZERO, -1);
        s
    }

    #[test]
    fn mutated_stream_payloads_never_panic() {
        let t = Tunables::default();
        let p = dump_payload(&Value::Stream(Box::new(sample_stream())), &t);
        let body_len = p.len() - 8;
        for at in 1..body_len - 2 {
            for v in [0u8, 1, 0x7f, 0x80, 0xff, p[at].wrapping_add(1)] {
                let mut q = p[..body_len].to_vec();
                q[at] = v;
                let crc = crc64::crc64(0, &q);
                q.extend_from_slice(&crc.to_le_bytes());
                // Refused or accepted, but never a panic; what is accepted dumps again.
                if let Ok(v) = parse_dump_payload(&q, &t) {
                    let _ = dump_payload(&v, &t);
                }
            }
        }
    }

    #[test]
    fn redis_6_stream_payloads_load_with_derived_counters() {
        let t = Tunables::default();
        let mut body = vec![types::STREAM_LISTPACKS];
        encode::write_stream(&mut body, &sample_stream(), types::STREAM_LISTPACKS);
        body.extend_from_slice(&9u16.to_le_bytes());
        let crc = crc64::crc64(0, &body);
        body.extend_from_slice(&crc.to_le_bytes());
        let Ok(Value::Stream(st)) = parse_dump_payload(&body, &t) else {
            panic!("type 15 payload refused");
        };
        // As Redis 7.0 loads them: entries_added = length, first ID = first live entry,
        // no max deleted ID, entries_read estimated (unknown behind a tombstone).
        assert_eq!(st.len(), 150);
        assert_eq!(st.entries_added, 150);
        assert_eq!(st.first_id, StreamId::new(1, 1));
        assert_eq!(st.max_deleted_id, StreamId::ZERO);
        assert_eq!(st.group(b"h").map(|g| g.entries_read), Some(0));
        assert_eq!(st.group(b"g").map(|g| g.entries_read), Some(-1));
        assert_eq!(st.group(b"g").map(|g| g.pel.len()), Some(2));
    }

    #[test]
    fn stream_payloads_round_trip_byte_for_byte() {
        let t = Tunables::default();
        let v = Value::Stream(Box::new(sample_stream()));
        let p = dump_payload(&v, &t);
        assert_eq!(p[0], types::STREAM_LISTPACKS_2);
        let back = parse_dump_payload(&p, &t).expect("valid payload");
        assert_eq!(dump_payload(&back, &t), p);
        let Value::Stream(st) = back else {
            panic!("not a stream");
        };
        assert_eq!(st.len(), 150);
        assert_eq!(st.node_count(), 2);
        let g = st.group(b"g").expect("group g");
        assert_eq!(g.pel.len(), 2);
        assert_eq!(g.pel[&StreamId::new(5, 5)].delivery_count, 2);
        assert_eq!(g.consumers[&b("alice")].pel.len(), 2);
        assert_eq!(st.group(b"h").map(|g| g.entries_read), Some(-1));
    }

    fn contents(v: &Value) -> (String, Vec<String>) {
        let s = |x: &Bytes| String::from_utf8_lossy(x).into_owned();
        let mut items: Vec<String> = match v {
            Value::Str { data, .. } => vec![s(data)],
            Value::List(l) => return (v.encoding_name().into(), l.iter().map(s).collect()),
            Value::Set(x) => x.members().map(|m| s(&m)).collect(),
            Value::ZSet(z) => z.iter().map(|(m, sc)| format!("{}={sc}", s(m))).collect(),
            Value::Hash(h) => h
                .iter()
                .map(|(f, x)| format!("{}={}", s(f), s(x)))
                .collect(),
            Value::Stream(st) => st
                .entries()
                .map(|(id, fields)| format!("{id:?}={:?}", fields))
                .collect(),
        };
        items.sort();
        (v.encoding_name().into(), items)
    }

    #[test]
    fn dump_payloads_round_trip_with_encodings() {
        let t = Tunables::default();
        for v in samples(&t) {
            let p = dump_payload(&v, &t);
            let back = parse_dump_payload(&p, &t).expect("valid payload");
            assert_eq!(contents(&back), contents(&v));
        }
    }

    #[test]
    fn small_values_match_redis_bytes() {
        let t = Tunables::default();
        // Redis 7.0 dumps SET k 12 as type 0, int8 encoding of 12, version 10, CRC64.
        let p = dump_payload(&Value::string(b("12")), &t);
        assert_eq!(&p[..5], &[0, 0xc0, 12, 10, 0]);
        assert_eq!(p.len(), 13);
    }

    #[test]
    fn corrupted_and_truncated_payloads_are_refused() {
        let t = Tunables::default();
        for v in samples(&t) {
            let p = dump_payload(&v, &t);
            let mut bad = p.clone();
            let mid = bad.len() / 2;
            bad[mid] ^= 0x55;
            assert_eq!(
                parse_dump_payload(&bad, &t).err(),
                Some(RdbError::VersionOrChecksum)
            );
            // Truncate the body well before its end but give it a valid footer: must fail
            // cleanly. (A cut within the last bytes may legitimately parse into the footer,
            // as it does in Redis.)
            let body = &p[..p.len() - 10];
            let cuts: &[usize] = if body.len() > 60 {
                &[0, body.len() / 3]
            } else {
                &[0]
            };
            for &cut in cuts {
                let mut q = body[..cut].to_vec();
                q.extend_from_slice(&RDB_VERSION.to_le_bytes());
                let crc = crc64::crc64(0, &q);
                q.extend_from_slice(&crc.to_le_bytes());
                assert!(parse_dump_payload(&q, &t).is_err(), "cut {cut}");
            }
        }
    }

    fn with_footer(body: &[u8]) -> Vec<u8> {
        let mut q = body.to_vec();
        q.extend_from_slice(&RDB_VERSION.to_le_bytes());
        let crc = crc64::crc64(0, &q);
        q.extend_from_slice(&crc.to_le_bytes());
        q
    }

    #[test]
    fn hostile_lengths_do_not_allocate() {
        let t = Tunables::default();
        // A list claiming 2^64-1 elements, a string claiming 4 GiB, an LZF string claiming
        // to expand to 2^60 bytes, a listpack blob whose header lies.
        let cases: Vec<Vec<u8>> = vec![
            vec![
                types::LIST,
                0x81,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
            ],
            vec![types::STRING, 0x80, 0xff, 0xff, 0xff, 0xff, b'a'],
            vec![
                types::STRING,
                0xc3,
                0x02,
                0x81,
                0x10,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0x00,
                b'a',
            ],
            vec![
                types::HASH_LISTPACK,
                0x0c,
                0xff,
                0xff,
                0,
                0,
                2,
                0,
                0x81,
                b'a',
                2,
                1,
                1,
                0xff,
            ],
            vec![types::STREAM_LISTPACKS_2, 0],
            vec![types::HASH, 1, 1, b'f'],
            vec![types::HASH, 2, 1, b'f', 1, b'v', 1, b'f', 1, b'w'],
            vec![types::ZSET_2, 1, 1, b'm', 0, 0, 0, 0, 0, 0, 0xf8, 0x7f],
            vec![types::SET, 0],
            vec![42],
        ];
        for c in cases {
            assert!(parse_dump_payload(&with_footer(&c), &t).is_err(), "{c:?}");
        }
        assert!(parse_dump_payload(&[0; 9], &t).is_err());
        let mut newer = with_footer(&[types::STRING, 1, b'a']);
        newer[3] = 11;
        assert_eq!(
            parse_dump_payload(&newer, &t).err(),
            Some(RdbError::VersionOrChecksum)
        );
    }

    #[test]
    fn snapshot_round_trips() {
        let t = Tunables::default();
        let mut state_dbs = vec![Db::default(), Db::default()];
        let now = crate::backend::embedded::unix_ms();
        for (i, v) in samples(&t).into_iter().enumerate() {
            let expire = (i.is_multiple_of(2)).then_some(now + 100_000);
            state_dbs[i % 2].set(format!("k{i}").as_bytes(), v, expire, now);
        }
        let bytes = write_snapshot_dbs(&state_dbs, &t);
        assert_eq!(&bytes[..9], b"REDIS0010");
        let loaded = read_snapshot(&bytes, &t).expect("valid");
        assert_eq!(loaded.len(), samples(&t).len());
        for (db, key, v, exp) in &loaded {
            let i: usize = String::from_utf8_lossy(&key[1..]).parse().unwrap();
            assert_eq!(*db, i % 2);
            assert_eq!(exp.is_some(), i.is_multiple_of(2));
            assert_eq!(contents(v), contents(&samples(&t)[i]));
        }
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 12] ^= 1;
        assert!(read_snapshot(&bad, &t).is_err());
        assert!(read_snapshot(&bytes[..n - 3], &t).is_err());
        assert_eq!(
            read_snapshot(b"RUDIS0010", &t).err(),
            Some(RdbError::NotRdb)
        );
    }
}
