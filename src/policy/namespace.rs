//! Namespacing on the way in: a tenant's command rewritten so every key, channel and pattern
//! it names lies in the tenant's prefix. Key positions come from the command table (Redis's
//! key specs and getkeys procedures, see [`crate::command::keys`]); channels and patterns are
//! per command. The way out (replies) is [`super::replies`].
//!
//! Patterns (KEYS, SCAN MATCH, PSUBSCRIBE, PUBSUB CHANNELS) get the prefix escaped as a glob
//! literal, so a prefix holding `*?[\` cannot widen what a tenant matches.
//!
//! Keyspace notifications are the one place where Redis itself builds channel names from
//! keys: `__keyspace@<db>__:<key>` carries our prefixed key, so a tenant's subscription puts
//! the prefix after `__:`; `__keyevent@<db>__:<event>` carries the key as the payload, so
//! the channel stays shared and each delivery is filtered by payload (see `replies`).

use bytes::{BufMut, Bytes, BytesMut};

use crate::command::keys::{self, KeysError};
use crate::command::table::CommandSpec;

const KEYSPACE: &[u8] = b"__keyspace@";
const KEYEVENT: &[u8] = b"__keyevent@";
/// CLIENT TRACKING's redirect channel: shared by all tenants (each hears only its keys).
const INVALIDATE: &[u8] = crate::server::pubsub::INVALIDATE_CHANNEL;
/// Ends the `__keyspace@<db>__:` part of a notification channel.
const DB_END: &[u8] = b"__:";

/// A tenant's prefix and its glob-escaped form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    prefix: Bytes,
    glob: Bytes,
}

/// Commands that act on the whole keyspace; within a namespace they need more than an
/// argument rewrite, so the engine runs them specially.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wide {
    DbSize,
    FlushDb,
    FlushAll,
    RandomKey,
}

/// Which parts of a command's reply name keys or channels (and lose the prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Nothing to strip but error texts that quote a key (`NOGROUP No such key 'k' ...`).
    Plain,
    /// One key or nil (RANDOMKEY).
    Key,
    /// An array of keys (KEYS).
    Keys,
    /// `[cursor, [keys]]` (SCAN).
    Scan,
    /// `[key, ...]`: BLPOP/BRPOP/BZPOPMIN/BZPOPMAX, LMPOP/BLMPOP/ZMPOP/BZMPOP.
    FirstKey,
    /// XREAD/XREADGROUP: stream names (RESP2 `[[name, entries] ...]`, RESP3 a map).
    Streams,
    /// PUBSUB CHANNELS / SHARDCHANNELS: an array of channels.
    Channels,
    /// PUBSUB NUMSUB / SHARDNUMSUB: `[channel, count, ...]`.
    NumSub,
    /// A backend's INFO text (forwarding): its Keyspace rows count every tenant's keys and
    /// are dropped. (The embedded engine's INFO counts the tenant's own keys instead.)
    Info,
}

/// Whether [`Namespace::plan`] of `cmd` is only argument 1 prefixed, its reply plain: its one
/// key is argument 1 and it is none of the commands planned specially by name (SORT's
/// patterns name keys too). Worked out once per command of the table.
fn prefixes_argument_1_only(cmd: &CommandSpec) -> bool {
    static BY_ORDINAL: std::sync::OnceLock<Vec<bool>> = std::sync::OnceLock::new();
    crate::command::table::per_command(&BY_ORDINAL, cmd, |c| {
        keys::only_key_is_argument_1(c) && !matches!(c.name, "sort" | "sort_ro")
    })
    .unwrap_or(false)
}

/// What to run for a tenant's command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// This argv (keys prefixed), then strip the reply per the shape.
    Run(Vec<Bytes>, Shape),
    /// A whole-keyspace command confined to the namespace.
    Wide(Wide),
}

impl Namespace {
    pub fn new(prefix: &[u8]) -> Namespace {
        Namespace {
            prefix: Bytes::copy_from_slice(prefix),
            glob: glob_escape(prefix),
        }
    }

    pub fn prefix(&self) -> &Bytes {
        &self.prefix
    }

    /// The prefix as a glob that matches exactly itself.
    pub fn glob_prefix(&self) -> &Bytes {
        &self.glob
    }

    pub fn is_empty(&self) -> bool {
        self.prefix.is_empty()
    }

    /// A key as stored: prefix + key.
    pub fn key(&self, key: &[u8]) -> Bytes {
        concat(&self.prefix, key)
    }

    /// A stored key as the tenant knows it; None if it is not in this namespace.
    pub fn unkey(&self, stored: &[u8]) -> Option<Bytes> {
        stored
            .strip_prefix(&self.prefix[..])
            .map(Bytes::copy_from_slice)
    }

    /// A key pattern confined to the namespace (KEYS, SCAN MATCH).
    pub fn pattern(&self, pattern: &[u8]) -> Bytes {
        concat(&self.glob, pattern)
    }

    /// A channel name as registered (SUBSCRIBE, PUBLISH, PUBSUB NUMSUB).
    pub fn channel(&self, ch: &[u8]) -> Bytes {
        if let Some(at) = keyspace_key_at(ch) {
            return splice(ch, at, &self.prefix);
        }
        if ch.starts_with(KEYEVENT) || ch == INVALIDATE {
            return Bytes::copy_from_slice(ch);
        }
        self.key(ch)
    }

    /// A registered channel as the tenant knows it; None if it is not the tenant's.
    /// `__keyevent@..` channels are shared: their payload decides (see [`Self::unkey`]).
    pub fn unchannel(&self, ch: &[u8]) -> Option<Bytes> {
        if let Some(at) = keyspace_key_at(ch) {
            let key = ch[at..].strip_prefix(&self.prefix[..])?;
            let mut out = BytesMut::with_capacity(ch.len());
            out.put_slice(&ch[..at]);
            out.put_slice(key);
            return Some(out.freeze());
        }
        if ch.starts_with(KEYEVENT) || ch == INVALIDATE {
            return Some(Bytes::copy_from_slice(ch));
        }
        self.unkey(ch)
    }

    /// Is this the shared CLIENT TRACKING redirect channel, whose payload is a list of
    /// (prefixed) keys?
    pub fn is_invalidate(ch: &[u8]) -> bool {
        ch == INVALIDATE
    }

    /// Is this a shared `__keyevent@` channel, whose payload is a (prefixed) key?
    pub fn is_keyevent(ch: &[u8]) -> bool {
        ch.starts_with(KEYEVENT)
    }

    /// A channel pattern confined to the namespace (PSUBSCRIBE, PUBSUB CHANNELS).
    pub fn channel_pattern(&self, p: &[u8]) -> Bytes {
        if let Some(at) = keyspace_key_at(p) {
            return splice(p, at, &self.glob);
        }
        if p.starts_with(KEYEVENT) {
            return Bytes::copy_from_slice(p);
        }
        self.pattern(p)
    }

    /// The inverse of [`Self::channel_pattern`].
    pub fn unchannel_pattern(&self, p: &[u8]) -> Option<Bytes> {
        if let Some(at) = keyspace_key_at(p) {
            let rest = p[at..].strip_prefix(&self.glob[..])?;
            return Some(concat(&p[..at], rest));
        }
        if p.starts_with(KEYEVENT) {
            return Some(Bytes::copy_from_slice(p));
        }
        p.strip_prefix(&self.glob[..]).map(Bytes::copy_from_slice)
    }

    /// Rewrites a tenant's command. `cmd` is the top-level table entry (arity already
    /// checked); errors are reply texts.
    pub fn plan(&self, cmd: &CommandSpec, argv: &[Bytes]) -> Result<Plan, String> {
        // Most of a tenant's commands (GET, SET, INCR, HSET, LPUSH ...): only argument 1
        // gets the prefix, with no key-spec walk or name matching (a fifth of a tenant's
        // forwarded GET was spent here; `plan_by_name` gives the same plan).
        if argv.len() >= 2 && prefixes_argument_1_only(cmd) {
            let mut out = argv.to_vec();
            out[1] = self.key(&argv[1]);
            return Ok(Plan::Run(out, Shape::Plain));
        }
        self.plan_by_name(cmd, argv)
    }

    /// [`Namespace::plan`] for any command: the special cases by name, then every key the
    /// command's key specs find.
    fn plan_by_name(&self, cmd: &CommandSpec, argv: &[Bytes]) -> Result<Plan, String> {
        let effective = keys::resolve(cmd, argv).unwrap_or(cmd);
        let run = |argv: Vec<Bytes>, shape| Ok(Plan::Run(argv, shape));
        match effective.name {
            "dbsize" => return Ok(Plan::Wide(Wide::DbSize)),
            "flushdb" | "flushall" => {
                // Checked here so the confined version answers Redis's syntax error.
                let mode_ok = match argv.len() {
                    1 => true,
                    2 => {
                        argv[1].eq_ignore_ascii_case(b"sync")
                            || argv[1].eq_ignore_ascii_case(b"async")
                    }
                    _ => false,
                };
                if !mode_ok {
                    return Err(crate::protocol::errors::SYNTAX.into());
                }
                return Ok(Plan::Wide(if effective.name == "flushdb" {
                    Wide::FlushDb
                } else {
                    Wide::FlushAll
                }));
            }
            "randomkey" => return Ok(Plan::Wide(Wide::RandomKey)),
            "swapdb" => {
                return Err(
                    "ERR respgate: SWAPDB is not available to tenants (it would move other tenants' keys)"
                        .into(),
                );
            }
            "keys" => {
                return run(vec![argv[0].clone(), self.pattern(&argv[1])], Shape::Keys);
            }
            "scan" => return run(self.scan(argv), Shape::Scan),
            "subscribe" | "unsubscribe" | "ssubscribe" | "sunsubscribe" => {
                return run(self.map_from(argv, 1, |ns, c| ns.channel(c)), Shape::Plain);
            }
            "psubscribe" | "punsubscribe" => {
                return run(
                    self.map_from(argv, 1, |ns, p| ns.channel_pattern(p)),
                    Shape::Plain,
                );
            }
            "publish" | "spublish" => {
                let ch = &argv[1];
                // A keyevent payload is a key: prefixing it keeps a tenant from announcing
                // events about another tenant's keys.
                let payload = if Self::is_keyevent(ch) {
                    self.key(&argv[2])
                } else {
                    argv[2].clone()
                };
                return run(
                    vec![argv[0].clone(), self.channel(ch), payload],
                    Shape::Plain,
                );
            }
            "pubsub|channels" | "pubsub|shardchannels" => {
                let p = argv.get(2).map_or(&b"*"[..], |p| &p[..]);
                let mut out = argv[..2].to_vec();
                out.push(self.channel_pattern(p));
                out.extend(argv.iter().skip(3).cloned());
                return run(out, Shape::Channels);
            }
            "pubsub|numsub" | "pubsub|shardnumsub" => {
                return run(self.map_from(argv, 2, |ns, c| ns.channel(c)), Shape::NumSub);
            }
            _ => {}
        }
        let mut out = argv.to_vec();
        match keys::keys_and_flags(cmd, argv) {
            Ok(found) => {
                for k in found {
                    if let Some(key) = argv.get(k.pos) {
                        out[k.pos] = self.key(key);
                    }
                }
            }
            // Keyless commands (PING, CLIENT ...) and ones the session already refused.
            Err(
                KeysError::NoKeyArguments | KeysError::InvalidCommand | KeysError::InvalidArity,
            ) => {}
            Err(KeysError::InvalidArguments) => {
                // The numkeys forms refuse a numkeys that does not fit before touching any
                // key, so they may run unchanged and answer their own error; anything else
                // whose keys cannot be found must not run with unprefixed keys.
                if !numkeys_form(effective.name) {
                    return Err(format!(
                        "ERR respgate: cannot find the key arguments of '{}'",
                        effective.name
                    ));
                }
            }
        }
        if matches!(effective.name, "sort" | "sort_ro") {
            self.sort_patterns(&mut out)?;
        }
        let shape = match effective.name {
            "blpop" | "brpop" | "bzpopmin" | "bzpopmax" | "blmpop" | "lmpop" | "zmpop"
            | "bzmpop" => Shape::FirstKey,
            "xread" | "xreadgroup" => Shape::Streams,
            _ => Shape::Plain,
        };
        run(out, shape)
    }

    fn map_from(
        &self,
        argv: &[Bytes],
        from: usize,
        f: impl Fn(&Namespace, &[u8]) -> Bytes,
    ) -> Vec<Bytes> {
        argv.iter()
            .enumerate()
            .map(|(i, a)| if i >= from { f(self, a) } else { a.clone() })
            .collect()
    }

    /// SCAN: every MATCH confined, or one added; options are walked in pairs exactly as
    /// Redis's scanGenericCommand does, so a malformed line stays malformed.
    fn scan(&self, argv: &[Bytes]) -> Vec<Bytes> {
        let mut out = argv.to_vec();
        let mut matched = false;
        let mut i = 2;
        while i + 1 < argv.len() {
            let opt = &argv[i];
            if opt.eq_ignore_ascii_case(b"match") {
                out[i + 1] = self.pattern(&argv[i + 1]);
                matched = true;
            } else if !(opt.eq_ignore_ascii_case(b"count") || opt.eq_ignore_ascii_case(b"type")) {
                break;
            }
            i += 2;
        }
        if !matched {
            let mut p = BytesMut::with_capacity(self.glob.len() + 1);
            p.put_slice(&self.glob);
            p.put_u8(b'*');
            out.splice(2..2, [Bytes::from_static(b"MATCH"), p.freeze()]);
        }
        out
    }

    /// SORT BY/GET patterns name other keys (`weight_*`, `h_*->f`): they get the prefix in
    /// front. SORT substitutes the first `*` of a pattern, so a prefix holding `*` cannot be
    /// put in front of one: such tenants may not use BY/GET patterns. A pattern without `*`
    /// names no key (BY nosort skips sorting, such a GET answers nil) and stays as it is.
    fn sort_patterns(&self, argv: &mut [Bytes]) -> Result<(), String> {
        // Walks options as sort.c does (LIMIT takes 2, STORE/BY/GET 1).
        let mut j = 2;
        while j < argv.len() {
            let left = argv.len() - j - 1;
            let opt = argv[j].to_ascii_lowercase();
            match opt.as_slice() {
                b"limit" if left >= 2 => j += 2,
                b"store" if left >= 1 => j += 1,
                b"by" | b"get" if left >= 1 => {
                    let pat = &argv[j + 1];
                    let names_keys = pat.contains(&b'*');
                    if names_keys {
                        if self.prefix.contains(&b'*') {
                            return Err(
                                "ERR respgate: SORT BY/GET patterns are not available to a tenant whose prefix contains '*'"
                                    .into(),
                            );
                        }
                        argv[j + 1] = self.key(pat);
                    }
                    j += 1;
                }
                _ => {}
            }
            j += 1;
        }
        Ok(())
    }
}

/// Commands whose keys come from a numkeys argument and which check it themselves first.
fn numkeys_form(name: &str) -> bool {
    matches!(
        name,
        "zunionstore"
            | "zinterstore"
            | "zdiffstore"
            | "zunion"
            | "zinter"
            | "zdiff"
            | "lmpop"
            | "zmpop"
            | "blmpop"
            | "bzmpop"
            | "sintercard"
            | "zintercard"
            | "eval"
            | "evalsha"
            | "eval_ro"
            | "evalsha_ro"
            | "fcall"
            | "fcall_ro"
            | "xread"
            | "xreadgroup"
    )
}

/// Escapes every glob metacharacter of Redis's stringmatchlen (`* ? [ ] \`) with `\`.
pub fn glob_escape(s: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(s.len() * 2);
    for &c in s {
        if matches!(c, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.put_u8(b'\\');
        }
        out.put_u8(c);
    }
    out.freeze()
}

/// Where the key starts in a `__keyspace@<db>__:<key>` channel (or pattern).
fn keyspace_key_at(ch: &[u8]) -> Option<usize> {
    if !ch.starts_with(KEYSPACE) {
        return None;
    }
    let rest = &ch[KEYSPACE.len()..];
    let i = rest.windows(DB_END.len()).position(|w| w == DB_END)?;
    Some(KEYSPACE.len() + i + DB_END.len())
}

fn concat(a: &[u8], b: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(a.len() + b.len());
    out.put_slice(a);
    out.put_slice(b);
    out.freeze()
}

fn splice(s: &[u8], at: usize, insert: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(s.len() + insert.len());
    out.put_slice(&s[..at]);
    out.put_slice(insert);
    out.put_slice(&s[at..]);
    out.freeze()
}

#[cfg(test)]
mod tests;
