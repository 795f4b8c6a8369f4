//! WATCH bookkeeping: which clients watch which keys, and whether a watched key was touched
//! (written, deleted, flushed, or expired) since, which makes that client's EXEC fail.

use std::collections::HashMap;

use bytes::Bytes;

use super::db::Db;

/// One watched key of one client.
#[derive(Debug)]
struct Watched {
    db: usize,
    key: Bytes,
    /// The key held a live value when WATCH ran: if it is gone at EXEC without anyone writing
    /// it, it expired, and Redis 7 fails the EXEC for that too.
    live_at_watch: bool,
}

#[derive(Debug, Default)]
struct ClientWatches {
    keys: Vec<Watched>,
    touched: bool,
}

/// Every client's watched keys, indexed both ways so a write finds its watchers in O(1).
#[derive(Debug, Default)]
pub struct Watches {
    by_key: HashMap<(usize, Bytes), Vec<u64>>,
    by_client: HashMap<u64, ClientWatches>,
}

impl Watches {
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// WATCH: `client` watches `key` in `db` (watching a key twice is a no-op, as in Redis).
    pub fn watch(&mut self, client: u64, db: usize, key: &Bytes, live: bool) {
        let mine = self.by_client.entry(client).or_default();
        if mine.keys.iter().any(|w| w.db == db && w.key == *key) {
            return;
        }
        mine.keys.push(Watched {
            db,
            key: key.clone(),
            live_at_watch: live,
        });
        self.by_key
            .entry((db, key.clone()))
            .or_default()
            .push(client);
    }

    /// UNWATCH, EXEC, DISCARD, RESET or disconnect: forget the client's keys.
    pub fn unwatch(&mut self, client: u64) {
        let Some(mine) = self.by_client.remove(&client) else {
            return;
        };
        for w in mine.keys {
            let slot = (w.db, w.key);
            if let Some(ids) = self.by_key.get_mut(&slot) {
                ids.retain(|id| *id != client);
                if ids.is_empty() {
                    self.by_key.remove(&slot);
                }
            }
        }
    }

    /// A write modified `key` in `db`: every client watching it will fail its EXEC.
    pub fn touch(&mut self, db: usize, key: &Bytes) {
        if self.by_key.is_empty() {
            return;
        }
        let slot = (db, key.clone());
        if let Some(ids) = self.by_key.get(&slot) {
            for id in ids {
                if let Some(c) = self.by_client.get_mut(id) {
                    c.touched = true;
                }
            }
        }
    }

    /// FLUSHDB/FLUSHALL/SWAPDB: the clients watching a key of `db` for which `affected`
    /// holds (Redis touches only keys that existed in a flushed database, or in either
    /// swapped one).
    pub fn watchers_in_db(&self, db: usize, affected: impl Fn(&Bytes) -> bool) -> Vec<u64> {
        self.by_key
            .iter()
            .filter(|((d, k), _)| *d == db && affected(k))
            .flat_map(|(_, ids)| ids.iter().copied())
            .collect()
    }

    /// Marks these clients' watches as touched.
    pub fn mark(&mut self, clients: &[u64]) {
        for id in clients {
            if let Some(c) = self.by_client.get_mut(id) {
                c.touched = true;
            }
        }
    }

    /// May `client`'s EXEC run? False if a watched key was touched or has expired since WATCH.
    pub fn exec_allowed(&self, client: u64, dbs: &[Db], now_ms: u64) -> bool {
        let Some(mine) = self.by_client.get(&client) else {
            return true;
        };
        if mine.touched {
            return false;
        }
        mine.keys.iter().all(|w| {
            !w.live_at_watch
                || dbs
                    .get(w.db)
                    .is_some_and(|d| d.peek(&w.key, now_ms).is_some())
        })
    }
}
