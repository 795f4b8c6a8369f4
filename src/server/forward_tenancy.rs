//! Tenants in forwarding modes: a tenant's command is rewritten into its namespace before it
//! goes to the backend (keys, channels, patterns — the same pure plan as the embedded
//! engine uses), and replies that name keys or channels lose the prefix on the way back.
//!
//! Whole-keyspace commands act on the tenant's keys only (SCAN with the namespace's
//! pattern): DBSIZE counts them, FLUSHDB/FLUSHALL unlink them, RANDOMKEY picks one, walked
//! in short steps so a
//! shared server is never held for long (see [`crate::backend::remote::walk`]); in cluster
//! mode on every master. Inside MULTI they are one script each (a transaction is atomic).
//! Scripts of the tenant's own are refused: a script could name keys
//! outside its namespace, and respgate cannot see inside it — unless the tenant has a
//! backend ACL user of its own (`backend_username`), whose connections Redis itself holds
//! to `~prefix*` keys and `&prefix*` channels. In cluster mode that covers EVAL, EVALSHA
//! (routed by their KEYS' slot) and SCRIPT (LOAD, EXISTS, FLUSH on every master); FUNCTION
//! and FCALL stay refused there, since FUNCTION LOAD would reach one master only.

use bytes::Bytes;

use super::session::{Outcome, Session};
use crate::backend::remote::cluster::router::Deferred;
use crate::backend::remote::walk::{Walk, WalkAction};
use crate::command::CommandSpec;
use crate::policy::namespace::{Namespace, Plan, Shape, Wide};
use crate::policy::tenant::Tenant;
use crate::protocol::Reply;

/// Counts the keys matching ARGV[1] (a tenant's namespace) on this server (in MULTI).
const COUNT_SCRIPT: &str = "local n = 0 local c = '0' repeat \
local r = redis.call('SCAN', c, 'MATCH', ARGV[1], 'COUNT', 1000) c = r[1] n = n + #r[2] \
until c == '0' return n";

/// Unlinks the keys matching ARGV[1] on this server (in MULTI).
const FLUSH_SCRIPT: &str = "local c = '0' repeat \
local r = redis.call('SCAN', c, 'MATCH', ARGV[1], 'COUNT', 1000) c = r[1] \
for _, k in ipairs(r[2]) do redis.call('UNLINK', k) end \
until c == '0' return redis.status_reply('OK')";

/// Commands whose bodies respgate cannot confine to a namespace.
fn is_script(name: &str) -> bool {
    matches!(
        name,
        "eval"
            | "evalsha"
            | "eval_ro"
            | "evalsha_ro"
            | "fcall"
            | "fcall_ro"
            | "function"
            | "script"
    )
}

/// What a tenant's command becomes when forwarded.
pub enum TenantPlan {
    /// Forward this argv; strip the reply per the shape (None: nothing to strip).
    Forward(Vec<Bytes>, Option<crate::policy::namespace::Shape>),
    /// Answered or scheduled already.
    Done(Outcome),
}

/// Why a tenant may not send this command to the backend, if it may not. Scripts of its
/// own need a backend user of its own (Redis's ACL then confines them; respgate cannot
/// see inside a script); in cluster mode FUNCTION and FCALL stay refused even then.
pub fn refusal(tenant: &Tenant, name: &str, cluster: bool) -> Option<String> {
    if cluster && tenant.backend_user.is_some() && matches!(name, "function" | "fcall" | "fcall_ro")
    {
        return Some(format!(
            "ERR respgate: {} is not available to tenants in cluster mode (a library would be loaded on one master only); use EVAL/EVALSHA",
            name.to_uppercase()
        ));
    }
    if is_script(name) && tenant.backend_user.is_none() {
        return Some(format!(
            "ERR respgate: {} is not available to tenants when forwarding (a script could reach keys outside its namespace)",
            name.to_uppercase()
        ));
    }
    None
}

/// [`refusal`] for a command queued in MULTI, where also the whole-keyspace commands a
/// cluster would have to fan out (DBSIZE, FLUSHDB, FLUSHALL) are refused, as the
/// transaction runs on one node, and RANDOMKEY (walked outside MULTI, see
/// [`crate::backend::remote::walk`]; no script of one step does it). Checked when the
/// command is queued, so that EXEC answers EXECABORT, as for any command Redis rejects
/// while queuing.
pub fn refusal_in_multi(tenant: &Tenant, name: &str, cluster: bool) -> Option<String> {
    if let Some(e) = refusal(tenant, name, cluster) {
        return Some(e);
    }
    let refused = match name {
        "randomkey" => true,
        "dbsize" | "flushdb" | "flushall" => cluster,
        _ => false,
    };
    refused.then(|| refused_in_multi_text(name))
}

/// The refusal of a tenant's command that cannot run inside its MULTI when forwarding.
pub fn refused_in_multi_text(name: &str) -> String {
    format!(
        "ERR respgate: {} inside MULTI is not available to tenants when forwarding",
        name.to_uppercase()
    )
}

/// A whole-keyspace command queued in a tenant's MULTI, as one script over the namespace:
/// a transaction is atomic, so it cannot be walked in steps (outside MULTI it is, see
/// [`crate::backend::remote::walk`]). None: RANDOMKEY (refused in MULTI).
pub fn wide_script(ns: &Namespace, wide: Wide) -> Option<Vec<Bytes>> {
    let script = match wide {
        Wide::DbSize => COUNT_SCRIPT,
        Wide::FlushDb | Wide::FlushAll => FLUSH_SCRIPT,
        Wide::RandomKey => return None,
    };
    Some(vec![
        Bytes::from_static(b"EVAL"),
        Bytes::from_static(script.as_bytes()),
        Bytes::from_static(b"0"),
        ns.pattern(b"*"),
    ])
}

impl Session {
    /// Rewrites a tenant's command for the backend.
    pub(super) fn tenant_forward_plan(
        &mut self,
        tenant: &Tenant,
        spec: &'static CommandSpec,
        argv: &[Bytes],
    ) -> TenantPlan {
        let cluster = self
            .shared
            .remote
            .as_ref()
            .is_some_and(|r| r.cluster.is_some());
        if let Some(e) = refusal(tenant, spec.name, cluster) {
            return TenantPlan::Done(Outcome::Reply(Reply::err(e)));
        }
        let ns = &tenant.namespace;
        match ns.plan(spec, argv) {
            Err(e) => TenantPlan::Done(Outcome::Reply(Reply::err(e))),
            Ok(Plan::Run(rewritten, shape)) => {
                // The backend's INFO counts every tenant's keys: those rows are dropped.
                let shape = if spec.name == "info" {
                    Shape::Info
                } else {
                    shape
                };
                let strip = (shape != Shape::Plain).then_some(shape);
                TenantPlan::Forward(rewritten, strip)
            }
            Ok(Plan::Wide(wide)) => {
                let action = match wide {
                    Wide::DbSize => WalkAction::Count,
                    Wide::FlushDb | Wide::FlushAll => WalkAction::Unlink,
                    Wide::RandomKey => WalkAction::Sample,
                };
                // Walked in steps (see backend::remote::walk): on the client's own
                // connection (its db), or on every master of a cluster.
                let conn = if cluster {
                    None
                } else {
                    match self.conn(false) {
                        Some(c) => Some(c),
                        None => return TenantPlan::Done(Outcome::DrainFirst),
                    }
                };
                if action == WalkAction::Sample
                    && let Some(st) = self.remote.as_mut()
                {
                    // The key found loses the prefix on the way back.
                    st.next_strip = Some(Shape::Key);
                }
                let walk = Walk {
                    pattern: ns.pattern(b"*"),
                    action,
                    conn,
                    // A cluster has db 0 only.
                    every_db: wide == Wide::FlushAll && !cluster,
                };
                TenantPlan::Done(self.defer(Deferred::Walk(walk)))
            }
        }
    }
}
