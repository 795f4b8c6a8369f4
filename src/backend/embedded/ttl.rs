//! A tenant's TTL rules applied to one write inside the engine lock: the keys the write may
//! create or change are looked at before it runs (a refusal is decided then), and the default
//! or the clamp is applied right after it, in the same batch, as `PEXPIRE key ms NX` or
//! `PEXPIRE key ms LT`. Nothing can run in between, so no client ever sees a key that the
//! policy gives a TTL without one, and an existing TTL is never lengthened.
//!
//! The fix-ups are ordinary PEXPIRE commands run through the batch, so the AOF, keyspace
//! notifications and WATCH see them as they would see the client's own PEXPIRE.

use bytes::Bytes;

use super::{Batch, ClientView, num, unix_ms};
use crate::command::{CommandSpec, keys, table};
use crate::policy::Tenant;
use crate::policy::ttl::{self, Action, Effect, Fix, KeyState, TtlRule};
use crate::protocol::Reply;

/// One key of the write that falls under a rule.
pub(super) struct Ruled<'t> {
    /// The stored (prefixed) key and the tenant's name for it.
    key: Bytes,
    plain: Bytes,
    db: usize,
    rule: &'t TtlRule,
    effect: Effect,
    before: KeyState,
}

impl Batch<'_> {
    /// Runs a tenant's (already namespaced) command with its TTL rules enforced.
    pub fn execute_under_ttl(
        &mut self,
        client: ClientView,
        tenant: &Tenant,
        cmd: &CommandSpec,
        argv: &[Bytes],
    ) -> Reply {
        let ruled = self.ttl_prepare(client, tenant, cmd, argv);
        if ruled.is_empty() {
            return self.execute(client, cmd, argv);
        }
        if let Some(refused) = self.ttl_refusal(client, tenant, cmd, argv, &ruled) {
            return refused;
        }
        let reply = self.execute(client, cmd, argv);
        self.ttl_settle(client, tenant, cmd, &ruled);
        reply
    }

    /// The keys of the write that fall under a rule, with their state before it.
    pub(super) fn ttl_prepare<'t>(
        &self,
        client: ClientView,
        tenant: &'t Tenant,
        cmd: &CommandSpec,
        argv: &[Bytes],
    ) -> Vec<Ruled<'t>> {
        if tenant.ttl.is_empty() {
            return Vec::new();
        }
        // Containers (XGROUP CREATE ... MKSTREAM) carry the write flag on the subcommand.
        let effective = keys::resolve(cmd, argv).unwrap_or(cmd);
        if !effective.has(table::flags::WRITE) {
            return Vec::new();
        }
        let now = self.clock();
        self.ruled_keys(client, tenant, cmd, argv, now)
    }

    /// The refusal of a write whose predicted outcome breaks a rule (counted).
    fn ttl_refusal(
        &self,
        client: ClientView,
        tenant: &Tenant,
        cmd: &CommandSpec,
        argv: &[Bytes],
        ruled: &[Ruled<'_>],
    ) -> Option<Reply> {
        let now = self.clock();
        for r in ruled {
            let source = match r.effect {
                Effect::CopyFrom { source: i, .. } => argv
                    .get(i)
                    .map_or(KeyState::Missing, |k| self.key_state(client.db, k, now)),
                _ => KeyState::Missing,
            };
            let predicted = ttl::predict(&r.effect, r.before, source, now);
            let verdict = ttl::verdict(
                r.rule,
                r.before,
                predicted,
                r.effect == Effect::Persist,
                now,
            );
            if let Some(text) = ttl::refusal(r.rule, &r.plain, verdict) {
                r.rule.count(&tenant.name, Action::Rejected);
                tracing::debug!(tenant = %tenant.name, rule = %r.rule.pattern, command = cmd.name, "TTL policy refused a write");
                return Some(Reply::err(text));
            }
        }
        None
    }

    /// After the write: the default given, the TTL shortened, or the breach recorded.
    pub(super) fn ttl_settle(
        &mut self,
        client: ClientView,
        tenant: &Tenant,
        cmd: &CommandSpec,
        ruled: &[Ruled<'_>],
    ) {
        let now = self.clock();
        for r in ruled {
            let after = self.key_state(r.db, &r.key, now);
            let verdict = ttl::verdict(r.rule, r.before, after, r.effect == Effect::Persist, now);
            let view = ClientView { db: r.db, ..client };
            let undone_ttl = match (r.effect == Effect::Persist, r.before) {
                (true, KeyState::Expires(at)) => Some(at.saturating_sub(now)),
                _ => None,
            };
            match ttl::fix(r.rule, verdict, undone_ttl) {
                Fix::None => {}
                Fix::Give(ms, action) => {
                    self.pexpire(view, &r.key, ms, b"NX");
                    r.rule.count(&tenant.name, action);
                }
                Fix::Shorten(ms) => {
                    self.pexpire(view, &r.key, ms, b"LT");
                    r.rule.count(&tenant.name, Action::Clamped);
                }
                Fix::Record => {
                    r.rule.count(&tenant.name, Action::Audited);
                    let what = match verdict {
                        ttl::Verdict::TooLong => "TTL longer than max_ttl",
                        _ => "key left without a TTL",
                    };
                    // Names only: never the key's value (nor the key, which may carry data).
                    tracing::info!(tenant = %tenant.name, rule = %r.rule.pattern, command = cmd.name, what, "TTL policy audit");
                }
            }
        }
    }

    /// The command clock, as handlers see it.
    fn clock(&self) -> u64 {
        self.state.clock_override.unwrap_or_else(unix_ms)
    }

    fn key_state(&self, db: usize, key: &Bytes, now: u64) -> KeyState {
        match self.state.dbs.get(db).and_then(|d| d.peek(key, now)) {
            None => KeyState::Missing,
            Some(e) => e
                .expire_at()
                .map_or(KeyState::Persistent, KeyState::Expires),
        }
    }

    /// The keys `argv` may write that fall under one of the tenant's rules.
    fn ruled_keys<'t>(
        &self,
        client: ClientView,
        tenant: &'t Tenant,
        cmd: &CommandSpec,
        argv: &[Bytes],
        now: u64,
    ) -> Vec<Ruled<'t>> {
        let Ok(refs) = keys::keys_and_flags(cmd, argv) else {
            return Vec::new();
        };
        // Subcommands by their own name (`xgroup|create`).
        let name = keys::resolve(cmd, argv).map_or(cmd.name, |c| c.name);
        let mut out: Vec<Ruled<'t>> = Vec::new();
        for k in refs {
            // Read-only keys (sources of *STORE, COPY ...) keep their TTL.
            if k.flags.iter().any(|f| f.eq_ignore_ascii_case("RO")) {
                continue;
            }
            let Some(key) = argv.get(k.pos) else { continue };
            let Some(plain) = tenant.namespace.unkey(key) else {
                continue;
            };
            let Some(rule) = tenant.ttl.rule_for(&plain) else {
                continue;
            };
            let db = if cmd.name == "copy" && k.pos == 2 {
                copy_target_db(argv).unwrap_or(client.db)
            } else {
                client.db
            };
            // A key named twice (SUNIONSTORE d d) is judged once.
            if out.iter().any(|r| r.key == *key && r.db == db) {
                continue;
            }
            let effect = ttl::effect(name, argv, k.pos, k.flags, now);
            let before = self.key_state(db, key, now);
            out.push(Ruled {
                key: key.clone(),
                plain,
                db,
                rule,
                effect,
                before,
            });
        }
        out
    }

    /// `PEXPIRE key ms NX|LT` in this batch.
    fn pexpire(&mut self, view: ClientView, key: &Bytes, ms: u64, cond: &'static [u8]) {
        let Some(spec) = table::lookup(b"pexpire") else {
            return;
        };
        let argv = [
            Bytes::from_static(b"PEXPIRE"),
            key.clone(),
            Bytes::from(ms.to_string()),
            Bytes::from_static(cond),
        ];
        let reply = self.execute(view, spec, &argv);
        if reply.is_error() {
            tracing::warn!(error = ?reply, "TTL policy: PEXPIRE fix-up failed");
        }
    }
}

/// COPY ... DB n: the destination's database.
fn copy_target_db(argv: &[Bytes]) -> Option<usize> {
    let i = argv
        .iter()
        .skip(3)
        .position(|a| a.eq_ignore_ascii_case(b"db"))?;
    let n = num::parse_i64(argv.get(i + 4)?)?;
    usize::try_from(n).ok()
}
