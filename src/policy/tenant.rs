//! Tenant lookup: the compiled tenants of a config, and which one a set of AUTH
//! credentials (or an unauthenticated client) acts as.

use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::acl::Acl;
use super::namespace::Namespace;
use super::ttl::TtlRules;
use crate::config::{Config, TenantConfig};

/// How a tenant's password is kept.
#[derive(Clone)]
enum Secret {
    Plain(Vec<u8>),
    Sha256([u8; 32]),
    /// Only reachable as the default tenant.
    None,
}

impl std::fmt::Debug for Secret {
    // Never print a password, even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secret::Plain(_) => "Plain(..)",
            Secret::Sha256(_) => "Sha256(..)",
            Secret::None => "None",
        })
    }
}

impl Secret {
    fn matches(&self, password: &[u8]) -> bool {
        match self {
            Secret::Plain(p) => constant_time_eq(p, password),
            Secret::Sha256(h) => constant_time_eq(h, &Sha256::digest(password)),
            Secret::None => false,
        }
    }
}

/// One tenant, compiled from its `[[tenants]]` entry.
#[derive(Debug)]
pub struct Tenant {
    pub name: String,
    pub username: Option<String>,
    /// Client certificate CN / DNS SAN that stands for this tenant.
    pub tls_identity: Option<String>,
    secret: Secret,
    pub namespace: Namespace,
    pub acl: Acl,
    pub durable: bool,
    /// TTL rules, first match wins (enforced by the embedded engine, see `policy::ttl`).
    pub ttl: TtlRules,
    /// This tenant's `respgate_commands_total` handles.
    pub commands: std::sync::Arc<crate::metrics::commands::TenantCommands>,
    /// Forwarding: the Redis ACL user this tenant's backend connections log in as.
    pub backend_user: Option<Arc<BackendUser>>,
}

/// A tenant's own login on the backend (`AUTH username password`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BackendUser {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for BackendUser {
    // Never the password (tenants are logged with {:?} in places).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackendUser")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Why tenants could not be compiled (config validation catches these first).
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("tenants[{index}]: {message}")]
    Invalid { index: usize, message: String },
}

/// All tenants of the running config.
#[derive(Debug, Default)]
pub struct Tenants {
    list: Vec<Arc<Tenant>>,
    default: Option<Arc<Tenant>>,
}

impl Tenants {
    pub fn from_config(config: &Config) -> Result<Tenants, TenantError> {
        let mut list = Vec::with_capacity(config.tenants.len());
        for (index, t) in config.tenants.iter().enumerate() {
            list.push(Arc::new(
                compile(t).map_err(|message| TenantError::Invalid { index, message })?,
            ));
        }
        let default = config
            .server
            .default_tenant
            .as_ref()
            .and_then(|name| list.iter().find(|t| &t.name == name).cloned());
        Ok(Tenants { list, default })
    }

    /// No tenants configured: respgate behaves as a single-user Redis.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The tenant unauthenticated clients act as, if any.
    pub fn default_tenant(&self) -> Option<&Arc<Tenant>> {
        self.default.as_ref()
    }

    /// Durable tenants whose keys the memory settings allow to be evicted: any policy but
    /// `noeviction` once a `maxmemory` limit is set (volatile-* policies evict keys with a
    /// TTL, which durable tenants have too).
    pub fn durable_at_risk(&self, maxmemory: u64, policy: &str) -> Vec<&str> {
        if maxmemory == 0 || policy == "noeviction" {
            return Vec::new();
        }
        self.list
            .iter()
            .filter(|t| t.durable)
            .map(|t| t.name.as_str())
            .collect()
    }

    pub fn by_name(&self, name: &str) -> Option<&Arc<Tenant>> {
        self.list.iter().find(|t| t.name == name)
    }

    /// The tenant a verified client certificate stands for (its CN, else a DNS SAN).
    pub fn by_tls_identity(&self, peer: &crate::tls::PeerIdentity) -> Option<&Arc<Tenant>> {
        self.list.iter().find(|t| {
            t.tls_identity.as_deref().is_some_and(|id| {
                peer.common_name.as_deref() == Some(id) || peer.dns_names.iter().any(|n| n == id)
            })
        })
    }

    /// `AUTH username password` / `HELLO .. AUTH username password`.
    pub fn authenticate(&self, username: &[u8], password: &[u8]) -> Option<Arc<Tenant>> {
        // Usernames are not secret; the password comparison is constant-time.
        let t = self
            .list
            .iter()
            .find(|t| t.username.as_deref().map(str::as_bytes) == Some(username))?;
        t.secret.matches(password).then(|| t.clone())
    }

    /// `AUTH password` from clients that cannot send a username: the tenant whose password
    /// it is (passwords are unique, checked at load). Every tenant is compared, so the time
    /// taken does not tell which one matched.
    pub fn authenticate_password(&self, password: &[u8]) -> Option<Arc<Tenant>> {
        let mut found = None;
        for t in &self.list {
            if t.secret.matches(password) && found.is_none() {
                found = Some(t.clone());
            }
        }
        found
    }
}

fn compile(t: &TenantConfig) -> Result<Tenant, String> {
    let secret = match (&t.password, &t.password_sha256) {
        (Some(p), _) => Secret::Plain(p.as_bytes().to_vec()),
        (None, Some(h)) => Secret::Sha256(parse_hex32(h).ok_or("password_sha256: not hex")?),
        (None, None) => Secret::None,
    };
    Ok(Tenant {
        name: t.name.clone(),
        username: t.username.clone(),
        tls_identity: t.tls_identity.clone(),
        secret,
        namespace: Namespace::new(t.prefix.as_bytes()),
        acl: Acl::new(&t.deny, &t.allow, t.read_only, t.default_deny)?,
        durable: t.durable,
        ttl: TtlRules::compile(&t.ttl).map_err(|e| e.to_string())?,
        commands: crate::metrics::commands::TenantCommands::for_tenant(&t.name),
        backend_user: match (&t.backend_username, &t.backend_password) {
            (Some(username), Some(password)) => Some(Arc::new(BackendUser {
                username: username.clone(),
                password: password.clone(),
            })),
            _ => None,
        },
    })
}

fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in b.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// Lower-case hex SHA-256, as `sha256sum` prints it.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Compares secrets without leaking where they differ through timing.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenants(toml: &str) -> Tenants {
        let c = Config::parse(toml, "t").unwrap();
        Tenants::from_config(&c).unwrap()
    }

    const TWO: &str = r#"
[server]
default_tenant = "dev"
[[tenants]]
name = "a"
username = "app-a"
password = "pa"
prefix = "a:"
[[tenants]]
name = "b"
password_sha256 = "4d8a6b0f6f1f0e8b1b4b58b4ad7d5bd2eb7fdbf2cb3ce8e0a6b8f0d8e4f0b1c2"
prefix = "b:"
[[tenants]]
name = "dev"
prefix = "dev:"
"#;

    #[test]
    fn lookup_by_username_password_and_default() {
        let t = tenants(TWO);
        assert_eq!(t.authenticate(b"app-a", b"pa").unwrap().name, "a");
        assert!(t.authenticate(b"app-a", b"pb").is_none());
        assert!(
            t.authenticate(b"a", b"pa").is_none(),
            "name is not username"
        );
        assert_eq!(t.authenticate_password(b"pa").unwrap().name, "a");
        assert!(t.authenticate_password(b"").is_none());
        assert_eq!(t.default_tenant().unwrap().name, "dev");
        assert!(!t.is_empty());
    }

    #[test]
    fn sha256_passwords() {
        let hash = sha256_hex(b"s3cret");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let t = tenants(&format!(
            "[[tenants]]\nname = \"h\"\nusername = \"h\"\npassword_sha256 = \"{}\"\nprefix = \"h:\"\n",
            hash.to_ascii_uppercase()
        ));
        assert_eq!(t.authenticate(b"h", b"s3cret").unwrap().name, "h");
        assert!(t.authenticate(b"h", b"s3cre").is_none());
        assert_eq!(t.authenticate_password(b"s3cret").unwrap().name, "h");
    }

    #[test]
    fn durable_tenants_at_risk_of_eviction() {
        let t = tenants(&format!("{TWO}durable = true\n"));
        assert_eq!(t.durable_at_risk(1 << 20, "allkeys-lru"), vec!["dev"]);
        assert_eq!(t.durable_at_risk(1 << 20, "volatile-ttl"), vec!["dev"]);
        assert!(t.durable_at_risk(1 << 20, "noeviction").is_empty());
        assert!(t.durable_at_risk(0, "allkeys-lru").is_empty());
    }

    #[test]
    fn debug_output_hides_secrets() {
        let t = tenants(TWO);
        let shown = format!("{:?}", t.by_name("a").unwrap());
        assert!(!shown.contains("pa\""), "{shown}");
        assert!(!shown.contains("112"), "{shown}");
    }
}
