//! The COMMAND command (COUNT, INFO, DOCS, LIST, GETKEYS, GETKEYSANDFLAGS, HELP), answered from
//! the command table in Redis 7.0's reply shapes (RESP3 maps and sets; RESP2 gets the downgrade).
//!
//! Clients (redis-py cluster mode, ioredis, Lettuce) call COMMAND / COMMAND INFO on connect to
//! learn key positions, so these replies must look exactly like Redis's.

use bytes::Bytes;

use super::keys::{self, KeysError};
use super::table::{self, BeginSearch, CommandDocs, CommandSpec, DocArg, FindKeys, KeySpec};
use crate::protocol::Reply;
use crate::protocol::errors;

/// Answers `COMMAND <args>`; `args` are the arguments after `COMMAND`.
pub fn command_command(args: &[Bytes]) -> Reply {
    let Some(sub) = args.first() else {
        return Reply::Array(table::all().iter().map(info_reply).collect());
    };
    // Arity comes from the table's own `command|...` entries, like Redis's dispatch check.
    let argc = args.len() + 1;
    let Some(spec) = table::lookup(b"command").and_then(|c| table::lookup_subcommand(c, sub))
    else {
        return Reply::err(errors::unknown_subcommand(sub, "command"));
    };
    if !spec.arity_ok(argc) {
        return Reply::err(errors::wrong_arity(spec.name));
    }
    let rest = &args[1..];
    match spec.name {
        "command|count" => Reply::Integer(table::all().len() as i64),
        "command|info" if rest.is_empty() => {
            Reply::Array(table::all().iter().map(info_reply).collect())
        }
        "command|info" => Reply::Array(
            rest.iter()
                .map(|n| lookup_full(n).map_or(Reply::Null, info_reply))
                .collect(),
        ),
        "command|docs" if rest.is_empty() => {
            Reply::Map(table::all().iter().map(named_docs).collect())
        }
        // Unknown names are left out of the map, as Redis does.
        "command|docs" => Reply::Map(
            rest.iter()
                .filter_map(|n| lookup_full(n))
                .map(named_docs)
                .collect(),
        ),
        "command|list" => list(rest),
        "command|getkeys" => getkeys(rest, false),
        "command|getkeysandflags" => getkeys(rest, true),
        "command|help" => help(),
        _ => Reply::err(errors::unknown_subcommand(sub, "command")),
    }
}

/// A command by its full name, `get` or `client|list` (Redis's `lookupCommandBySds`).
pub fn lookup_full(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut parts = name.splitn(3, |b| *b == b'|');
    let base = table::lookup(parts.next()?)?;
    match (parts.next(), parts.next()) {
        (None, _) => Some(base),
        (Some(sub), None) => table::lookup_subcommand(base, sub),
        (Some(_), Some(_)) => None,
    }
}

fn bulk(s: &str) -> Reply {
    Reply::bulk_str(s)
}

fn status(s: &str) -> Reply {
    Reply::Status(s.to_string())
}

fn status_set<'a>(items: impl IntoIterator<Item = &'a str>) -> Reply {
    Reply::Set(items.into_iter().map(status).collect())
}

fn int(i: i32) -> Reply {
    Reply::Integer(i64::from(i))
}

/// One COMMAND INFO entry: the 10-element array of Redis 7.
fn info_reply(cmd: &CommandSpec) -> Reply {
    Reply::Array(vec![
        bulk(cmd.name),
        int(cmd.arity),
        status_set(table::flag_names(cmd.flags)),
        int(cmd.first_key),
        int(cmd.last_key),
        int(cmd.step),
        Reply::Set(
            cmd.acl_categories
                .iter()
                .map(|c| Reply::Status(format!("@{c}")))
                .collect(),
        ),
        Reply::Set(cmd.tips.iter().map(|t| bulk(t)).collect()),
        // Redis 7.0 replies with sets here (in order), not arrays.
        Reply::Set(cmd.key_specs.iter().map(key_spec_reply).collect()),
        Reply::Set(cmd.subcommands.iter().map(info_reply).collect()),
    ])
}

fn key_spec_reply(ks: &KeySpec) -> Reply {
    let mut m = Vec::with_capacity(4);
    if let Some(notes) = ks.notes {
        m.push((bulk("notes"), bulk(notes)));
    }
    m.push((bulk("flags"), status_set(ks.flags.iter().copied())));
    let (btype, bspec) = match ks.begin_search {
        BeginSearch::Index(i) => ("index", vec![(bulk("index"), int(i))]),
        BeginSearch::Keyword { keyword, startfrom } => (
            "keyword",
            vec![
                (bulk("keyword"), bulk(keyword)),
                (bulk("startfrom"), int(startfrom)),
            ],
        ),
        BeginSearch::Unknown => ("unknown", vec![]),
    };
    m.push((
        bulk("begin_search"),
        Reply::Map(vec![
            (bulk("type"), bulk(btype)),
            (bulk("spec"), Reply::Map(bspec)),
        ]),
    ));
    let (ftype, fspec) = match ks.find_keys {
        FindKeys::Range {
            lastkey,
            step,
            limit,
        } => (
            "range",
            vec![
                (bulk("lastkey"), int(lastkey)),
                (bulk("keystep"), int(step)),
                (bulk("limit"), int(limit)),
            ],
        ),
        FindKeys::Keynum {
            keynumidx,
            firstkey,
            step,
        } => (
            "keynum",
            vec![
                (bulk("keynumidx"), int(keynumidx)),
                (bulk("firstkey"), int(firstkey)),
                (bulk("keystep"), int(step)),
            ],
        ),
        FindKeys::Unknown => ("unknown", vec![]),
    };
    m.push((
        bulk("find_keys"),
        Reply::Map(vec![
            (bulk("type"), bulk(ftype)),
            (bulk("spec"), Reply::Map(fspec)),
        ]),
    ));
    Reply::Map(m)
}

fn named_docs(cmd: &CommandSpec) -> (Reply, Reply) {
    (bulk(cmd.name), docs_reply(cmd))
}

/// One COMMAND DOCS value, fields in Redis's order and only those that are set.
fn docs_reply(cmd: &CommandSpec) -> Reply {
    let d: &CommandDocs = &cmd.docs;
    let mut m = Vec::new();
    if !d.summary.is_empty() {
        m.push((bulk("summary"), bulk(d.summary)));
    }
    if !d.since.is_empty() {
        m.push((bulk("since"), bulk(d.since)));
    }
    m.push((bulk("group"), bulk(d.group)));
    if let Some(c) = d.complexity {
        m.push((bulk("complexity"), bulk(c)));
    }
    if !d.doc_flags.is_empty() {
        m.push((bulk("doc_flags"), status_set(d.doc_flags.iter().copied())));
    }
    if let Some(v) = d.deprecated_since {
        m.push((bulk("deprecated_since"), bulk(v)));
    }
    if let Some(v) = d.replaced_by {
        m.push((bulk("replaced_by"), bulk(v)));
    }
    if !d.history.is_empty() {
        // Redis replies with a set of (version, description) pairs.
        let h = d
            .history
            .iter()
            .map(|(v, t)| Reply::Array(vec![bulk(v), bulk(t)]))
            .collect();
        m.push((bulk("history"), Reply::Set(h)));
    }
    if !d.arguments.is_empty() {
        m.push((bulk("arguments"), args_reply(d.arguments)));
    }
    if !cmd.subcommands.is_empty() {
        m.push((
            bulk("subcommands"),
            Reply::Map(cmd.subcommands.iter().map(named_docs).collect()),
        ));
    }
    Reply::Map(m)
}

fn args_reply(args: &[DocArg]) -> Reply {
    Reply::Array(args.iter().map(arg_reply).collect())
}

fn arg_reply(a: &DocArg) -> Reply {
    let mut m = vec![(bulk("name"), bulk(a.name)), (bulk("type"), bulk(a.kind))];
    let opt = |m: &mut Vec<(Reply, Reply)>, k: &str, v: Option<&str>| {
        if let Some(v) = v {
            m.push((bulk(k), bulk(v)));
        }
    };
    opt(&mut m, "display_text", a.display_text);
    if let Some(i) = a.key_spec_index {
        m.push((bulk("key_spec_index"), int(i)));
    }
    opt(&mut m, "token", a.token);
    opt(&mut m, "summary", a.summary);
    opt(&mut m, "since", a.since);
    opt(&mut m, "deprecated_since", a.deprecated_since);
    if !a.flags.is_empty() {
        m.push((bulk("flags"), status_set(a.flags.iter().copied())));
    }
    opt(&mut m, "value", a.value);
    // Redis always lists the children of a oneof/block, even when there are none.
    if !a.arguments.is_empty() || a.kind == "oneof" || a.kind == "block" {
        m.push((bulk("arguments"), args_reply(a.arguments)));
    }
    Reply::Map(m)
}

/// COMMAND LIST [FILTERBY MODULE m | ACLCAT c | PATTERN p]: names including subcommands.
fn list(rest: &[Bytes]) -> Reply {
    enum Filter<'a> {
        All,
        Module,
        AclCat(&'a [u8]),
        Pattern(&'a [u8]),
    }
    let filter = match rest {
        [] => Filter::All,
        [by, kind, arg] if by.eq_ignore_ascii_case(b"filterby") => {
            if kind.eq_ignore_ascii_case(b"module") {
                Filter::Module
            } else if kind.eq_ignore_ascii_case(b"aclcat") {
                Filter::AclCat(arg)
            } else if kind.eq_ignore_ascii_case(b"pattern") {
                Filter::Pattern(arg)
            } else {
                return Reply::err(errors::SYNTAX);
            }
        }
        _ => return Reply::err(errors::SYNTAX),
    };
    let keep = |c: &CommandSpec| match filter {
        Filter::All => true,
        // We serve no module commands.
        Filter::Module => false,
        Filter::AclCat(cat) => c
            .acl_categories
            .iter()
            .any(|a| a.as_bytes().eq_ignore_ascii_case(cat)),
        Filter::Pattern(p) => crate::glob::glob_match(p, c.name.as_bytes(), true),
    };
    let mut out = Vec::new();
    for c in table::all() {
        for c in std::iter::once(c).chain(c.subcommands.iter()) {
            if keep(c) {
                out.push(bulk(c.name));
            }
        }
    }
    Reply::Array(out)
}

/// COMMAND GETKEYS / GETKEYSANDFLAGS <full command>.
fn getkeys(argv: &[Bytes], with_flags: bool) -> Reply {
    let result = argv
        .first()
        .and_then(|name| table::lookup(name))
        .ok_or(KeysError::InvalidCommand)
        .and_then(|cmd| keys::keys_and_flags(cmd, argv));
    match result {
        Ok(found) => Reply::Array(
            found
                .into_iter()
                .filter_map(|k| {
                    let key = Reply::Bulk(argv.get(k.pos)?.clone());
                    Some(if with_flags {
                        Reply::Array(vec![key, status_set(k.flags.iter().copied())])
                    } else {
                        key
                    })
                })
                .collect(),
        ),
        Err(e) => Reply::err(format!("ERR {e}")),
    }
}

const HELP: &[&str] = &[
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
    "HELP",
    "    Prints this help.",
];

fn help() -> Reply {
    Reply::Array(HELP.iter().map(|l| status(l)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Protocol;

    fn run(line: &str) -> Reply {
        let args: Vec<Bytes> = line
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        command_command(&args)
    }

    fn resp2(r: &Reply) -> Vec<u8> {
        let mut out = bytes::BytesMut::new();
        r.encode(Protocol::Resp2, &mut out);
        out.to_vec()
    }

    #[test]
    fn count_and_errors() {
        assert_eq!(run("COUNT"), Reply::Integer(table::all().len() as i64));
        assert_eq!(
            run("foo"),
            Reply::err("ERR unknown subcommand 'foo'. Try COMMAND HELP.")
        );
        assert_eq!(
            run("COUNT x"),
            Reply::err("ERR wrong number of arguments for 'command|count' command")
        );
        assert_eq!(run("LIST x"), Reply::err(errors::SYNTAX));
        assert_eq!(
            run("GETKEYS nope x"),
            Reply::err("ERR Invalid command specified")
        );
    }

    #[test]
    fn info_get_matches_redis_bytes() {
        // Captured from redis-server 7.0.15 (RESP2).
        let want = b"*1\r\n*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n*3\r\n+@read\r\n+@string\r\n+@fast\r\n*0\r\n*1\r\n*6\r\n$5\r\nflags\r\n*2\r\n+RO\r\n+access\r\n$12\r\nbegin_search\r\n*4\r\n$4\r\ntype\r\n$5\r\nindex\r\n$4\r\nspec\r\n*2\r\n$5\r\nindex\r\n:1\r\n$9\r\nfind_keys\r\n*4\r\n$4\r\ntype\r\n$5\r\nrange\r\n$4\r\nspec\r\n*6\r\n$7\r\nlastkey\r\n:0\r\n$7\r\nkeystep\r\n:1\r\n$5\r\nlimit\r\n:0\r\n*0\r\n";
        assert_eq!(
            String::from_utf8_lossy(&resp2(&run("INFO GET"))),
            String::from_utf8_lossy(want)
        );
        assert_eq!(
            run("INFO nope config|get|x"),
            Reply::Array(vec![Reply::Null, Reply::Null])
        );
    }

    #[test]
    fn getkeys_and_list() {
        assert_eq!(
            run("GETKEYS MSET a 1 b 2"),
            Reply::Array(vec![bulk("a"), bulk("b")])
        );
        assert_eq!(
            run("GETKEYSANDFLAGS SET k v"),
            Reply::Array(vec![Reply::Array(vec![
                bulk("k"),
                status_set(["OW", "update"])
            ])])
        );
        assert_eq!(
            run("LIST FILTERBY PATTERN client|setn*"),
            Reply::Array(vec![bulk("client|setname")])
        );
        let Reply::Array(all) = run("LIST") else {
            panic!("LIST is an array")
        };
        assert!(all.contains(&bulk("client|setinfo")));
        assert_eq!(run("DOCS nope"), Reply::Map(vec![]));
    }
}
