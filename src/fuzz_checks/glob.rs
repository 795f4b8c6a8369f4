//! Fuzz check of the glob matcher: [`crate::glob::glob_match`] (iterative) against a direct
//! port of Redis 7's recursive `stringmatchlen` (util.c, with `skipLongerMatches` and the
//! 1000-level nesting guard), and `escape_literal` matching exactly its literal.

use super::Input;
use crate::glob::{MAX_STAR_NESTING, escape_literal, glob_match};

/// C `tolower` in the "C" locale on a signed `char` value.
fn c_tolower(v: i32) -> i32 {
    if (i32::from(b'A')..=i32::from(b'Z')).contains(&v) {
        v + 32
    } else {
        v
    }
}

/// Signed `char`, as Redis is built on x86.
fn sc(b: u8) -> i32 {
    i32::from(b as i8)
}

/// Redis's `stringmatchlen`, statement by statement. Indexes stand for C pointers; reading
/// past the pattern's end gives the sds string's NUL terminator.
pub fn redis_stringmatchlen(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let mut skip = false;
    impl_(
        pattern,
        0,
        pattern.len(),
        string,
        0,
        string.len(),
        nocase,
        &mut skip,
        0,
    )
}

#[allow(clippy::too_many_arguments)]
fn impl_(
    pat: &[u8],
    mut p: usize,
    mut plen: usize,
    s: &[u8],
    mut si: usize,
    mut slen: usize,
    nocase: bool,
    skip: &mut bool,
    nesting: usize,
) -> bool {
    let at = |i: usize| pat.get(i).copied().unwrap_or(0);
    if nesting > MAX_STAR_NESTING {
        return false;
    }
    while plen > 0 && slen > 0 {
        match at(p) {
            b'*' => {
                while plen > 0 && at(p + 1) == b'*' {
                    p += 1;
                    plen -= 1;
                }
                if plen == 1 {
                    return true;
                }
                while slen > 0 {
                    if impl_(pat, p + 1, plen - 1, s, si, slen, nocase, skip, nesting + 1) {
                        return true;
                    }
                    if *skip {
                        return false;
                    }
                    si += 1;
                    slen -= 1;
                }
                *skip = true;
                return false;
            }
            b'?' => {
                si += 1;
                slen -= 1;
            }
            b'[' => {
                p += 1;
                plen -= 1;
                let not = at(p) == b'^';
                if not {
                    p += 1;
                    plen -= 1;
                }
                let mut matched = false;
                loop {
                    if at(p) == b'\\' && plen >= 2 {
                        p += 1;
                        plen -= 1;
                        if at(p) == s[si] {
                            matched = true;
                        }
                    } else if at(p) == b']' {
                        break;
                    } else if plen == 0 {
                        p -= 1;
                        plen += 1;
                        break;
                    } else if plen >= 3 && at(p + 1) == b'-' {
                        let (mut start, mut end, mut c) = (sc(at(p)), sc(at(p + 2)), sc(s[si]));
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        if nocase {
                            start = c_tolower(start);
                            end = c_tolower(end);
                            c = c_tolower(c);
                        }
                        p += 2;
                        plen -= 2;
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if !nocase {
                        if at(p) == s[si] {
                            matched = true;
                        }
                    } else if c_tolower(sc(at(p))) == c_tolower(sc(s[si])) {
                        matched = true;
                    }
                    p += 1;
                    plen -= 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                si += 1;
                slen -= 1;
            }
            first => {
                if first == b'\\' && plen >= 2 {
                    p += 1;
                    plen -= 1;
                }
                let same = if nocase {
                    c_tolower(sc(at(p))) == c_tolower(sc(s[si]))
                } else {
                    at(p) == s[si]
                };
                if !same {
                    return false;
                }
                si += 1;
                slen -= 1;
            }
        }
        p += 1;
        plen -= 1;
        if slen == 0 {
            while at(p) == b'*' {
                p += 1;
                plen -= 1;
            }
            break;
        }
    }
    plen == 0 && slen == 0
}

/// Longest pattern and text tried (the nesting guard needs ~2000 pattern bytes).
const MAX_LEN: usize = 2400;

/// Input: a flags byte, a split point, then pattern and text.
pub fn glob(data: &[u8]) {
    let mut input = Input::new(data);
    let nocase = input.bool();
    let rest = input.rest();
    let rest = &rest[..rest.len().min(2 * MAX_LEN)];
    let split = rest
        .iter()
        .position(|&b| b == 0xfe)
        .unwrap_or(rest.len() / 2);
    let pattern = &rest[..split];
    let text = rest.get(split + 1..).unwrap_or(&[]);
    let (pattern, text) = (
        &pattern[..pattern.len().min(MAX_LEN)],
        &text[..text.len().min(MAX_LEN)],
    );

    assert_eq!(
        glob_match(pattern, text, nocase),
        redis_stringmatchlen(pattern, text, nocase),
        "pattern {:?} text {:?} nocase {nocase}",
        String::from_utf8_lossy(pattern),
        String::from_utf8_lossy(text),
    );
    // Each side taken as a literal matches itself and nothing else.
    for (lit, other) in [(text, pattern), (pattern, text)] {
        if lit.is_empty() {
            continue;
        }
        let escaped = escape_literal(lit);
        assert!(
            glob_match(&escaped, lit, nocase),
            "escaped literal must match itself"
        );
        if !other.is_empty() {
            let same = if nocase {
                lit.eq_ignore_ascii_case(other)
            } else {
                lit == other
            };
            assert_eq!(glob_match(&escaped, other, nocase), same, "escaped literal");
        }
    }
}
