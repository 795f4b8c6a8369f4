//! Owns Redis-semantics glob matching for KEYS, SCAN MATCH and PSUBSCRIBE (Redis 7 `stringmatchlen`).
//!
//! The matcher reproduces Redis 7's `stringmatchlen` (util.c) byte for byte,
//! including its quirks:
//!
//! * `*` matches any run of bytes (including `/`); consecutive stars collapse.
//! * `?` matches exactly one byte.
//! * `[abc]`, `[^abc]`, `[a-z]` classes; reversed ranges (`[z-a]`) are swapped.
//!   Range bounds compare as C `char` on x86/x86-64, i.e. *signed* bytes, so
//!   `[a-\xff]` means `[\xff-a]` (-1..=97: bytes 0x00..=0x61 plus 0xff).
//! * `\x` escapes `x` outside and inside classes. An escaped byte inside a
//!   class is compared case-sensitively even when `nocase` is set (as Redis does).
//! * An unterminated class (`[abc` with no `]`) extends to the end of the
//!   pattern and still matches one byte; a lone `[` matches nothing and `[^`
//!   matches any single byte. A trailing lone `\` matches a literal `\`.
//! * An empty text only matches an empty pattern (`*` does not match `""`;
//!   the KEYS command special-cases the pattern `*` itself, this function does not).
//! * `nocase` folds ASCII letters only.
//! * Redis refuses (returns "no match") once the star recursion nests deeper
//!   than 1000 levels; here that means a pattern with more than
//!   [`MAX_STAR_NESTING`] star groups that are followed by another token never
//!   matches. (Verified against redis-server 7.0.15.)
//!
//! Unlike Redis the algorithm is iterative (classic single-backtrack-point
//! wildcard matching), so it uses constant stack and `O(pattern * text)` time
//! in the worst case; results are identical to the recursive version with
//! `skipLongerMatches`.

/// Redis' recursion limit for `*` (util.c: `if (nesting > 1000) return 0;`).
pub const MAX_STAR_NESTING: usize = 1000;

#[derive(Clone, Copy, Debug)]
enum Token {
    /// One or more consecutive `*`.
    Star,
    /// `?`
    Any,
    /// A literal byte (possibly from a `\x` escape).
    Lit(u8),
    /// A `[...]` class; `body` is the index just after `[` / `[^`.
    Class { body: usize, negate: bool },
}

/// Byte at `i`, or 0 past the end (Redis patterns are NUL-terminated sds strings).
#[inline]
fn at(pat: &[u8], i: usize) -> u8 {
    pat.get(i).copied().unwrap_or(0)
}

/// C `tolower` in the "C" locale applied to a (signed) `char` value.
#[inline]
fn c_tolower(v: i32) -> i32 {
    if (i32::from(b'A')..=i32::from(b'Z')).contains(&v) {
        v + 32
    } else {
        v
    }
}

/// Runs Redis' class loop starting at `i` (just after `[` or `[^`) against
/// byte `c`. Returns whether any member matched (before negation) and the
/// pattern index just after the class.
fn class_scan(pat: &[u8], mut i: usize, c: u8, nocase: bool) -> (bool, usize) {
    let m = pat.len();
    let mut matched = false;
    // Invariant: i <= m.
    loop {
        let rem = m - i;
        let b = at(pat, i);
        if b == b'\\' && rem >= 2 {
            i += 1;
            if pat[i] == c {
                matched = true;
            }
        } else if b == b']' {
            return (matched, i + 1);
        } else if rem == 0 {
            // Unterminated class: it swallows the rest of the pattern.
            return (matched, m);
        } else if rem >= 3 && pat[i + 1] == b'-' {
            // `char` is signed on the platforms Redis is built for.
            let mut start = i32::from(pat[i] as i8);
            let mut end = i32::from(pat[i + 2] as i8);
            let mut x = i32::from(c as i8);
            if start > end {
                std::mem::swap(&mut start, &mut end);
            }
            if nocase {
                start = c_tolower(start);
                end = c_tolower(end);
                x = c_tolower(x);
            }
            i += 2;
            if x >= start && x <= end {
                matched = true;
            }
        } else if b == c || (nocase && b.eq_ignore_ascii_case(&c)) {
            matched = true;
        }
        i += 1;
    }
}

fn tokenize(pat: &[u8]) -> Vec<Token> {
    let m = pat.len();
    let mut toks = Vec::with_capacity(m);
    let mut i = 0;
    while i < m {
        match pat[i] {
            b'*' => {
                while i < m && pat[i] == b'*' {
                    i += 1;
                }
                toks.push(Token::Star);
            }
            b'?' => {
                toks.push(Token::Any);
                i += 1;
            }
            b'[' => {
                i += 1;
                let negate = at(pat, i) == b'^';
                if negate {
                    i += 1;
                }
                let (_, next) = class_scan(pat, i, 0, false);
                toks.push(Token::Class { body: i, negate });
                i = next;
            }
            b'\\' if i + 1 < m => {
                toks.push(Token::Lit(pat[i + 1]));
                i += 2;
            }
            b => {
                toks.push(Token::Lit(b));
                i += 1;
            }
        }
    }
    toks
}

#[inline]
fn token_matches(pat: &[u8], tok: Token, c: u8, nocase: bool) -> bool {
    match tok {
        Token::Star => false,
        Token::Any => true,
        Token::Lit(b) => b == c || (nocase && b.eq_ignore_ascii_case(&c)),
        Token::Class { body, negate } => class_scan(pat, body, c, nocase).0 != negate,
    }
}

/// Redis 7 `stringmatchlen(pattern, text, nocase)`: does `text` match the glob `pattern`?
///
/// Never panics, never recurses, worst case `O(pattern.len() * text.len())`.
pub fn glob_match(pattern: &[u8], text: &[u8], nocase: bool) -> bool {
    if text.is_empty() {
        // Redis' main loop never runs for an empty string.
        return pattern.is_empty();
    }
    let toks = tokenize(pattern);
    // Every star group followed by another token costs one recursion level in
    // Redis, and a match must go through all of them.
    let nesting = toks
        .iter()
        .take(toks.len().saturating_sub(1))
        .filter(|t| matches!(t, Token::Star))
        .count();
    if nesting > MAX_STAR_NESTING {
        return false;
    }

    let (mut p, mut t) = (0usize, 0usize);
    // (token index after the last star, text index that star's match ends at)
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        if let Some(&tok) = toks.get(p) {
            if matches!(tok, Token::Star) {
                p += 1;
                backtrack = Some((p, t));
                continue;
            }
            if token_matches(pattern, tok, text[t], nocase) {
                p += 1;
                t += 1;
                continue;
            }
        }
        match backtrack {
            Some((sp, st)) => {
                backtrack = Some((sp, st + 1));
                p = sp;
                t = st + 1;
            }
            None => return false,
        }
    }
    while matches!(toks.get(p), Some(Token::Star)) {
        p += 1;
    }
    p == toks.len()
}

/// Escapes `* ? [ ] \` so `literal` matches only itself when used as (part of) a pattern.
///
/// `[escape_literal(b"a*"), b"x*".to_vec()].concat()` matches exactly the keys starting with `a*x`.
pub fn escape_literal(literal: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(literal.len() + 4);
    for &b in literal {
        if matches!(b, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (pattern, text, nocase, expected). Expectations were cross-checked
    /// against redis-server 7.0.15 `KEYS` (and the random differential test
    /// in tests/glob_vs_redis.rs).
    const CASES: &[(&[u8], &[u8], bool, bool)] = &[
        // Redis tests/unit/keyspace.tcl "KEYS with pattern"
        (b"foo*", b"foo_a", false, true),
        (b"foo*", b"key_x", false, false),
        (b"*", b"key_z", false, true),
        // "KEYS with hashtag"
        (b"{a}h*", b"{a}hello", false, true),
        (b"{a}h*", b"{b}hello", false, false),
        // pubsub.tcl PSUBSCRIBE patterns
        (b"foo.*", b"foo.bar", false, true),
        (b"bar.*", b"foo.bar", false, false),
        // docs examples
        (b"h?llo", b"hello", false, true),
        (b"h?llo", b"hllo", false, false),
        (b"h*llo", b"hllo", false, true),
        (b"h*llo", b"heeeello", false, true),
        (b"h[ae]llo", b"hello", false, true),
        (b"h[ae]llo", b"hillo", false, false),
        (b"h[^e]llo", b"hallo", false, true),
        (b"h[^e]llo", b"hello", false, false),
        (b"h[a-b]llo", b"hbllo", false, true),
        (b"h[a-b]llo", b"hcllo", false, false),
        // stars
        (b"*", b"", false, false),
        (b"", b"", false, true),
        (b"", b"a", false, false),
        (b"**", b"a/b", false, true),
        (b"a*", b"a", false, true),
        (b"*a", b"a", false, true),
        (b"a*b*", b"ab", false, true),
        (b"*?", b"", false, false),
        (b"*?*", b"x", false, true),
        (b"a*/c", b"a/b/c", false, true),
        // reversed range, range edge cases
        (b"[z-a]", b"m", false, true),
        // `[a-]` is the range a..=']' (swapped) in an unterminated class
        (b"[a-]", b"-", false, false),
        (b"[a-]", b"]", false, true),
        (b"[a-", b"-", false, true),
        (b"[-a]", b"-", false, true),
        (b"[a-]", b"b", false, false),
        (b"[a-]]", b"^", false, true),
        (b"[a-]]", b"b", false, false),
        (b"[]", b"]", false, false),
        (b"[]]", b"]", false, false),
        (b"[a-\xff]", b"\xff", false, true),
        (b"[a-\xff]", b"b", false, false),
        (b"[a-\xff]", b"\x80", false, false),
        (b"[a-\xff]", b"\xfe", false, false),
        (b"[a-\xff]", b"\x01", false, true),
        // escapes
        (b"\\*", b"*", false, true),
        (b"\\*", b"a", false, false),
        (b"a\\", b"a\\", false, true),
        (b"\\", b"\\", false, true),
        (b"[\\]]", b"]", false, true),
        (b"[\\^]", b"^", false, true),
        (b"[\\-a]", b"-", false, true),
        (b"[\\]", b"]", false, true),
        (b"[\\", b"\\", false, true),
        // unterminated classes
        (b"[", b"[", false, false),
        (b"[", b"a", false, false),
        (b"[^", b"a", false, true),
        (b"[^", b"ab", false, false),
        (b"[abc", b"b", false, true),
        (b"[abc", b"d", false, false),
        (b"[a-c", b"b", false, true),
        (b"a[", b"a", false, false),
        // nocase
        (b"HELLO", b"hello", true, true),
        (b"HELLO", b"hello", false, false),
        (b"h[A-Z]llo", b"hello", true, true),
        (b"[Z-a]", b"a", false, true),
        (b"[Z-a]", b"a", true, false),
        (b"[\\A]", b"a", true, false),
        (b"[A]", b"a", true, true),
        (b"\\A", b"a", true, true),
        (b"\xc4", b"\xe4", true, false),
        // Redis keyspace.tcl "Regression for pattern matching long nested loops"
        (
            b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
            b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            false,
            false,
        ),
    ];

    #[test]
    fn glob_table() {
        for &(pat, text, nocase, want) in CASES {
            assert_eq!(
                glob_match(pat, text, nocase),
                want,
                "pattern {:?} text {:?} nocase {nocase}",
                String::from_utf8_lossy(pat),
                String::from_utf8_lossy(text),
            );
        }
    }

    #[test]
    fn glob_pathological_finishes() {
        let text = vec![b'a'; 10_000];
        let mut pat = b"a*".repeat(200);
        pat.push(b'b');
        assert!(!glob_match(&pat, &text, false));
        // keyspace.tcl "Regression for pattern matching very long nested loops"
        let pat = b"*?".repeat(50_000);
        assert!(!glob_match(&pat, &text, false));
        let pat = b"[".repeat(10_000);
        assert!(!glob_match(&pat, &text, true));
    }

    #[test]
    fn glob_nesting_limit() {
        let text = vec![b'a'; 1300];
        let pat = |n: usize| {
            let mut p = b"a".to_vec();
            p.extend(b"*a".repeat(n));
            p
        };
        assert!(glob_match(&pat(MAX_STAR_NESTING), &text, false));
        assert!(!glob_match(&pat(MAX_STAR_NESTING + 1), &text, false));
        let mut trailing = pat(MAX_STAR_NESTING);
        trailing.push(b'*');
        assert!(glob_match(&trailing, &text, false));
    }

    #[test]
    fn glob_no_panic_on_odd_input() {
        let alphabet = b"ab*?[]^-\\";
        // every pattern up to length 4 against a few texts
        let mut pats: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..4 {
            let next: Vec<Vec<u8>> = pats
                .iter()
                .flat_map(|p| {
                    alphabet.iter().map(move |&c| {
                        let mut q = p.clone();
                        q.push(c);
                        q
                    })
                })
                .collect();
            pats.extend(next);
        }
        for p in &pats {
            for t in [&b""[..], b"a", b"]", b"\\", b"ab*", b"\xff\x00"] {
                let _ = glob_match(p, t, false);
                let _ = glob_match(p, t, true);
            }
        }
    }

    #[test]
    fn escape_literal_round_trip() {
        let lits: &[&[u8]] = &[
            b"",
            b"a*",
            b"*?[]\\",
            b"plain",
            b"x\\",
            b"[^a-z]",
            b"\xff\x00",
        ];
        for &lit in lits {
            let esc = escape_literal(lit);
            assert!(glob_match(&esc, lit, false));
            let mut pat = esc.clone();
            pat.extend_from_slice(b"x*");
            let mut key = lit.to_vec();
            key.extend_from_slice(b"xyz");
            assert!(glob_match(&pat, &key, false));
            // a near miss must not match
            let mut other = lit.to_vec();
            other.extend_from_slice(b"yx");
            assert!(!glob_match(&pat, &other, false));
        }
        assert_eq!(escape_literal(b"a*"), b"a\\*");
        let mut pat = escape_literal(b"a*");
        pat.extend_from_slice(b"x*");
        assert!(glob_match(&pat, b"a*x", false));
        assert!(glob_match(&pat, b"a*xyz", false));
        assert!(!glob_match(&pat, b"abx", false));
        assert!(!glob_match(&pat, b"a*", false));
    }
}
