//! `[[tenants]]`: applications sharing one respgate, each with credentials, a key prefix,
//! a command policy and TTL rules — the serde structs and their load-time validation.

use serde::Deserialize;

use super::{ServerConfig, parse_duration};

/// One tenant as written in the config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Shown as `user=` in CLIENT LIST and used as the metrics label.
    pub name: String,
    /// `AUTH <username> <password>`; without it only `AUTH <password>` reaches this tenant.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// Hex SHA-256 of the password, so the file need not hold the secret itself.
    #[serde(default)]
    pub password_sha256: Option<String>,
    /// Put in front of every key and channel name of this tenant.
    #[serde(default)]
    pub prefix: String,
    /// Its keys must never be evicted (enforcement comes with the monitor).
    #[serde(default)]
    pub durable: bool,
    /// A client certificate's commonName or DNS subjectAltName: a client presenting it (to a
    /// `[server] tls` listener with `client_ca`) acts as this tenant without AUTH.
    #[serde(default)]
    pub tls_identity: Option<String>,
    /// Commands (`get`, `client|kill`) and categories (`@dangerous`) refused.
    #[serde(default)]
    pub deny: Vec<String>,
    /// When non-empty, only these commands/categories are allowed; a command named here
    /// explicitly is allowed even if one of its categories is denied.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Commands flagged `write` are refused.
    #[serde(default)]
    pub read_only: bool,
    /// Apply respgate's deny list for shared backends (CONFIG, DEBUG, SHUTDOWN, MONITOR ...).
    #[serde(default = "default_true")]
    pub default_deny: bool,
    /// TTL rules, first match wins.
    #[serde(default)]
    pub ttl: Vec<TtlRuleConfig>,
    /// Standalone/sentinel: log in to the backend as this Redis ACL user (limited to the
    /// tenant's `~prefix*` keys and `&prefix*` channels) for this tenant's commands, which
    /// lets its scripts run, confined by Redis.
    #[serde(default)]
    pub backend_username: Option<String>,
    #[serde(default)]
    pub backend_password: Option<String>,
}

fn default_true() -> bool {
    true
}

/// What a TTL rule does with a write that breaks it.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TtlMode {
    /// Shorten the TTL to max_ttl / add default_ttl.
    #[default]
    Clamp,
    /// Refuse the command.
    Reject,
    /// Let it through and count it.
    Audit,
}

/// `[[tenants.ttl]]`: matched on the key without the tenant prefix.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TtlRuleConfig {
    /// A Redis glob (`tile:*`).
    pub pattern: String,
    /// A write that creates a key without a TTL gets this one.
    #[serde(default)]
    pub default_ttl: Option<String>,
    /// A longer TTL is clamped to this (or rejected, per mode).
    #[serde(default)]
    pub max_ttl: Option<String>,
    /// A write that would leave the key without a TTL is rejected.
    #[serde(default)]
    pub require_ttl: bool,
    #[serde(default)]
    pub mode: TtlMode,
}

/// Why a tenant prefix cannot be used, if it cannot.
///
/// * `{` or `}`: a cluster hash tag must stay the key's own (the prefix goes outside it).
/// * A prefix that is, or could start, `__keyspace@` / `__keyevent@` (`_`, `__key`, ...):
///   the tenant's own channels, prefixed, would read as Redis's keyspace notification
///   channels — `PUBLISH _keyspace@0__:b:k x` under prefix `_` would reach tenant `b:`'s
///   subscribers as a notification about its key `k`.
pub fn prefix_problem(prefix: &str) -> Option<String> {
    if prefix.contains(['{', '}']) {
        return Some(format!("{prefix:?} must not contain '{{' or '}}'"));
    }
    for channel in ["__keyspace@", "__keyevent@"] {
        if !prefix.is_empty() && (prefix.starts_with(channel) || channel.starts_with(prefix)) {
            return Some(format!(
                "{prefix:?} must not start with (or be the start of) {channel} (Redis's keyspace notification channels)"
            ));
        }
    }
    None
}

/// Checks every tenant; the error names the key (`tenants[1].prefix`) and what is wrong.
pub(super) fn validate(
    tenants: &[TenantConfig],
    server: &ServerConfig,
) -> Result<(), (String, String)> {
    if let Some(name) = &server.default_tenant
        && !tenants.iter().any(|t| &t.name == name)
    {
        return Err((
            "server.default_tenant".into(),
            format!("no [[tenants]] entry is named {name:?}"),
        ));
    }
    for (i, t) in tenants.iter().enumerate() {
        let key = |field: &str| format!("tenants[{i}].{field}");
        if let Some(id) = &t.tls_identity {
            // Only a verified certificate can stand for a tenant.
            if server
                .tls
                .as_ref()
                .is_none_or(|tls| tls.client_ca.is_none())
            {
                return Err((
                    key("tls_identity"),
                    "needs [server] tls with client_ca (verified client certificates)".into(),
                ));
            }
            if id.is_empty() {
                return Err((key("tls_identity"), "must not be empty".into()));
            }
            if tenants[..i]
                .iter()
                .any(|o| o.tls_identity.as_deref() == Some(id.as_str()))
            {
                return Err((key("tls_identity"), format!("{id:?} names two tenants")));
            }
        }
        if t.name.is_empty() || t.name.bytes().any(|c| !(b'!'..=b'~').contains(&c)) {
            return Err((
                key("name"),
                "must be non-empty printable ASCII without spaces".into(),
            ));
        }
        if let Some(u) = &t.username
            && (u.is_empty() || u.bytes().any(|c| !(b'!'..=b'~').contains(&c)))
        {
            return Err((
                key("username"),
                "must be non-empty printable ASCII without spaces".into(),
            ));
        }
        if t.password.is_some() && t.password_sha256.is_some() {
            return Err((
                key("password_sha256"),
                "give password or password_sha256, not both".into(),
            ));
        }
        if let Some(h) = &t.password_sha256
            && (h.len() != 64 || !h.bytes().all(|c| c.is_ascii_hexdigit()))
        {
            return Err((
                key("password_sha256"),
                "must be 64 hex digits (e.g. from `printf %s PASSWORD | sha256sum`)".into(),
            ));
        }
        let is_default = server.default_tenant.as_deref() == Some(t.name.as_str());
        if t.password.is_none()
            && t.password_sha256.is_none()
            && !is_default
            && t.tls_identity.is_none()
        {
            return Err((
                key("password"),
                "a tenant needs password or password_sha256 (or tls_identity, or must be server.default_tenant)"
                    .into(),
            ));
        }
        match (&t.backend_username, &t.backend_password) {
            (Some(u), Some(_))
                if u.is_empty() || u.bytes().any(|c| !(b'!'..=b'~').contains(&c)) =>
            {
                return Err((
                    key("backend_username"),
                    "must be non-empty printable ASCII without spaces".into(),
                ));
            }
            (Some(_), None) => {
                return Err((key("backend_password"), "backend_username needs it".into()));
            }
            (None, Some(_)) => {
                return Err((key("backend_username"), "backend_password needs it".into()));
            }
            _ => {}
        }
        if let Some(problem) = prefix_problem(&t.prefix) {
            return Err((key("prefix"), problem));
        }
        for (field, list) in [("deny", &t.deny), ("allow", &t.allow)] {
            for (j, entry) in list.iter().enumerate() {
                crate::policy::acl::Rule::parse(entry)
                    .map_err(|e| (format!("tenants[{i}].{field}[{j}]"), e))?;
            }
        }
        for (j, rule) in t.ttl.iter().enumerate() {
            validate_ttl(rule).map_err(|(f, m)| (format!("tenants[{i}].ttl[{j}].{f}"), m))?;
        }
        for (k, other) in tenants.iter().enumerate().take(i) {
            if other.name == t.name {
                return Err((
                    key("name"),
                    format!("{:?} is also tenants[{k}]'s name", t.name),
                ));
            }
            if t.username.is_some() && other.username == t.username {
                return Err((
                    key("username"),
                    format!("{:?} is also tenants[{k}]'s username", t.username),
                ));
            }
            if t.prefix.starts_with(&other.prefix) || other.prefix.starts_with(&t.prefix) {
                // One namespace would contain the other's keys.
                return Err((
                    key("prefix"),
                    format!(
                        "{:?} and tenants[{k}].prefix {:?}: one is a prefix of the other, so one tenant would see the other's keys",
                        t.prefix, other.prefix
                    ),
                ));
            }
            if same_password(t, other) {
                // `AUTH <password>` (no username) must name one tenant.
                return Err((
                    key("password"),
                    format!("same password as tenants[{k}]; passwords must differ"),
                ));
            }
        }
    }
    Ok(())
}

fn same_password(a: &TenantConfig, b: &TenantConfig) -> bool {
    let digest = |t: &TenantConfig| -> Option<String> {
        match (&t.password, &t.password_sha256) {
            (Some(p), _) => Some(crate::policy::tenant::sha256_hex(p.as_bytes())),
            (None, Some(h)) => Some(h.to_ascii_lowercase()),
            (None, None) => None,
        }
    };
    matches!((digest(a), digest(b)), (Some(x), Some(y)) if x == y)
}

fn validate_ttl(rule: &TtlRuleConfig) -> Result<(), (&'static str, String)> {
    if rule.pattern.is_empty() {
        return Err((
            "pattern",
            "must not be empty (\"*\" matches every key)".into(),
        ));
    }
    let parse = |field: &'static str, v: &Option<String>| -> Result<Option<u64>, _> {
        match v {
            None => Ok(None),
            Some(s) => {
                let d = parse_duration(s).map_err(|e| (field, e))?;
                if d.as_millis() == 0 {
                    return Err((field, "must be longer than 0".into()));
                }
                Ok(Some(d.as_millis() as u64))
            }
        }
    };
    let default = parse("default_ttl", &rule.default_ttl)?;
    let max = parse("max_ttl", &rule.max_ttl)?;
    if let (Some(d), Some(m)) = (default, max)
        && d > m
    {
        return Err((
            "default_ttl",
            format!(
                "{:?} is longer than max_ttl {:?}",
                rule.default_ttl.as_deref().unwrap_or(""),
                rule.max_ttl.as_deref().unwrap_or("")
            ),
        ));
    }
    if default.is_none() && max.is_none() && !rule.require_ttl {
        return Err((
            "pattern",
            "the rule sets none of default_ttl, max_ttl, require_ttl".into(),
        ));
    }
    Ok(())
}
