//! The session's side of tenant policy (embedded engine): who a new client is, the command
//! policy and namespace rewrite applied to each command, the prefix stripped from replies and
//! pub/sub messages, and the per-address limit on failed AUTHs.
//!
//! The policy itself is pure ([`crate::policy`]); this module only applies it at the points
//! where the session runs commands, so `session.rs` calls one hook per point.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;

use super::Shared;
use super::clients::ClientHandle;
use super::session::Session;
use crate::backend::embedded::{Blocking, ClientView, blocking, scripting};
use crate::command::{self, CommandSpec, table};
use crate::policy::{Plan, Tenant, replies};
use crate::protocol::{Reply, errors};

/// Whether a new (or RESET) client is authenticated, and as which tenant: without tenants,
/// as before (authenticated unless `requirepass`); with tenants, as the tenant its client
/// certificate stands for, else the default tenant if one is configured, else not until it
/// AUTHs.
pub fn initial_identity(shared: &Shared, client: &ClientHandle) -> (bool, Option<Arc<Tenant>>) {
    if shared.tenants().is_empty() {
        return (shared.config.server.requirepass.is_none(), None);
    }
    // A verified client certificate that stands for a tenant is that tenant's login.
    if let Some(peer) = client.info.lock().tls_peer.as_ref()
        && let Some(t) = shared.tenants().by_tls_identity(peer)
    {
        return (true, Some(t.clone()));
    }
    match shared.tenants().default_tenant() {
        Some(t) => (true, Some(t.clone())),
        None => (false, None),
    }
}

/// CLIENT LIST's `user=`: the tenant's name, or Redis's `default` user.
pub fn show_user(client: &ClientHandle, tenant: Option<&Tenant>) {
    client.info.lock().user = tenant.map_or_else(|| "default".to_string(), |t| t.name.clone());
}

/// The refusal once an address has used up its failed AUTHs for the minute. It is not
/// WRONGPASS, so a client (or its operator) can tell a lock-out from a typo.
pub const AUTH_RATE_LIMITED: &str =
    "ERR respgate: too many failed AUTH attempts from this address, try again in a minute";

/// Failed AUTHs per client IP address in fixed one-minute windows.
pub struct AuthLimiter {
    per_minute: u32,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered before stale windows are swept (bounds memory under a scan).
const SWEEP_AT: usize = 10_000;

impl AuthLimiter {
    /// `per_minute` = 0: no limit.
    pub fn new(per_minute: u32) -> AuthLimiter {
        AuthLimiter {
            per_minute,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Has `ip` used up its failures for the current window?
    pub fn blocked(&self, ip: IpAddr) -> bool {
        if self.per_minute == 0 {
            return false;
        }
        let map = self.failures.lock();
        map.get(&ip)
            .is_some_and(|(since, n)| since.elapsed() < WINDOW && *n >= self.per_minute)
    }

    /// Records one failed AUTH from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        if self.per_minute == 0 {
            return;
        }
        let mut map = self.failures.lock();
        if map.len() >= SWEEP_AT {
            map.retain(|_, (since, _)| since.elapsed() < WINDOW);
        }
        let entry = map.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }
}

impl Session {
    /// The command policy check of the dispatch hook: NOPERM for a command the tenant may
    /// not run (inside MULTI this fails the transaction, as Redis's ACL does). What the
    /// namespace refuses (SWAPDB, SORT patterns ...) is answered when the command runs, like
    /// any runtime error, so the rewrite is computed once per command.
    pub(super) fn tenant_allows(
        &self,
        spec: &'static CommandSpec,
        effective: &'static CommandSpec,
    ) -> Result<(), Reply> {
        let Some(tenant) = &self.tenant else {
            return Ok(());
        };
        let container = (!std::ptr::eq(spec, effective)).then_some(spec);
        match tenant.acl.check(effective, container) {
            Some(e) => {
                crate::metrics::policy_denied(&tenant.name, "noperm");
                Err(Reply::err(e))
            }
            None => Ok(()),
        }
    }

    /// Runs a tenant's command (outside MULTI): keys namespaced, the reply stripped.
    pub(super) fn execute_as(
        &mut self,
        tenant: &Arc<Tenant>,
        spec: &'static CommandSpec,
        argv: &[Bytes],
    ) -> Blocking {
        let ns = &tenant.namespace;
        let (rewritten, shape) = match ns.plan(spec, argv) {
            Err(e) => {
                crate::metrics::policy_denied(&tenant.name, "namespace");
                return Blocking::Done(Reply::err(e));
            }
            Ok(Plan::Wide(wide)) => {
                let view = self.view();
                return Blocking::Done(self.shared.engine.batch().execute_wide(view, ns, wide));
            }
            Ok(Plan::Run(rewritten, shape)) => (rewritten, shape),
        };
        if let Some(reply) = command::connection::run_local(self, spec.name, &rewritten) {
            return Blocking::Done(replies::strip(ns, shape, reply));
        }
        let engine = self.shared.engine.clone();
        if !engine.supports(spec.name) {
            return Blocking::Done(Reply::err(errors::not_implemented(spec.name)));
        }
        let view = self.view();
        if spec.has(table::flags::BLOCKING) && blocking::may_block(spec, &rewritten) {
            return match engine.batch().execute_blocking_as(
                view,
                self.client_id(),
                Some(tenant),
                spec,
                &rewritten,
            ) {
                Blocking::Done(reply) => Blocking::Done(replies::strip(ns, shape, reply)),
                wait => {
                    self.block_shape = Some(shape);
                    wait
                }
            };
        }
        if scripting::handles(spec.name) {
            if spec.name == "script" && argv[1].eq_ignore_ascii_case(b"kill") && argv.len() == 2 {
                return Blocking::Done(engine.script_run.kill());
            }
            // The script gets its caller's argv: each redis.call inside is namespaced. It
            // runs here; one that runs long hands this worker's other clients to another
            // thread (`scripting`'s hook).
            return Blocking::Done(engine.batch().execute_as(view, tenant, spec, argv));
        }
        // TTL rules are enforced inside the one engine lock of this command.
        let reply = engine
            .batch()
            .execute_under_ttl(view, tenant, spec, &rewritten);
        Blocking::Done(replies::strip(ns, shape, reply))
    }

    /// A tenant's connection command queued in MULTI (PUBLISH, WATCH ...), namespaced.
    pub(super) fn run_local_as(
        &mut self,
        tenant: &Arc<Tenant>,
        spec: &'static CommandSpec,
        argv: &[Bytes],
    ) -> Option<Reply> {
        // EXEC runs what was queued; the identity may have changed since (AUTH in MULTI).
        if let Some(e) = tenant.acl.check_argv(spec, argv) {
            return Some(Reply::err(e));
        }
        let ns = &tenant.namespace;
        let (rewritten, shape) = match ns.plan(spec, argv) {
            Ok(Plan::Run(rewritten, shape)) => (rewritten, shape),
            // Engine commands: the batch namespaces them.
            Ok(Plan::Wide(_)) | Err(_) => return None,
        };
        command::connection::run_local(self, spec.name, &rewritten)
            .map(|reply| replies::strip(ns, shape, reply))
    }

    /// (UN)SUBSCRIBE & co.: the policy check and the channels moved into the namespace.
    pub(super) fn tenant_argv(&self, argv: &[Bytes]) -> Result<Vec<Bytes>, Reply> {
        let Some(tenant) = &self.tenant else {
            return Ok(argv.to_vec());
        };
        let Some(spec) = argv.first().and_then(|n| table::lookup(n)) else {
            return Ok(argv.to_vec());
        };
        if let Some(e) = tenant.acl.check(spec, None) {
            return Err(Reply::err(e));
        }
        match tenant.namespace.plan(spec, argv) {
            Ok(Plan::Run(rewritten, _)) => Ok(rewritten),
            Ok(Plan::Wide(_)) => Ok(argv.to_vec()),
            Err(e) => Err(Reply::err(e)),
        }
    }

    /// A (un)subscribe confirmation with the name as the tenant gave it.
    pub(super) fn tenant_confirmation(&self, reply: Reply) -> Reply {
        match &self.tenant {
            Some(t) => replies::strip_confirmation(&t.namespace, reply),
            None => reply,
        }
    }

    /// The reply of a command that blocked, stripped as its shape says.
    pub(super) fn tenant_blocked_reply(&mut self, reply: Reply) -> Reply {
        match (&self.tenant, self.block_shape.take()) {
            (Some(t), Some(shape)) => replies::strip(&t.namespace, shape, reply),
            _ => reply,
        }
    }

    /// A published message as this tenant sees it; None: not the tenant's (a shared
    /// `__keyevent@` channel announcing another tenant's key).
    pub(super) fn tenant_message(&self, msg: Reply) -> Option<Reply> {
        match &self.tenant {
            Some(t) => replies::strip_message(&t.namespace, msg),
            None => Some(msg),
        }
    }

    fn view(&self) -> ClientView {
        ClientView {
            db: self.db,
            proto: self.proto,
            tracker: self.tracker(),
        }
    }
}
