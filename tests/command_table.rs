//! The command table against a real redis-server: key positions (`COMMAND GETKEYS`) for argvs
//! built from every keyed command's documented arguments, and the COMMAND command's replies.

mod common;

use bytes::{Bytes, BytesMut};
use common::redis_server::RedisServer;
use common::resp::{Conn, Value, read_value};
use respgate::command::introspection::command_command;
use respgate::command::keys::{self, key_positions};
use respgate::command::table::{self, CommandSpec, DocArg, flags};
use respgate::protocol::Protocol;

// --- argv generation from the docs argument tree ------------------------------------------

/// Which shape of the argument tree to build.
#[derive(Clone)]
enum Plan {
    /// Required arguments only, first oneof choice, one item of each `multiple`.
    Min,
    /// Every optional argument, two items of each `multiple`.
    Max,
    /// Min, but include the argument at this path (and its optional ancestors); a trailing
    /// oneof choice index when the path ends in a oneof child.
    Focus(Vec<usize>),
}

struct Gen {
    plan: Plan,
    words: Vec<Vec<u8>>,
    keys: usize,
    values: usize,
}

impl Gen {
    fn on_focus(&self, path: &[usize]) -> bool {
        matches!(&self.plan, Plan::Focus(f) if f.starts_with(path))
    }

    fn include_optional(&self, path: &[usize]) -> bool {
        matches!(self.plan, Plan::Max) || self.on_focus(path)
    }

    fn repeat(&self, path: &[usize]) -> usize {
        if matches!(self.plan, Plan::Max) || self.on_focus(path) {
            2
        } else {
            1
        }
    }

    fn push_token(&mut self, t: &str) {
        // MIGRATE documents its empty-key form as the token `""`.
        self.words.push(if t == "\"\"" {
            Vec::new()
        } else {
            t.as_bytes().to_vec()
        });
    }

    fn seq(&mut self, args: &[DocArg], path: &mut Vec<usize>) {
        let mut numkeys_at: Option<usize> = None;
        for (i, a) in args.iter().enumerate() {
            path.push(i);
            let before = self.words.len();
            if a.name == "numkeys" && a.kind == "integer" {
                // Patched below with the number of keys the next argument produces.
                if let Some(t) = a.token {
                    self.push_token(t);
                }
                numkeys_at = Some(self.words.len());
                self.words.push(b"0".to_vec());
            } else {
                let optional = a.flags.contains(&"optional");
                if !optional || self.include_optional(path) {
                    self.arg(a, path);
                }
                if let Some(at) = numkeys_at.take() {
                    let n = self.words.len() - before;
                    self.words[at] = n.to_string().into_bytes();
                }
            }
            path.pop();
        }
    }

    fn arg(&mut self, a: &DocArg, path: &mut Vec<usize>) {
        let multiple = a.flags.contains(&"multiple");
        let times = if multiple { self.repeat(path) } else { 1 };
        for n in 0..times {
            if let Some(t) = a.token
                && (n == 0 || a.flags.contains(&"multiple_token"))
            {
                self.push_token(t);
            }
            self.value(a, path);
        }
    }

    fn value(&mut self, a: &DocArg, path: &mut Vec<usize>) {
        match a.kind {
            "pure-token" => {}
            "key" => {
                self.keys += 1;
                self.words.push(format!("k{}", self.keys).into_bytes());
            }
            "integer" | "double" | "unix-time" => self.words.push(b"1".to_vec()),
            "pattern" => self.words.push(b"p*".to_vec()),
            "block" => self.seq(a.arguments, path),
            "oneof" => {
                if a.arguments.is_empty() {
                    return;
                }
                let choice = match &self.plan {
                    Plan::Focus(f) if f.starts_with(path) && f.len() > path.len() => f[path.len()],
                    _ => 0,
                }
                .min(a.arguments.len() - 1);
                path.push(choice);
                let sub = &a.arguments[choice];
                self.arg(sub, path);
                path.pop();
            }
            _ => {
                // Stream IDs must look like IDs for some commands; other strings are distinct
                // so key names map back to one position.
                if a.name == "id" {
                    self.words.push(b"0".to_vec());
                } else {
                    self.values += 1;
                    self.words.push(format!("v{}", self.values).into_bytes());
                }
            }
        }
    }
}

/// Paths of every optional argument and every oneof choice in the tree.
fn focus_paths(args: &[DocArg], path: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    for (i, a) in args.iter().enumerate() {
        path.push(i);
        if a.flags.contains(&"optional") || a.flags.contains(&"multiple") {
            out.push(path.clone());
        }
        if a.kind == "oneof" {
            for j in 0..a.arguments.len() {
                path.push(j);
                out.push(path.clone());
                if a.arguments[j].kind == "block" {
                    focus_paths(a.arguments[j].arguments, path, out);
                }
                path.pop();
            }
        } else if a.kind == "block" {
            focus_paths(a.arguments, path, out);
        }
        path.pop();
    }
}

fn argvs_for(cmd: &CommandSpec) -> Vec<Vec<Vec<u8>>> {
    let prefix: Vec<Vec<u8>> = cmd
        .name
        .split('|')
        .map(|p| p.to_ascii_uppercase().into_bytes())
        .collect();
    let mut plans = vec![Plan::Min, Plan::Max];
    let mut paths = Vec::new();
    focus_paths(cmd.docs.arguments, &mut Vec::new(), &mut paths);
    plans.extend(paths.into_iter().map(Plan::Focus));
    let mut out: Vec<Vec<Vec<u8>>> = Vec::new();
    for plan in plans {
        let mut g = Gen {
            plan,
            words: prefix.clone(),
            keys: 0,
            values: 0,
        };
        g.seq(cmd.docs.arguments, &mut Vec::new());
        if !out.contains(&g.words) {
            out.push(g.words);
        }
    }
    // Hand-picked shapes the generic plans miss.
    let extra: &[&str] = match cmd.name {
        "sort" => &[
            "SORT k1 BY v1 GET # STORE k2",
            "SORT k1 STORE k2 STORE k3",
            "SORT k1 LIMIT 0 1 STORE k2",
        ],
        "sort_ro" => &["SORT_RO k1 BY v1 GET #"],
        "migrate" => &[
            "MIGRATE h 1  0 1 COPY REPLACE KEYS k1 k2",
            "MIGRATE h 1 k1 0 1 KEYS k2",
        ],
        "georadius" => &["GEORADIUS k1 0 0 1 km STORE k2 STOREDIST k3"],
        "xread" => &[
            "XREAD COUNT 1 BLOCK 0 STREAMS k1 k2 0 0",
            "XREAD STREAMS k1 0 0",
        ],
        "xreadgroup" => &["XREADGROUP GROUP g c NOACK STREAMS k1 0"],
        "eval" => &["EVAL s 1x k1", "EVAL s 3 k1", "EVAL s -1 k1"],
        "zunionstore" => &["ZUNIONSTORE k1 9 k2", "ZUNIONSTORE k1 x k2"],
        "set" => &["SET k1 v1 GET", "SET k1 v1 NX get"],
        "bitfield" => &["BITFIELD k1 GET u8 0", "BITFIELD k1 OVERFLOW SAT GET u8 0"],
        _ => &[],
    };
    for line in extra {
        out.push(line.split(' ').map(|w| w.as_bytes().to_vec()).collect());
    }
    out
}

fn getkeys_reply(argv: &[Vec<u8>]) -> (Vec<&[u8]>, Vec<Bytes>) {
    let mut args: Vec<&[u8]> = vec![b"GETKEYS"];
    args.extend(argv.iter().map(|a| a.as_slice()));
    let ours: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
    (args, ours)
}

fn key_names(v: &Value) -> Option<Vec<Vec<u8>>> {
    match v {
        Value::Array(items) => Some(
            items
                .iter()
                .map(|v| v.as_bytes().unwrap_or_default().to_vec())
                .collect(),
        ),
        _ => None,
    }
}

fn show(argv: &[Vec<u8>]) -> String {
    argv.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn key_positions_match_redis_getkeys() {
    let redis = RedisServer::start();
    let mut conn = Conn::connect(&redis.addr());
    let mut compared = Vec::new();
    let mut failures = Vec::new();
    for top in table::all() {
        for cmd in std::iter::once(top).chain(top.subcommands.iter()) {
            if cmd.key_specs.is_empty() && !cmd.has(flags::MOVABLEKEYS) {
                continue;
            }
            let mut ok_for_cmd = 0;
            for argv in argvs_for(cmd) {
                let (args, our_args) = getkeys_reply(&argv);
                let mut full: Vec<&[u8]> = vec![b"COMMAND"];
                full.extend(args.iter().copied());
                let theirs = conn.cmd(&full);
                // The whole COMMAND GETKEYS reply, errors included, must match ...
                let mut out = BytesMut::new();
                command_command(&our_args).encode(Protocol::Resp2, &mut out);
                let ours_reply =
                    read_value(&mut &out[..]).unwrap_or_else(|e| panic!("our reply: {e}"));
                if ours_reply != theirs {
                    failures.push(format!(
                        "{}: redis {theirs:?}, ours {ours_reply:?}",
                        show(&argv)
                    ));
                    continue;
                }
                // ... and so must key_positions itself, wherever Redis finds keys.
                let Some(want) = key_names(&theirs) else {
                    continue;
                };
                let argv_b: Vec<Bytes> = argv.iter().map(|a| Bytes::copy_from_slice(a)).collect();
                let got: Option<Vec<Vec<u8>>> = key_positions(top, &argv_b)
                    .ok()
                    .map(|ps| ps.into_iter().map(|p| argv[p].clone()).collect());
                if got.as_ref() != Some(&want) {
                    failures.push(format!(
                        "{}: redis {want:?}, key_positions {got:?}",
                        show(&argv)
                    ));
                    continue;
                }
                ok_for_cmd += 1;
            }
            if ok_for_cmd > 0 {
                compared.push(cmd.name);
            } else if keys::has_keys(cmd) {
                failures.push(format!("{}: no argv compared", cmd.name));
            }
        }
    }
    println!(
        "compared {} commands: {}",
        compared.len(),
        compared.join(" ")
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        compared.len() > 150,
        "only {} commands compared",
        compared.len()
    );
}

/// The first place two replies differ, as a path; full dumps of the table are unreadable.
fn first_diff(a: &Value, b: &Value, path: &str) -> Option<String> {
    let kids = |v: &Value| -> Option<Vec<Value>> {
        match v {
            Value::Array(x) | Value::Set(x) | Value::Push(x) => Some(x.clone()),
            Value::Map(p) => Some(p.iter().flat_map(|(k, v)| [k.clone(), v.clone()]).collect()),
            _ => None,
        }
    };
    if std::mem::discriminant(a) != std::mem::discriminant(b) {
        return Some(format!("{path}: ours {a:?}\n theirs {b:?}"));
    }
    match (kids(a), kids(b)) {
        (Some(x), Some(y)) => {
            for (i, (p, q)) in x.iter().zip(&y).enumerate() {
                let label = match (a, p) {
                    (Value::Array(_), Value::Array(items)) if !items.is_empty() => {
                        format!(
                            "{path}/{i}({})",
                            String::from_utf8_lossy(items[0].as_bytes().unwrap_or_default())
                        )
                    }
                    _ => format!("{path}/{i}"),
                };
                if let Some(d) = first_diff(p, q, &label) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| format!("{path}: {} vs {} items", x.len(), y.len()))
        }
        _ => (a != b).then(|| format!("{path}: ours {a:?}\n theirs {b:?}")),
    }
}

fn assert_same(ours: &Value, theirs: &Value, what: &str) {
    if let Some(d) = first_diff(ours, theirs, what) {
        panic!("{what} differs at {d}");
    }
}

// --- COMMAND replies ------------------------------------------------------------------------

fn ours(args: &[&str], proto: Protocol) -> Value {
    let args: Vec<Bytes> = args
        .iter()
        .map(|a| Bytes::copy_from_slice(a.as_bytes()))
        .collect();
    let mut out = BytesMut::new();
    command_command(&args).encode(proto, &mut out);
    let mut slice: &[u8] = &out;
    let v = read_value(&mut slice).unwrap_or_else(|e| panic!("our reply does not parse: {e}"));
    assert!(slice.is_empty(), "trailing bytes after our reply");
    v
}

fn theirs(conn: &mut Conn, args: &[&str]) -> Value {
    let mut full: Vec<&[u8]> = vec![b"COMMAND"];
    full.extend(args.iter().map(|a| a.as_bytes()));
    conn.cmd(&full)
}

fn name_of(v: &Value) -> Vec<u8> {
    match v {
        Value::Array(items) => items
            .first()
            .and_then(|n| n.as_bytes())
            .unwrap_or_default()
            .to_vec(),
        _ => Vec::new(),
    }
}

/// COMMAND INFO entries with flags, categories and tips as the sets Redis documents them as
/// (RESP2 gives them as arrays in hash order), and subcommands in name order.
fn normalize_info(v: &Value) -> Value {
    match v {
        Value::Array(items) if items.len() == 10 && matches!(items[0], Value::Bulk(_)) => {
            let mut items = items.clone();
            for i in [2, 6, 7] {
                if let Value::Array(s) | Value::Set(s) = &items[i] {
                    let mut s = s.clone();
                    s.sort_by_key(|x| format!("{x:?}"));
                    items[i] = Value::Array(s);
                }
            }
            if let Value::Array(subs) | Value::Set(subs) = &items[9] {
                let mut subs: Vec<Value> = subs.iter().map(normalize_info).collect();
                subs.sort_by_key(name_of);
                items[9] = Value::Array(subs);
            }
            Value::Array(items)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalize_info).collect()),
        other => other.clone(),
    }
}

/// RESP3 docs: maps in key order, sets in value order, arrays (argument lists) as they are.
fn normalize_docs(v: &Value) -> Value {
    match v {
        Value::Map(pairs) => {
            let mut p: Vec<(Value, Value)> = pairs
                .iter()
                .map(|(k, v)| (k.clone(), normalize_docs(v)))
                .collect();
            p.sort_by_key(|(k, _)| format!("{k:?}"));
            Value::Map(p)
        }
        Value::Set(items) => {
            let mut s: Vec<Value> = items.iter().map(normalize_docs).collect();
            s.sort_by_key(|x| format!("{x:?}"));
            Value::Set(s)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalize_docs).collect()),
        other => other.clone(),
    }
}

/// Our entries minus the deliberate `client|setinfo` addition (absent from Redis 7.0).
fn without_setinfo(v: Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(
            items
                .into_iter()
                .filter(|i| {
                    name_of(i) != b"client|setinfo" && i.as_bytes() != Some(b"client|setinfo")
                })
                .map(without_setinfo)
                .collect(),
        ),
        Value::Set(items) => Value::Set(
            items
                .into_iter()
                .filter(|i| {
                    name_of(i) != b"client|setinfo" && i.as_bytes() != Some(b"client|setinfo")
                })
                .map(without_setinfo)
                .collect(),
        ),
        Value::Map(pairs) => Value::Map(
            pairs
                .into_iter()
                .filter(|(k, _)| k.as_bytes() != Some(b"client|setinfo"))
                .map(|(k, v)| (k, without_setinfo(v)))
                .collect(),
        ),
        other => other,
    }
}

#[test]
fn command_replies_match_redis() {
    let redis = RedisServer::start();
    let mut conn = Conn::connect(&redis.addr());

    let info = [
        "INFO",
        "get",
        "set",
        "eval",
        "xread",
        "client|list",
        "nosuch",
    ];
    assert_eq!(
        normalize_info(&ours(&info, Protocol::Resp2)),
        normalize_info(&theirs(&mut conn, &info))
    );
    assert_eq!(
        ours(&["COUNT"], Protocol::Resp2),
        theirs(&mut conn, &["COUNT"])
    );
    assert_eq!(
        ours(&["DOCS", "get"], Protocol::Resp2),
        theirs(&mut conn, &["DOCS", "get"])
    );
    for args in [
        &["HELP"][..],
        &["foo"],
        &["COUNT", "x"],
        &["LIST", "x"],
        &["GETKEYS", "get"],
        &["GETKEYS", "nope", "x"],
    ] {
        assert_eq!(
            ours(args, Protocol::Resp2),
            theirs(&mut conn, args),
            "COMMAND {args:?}"
        );
    }
    for args in [
        &["LIST", "FILTERBY", "ACLCAT", "geo"][..],
        &["LIST", "FILTERBY", "PATTERN", "x*"],
    ] {
        assert_eq!(
            ours(args, Protocol::Resp2).sorted(),
            theirs(&mut conn, args).sorted(),
            "COMMAND {args:?}"
        );
    }
    let gkf = ["GETKEYSANDFLAGS", "LMOVE", "a", "b", "LEFT", "RIGHT"];
    assert_eq!(ours(&gkf, Protocol::Resp2), theirs(&mut conn, &gkf));

    // The whole table, in RESP3 so that sets and maps keep their types.
    conn.cmd(&[b"HELLO", b"3"]);
    let mut all_ours = without_setinfo(ours(&["INFO"], Protocol::Resp3));
    let mut all_theirs = theirs(&mut conn, &["INFO"]);
    for v in [&mut all_ours, &mut all_theirs] {
        if let Value::Array(items) = v {
            items.sort_by_key(name_of);
        }
    }
    assert_same(
        &normalize_info(&all_ours),
        &normalize_info(&all_theirs),
        "COMMAND INFO",
    );
    let docs_ours = normalize_docs(&without_setinfo(ours(&["DOCS"], Protocol::Resp3)));
    assert_same(
        &docs_ours,
        &normalize_docs(&theirs(&mut conn, &["DOCS"])),
        "COMMAND DOCS",
    );
    let list_ours = without_setinfo(ours(&["LIST"], Protocol::Resp3)).sorted();
    assert_eq!(list_ours, theirs(&mut conn, &["LIST"]).sorted());
}
