//! TTL rules when forwarding: a tenant's write that falls under a rule is sent inside one
//! MULTI ... EXEC together with its fix-ups (`PEXPIRE key ms NX` for a default or required
//! TTL, `PEXPIRE key ms LT` to clamp to max_ttl), on the client's connection, so no other
//! client ever sees the key without its TTL and an existing TTL is never lengthened. The
//! client gets its command's own reply, taken out of EXEC's array; actions are counted when
//! the fix-up's reply says it applied.
//!
//! Unlike the embedded engine, respgate does not see the key before the write here: a key
//! that already lived without a TTL also gets the default when written, and reject mode
//! refuses only what the command's own arguments show (an explicit TTL over max_ttl, an
//! explicit PERSIST or a SET without TTL under require_ttl); other writes under require_ttl
//! get the default instead.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use crate::backend::remote::cluster::raw;
use crate::backend::remote::conn::encode_command;
use crate::command::{CommandSpec, keys, table};
use crate::config::TtlMode;
use crate::policy::namespace::Shape;
use crate::policy::tenant::Tenant;
use crate::policy::ttl::{self, Action, Effect};
use crate::protocol::Protocol;

/// A fix-up command sent after a write, and what to count when it applies.
pub struct FixUp {
    pub argv: Vec<Bytes>,
    /// Index of the rule in the tenant's rules (counted when PEXPIRE answers 1).
    pub rule_key: Bytes,
    pub action: Action,
}

/// The fix-ups for one of a tenant's writes (already namespaced), or a refusal text.
pub fn plan(
    tenant: &Tenant,
    spec: &'static CommandSpec,
    argv: &[Bytes],
    now: u64,
) -> Result<Vec<FixUp>, String> {
    // A container command (XGROUP, OBJECT ...) carries its subcommand's flags.
    let effective = keys::resolve(spec, argv).unwrap_or(spec);
    if tenant.ttl.is_empty() || !effective.has(table::flags::WRITE) {
        return Ok(Vec::new());
    }
    let Ok(found) = keys::keys_and_flags(spec, argv) else {
        return Ok(Vec::new());
    };
    let mut fixes = Vec::new();
    for k in found {
        let flags: Vec<&str> = k.flags.to_vec();
        if flags.iter().any(|f| f.eq_ignore_ascii_case("RO")) {
            continue;
        }
        let Some(key) = argv.get(k.pos) else { continue };
        let Some(bare) = tenant.namespace.unkey(key) else {
            continue;
        };
        let Some(rule) = tenant.ttl.rule_for(&bare) else {
            continue;
        };
        let effect = ttl::effect(effective.name, argv, k.pos, &flags, now);
        let too_long = match &effect {
            Effect::Value { at: Some(at), .. } | Effect::Expire { at, .. } => rule
                .max_ms
                .is_some_and(|max| (*at as i128) - (now as i128) > max as i128),
            _ => false,
        };
        let explicit_no_ttl = matches!(
            effect,
            Effect::Persist
                | Effect::Value {
                    at: None,
                    keep: false,
                    ..
                }
        );
        match rule.mode {
            TtlMode::Audit => {
                if too_long || (explicit_no_ttl && (rule.require || rule.default_ms.is_some())) {
                    rule.count(&tenant.name, Action::Audited);
                    tracing::info!(tenant = %tenant.name, rule = %rule.pattern, command = effective.name, "TTL policy (audit)");
                }
                continue;
            }
            TtlMode::Reject => {
                if too_long {
                    rule.count(&tenant.name, Action::Rejected);
                    return Err(rule.at_most_text(&bare));
                }
                if explicit_no_ttl && rule.require {
                    rule.count(&tenant.name, Action::Rejected);
                    return Err(rule.requires_text(&bare));
                }
            }
            TtlMode::Clamp => {}
        }
        let persist_honoured = matches!(effect, Effect::Persist) && !rule.require;
        if !persist_honoured && let Some(ms) = rule.fallback_ms() {
            let action = if rule.default_ms.is_some() {
                Action::DefaultApplied
            } else {
                Action::Clamped
            };
            fixes.push(FixUp {
                argv: pexpire(key, ms, b"NX"),
                rule_key: bare.clone(),
                action,
            });
        } else if !persist_honoured && rule.require {
            // Required, nothing to give: refused even in clamp mode (as the engine does).
            rule.count(&tenant.name, Action::Rejected);
            return Err(rule.requires_text(&bare));
        }
        if let Some(max) = rule.max_ms
            && rule.mode == TtlMode::Clamp
        {
            fixes.push(FixUp {
                argv: pexpire(key, max, b"LT"),
                rule_key: bare,
                action: Action::Clamped,
            });
        }
    }
    Ok(fixes)
}

fn pexpire(key: &Bytes, ms: u64, cond: &'static [u8]) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"PEXPIRE"),
        key.clone(),
        Bytes::from(ms.max(1).to_string()),
        Bytes::from_static(cond),
    ]
}

/// Encodes `MULTI; argv; fix-ups; EXEC` for a command outside a transaction.
pub fn encode_wrapped(out: &mut BytesMut, argv: &[Bytes], fixes: &[FixUp]) {
    encode_command(out, &[b"MULTI"]);
    encode_command(out, argv);
    for f in fixes {
        encode_command(out, &f.argv);
    }
    encode_command(out, &[b"EXEC"]);
}

/// What one element of an EXEC reply is.
pub enum Part {
    /// The client's reply; with a shape, a tenant's reply that loses the prefix (`Plain`:
    /// only error texts quoting a key).
    Client(Option<Shape>),
    /// A TTL fix-up's reply, counted for its rule (key) if it applied.
    FixUp(Bytes, Action),
}

/// Which elements of an EXEC reply are the client's, and which are fix-ups to count.
pub struct Unwrap {
    pub tenant: Arc<Tenant>,
    /// Per EXEC element.
    pub parts: Vec<Part>,
    /// The client sent no MULTI: its reply is the one element, not an array.
    pub single: bool,
}

impl Unwrap {
    /// The client's reply from EXEC's (raw) reply. A null or error EXEC reply is returned
    /// as is.
    pub fn apply(&self, exec_reply: &Bytes, proto: Protocol) -> Bytes {
        let Some((kind, items)) = raw::elements(exec_reply) else {
            return exec_reply.clone();
        };
        if items.len() != self.parts.len() {
            return exec_reply.clone();
        }
        let mut mine: Vec<Cow<'_, [u8]>> = Vec::with_capacity(items.len());
        for (item, part) in items.iter().zip(&self.parts) {
            match part {
                Part::Client(None) => mine.push(Cow::Borrowed(*item)),
                Part::Client(Some(shape)) => mine.push(self.stripped(*shape, item, proto)),
                Part::FixUp(key, action) => {
                    if raw::integer(item) == Some(1)
                        && let Some(rule) = self.tenant.ttl.rule_for(key)
                    {
                        rule.count(&self.tenant.name, *action);
                    }
                }
            }
        }
        if self.single && mine.len() == 1 {
            return Bytes::copy_from_slice(&mine[0]);
        }
        let mut out = BytesMut::new();
        crate::backend::remote::cluster::split::push_header(&mut out, kind, mine.len());
        for m in mine {
            out.extend_from_slice(&m);
        }
        out.freeze()
    }

    /// One of the client's replies without the tenant's prefix (a plain one is looked at
    /// only if it is an error).
    fn stripped<'a>(&self, shape: Shape, item: &'a [u8], proto: Protocol) -> Cow<'a, [u8]> {
        let error = matches!(item.first(), Some(b'-' | b'!'));
        if shape == Shape::Plain && !error {
            return Cow::Borrowed(item);
        }
        match crate::policy::replies::strip_raw(&self.tenant.namespace, shape, item, proto) {
            Ok(r) => Cow::Owned(r.to_vec()),
            Err(e) => {
                let mut err = BytesMut::new();
                crate::protocol::Reply::err(format!("ERR respgate: unreadable backend reply: {e}"))
                    .encode(proto, &mut err);
                Cow::Owned(err.to_vec())
            }
        }
    }
}
