//! Clients blocked in BLPOP, BLMOVE, BZPOPMIN and friends: who waits on which key, in
//! arrival order, and the channel each one's eventual reply goes to.
//!
//! A blocked command is re-run, under the engine lock, whenever a write touches one of its
//! keys; the first run that serves something is its reply. Waiters of one key are tried in
//! the order they blocked (Redis's fairness rule).

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::ClientView;
use crate::command::CommandSpec;
use crate::protocol::Reply;

/// A command waiting for data.
pub struct Waiter {
    pub client: ClientView,
    pub cmd: &'static CommandSpec,
    pub argv: Vec<Bytes>,
    /// The keys it waits on (in its database).
    pub keys: Vec<Bytes>,
    pub reply_to: oneshot::Sender<Reply>,
    /// What it answers if it times out (or is unblocked by CLIENT UNBLOCK ... TIMEOUT).
    pub timeout_reply: Reply,
    /// The tenant it runs for: BLMOVE's destination is held to its TTL rules when served.
    pub tenant: Option<std::sync::Arc<crate::policy::Tenant>>,
}

/// All blocked clients, keyed by client id (a client blocks on one command at a time).
#[derive(Default)]
pub struct Blocked {
    waiters: HashMap<u64, Waiter>,
    by_key: HashMap<(usize, Bytes), VecDeque<u64>>,
}

impl std::fmt::Debug for Blocked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blocked")
            .field("clients", &self.waiters.len())
            .field("keys", &self.by_key.len())
            .finish()
    }
}

impl Blocked {
    pub fn is_empty(&self) -> bool {
        self.waiters.is_empty()
    }

    /// Number of blocked clients (INFO blocked_clients).
    pub fn len(&self) -> usize {
        self.waiters.len()
    }

    /// Is anyone waiting on `key` in `db`?
    pub fn has_key(&self, db: usize, key: &Bytes) -> bool {
        !self.by_key.is_empty() && self.by_key.contains_key(&(db, key.clone()))
    }

    pub fn add(&mut self, id: u64, waiter: Waiter) {
        for key in &waiter.keys {
            let queue = self
                .by_key
                .entry((waiter.client.db, key.clone()))
                .or_default();
            if !queue.contains(&id) {
                queue.push_back(id);
            }
        }
        if let Some(old) = self.waiters.insert(id, waiter) {
            // Cannot happen (a client runs one command at a time); drop the stale entry's keys.
            self.forget_keys(id, &old);
        }
    }

    /// Removes a waiter (served, timed out, unblocked or disconnected).
    pub fn remove(&mut self, id: u64) -> Option<Waiter> {
        let waiter = self.waiters.remove(&id)?;
        self.forget_keys(id, &waiter);
        Some(waiter)
    }

    fn forget_keys(&mut self, id: u64, waiter: &Waiter) {
        for key in &waiter.keys {
            let slot = (waiter.client.db, key.clone());
            if let Some(q) = self.by_key.get_mut(&slot) {
                q.retain(|w| *w != id);
                if q.is_empty() {
                    self.by_key.remove(&slot);
                }
            }
        }
    }

    /// The clients waiting on `key`, first come first.
    pub fn queue(&self, db: usize, key: &Bytes) -> Vec<u64> {
        self.by_key
            .get(&(db, key.clone()))
            .map(|q| q.iter().copied().collect())
            .unwrap_or_default()
    }

    pub fn get(&self, id: u64) -> Option<&Waiter> {
        self.waiters.get(&id)
    }

    /// SWAPDB: waiters follow their database's contents, so re-check both sides.
    pub fn keys_in_db(&self, db: usize) -> Vec<Bytes> {
        self.by_key
            .keys()
            .filter(|(d, _)| *d == db)
            .map(|(_, k)| k.clone())
            .collect()
    }
}

/// Where a blocking command finds its timeout (seconds, as a float): BLMPOP and BZMPOP take
/// it first, the others last.
pub fn timeout_arg<'a>(cmd: &CommandSpec, argv: &'a [Bytes]) -> Option<&'a Bytes> {
    match cmd.name {
        "blmpop" | "bzmpop" => argv.get(1),
        "blpop" | "brpop" | "brpoplpush" | "blmove" | "bzpopmin" | "bzpopmax" => argv.last(),
        // XREAD/XREADGROUP take BLOCK <ms> (see `may_block`); WAIT blocks on replicas.
        _ => None,
    }
}

/// Does this command ask to block? The list and sorted-set pops always do; XREAD and
/// XREADGROUP only with a valid BLOCK option (an invalid one is answered by the handler).
pub fn may_block(cmd: &CommandSpec, argv: &[Bytes]) -> bool {
    match cmd.name {
        "xread" | "xreadgroup" => super::stream_cmds::block_timeout_ms(argv).is_some(),
        _ => timeout_arg(cmd, argv).is_some(),
    }
}

/// A blocking command's timeout, parsed as Redis does (the handler has already rejected bad
/// ones); None means wait forever (0).
pub fn timeout(cmd: &CommandSpec, argv: &[Bytes]) -> Option<std::time::Duration> {
    let ms = match cmd.name {
        "xread" | "xreadgroup" => super::stream_cmds::block_timeout_ms(argv)?,
        _ => super::list_cmds::parse_timeout_ms(timeout_arg(cmd, argv)?).ok()?,
    };
    (ms > 0).then(|| std::time::Duration::from_millis(ms))
}

/// XREADGROUP waiters depend on the stream and its group still existing: Redis 7.0 ends
/// their wait with an error when either goes (blocked.c's unblockDeletedStreamReadgroupClients
/// and serveClientsBlockedOnStreamKey), where other waiters simply keep waiting.
pub const STREAM_KEY_GONE: &str = "UNBLOCKED the stream key no longer exists";
pub const STREAM_GROUP_GONE: &str =
    "NOGROUP the consumer group this client was blocked on no longer exists";

/// A reply that means "nothing to serve yet": the handler's timeout answer.
pub fn is_unserved(reply: &Reply) -> bool {
    matches!(reply, Reply::Null | Reply::NullArray)
}
