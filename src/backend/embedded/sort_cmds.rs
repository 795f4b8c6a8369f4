//! SORT and SORT_RO with Redis 7.0's sort.c semantics: BY (weights from keys or hash fields,
//! or a constant pattern meaning "don't sort"), GET (`#`, `key*`, `hash*->field`), LIMIT,
//! ASC/DESC, ALPHA and STORE (the result becomes a list; an empty result deletes the
//! destination), over lists, sets and sorted sets.
//!
//! The order of ties is part of what clients see, so the sort algorithms are Redis's own:
//! a full sort is glibc's `qsort`, a merge sort and therefore stable (Rust's stable
//! `sort_by` gives the same order), and a BY sort with LIMIT is Redis's partial quicksort
//! (see [`super::pqsort`]). ALPHA compares with `strcoll` unless the result is stored; we
//! implement the C locale's (`strcmp`: bytes up to the first NUL), which is what
//! redis-server uses under C or C.UTF-8 (another locale would order differently there).
//!
//! Not reproduced: Redis 7.0 reads `errno` after strtod without clearing it, so after one
//! weight overflows, later SORTs fail on non-integer weights until another command clears
//! errno. Here each weight is judged on its own.

use std::cmp::Ordering;

use bytes::Bytes;

use super::Ctx;
use super::list_cmds::ListValue;
use super::pqsort::partial_sort;
use super::value::Value;
use crate::protocol::{Reply, errors};

const NOT_DOUBLE: &str = "ERR One or more scores can't be converted into double";

pub(super) fn register(t: &mut crate::backend::embedded::Handlers) {
    t.insert("sort", sort);
    t.insert("sort_ro", sort_ro);
}

fn sort(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    sort_generic(ctx, argv, false).unwrap_or_else(|e| e)
}

/// SORT_RO: SORT without STORE (STORE is then an unknown option: "syntax error").
fn sort_ro(ctx: &mut Ctx, argv: &[Bytes]) -> Reply {
    sort_generic(ctx, argv, true).unwrap_or_else(|e| e)
}

/// The parsed options, in sortCommandGeneric's terms.
#[derive(Debug, Default)]
struct Options<'a> {
    desc: bool,
    alpha: bool,
    limit_start: i64,
    /// -1: no LIMIT.
    limit_count: i64,
    store: Option<&'a Bytes>,
    by: Option<&'a Bytes>,
    /// BY with a pattern holding no `*` (`BY nosort`): keep the container's own order.
    dontsort: bool,
    gets: Vec<&'a Bytes>,
}

fn opt_is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

/// The bytes a C string function sees: everything before the first NUL.
fn c_str(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// Parses left to right like Redis: the first bad option answers (a later one is never
/// looked at). An option missing its arguments is a syntax error.
fn parse_options(argv: &[Bytes], readonly: bool) -> Result<Options<'_>, Reply> {
    let mut o = Options {
        limit_count: -1,
        ..Options::default()
    };
    let mut j = 2;
    while j < argv.len() {
        let a = &argv[j];
        let left = argv.len() - j - 1;
        if opt_is(a, "asc") {
            o.desc = false;
        } else if opt_is(a, "desc") {
            o.desc = true;
        } else if opt_is(a, "alpha") {
            o.alpha = true;
        } else if opt_is(a, "limit") && left >= 2 {
            o.limit_start = super::arg_i64(&argv[j + 1])?;
            o.limit_count = super::arg_i64(&argv[j + 2])?;
            j += 2;
        } else if !readonly && opt_is(a, "store") && left >= 1 {
            o.store = Some(&argv[j + 1]);
            j += 1;
        } else if opt_is(a, "by") && left >= 1 {
            let pattern = &argv[j + 1];
            o.by = Some(pattern);
            // A constant weight for everyone: nothing to sort, nothing to look up. Only
            // the C-string part counts, as strchr sees it. Like Redis, a later BY with a
            // `*` does not undo it.
            if !c_str(pattern).contains(&b'*') {
                o.dontsort = true;
            }
            j += 1;
        } else if opt_is(a, "get") && left >= 1 {
            o.gets.push(&argv[j + 1]);
            j += 1;
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        j += 1;
    }
    Ok(o)
}

/// LIMIT's clamping as sort.c does it: the inclusive index range `[start, end]` of the
/// sorted vector to output; `end < start` means nothing.
fn output_range(len: i64, limit_start: i64, limit_count: i64) -> (i64, i64) {
    let mut start = limit_start.max(0).min(len);
    let count = limit_count.max(-1).min(len);
    let mut end = if count < 0 {
        len - 1
    } else {
        start + count - 1
    };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    (start, end)
}

/// One element being sorted with its weight.
#[derive(Debug, Clone)]
struct Item {
    obj: Bytes,
    /// Numeric weight (0 when a BY key is missing, as in Redis).
    score: f64,
    /// ALPHA with BY: the weight's bytes; None (sorts first) when the BY key is missing.
    cmp: Option<Bytes>,
}

/// lookupKeyByPattern: `#` is the element itself; otherwise the first `*` is replaced by
/// the element and the key read (a string), or with `key*->field` a field of a hash.
/// Missing keys, fields, wrong types and patterns without `*` give None. Like Redis, the
/// `*` and `->` searches stop at a NUL byte (they are C string functions there).
fn lookup_by_pattern(ctx: &mut Ctx, pattern: &[u8], subst: &Bytes) -> Option<Bytes> {
    let c = c_str(pattern);
    if c == b"#" {
        return Some(subst.clone());
    }
    let star = c.iter().position(|&x| x == b'*')?;
    // The first "->" after the `*`, with at least one byte of field name after it.
    let arrow = c[star + 1..]
        .windows(2)
        .position(|w| w == b"->")
        .map(|p| star + 1 + p)
        .filter(|&f| f + 2 < c.len());
    let postfix_end = arrow.unwrap_or(pattern.len());
    let mut key = Vec::with_capacity(pattern.len() + subst.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(subst);
    key.extend_from_slice(&pattern[star + 1..postfix_end]);
    let key = Bytes::from(key);
    let entry = ctx.lookup_read(&key)?;
    match (arrow, &entry.value) {
        (Some(f), Value::Hash(h)) => h.get(&pattern[f + 2..]).cloned(),
        (None, Value::Str { data, .. }) => Some(data.clone()),
        _ => None,
    }
}

/// A weight read as sort.c reads it with strtod: leading white space allowed, the whole
/// C string must be consumed (strtod stops at a NUL, and sort.c only checks that it ended
/// on one), decimal or C99 hex floats, `inf`/`infinity`; NaN, overflow and underflow (a
/// result below the normal range that is not exact) are refused. The empty string
/// converts to 0, as strtod leaves it.
fn parse_weight(b: &[u8]) -> Option<f64> {
    let b = c_str(b);
    if b.is_empty() {
        return Some(0.0);
    }
    let ws = b
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    let s = &b[ws..];
    let (neg, body) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let v = if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
        f64::INFINITY
    } else if body.len() > 2 && (body.starts_with(b"0x") || body.starts_with(b"0X")) {
        parse_hex_weight(&body[2..])?
    } else {
        parse_decimal_weight(body)?
    };
    Some(if neg { -v } else { v })
}

/// Unsigned decimal: digits with an optional point (at least one digit) and an optional
/// complete exponent; the conversion itself is Rust's, correctly rounded like glibc's.
fn parse_decimal_weight(body: &[u8]) -> Option<f64> {
    let digits = |from: usize| {
        body[from..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count()
    };
    let int = digits(0);
    let mut i = int;
    let mut frac = 0;
    if body.get(i) == Some(&b'.') {
        frac = digits(i + 1);
        i += 1 + frac;
    }
    if int + frac == 0 {
        return None;
    }
    let mantissa_nonzero = body[..i].iter().any(|c| matches!(c, b'1'..=b'9'));
    if matches!(body.get(i), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(body.get(i + 1), Some(b'+' | b'-')));
        let exp = digits(i + 1 + sign);
        if exp == 0 {
            return None;
        }
        i += 1 + sign + exp;
    }
    if i != body.len() {
        return None;
    }
    let v: f64 = std::str::from_utf8(body).ok()?.parse().ok()?;
    // ERANGE: overflow to infinity, or a result in the subnormal range / flushed to zero
    // (a decimal there is never exact).
    if v.is_infinite() || (mantissa_nonzero && v.abs() < f64::MIN_POSITIVE) {
        return None;
    }
    Some(v)
}

/// The part of a C99 hex float after "0x": hex digits with an optional point (at least
/// one digit) and an optional binary exponent `p[+-]digits`.
fn parse_hex_weight(body: &[u8]) -> Option<f64> {
    let mut mantissa: u64 = 0;
    let mut exp: i64 = 0;
    let mut inexact = false;
    let mut seen_digit = false;
    let mut after_point = false;
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        if c == b'.' && !after_point {
            after_point = true;
        } else if let Some(d) = (c as char).to_digit(16) {
            seen_digit = true;
            if mantissa >> 60 == 0 {
                mantissa = mantissa * 16 + u64::from(d);
                if after_point {
                    exp -= 4;
                }
            } else {
                // Beyond 60 bits only whether something was dropped matters.
                inexact |= d != 0;
                if !after_point {
                    exp += 4;
                }
            }
        } else {
            break;
        }
        i += 1;
    }
    if !seen_digit {
        return None;
    }
    if matches!(body.get(i), Some(b'p' | b'P')) {
        let rest = &body[i + 1..];
        let (eneg, digits) = match rest.first() {
            Some(b'-') => (true, &rest[1..]),
            Some(b'+') => (false, &rest[1..]),
            _ => (false, rest),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        // Saturate: anything this large over- or underflows anyway.
        let e = std::str::from_utf8(digits)
            .ok()?
            .parse::<i64>()
            .unwrap_or(100_000)
            .min(100_000);
        exp += if eneg { -e } else { e };
        i = body.len();
    }
    if i != body.len() {
        return None;
    }
    if mantissa == 0 {
        return Some(0.0);
    }
    let v = scale_pow2(mantissa as f64, exp);
    inexact |= (mantissa as f64) as u64 != mantissa || scale_pow2(v, -exp) != mantissa as f64;
    if v.is_infinite() || (v.abs() < f64::MIN_POSITIVE && inexact) {
        return None;
    }
    Some(v)
}

/// `v * 2^exp` in steps that stay finite until the end (ldexp).
fn scale_pow2(mut v: f64, mut exp: i64) -> f64 {
    while exp > 1000 {
        v *= 2f64.powi(1000);
        exp -= 1000;
    }
    while exp < -1000 {
        v *= 2f64.powi(-1000);
        exp += 1000;
    }
    v * 2f64.powi(exp as i32)
}

/// Compares two ALPHA weights: by bytes when the result is stored (so what is replicated
/// does not depend on the locale), else with strcoll, which in the C locale is strcmp: it
/// stops at a NUL, so "a", "a\0b" and "a\0a" tie.
fn alpha_cmp(a: &[u8], b: &[u8], store: bool) -> Ordering {
    if store {
        a.cmp(b)
    } else {
        c_str(a).cmp(c_str(b))
    }
}

/// sortCompare for the options in force (without DESC).
fn compare(a: &Item, b: &Item, alpha: bool, by: bool, store: bool) -> Ordering {
    if !alpha {
        // Equal scores (or -0 against 0) fall back to the elements' bytes, so the numeric
        // order is total and the result deterministic.
        if a.score > b.score {
            Ordering::Greater
        } else if a.score < b.score {
            Ordering::Less
        } else {
            a.obj.cmp(&b.obj)
        }
    } else if by {
        // A missing weight sorts first; two missing weights tie.
        match (&a.cmp, &b.cmp) {
            (Some(x), Some(y)) => alpha_cmp(x, y, store),
            (x, y) => x.is_some().cmp(&y.is_some()),
        }
    } else {
        alpha_cmp(&a.obj, &b.obj, store)
    }
}

/// The elements to sort, loaded as sort.c loads them. With `dontsort` a list or sorted set
/// is read directly in its own order (reversed by DESC) and only the LIMIT range is taken;
/// `start`/`end` are then rebased onto the loaded part.
fn load(
    value: Option<&Value>,
    dontsort: bool,
    desc: bool,
    start: &mut i64,
    end: &mut i64,
) -> Vec<Bytes> {
    let direct = |len: usize, start: &mut i64, end: &mut i64| -> (usize, usize) {
        let n = (*end - *start + 1).max(0) as usize;
        let first = (*start).max(0) as usize;
        *end = n as i64 - 1;
        *start = 0;
        // (first element in forward order, count); DESC walks back from len-1-first.
        (first.min(len), n)
    };
    match value {
        None => Vec::new(),
        Some(Value::List(l)) if dontsort => {
            let (first, n) = direct(l.len(), start, end);
            if desc {
                l.iter().rev().skip(first).take(n).cloned().collect()
            } else {
                l.iter().skip(first).take(n).cloned().collect()
            }
        }
        Some(Value::List(l)) => l.iter().cloned().collect(),
        Some(Value::Set(s)) => s.members().collect(),
        Some(Value::ZSet(z)) if dontsort => {
            let len = z.len();
            let (first, n) = direct(len, start, end);
            if desc {
                // Ranks len-1-first, len-2-first, ... (the iterator is ascending only).
                (0..n)
                    .filter_map(|i| len.checked_sub(first + i + 1))
                    .filter_map(|rank| z.get_by_rank(rank).map(|(m, _)| m.clone()))
                    .collect()
            } else {
                z.iter_from(first).take(n).map(|(m, _)| m.clone()).collect()
            }
        }
        // Redis walks the member dict (no defined order) and sorts.
        Some(Value::ZSet(z)) => z.iter().map(|(m, _)| m.clone()).collect(),
        Some(_) => Vec::new(),
    }
}

fn sort_generic(ctx: &mut Ctx, argv: &[Bytes], readonly: bool) -> Result<Reply, Reply> {
    let mut o = parse_options(argv, readonly)?;
    let in_script = ctx.state.in_script;
    let (elements, start, end) = {
        let value = match ctx.lookup_read(&argv[1]) {
            None => None,
            Some(e) => {
                // Redis converts a sorted set it sorts to a skiplist (OBJECT ENCODING shows
                // it), even for SORT_RO and BY nosort.
                if let Value::ZSet(z) = &mut e.value {
                    z.convert_to_skiplist();
                }
                match &e.value {
                    v @ (Value::List(_) | Value::Set(_) | Value::ZSet(_)) => Some(v),
                    _ => return Err(Reply::err(errors::WRONGTYPE)),
                }
            }
        };
        let is_set = matches!(value, Some(Value::Set(_)));
        // A set has no order of its own: when the result is stored (replicated, written to
        // the AOF) or seen by a script, Redis sorts it ALPHA to make it deterministic.
        if o.dontsort && is_set && (o.store.is_some() || in_script) {
            o.dontsort = false;
            o.alpha = true;
            o.by = None;
        }
        let len = match value {
            Some(Value::List(l)) => l.len(),
            Some(Value::Set(s)) => s.len(),
            Some(Value::ZSet(z)) => z.len(),
            _ => 0,
        };
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        let (mut start, mut end) = output_range(len, o.limit_start, o.limit_count);
        let elements = load(value, o.dontsort, o.desc, &mut start, &mut end);
        (elements, start, end)
    };
    let mut items: Vec<Item> = elements
        .into_iter()
        .map(|obj| Item {
            obj,
            score: 0.0,
            cmp: None,
        })
        .collect();

    let mut conversion_error = false;
    if !o.dontsort {
        for item in &mut items {
            let weight = match o.by {
                Some(pattern) => match lookup_by_pattern(ctx, pattern, &item.obj) {
                    Some(w) => w,
                    None => continue,
                },
                None => item.obj.clone(),
            };
            if o.alpha {
                if o.by.is_some() {
                    item.cmp = Some(weight);
                }
            } else {
                match parse_weight(&weight) {
                    Some(s) => item.score = s,
                    None => conversion_error = true,
                }
            }
        }
        // A failed conversion answers an error whatever the order: skip sorting (a NaN-free
        // comparator is also what Rust's sort requires).
        if !conversion_error {
            let (alpha, by, desc, store) = (o.alpha, o.by.is_some(), o.desc, o.store.is_some());
            let cmp = move |a: &Item, b: &Item| {
                let c = compare(a, b, alpha, by, store);
                if desc { c.reverse() } else { c }
            };
            let len = items.len() as i64;
            if by && (start != 0 || end != len - 1) {
                partial_sort(&mut items, &cmp, start, end);
            } else {
                items.sort_by(cmp);
            }
        }
    }
    if conversion_error {
        return Err(Reply::err(NOT_DOUBLE));
    }

    let rows: &[Item] = if end >= start {
        let (s, e) = (start.max(0) as usize, end.max(0) as usize);
        items.get(s..=e).unwrap_or(&[])
    } else {
        &[]
    };
    let Some(dest) = o.store else {
        let mut out = Vec::with_capacity(rows.len() * o.gets.len().max(1));
        for item in rows {
            if o.gets.is_empty() {
                out.push(Reply::Bulk(item.obj.clone()));
            }
            for pattern in &o.gets {
                out.push(match lookup_by_pattern(ctx, pattern, &item.obj) {
                    Some(v) => Reply::Bulk(v),
                    None => Reply::Null,
                });
            }
        }
        return Ok(Reply::Array(out));
    };
    let mut stored = Vec::with_capacity(rows.len() * o.gets.len().max(1));
    for item in rows {
        if o.gets.is_empty() {
            stored.push(item.obj.clone());
        }
        for pattern in &o.gets {
            // A missing value is stored as an empty string (a list cannot hold a nil).
            stored.push(lookup_by_pattern(ctx, pattern, &item.obj).unwrap_or_default());
        }
    }
    let n = stored.len();
    if n > 0 {
        let now = ctx.now_ms;
        let list = ListValue::from_elements(stored);
        ctx.db().set(dest, Value::List(Box::new(list)), None, now);
        ctx.dirty(n as u64);
    } else if ctx.db().remove(dest).is_some() {
        ctx.dirty(1);
    }
    Ok(Reply::Integer(n as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::embedded::Engine;
    use crate::backend::embedded::test_support::{b, dirty, run};
    use crate::config::EmbeddedConfig;

    fn engine() -> Engine {
        Engine::new(&EmbeddedConfig::default())
    }

    fn bulks(items: &[&str]) -> Reply {
        Reply::Array(items.iter().map(|s| Reply::Bulk(b(s))).collect())
    }

    #[test]
    fn weights_parse_like_strtod() {
        assert_eq!(parse_weight(b""), Some(0.0));
        assert_eq!(parse_weight(b" 1.5"), Some(1.5));
        assert_eq!(parse_weight(b"\t-2"), Some(-2.0));
        assert_eq!(parse_weight(b"+5."), Some(5.0));
        assert_eq!(parse_weight(b".5"), Some(0.5));
        assert_eq!(parse_weight(b"1E+2"), Some(100.0));
        assert_eq!(parse_weight(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_weight(b"0x10"), Some(16.0));
        assert_eq!(parse_weight(b"0X1.8p1"), Some(3.0));
        assert_eq!(parse_weight(b"0x1p-1074"), Some(f64::from_bits(1)));
        assert_eq!(parse_weight(b"0e-999"), Some(0.0));
        assert_eq!(parse_weight(b"7\0abc"), Some(7.0));
        assert_eq!(parse_weight(b"\0x"), Some(0.0));
        assert_eq!(
            parse_weight(b"2.2250738585072014e-308"),
            Some(f64::MIN_POSITIVE)
        );
        for bad in [
            &b"  "[..],
            b"-",
            b"+",
            b".",
            b"1e",
            b"1e+",
            b"5 ",
            b"1_0",
            b"0x",
            b"nan",
            b"-nan",
            b"infinit",
            b"1e400",
            b"1.7976931348623159e308",
            b"1e-310",
            b"4.9e-324",
            b"0x1.00000000000000001p-1074",
        ] {
            assert_eq!(
                parse_weight(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn limit_clamps_like_sort_c() {
        assert_eq!(output_range(5, 0, -1), (0, 4));
        assert_eq!(output_range(5, 1, 2), (1, 2));
        assert_eq!(output_range(5, -3, 2), (0, 1));
        assert_eq!(output_range(5, 3, 100), (3, 4));
        assert_eq!(output_range(5, 10, 2), (4, 3));
        assert_eq!(output_range(5, 2, 0), (2, 1));
        assert_eq!(output_range(5, 2, -7), (2, 4));
        assert_eq!(output_range(0, 0, -1), (-1, -2));
        assert_eq!(output_range(3, i64::MAX, i64::MAX), (2, 1));
    }

    #[test]
    fn patterns_substitute_the_first_star() {
        let e = engine();
        run(&e, &["mset", "w_a", "1", "w_a*", "2"]);
        run(&e, &["hset", "h_a", "f", "x", "f->g", "y"]);
        let mut batch = e.batch();
        let mut ctx = Ctx {
            state: &mut batch.state,
            client: crate::backend::embedded::ClientView {
                db: 0,
                proto: crate::protocol::Protocol::Resp2,
                tracker: None,
            },
            now_ms: crate::backend::embedded::unix_ms(),
            hits: 0,
            misses: 0,
        };
        let a = b("a");
        let look = |ctx: &mut Ctx, p: &str| lookup_by_pattern(ctx, p.as_bytes(), &a);
        assert_eq!(look(&mut ctx, "#"), Some(b("a")));
        assert_eq!(look(&mut ctx, "w_*"), Some(b("1")));
        assert_eq!(look(&mut ctx, "w_**"), Some(b("2")));
        assert_eq!(look(&mut ctx, "w_"), None);
        assert_eq!(look(&mut ctx, "h_*->f"), Some(b("x")));
        assert_eq!(look(&mut ctx, "h_*->f->g"), Some(b("y")));
        assert_eq!(look(&mut ctx, "h_*->nofield"), None);
        // "->" with no field name is part of the key name.
        assert_eq!(look(&mut ctx, "h_*->"), None);
        // A hash read as a string, a string read as a hash: nothing.
        assert_eq!(look(&mut ctx, "h_*"), None);
        assert_eq!(look(&mut ctx, "w_*->f"), None);
    }

    #[test]
    fn sorts_numbers_alpha_and_by_weights() {
        let e = engine();
        run(&e, &["rpush", "l", "3", "1", "2", "10"]);
        assert_eq!(run(&e, &["sort", "l"]), bulks(&["1", "2", "3", "10"]));
        assert_eq!(
            run(&e, &["sort", "l", "desc"]),
            bulks(&["10", "3", "2", "1"])
        );
        assert_eq!(
            run(&e, &["sort", "l", "alpha"]),
            bulks(&["1", "10", "2", "3"])
        );
        assert_eq!(
            run(&e, &["sort", "l", "limit", "1", "2"]),
            bulks(&["2", "3"])
        );
        run(&e, &["mset", "w_1", "40", "w_2", "30", "w_3", "20"]);
        // w_10 is missing: weight 0.
        assert_eq!(
            run(&e, &["sort", "l", "by", "w_*"]),
            bulks(&["10", "3", "2", "1"])
        );
        assert_eq!(
            run(
                &e,
                &["sort", "l", "by", "nosort", "desc", "limit", "1", "2"]
            ),
            bulks(&["2", "1"])
        );
        assert_eq!(
            run(&e, &["sort", "l", "by", "w_*", "get", "#", "get", "w_*"]),
            Reply::Array(vec![
                Reply::Bulk(b("10")),
                Reply::Null,
                Reply::Bulk(b("3")),
                Reply::Bulk(b("20")),
                Reply::Bulk(b("2")),
                Reply::Bulk(b("30")),
                Reply::Bulk(b("1")),
                Reply::Bulk(b("40")),
            ])
        );
        run(&e, &["rpush", "bad", "1", "x"]);
        assert_eq!(run(&e, &["sort", "bad"]), Reply::err(NOT_DOUBLE));
        assert_eq!(run(&e, &["sort", "bad", "alpha"]), bulks(&["1", "x"]));
    }

    #[test]
    fn sets_and_sorted_sets() {
        let e = engine();
        run(&e, &["sadd", "s", "5", "-1", "30"]);
        assert_eq!(run(&e, &["sort", "s"]), bulks(&["-1", "5", "30"]));
        // Stored without sorting: forced ALPHA.
        assert_eq!(
            run(&e, &["sort", "s", "by", "x", "store", "d"]),
            Reply::Integer(3)
        );
        assert_eq!(
            run(&e, &["lrange", "d", "0", "-1"]),
            bulks(&["-1", "30", "5"])
        );
        run(&e, &["zadd", "z", "1", "c", "2", "b", "3", "a"]);
        assert_eq!(
            run(&e, &["sort", "z", "by", "nosort"]),
            bulks(&["c", "b", "a"])
        );
        assert_eq!(
            run(
                &e,
                &["sort", "z", "by", "nosort", "desc", "limit", "1", "5"]
            ),
            bulks(&["b", "c"])
        );
        assert_eq!(run(&e, &["sort", "z", "alpha"]), bulks(&["a", "b", "c"]));
    }

    #[test]
    fn store_counts_dirty_and_deletes_on_empty() {
        let e = engine();
        run(&e, &["rpush", "l", "2", "1"]);
        run(&e, &["set", "d", "x"]);
        let before = dirty(&e);
        assert_eq!(run(&e, &["sort", "l", "store", "d"]), Reply::Integer(2));
        assert_eq!(dirty(&e), before + 2);
        assert_eq!(run(&e, &["type", "d"]), Reply::Simple("list"));
        assert_eq!(
            run(&e, &["sort", "l", "get", "#", "get", "no*", "store", "d"]),
            Reply::Integer(4)
        );
        assert_eq!(
            run(&e, &["lrange", "d", "0", "-1"]),
            bulks(&["1", "", "2", ""])
        );
        let before = dirty(&e);
        assert_eq!(run(&e, &["sort", "nokey", "store", "d"]), Reply::Integer(0));
        assert_eq!(dirty(&e), before + 1);
        assert_eq!(run(&e, &["exists", "d"]), Reply::Integer(0));
        // Nothing stored, nothing deleted: not a write.
        let before = dirty(&e);
        assert_eq!(run(&e, &["sort", "nokey", "store", "d"]), Reply::Integer(0));
        assert_eq!(dirty(&e), before);
        // Without STORE SORT writes nothing.
        run(&e, &["sort", "l"]);
        assert_eq!(dirty(&e), before);
    }

    #[test]
    fn errors_word_for_word() {
        let e = engine();
        run(&e, &["set", "str", "x"]);
        assert_eq!(run(&e, &["sort", "str"]), Reply::err(errors::WRONGTYPE));
        assert_eq!(run(&e, &["sort", "str", "foo"]), Reply::err(errors::SYNTAX));
        assert_eq!(
            run(&e, &["sort", "l", "limit", "1"]),
            Reply::err(errors::SYNTAX)
        );
        assert_eq!(
            run(&e, &["sort", "l", "limit", "x", "1"]),
            Reply::err(errors::NOT_INTEGER)
        );
        assert_eq!(run(&e, &["sort", "l", "store"]), Reply::err(errors::SYNTAX));
        assert_eq!(
            run(&e, &["sort_ro", "l", "store", "d"]),
            Reply::err(errors::SYNTAX)
        );
        assert_eq!(
            run(&e, &["sort_ro", "l", "by", "w_*"]),
            Reply::Array(vec![])
        );
    }
}
