//! The keyspace of one logical database: values, millisecond expiry (lazy on access plus an
//! active cycle that samples keys with TTLs, like Redis), and a scan order that stays stable
//! while keys come and go.
//!
//! Keys are kept in a `BTreeMap` ordered by their 64-bit hash. That order is what makes SCAN's
//! promise hold: the cursor is the hash of the next key to return, so every key present for
//! the whole scan is returned exactly once in hash order, whatever is inserted or deleted
//! meanwhile (Redis gets the same guarantee from its reverse-binary bucket cursor). Random
//! sampling (RANDOMKEY, eviction, active expiry) is a range query from a random hash.
//!
//! Memory (issue 7: 1M small keys within 1.5x of redis-server): the tree maps a hash to a
//! `Box` ([`Node`], 8 bytes), so a tree element is 16 bytes instead of a whole key and entry.
//! A node holds the [`Entry`] (56 bytes: expiry, a 32-bit LRU clock and the Db's byte count
//! packed next to the value) and, for keys up to 14 bytes, the key's bytes: one 72-byte
//! allocation per key, malloc's 80-byte class (keys up to 56 bytes add one fixed-size box,
//! longer ones two allocations). Keys whose hashes collide (64-bit hashes:
//! practically never) beyond the first are kept in a side map, so nodes need no chain
//! pointer. Keys with a TTL are also listed by hash in `volatile`, for expiry sampling.

use std::collections::btree_map::Entry as Slot;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{BuildHasher, Hasher};

use bytes::Bytes;

use super::value::Value;

/// A key with its precomputed hash; ordered by (hash, bytes).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HKey {
    pub hash: u64,
    pub key: Bytes,
}

/// Hashes keys the same way for the whole process, so cursors stay valid between calls.
/// foldhash's quality variant with a per-process random seed: keys come from clients, so
/// the hash must not be predictable (colliding keys would pile up in the collision map),
/// and it is computed for every key a command touches, where SipHash cost 3-4% of a SET.
pub fn key_hash(key: &[u8]) -> u64 {
    use std::sync::OnceLock;
    static STATE: OnceLock<foldhash::quality::RandomState> = OnceLock::new();
    let mut h = STATE
        .get_or_init(foldhash::quality::RandomState::default)
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

/// Resolution of the clock [`Entry`] records accesses with. Its u32 ticks wrap after ~497
/// days (Redis's 24-bit LRU clock of seconds wraps after 194): a key idle longer than that
/// looks recently used, as in Redis. Finer than Redis's 1 s, so keys touched a few
/// milliseconds apart are still told apart by LRU eviction.
pub const LRU_TICK_MS: u64 = 10;

fn lru_ticks(now_ms: u64) -> u64 {
    now_ms / LRU_TICK_MS
}

/// One key's value and metadata, as commands see it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub value: Value,
    /// Absolute expiry in unix milliseconds, 0 for none (a plain u64: `Option<u64>` would
    /// cost 8 more bytes a key). Read with [`Entry::expire_at`]; changed through the [`Db`],
    /// which keeps its list of keys with TTLs in step.
    expire_at: u64,
    /// Last access (OBJECT IDLETIME, LRU eviction) in [`LRU_TICK_MS`] ticks, wrapping: 4
    /// bytes instead of a u64 of milliseconds keep a key's node in a smaller malloc class.
    last_access: u32,
    /// The bytes [`Db`] counts for this entry, in 8-byte words so 32 bits cover any value
    /// (up to 32 GiB); set by the Db, which adds and subtracts the same rounded figure.
    accounted: u32,
}

/// Encodes an expiry for [`Entry::expire_at`]'s field: 0 means none, so an expiry at the
/// epoch itself (long past either way) is kept as 1 ms.
fn expiry_field(at: Option<u64>) -> u64 {
    at.map_or(0, |t| t.max(1))
}

impl Entry {
    /// A new entry, last accessed at `now_ms`.
    pub fn new(value: Value, expire_at: Option<u64>, now_ms: u64) -> Entry {
        Entry {
            value,
            expire_at: expiry_field(expire_at),
            last_access: lru_ticks(now_ms) as u32,
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

    /// Records an access at `now_ms`.
    pub fn touch(&mut self, now_ms: u64) {
        // Truncation is the clock's wrap-around.
        self.last_access = lru_ticks(now_ms) as u32;
    }

    /// Milliseconds since the last access (to [`LRU_TICK_MS`]).
    pub fn idle_ms(&self, now_ms: u64) -> u64 {
        u64::from((lru_ticks(now_ms) as u32).wrapping_sub(self.last_access)) * LRU_TICK_MS
    }

    /// Makes the entry look idle for `idle_ms` (RESTORE ... IDLETIME); at most the clock's
    /// range.
    pub fn set_idle(&mut self, now_ms: u64, idle_ms: u64) {
        let ticks = u32::try_from(idle_ms / LRU_TICK_MS).unwrap_or(u32::MAX);
        self.last_access = (lru_ticks(now_ms) as u32).wrapping_sub(ticks);
    }

    /// When the last access was, in unix milliseconds (to [`LRU_TICK_MS`]): the same figure
    /// whenever it is asked while the entry is not touched, so eviction can tell whether a
    /// candidate was used since it was sampled.
    pub fn last_access_ms(&self, now_ms: u64) -> u64 {
        (lru_ticks(now_ms) * LRU_TICK_MS).saturating_sub(self.idle_ms(now_ms))
    }
}

/// Bytes an entry costs beyond its value (`Value::approx_size`, which counts a string's
/// allocation overhead) and a long key's own allocation ([`Key::heap_size`]): its [`Node`]
/// (72 bytes with a short key inside, an 80-byte malloc chunk) and its share of the tree
/// (16-byte elements in nodes ~2/3 full, ~30 bytes). Measured with bench/memory.sh: 1M
/// `SET key:N value-NNNNNNNNNN` grow RSS by ~141.5 bytes a key, 32 of them the value's;
/// with each entry's count rounded up to 8 bytes ([`Entry::accounted`]) INFO used_memory
/// shows 144 there. With 16-byte keys (a 32-byte box each): ~173 real, 176 counted.
pub const ENTRY_OVERHEAD: usize = 108;

/// Bytes a TTL adds: the key's hash in `volatile` (8-byte elements in B-tree nodes ~2/3
/// full). Measured: 1M keys set with EX grow RSS by ~16.5 bytes a key more than without.
const VOLATILE_OVERHEAD: usize = 16;

/// An entry's cost in bytes (see [`Entry::accounted`]'s 8-byte words).
fn entry_words(key: &[u8], entry: &Entry) -> u32 {
    let ttl = if entry.has_ttl() {
        VOLATILE_OVERHEAD
    } else {
        0
    };
    let bytes = ENTRY_OVERHEAD + Key::heap_size(key.len()) + entry.value.approx_size() + ttl;
    u32::try_from(bytes.div_ceil(8)).unwrap_or(u32::MAX)
}

fn words_to_bytes(words: u32) -> usize {
    words as usize * 8
}

/// Longest key kept inside its [`Node`]; longer keys get an allocation of their own.
const INLINE_KEY: usize = 14;

/// A key's bytes: inline when short (most keys); otherwise in a fixed-size box when they fit
/// one (a single allocation in malloc's 32- or 64-byte class), or boxed twice. A `Box<[u8]>`
/// would be one allocation for any length, but its 16-byte pointer would push `Key` to 24
/// bytes and every node into a larger malloc class.
#[derive(Clone)]
enum Key {
    Inline { len: u8, buf: [u8; INLINE_KEY] },
    Boxed24 { len: u8, buf: Box<[u8; 24]> },
    Boxed56 { len: u8, buf: Box<[u8; 56]> },
    Heap(Box<Box<[u8]>>),
}

impl Key {
    fn new(key: &[u8]) -> Key {
        fn fill<const N: usize>(key: &[u8]) -> [u8; N] {
            let mut buf = [0; N];
            buf[..key.len()].copy_from_slice(key);
            buf
        }
        // Each branch's bound keeps `len` within u8 and the key within its buffer.
        let len = key.len() as u8;
        if key.len() <= INLINE_KEY {
            Key::Inline {
                len,
                buf: fill(key),
            }
        } else if key.len() <= 24 {
            Key::Boxed24 {
                len,
                buf: Box::new(fill(key)),
            }
        } else if key.len() <= 56 {
            Key::Boxed56 {
                len,
                buf: Box::new(fill(key)),
            }
        } else {
            Key::Heap(Box::new(key.into()))
        }
    }

    /// Bytes a key of `len` bytes takes outside its node: nothing inline, else its
    /// box(es) as malloc rounds them (a 16-byte-aligned chunk with an 8-byte header).
    fn heap_size(len: usize) -> usize {
        let chunk = |n: usize| (n + 8).div_ceil(16).max(2) * 16;
        if len <= INLINE_KEY {
            0
        } else if len <= 24 {
            chunk(24)
        } else if len <= 56 {
            chunk(56)
        } else {
            chunk(16) + chunk(len)
        }
    }

    fn as_bytes(&self) -> &[u8] {
        let (len, buf): (u8, &[u8]) = match self {
            Key::Inline { len, buf } => (*len, buf),
            Key::Boxed24 { len, buf } => (*len, &buf[..]),
            Key::Boxed56 { len, buf } => (*len, &buf[..]),
            Key::Heap(b) => return b,
        };
        buf.get(..usize::from(len)).unwrap_or_default()
    }
}

/// One key: its entry and (if short) the key's bytes, in one 72-byte allocation reached
/// through a thin `Box`, so the tree's elements are 16 bytes.
struct Node {
    entry: Entry,
    key: Key,
}

impl Node {
    fn key(&self) -> &[u8] {
        self.key.as_bytes()
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("key", &String::from_utf8_lossy(self.key()))
            .field("entry", &self.entry)
            .finish()
    }
}

/// One logical database (SELECT n).
#[derive(Debug)]
pub struct Db {
    /// hash -> the (first) key with that hash.
    map: BTreeMap<u64, Box<Node>>,
    /// The other keys of a hash that two or more keys share (64-bit hashes: practically
    /// never; kept here so nodes need no chain pointer). A hash is here only if it is in
    /// `map` too.
    collided: BTreeMap<u64, Vec<Node>>,
    /// Number of keys.
    len: usize,
    /// Hashes of the keys that carry a TTL, for active expiry sampling.
    volatile: BTreeSet<u64>,
    /// Keys that carry a TTL (INFO keyspace's `expires=`).
    expires: usize,
    /// Sum of the entries' counted bytes.
    used: usize,
    /// [`key_hash`], replaced by tests to make keys collide.
    hasher: fn(&[u8]) -> u64,
    /// How many times an entry was handed out to be changed in place ([`Db::get`], SCAN's
    /// visit), whose new size [`Db::remeasure`] must count. Every other change counts its
    /// entry itself, so a command that left this unchanged has nothing to remeasure: the
    /// engine then skips the remeasure of each written key (a third of SET's or INCR's
    /// keyspace work, most of MSET's).
    lent: u64,
}

impl Default for Db {
    fn default() -> Db {
        Db {
            map: BTreeMap::new(),
            collided: BTreeMap::new(),
            len: 0,
            volatile: BTreeSet::new(),
            expires: 0,
            used: 0,
            hasher: key_hash,
            lent: 0,
        }
    }
}

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
    pub fn record(&mut self, key: &[u8]) {
        self.count += 1;
        if self.keep_names {
            self.keys.push((self.db, Bytes::copy_from_slice(key)));
        }
    }
}

/// What one active-expiry pass did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExpireCycle {
    pub sampled: usize,
    pub expired: usize,
}

impl Db {
    /// A Db hashing keys with `hasher` (tests use it to make keys collide).
    #[cfg(test)]
    fn with_hasher(hasher: fn(&[u8]) -> u64) -> Db {
        Db {
            hasher,
            ..Db::default()
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn expires_count(&self) -> usize {
        self.expires
    }

    /// What the entries count, summed from scratch (tests compare it with the kept total).
    #[cfg(test)]
    pub(crate) fn recounted_memory(&self) -> usize {
        let mut total = 0;
        self.for_each_live(0, |key, e| total += words_to_bytes(entry_words(key, e)));
        total
    }

    /// A count that moves whenever an entry is handed out to be changed in place, so one
    /// may have changed without its size being counted yet (see [`Db::remeasure`]).
    pub fn lent(&self) -> u64 {
        self.lent
    }

    fn hash(&self, key: &[u8]) -> u64 {
        (self.hasher)(key).max(1)
    }

    /// The keys with `hash`, given its first one.
    fn with_hash<'a>(&'a self, hash: u64, first: &'a Node) -> impl Iterator<Item = &'a Node> {
        std::iter::once(first).chain(self.collided.get(&hash).into_iter().flatten())
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<&Node> {
        let first = self.map.get(&hash)?;
        if first.key() == key {
            return Some(first);
        }
        self.collided.get(&hash)?.iter().find(|n| n.key() == key)
    }

    fn find_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut Node> {
        let first = self.map.get_mut(&hash)?;
        if first.key() == key {
            return Some(first);
        }
        self.collided
            .get_mut(&hash)?
            .iter_mut()
            .find(|n| n.key() == key)
    }

    /// Unlinks a key; returns its entry.
    fn take(&mut self, hash: u64, key: &[u8]) -> Option<Entry> {
        let node = if self.map.get(&hash)?.key() == key {
            let node = *self.map.remove(&hash)?;
            // Another key with this hash takes its place in the tree.
            if let Some(mut others) = self.collided.remove(&hash)
                && let Some(next) = others.pop()
            {
                self.map.insert(hash, Box::new(next));
                if !others.is_empty() {
                    self.collided.insert(hash, others);
                }
            }
            node
        } else {
            let others = self.collided.get_mut(&hash)?;
            let at = others.iter().position(|n| n.key() == key)?;
            let node = others.swap_remove(at);
            if others.is_empty() {
                self.collided.remove(&hash);
            }
            node
        };
        let entry = node.entry;
        self.len -= 1;
        self.used = self.used.saturating_sub(words_to_bytes(entry.accounted));
        if entry.has_ttl() {
            self.ttl_gone(hash);
        }
        Some(entry)
    }

    /// Bookkeeping after a key with `hash` lost its TTL (or was removed with one).
    fn ttl_gone(&mut self, hash: u64) {
        self.expires = self.expires.saturating_sub(1);
        let others = self
            .map
            .get(&hash)
            .is_some_and(|first| self.with_hash(hash, first).any(|n| n.entry.has_ttl()));
        if !others {
            self.volatile.remove(&hash);
        }
    }

    /// Bookkeeping after a key with `hash` got a TTL it did not have.
    fn ttl_added(&mut self, hash: u64) {
        self.expires += 1;
        self.volatile.insert(hash);
    }

    /// Looks a key up, deleting it first if its TTL has passed (lazy expiry).
    /// Returns whether the key expired in `expired` so stats can count it.
    pub fn get(&mut self, key: &Bytes, now_ms: u64, expired: &mut Expired) -> Option<&mut Entry> {
        // Whatever the caller changes in the entry is counted by `remeasure`.
        self.lent = self.lent.wrapping_add(1);
        let hash = self.hash(key);
        if self.expires == 0 {
            // No key has a TTL, so none can have expired: one search (as Redis skips its
            // expiry check while its expires table is empty).
            return self.find_mut(hash, key).map(|n| &mut n.entry);
        }
        if self.find(hash, key)?.entry.is_expired(now_ms) {
            self.take(hash, key);
            expired.record(key);
            return None;
        }
        self.find_mut(hash, key).map(|n| &mut n.entry)
    }

    /// Runs `change` on a live key's entry and counts the entry's new size, with one search
    /// (where [`Db::get`] and [`Db::remeasure`] take three); None if the key is absent or
    /// has just expired (deleted and recorded, as by `get`).
    pub fn update<R>(
        &mut self,
        key: &Bytes,
        now_ms: u64,
        expired: &mut Expired,
        change: impl FnOnce(&mut Entry) -> R,
    ) -> Option<R> {
        let hash = self.hash(key);
        let node = self.find_mut(hash, key)?;
        if node.entry.is_expired(now_ms) {
            self.take(hash, key);
            expired.record(key);
            return None;
        }
        let result = change(&mut node.entry);
        let words = entry_words(key, &node.entry);
        let old = std::mem::replace(&mut node.entry.accounted, words);
        self.used = (self.used + words_to_bytes(words)).saturating_sub(words_to_bytes(old));
        Some(result)
    }

    /// The TTL of a live key (Some(None): no TTL), deleting it first if its TTL has passed,
    /// as [`Db::get`] does, but with one search and nothing handed out to change.
    pub fn live_ttl(
        &mut self,
        key: &Bytes,
        now_ms: u64,
        expired: &mut Expired,
    ) -> Option<Option<u64>> {
        let hash = self.hash(key);
        let entry = &self.find(hash, key)?.entry;
        if entry.is_expired(now_ms) {
            self.take(hash, key);
            expired.record(key);
            return None;
        }
        Some(entry.expire_at())
    }

    /// Reads without expiring (for commands that must not have side effects, e.g. SCAN filters).
    pub fn peek(&self, key: &Bytes, now_ms: u64) -> Option<&Entry> {
        self.find(self.hash(key), key)
            .map(|n| &n.entry)
            .filter(|e| !e.is_expired(now_ms))
    }

    /// Stores a value, replacing any old one; `expire_at` None clears a TTL.
    pub fn set(&mut self, key: &[u8], value: Value, expire_at: Option<u64>, now_ms: u64) {
        self.insert_entry(key, Entry::new(value, expire_at, now_ms));
    }

    /// Stores a whole entry (RENAME, MOVE, COPY, RESTORE), keeping its TTL; the key is
    /// copied into the keyspace's own allocation, so it never pins a client's read buffer.
    pub fn insert_entry(&mut self, key: &[u8], mut entry: Entry) {
        let hash = self.hash(key);
        entry.accounted = entry_words(key, &entry);
        self.used += words_to_bytes(entry.accounted);
        let has_ttl = entry.has_ttl();
        let had_ttl = match self.find_mut(hash, key) {
            // Overwrite in place: the key's node is reused.
            Some(node) => {
                let old = std::mem::replace(&mut node.entry, entry);
                self.used = self.used.saturating_sub(words_to_bytes(old.accounted));
                old.has_ttl()
            }
            None => {
                let node = Node {
                    entry,
                    key: Key::new(key),
                };
                match self.map.entry(hash) {
                    Slot::Vacant(slot) => {
                        slot.insert(Box::new(node));
                    }
                    Slot::Occupied(_) => self.collided.entry(hash).or_default().push(node),
                }
                self.len += 1;
                false
            }
        };
        match (had_ttl, has_ttl) {
            (false, true) => self.ttl_added(hash),
            (true, false) => self.ttl_gone(hash),
            _ => {}
        }
    }

    /// Re-counts a key's bytes after a command changed its value in place.
    pub fn remeasure(&mut self, key: &Bytes) {
        let hash = self.hash(key);
        if let Some(node) = self.find_mut(hash, key) {
            let words = entry_words(key, &node.entry);
            let old = std::mem::replace(&mut node.entry.accounted, words);
            self.used = (self.used + words_to_bytes(words)).saturating_sub(words_to_bytes(old));
        }
    }

    /// Bytes held by this database's keys and values (kept up to date, O(1)).
    pub fn used_memory(&self) -> usize {
        self.used
    }

    /// The first key at or after a random hash (wrapping around), if any.
    fn random_node(&self) -> Option<&Node> {
        let probe = rand::random::<u64>();
        let (_, node) = self
            .map
            .range(probe..)
            .next()
            .or_else(|| self.map.iter().next())?;
        Some(node)
    }

    /// The keys with a TTL, from a random position in hash order (wrapping around).
    fn volatile_from_random(&self) -> impl Iterator<Item = (u64, &Node)> {
        let probe = rand::random::<u64>();
        self.volatile
            .range(probe..)
            .chain(self.volatile.iter())
            .take(self.volatile.len())
            .filter_map(|&h| Some((h, self.map.get(&h)?)))
            .flat_map(move |(h, first)| {
                self.with_hash(h, first)
                    .filter(|n| n.entry.has_ttl())
                    .map(move |n| (h, n))
            })
    }

    /// Up to `n` random keys (only keys with a TTL when `volatile`), with their last
    /// access ([`Entry::last_access_ms`]) and expiry, for eviction.
    pub fn sample(&self, n: usize, volatile: bool, now_ms: u64) -> Vec<(Bytes, u64, Option<u64>)> {
        let pick = |node: &Node| {
            let e = &node.entry;
            (
                Bytes::copy_from_slice(node.key()),
                e.last_access_ms(now_ms),
                e.expire_at(),
            )
        };
        if volatile {
            self.volatile_from_random()
                .take(n)
                .map(|(_, node)| pick(node))
                .collect()
        } else {
            // Independent random positions, so neighbours in hash order are not favoured.
            (0..n.min(self.len))
                .filter_map(|_| self.random_node())
                .map(pick)
                .collect()
        }
    }

    /// Sets or clears a TTL on an existing key; returns false if the key is absent.
    pub fn set_expire(&mut self, key: &Bytes, expire_at: Option<u64>) -> bool {
        let hash = self.hash(key);
        let Some(node) = self.find_mut(hash, key) else {
            return false;
        };
        let e = &mut node.entry;
        let had = e.has_ttl();
        e.expire_at = expiry_field(expire_at);
        // A TTL's cost comes and goes with it.
        let words = entry_words(key, e);
        let old = std::mem::replace(&mut e.accounted, words);
        self.used = (self.used + words_to_bytes(words)).saturating_sub(words_to_bytes(old));
        match (had, expire_at.is_some()) {
            (false, true) => self.ttl_added(hash),
            (true, false) => self.ttl_gone(hash),
            _ => {}
        }
        true
    }

    /// Removes a key (expired or not); returns the entry if it was there.
    pub fn remove(&mut self, key: &Bytes) -> Option<Entry> {
        self.take(self.hash(key), key)
    }

    pub fn clear(&mut self) {
        self.used = 0;
        self.len = 0;
        self.expires = 0;
        self.map.clear();
        self.collided.clear();
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
        mut visit: impl FnMut(&[u8], &Entry),
    ) -> u64 {
        let mut seen = 0;
        for (&hash, first) in self.map.range(cursor..) {
            if seen >= budget {
                return hash;
            }
            for node in self.with_hash(hash, first) {
                seen += 1;
                if !node.entry.is_expired(now_ms) {
                    visit(node.key(), &node.entry);
                }
            }
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
        mut visit: impl FnMut(&[u8], &mut Entry),
    ) -> u64 {
        let mut seen = 0;
        let mut next = 0;
        let mut dead: Vec<(u64, Box<[u8]>)> = Vec::new();
        // `visit` may change entries: `remeasure` counts them again.
        self.lent = self.lent.wrapping_add(1);
        let Db { map, collided, .. } = self;
        for (&hash, first) in map.range_mut(cursor..) {
            if seen >= budget {
                next = hash;
                break;
            }
            let others = collided.get_mut(&hash).into_iter().flatten();
            for node in std::iter::once(&mut **first).chain(others) {
                seen += 1;
                if node.entry.is_expired(now_ms) {
                    dead.push((hash, node.key().into()));
                } else {
                    // Disjoint fields: the key is read while the entry is written.
                    visit(node.key.as_bytes(), &mut node.entry);
                }
            }
        }
        for (hash, key) in dead {
            self.take(hash, &key);
            expired.record(&key);
        }
        next
    }

    /// Every live key (KEYS), in hash order.
    pub fn for_each_live(&self, now_ms: u64, mut visit: impl FnMut(&[u8], &Entry)) {
        for (&hash, first) in &self.map {
            for node in self.with_hash(hash, first) {
                if !node.entry.is_expired(now_ms) {
                    visit(node.key(), &node.entry);
                }
            }
        }
    }

    /// A random live key, or None if the db is empty (expired keys met on the way are deleted,
    /// as Redis's RANDOMKEY does).
    pub fn random_key(&mut self, now_ms: u64, expired: &mut Expired) -> Option<Bytes> {
        // Bounded attempts: a db full of expired keys must not make us loop for long.
        for _ in 0..100 {
            let node = self.random_node()?;
            let key = Bytes::copy_from_slice(node.key());
            if !node.entry.is_expired(now_ms) {
                return Some(key);
            }
            let hash = self.hash(&key);
            self.take(hash, &key);
            expired.record(&key);
        }
        let mut found = None;
        self.for_each_live(now_ms, |k, _| {
            if found.is_none() {
                found = Some(Bytes::copy_from_slice(k));
            }
        });
        found
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
        let mut dead: Vec<(u64, Box<[u8]>)> = Vec::new();
        for (hash, node) in self.volatile_from_random().take(samples) {
            cycle.sampled += 1;
            if node.entry.is_expired(now_ms) {
                dead.push((hash, node.key().into()));
            }
        }
        for (hash, key) in dead {
            self.take(hash, &key);
            sink.record(&key);
            cycle.expired += 1;
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

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn str_value(s: &str) -> Value {
        Value::string(b(s))
    }

    fn get_str(db: &mut Db, key: &str, now: u64) -> Option<Bytes> {
        let mut sink = Expired::default();
        db.get(&b(key), now, &mut sink)
            .and_then(|e| e.value.as_str().cloned())
    }

    /// Every key collides with every other key of its length.
    fn by_len(key: &[u8]) -> u64 {
        key.len() as u64
    }

    /// The per-key sizes issue 7's memory figures rest on: a change that grows them shows up
    /// here before it shows up in bench/memory.sh.
    #[test]
    fn per_key_structures_stay_small() {
        assert_eq!(size_of::<Value>(), 40);
        assert_eq!(size_of::<Entry>(), 56);
        assert_eq!(size_of::<Key>(), 16);
        // 72 bytes: malloc's 80-byte size class, with the key's bytes included.
        assert_eq!(size_of::<Node>(), 72);
        assert_eq!(size_of::<Box<Node>>(), 8);
        // What keys outside their node are counted as: malloc's chunks for their boxes.
        let sizes = [0, 14, 15, 24, 25, 56, 57, 100].map(Key::heap_size);
        assert_eq!(sizes, [0, 0, 32, 32, 64, 64, 32 + 80, 32 + 112]);
    }

    #[test]
    fn short_and_long_keys_round_trip() {
        let mut db = Db::default();
        let keys = [
            "",
            "k",
            "fourteen-bytes",
            "fifteen-bytes!!",
            &"x".repeat(1000),
        ];
        for (i, k) in keys.iter().enumerate() {
            db.set(k.as_bytes(), str_value(&i.to_string()), None, 0);
        }
        assert_eq!(db.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(get_str(&mut db, k, 0), Some(b(&i.to_string())), "{k}");
        }
        let mut seen = Vec::new();
        db.for_each_live(0, |k, _| seen.push(k.to_vec()));
        seen.sort();
        let mut want: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
        want.sort();
        assert_eq!(seen, want);
    }

    #[test]
    fn colliding_keys_are_kept_apart() {
        let mut db = Db::with_hasher(by_len);
        for k in ["aa", "bb", "cc", "d"] {
            db.set(k.as_bytes(), str_value(k), None, 0);
        }
        assert_eq!(db.len(), 4);
        for k in ["aa", "bb", "cc", "d"] {
            assert_eq!(get_str(&mut db, k, 0), Some(b(k)));
        }
        assert_eq!(get_str(&mut db, "zz", 0), None);
        // Overwrite one kept beside the tree.
        db.set(b"bb", str_value("new"), None, 0);
        assert_eq!(db.len(), 4);
        assert_eq!(get_str(&mut db, "bb", 0), Some(b("new")));
        // Remove keys beside the tree and the one in it (another takes its place).
        for (k, left) in [("bb", 3), ("cc", 2), ("aa", 1)] {
            assert!(db.remove(&b(k)).is_some());
            assert!(db.remove(&b(k)).is_none());
            assert_eq!(db.len(), left);
            assert_eq!(get_str(&mut db, k, 0), None);
        }
        assert_eq!(get_str(&mut db, "d", 0), Some(b("d")));
        assert!(db.remove(&b("d")).is_some());
        assert!(db.is_empty());
        assert_eq!(db.used_memory(), 0);
    }

    #[test]
    fn colliding_keys_are_scanned_together() {
        let mut db = Db::with_hasher(by_len);
        for k in ["aa", "bb", "cc", "d", "eee"] {
            db.set(k.as_bytes(), str_value(k), None, 0);
        }
        // A budget of one still returns every key of hash 1, and then of hash 2.
        let mut got = Vec::new();
        let next = db.scan(0, 1, 0, |k, _| got.push(k.to_vec()));
        assert_eq!(got, vec![b"d".to_vec()]);
        assert_eq!(next, 2);
        got.clear();
        let next = db.scan(next, 1, 0, |k, _| got.push(k.to_vec()));
        got.sort();
        assert_eq!(got, vec![b"aa".to_vec(), b"bb".to_vec(), b"cc".to_vec()]);
        assert_eq!(next, 3);
        let mut sink = Expired::default();
        got.clear();
        let next = db.scan_expiring(next, 10, 0, &mut sink, |k, _| got.push(k.to_vec()));
        assert_eq!((got, next), (vec![b"eee".to_vec()], 0));
    }

    #[test]
    fn ttls_of_colliding_keys_are_tracked_per_key() {
        let mut db = Db::with_hasher(by_len);
        db.set(b"aa", str_value("1"), Some(100), 0);
        db.set(b"bb", str_value("2"), Some(200), 0);
        db.set(b"cc", str_value("3"), None, 0);
        assert_eq!(db.expires_count(), 2);
        // One key of the hash losing its TTL keeps the hash listed for the other.
        assert!(db.set_expire(&b("aa"), None));
        assert_eq!(db.expires_count(), 1);
        assert_eq!(db.sample(5, true, 0).len(), 1);
        assert!(!db.set_expire(&b("zz"), Some(5)));
        // Active expiry finds the one expired key behind the shared hash.
        let mut sink = Expired {
            keep_names: true,
            ..Expired::default()
        };
        let cycle = db.active_expire(250, 20, &mut sink);
        assert_eq!((cycle.sampled, cycle.expired), (1, 1));
        assert_eq!(sink.keys, vec![(0, b("bb"))]);
        assert_eq!(db.expires_count(), 0);
        assert!(db.volatile.is_empty());
        assert_eq!(db.len(), 2);
        // Overwriting with a TTL and then without one.
        db.set(b"cc", str_value("3"), Some(300), 0);
        assert_eq!(db.expires_count(), 1);
        db.set(b"cc", str_value("3"), None, 0);
        assert_eq!(db.expires_count(), 0);
        assert!(db.volatile.is_empty());
    }

    #[test]
    fn a_ttl_is_counted_while_it_lasts() {
        let mut db = Db::default();
        db.set(b"k", str_value("v"), None, 0);
        let plain = db.used_memory();
        assert!(db.set_expire(&b("k"), Some(100)));
        assert_eq!(db.used_memory(), plain + VOLATILE_OVERHEAD);
        assert!(db.set_expire(&b("k"), Some(200)));
        assert_eq!(db.used_memory(), plain + VOLATILE_OVERHEAD);
        assert!(db.set_expire(&b("k"), None));
        assert_eq!(db.used_memory(), plain);
        db.set(b"k", str_value("v"), Some(100), 0);
        assert_eq!(db.used_memory(), plain + VOLATILE_OVERHEAD);
        assert!(db.remove(&b("k")).is_some());
        assert_eq!(db.used_memory(), 0);
    }

    #[test]
    fn lazy_expiry_removes_the_key_and_its_accounting() {
        let mut db = Db::default();
        db.set(b"kept", str_value("v"), None, 0);
        let one = db.used_memory();
        db.set(b"gone", str_value("v"), Some(10), 0);
        let mut sink = Expired::default();
        assert!(db.get(&b("gone"), 10, &mut sink).is_none());
        assert_eq!(sink.count, 1);
        assert_eq!(
            (db.len(), db.expires_count(), db.used_memory()),
            (1, 0, one)
        );
        assert!(db.peek(&b("kept"), 10).is_some());
        assert_eq!(db.random_key(10, &mut sink), Some(b("kept")));
    }

    #[test]
    fn remeasure_follows_in_place_changes() {
        let mut db = Db::default();
        db.set(b"k", str_value("v"), None, 0);
        let before = db.used_memory();
        let mut sink = Expired::default();
        if let Some(e) = db.get(&b("k"), 0, &mut sink) {
            e.value = Value::raw_string(Bytes::from(vec![b'x'; 1001]));
        }
        db.remeasure(&b("k"));
        assert_eq!(db.used_memory(), before + 1000);
        db.clear();
        assert_eq!((db.len(), db.used_memory()), (0, 0));
    }

    /// Only handing an entry out to change it moves `lent` (then `remeasure` counts it
    /// again); every other change counts its entry itself, so the total stays exact.
    #[test]
    fn the_count_stays_exact_without_a_remeasure_unless_an_entry_was_lent() {
        let mut db = Db::default();
        let mut sink = Expired::default();
        let key = b("k");
        let big = || Value::raw_string(Bytes::from(vec![b'x'; 1001]));
        let lent = db.lent();
        db.set(&key, str_value("v"), None, 0);
        db.set(b"other", big(), Some(50), 0);
        assert_eq!(db.update(&key, 0, &mut sink, |e| e.value = big()), Some(()));
        assert_eq!(db.live_ttl(&b("other"), 0, &mut sink), Some(Some(50)));
        assert!(db.set_expire(&key, Some(100)));
        assert!(db.peek(&key, 0).is_some());
        assert!(db.remove(&b("other")).is_some());
        assert_eq!(db.lent(), lent, "no entry was handed out to change");
        assert_eq!(db.used_memory(), db.recounted_memory());
        // Changed through `get`: lent, and counted once remeasured.
        if let Some(e) = db.get(&key, 0, &mut sink) {
            e.value = str_value("v");
        }
        assert_ne!(db.lent(), lent);
        db.remeasure(&key);
        assert_eq!(db.used_memory(), db.recounted_memory());
        // SCAN's visit may change entries too.
        let lent = db.lent();
        db.scan_expiring(0, 10, 0, &mut sink, |_, e| e.value = big());
        assert_ne!(db.lent(), lent);
        db.remeasure(&key);
        assert_eq!(db.used_memory(), db.recounted_memory());
        // `update` and `live_ttl` expire a key whose TTL has passed, as `get` does.
        db.set(b"gone", str_value("v"), Some(10), 0);
        assert_eq!(db.update(&b("gone"), 10, &mut sink, |_| ()), None);
        db.set(b"gone", str_value("v"), Some(10), 0);
        assert_eq!(db.live_ttl(&b("gone"), 5, &mut sink), Some(Some(10)));
        assert_eq!(db.live_ttl(&b("gone"), 10, &mut sink), None);
        assert_eq!(sink.count, 2);
        assert_eq!((db.len(), db.expires_count()), (1, 1));
        assert_eq!(db.used_memory(), db.recounted_memory());
    }

    #[test]
    fn the_access_clock_measures_idle_time_and_wraps() {
        let now = 1_700_000_000_123;
        let mut e = Entry::new(str_value("v"), None, now);
        assert_eq!(e.idle_ms(now), 0);
        assert_eq!(e.idle_ms(now + 2_500), 2_500);
        // The last access reads the same however late it is asked, until touched.
        let at = e.last_access_ms(now);
        assert_eq!(e.last_access_ms(now + 99_999), at);
        assert!(now - at < LRU_TICK_MS);
        e.touch(now + 50);
        assert_eq!(e.last_access_ms(now + 1_000), at + 50);
        // RESTORE ... IDLETIME 1000.
        e.set_idle(now, 1_000_000);
        assert_eq!(e.idle_ms(now) / 1000, 1000);
        assert_eq!(e.idle_ms(now + 500) / 1000, 1000);
        // Across the u32 tick counter's wrap-around.
        let wrap = (u64::from(u32::MAX) + 1) * LRU_TICK_MS;
        let mut w = Entry::new(str_value("v"), None, wrap - 20);
        assert_eq!(w.idle_ms(wrap + 30), 50);
        w.set_idle(wrap + 30, 70);
        assert_eq!(w.idle_ms(wrap + 30), 70);
    }
}
