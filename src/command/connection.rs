//! Connection commands answered by respgate itself, whatever the backend: PING, ECHO, AUTH,
//! HELLO, SELECT, QUIT, RESET, TIME, LASTSAVE, CLUSTER/READONLY (as a non-cluster Redis),
//! and the routing of CLIENT, CONFIG, COMMAND and INFO to their modules.

use std::sync::atomic::Ordering;

use std::sync::Arc;

use bytes::Bytes;

use crate::backend::embedded::{num::parse_i64, unix_ms};
use crate::policy::Tenant;
use crate::policy::tenant::constant_time_eq;
use crate::protocol::{Protocol, Reply, errors};
use crate::server::session::Session;

/// The Redis version respgate reports: the one whose command table it serves. Clients gate
/// features on it (e.g. HELLO/RESP3, CLIENT SETINFO).
pub const REDIS_VERSION: &str = "7.0.15";

const CLUSTER_DISABLED: &str = "ERR This instance has cluster support disabled";

/// Answers `name` if it is a command respgate handles itself; None sends it to the backend.
/// TIME's reply: unix seconds and microseconds, as bulk strings.
pub fn time_reply() -> Reply {
    let us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    Reply::Array(vec![
        Reply::bulk_int((us / 1_000_000) as i64),
        Reply::bulk_int((us % 1_000_000) as i64),
    ])
}

/// The commands [`run_local`] answers. None of them is an engine data command, so the
/// embedded path skips this for commands that have an engine handler (a test checks it).
pub const LOCAL_COMMANDS: &[&str] = &[
    "ping",
    "publish",
    "spublish",
    "bgrewriteaof",
    "pubsub",
    "echo",
    "auth",
    "hello",
    "select",
    "quit",
    "reset",
    "time",
    "lastsave",
    "cluster",
    "readonly",
    "readwrite",
    "asking",
    "multi",
    "exec",
    "discard",
    "watch",
    "unwatch",
    "client",
    "config",
    "command",
    "info",
    "slowlog",
    "monitor",
];

pub fn run_local(s: &mut Session, name: &str, argv: &[Bytes]) -> Option<Reply> {
    // An arm below that is not listed here is never reached (and its tests say so).
    if !LOCAL_COMMANDS.contains(&name) {
        return None;
    }
    Some(match name {
        "ping" => super::pubsub::subscribed_ping(s, argv).unwrap_or_else(|| ping(argv)),
        "publish" => super::pubsub::publish(s, argv),
        "spublish" => super::pubsub::spublish(s, argv),
        "bgrewriteaof" => match s.shared.engine.rewrite_aof() {
            Ok(()) => Reply::Status("Background append only file rewriting started".into()),
            Err(_) if !s.shared.engine.aof_enabled() => {
                Reply::Status("Background append only file rewriting started".into())
            }
            Err(e) => Reply::err(format!("ERR {e}")),
        },
        "pubsub" => super::pubsub::pubsub(s, argv),
        "echo" => Reply::Bulk(argv[1].clone()),
        "auth" => auth(s, argv),
        "hello" => hello(s, argv),
        "select" => select(s, argv),
        "quit" => {
            s.closing = true;
            Reply::ok()
        }
        "reset" => {
            s.reset();
            Reply::Simple("RESET")
        }
        "time" => time_reply(),
        "lastsave" => Reply::Integer(s.shared.engine.last_save.load(Ordering::Relaxed) as i64),
        "cluster" | "readonly" | "readwrite" | "asking" => Reply::err(CLUSTER_DISABLED),
        "multi" => super::transaction::multi(s),
        "exec" => super::transaction::exec(s),
        "discard" => super::transaction::discard(s),
        "watch" => super::transaction::watch(s, argv),
        "unwatch" => super::transaction::unwatch(s),
        "client" => super::client::client(s, argv),
        "config" => super::config_cmd::config(s, argv),
        "command" => super::introspection::command_command(&argv[1..]),
        "info" => super::info::info(s, &argv[1..]),
        "slowlog" => slowlog(s, argv),
        "monitor" => monitor(s),
        _ => return None,
    })
}

fn ping(argv: &[Bytes]) -> Reply {
    match argv.len() {
        1 => Reply::Simple("PONG"),
        2 => Reply::Bulk(argv[1].clone()),
        _ => Reply::err(errors::wrong_arity("ping")),
    }
}

/// Who a set of credentials names: the `default` user (single-user mode, or the
/// `requirepass` admin when tenants are configured) or a tenant.
enum Identity {
    Default,
    Tenant(Arc<Tenant>),
}

/// Checks credentials. `user` is None for `AUTH <password>`, which old clients send: it
/// names the tenant whose password it is, else the `requirepass` default user. Without
/// requirepass, `default` accepts any password (Redis's `nopass`) only when no tenants are
/// configured — with tenants it would bypass them.
fn identify(s: &Session, user: Option<&[u8]>, pass: &[u8]) -> Option<Identity> {
    let tenants = s.shared.tenants();
    let tenant = match user {
        Some(u) => tenants.authenticate(u, pass),
        None => tenants.authenticate_password(pass),
    };
    if let Some(t) = tenant {
        return Some(Identity::Tenant(t));
    }
    if user.is_some_and(|u| u != b"default") {
        return None;
    }
    match &s.shared.config.server.requirepass {
        None => tenants.is_empty().then_some(Identity::Default),
        Some(p) => constant_time_eq(p.as_bytes(), pass).then_some(Identity::Default),
    }
}

const SWITCH_WHILE_SUBSCRIBED: &str =
    "ERR respgate: cannot switch to another tenant while subscribed; UNSUBSCRIBE first";

/// Checks credentials for AUTH or HELLO AUTH and switches the session to who they name;
/// a failure is counted, rate-limited per client address and logged without the password.
fn authenticate(s: &mut Session, user: Option<&[u8]>, pass: &[u8]) -> Result<(), Reply> {
    let addr = s.client.info.lock().addr;
    if s.shared.auth_limiter.blocked(addr.ip()) {
        crate::metrics::handles().auth_failures.increment(1);
        return Err(Reply::err(crate::server::AUTH_RATE_LIMITED));
    }
    match identify(s, user, pass) {
        Some(identity) => {
            let tenant = match identity {
                Identity::Default => None,
                Identity::Tenant(t) => Some(t),
            };
            let same = match (&s.tenant, &tenant) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (None, None) => true,
                _ => false,
            };
            if !same && s.in_subscriber_mode() {
                // Its subscriptions are names in the old namespace: they would go quiet.
                return Err(Reply::err(SWITCH_WHILE_SUBSCRIBED));
            }
            s.authenticated = true;
            s.tenant = tenant;
            crate::server::show_user(&s.client, s.tenant.as_deref());
            Ok(())
        }
        None => {
            s.shared.auth_limiter.failed(addr.ip());
            crate::metrics::handles().auth_failures.increment(1);
            tracing::info!(
                client = %addr,
                username = %String::from_utf8_lossy(user.unwrap_or(b"default")),
                "AUTH failed"
            );
            Err(Reply::err(errors::WRONGPASS))
        }
    }
}

fn auth(s: &mut Session, argv: &[Bytes]) -> Reply {
    let (user, pass): (Option<&[u8]>, &[u8]) = match argv.len() {
        2 => {
            if s.shared.config.server.requirepass.is_none() && s.shared.tenants().is_empty() {
                return Reply::err(
                    "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
                );
            }
            (None, &argv[1])
        }
        3 => (Some(&argv[1]), &argv[2]),
        _ => return Reply::err(errors::SYNTAX),
    };
    match authenticate(s, user, pass) {
        Ok(()) => Reply::ok(),
        Err(e) => e,
    }
}

fn hello(s: &mut Session, argv: &[Bytes]) -> Reply {
    let mut proto = s.proto;
    let mut i = 1;
    if argv.len() > 1 {
        proto = match parse_i64(&argv[1]) {
            None => {
                return Reply::err("ERR Protocol version is not an integer or out of range");
            }
            Some(2) => Protocol::Resp2,
            Some(3) => Protocol::Resp3,
            Some(_) => return Reply::err("NOPROTO unsupported protocol version"),
        };
        i = 2;
    }
    let mut auth: Option<(&Bytes, &Bytes)> = None;
    let mut setname: Option<&Bytes> = None;
    while i < argv.len() {
        let more = argv.len() - i - 1;
        let opt = &argv[i];
        if opt.eq_ignore_ascii_case(b"auth") && more >= 2 {
            auth = Some((&argv[i + 1], &argv[i + 2]));
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"setname") && more >= 1 {
            setname = Some(&argv[i + 1]);
            i += 2;
        } else {
            return Reply::err(errors::sanitize(format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(opt)
            )));
        }
    }
    if let Some((user, pass)) = auth
        && let Err(e) = authenticate(s, Some(user), pass)
    {
        return e;
    }
    if !s.authenticated {
        return Reply::err(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    if let Some(name) = setname {
        if let Err(e) = super::client::validate_name(name) {
            return e;
        }
        s.client.info.lock().name = String::from_utf8_lossy(name).into_owned();
    }
    s.proto = proto;
    let id = {
        let mut info = s.client.info.lock();
        info.resp = if proto == Protocol::Resp3 { 3 } else { 2 };
        info.id
    };
    Reply::Map(vec![
        (Reply::bulk_str("server"), Reply::bulk_str("redis")),
        (Reply::bulk_str("version"), Reply::bulk_str(REDIS_VERSION)),
        (
            Reply::bulk_str("proto"),
            Reply::Integer(if proto == Protocol::Resp3 { 3 } else { 2 }),
        ),
        (Reply::bulk_str("id"), Reply::Integer(id as i64)),
        (Reply::bulk_str("mode"), Reply::bulk_str("standalone")),
        (Reply::bulk_str("role"), Reply::bulk_str("master")),
        (Reply::bulk_str("modules"), Reply::Array(vec![])),
    ])
}

fn select(s: &mut Session, argv: &[Bytes]) -> Reply {
    let Some(n) = parse_i64(&argv[1]) else {
        return Reply::err(errors::NOT_INTEGER);
    };
    if n < 0 || n as usize >= s.shared.engine.databases() {
        return Reply::err(errors::DB_INDEX);
    }
    s.db = n as usize;
    Reply::ok()
}

/// Seconds since the unix epoch, for INFO and CLIENT fields.
pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}

/// SLOWLOG GET [count] | LEN | RESET | HELP, over respgate's own slow log.
fn slowlog(s: &Session, argv: &[Bytes]) -> Reply {
    let log = &s.shared.slowlog;
    let sub = argv
        .get(1)
        .map(|a| a.to_ascii_lowercase())
        .unwrap_or_default();
    match sub.as_slice() {
        b"get" => {
            let count = match argv.get(2) {
                None => 10,
                Some(a) => match std::str::from_utf8(a)
                    .ok()
                    .and_then(|t| t.parse::<i64>().ok())
                {
                    Some(n) if n >= -1 => n,
                    _ => {
                        return Reply::err("ERR count should be greater than or equal to -1");
                    }
                },
            };
            log.get(count)
        }
        b"len" => Reply::Integer(log.len() as i64),
        b"reset" => {
            log.reset();
            Reply::ok()
        }
        _ => Reply::Array(
            [
                "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|l| Reply::Status((*l).to_string()))
            .collect(),
        ),
    }
}

/// MONITOR: from now on this client is sent every command respgate runs (its pub/sub
/// delivery path, so the pub/sub output limit bounds a monitor that does not read).
fn monitor(s: &mut Session) -> Reply {
    let outbox = s.ensure_outbox();
    s.shared.pubsub.add_monitor(&outbox);
    Reply::ok()
}

#[cfg(test)]
mod tests {
    /// The embedded path runs a command with an engine handler without asking `run_local`:
    /// that is only right while no connection command has an engine handler.
    #[test]
    fn no_connection_command_is_an_engine_command() {
        for name in super::LOCAL_COMMANDS {
            let spec = crate::command::table::lookup(name.as_bytes());
            assert!(spec.is_some(), "{name} is not in the command table");
            assert!(
                spec.and_then(crate::backend::embedded::handler_for)
                    .is_none(),
                "{name} has an engine handler"
            );
        }
    }
}
