//! The append-only file: every write the engine performs, as the RESP commands Redis would
//! propagate (absolute expiry times, SPOP as SREM, expired keys as DEL), replayed at start,
//! fsynced per `appendfsync`, and rewritten (compacted) from the keyspace when it grows.
//!
//! The format is plain RESP (Redis's AOF without an RDB preamble), so `redis-check-aof`
//! accepts it and a real redis-server 7 loads it (it upgrades a lone `appendonly.aof`).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes, BytesMut};

use super::stream_cmds::stream::StreamValue;
use super::value::Value;
use super::{ClientView, Engine, State};
use crate::command::table;
use crate::protocol::Protocol;
use crate::protocol::parser::{ParserLimits, RequestParser};

#[derive(Debug, thiserror::Error)]
pub enum AofError {
    #[error("cannot read or write the AOF {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the AOF {path} is corrupt at command {index}: {why}")]
    Corrupt {
        path: PathBuf,
        index: usize,
        why: String,
    },
}

/// `appendfsync`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    Always,
    EverySec,
    No,
}

impl Fsync {
    pub fn parse(s: &str) -> Fsync {
        match s.to_ascii_lowercase().as_str() {
            "always" => Fsync::Always,
            "no" => Fsync::No,
            _ => Fsync::EverySec,
        }
    }
}

/// The open AOF and the commands of the current batch not yet written.
pub struct Aof {
    path: PathBuf,
    file: File,
    pending: BytesMut,
    /// The database the file's last SELECT chose (None: must SELECT before the next write).
    selected: Option<usize>,
    pub fsync: Fsync,
    /// Bytes in the file, and right after the last rewrite (auto-aof-rewrite-percentage).
    pub size: u64,
    pub base_size: u64,
    /// Written since the last fsync (everysec).
    unsynced: bool,
}

impl Aof {
    pub fn open(path: &Path, fsync: Fsync) -> Result<Aof, AofError> {
        let io = |source| AofError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        let size = file.metadata().map_err(io)?.len();
        Ok(Aof {
            path: path.to_path_buf(),
            file,
            pending: BytesMut::new(),
            selected: None,
            fsync,
            size,
            base_size: size,
            unsynced: false,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues one command (with a SELECT first when the database changes).
    pub fn append(&mut self, db: usize, argv: &[Bytes]) {
        if self.selected != Some(db) {
            let n = db.to_string();
            encode(&mut self.pending, &[b"SELECT", n.as_bytes()]);
            self.selected = Some(db);
        }
        let parts: Vec<&[u8]> = argv.iter().map(|a| a.as_ref()).collect();
        encode(&mut self.pending, &parts);
    }

    /// Writes what the batch queued; with `appendfsync always` also fsyncs, so a reply
    /// sent after this survives a crash.
    pub fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.pending)?;
        self.size += self.pending.len() as u64;
        self.pending.clear();
        match self.fsync {
            Fsync::Always => self.file.sync_data()?,
            Fsync::EverySec => self.unsynced = true,
            Fsync::No => {}
        }
        Ok(())
    }

    /// everysec: a handle to fsync outside the lock, if anything was written since.
    pub fn take_unsynced(&mut self) -> Option<File> {
        if !std::mem::take(&mut self.unsynced) {
            return None;
        }
        self.file.try_clone().ok()
    }

    /// Time for an automatic rewrite (auto-aof-rewrite-percentage 100, min-size)?
    pub fn wants_rewrite(&self, min_size: u64) -> bool {
        self.size >= min_size && self.size >= self.base_size.saturating_mul(2)
    }
}

/// One RESP multibulk.
pub fn encode(out: &mut BytesMut, argv: &[&[u8]]) {
    out.put_u8(b'*');
    out.put_slice(argv.len().to_string().as_bytes());
    out.put_slice(b"\r\n");
    for a in argv {
        out.put_u8(b'$');
        out.put_slice(a.len().to_string().as_bytes());
        out.put_slice(b"\r\n");
        out.put_slice(a);
        out.put_slice(b"\r\n");
    }
}

/// Replays an AOF into the engine (with its clock stopped, so nothing expires halfway as it
/// did not when the commands first ran). Returns the number of commands applied.
pub fn replay(engine: &Engine, path: &Path) -> Result<usize, AofError> {
    let io = |source| AofError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(e)),
    };
    let mut parser = RequestParser::new(ParserLimits {
        max_bulk_len: 512 * 1024 * 1024,
        max_args: usize::MAX / 2,
        max_query_buffer: usize::MAX / 2,
        max_inline_len: 64 * 1024,
    });
    let corrupt = |index, why: String| AofError::Corrupt {
        path: path.to_path_buf(),
        index,
        why,
    };
    let mut db = 0usize;
    let mut applied = 0usize;
    engine.lock_state().clock_override = Some(0);
    let result = (|| {
        loop {
            let buf = parser.buffer_mut();
            buf.reserve(64 * 1024);
            let mut chunk = vec![0u8; 64 * 1024];
            let n = file.read(&mut chunk).map_err(io)?;
            buf.extend_from_slice(&chunk[..n]);
            loop {
                let argv = match parser.next_command() {
                    Ok(Some(argv)) => argv,
                    Ok(None) => break,
                    Err(e) => return Err(corrupt(applied, format!("{e:?}"))),
                };
                let Some(name) = argv.first() else { continue };
                let Some(spec) = table::lookup(name) else {
                    return Err(corrupt(
                        applied,
                        format!("unknown command {}", String::from_utf8_lossy(name)),
                    ));
                };
                if spec.name == "select" {
                    db = argv
                        .get(1)
                        .and_then(|d| super::num::parse_i64(d))
                        .and_then(|d| usize::try_from(d).ok())
                        .filter(|d| *d < engine.databases())
                        .ok_or_else(|| corrupt(applied, "bad SELECT".into()))?;
                    continue;
                }
                // MULTI/EXEC wrappers (written by Redis for scripts and transactions) carry
                // nothing to apply by themselves.
                if matches!(spec.name, "multi" | "exec") {
                    continue;
                }
                let view = ClientView {
                    db,
                    proto: Protocol::Resp2,
                    tracker: None,
                };
                let _ = engine.batch().execute(view, spec, &argv);
                applied += 1;
            }
            if n == 0 {
                if parser.buffered() > 0 {
                    // A command cut by a crash mid-write: Redis's aof-load-truncated yes.
                    tracing::warn!(path = %path.display(), "AOF ends with a truncated command; ignoring it");
                }
                return Ok(applied);
            }
        }
    })();
    engine.lock_state().clock_override = None;
    result
}

/// The keyspace as the shortest commands that rebuild it (the AOF rewrite).
pub fn rewrite_commands(state: &State, now_ms: u64) -> Result<BytesMut, String> {
    const BATCH: usize = 64;
    let mut out = BytesMut::new();
    for (index, db) in state.dbs.iter().enumerate() {
        if db.is_empty() {
            continue;
        }
        let n = index.to_string();
        encode(&mut out, &[b"SELECT", n.as_bytes()]);
        let mut failure = None;
        db.for_each_live(now_ms, |key, entry| {
            if failure.is_some() {
                return;
            }
            match &entry.value {
                Value::Str { data, .. } => encode(&mut out, &[b"SET", key, data]),
                Value::List(l) => {
                    let items: Vec<Bytes> = l.iter().cloned().collect();
                    for chunk in items.chunks(BATCH) {
                        let mut argv: Vec<&[u8]> = vec![b"RPUSH", key];
                        argv.extend(chunk.iter().map(|b| b.as_ref()));
                        encode(&mut out, &argv);
                    }
                }
                Value::Hash(h) => {
                    let pairs: Vec<(Bytes, Bytes)> =
                        h.iter().map(|(f, v)| (f.clone(), v.clone())).collect();
                    for chunk in pairs.chunks(BATCH) {
                        let mut argv: Vec<&[u8]> = vec![b"HSET", key];
                        for (f, v) in chunk {
                            argv.push(f);
                            argv.push(v);
                        }
                        encode(&mut out, &argv);
                    }
                }
                Value::Set(s) => {
                    let members: Vec<Bytes> = s.members().collect();
                    for chunk in members.chunks(BATCH) {
                        let mut argv: Vec<&[u8]> = vec![b"SADD", key];
                        argv.extend(chunk.iter().map(|b| b.as_ref()));
                        encode(&mut out, &argv);
                    }
                }
                Value::ZSet(z) => {
                    let pairs: Vec<(Bytes, String)> = z
                        .iter()
                        .map(|(m, s)| (m.clone(), crate::protocol::reply::format_g17(s)))
                        .collect();
                    for chunk in pairs.chunks(BATCH) {
                        let mut argv: Vec<&[u8]> = vec![b"ZADD", key];
                        for (m, s) in chunk {
                            argv.push(s.as_bytes());
                            argv.push(m);
                        }
                        encode(&mut out, &argv);
                    }
                }
                Value::Stream(st) => rewrite_stream(&mut out, key, st),
                #[allow(unreachable_patterns)]
                other => {
                    failure = Some(format!("cannot rewrite a {} yet", other.type_name()));
                }
            }
            if let Some(at) = entry.expire_at() {
                let at = at.to_string();
                encode(&mut out, &[b"PEXPIREAT", key, at.as_bytes()]);
            }
        });
        if let Some(f) = failure {
            return Err(f);
        }
    }
    Ok(out)
}

/// A stream as Redis's rewriteStreamObject writes it: one XADD per entry (an empty stream
/// by the `XADD MAXLEN 0` trick), XSETID for the counters XADD cannot set, then each group
/// with its consumers: XCLAIMs rebuild the PEL, consumers with nothing pending are created
/// explicitly.
fn rewrite_stream(out: &mut BytesMut, key: &[u8], s: &StreamValue) {
    if s.is_empty() {
        encode(out, &[b"XADD", key, b"MAXLEN", b"0", b"0-1", b"x", b"y"]);
    }
    for (id, fields) in s.entries() {
        let id = id.to_string();
        let mut argv: Vec<&[u8]> = vec![b"XADD", key, id.as_bytes()];
        argv.extend(fields.iter().map(|f| f.as_ref()));
        encode(out, &argv);
    }
    let last = s.last_id.to_string();
    let added = s.entries_added.to_string();
    let max_deleted = s.max_deleted_id.to_string();
    encode(
        out,
        &[
            b"XSETID",
            key,
            last.as_bytes(),
            b"ENTRIESADDED",
            added.as_bytes(),
            b"MAXDELETEDID",
            max_deleted.as_bytes(),
        ],
    );
    for (name, g) in s.groups() {
        let last = g.last_id.to_string();
        let read = g.entries_read.to_string();
        encode(
            out,
            &[
                b"XGROUP",
                b"CREATE",
                key,
                name,
                last.as_bytes(),
                b"ENTRIESREAD",
                read.as_bytes(),
            ],
        );
        for (consumer, c) in &g.consumers {
            if c.pel.is_empty() {
                encode(out, &[b"XGROUP", b"CREATECONSUMER", key, name, consumer]);
            }
            for id in &c.pel {
                let Some(nack) = g.pel.get(id) else {
                    continue;
                };
                let (id, time, count) = (
                    id.to_string(),
                    nack.delivery_time.to_string(),
                    nack.delivery_count.to_string(),
                );
                encode(
                    out,
                    &[
                        b"XCLAIM",
                        key,
                        name,
                        consumer,
                        b"0",
                        id.as_bytes(),
                        b"TIME",
                        time.as_bytes(),
                        b"RETRYCOUNT",
                        count.as_bytes(),
                        b"JUSTID",
                        b"FORCE",
                    ],
                );
            }
        }
    }
}

/// Writes `contents` as the new AOF atomically (temp file, fsync, rename).
pub fn replace_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("aof.rewrite-tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = d.sync_all();
    }
    Ok(())
}
