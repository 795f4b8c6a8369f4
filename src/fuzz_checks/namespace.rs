//! Fuzz check of namespace rewriting on the way in: any command of the table with any
//! arguments is planned without a panic; every key the command table finds gets exactly the
//! prefix (and loses it again); nothing else changes except where the proxy means to; channel
//! and pattern rewrites round-trip; a confined pattern matches the tenant's keys exactly as
//! the tenant's pattern matches its own keys, and never a key outside the namespace.

use bytes::Bytes;

use super::Input;
use crate::command::keys;
use crate::command::table::{self, CommandSpec, DocArg};
use crate::glob::glob_match;
use crate::policy::{Namespace, Plan};

/// Bytes a prefix is made of: glob metacharacters, separators, the `__keyspace@` letters.
const PREFIX_ALPHABET: &[u8] = b"a:_*?[]\\^-kK@yspace";
const WORD_ALPHABET: &[u8] = b"ab:*?[]\\^-_@{}x";

/// A prefix that config validation accepts (see `config::tenants::prefix_problem`).
fn prefix(input: &mut Input) -> Option<String> {
    let p = String::from_utf8(input.word(PREFIX_ALPHABET, 8)).ok()?;
    if crate::config::prefix_problem(&p).is_some() {
        return None;
    }
    Some(p)
}

fn tokens(args: &'static [DocArg], out: &mut Vec<&'static str>) {
    for a in args {
        if let Some(t) = a.token {
            out.push(t);
        }
        tokens(a.arguments, out);
    }
}

/// One argument: a number, a keyword the command documents, a keyspace channel, or a word.
fn arg(input: &mut Input, keywords: &[&'static str]) -> Bytes {
    match input.below(6) {
        0 => Bytes::from(input.pick(&["0", "1", "2", "3", "-1", "10"]).as_bytes()),
        1 | 2 if !keywords.is_empty() => Bytes::from(input.pick(keywords).as_bytes()),
        3 => {
            let mut c = input
                .pick(&[&b"__keyspace@0__:"[..], b"__keyevent@0__:", b"__keyspace@"])
                .to_vec();
            c.extend(input.word(WORD_ALPHABET, 4));
            Bytes::from(c)
        }
        _ => Bytes::from(input.word(WORD_ALPHABET, 6)),
    }
}

/// The session's resolution: arity of the command or subcommand must fit, else it is
/// refused before the namespace sees it.
fn accepted(spec: &CommandSpec, argv: &[Bytes]) -> bool {
    if spec.subcommands.is_empty() {
        return spec.arity_ok(argv.len());
    }
    match argv.get(1).and_then(|s| table::lookup_subcommand(spec, s)) {
        Some(sub) => sub.arity_ok(argv.len()),
        None => false,
    }
}

fn cat(a: &[u8], b: &[u8]) -> Vec<u8> {
    [a, b].concat()
}

pub fn namespace(data: &[u8]) {
    let mut input = Input::new(data);
    let Some(prefix) = prefix(&mut input) else {
        return;
    };
    let ns = Namespace::new(prefix.as_bytes());
    let pre = prefix.as_bytes();

    // Channels and patterns round-trip; patterns stay inside the namespace.
    let word = Bytes::from(input.word(WORD_ALPHABET, 8));
    let mut ch = input
        .pick(&[&b""[..], b"__keyspace@0__:", b"__keyevent@1__:"])
        .to_vec();
    ch.extend_from_slice(&word);
    assert_eq!(ns.unkey(&ns.key(&word)).as_deref(), Some(&word[..]));
    assert_eq!(
        ns.unchannel(&ns.channel(&ch)).as_deref(),
        Some(&ch[..]),
        "channel {ch:?}"
    );
    assert_eq!(
        ns.unchannel_pattern(&ns.channel_pattern(&ch)).as_deref(),
        Some(&ch[..]),
        "pattern {ch:?}"
    );
    let key = input.word(WORD_ALPHABET, 8);
    let other = input.word(PREFIX_ALPHABET, 10);
    if !key.is_empty() {
        assert_eq!(
            glob_match(&ns.pattern(&word), &ns.key(&key), false),
            glob_match(&word, &key, false),
            "pattern {word:?} key {key:?}"
        );
    }
    if !other.starts_with(pre) {
        assert!(
            !glob_match(&ns.pattern(&word), &other, false),
            "pattern {word:?} matched {other:?}, outside the namespace"
        );
    }

    // A command from the table with made-up arguments.
    let commands = table::all();
    let spec = &commands[input.below(commands.len())];
    let mut argv = vec![Bytes::from(spec.name.to_ascii_uppercase())];
    let mut keywords = Vec::new();
    tokens(spec.docs.arguments, &mut keywords);
    if !spec.subcommands.is_empty() {
        let sub = input.pick(spec.subcommands);
        let short = sub.name.rsplit_once('|').map_or(sub.name, |(_, s)| s);
        argv.push(Bytes::from(short.to_string()));
        tokens(sub.docs.arguments, &mut keywords);
    }
    let extra = input.below(10);
    for _ in 0..extra {
        argv.push(arg(&mut input, &keywords));
    }
    if !accepted(spec, &argv) {
        return;
    }
    let plan = match ns.plan(spec, &argv) {
        Ok(plan) => plan,
        Err(e) => {
            assert!(e.starts_with("ERR "), "error reply without a code: {e}");
            return;
        }
    };
    let Plan::Run(out, _shape) = plan else {
        return;
    };
    let effective = keys::resolve(spec, &argv).unwrap_or(spec);
    let name = effective.name;
    if matches!(name, "scan" | "keys") || name.starts_with("pubsub|") {
        return;
    }
    if name.contains("subscribe") || name.ends_with("publish") {
        assert_eq!(out.len(), argv.len());
        for (o, a) in out.iter().zip(&argv).skip(1) {
            let back = ns.unchannel(o).or_else(|| ns.unchannel_pattern(o));
            assert!(back.is_some() || o == a, "{name}: {o:?} does not map back");
        }
        return;
    }
    assert_eq!(out.len(), argv.len(), "{name}: argument count changed");
    let mut is_key = vec![false; argv.len()];
    if let Ok(found) = keys::keys_and_flags(spec, &argv) {
        for k in found {
            if k.pos >= argv.len() {
                continue;
            }
            is_key[k.pos] = true;
            assert_eq!(
                out[k.pos][..],
                cat(pre, &argv[k.pos])[..],
                "{name}: key at {}",
                k.pos
            );
            assert_eq!(ns.unkey(&out[k.pos]).as_deref(), Some(&argv[k.pos][..]));
        }
    }
    for (i, (o, a)) in out.iter().zip(&argv).enumerate() {
        if is_key[i] || o == a {
            continue;
        }
        // SORT's BY/GET patterns name keys too.
        assert!(
            matches!(name, "sort" | "sort_ro") && o[..] == cat(pre, a)[..],
            "{name}: argument {i} changed from {a:?} to {o:?}"
        );
    }
}
