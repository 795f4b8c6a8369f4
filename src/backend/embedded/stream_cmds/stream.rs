//! The stream value type: entries ordered by ID with Redis's bookkeeping (last ID, entries
//! added, max deleted ID, recorded first ID), the listpack node boundaries Redis would have
//! (approximate trimming removes whole nodes only), and consumer groups with their PELs.
//!
//! Like Redis, a deleted entry stays in its node as a tombstone until the whole node goes:
//! node sizes (which decide where the next node starts) and DUMP payloads then come out
//! exactly as Redis's.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Bound;

use bytes::Bytes;

/// Redis's stream-node-max-entries and stream-node-max-bytes defaults (not in `Tunables`).
pub(crate) const NODE_MAX_ENTRIES: u64 = 100;
pub(crate) const NODE_MAX_BYTES: usize = 4096;

/// Heap bytes estimates: per entry in the ID map, per PEL entry (group + consumer), per
/// consumer and group.
const ENTRY_OVERHEAD: usize = 64;
const NACK_OVERHEAD: usize = 96;
const CONSUMER_OVERHEAD: usize = 96;
const GROUP_OVERHEAD: usize = 128;
const BASE_SIZE: usize = 96;

/// A stream entry ID (`ms-seq`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    pub const ZERO: StreamId = StreamId { ms: 0, seq: 0 };
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    pub fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next ID (streamIncrID); None past the last possible ID.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq == u64::MAX {
            if self.ms == u64::MAX {
                None
            } else {
                Some(StreamId::new(self.ms + 1, 0))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq + 1))
        }
    }

    /// The previous ID (streamDecrID); None before 0-0.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq == 0 {
            if self.ms == 0 {
                None
            } else {
                Some(StreamId::new(self.ms - 1, u64::MAX))
            }
        } else {
            Some(StreamId::new(self.ms, self.seq - 1))
        }
    }

    pub fn is_zero(self) -> bool {
        self == StreamId::ZERO
    }

    pub fn to_bytes(self) -> Bytes {
        Bytes::from(self.to_string())
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// One listpack node as Redis would lay it out: its master fields, counters and exact
/// size (its entries are the live ones and tombstones in its ID range).
#[derive(Clone, Debug)]
struct Node {
    master_fields: Vec<Bytes>,
    /// Live entries.
    live: u64,
    /// Live plus deleted-but-still-present entries (the node-full rule counts both).
    total: u64,
    /// The node's listpack bytes, as Redis's lpBytes (the node-max-bytes rule).
    bytes: usize,
    /// Last ID stored in the node, deleted or not (MINID trimming looks at it).
    last: StreamId,
}

/// A pending entry: delivered to `consumer`, not yet acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nack {
    pub consumer: Bytes,
    pub delivery_time: u64,
    pub delivery_count: u64,
}

#[derive(Clone, Debug)]
pub struct Consumer {
    pub seen_time: u64,
    /// IDs this consumer owns in the group's PEL.
    pub pel: BTreeSet<StreamId>,
}

#[derive(Clone, Debug)]
pub struct Group {
    pub last_id: StreamId,
    /// -1 when unknown (SCG_INVALID_ENTRIES_READ).
    pub entries_read: i64,
    pub pel: BTreeMap<StreamId, Nack>,
    pub consumers: BTreeMap<Bytes, Consumer>,
}

/// How to trim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    MaxLen(u64),
    MinId(StreamId),
}

/// Redis's SCG_INVALID_ENTRIES_READ.
pub const INVALID_ENTRIES_READ: i64 = -1;

#[derive(Clone, Debug)]
pub struct StreamValue {
    entries: BTreeMap<StreamId, Vec<Bytes>>,
    /// Deleted entries still inside a live node (Redis flags them, it does not remove them).
    tombstones: BTreeMap<StreamId, Vec<Bytes>>,
    nodes: BTreeMap<StreamId, Node>,
    pub last_id: StreamId,
    /// The recorded first entry ID (0-0 when empty).
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
    groups: BTreeMap<Bytes, Group>,
    bytes: usize,
}

/// One node as the RDB encoder needs it: master ID and fields, then every entry the node
/// holds (live, or a tombstone when the flag is set) in ID order.
pub(crate) struct NodeDump<'a> {
    pub master: StreamId,
    pub master_fields: &'a [Bytes],
    pub items: Vec<(StreamId, &'a [Bytes], bool)>,
}

/// One node read from an RDB payload (see [`StreamValue::from_rdb`]).
pub(crate) struct LoadedNode {
    pub master: StreamId,
    pub master_fields: Vec<Bytes>,
    /// (ID, field/value pairs flattened, deleted).
    pub items: Vec<(StreamId, Vec<Bytes>, bool)>,
    /// The listpack's size in bytes.
    pub bytes: usize,
}

/// A stream's counters as an RDB payload carries them.
pub(crate) struct LoadedMeta {
    pub last_id: StreamId,
    pub first_id: StreamId,
    pub max_deleted_id: StreamId,
    pub entries_added: u64,
}

impl Default for StreamValue {
    fn default() -> StreamValue {
        StreamValue::new()
    }
}

fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// Bytes a listpack integer element takes (encoding + backlen).
fn lp_int_size(v: i64) -> usize {
    let enc = if (0..=127).contains(&v) {
        1
    } else if (-4096..=4095).contains(&v) {
        2
    } else if i16::try_from(v).is_ok() {
        3
    } else if (-(1 << 23)..(1 << 23)).contains(&v) {
        4
    } else if i32::try_from(v).is_ok() {
        5
    } else {
        9
    };
    enc + backlen_size(enc)
}

/// Bytes a listpack string element takes (integers are stored as integers).
fn lp_str_size(s: &[u8]) -> usize {
    if s.len() <= 20
        && let Some(v) = super::super::num::parse_i64(s)
    {
        return lp_int_size(v);
    }
    let hdr = match s.len() {
        0..=63 => 1,
        64..=4095 => 2,
        _ => 5,
    };
    hdr + s.len() + backlen_size(hdr + s.len())
}

fn diff_size(a: u64, b: u64) -> usize {
    lp_int_size(a.wrapping_sub(b) as i64)
}

impl StreamValue {
    pub fn new() -> StreamValue {
        StreamValue {
            entries: BTreeMap::new(),
            tombstones: BTreeMap::new(),
            nodes: BTreeMap::new(),
            last_id: StreamId::ZERO,
            first_id: StreamId::ZERO,
            max_deleted_id: StreamId::ZERO,
            entries_added: 0,
            groups: BTreeMap::new(),
            bytes: BASE_SIZE,
        }
    }

    /// Rebuilds a stream from an RDB payload's parts, keeping its node layout. None when
    /// they contradict each other (IDs out of order, a node without entries, an entry
    /// before its node's master ID, a group PEL and consumer PELs that disagree).
    pub(crate) fn from_rdb(
        nodes: Vec<LoadedNode>,
        meta: LoadedMeta,
        groups: Vec<(Bytes, Group)>,
    ) -> Option<StreamValue> {
        let mut s = StreamValue::new();
        let mut prev: Option<StreamId> = None;
        for node in nodes {
            // A node's span runs from its master ID to the next node's: masters must not
            // reach back into the previous node's entries.
            let first = node.items.first()?.0;
            if first < node.master || prev.is_some_and(|p| node.master <= p) {
                return None;
            }
            let (mut live, mut total, mut last) = (0u64, 0u64, node.master);
            for (id, fields, deleted) in node.items {
                if prev.is_some_and(|p| id <= p) || fields.len() % 2 != 0 {
                    return None;
                }
                prev = Some(id);
                total += 1;
                last = id;
                if deleted {
                    s.tombstones.insert(id, fields);
                } else {
                    live += 1;
                    s.bytes += ENTRY_OVERHEAD;
                    s.entries.insert(id, fields);
                }
            }
            s.bytes += node.bytes;
            s.nodes.insert(
                node.master,
                Node {
                    master_fields: node.master_fields,
                    live,
                    total,
                    bytes: node.bytes,
                    last,
                },
            );
        }
        // XADD relies on every stored ID being at most the last ID.
        if prev.is_some_and(|p| p > meta.last_id) {
            return None;
        }
        s.last_id = meta.last_id;
        s.first_id = meta.first_id;
        s.max_deleted_id = meta.max_deleted_id;
        s.entries_added = meta.entries_added;
        for (name, g) in groups {
            for (id, nack) in &g.pel {
                if !g.consumers.get(&nack.consumer)?.pel.contains(id) {
                    return None;
                }
            }
            for c in g.consumers.values() {
                if c.pel.iter().any(|id| !g.pel.contains_key(id)) {
                    return None;
                }
            }
            s.bytes += GROUP_OVERHEAD + name.len() + g.pel.len() * NACK_OVERHEAD;
            for c in g.consumers.keys() {
                s.bytes += CONSUMER_OVERHEAD + c.len();
            }
            s.groups.insert(name, g);
        }
        Some(s)
    }

    /// Every node with its entries and tombstones, for the RDB encoder.
    pub(crate) fn node_dumps(&self) -> Vec<NodeDump<'_>> {
        self.nodes
            .iter()
            .map(|(master, n)| {
                let span = self.node_span(*master);
                let mut items: Vec<(StreamId, &[Bytes], bool)> = self
                    .entries
                    .range(span)
                    .map(|(id, f)| (*id, f.as_slice(), false))
                    .chain(
                        self.tombstones
                            .range(span)
                            .map(|(id, f)| (*id, f.as_slice(), true)),
                    )
                    .collect();
                items.sort_by_key(|i| i.0);
                NodeDump {
                    master: *master,
                    master_fields: &n.master_fields,
                    items,
                }
            })
            .collect()
    }

    pub fn encoding_name(&self) -> &'static str {
        "stream"
    }

    /// Approximate bytes held; O(1) (a running total kept as the stream changes).
    pub fn mem_size(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of listpack nodes (XINFO's radix-tree-keys).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Entries in ID order (or reverse) within [start, end].
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (&StreamId, &Vec<Bytes>)> + '_> {
        if start > end {
            return Box::new(std::iter::empty());
        }
        let r = self.entries.range(start..=end);
        if rev { Box::new(r.rev()) } else { Box::new(r) }
    }

    /// Every entry in ID order (DUMP, persistence).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&StreamId, &Vec<Bytes>)> {
        self.entries.iter()
    }

    pub fn get(&self, id: &StreamId) -> Option<&Vec<Bytes>> {
        self.entries.get(id)
    }

    pub fn first_entry(&self) -> Option<(&StreamId, &Vec<Bytes>)> {
        self.entries.iter().next()
    }

    pub fn last_entry(&self) -> Option<(&StreamId, &Vec<Bytes>)> {
        self.entries.iter().next_back()
    }

    /// Appends an entry (the caller has checked `id > last_id`): it goes into the tail node
    /// unless that node is full by Redis's rules, in which case a new node starts.
    pub fn append(&mut self, id: StreamId, fields: Vec<Bytes>) {
        let field_bytes: usize = fields.iter().map(|f| f.len()).sum();
        let need_new = match self.nodes.iter().next_back() {
            None => true,
            Some((_, n)) => n.bytes + field_bytes >= NODE_MAX_BYTES || n.total >= NODE_MAX_ENTRIES,
        };
        if need_new {
            let master_fields: Vec<Bytes> = fields.iter().step_by(2).cloned().collect();
            // Header, count, deleted, field count, master fields, terminator.
            let bytes = 7
                + lp_int_size(1)
                + lp_int_size(0)
                + lp_int_size(master_fields.len() as i64)
                + master_fields.iter().map(|f| lp_str_size(f)).sum::<usize>()
                + lp_int_size(0);
            self.bytes += bytes;
            self.nodes.insert(
                id,
                Node {
                    master_fields,
                    live: 0,
                    total: 0,
                    bytes,
                    last: id,
                },
            );
        }
        if let Some((master, node)) = self.nodes.iter_mut().next_back() {
            let same = node.master_fields.len() * 2 == fields.len()
                && node
                    .master_fields
                    .iter()
                    .zip(fields.iter().step_by(2))
                    .all(|(a, b)| a == b);
            // flags, ms and seq deltas, [field count, fields,] values, lp-count: the
            // element count of the entry (t_stream.c's streamAppendItem layout).
            let pairs = (fields.len() / 2) as i64;
            let mut size =
                lp_int_size(2) + diff_size(id.ms, master.ms) + diff_size(id.seq, master.seq);
            if same {
                size += fields
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .map(|v| lp_str_size(v))
                    .sum::<usize>()
                    + lp_int_size(pairs + 3);
            } else {
                size += lp_int_size(pairs)
                    + fields.iter().map(|f| lp_str_size(f)).sum::<usize>()
                    + lp_int_size(2 * pairs + 4);
            }
            node.bytes += size;
            node.live += 1;
            node.total += 1;
            node.last = id;
            self.bytes += size;
        }
        self.bytes += ENTRY_OVERHEAD;
        if self.entries.is_empty() {
            self.first_id = id;
        }
        self.entries.insert(id, fields);
        self.last_id = id;
        self.entries_added += 1;
    }

    fn node_of(&self, id: StreamId) -> Option<StreamId> {
        self.nodes.range(..=id).next_back().map(|(k, _)| *k)
    }

    /// The IDs a node covers: from its master ID to the next node's.
    fn node_span(&self, master: StreamId) -> (Bound<StreamId>, Bound<StreamId>) {
        let next = self
            .nodes
            .range((Bound::Excluded(master), Bound::Unbounded))
            .next()
            .map(|(k, _)| *k);
        (
            Bound::Included(master),
            next.map_or(Bound::Unbounded, Bound::Excluded),
        )
    }

    /// Drops a whole node with its live entries and tombstones.
    fn remove_node(&mut self, master: StreamId) {
        let span = self.node_span(master);
        let live: Vec<StreamId> = self.entries.range(span).map(|(k, _)| *k).collect();
        for id in live {
            if self.entries.remove(&id).is_some() {
                self.bytes = self.bytes.saturating_sub(ENTRY_OVERHEAD);
            }
        }
        let dead: Vec<StreamId> = self.tombstones.range(span).map(|(k, _)| *k).collect();
        for id in dead {
            self.tombstones.remove(&id);
        }
        if let Some(n) = self.nodes.remove(&master) {
            self.bytes = self.bytes.saturating_sub(n.bytes);
        }
    }

    /// Removes one live entry, keeping node counters: it stays in its node as a tombstone.
    /// A node left with no live entry goes away when `drop_empty` (XDEL); exact trimming
    /// inside a node leaves it, as Redis's streamTrim does. Does not touch first_id /
    /// max_deleted_id (callers do, as XDEL and XTRIM differ).
    fn remove_entry(&mut self, id: StreamId, drop_empty: bool) -> bool {
        let Some(fields) = self.entries.remove(&id) else {
            return false;
        };
        self.bytes = self.bytes.saturating_sub(ENTRY_OVERHEAD);
        if let Some(master) = self.node_of(id) {
            let drop_node = match self.nodes.get_mut(&master) {
                Some(n) => {
                    n.live = n.live.saturating_sub(1);
                    n.live == 0
                }
                None => false,
            };
            if drop_node && drop_empty {
                self.remove_node(master);
            } else {
                self.tombstones.insert(id, fields);
            }
        }
        true
    }

    fn refresh_first_id(&mut self) {
        self.first_id = self
            .entries
            .keys()
            .next()
            .copied()
            .unwrap_or(StreamId::ZERO);
    }

    /// XDEL of one ID: true if it was there.
    pub fn delete(&mut self, id: StreamId) -> bool {
        if !self.remove_entry(id, true) {
            return false;
        }
        if id > self.max_deleted_id {
            self.max_deleted_id = id;
        }
        if self.entries.is_empty() {
            self.first_id = StreamId::ZERO;
        } else if id == self.first_id {
            self.refresh_first_id();
        }
        true
    }

    /// streamTrim: removes whole nodes from the head while the strategy allows; exact
    /// trimming then removes single entries of the next node; `~` stops at node
    /// boundaries. `limit` (0 = none) bounds the entries removed by whole nodes.
    pub fn trim(&mut self, how: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        while let Some((&master, node)) = self.nodes.iter().next() {
            let len = self.entries.len() as u64;
            if let Trim::MaxLen(max) = how
                && len <= max
            {
                break;
            }
            let live = node.live;
            if limit > 0 && deleted + live > limit {
                break;
            }
            let remove_node = match how {
                Trim::MaxLen(max) => len - live >= max,
                Trim::MinId(min) => node.last < min,
            };
            if remove_node {
                self.remove_node(master);
                deleted += live;
                continue;
            }
            let in_node: Vec<StreamId> = self
                .entries
                .range(self.node_span(master))
                .map(|(k, _)| *k)
                .collect();
            if approx {
                break;
            }
            for id in in_node {
                let stop = match how {
                    Trim::MaxLen(max) => self.entries.len() as u64 <= max,
                    Trim::MinId(min) => id >= min,
                };
                if stop {
                    break;
                }
                self.remove_entry(id, false);
                deleted += 1;
            }
            break;
        }
        self.refresh_first_id();
        deleted
    }

    /// Last live entry ID (streamLastValidID), 0-0 when empty.
    pub fn last_valid_id(&self) -> StreamId {
        self.entries
            .keys()
            .next_back()
            .copied()
            .unwrap_or(StreamId::ZERO)
    }

    /// streamRangeHasTombstones with an open end.
    pub fn has_tombstones_from(&self, start: StreamId) -> bool {
        if self.entries.is_empty() || self.max_deleted_id.is_zero() {
            return false;
        }
        if self.first_id > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id
    }

    /// streamEstimateDistanceFromFirstEverEntry.
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        let added = self.entries_added as i64;
        if self.entries.is_empty() && id <= self.last_id {
            return added;
        }
        if id == self.last_id {
            return added;
        }
        if id > self.last_id {
            return INVALID_ENTRIES_READ;
        }
        if self.max_deleted_id.is_zero() || self.max_deleted_id < self.first_id {
            if id < self.first_id {
                return added - self.entries.len() as i64;
            }
            if id == self.first_id {
                return added - self.entries.len() as i64 + 1;
            }
        }
        INVALID_ENTRIES_READ
    }

    /// A group's lag (XINFO GROUPS), None when it cannot be known.
    pub fn lag(&self, g: &Group) -> Option<i64> {
        if self.entries_added == 0 {
            return Some(0);
        }
        if g.entries_read != INVALID_ENTRIES_READ && !self.has_tombstones_from(g.last_id) {
            return Some(self.entries_added as i64 - g.entries_read);
        }
        let read = self.estimate_distance(g.last_id);
        (read != INVALID_ENTRIES_READ).then(|| self.entries_added as i64 - read)
    }

    // --- consumer groups ---

    pub fn groups(&self) -> &BTreeMap<Bytes, Group> {
        &self.groups
    }

    pub fn group(&self, name: &[u8]) -> Option<&Group> {
        self.groups.get(name)
    }

    pub fn group_mut(&mut self, name: &[u8]) -> Option<&mut Group> {
        self.groups.get_mut(name)
    }

    /// False if the group exists.
    pub fn create_group(&mut self, name: Bytes, last_id: StreamId, entries_read: i64) -> bool {
        if self.groups.contains_key(&name) {
            return false;
        }
        self.bytes += GROUP_OVERHEAD + name.len();
        self.groups.insert(
            name,
            Group {
                last_id,
                entries_read,
                pel: BTreeMap::new(),
                consumers: BTreeMap::new(),
            },
        );
        true
    }

    pub fn destroy_group(&mut self, name: &[u8]) -> bool {
        match self.groups.remove(name) {
            Some(g) => {
                let cost = GROUP_OVERHEAD
                    + name.len()
                    + g.pel.len() * NACK_OVERHEAD
                    + g.consumers
                        .keys()
                        .map(|c| CONSUMER_OVERHEAD + c.len())
                        .sum::<usize>();
                self.bytes = self.bytes.saturating_sub(cost);
                true
            }
            None => false,
        }
    }

    /// Creates the consumer if missing; true if it was created.
    pub fn ensure_consumer(&mut self, group: &[u8], consumer: &Bytes, now: u64) -> bool {
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        if g.consumers.contains_key(consumer) {
            return false;
        }
        g.consumers.insert(
            consumer.clone(),
            Consumer {
                seen_time: now,
                pel: BTreeSet::new(),
            },
        );
        self.bytes += CONSUMER_OVERHEAD + consumer.len();
        true
    }

    /// Deletes a consumer and its pending entries; returns how many it had, None if absent.
    pub fn delete_consumer(&mut self, group: &[u8], consumer: &[u8]) -> Option<usize> {
        let g = self.groups.get_mut(group)?;
        let c = g.consumers.remove(consumer)?;
        for id in &c.pel {
            g.pel.remove(id);
        }
        self.bytes = self
            .bytes
            .saturating_sub(CONSUMER_OVERHEAD + consumer.len() + c.pel.len() * NACK_OVERHEAD);
        Some(c.pel.len())
    }

    /// Gives `id` to `consumer` in the group's PEL (creating or reassigning the NACK).
    pub fn assign_nack(
        &mut self,
        group: &[u8],
        consumer: &Bytes,
        id: StreamId,
        delivery_time: u64,
        delivery_count: u64,
    ) {
        let Some(g) = self.groups.get_mut(group) else {
            return;
        };
        let nack = Nack {
            consumer: consumer.clone(),
            delivery_time,
            delivery_count,
        };
        match g.pel.insert(id, nack) {
            Some(old) => {
                if let Some(c) = g.consumers.get_mut(&old.consumer) {
                    c.pel.remove(&id);
                }
            }
            None => self.bytes += NACK_OVERHEAD,
        }
        if let Some(c) = g.consumers.get_mut(consumer) {
            c.pel.insert(id);
        }
    }

    /// Removes `id` from the group's PEL (XACK); true if it was pending.
    pub fn ack(&mut self, group: &[u8], id: StreamId) -> bool {
        let Some(g) = self.groups.get_mut(group) else {
            return false;
        };
        let Some(nack) = g.pel.remove(&id) else {
            return false;
        };
        if let Some(c) = g.consumers.get_mut(&nack.consumer) {
            c.pel.remove(&id);
        }
        self.bytes = self.bytes.saturating_sub(NACK_OVERHEAD);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fv() -> Vec<Bytes> {
        vec![Bytes::from_static(b"f"), Bytes::from_static(b"v")]
    }

    fn filled(n: u64) -> StreamValue {
        let mut s = StreamValue::new();
        for i in 1..=n {
            s.append(StreamId::new(i, 0), fv());
        }
        s
    }

    #[test]
    fn ids_increment_and_decrement_at_edges() {
        assert_eq!(StreamId::new(1, u64::MAX).incr(), Some(StreamId::new(2, 0)));
        assert_eq!(StreamId::MAX.incr(), None);
        assert_eq!(StreamId::new(2, 0).decr(), Some(StreamId::new(1, u64::MAX)));
        assert_eq!(StreamId::ZERO.decr(), None);
        assert_eq!(StreamId::new(5, 7).to_string(), "5-7");
    }

    #[test]
    fn nodes_hold_a_hundred_small_entries() {
        let s = filled(1000);
        assert_eq!(s.node_count(), 10);
        assert_eq!(s.len(), 1000);
        assert_eq!(s.first_id, StreamId::new(1, 0));
        assert_eq!(s.last_id, StreamId::new(1000, 0));
    }

    #[test]
    fn approximate_trim_removes_whole_nodes_only() {
        let mut s = filled(1000);
        assert_eq!(s.trim(Trim::MaxLen(10), true, 0), 900);
        assert_eq!(s.len(), 100);
        assert_eq!(s.first_id, StreamId::new(901, 0));
        let mut s = filled(1000);
        assert_eq!(s.trim(Trim::MaxLen(10), false, 0), 990);
        assert_eq!(s.len(), 10);
        let mut s = filled(1000);
        assert_eq!(s.trim(Trim::MinId(StreamId::new(250, 0)), true, 0), 200);
        let mut s = filled(1000);
        assert_eq!(s.trim(Trim::MinId(StreamId::new(250, 0)), false, 0), 249);
        let mut s = filled(1000);
        assert_eq!(s.trim(Trim::MaxLen(0), true, 300), 300);
    }

    #[test]
    fn delete_tracks_first_and_max_deleted_and_drops_empty_nodes() {
        let mut s = filled(3);
        assert!(s.delete(StreamId::new(1, 0)));
        assert!(!s.delete(StreamId::new(1, 0)));
        assert_eq!(s.first_id, StreamId::new(2, 0));
        assert_eq!(s.max_deleted_id, StreamId::new(1, 0));
        assert!(s.delete(StreamId::new(3, 0)));
        assert!(s.delete(StreamId::new(2, 0)));
        assert_eq!(s.node_count(), 0);
        assert_eq!(s.first_id, StreamId::ZERO);
        assert_eq!(s.mem_size(), BASE_SIZE);
    }

    #[test]
    fn pel_reassignment_moves_between_consumers() {
        let mut s = filled(2);
        assert!(s.create_group(Bytes::from_static(b"g"), StreamId::ZERO, 0));
        assert!(!s.create_group(Bytes::from_static(b"g"), StreamId::ZERO, 0));
        let (a, b) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"));
        s.ensure_consumer(b"g", &a, 1);
        s.ensure_consumer(b"g", &b, 1);
        s.assign_nack(b"g", &a, StreamId::new(1, 0), 5, 1);
        s.assign_nack(b"g", &b, StreamId::new(1, 0), 6, 2);
        let g = s.group(b"g").cloned().unwrap_or_else(|| unreachable!());
        assert!(g.consumers[&a].pel.is_empty());
        assert_eq!(g.consumers[&b].pel.len(), 1);
        assert!(s.ack(b"g", StreamId::new(1, 0)));
        assert!(!s.ack(b"g", StreamId::new(1, 0)));
        assert_eq!(s.delete_consumer(b"g", b"b"), Some(0));
        assert!(s.destroy_group(b"g"));
    }
}
