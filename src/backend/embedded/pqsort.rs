//! Redis's `pqsort` (src/pqsort.c): NetBSD's qsort (Bentley & McIlroy, "Engineering a Sort
//! Function") that only sorts the part of the array covering an index range. SORT ... BY
//! ... LIMIT and GEO searches with COUNT use it, and it is not stable, so the order of
//! equal elements it leaves is what Redis replies: this is the same algorithm, step for
//! step (same pivots, same swaps), written over indexes instead of byte pointers.

use std::cmp::Ordering;

/// Redis's pqsort: Bentley & McIlroy's quicksort (NetBSD's qsort) that only recurses into
/// partitions overlapping the index range `[lrange, rrange]`. Elements outside the range
/// end up in no particular order; the ones inside are those a full sort puts there, with
/// ties ordered exactly as Redis orders them.
pub fn partial_sort<T>(v: &mut [T], cmp: &impl Fn(&T, &T) -> Ordering, lrange: i64, rrange: i64) {
    pqsort_part(v, 0, v.len(), cmp, lrange, rrange);
}

/// Does the partition `[lo, lo + n)` hold any index of `[lrange, rrange]`?
fn overlaps(lo: usize, n: usize, lrange: i64, rrange: i64) -> bool {
    let (l, r) = (lo as i64, (lo + n) as i64 - 1);
    !((lrange < l && rrange < l) || (lrange > r && rrange > r))
}

fn med3<T>(v: &[T], a: usize, b: usize, c: usize, cmp: &impl Fn(&T, &T) -> Ordering) -> usize {
    if cmp(&v[a], &v[b]).is_lt() {
        if cmp(&v[b], &v[c]).is_lt() {
            b
        } else if cmp(&v[a], &v[c]).is_lt() {
            c
        } else {
            a
        }
    } else if cmp(&v[b], &v[c]).is_gt() {
        b
    } else if cmp(&v[a], &v[c]).is_lt() {
        a
    } else {
        c
    }
}

fn insertion_sort<T>(v: &mut [T], lo: usize, n: usize, cmp: &impl Fn(&T, &T) -> Ordering) {
    for m in lo + 1..lo + n {
        let mut l = m;
        while l > lo && cmp(&v[l - 1], &v[l]).is_gt() {
            v.swap(l, l - 1);
            l -= 1;
        }
    }
}

fn vec_swap<T>(v: &mut [T], a: usize, b: usize, n: usize) {
    for i in 0..n {
        v.swap(a + i, b + i);
    }
}

fn pqsort_part<T>(
    v: &mut [T],
    mut lo: usize,
    mut n: usize,
    cmp: &impl Fn(&T, &T) -> Ordering,
    lrange: i64,
    rrange: i64,
) {
    loop {
        if n < 7 {
            insertion_sort(v, lo, n, cmp);
            return;
        }
        let mut pm = lo + n / 2;
        if n > 7 {
            let mut pl = lo;
            let mut pn = lo + n - 1;
            if n > 40 {
                let d = n / 8;
                pl = med3(v, pl, pl + d, pl + 2 * d, cmp);
                pm = med3(v, pm - d, pm, pm + d, cmp);
                pn = med3(v, pn - 2 * d, pn - d, pn, cmp);
            }
            pm = med3(v, pl, pm, pn, cmp);
        }
        v.swap(lo, pm);
        let (mut pa, mut pb) = (lo + 1, lo + 1);
        let (mut pc, mut pd) = (lo + n - 1, lo + n - 1);
        let mut swapped = false;
        loop {
            while pb <= pc {
                let r = cmp(&v[pb], &v[lo]);
                if r.is_gt() {
                    break;
                }
                if r.is_eq() {
                    swapped = true;
                    v.swap(pa, pb);
                    pa += 1;
                }
                pb += 1;
            }
            while pb <= pc {
                let r = cmp(&v[pc], &v[lo]);
                if r.is_lt() {
                    break;
                }
                if r.is_eq() {
                    swapped = true;
                    v.swap(pc, pd);
                    pd -= 1;
                }
                pc -= 1;
            }
            if pb > pc {
                break;
            }
            v.swap(pb, pc);
            swapped = true;
            pb += 1;
            pc -= 1;
        }
        if !swapped {
            insertion_sort(v, lo, n, cmp);
            return;
        }
        let pn = lo + n;
        let r = (pa - lo).min(pb - pa);
        vec_swap(v, lo, pb - r, r);
        let r = (pd - pc).min(pn - pd - 1);
        vec_swap(v, pb, pn - r, r);
        let r = pb - pa;
        if r > 1 && overlaps(lo, r, lrange, rrange) {
            pqsort_part(v, lo, r, cmp, lrange, rrange);
        }
        let r = pd - pc;
        if r > 1 && overlaps(pn - r, r, lrange, rrange) {
            lo = pn - r;
            n = r;
            continue;
        }
        return;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_sort_orders_the_requested_range() {
        let cmp = |a: &u32, b: &u32| a.cmp(b);
        for n in [0usize, 1, 6, 7, 8, 40, 41, 200] {
            let data: Vec<u32> = (0..n as u32).map(|i| (i * 7919) % 97).collect();
            let mut want = data.clone();
            want.sort();
            for (s, e) in [(0i64, 2i64), (3, 9), (n as i64 / 2, n as i64 - 1)] {
                let (s, e) = (s.min(n as i64 - 1), e.min(n as i64 - 1));
                let mut v = data.clone();
                partial_sort(&mut v, &cmp, s, e);
                if s >= 0 && e >= s {
                    assert_eq!(v[s as usize..=e as usize], want[s as usize..=e as usize]);
                }
            }
        }
    }

    #[test]
    fn ties_are_sorted_around_the_pivot() {
        // Compared on the first field only; the exact order of ties is checked against
        // redis-server by tests/diff/sort.redis and geo.redis.
        let mut v: Vec<(u8, u8)> = (0..50).map(|i| ((i * 7 % 3) as u8, i as u8)).collect();
        let cmp = |a: &(u8, u8), b: &(u8, u8)| a.0.cmp(&b.0);
        partial_sort(&mut v, &cmp, 0, 49);
        assert!(v.windows(2).all(|w| w[0].0 <= w[1].0));
        let mut seconds: Vec<u8> = v.iter().map(|p| p.1).collect();
        seconds.sort();
        assert_eq!(seconds, (0..50).collect::<Vec<u8>>());
    }
}
