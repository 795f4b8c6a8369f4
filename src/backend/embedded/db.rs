//! The keyspace of one logical database: values, millisecond expiry (lazy on access plus an
//! active cycle that samples keys with TTLs, like Redis), and a scan order that stays stable
//! while keys come and go.
//!
//! Keys are kept in a `BTreeMap` ordered by (64-bit hash, key bytes). That order is what makes
//! SCAN's promise hold: the cursor is the hash of the next key to return, so every key present
//! for the whole scan is returned exactly once in hash order, whatever is inserted or deleted
//! meanwhile (Redis gets the same guarantee from its reverse-binary bucket cursor). Random
//! sampling (RANDOMKEY, active expiry) is a range query from a random hash.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};
use std::ops::Bound;

use bytes::Bytes;

use super::value::Value;

/// A key with its precomputed hash; ordered by (hash, bytes).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HKey {
    pub hash: u64,
    pub key: Bytes,
}

/// Hashes keys the same way for the whole process, so cursors stay valid between calls.
pub fn key_hash(key: &[u8]) -> u64 {
    use std::sync::OnceLock;
    static STATE: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    let mut h = STATE
        .get_or_init(std::collections::hash_map::RandomState::new)
        .build_hasher();
    h.write(key);
    // 0 is SCAN's "done" cursor, so no key may hash to it.
    h.finish().max(1)
}

impl HKey {
    /// Builds a lookup key; `key` may be a slice of a client's read buffer.
    pub fn lookup(key: &Bytes) -> HKey {
        HKey {
            hash: key_hash(key),
            key: key.clone(),
        }
    }

    /// Builds a key to store: copied, so we never pin a client's read buffer in the keyspace.
    pub fn owned(key: &[u8]) -> HKey {
        HKey {
            hash: key_hash(key),
            key: Bytes::copy_from_slice(key),
        }
    }
}

/// One key's value and metadata, as commands see it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    /// Absolute expiry in unix milliseconds, 0 for none (a plain u64: `Option<u64>` would
    /// cost 8 more bytes a key). Read with [`Entry::expire_at`]; changed through the [`Db`],
    /// which keeps its list of keys with TTLs in step.
    expire_at: u64,
    /// Last access, unix milliseconds (OBJECT IDLETIME, LRU eviction). Kept at full
    /// precision: with a coarser clock, keys touched within one tick would tie for eviction.
    pub last_access: u64,
    /// The bytes [`Db`] counts for this entry (set by the Db).
    accounted: usize,
}

/// Encodes an expiry for [`Entry::expire_at`]'s field: 0 means none, so an expiry at the
/// epoch itself (long past either way) is kept as 1 ms.
fn expiry_field(at: Option<u64>) -> u64 {
    at.map_or(0, |t| t.max(1))
}

impl Entry {
    pub fn new(value: Value, expire_at: Option<u64>, last_access: u64) -> Entry {
        Entry {
            value,
            expire_at: expiry_field(expire_at),
            last_access,
            accounted: 0,
        }
    }

    /// Absolute expiry in unix milliseconds, if the key has a TTL.
    pub fn expire_at(&self) -> Option<u64> {
        (self.expire_at != 0).then_some(self.expire_at)
    }

    fn has_ttl(&self) -> bool {
        self.expire_at != 0
    }

    fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now_ms
    }
}

/// Bytes an entry costs beyond its key and value: the map node, the entry itself and the
/// key's allocation. Measured with bench/memory.sh: 1M `SET key:N value-NNNNNNNNNN` grow RSS
/// by ~221 bytes a key, of which ~42 are counted as key and value; the rest is this overhead
/// (BTreeMap node share of a 40-byte key and a 64-byte entry, the key's Bytes allocation,
/// allocator rounding).
pub const ENTRY_OVERHEAD: usize = 180;

fn entry_cost(key: &[u8], value: &Value) -> usize {
    key.len() + value.approx_size() + ENTRY_OVERHEAD
}

/// One logical database (SELECT n).
#[derive(Debug, Default)]
pub struct Db {
    map: BTreeMap<HKey, Entry>,
    /// Keys that carry a TTL, for active expiry sampling and INFO keyspace's `expires=`.
    volatile: BTreeSet<HKey>,
    /// Sum of the entries' `accounted` bytes.
    used: usize,
}

/// What one active-expiry pass did.
/// Keys deleted by expiry during one command or cycle: counted for INFO, and named (with
/// their database) when the AOF or keyspace notifications need them.
#[derive(Debug, Default)]
pub struct Expired {
    pub count: u64,
    pub keys: Vec<(usize, Bytes)>,
    /// Keep the names (set while an AOF or notifications are on).
    pub keep_names: bool,
    /// The database the next deletions happen in (set by whoever passes the sink on).
    pub db: usize,
}

impl Expired {
    pub fn record(&mut self, key: &Bytes) {
        self.count += 1;
        if self.keep_names {
            self.keys.push((self.db, key.clone()));
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct ExpireCycle {
    pub sampled: usize,
    pub expired: usize,
}

impl Db {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn expires_count(&self) -> usize {
        self.volatile.len()
    }

    /// Looks a key up, deleting it first if its TTL has passed (lazy expiry).
    /// Returns whether the key expired in `expired` so stats can count it.
    pub fn get(&mut self, key: &Bytes, now_ms: u64, expired: &mut Expired) -> Option<&mut Entry> {
        let hk = HKey::lookup(key);
        self.get_hk(&hk, now_ms, expired)
    }

    fn get_hk(&mut self, hk: &HKey, now_ms: u64, expired: &mut Expired) -> Option<&mut Entry> {
        let is_expired = match self.map.get(hk) {
            None => return None,
            Some(e) => e.is_expired(now_ms),
        };
        if is_expired {
            let removed = self.map.remove(hk);
            self.forget(removed);
            self.volatile.remove(hk);
            expired.record(&hk.key);
            return None;
        }
        self.map.get_mut(hk)
    }

    /// Reads without expiring (for commands that must not have side effects, e.g. SCAN filters).
    pub fn peek(&self, key: &Bytes, now_ms: u64) -> Option<&Entry> {
        self.map
            .get(&HKey::lookup(key))
            .filter(|e| !e.is_expired(now_ms))
    }

    /// Stores a value, replacing any old one; `expire_at` None clears a TTL.
    pub fn set(&mut self, key: &[u8], value: Value, expire_at: Option<u64>, now_ms: u64) {
        let hk = HKey::owned(key);
        if expire_at.is_some() {
            self.volatile.insert(hk.clone());
        } else {
            self.volatile.remove(&hk);
        }
        let mut entry = Entry::new(value, expire_at, now_ms);
        entry.accounted = entry_cost(key, &entry.value);
        self.used += entry.accounted;
        if let Some(old) = self.map.insert(hk, entry) {
            self.used -= old.accounted.min(self.used);
        }
    }

    /// Stores a whole entry (RENAME, MOVE, COPY), keeping its TTL and flags; the key is
    /// copied like [`Db::set`] does.
    pub fn insert_entry(&mut self, key: &[u8], mut entry: Entry) {
        let hk = HKey::owned(key);
        entry.accounted = entry_cost(key, &entry.value);
        self.used += entry.accounted;
        if entry.has_ttl() {
            self.volatile.insert(hk.clone());
        } else {
            self.volatile.remove(&hk);
        }
        if let Some(old) = self.map.insert(hk, entry) {
            self.used -= old.accounted.min(self.used);
        }
    }

    /// Re-counts a key's bytes after a command changed its value in place.
    pub fn remeasure(&mut self, key: &Bytes) {
        if let Some(e) = self.map.get_mut(&HKey::lookup(key)) {
            let cost = entry_cost(key, &e.value);
            self.used = (self.used + cost).saturating_sub(e.accounted);
            e.accounted = cost;
        }
    }

    /// Bytes held by this database's keys and values (kept up to date, O(1)).
    pub fn used_memory(&self) -> usize {
        self.used
    }

    fn forget(&mut self, removed: Option<Entry>) -> Option<Entry> {
        if let Some(e) = &removed {
            self.used -= e.accounted.min(self.used);
        }
        removed
    }

    /// Up to `n` random keys (only keys with a TTL when `volatile`), with their last
    /// access and expiry, for eviction.
    pub fn sample(&self, n: usize, volatile: bool) -> Vec<(Bytes, u64, Option<u64>)> {
        let probe = HKey {
            hash: rand::random::<u64>(),
            key: Bytes::new(),
        };
        let pick = |hk: &HKey| {
            self.map
                .get(hk)
                .map(|e| (hk.key.clone(), e.last_access, e.expire_at()))
        };
        if volatile {
            self.volatile
                .range((Bound::Included(probe), Bound::Unbounded))
                .chain(self.volatile.iter())
                .take(n.min(self.volatile.len()))
                .filter_map(pick)
                .collect()
        } else {
            // Independent random positions, so neighbours in hash order are not favoured.
            (0..n.min(self.map.len()))
                .filter_map(|_| self.random_entry_key())
                .filter_map(|hk| pick(&hk))
                .collect()
        }
    }

    /// Sets or clears a TTL on an existing key; returns false if the key is absent.
    pub fn set_expire(&mut self, key: &Bytes, expire_at: Option<u64>) -> bool {
        let hk = HKey::lookup(key);
        match self.map.get_mut(&hk) {
            None => false,
            Some(e) => {
                e.expire_at = expiry_field(expire_at);
                if expire_at.is_some() {
                    if !self.volatile.contains(&hk) {
                        self.volatile.insert(HKey::owned(key));
                    }
                } else {
                    self.volatile.remove(&hk);
                }
                true
            }
        }
    }

    /// Removes a key (expired or not); returns the entry if it was there.
    pub fn remove(&mut self, key: &Bytes) -> Option<Entry> {
        let hk = HKey::lookup(key);
        self.volatile.remove(&hk);
        let removed = self.map.remove(&hk);
        self.forget(removed)
    }

    pub fn clear(&mut self) {
        self.used = 0;
        self.map.clear();
        self.volatile.clear();
    }

    /// Live keys in hash order starting at `cursor`, visiting at most `budget` entries;
    /// returns the next cursor (0 when the end was reached). Keys sharing one hash are
    /// returned in the same call so a cursor never splits them.
    pub fn scan(
        &self,
        cursor: u64,
        budget: usize,
        now_ms: u64,
        mut visit: impl FnMut(&HKey, &Entry),
    ) -> u64 {
        let mut last_hash = None;
        let start = HKey {
            hash: cursor,
            key: Bytes::new(),
        };
        let range = self.map.range((Bound::Included(start), Bound::Unbounded));
        for (seen, (hk, e)) in range.enumerate() {
            if seen >= budget && last_hash != Some(hk.hash) {
                return hk.hash;
            }
            last_hash = Some(hk.hash);
            if e.is_expired(now_ms) {
                continue;
            }
            visit(hk, e);
        }
        0
    }

    /// Like [`Db::scan`], but deletes the expired keys it meets (as Redis's SCAN does),
    /// counting them in `expired`, and lets `visit` update entries.
    pub fn scan_expiring(
        &mut self,
        cursor: u64,
        budget: usize,
        now_ms: u64,
        expired: &mut Expired,
        mut visit: impl FnMut(&HKey, &mut Entry),
    ) -> u64 {
        let mut last_hash = None;
        let mut next = 0;
        let mut dead = Vec::new();
        let start = HKey {
            hash: cursor,
            key: Bytes::new(),
        };
        let range = self
            .map
            .range_mut((Bound::Included(start), Bound::Unbounded));
        for (seen, (hk, e)) in range.enumerate() {
            if seen >= budget && last_hash != Some(hk.hash) {
                next = hk.hash;
                break;
            }
            last_hash = Some(hk.hash);
            if e.is_expired(now_ms) {
                dead.push(hk.clone());
                continue;
            }
            visit(hk, e);
        }
        for hk in dead {
            let removed = self.map.remove(&hk);
            self.forget(removed);
            self.volatile.remove(&hk);
            expired.record(&hk.key);
        }
        next
    }

    /// Every live key (KEYS), in hash order.
    pub fn for_each_live(&self, now_ms: u64, mut visit: impl FnMut(&HKey, &Entry)) {
        for (hk, e) in &self.map {
            if !e.is_expired(now_ms) {
                visit(hk, e);
            }
        }
    }

    /// A random live key, or None if the db is empty (expired keys met on the way are deleted,
    /// as Redis's RANDOMKEY does).
    pub fn random_key(&mut self, now_ms: u64, expired: &mut Expired) -> Option<Bytes> {
        // Bounded attempts: a db full of expired keys must not make us loop for long.
        for _ in 0..100 {
            let hk = self.random_entry_key()?;
            if self.get_hk(&hk, now_ms, expired).is_some() {
                return Some(hk.key);
            }
        }
        self.map
            .iter()
            .find(|(_, e)| !e.is_expired(now_ms))
            .map(|(hk, _)| hk.key.clone())
    }

    fn random_entry_key(&self) -> Option<HKey> {
        let probe = HKey {
            hash: rand::random::<u64>(),
            key: Bytes::new(),
        };
        self.map
            .range((Bound::Included(probe), Bound::Unbounded))
            .next()
            .or_else(|| self.map.iter().next())
            .map(|(k, _)| k.clone())
    }

    /// One pass of active expiry: sample up to `samples` keys with TTLs from random
    /// positions and delete the expired ones. Callers repeat while more than a quarter of a
    /// sample was expired (Redis's ACTIVE_EXPIRE_CYCLE_ACCEPTABLE_STALE idea).
    pub fn active_expire(
        &mut self,
        now_ms: u64,
        samples: usize,
        sink: &mut Expired,
    ) -> ExpireCycle {
        let mut cycle = ExpireCycle::default();
        if self.volatile.is_empty() {
            return cycle;
        }
        let probe = HKey {
            hash: rand::random::<u64>(),
            key: Bytes::new(),
        };
        let picked: Vec<HKey> = self
            .volatile
            .range((Bound::Included(probe), Bound::Unbounded))
            .chain(self.volatile.iter())
            .take(samples.min(self.volatile.len()))
            .cloned()
            .collect();
        for hk in picked {
            cycle.sampled += 1;
            let expired = self.map.get(&hk).is_some_and(|e| e.is_expired(now_ms));
            if expired {
                let removed = self.map.remove(&hk);
                self.forget(removed);
                self.volatile.remove(&hk);
                sink.record(&hk.key);
                cycle.expired += 1;
            }
        }
        cycle
    }

    /// Approximate bytes held (keys, values, per-entry overhead) for INFO memory.
    pub fn approx_memory(&self) -> usize {
        self.used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-key sizes issue 7's memory figures rest on: a change that grows them shows up
    /// here before it shows up in bench/memory.sh.
    #[test]
    fn per_key_structures_stay_small() {
        assert_eq!(size_of::<Value>(), 40);
        assert_eq!(size_of::<Entry>(), 64);
    }
}
