//! CLIENT subcommands: ID, GETNAME, SETNAME, INFO, LIST, SETINFO, KILL, NO-EVICT, NO-TOUCH,
//! REPLY, HELP.

use bytes::Bytes;

use crate::backend::embedded::num::parse_i64;
use crate::protocol::{Reply, errors};
use crate::server::session::Session;

/// Client names and lib names may not contain spaces, newlines or non-printable bytes.
pub fn validate_name(name: &[u8]) -> Result<(), Reply> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Reply::err(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

pub fn client(s: &mut Session, argv: &[Bytes]) -> Reply {
    let sub = argv[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"id" => Reply::Integer(s.client.info.lock().id as i64),
        b"getname" => {
            let name = s.client.info.lock().name.clone();
            if name.is_empty() {
                Reply::Null
            } else {
                Reply::bulk(name.into_bytes())
            }
        }
        b"setname" => {
            if let Err(e) = validate_name(&argv[2]) {
                return e;
            }
            s.client.info.lock().name = String::from_utf8_lossy(&argv[2]).into_owned();
            Reply::ok()
        }
        b"setinfo" => setinfo(s, argv),
        b"info" => {
            let line = s.client.info.lock().render();
            Reply::Verbatim("txt", Bytes::from(line + "\n"))
        }
        b"list" => list(s, argv),
        b"kill" => kill(s, argv),
        b"unblock" => unblock(s, argv),
        b"tracking" | b"caching" | b"getredir" | b"trackinginfo" => {
            super::tracking::client_embedded(s, argv)
        }
        b"no-evict" | b"no-touch" => on_off(&argv[2]),
        b"reply" => {
            // As Redis: OFF and SKIP are not answered; ON is, even after OFF.
            match argv[2].to_ascii_lowercase().as_slice() {
                b"on" => {
                    s.reply_off = false;
                    s.skip_next = false;
                    s.reply_mode_changed = Some(true);
                    Reply::ok()
                }
                b"off" => {
                    s.reply_off = true;
                    s.reply_mode_changed = Some(false);
                    Reply::ok()
                }
                b"skip" => {
                    s.skip_next = true;
                    s.reply_mode_changed = Some(false);
                    Reply::ok()
                }
                _ => Reply::err(errors::SYNTAX),
            }
        }
        b"help" => Reply::Array(
            [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "KILL <ip:port>",
                "    Kill connection made from <ip:port>.",
                "KILL <option> <value> [<option> <value> [...]]",
                "    Kill connections. Options are: ID, ADDR, LADDR, USER, SKIPME.",
                "LIST [options ...]",
                "    Return information about client connections. Options: TYPE, ID.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "SETINFO <LIB-NAME|LIB-VER> <value>",
                "    Set client library name or version.",
                "NO-EVICT (ON|OFF)",
                "    Protect the current client connection from eviction.",
                "NO-TOUCH (ON|OFF)",
                "    Do not touch the LRU/LFU of keys accessed by this client.",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|l| Reply::Status(l.to_string()))
            .collect(),
        ),
        _ => Reply::err(errors::unknown_subcommand(&argv[1], "client")),
    }
}

/// A tenant sees and acts on its own connections only (CLIENT LIST, KILL, UNBLOCK): other
/// tenants' names, addresses and blocked commands are theirs. Without a tenant, all.
fn visible(s: &Session, user: &str) -> bool {
    s.tenant.as_ref().is_none_or(|t| t.name == user)
}

fn on_off(arg: &[u8]) -> Reply {
    if arg.eq_ignore_ascii_case(b"on") || arg.eq_ignore_ascii_case(b"off") {
        Reply::ok()
    } else {
        Reply::err(errors::SYNTAX)
    }
}

fn setinfo(s: &mut Session, argv: &[Bytes]) -> Reply {
    if argv.len() != 4 {
        return Reply::err(errors::wrong_arity("client|setinfo"));
    }
    let attr = argv[2].to_ascii_lowercase();
    let value = &argv[3];
    if value.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Reply::err(format!(
            "ERR {} cannot contain spaces, newlines or special characters.",
            String::from_utf8_lossy(&argv[2])
        ));
    }
    let v = String::from_utf8_lossy(value).into_owned();
    let mut info = s.client.info.lock();
    match attr.as_slice() {
        b"lib-name" => info.lib_name = v,
        b"lib-ver" => info.lib_ver = v,
        _ => {
            return Reply::err(errors::sanitize(format!(
                "ERR Unrecognized option '{}'",
                String::from_utf8_lossy(&argv[2])
            )));
        }
    }
    Reply::ok()
}

fn list(s: &mut Session, argv: &[Bytes]) -> Reply {
    let mut ids: Option<Vec<u64>> = None;
    let mut i = 2;
    while i < argv.len() {
        let opt = argv[i].to_ascii_lowercase();
        if opt == b"type" && i + 1 < argv.len() {
            let t = argv[i + 1].to_ascii_lowercase();
            match t.as_slice() {
                b"normal" => {}
                // We have no replica, master or pubsub clients in this list yet.
                b"master" | b"replica" | b"slave" | b"pubsub" => ids = Some(vec![]),
                _ => {
                    return Reply::err(errors::sanitize(format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(&argv[i + 1])
                    )));
                }
            }
            i += 2;
        } else if opt == b"id" && i + 1 < argv.len() {
            let mut v = vec![];
            for a in &argv[i + 1..] {
                match parse_i64(a) {
                    Some(n) if n > 0 => v.push(n as u64),
                    _ => return Reply::err("ERR Invalid client ID"),
                }
            }
            ids = Some(v);
            i = argv.len();
        } else {
            return Reply::err(errors::SYNTAX);
        }
    }
    let mut text = String::new();
    for c in s.shared.clients.snapshot() {
        let info = c.info.lock();
        if ids.as_ref().is_some_and(|ids| !ids.contains(&info.id)) {
            continue;
        }
        if !visible(s, &info.user) {
            continue;
        }
        text.push_str(&info.render());
        text.push('\n');
    }
    Reply::Verbatim("txt", Bytes::from(text))
}

fn kill(s: &mut Session, argv: &[Bytes]) -> Reply {
    let me = s.client.info.lock().id;
    // Old form: CLIENT KILL ip:port — one client, +OK or an error.
    if argv.len() == 3 {
        let addr = String::from_utf8_lossy(&argv[2]);
        for c in s.shared.clients.snapshot() {
            let hit = {
                let info = c.info.lock();
                info.addr.to_string() == addr && visible(s, &info.user)
            };
            if hit {
                c.kill();
                if c.info.lock().id == me {
                    s.closing = true;
                }
                return Reply::ok();
            }
        }
        return Reply::err("ERR No such client");
    }
    if !argv.len().is_multiple_of(2) {
        return Reply::err(errors::SYNTAX);
    }
    let mut id = None;
    let mut addr = None;
    let mut laddr = None;
    let mut user = None;
    let mut skipme = true;
    for pair in argv[2..].chunks(2) {
        let (k, v) = (pair[0].to_ascii_lowercase(), &pair[1]);
        match k.as_slice() {
            b"id" => match parse_i64(v) {
                Some(n) if n > 0 => id = Some(n as u64),
                _ => return Reply::err("ERR client-id should be greater than 0"),
            },
            b"addr" => addr = Some(String::from_utf8_lossy(v).into_owned()),
            b"laddr" => laddr = Some(String::from_utf8_lossy(v).into_owned()),
            b"user" => user = Some(String::from_utf8_lossy(v).into_owned()),
            b"type" => {}
            b"skipme" => {
                skipme = match v.to_ascii_lowercase().as_slice() {
                    b"yes" => true,
                    b"no" => false,
                    _ => return Reply::err(errors::SYNTAX),
                }
            }
            _ => return Reply::err(errors::SYNTAX),
        }
    }
    let mut killed = 0;
    for c in s.shared.clients.snapshot() {
        let info = c.info.lock().clone();
        if id.is_some_and(|i| i != info.id)
            || addr.as_ref().is_some_and(|a| *a != info.addr.to_string())
            || laddr.as_ref().is_some_and(|a| *a != info.laddr.to_string())
            || user.as_ref().is_some_and(|u| *u != info.user)
            || (skipme && info.id == me)
            || !visible(s, &info.user)
        {
            continue;
        }
        c.kill();
        if info.id == me {
            s.closing = true;
        }
        killed += 1;
    }
    Reply::Integer(killed)
}

/// CLIENT UNBLOCK id [TIMEOUT|ERROR]: ends another client's blocking command.
fn unblock(s: &mut Session, argv: &[Bytes]) -> Reply {
    let Some(id) = crate::backend::embedded::num::parse_i64(&argv[2]) else {
        return Reply::err(errors::NOT_INTEGER);
    };
    let with_error = match argv.get(3).map(|a| a.to_ascii_lowercase()) {
        None => false,
        Some(r) if r == b"timeout" => false,
        Some(r) if r == b"error" => true,
        Some(_) => return Reply::err("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    let Ok(id) = u64::try_from(id) else {
        return Reply::Integer(0);
    };
    let mine = s.tenant.is_none()
        || s.shared.clients.snapshot().iter().any(|c| {
            let info = c.info.lock();
            info.id == id && visible(s, &info.user)
        });
    let unblocked = mine && s.shared.engine.unblock(id, with_error);
    Reply::Integer(unblocked as i64)
}
