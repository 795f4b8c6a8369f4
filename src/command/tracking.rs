//! CLIENT TRACKING, CACHING, GETREDIR and TRACKINGINFO as a client sees them: the options
//! are parsed and checked here with Redis's words, and kept per client; whoever holds the
//! keys (the embedded engine, or a backend over a pinned connection) sends invalidations.

use bytes::Bytes;

use crate::backend::embedded::num::parse_i64;
use crate::policy::namespace::Namespace;
use crate::protocol::{Protocol, Reply, errors};
use crate::server::Shared;
use crate::server::pubsub::{Outbox, PubSub};
use crate::server::session::Session;

/// Where a tracking client's invalidations go.
#[derive(Clone)]
pub struct Target {
    /// The REDIRECT client (0: the client itself).
    pub redirect: u64,
    /// The client's own queue (RESP3 without REDIRECT).
    pub outbox: Option<Outbox>,
}

/// Hands an invalidation from the engine to its client (or the client's REDIRECT target).
pub fn deliver(shared: &Shared, client: u64, keys: Option<Vec<Bytes>>) {
    if let Some(target) = shared.tracking_targets.lock().get(&client) {
        target.send(&shared.pubsub, keys);
    }
}

impl Target {
    /// The target of client `s` in tracking mode `t`; None when nothing can reach it (RESP2
    /// without REDIRECT: Redis sends such a client nothing either).
    pub fn of(s: &mut Session, t: &Tracking) -> Option<Target> {
        if t.redirect != 0 {
            return Some(Target {
                redirect: t.redirect,
                outbox: None,
            });
        }
        (s.proto == Protocol::Resp3).then(|| Target {
            redirect: 0,
            outbox: Some(s.ensure_outbox()),
        })
    }

    /// Sends one invalidation (`keys` None: flush everything).
    pub fn send(&self, pubsub: &PubSub, keys: Option<Vec<Bytes>>) {
        if self.redirect != 0 {
            pubsub.deliver_invalidation(Some(self.redirect), keys);
        } else if let Some(outbox) = &self.outbox {
            pubsub.deliver_to(outbox, invalidate_push(keys));
        }
    }
}

/// BCAST prefixes as the keyspace knows them: a tenant's inside its namespace (none given:
/// the whole namespace); empty: every key.
pub fn stored_prefixes(t: &Tracking, ns: Option<&Namespace>) -> Vec<Bytes> {
    match ns.filter(|ns| !ns.is_empty()) {
        Some(ns) if t.prefixes.is_empty() => vec![ns.key(b"")],
        Some(ns) => t.prefixes.iter().map(|p| ns.key(p)).collect(),
        None => t.prefixes.clone(),
    }
}

/// CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO against the embedded engine.
pub fn client_embedded(s: &mut Session, argv: &[Bytes]) -> Reply {
    let sub = argv[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"getredir" => getredir(s.tracking.as_ref()),
        b"trackinginfo" => trackinginfo(s.tracking.as_ref()),
        b"caching" => match caching(argv, s.tracking.as_mut()) {
            Ok(()) => Reply::ok(),
            Err(e) => e,
        },
        _ => {
            let clients = s.shared.clients.clone();
            match parse(argv, s.tracking.as_ref(), |id| clients.exists(id)) {
                Err(e) => e,
                Ok(Change::Off) => {
                    untrack_embedded(s);
                    Reply::ok()
                }
                Ok(Change::On(t)) => {
                    let id = s.client_id();
                    let ns = s.tenant.as_ref().map(|t| &t.namespace);
                    let bcast = t.bcast.then(|| stored_prefixes(&t, ns));
                    match Target::of(s, &t) {
                        Some(target) => s.shared.tracking_targets.lock().insert(id, target),
                        None => s.shared.tracking_targets.lock().remove(&id),
                    };
                    s.shared.engine.track(id, bcast, t.noloop);
                    s.tracking = Some(t);
                    Reply::ok()
                }
            }
        }
    }
}

/// Tracking off in the embedded engine (CLIENT TRACKING off, RESET, disconnect).
pub fn untrack_embedded(s: &mut Session) {
    if s.tracking.take().is_some() {
        let id = s.client_id();
        s.shared.engine.untrack(id);
        s.shared.tracking_targets.lock().remove(&id);
    }
}

/// A client's tracking mode (present while tracking is on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracking {
    pub bcast: bool,
    pub optin: bool,
    pub optout: bool,
    pub noloop: bool,
    /// The client that gets the invalidations (0: this one, over RESP3).
    pub redirect: u64,
    /// BCAST prefixes (none: every key).
    pub prefixes: Vec<Bytes>,
    /// CLIENT CACHING was given for the next command.
    pub caching: bool,
}

impl Tracking {
    /// Whether the keys a read-only command reads are remembered (Redis's
    /// trackingRememberKeys): always, except OPTIN without CACHING YES and OPTOUT after
    /// CACHING NO. BCAST clients are told about prefixes, not the keys they read.
    pub fn remembers_reads(&self) -> bool {
        let opted_out = (self.optin && !self.caching) || (self.optout && self.caching);
        !self.bcast && !opted_out
    }
}

/// What CLIENT TRACKING asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    On(Tracking),
    Off,
}

fn overlap(a: &[u8], b: &[u8]) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// CLIENT TRACKING ON|OFF [REDIRECT id] [PREFIX p ...] [BCAST] [OPTIN] [OPTOUT] [NOLOOP],
/// checked in Redis's order with its error texts. `current` is the client's mode now;
/// `client_exists` answers whether a REDIRECT target is connected.
pub fn parse(
    argv: &[Bytes],
    current: Option<&Tracking>,
    client_exists: impl Fn(u64) -> bool,
) -> Result<Change, Reply> {
    let Some(toggle) = argv.get(2) else {
        return Err(Reply::err(errors::SYNTAX));
    };
    let mut new = Tracking::default();
    let mut prefixes: Vec<Bytes> = Vec::new();
    let mut j = 3;
    while j < argv.len() {
        let arg = &argv[j];
        let more = j + 1 < argv.len();
        if arg.eq_ignore_ascii_case(b"redirect") && more {
            j += 1;
            if new.redirect != 0 {
                return Err(Reply::err(
                    "ERR A client can only redirect to a single other client",
                ));
            }
            let id = parse_i64(&argv[j]).ok_or_else(|| Reply::err(errors::NOT_INTEGER))?;
            let id = u64::try_from(id).unwrap_or(0);
            if id == 0 || !client_exists(id) {
                return Err(Reply::err(
                    "ERR The client ID you want redirect to does not exist",
                ));
            }
            new.redirect = id;
        } else if arg.eq_ignore_ascii_case(b"bcast") {
            new.bcast = true;
        } else if arg.eq_ignore_ascii_case(b"optin") {
            new.optin = true;
        } else if arg.eq_ignore_ascii_case(b"optout") {
            new.optout = true;
        } else if arg.eq_ignore_ascii_case(b"noloop") {
            new.noloop = true;
        } else if arg.eq_ignore_ascii_case(b"prefix") && more {
            j += 1;
            prefixes.push(argv[j].clone());
        } else {
            return Err(Reply::err(errors::SYNTAX));
        }
        j += 1;
    }
    if toggle.eq_ignore_ascii_case(b"off") {
        return Ok(Change::Off);
    }
    if !toggle.eq_ignore_ascii_case(b"on") {
        return Err(Reply::err(errors::SYNTAX));
    }
    if !new.bcast && !prefixes.is_empty() {
        return Err(Reply::err(
            "ERR PREFIX option requires BCAST mode to be enabled",
        ));
    }
    if let Some(cur) = current
        && cur.bcast != new.bcast
    {
        return Err(Reply::err(
            "ERR You can't switch BCAST mode on/off before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    if new.bcast && (new.optin || new.optout) {
        return Err(Reply::err(
            "ERR OPTIN and OPTOUT are not compatible with BCAST",
        ));
    }
    if new.optin && new.optout {
        return Err(Reply::err(
            "ERR You can't specify both OPTIN mode and OPTOUT mode",
        ));
    }
    if let Some(cur) = current
        && ((new.optin && cur.optout) || (new.optout && cur.optin))
    {
        return Err(Reply::err(
            "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this client, and then re-enabling it with a different mode.",
        ));
    }
    let existing: &[Bytes] = current.map_or(&[], |c| &c.prefixes);
    if new.bcast {
        for (i, p) in prefixes.iter().enumerate() {
            if let Some(old) = existing.iter().find(|old| overlap(old, p)) {
                // Adding a prefix the client already has is fine (Redis skips it).
                if old != p {
                    return Err(Reply::err(format!(
                        "ERR Prefix '{}' overlaps with an existing prefix '{}'. Prefixes for a single client must not overlap.",
                        String::from_utf8_lossy(p),
                        String::from_utf8_lossy(old)
                    )));
                }
            }
            if let Some(other) = prefixes
                .iter()
                .enumerate()
                .find(|(k, q)| *k != i && overlap(p, q))
                .map(|(_, q)| q)
            {
                return Err(Reply::err(format!(
                    "ERR Prefix '{}' overlaps with another provided prefix '{}'. Prefixes for a single client must not overlap.",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(other)
                )));
            }
        }
    }
    // Prefixes accumulate over repeated CLIENT TRACKING ON (in BCAST mode).
    new.prefixes = existing.to_vec();
    for p in prefixes {
        if !new.prefixes.contains(&p) {
            new.prefixes.push(p);
        }
    }
    Ok(Change::On(new))
}

/// CLIENT CACHING YES|NO: marks the next command (errors as Redis words them).
pub fn caching(argv: &[Bytes], current: Option<&mut Tracking>) -> Result<(), Reply> {
    let Some(t) = current else {
        return Err(Reply::err(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled",
        ));
    };
    let Some(arg) = argv.get(2) else {
        return Err(Reply::err(errors::SYNTAX));
    };
    if arg.eq_ignore_ascii_case(b"yes") {
        if !t.optin {
            return Err(Reply::err(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.",
            ));
        }
    } else if arg.eq_ignore_ascii_case(b"no") {
        if !t.optout {
            return Err(Reply::err(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.",
            ));
        }
    } else {
        return Err(Reply::err(errors::SYNTAX));
    }
    t.caching = true;
    Ok(())
}

/// CLIENT GETREDIR: -1 when not tracking, 0 when not redirecting.
pub fn getredir(current: Option<&Tracking>) -> Reply {
    Reply::Integer(current.map_or(-1, |t| t.redirect as i64))
}

/// CLIENT TRACKINGINFO: flags, redirect and prefixes, as Redis lists them.
pub fn trackinginfo(current: Option<&Tracking>) -> Reply {
    let mut flags = Vec::new();
    let (redirect, prefixes) = match current {
        None => {
            flags.push("off");
            (-1, Vec::new())
        }
        Some(t) => {
            flags.push("on");
            if t.bcast {
                flags.push("bcast");
            }
            if t.optin {
                flags.push("optin");
                if t.caching {
                    flags.push("caching-yes");
                }
            }
            if t.optout {
                flags.push("optout");
                if t.caching {
                    flags.push("caching-no");
                }
            }
            if t.noloop {
                flags.push("noloop");
            }
            (t.redirect as i64, t.prefixes.clone())
        }
    };
    Reply::Map(vec![
        (
            Reply::bulk_str("flags"),
            Reply::Set(flags.into_iter().map(Reply::bulk_str).collect()),
        ),
        (Reply::bulk_str("redirect"), Reply::Integer(redirect)),
        (
            Reply::bulk_str("prefixes"),
            Reply::Array(prefixes.into_iter().map(Reply::Bulk).collect()),
        ),
    ])
}

/// The push a RESP3 client gets when keys it may have cached changed (`None`: everything,
/// after a flush or a lost backend connection).
pub fn invalidate_push(keys: Option<Vec<Bytes>>) -> Reply {
    Reply::Push(vec![
        Reply::bulk_str("invalidate"),
        match keys {
            Some(keys) => Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
            None => Reply::Null,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<Bytes> {
        line.split(' ')
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect()
    }

    fn err(r: Result<Change, Reply>) -> String {
        match r {
            Err(Reply::Error(e)) => e,
            other => panic!("not an error: {other:?}"),
        }
    }

    #[test]
    fn options_are_checked_in_redis_order() {
        let none = |_| false;
        assert!(
            err(parse(&args("CLIENT TRACKING on redirect 9"), None, none))
                .contains("does not exist")
        );
        assert!(
            err(parse(&args("CLIENT TRACKING on prefix a"), None, none)).contains("requires BCAST")
        );
        assert!(
            err(parse(&args("CLIENT TRACKING on optin optout"), None, none)).contains("both OPTIN")
        );
        assert!(
            err(parse(&args("CLIENT TRACKING on bcast optin"), None, none))
                .contains("not compatible")
        );
        assert!(err(parse(&args("CLIENT TRACKING maybe"), None, none)).contains("syntax"));
        assert!(
            err(parse(
                &args("CLIENT TRACKING on bcast prefix a prefix ab"),
                None,
                none
            ))
            .contains("another provided prefix 'ab'")
        );
        let Ok(Change::On(t)) = parse(&args("CLIENT TRACKING on bcast prefix x"), None, none)
        else {
            panic!()
        };
        assert!(
            err(parse(
                &args("CLIENT TRACKING on bcast prefix xy"),
                Some(&t),
                none
            ))
            .contains("existing prefix 'x'")
        );
        assert!(err(parse(&args("CLIENT TRACKING on"), Some(&t), none)).contains("switch BCAST"));
        let Ok(Change::On(t2)) = parse(&args("CLIENT TRACKING on bcast prefix y"), Some(&t), none)
        else {
            panic!()
        };
        assert_eq!(t2.prefixes, vec![Bytes::from("x"), Bytes::from("y")]);
        assert_eq!(
            parse(&args("CLIENT TRACKING off"), Some(&t), none),
            Ok(Change::Off)
        );
    }

    #[test]
    fn caching_flags_decide_what_is_remembered() {
        let mut t = Tracking {
            optin: true,
            ..Tracking::default()
        };
        assert!(!t.remembers_reads());
        assert!(caching(&args("CLIENT CACHING yes"), Some(&mut t)).is_ok());
        assert!(t.remembers_reads());
        assert!(caching(&args("CLIENT CACHING no"), Some(&mut t)).is_err());
        assert!(caching(&args("CLIENT CACHING yes"), None).is_err());
    }
}
