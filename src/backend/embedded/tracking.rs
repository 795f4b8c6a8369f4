//! CLIENT TRACKING in the embedded engine, as Redis's tracking.c keeps it: which clients may
//! have cached which keys (default mode: the keys their read-only commands read, forgotten
//! once invalidated) and which key prefixes BCAST clients follow. Keys are tracked by name
//! across databases, as in Redis. Invalidations are handed, under the engine lock, to the
//! sink the server sets (which queues them for the client or its REDIRECT target).

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

/// Who an invalidation is for, and which keys (None: everything, after a flush).
pub type InvalidationSink = Box<dyn Fn(u64, Option<Vec<Bytes>>) + Send + Sync>;

/// A tracking client, as a command it runs carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracker {
    pub id: u64,
    /// Remember the keys this command reads (see command::tracking::Tracking).
    pub remember_reads: bool,
}

#[derive(Debug, Default)]
struct Client {
    /// BCAST prefixes (None: default mode).
    bcast: Option<Vec<Bytes>>,
    noloop: bool,
}

#[derive(Debug, Default)]
pub struct TrackingTable {
    clients: HashMap<u64, Client>,
    /// Default mode: key -> clients that may have it cached.
    keys: HashMap<Bytes, HashSet<u64>>,
}

impl TrackingTable {
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// CLIENT TRACKING on: `bcast` prefixes (an empty list: every key) or None for the
    /// default mode.
    pub fn enable(&mut self, id: u64, bcast: Option<Vec<Bytes>>, noloop: bool) {
        self.clients.insert(id, Client { bcast, noloop });
    }

    /// CLIENT TRACKING off, RESET or disconnect. Its entries in the key table are dropped
    /// lazily (skipped and removed when their key is invalidated), as Redis does.
    pub fn disable(&mut self, id: u64) {
        self.clients.remove(&id);
    }

    /// A read-only command of a tracking client read `keys`.
    pub fn remember<'a>(&mut self, id: u64, keys: impl Iterator<Item = &'a Bytes>) {
        if self.clients.get(&id).is_none_or(|c| c.bcast.is_some()) {
            return;
        }
        for key in keys {
            self.keys.entry(key.clone()).or_default().insert(id);
        }
    }

    /// `key` was modified (by client `writer`, if known): the clients to tell, each once.
    pub fn invalidate(&mut self, key: &Bytes, writer: Option<u64>, sink: &InvalidationSink) {
        let skip = |id: u64, c: &Client| c.noloop && Some(id) == writer;
        if let Some(ids) = self.keys.remove(key) {
            for id in ids {
                if let Some(c) = self.clients.get(&id)
                    && c.bcast.is_none()
                    && !skip(id, c)
                {
                    sink(id, Some(vec![key.clone()]));
                }
            }
        }
        for (id, c) in &self.clients {
            if let Some(prefixes) = &c.bcast
                && (prefixes.is_empty() || prefixes.iter().any(|p| key.starts_with(p)))
                && !skip(*id, c)
            {
                sink(*id, Some(vec![key.clone()]));
            }
        }
    }

    /// FLUSHDB / FLUSHALL: every tracking client drops its whole cache.
    pub fn flushed(&mut self, sink: &InvalidationSink) {
        self.keys.clear();
        for id in self.clients.keys() {
            sink(*id, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    type Log = Arc<Mutex<Vec<(u64, Option<Vec<Bytes>>)>>>;

    fn recorder() -> (InvalidationSink, Log) {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        (
            Box::new(move |id, keys| l.lock().map(|mut v| v.push((id, keys))).unwrap_or(())),
            log,
        )
    }

    #[test]
    fn default_mode_forgets_a_key_once_invalidated_and_bcast_follows_prefixes() {
        let (sink, log) = recorder();
        let mut t = TrackingTable::default();
        t.enable(1, None, false);
        t.enable(2, Some(vec![Bytes::from("user:")]), false);
        t.enable(3, None, true);
        let k = Bytes::from("user:1");
        t.remember(1, [&k].into_iter());
        t.remember(3, [&k].into_iter());
        t.invalidate(&k, Some(3), &sink);
        t.invalidate(&k, None, &sink);
        let got: Vec<u64> = log
            .lock()
            .map(|v| v.iter().map(|e| e.0).collect())
            .unwrap_or_default();
        // 1 once (forgotten after), 2 twice (BCAST), 3 never (NOLOOP, its own write).
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, vec![1, 2, 2]);
    }
}
