//! Counting, unlinking or picking the keys that match a pattern without holding the
//! server: a tenant's DBSIZE, FLUSHDB/FLUSHALL and RANDOMKEY when forwarding.
//!
//! Redis has no command for any of them. One script over the whole keyspace would block a
//! shared server for as long as SCAN takes to visit every key of every tenant (about half a
//! second for 2 million keys here), so a tenant's DBSIZE, O(1) in Redis, would stall every
//! other client. Instead each step is a short script that SCANs a bounded stretch from a
//! cursor (and unlinks or keeps what it found), and respgate carries the cursor from step
//! to step; other clients' commands run between the steps. Like a SCAN, a walk counts every key
//! that exists from its start to its end, and may or may not see keys written meanwhile.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::cluster::raw;
use super::cluster::router::{Client, error_frame};
use super::conn::{BackendConn, encode_command};
use super::{BackendError, Remote};
use crate::protocol::reply_scan::Frame;
use crate::protocol::{Protocol, Reply};

/// SCAN calls per step, each with COUNT [`SCAN_COUNT`]: a step visits about 10 000 of the
/// server's hash buckets (a few milliseconds), so a step never holds the server long.
const STEP_SCANS: u32 = 10;
const SCAN_COUNT: &str = "1000";

/// One step: ARGV = cursor, pattern, COUNT, scans, and a db to SELECT first ('' for the
/// connection's; a SELECT in a script does not change the connection's db). Returns {next
/// cursor, keys matched}, or nil when the db does not exist (the end of FLUSHALL's dbs).
const COUNT_STEP: &str = "if ARGV[5] ~= '' then local s = redis.pcall('SELECT', ARGV[5]) \
if s.err then if string.find(s.err, 'out of range') then return false end return s end end \
local c, n, i = ARGV[1], 0, 0 repeat \
local r = redis.call('SCAN', c, 'MATCH', ARGV[2], 'COUNT', ARGV[3]) c = r[1] n = n + #r[2] \
i = i + 1 until c == '0' or i >= tonumber(ARGV[4]) return {c, n}";

/// One step that also unlinks the keys it found.
const UNLINK_STEP: &str = "if ARGV[5] ~= '' then local s = redis.pcall('SELECT', ARGV[5]) \
if s.err then if string.find(s.err, 'out of range') then return false end return s end end \
local c, n, i = ARGV[1], 0, 0 repeat \
local r = redis.call('SCAN', c, 'MATCH', ARGV[2], 'COUNT', ARGV[3]) c = r[1] \
for _, k in ipairs(r[2]) do redis.call('UNLINK', k) end n = n + #r[2] \
i = i + 1 until c == '0' or i >= tonumber(ARGV[4]) return {c, n}";

/// One step that stops at the first keys it finds, and returns {next cursor, {keys}}.
const SAMPLE_STEP: &str = "local c, i, found = ARGV[1], 0, {} repeat \
local r = redis.call('SCAN', c, 'MATCH', ARGV[2], 'COUNT', ARGV[3]) c = r[1] \
for _, k in ipairs(r[2]) do found[#found + 1] = k end \
i = i + 1 until c == '0' or i >= tonumber(ARGV[4]) or #found > 0 return {c, found}";

/// What a walk does with the keys it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkAction {
    /// DBSIZE: the reply is the number of keys.
    Count,
    /// FLUSHDB/FLUSHALL: the keys are unlinked; the reply is `+OK`.
    Unlink,
    /// RANDOMKEY: the reply is one of the keys (from a random point of the keyspace), or
    /// null when there is none.
    Sample,
}

/// A walk over the keys matching `pattern`.
pub struct Walk {
    pub pattern: Bytes,
    pub action: WalkAction,
    /// Standalone and Sentinel: the connection the client's commands go to (in its db).
    /// Cluster: None, every master is walked (db 0).
    pub conn: Option<BackendConn>,
    /// FLUSHALL outside a cluster: every db in turn, from 0 until one is out of range.
    pub every_db: bool,
}

/// Why a walk stopped short.
#[derive(Debug)]
pub enum WalkError {
    /// The backend answered a step with this error reply (e.g. NOPERM): passed on as is.
    Reply(Bytes),
    /// The connection failed or timed out.
    Backend(BackendError),
    /// A step's reply was not the `[cursor, count]` the script returns.
    Unexpected,
}

/// What a walk to the end does with the keys: count them, or unlink them too.
#[derive(Debug, Clone, Copy)]
enum Tally {
    Count,
    Unlink,
}

/// Walks the keyspace of the server behind `conn` (every db with `every_db`); returns how
/// many keys matched (and were unlinked, for [`Tally::Unlink`]).
async fn walk_server(
    conn: &BackendConn,
    pattern: &Bytes,
    tally: Tally,
    every_db: bool,
    timeout: Option<Duration>,
) -> Result<u64, WalkError> {
    if !every_db {
        return walk_db(conn, pattern, tally, None, timeout)
            .await
            .map(|n| n.unwrap_or(0));
    }
    let mut total = 0;
    for db in 0u32.. {
        match walk_db(conn, pattern, tally, Some(db), timeout).await? {
            Some(n) => total += n,
            None => break,
        }
    }
    Ok(total)
}

/// Walks one db (`None`: the connection's own); Ok(None) when `db` is out of range.
async fn walk_db(
    conn: &BackendConn,
    pattern: &Bytes,
    tally: Tally,
    db: Option<u32>,
    timeout: Option<Duration>,
) -> Result<Option<u64>, WalkError> {
    let script = match tally {
        Tally::Count => COUNT_STEP,
        Tally::Unlink => UNLINK_STEP,
    };
    let db = db.map(|d| d.to_string()).unwrap_or_default();
    let mut cursor = Bytes::from_static(b"0");
    let mut total = 0u64;
    loop {
        let Some((next, found)) = step(conn, script, &cursor, pattern, &db, timeout).await? else {
            return Ok(None);
        };
        let Frame::Integer(n) = found else {
            return Err(WalkError::Unexpected);
        };
        total += u64::try_from(n).map_err(|_| WalkError::Unexpected)?;
        if next.as_ref() == b"0" {
            return Ok(Some(total));
        }
        cursor = next;
    }
}

/// One key matching `pattern` on the server behind `conn`, or None if there is none. The
/// walk starts at a random cursor and stops at the first keys it finds, so the answer is
/// random-ish (as RANDOMKEY's own is, bucket by bucket) and usually quick; if nothing
/// follows that cursor, a second walk from 0 makes sure an existing key is found.
async fn sample_server(
    conn: &BackendConn,
    pattern: &Bytes,
    timeout: Option<Duration>,
) -> Result<Option<Bytes>, WalkError> {
    // SCAN takes any cursor (it masks it to its table): a random one is a random place.
    let start = rand::random::<u32>().to_string();
    for from in [start.as_str(), "0"] {
        let mut cursor = Bytes::copy_from_slice(from.as_bytes());
        loop {
            let Some((next, found)) =
                step(conn, SAMPLE_STEP, &cursor, pattern, "", timeout).await?
            else {
                return Err(WalkError::Unexpected);
            };
            let Frame::Array(keys) = found else {
                return Err(WalkError::Unexpected);
            };
            if !keys.is_empty() {
                let pick = rand::random_range(0..keys.len());
                return match &keys[pick] {
                    Frame::Bulk(k) => Ok(Some(k.clone())),
                    _ => Err(WalkError::Unexpected),
                };
            }
            if next.as_ref() == b"0" {
                break;
            }
            cursor = next;
        }
    }
    Ok(None)
}

/// Runs one step of `script` from `cursor` (in `db`, '' for the connection's): the next
/// cursor and what the step found. Ok(None): `db` is out of range.
async fn step(
    conn: &BackendConn,
    script: &str,
    cursor: &[u8],
    pattern: &[u8],
    db: &str,
    timeout: Option<Duration>,
) -> Result<Option<(Bytes, Frame)>, WalkError> {
    let steps = STEP_SCANS.to_string();
    let argv: [&[u8]; 8] = [
        b"EVAL",
        script.as_bytes(),
        b"0",
        cursor,
        pattern,
        SCAN_COUNT.as_bytes(),
        steps.as_bytes(),
        db.as_bytes(),
    ];
    let mut bytes = BytesMut::new();
    encode_command(&mut bytes, &argv);
    let reply = super::cluster::router::ask(conn, bytes.freeze(), 0, timeout)
        .await
        .map_err(WalkError::Backend)?;
    if raw::is_error(&reply) {
        return Err(WalkError::Reply(reply));
    }
    if raw::is_null(&reply) {
        return Ok(None);
    }
    step_reply(&reply).map(Some).ok_or(WalkError::Unexpected)
}

/// Runs a walk: on the client's connection (standalone, Sentinel), or master by master over
/// connections logged in as the client's backend user (cluster). The reply is the client's:
/// the count, `+OK` or the key found, a step's error reply as the backend gave it, or an
/// error naming the node that failed.
pub async fn run(remote: &Remote, walk: Walk, client: Client<'_>) -> Bytes {
    let servers = match servers(remote, &walk, client) {
        Ok(s) => s,
        Err(reply) => return reply,
    };
    let timeout = remote.command_timeout;
    let tally = match walk.action {
        WalkAction::Count => Tally::Count,
        WalkAction::Unlink => Tally::Unlink,
        WalkAction::Sample => {
            // The first server holding one of the keys answers.
            for (conn, addr) in &servers {
                match sample_server(conn, &walk.pattern, timeout).await {
                    Ok(None) => {}
                    Ok(Some(key)) => return encoded(&Reply::Bulk(key), client.proto),
                    Err(e) => return walk_error(e, addr),
                }
            }
            return encoded(&Reply::Null, client.proto);
        }
    };
    let mut total = 0;
    for (conn, addr) in &servers {
        match walk_server(conn, &walk.pattern, tally, walk.every_db, timeout).await {
            Ok(n) => total += n,
            Err(e) => return walk_error(e, addr),
        }
    }
    match tally {
        Tally::Count => encoded(
            &Reply::Integer(i64::try_from(total).unwrap_or(i64::MAX)),
            client.proto,
        ),
        Tally::Unlink => encoded(&Reply::ok(), client.proto),
    }
}

/// The servers a walk visits, with the address each error names: the client's connection,
/// or every master of a cluster (for RANDOMKEY from a random one on). Err: the reply when
/// there is none.
fn servers(
    remote: &Remote,
    walk: &Walk,
    client: Client<'_>,
) -> Result<Vec<(BackendConn, String)>, Bytes> {
    match (&walk.conn, &remote.cluster) {
        (Some(conn), _) => Ok(vec![(conn.clone(), remote.target.address())]),
        (None, Some(cluster)) => {
            let mut masters = cluster.master_addresses();
            if masters.is_empty() {
                return Err(error_frame("CLUSTERDOWN The cluster is down"));
            }
            if walk.action == WalkAction::Sample {
                let k = rand::random_range(0..masters.len());
                masters.rotate_left(k);
            }
            Ok(masters
                .into_iter()
                .map(|addr| {
                    let conn = cluster.conn_to(remote, &addr, client.user, client.proto, client.id);
                    (conn, addr)
                })
                .collect())
        }
        (None, None) => Err(walk_error(WalkError::Unexpected, &remote.target.address())),
    }
}

fn encoded(reply: &Reply, proto: Protocol) -> Bytes {
    let mut out = BytesMut::new();
    reply.encode(proto, &mut out);
    out.freeze()
}

/// The client's reply when a walk failed on the server at `addr`.
fn walk_error(e: WalkError, addr: &str) -> Bytes {
    match e {
        WalkError::Reply(reply) => reply,
        WalkError::Backend(e) => error_frame(&e.client_error(addr)),
        WalkError::Unexpected => error_frame(&format!(
            "ERR respgate: unexpected reply from {addr} while walking the keyspace"
        )),
    }
}

/// `[cursor, found]` from a step's reply.
fn step_reply(reply: &Bytes) -> Option<(Bytes, Frame)> {
    let Some(Frame::Array(mut items)) = raw::decode(reply) else {
        return None;
    };
    let found = items.pop()?;
    match items.as_slice() {
        [Frame::Bulk(cursor)] => Some((cursor.clone(), found)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_reply_gives_the_cursor_and_what_was_found() {
        let reply = Bytes::from_static(b"*2\r\n$5\r\n12345\r\n:7\r\n");
        assert_eq!(
            step_reply(&reply),
            Some((Bytes::from_static(b"12345"), Frame::Integer(7)))
        );
        let reply = Bytes::from_static(b"*2\r\n$1\r\n0\r\n*1\r\n$1\r\nk\r\n");
        assert_eq!(
            step_reply(&reply),
            Some((
                Bytes::from_static(b"0"),
                Frame::Array(vec![Frame::Bulk(Bytes::from_static(b"k"))])
            ))
        );
        assert_eq!(step_reply(&Bytes::from_static(b":1\r\n")), None);
        assert_eq!(step_reply(&Bytes::from_static(b"*2\r\n:0\r\n:1\r\n")), None);
    }
}
