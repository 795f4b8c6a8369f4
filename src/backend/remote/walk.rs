//! Counting or unlinking the keys that match a pattern without holding the server: a
//! tenant's DBSIZE and FLUSHDB/FLUSHALL when forwarding.
//!
//! Redis has no command for either. One script over the whole keyspace would block a
//! shared server for as long as SCAN takes to visit every key of every tenant (about half a
//! second for 2 million keys here), so a tenant's DBSIZE, O(1) in Redis, would stall every
//! other client. Instead each step is a short script that SCANs a bounded stretch from a
//! cursor (and unlinks what it found), and respgate carries the cursor from step to step;
//! other clients' commands run between the steps. Like a SCAN, a walk counts every key
//! that exists from its start to its end, and may or may not see keys written meanwhile.

use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::cluster::raw;
use super::cluster::router::{Client, error_frame};
use super::conn::{BackendConn, encode_command};
use super::{BackendError, Remote};
use crate::protocol::reply_scan::Frame;

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

/// What a walk does with the keys it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkAction {
    /// DBSIZE: the reply is the number of keys.
    Count,
    /// FLUSHDB/FLUSHALL: the keys are unlinked; the reply is `+OK`.
    Unlink,
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

/// Walks the keyspace of the server behind `conn` (every db with `every_db`); returns how
/// many keys matched (and were unlinked, for [`WalkAction::Unlink`]).
pub async fn walk_server(
    conn: &BackendConn,
    pattern: &Bytes,
    action: WalkAction,
    every_db: bool,
    timeout: Option<Duration>,
) -> Result<u64, WalkError> {
    if !every_db {
        return walk_db(conn, pattern, action, None, timeout)
            .await
            .map(|n| n.unwrap_or(0));
    }
    let mut total = 0;
    for db in 0u32.. {
        match walk_db(conn, pattern, action, Some(db), timeout).await? {
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
    action: WalkAction,
    db: Option<u32>,
    timeout: Option<Duration>,
) -> Result<Option<u64>, WalkError> {
    let script = match action {
        WalkAction::Count => COUNT_STEP,
        WalkAction::Unlink => UNLINK_STEP,
    };
    let steps = STEP_SCANS.to_string();
    let db = db.map(|d| d.to_string()).unwrap_or_default();
    let mut cursor = Bytes::from_static(b"0");
    let mut total = 0u64;
    loop {
        let mut bytes = BytesMut::new();
        let argv: [&[u8]; 8] = [
            b"EVAL",
            script.as_bytes(),
            b"0",
            &cursor,
            pattern,
            SCAN_COUNT.as_bytes(),
            steps.as_bytes(),
            db.as_bytes(),
        ];
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
        let (next, n) = step_reply(&reply).ok_or(WalkError::Unexpected)?;
        total += n;
        if next.as_ref() == b"0" {
            return Ok(Some(total));
        }
        cursor = next;
    }
}

/// Runs a walk to the end: on the client's connection (standalone, Sentinel), or master by
/// master over connections logged in as the client's backend user (cluster). The reply is
/// the client's: the count or `+OK`, a step's error reply as the backend gave it, or an
/// error naming the node that failed.
pub async fn run(remote: &Remote, walk: Walk, client: Client<'_>) -> Bytes {
    let timeout = remote.command_timeout;
    let walked = match (&walk.conn, &remote.cluster) {
        (Some(conn), _) => walk_server(conn, &walk.pattern, walk.action, walk.every_db, timeout)
            .await
            .map_err(|e| (e, remote.target.address())),
        (None, Some(cluster)) => {
            let masters = cluster.master_addresses();
            if masters.is_empty() {
                return error_frame("CLUSTERDOWN The cluster is down");
            }
            let mut total = Ok(0);
            for addr in masters {
                let conn = cluster.conn_to(remote, &addr, client.user, client.proto, client.id);
                match walk_server(&conn, &walk.pattern, walk.action, false, timeout).await {
                    Ok(n) => total = total.map(|t| t + n),
                    Err(e) => {
                        total = Err((e, addr));
                        break;
                    }
                }
            }
            total
        }
        (None, None) => Err((WalkError::Unexpected, remote.target.address())),
    };
    match walked {
        Ok(keys) => reply_for(walk.action, keys),
        Err((WalkError::Reply(reply), _)) => reply,
        Err((WalkError::Backend(e), addr)) => error_frame(&e.client_error(&addr)),
        Err((WalkError::Unexpected, addr)) => error_frame(&format!(
            "ERR respgate: unexpected reply from {addr} while walking the keyspace"
        )),
    }
}

/// `[cursor, n]` from a step's reply.
fn step_reply(reply: &Bytes) -> Option<(Bytes, u64)> {
    let Some(Frame::Array(items)) = raw::decode(reply) else {
        return None;
    };
    match items.as_slice() {
        [Frame::Bulk(cursor), Frame::Integer(n)] => Some((cursor.clone(), u64::try_from(*n).ok()?)),
        _ => None,
    }
}

/// The client's reply to a finished walk: the count, or `+OK`.
pub fn reply_for(action: WalkAction, keys: u64) -> Bytes {
    match action {
        WalkAction::Count => Bytes::from(format!(":{keys}\r\n")),
        WalkAction::Unlink => Bytes::from_static(b"+OK\r\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_reply_gives_the_cursor_and_the_count() {
        let reply = Bytes::from_static(b"*2\r\n$5\r\n12345\r\n:7\r\n");
        assert_eq!(step_reply(&reply), Some((Bytes::from_static(b"12345"), 7)));
        assert_eq!(step_reply(&Bytes::from_static(b":1\r\n")), None);
        assert_eq!(
            step_reply(&Bytes::from_static(b"*2\r\n$1\r\n0\r\n:-1\r\n")),
            None
        );
    }
}
