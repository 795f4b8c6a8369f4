//! Order-statistic treap over (score, member): O(log n) expected insert, remove, rank and
//! by-rank access. Nodes live in an arena addressed by `u32` indices (no `unsafe`, no
//! `Rc`), freed slots are reused.

use std::cmp::Ordering;

use bytes::Bytes;

const NIL: u32 = u32::MAX;

#[derive(Clone, Debug)]
struct Node {
    score: f64,
    member: Bytes,
    left: u32,
    right: u32,
    prio: u32,
    size: u32,
}

/// Compares (score, member) pairs the way Redis's skiplist orders them.
pub(crate) fn cmp_key(s1: f64, m1: &[u8], s2: f64, m2: &[u8]) -> Ordering {
    match s1.partial_cmp(&s2) {
        Some(Ordering::Equal) | None => m1.cmp(m2),
        Some(o) => o,
    }
}

#[derive(Clone, Debug)]
pub(crate) struct OrderTree {
    nodes: Vec<Node>,
    free: Vec<u32>,
    root: u32,
    rng: u64,
}

impl Default for OrderTree {
    fn default() -> Self {
        OrderTree {
            nodes: Vec::new(),
            free: Vec::new(),
            root: NIL,
            rng: 0x9E37_79B9_7F4A_7C15,
        }
    }
}

impl OrderTree {
    pub(crate) fn len(&self) -> usize {
        self.size(self.root) as usize
    }

    fn size(&self, n: u32) -> u32 {
        if n == NIL {
            0
        } else {
            self.nodes[n as usize].size
        }
    }

    fn fix(&mut self, n: u32) {
        let (l, r) = (self.nodes[n as usize].left, self.nodes[n as usize].right);
        self.nodes[n as usize].size = self.size(l) + self.size(r) + 1;
    }

    fn next_prio(&mut self) -> u32 {
        // xorshift64: priorities only need to be well spread, not unpredictable.
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x >> 32) as u32
    }

    /// Splits `t` into (nodes ordered before (score, member), the rest).
    fn split(&mut self, t: u32, score: f64, member: &[u8]) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        let n = &self.nodes[t as usize];
        if cmp_key(n.score, &n.member, score, member) == Ordering::Less {
            let (l, r) = self.split(n.right, score, member);
            self.nodes[t as usize].right = l;
            self.fix(t);
            (t, r)
        } else {
            let (l, r) = self.split(n.left, score, member);
            self.nodes[t as usize].left = r;
            self.fix(t);
            (l, t)
        }
    }

    /// Splits `t` into (its first `k` nodes, the rest).
    fn split_rank(&mut self, t: u32, k: u32) -> (u32, u32) {
        if t == NIL {
            return (NIL, NIL);
        }
        let left = self.nodes[t as usize].left;
        let ls = self.size(left);
        if k <= ls {
            let (l, r) = self.split_rank(left, k);
            self.nodes[t as usize].left = r;
            self.fix(t);
            (l, t)
        } else {
            let right = self.nodes[t as usize].right;
            let (l, r) = self.split_rank(right, k - ls - 1);
            self.nodes[t as usize].right = l;
            self.fix(t);
            (t, r)
        }
    }

    fn merge(&mut self, a: u32, b: u32) -> u32 {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].prio > self.nodes[b as usize].prio {
            let r = self.nodes[a as usize].right;
            let m = self.merge(r, b);
            self.nodes[a as usize].right = m;
            self.fix(a);
            a
        } else {
            let l = self.nodes[b as usize].left;
            let m = self.merge(a, l);
            self.nodes[b as usize].left = m;
            self.fix(b);
            b
        }
    }

    /// Inserts a pair; the caller guarantees the member is not already present.
    pub(crate) fn insert(&mut self, score: f64, member: Bytes) {
        let prio = self.next_prio();
        let node = Node {
            score,
            member,
            left: NIL,
            right: NIL,
            prio,
            size: 1,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.nodes[i as usize] = node;
                i
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        let (s, m) = (score, self.nodes[idx as usize].member.clone());
        let root = self.root;
        let (l, r) = self.split(root, s, &m);
        let l = self.merge(l, idx);
        self.root = self.merge(l, r);
    }

    /// Removes a pair; returns whether it was present.
    pub(crate) fn remove(&mut self, score: f64, member: &[u8]) -> bool {
        let root = self.root;
        let (l, r) = self.split(root, score, member);
        let (mid, rest) = self.split_rank(r, 1);
        let found = mid != NIL && {
            let n = &self.nodes[mid as usize];
            cmp_key(n.score, &n.member, score, member) == Ordering::Equal
        };
        let rest = if found {
            self.release(mid);
            rest
        } else {
            self.merge(mid, rest)
        };
        self.root = self.merge(l, rest);
        if found {
            self.compact_if_sparse();
        }
        found
    }

    fn release(&mut self, n: u32) {
        self.nodes[n as usize].member = Bytes::new();
        self.free.push(n);
    }

    /// Rebuilds the arena when most of it is free slots, so a set that shrank gives its
    /// memory back (amortized O(log n) per removal: at least half the slots were freed
    /// since the last rebuild).
    fn compact_if_sparse(&mut self) {
        if self.free.len() < 64 || self.free.len() * 2 < self.nodes.len() {
            return;
        }
        let live: Vec<(f64, Bytes)> = self.iter_from(0).map(|(m, s)| (s, m.clone())).collect();
        self.nodes = Vec::with_capacity(live.len());
        self.free = Vec::new();
        self.root = NIL;
        for (s, m) in live {
            self.insert(s, m);
        }
    }

    /// Slots held by the arena, live or free (for tests of memory give-back).
    #[cfg(test)]
    pub(crate) fn arena_slots(&self) -> usize {
        self.nodes.capacity()
    }

    /// Removes ranks `start..end` (clamped) and returns them in order.
    pub(crate) fn remove_rank_range(&mut self, start: usize, end: usize) -> Vec<(Bytes, f64)> {
        let len = self.len();
        let end = end.min(len);
        if start >= end {
            return Vec::new();
        }
        let root = self.root;
        let (l, r) = self.split_rank(root, start as u32);
        let (mid, rest) = self.split_rank(r, (end - start) as u32);
        let mut out = Vec::with_capacity(end - start);
        // Collect in order with an explicit stack, then free the slots.
        let mut stack = Vec::new();
        let mut ordered = Vec::with_capacity(end - start);
        let mut cur = mid;
        while cur != NIL || !stack.is_empty() {
            while cur != NIL {
                stack.push(cur);
                cur = self.nodes[cur as usize].left;
            }
            if let Some(n) = stack.pop() {
                ordered.push(n);
                cur = self.nodes[n as usize].right;
            }
        }
        for n in ordered {
            let node = &self.nodes[n as usize];
            out.push((node.member.clone(), node.score));
            self.release(n);
        }
        self.root = self.merge(l, rest);
        self.compact_if_sparse();
        out
    }

    /// How many pairs sort before (score, member).
    pub(crate) fn rank(&self, score: f64, member: &[u8]) -> usize {
        self.count_while(|s, m| cmp_key(s, m, score, member) == Ordering::Less)
    }

    /// How many leading pairs satisfy `before`, which must be true for a prefix of the order
    /// and false afterwards (a lower bound on score or member).
    pub(crate) fn count_while(&self, before: impl Fn(f64, &[u8]) -> bool) -> usize {
        let mut count = 0usize;
        let mut cur = self.root;
        while cur != NIL {
            let n = &self.nodes[cur as usize];
            if before(n.score, &n.member) {
                count += self.size(n.left) as usize + 1;
                cur = n.right;
            } else {
                cur = n.left;
            }
        }
        count
    }

    /// The pair at `rank` (0-based).
    pub(crate) fn get_by_rank(&self, rank: usize) -> Option<(&Bytes, f64)> {
        let mut k = u32::try_from(rank).ok()?;
        let mut cur = self.root;
        while cur != NIL {
            let n = &self.nodes[cur as usize];
            let ls = self.size(n.left);
            match k.cmp(&ls) {
                Ordering::Less => cur = n.left,
                Ordering::Equal => return Some((&n.member, n.score)),
                Ordering::Greater => {
                    k -= ls + 1;
                    cur = n.right;
                }
            }
        }
        None
    }

    /// In-order iterator starting at `rank`.
    pub(crate) fn iter_from(&self, rank: usize) -> Iter<'_> {
        let mut stack = Vec::new();
        let mut k = rank;
        let mut cur = self.root;
        while cur != NIL {
            let n = &self.nodes[cur as usize];
            let ls = self.size(n.left) as usize;
            if k < ls {
                stack.push(cur);
                cur = n.left;
            } else if k == ls {
                stack.push(cur);
                break;
            } else {
                k -= ls + 1;
                cur = n.right;
            }
        }
        Iter { tree: self, stack }
    }
}

/// In-order iteration over (member, score).
pub(crate) struct Iter<'a> {
    tree: &'a OrderTree,
    stack: Vec<u32>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Bytes, f64);

    fn next(&mut self) -> Option<Self::Item> {
        let n = self.stack.pop()?;
        let nodes = &self.tree.nodes;
        let node = &nodes[n as usize];
        let mut cur = node.right;
        while cur != NIL {
            self.stack.push(cur);
            cur = nodes[cur as usize].left;
        }
        Some((&node.member, node.score))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_sort(v: &mut [(f64, Vec<u8>)]) {
        v.sort_by(|a, b| cmp_key(a.0, &a.1, b.0, &b.1));
    }

    #[test]
    fn random_ops_match_sorted_vec() {
        let mut rng: u64 = 12345;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut tree = OrderTree::default();
        let mut model: Vec<(f64, Vec<u8>)> = Vec::new();
        for step in 0..20_000 {
            let op = next() % 10;
            let member = format!("m{}", next() % 300).into_bytes();
            let score = (next() % 50) as f64 - 25.0;
            if op < 5 {
                if !model.iter().any(|(_, m)| *m == member) {
                    tree.insert(score, Bytes::from(member.clone()));
                    model.push((score, member));
                    model_sort(&mut model);
                }
            } else if op < 8 {
                if let Some(pos) = model.iter().position(|(_, m)| *m == member) {
                    let (s, m) = model.remove(pos);
                    assert!(tree.remove(s, &m));
                } else {
                    assert!(!tree.remove(score, &member));
                }
            } else if op < 9 && !model.is_empty() {
                let a = (next() as usize) % model.len();
                let b = a + (next() as usize) % 4;
                let got = tree.remove_rank_range(a, b);
                let want: Vec<_> = model.drain(a..b.min(model.len())).collect();
                assert_eq!(got.len(), want.len());
                for ((gm, gs), (ws, wm)) in got.iter().zip(want.iter()) {
                    assert_eq!((gm.as_ref(), *gs), (wm.as_slice(), *ws));
                }
            }
            assert_eq!(tree.len(), model.len());
            if step % 97 == 0 {
                let all: Vec<_> = tree.iter_from(0).map(|(m, s)| (s, m.to_vec())).collect();
                assert_eq!(all, model);
                for (i, (s, m)) in model.iter().enumerate() {
                    assert_eq!(tree.rank(*s, m), i);
                    let (gm, gs) = tree.get_by_rank(i).unwrap();
                    assert_eq!((gm.as_ref(), gs), (m.as_slice(), *s));
                }
                assert!(tree.get_by_rank(model.len()).is_none());
                let from = model.len() / 2;
                let tail: Vec<_> = tree.iter_from(from).map(|(m, s)| (s, m.to_vec())).collect();
                assert_eq!(tail, model[from..].to_vec());
                let bound = 3.0;
                let want = model.iter().filter(|(s, _)| *s < bound).count();
                assert_eq!(tree.count_while(|s, _| s < bound), want);
            }
        }
    }

    #[test]
    fn arena_shrinks_after_mass_removal() {
        let mut t = OrderTree::default();
        for i in 0..10_000 {
            t.insert(i as f64, Bytes::from(format!("m{i}")));
        }
        let full = t.arena_slots();
        t.remove_rank_range(0, 9_990);
        for i in 9_990..9_995 {
            assert!(t.remove(i as f64, format!("m{i}").as_bytes()));
        }
        assert!(t.arena_slots() < full / 10);
        let rest: Vec<_> = t.iter_from(0).map(|(m, _)| m.clone()).collect();
        assert_eq!(rest, ["m9995", "m9996", "m9997", "m9998", "m9999"]);
        assert_eq!(t.rank(9997.0, b"m9997"), 2);
    }

    #[test]
    fn equal_scores_order_by_member_and_negative_zero_equals_zero() {
        let mut t = OrderTree::default();
        t.insert(0.0, Bytes::from_static(b"b"));
        t.insert(-0.0, Bytes::from_static(b"a"));
        t.insert(f64::NEG_INFINITY, Bytes::from_static(b"z"));
        let v: Vec<_> = t.iter_from(0).map(|(m, _)| m.clone()).collect();
        assert_eq!(v, vec!["z", "a", "b"]);
        assert!(t.remove(0.0, b"a"));
        assert_eq!(t.len(), 2);
        assert!(t.iter_from(5).next().is_none());
    }
}
