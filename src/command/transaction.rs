//! MULTI, EXEC, DISCARD, WATCH and UNWATCH: a client's queued transaction and how EXEC runs
//! it atomically (one engine lock for the whole queue).

use bytes::Bytes;

use crate::backend::embedded::ClientView;
use crate::command::CommandSpec;
use crate::protocol::{Reply, errors};
use crate::server::session::Session;

pub const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
const NESTED: &str = "ERR MULTI calls can not be nested";
const EXEC_WITHOUT: &str = "ERR EXEC without MULTI";
const DISCARD_WITHOUT: &str = "ERR DISCARD without MULTI";
const WATCH_IN_MULTI: &str = "ERR WATCH inside MULTI is not allowed";
pub const NOT_IN_MULTI: &str = "ERR Command not allowed inside a transaction";

/// A transaction being queued (between MULTI and EXEC/DISCARD).
#[derive(Default)]
pub struct Multi {
    queue: Vec<(&'static CommandSpec, Vec<Bytes>)>,
    /// The queue was moved into a tenant's namespace (forwarding; done once per EXEC even
    /// when EXEC has to wait and run again).
    pub rewritten: bool,
    /// A command was rejected while queuing: EXEC must answer EXECABORT.
    aborted: bool,
}

impl Multi {
    pub fn queue(&mut self, spec: &'static CommandSpec, argv: &[Bytes]) {
        self.queue.push((spec, argv.to_vec()));
    }

    pub fn abort(&mut self) {
        self.aborted = true;
    }

    /// A command was rejected while queuing: EXEC answers EXECABORT.
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// The queued commands.
    pub fn queued(&self) -> impl Iterator<Item = (&'static CommandSpec, &[Bytes])> + '_ {
        self.queue
            .iter()
            .map(|(spec, argv)| (*spec, argv.as_slice()))
    }

    /// Rewrites every queued command (a tenant's namespace), or fails with the first error.
    pub fn rewrite(
        &mut self,
        mut f: impl FnMut(&'static CommandSpec, &[Bytes]) -> Result<Vec<Bytes>, String>,
    ) -> Result<(), String> {
        if self.rewritten {
            return Ok(());
        }
        for (spec, argv) in &mut self.queue {
            *argv = f(spec, argv)?;
        }
        self.rewritten = true;
        Ok(())
    }

    /// Names of the queued commands.
    pub fn queued_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.queue.iter().map(|(spec, _)| spec.name)
    }

    /// The queued commands, and whether queuing failed (EXEC must answer EXECABORT).
    pub fn into_parts(self) -> (Vec<(&'static CommandSpec, Vec<Bytes>)>, bool) {
        (self.queue, self.aborted)
    }
}

/// Commands that run at once even inside MULTI (Redis's list in processCommand).
pub fn runs_immediately(name: &str) -> bool {
    matches!(
        name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// Redis words a rejected EXEC (bad arity, subscriber mode ...) as an EXECABORT carrying the
/// reason, and the transaction is gone.
pub fn rejected_exec(s: &mut Session, why: &Reply) -> Reply {
    discard_state(s);
    let text = match why {
        Reply::Error(t) => t.strip_prefix("ERR ").unwrap_or(t).to_string(),
        _ => String::new(),
    };
    Reply::err(format!(
        "EXECABORT Transaction discarded because of: {text}"
    ))
}

pub fn multi(s: &mut Session) -> Reply {
    if s.multi.is_some() {
        return Reply::err(NESTED);
    }
    s.multi = Some(Multi::default());
    Reply::ok()
}

pub fn discard(s: &mut Session) -> Reply {
    if s.multi.is_none() {
        return Reply::err(DISCARD_WITHOUT);
    }
    discard_state(s);
    Reply::ok()
}

/// Drops the queue and the watched keys (DISCARD, EXEC, RESET, disconnect).
pub fn discard_state(s: &mut Session) {
    s.multi = None;
    if s.watching {
        s.shared.engine.unwatch(s.client_id());
        s.watching = false;
    }
}

pub fn watch(s: &mut Session, argv: &[Bytes]) -> Reply {
    if s.multi.is_some() {
        return Reply::err(WATCH_IN_MULTI);
    }
    s.shared.engine.watch(s.client_id(), s.db, &argv[1..]);
    s.watching = true;
    Reply::ok()
}

pub fn unwatch(s: &mut Session) -> Reply {
    if s.watching {
        s.shared.engine.unwatch(s.client_id());
        s.watching = false;
    }
    Reply::ok()
}

/// EXEC: EXECABORT if queuing failed, a null reply if a watched key changed, else every
/// queued command's reply, all run under one engine lock so no other client interleaves.
pub fn exec(s: &mut Session) -> Reply {
    let Some(multi) = s.multi.take() else {
        return Reply::err(EXEC_WITHOUT);
    };
    if multi.aborted {
        discard_state(s);
        return Reply::err(EXECABORT);
    }
    let shared = s.shared.clone();
    let id = s.client_id();
    let mut batch = Some(shared.engine.batch());
    if let Some(b) = batch.as_mut() {
        let allowed = b.exec_allowed(id);
        // Unwatch before running, as Redis does: our own writes must not matter.
        b.unwatch(id);
        s.watching = false;
        if !allowed {
            return Reply::NullArray;
        }
    }
    let mut replies = Vec::with_capacity(multi.queue.len());
    for (spec, argv) in &multi.queue {
        let effective = crate::command::keys::resolve(spec, argv).unwrap_or(spec);
        let started = std::time::Instant::now();
        let reply = if let Some(r) = s.run_local_in_exec(spec, argv, &mut batch) {
            r
        } else if shared.engine.supports(spec.name) {
            let view = ClientView {
                db: s.db,
                proto: s.proto,
                tracker: s.tracker(),
            };
            let b = batch.get_or_insert_with(|| shared.engine.batch());
            match &s.tenant {
                Some(tenant) => b.execute_as(view, tenant, spec, argv),
                None => b.execute(view, spec, argv),
            }
        } else {
            Reply::err(errors::not_implemented(spec.name))
        };
        let verdict = match &reply {
            Reply::Error(text) => Err(crate::metrics::commands::classify_error(text.as_bytes())),
            _ => Ok(()),
        };
        shared.cmdstats.record(
            effective.name,
            s.tenant.as_deref(),
            started.elapsed(),
            verdict,
        );
        replies.push(reply);
    }
    drop(batch);
    Reply::Array(replies)
}
