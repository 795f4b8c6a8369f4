//! A tenant's commands inside the engine: the namespace rewrite and reply stripping around
//! one command of a batch (EXEC's queue, a script's redis.call), and the whole-keyspace
//! commands (DBSIZE, FLUSHDB, FLUSHALL, RANDOMKEY) confined to the tenant's keys.
//!
//! The confined versions walk the database for the tenant's prefix: O(keys in the db), like
//! KEYS. Deletions go through DEL so watches, keyspace events, the AOF and memory
//! accounting see them as ordinary deletes of the tenant's keys.

use std::sync::Arc;

use bytes::Bytes;

use super::{Batch, ClientView, scripting};
use crate::command::{CommandSpec, table};
use crate::policy::{Namespace, Plan, Tenant, Wide, replies};
use crate::protocol::Reply;

impl Batch<'_> {
    /// Runs one command of `tenant` (its command policy checked): keys moved into its namespace,
    /// the reply stripped. Scripts run with the tenant attached, so each redis.call inside
    /// is namespaced and checked in turn (the script sees the key names its caller used).
    pub fn execute_as(
        &mut self,
        client: ClientView,
        tenant: &Arc<Tenant>,
        cmd: &CommandSpec,
        argv: &[Bytes],
    ) -> Reply {
        // Checked again here: a transaction queued under another identity (AUTH inside
        // MULTI) must not run with the policy it was queued under.
        if let Some(e) = tenant.acl.check_argv(cmd, argv) {
            return Reply::err(e);
        }
        if scripting::handles(cmd.name) {
            let previous = self.tenant.replace(tenant.clone());
            let reply = self.execute(client, cmd, argv);
            self.tenant = previous;
            return reply;
        }
        let ns = &tenant.namespace;
        match ns.plan(cmd, argv) {
            Err(e) => Reply::err(e),
            Ok(Plan::Wide(wide)) => self.execute_wide(client, ns, wide),
            Ok(Plan::Run(rewritten, shape)) => {
                let reply = self.execute_under_ttl(client, tenant, cmd, &rewritten);
                replies::strip(ns, shape, reply)
            }
        }
    }

    /// The tenant a running script acts for, if any.
    pub fn tenant(&self) -> Option<&Arc<Tenant>> {
        self.tenant.as_ref()
    }

    /// DBSIZE, FLUSHDB, FLUSHALL and RANDOMKEY over the namespace's keys only.
    pub fn execute_wide(&mut self, client: ClientView, ns: &Namespace, wide: Wide) -> Reply {
        match wide {
            Wide::DbSize => Reply::Integer(self.keys_in(client, ns).len() as i64),
            Wide::RandomKey => {
                let keys = self.keys_in(client, ns);
                if keys.is_empty() {
                    return Reply::Null;
                }
                let pick = &keys[rand::random_range(0..keys.len())];
                ns.unkey(pick).map_or(Reply::Null, Reply::Bulk)
            }
            Wide::FlushDb => {
                self.delete_all(client, ns);
                Reply::ok()
            }
            Wide::FlushAll => {
                for db in 0..self.state.dbs.len() {
                    self.delete_all(ClientView { db, ..client }, ns);
                }
                Reply::ok()
            }
        }
    }

    /// Live keys of the namespace in the client's database (expired ones are not counted).
    fn keys_in(&mut self, client: ClientView, ns: &Namespace) -> Vec<Bytes> {
        let prefix = ns.prefix().clone();
        self.with_ctx(client, |ctx| {
            let now = ctx.now_ms;
            let mut out = Vec::new();
            ctx.db().for_each_live(now, |key, _| {
                if key.starts_with(&prefix) {
                    out.push(Bytes::copy_from_slice(key));
                }
            });
            out
        })
    }

    fn delete_all(&mut self, client: ClientView, ns: &Namespace) {
        let keys = self.keys_in(client, ns);
        let Some(del) = table::lookup(b"del") else {
            return;
        };
        // In chunks, so one huge argv is never built for a big namespace.
        for chunk in keys.chunks(1024) {
            let mut argv = Vec::with_capacity(chunk.len() + 1);
            argv.push(Bytes::from_static(b"DEL"));
            argv.extend(chunk.iter().cloned());
            self.execute(client, del, &argv);
        }
    }
}
