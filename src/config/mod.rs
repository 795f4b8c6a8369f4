//! The TOML config users write: serde structs (unknown keys rejected), defaults, validation.
//!
//! Durations are strings like "10m" and sizes strings like "256mb", as in Redis's own config.

mod tenants;
mod units;

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

pub use tenants::{TenantConfig, TtlMode, TtlRuleConfig, prefix_problem};
pub use units::{parse_duration, parse_size};

/// Whole-file config. Sections later issues fill in (tenants, monitor, remote backends) are
/// accepted here with their documented keys so example files validate today.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub backend: BackendConfig,
    #[serde(default)]
    pub embedded: EmbeddedConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    /// Applications sharing this respgate, each in its own key namespace (`[[tenants]]`).
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// Backend memory/eviction monitoring (`[monitor]`).
    #[serde(default)]
    pub monitor: MonitorConfig,
    /// The file this was read from (SIGHUP reads it again); None without `--config`.
    #[serde(skip)]
    pub source: Option<std::path::PathBuf>,
}

/// `[monitor]`: how often every backend node's INFO is polled, and when memory use alarms.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MonitorConfig {
    /// Time between two INFO polls of every backend node ("5s").
    #[serde(default = "default_monitor_interval")]
    pub interval: String,
    /// A node whose used_memory / maxmemory exceeds this raises the eviction risk alarm.
    #[serde(default = "default_memory_warn_ratio")]
    pub memory_warn_ratio: f64,
    /// May respgate turn on `notify-keyspace-events` on the backends to attribute evictions
    /// to tenants? Off by default: it changes the backend's configuration.
    #[serde(default)]
    pub enable_keyspace_events: bool,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            interval: default_monitor_interval(),
            memory_warn_ratio: default_memory_warn_ratio(),
            enable_keyspace_events: false,
        }
    }
}

impl MonitorConfig {
    /// The validated poll interval (5 s if unparsable, which validation rules out).
    pub fn interval(&self) -> std::time::Duration {
        parse_duration(&self.interval)
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or(std::time::Duration::from_secs(5))
    }
}

fn default_monitor_interval() -> String {
    "5s".into()
}
fn default_memory_warn_ratio() -> f64 {
    0.9
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Client listener, like Redis's `bind` + `port`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Prometheus `/metrics` listener; empty string disables it.
    #[serde(default = "default_metrics_listen")]
    pub metrics_listen: String,
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
    /// Single password like Redis's `requirepass`: clients must `AUTH <password>` first.
    #[serde(default)]
    pub requirepass: Option<String>,
    /// Close clients idle this long ("0" = never), like Redis's `timeout`.
    #[serde(default = "default_zero")]
    pub timeout: String,
    /// SLOWLOG keeps commands that took at least this many microseconds inside respgate
    /// (Redis's slowlog-log-slower-than: negative turns it off, 0 logs every command).
    #[serde(default = "default_slowlog_slower_than")]
    pub slowlog_log_slower_than: i64,
    /// How many entries SLOWLOG keeps (Redis's slowlog-max-len).
    #[serde(default = "default_slowlog_max_len")]
    pub slowlog_max_len: usize,
    /// Threads running client connections (0: automatic, see [`Config::worker_threads`]).
    /// On a machine respgate shares with busy Redis servers, fewer threads than cores
    /// spend less CPU per request.
    #[serde(default)]
    pub worker_threads: usize,
    /// The tenant an unauthenticated client acts as (by name); without it, clients must AUTH
    /// once tenants are configured.
    #[serde(default)]
    pub default_tenant: Option<String>,
    /// Failed AUTH attempts one client address may make per minute before its AUTHs are
    /// refused without checking (0 = no limit). Unset: 10 when tenants are configured, no
    /// limit otherwise (single-user mode behaves as Redis).
    #[serde(default)]
    pub auth_failures_per_minute: Option<u32>,
    /// Serve clients over TLS (the listener then accepts TLS only).
    #[serde(default)]
    pub tls: Option<ServerTlsConfig>,
}

/// `[server] tls = { cert, key, client_ca }`. Paths are relative to respgate's working
/// directory, like `embedded.dir` and Redis's own `tls-*-file`s.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// PEM certificate chain respgate presents (leaf first).
    pub cert: String,
    /// PEM private key of `cert` (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// PEM CA certificates; when set, every client must present a certificate they signed.
    #[serde(default)]
    pub client_ca: Option<String>,
}

/// `[backend] tls = { ca, cert, key, server_name, insecure_skip_verify }`: TLS to Redis.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BackendTlsConfig {
    /// PEM CA certificates the backend's certificate must chain to; without it, the
    /// system's trust store (/etc/ssl/certs and the like) is used.
    #[serde(default)]
    pub ca: Option<String>,
    /// Client certificate (PEM chain) for mutual TLS; needs `key`.
    #[serde(default)]
    pub cert: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    /// Name the backend's certificate must be valid for (and the SNI sent); default: the
    /// host of the address connected to (a DNS name or an IP address).
    #[serde(default)]
    pub server_name: Option<String>,
    /// Accept any certificate the backend presents (still encrypted, but anyone in the
    /// middle can pose as the backend). For tests against throwaway servers only.
    #[serde(default)]
    pub insecure_skip_verify: bool,
}

/// `[backend] sentinel_tls`: absent means the sentinels are reached as `tls` says (TLS
/// deployments usually put sentinels behind TLS too); `false` means plain TCP to them; a
/// table gives them settings of their own.
#[derive(Debug, Clone)]
pub enum SentinelTlsConfig {
    Enabled(bool),
    Own(BackendTlsConfig),
}

// By hand rather than `#[serde(untagged)]`, whose only error is "data did not match any
// variant": a typo inside the table must still be named ("unknown field `bogus`").
impl<'de> Deserialize<'de> for SentinelTlsConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = SentinelTlsConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false or a table like backend.tls")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(SentinelTlsConfig::Enabled(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                BackendTlsConfig::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(SentinelTlsConfig::Own)
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            metrics_listen: default_metrics_listen(),
            max_clients: default_max_clients(),
            requirepass: None,
            timeout: default_zero(),
            slowlog_log_slower_than: default_slowlog_slower_than(),
            slowlog_max_len: default_slowlog_max_len(),
            worker_threads: 0,
            default_tenant: None,
            auth_failures_per_minute: None,
            tls: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendMode {
    #[default]
    Embedded,
    Standalone,
    Sentinel,
    Cluster,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    #[serde(default)]
    pub mode: BackendMode,
    /// standalone: the Redis server's host:port.
    #[serde(default)]
    pub address: Option<String>,
    /// sentinel: the sentinels' host:port (any reachable one is asked).
    #[serde(default)]
    pub sentinels: Vec<String>,
    /// cluster: where read-only commands go: "master" (default), "replica" (a replica of the
    /// slot's master; an error if it has none) or "prefer-replica" (the master if none).
    #[serde(default = "default_read_from")]
    pub read_from: String,
    /// cluster: seed nodes (host:port); the rest is discovered with CLUSTER SLOTS.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// sentinel: the master's name as the sentinels monitor it.
    #[serde(default)]
    pub master_name: Option<String>,
    /// sentinel: credentials for the sentinels themselves (if they require AUTH).
    #[serde(default)]
    pub sentinel_username: Option<String>,
    #[serde(default)]
    pub sentinel_password: Option<String>,
    /// Redis 6 ACL user respgate logs in as (AUTH username password); without it, the
    /// password alone is sent as `AUTH password`.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// How long a backend connection may take to establish (TCP + AUTH/HELLO).
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: String,
    /// How long a forwarded command may wait for its reply before the client gets an error and
    /// the backend connection is replaced ("0" = no limit). Blocking commands wait their own
    /// timeout plus this.
    #[serde(default = "default_command_timeout")]
    pub command_timeout: String,
    /// Shared (multiplexed) backend connections per protocol version; each client is served
    /// by one of them, so its pipeline stays in order.
    #[serde(default = "default_backend_connections")]
    pub connections: usize,
    /// TLS to the Redis server(s); None: plain TCP.
    #[serde(default)]
    pub tls: Option<BackendTlsConfig>,
    /// sentinel: TLS to the sentinels (see [`SentinelTlsConfig`]).
    #[serde(default)]
    pub sentinel_tls: Option<SentinelTlsConfig>,
}

impl BackendConfig {
    /// The TLS settings for connections to the sentinels, and the config key they come from.
    pub fn sentinel_tls(&self) -> Option<(&BackendTlsConfig, &'static str)> {
        match &self.sentinel_tls {
            None | Some(SentinelTlsConfig::Enabled(true)) => {
                self.tls.as_ref().map(|t| (t, "backend.tls"))
            }
            Some(SentinelTlsConfig::Enabled(false)) => None,
            Some(SentinelTlsConfig::Own(t)) => Some((t, "backend.sentinel_tls")),
        }
    }
}

impl Default for BackendConfig {
    fn default() -> Self {
        BackendConfig {
            mode: BackendMode::Embedded,
            address: None,
            sentinels: Vec::new(),
            nodes: Vec::new(),
            read_from: default_read_from(),
            master_name: None,
            sentinel_username: None,
            sentinel_password: None,
            username: None,
            password: None,
            connect_timeout: default_connect_timeout(),
            command_timeout: default_command_timeout(),
            connections: default_backend_connections(),
            tls: None,
            sentinel_tls: None,
        }
    }
}

fn default_read_from() -> String {
    "master".into()
}
fn default_connect_timeout() -> String {
    "2s".into()
}
fn default_command_timeout() -> String {
    "10s".into()
}
fn default_backend_connections() -> usize {
    2
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// "0" = no limit.
    #[serde(default = "default_zero")]
    pub maxmemory: String,
    #[serde(default = "default_policy")]
    pub maxmemory_policy: String,
    /// Number of logical databases (SELECT 0..databases-1).
    #[serde(default = "default_databases")]
    pub databases: usize,
    /// Active expiry cycles per second (Redis's `hz`).
    #[serde(default = "default_hz")]
    pub hz: u32,
    /// Persistence: log every write to `dir/appendfilename` and replay it at start.
    #[serde(default)]
    pub appendonly: bool,
    /// always | everysec | no, as Redis's appendfsync.
    #[serde(default = "default_appendfsync")]
    pub appendfsync: String,
    #[serde(default = "default_dir")]
    pub dir: String,
    #[serde(default = "default_appendfilename")]
    pub appendfilename: String,
}

impl EmbeddedConfig {
    /// Where the AOF lives.
    pub fn aof_path(&self) -> std::path::PathBuf {
        std::path::Path::new(&self.dir).join(&self.appendfilename)
    }
}

fn default_appendfsync() -> String {
    "everysec".into()
}
fn default_dir() -> String {
    ".".into()
}
fn default_appendfilename() -> String {
    "appendonly.aof".into()
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        EmbeddedConfig {
            maxmemory: default_zero(),
            maxmemory_policy: default_policy(),
            databases: default_databases(),
            hz: default_hz(),
            appendonly: false,
            appendfsync: default_appendfsync(),
            dir: default_dir(),
            appendfilename: default_appendfilename(),
        }
    }
}

/// Protocol limits; a client that breaks one gets Redis's error and is disconnected.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest bulk string a client may send (Redis's proto-max-bulk-len).
    #[serde(default = "default_max_bulk")]
    pub max_bulk_len: String,
    /// Most arguments in one command.
    #[serde(default = "default_max_args")]
    pub max_args: usize,
    /// Most unparsed bytes buffered per client (Redis's client-query-buffer-limit).
    #[serde(default = "default_max_query_buffer")]
    pub max_query_buffer: String,
    /// Most reply bytes waiting in respgate for one client before it is disconnected (the
    /// hard limit of Redis's `client-output-buffer-limit normal`; "0" = none). Redis has no
    /// limit by default; respgate has one because, when forwarding, a pipeline's replies are
    /// collected before they are written, so a client that never reads could make it hold
    /// thousands of big replies.
    #[serde(default = "default_max_output_buffer")]
    pub max_output_buffer: String,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_bulk_len: default_max_bulk(),
            max_args: default_max_args(),
            max_query_buffer: default_max_query_buffer(),
            max_output_buffer: default_max_output_buffer(),
        }
    }
}

fn default_listen() -> String {
    "127.0.0.1:6379".into()
}
fn default_metrics_listen() -> String {
    "127.0.0.1:9379".into()
}
fn default_max_clients() -> usize {
    10000
}
fn default_zero() -> String {
    "0".into()
}
fn default_slowlog_slower_than() -> i64 {
    10_000
}
fn default_slowlog_max_len() -> usize {
    128
}
fn default_policy() -> String {
    "noeviction".into()
}
fn default_databases() -> usize {
    16
}
fn default_hz() -> u32 {
    10
}
fn default_max_bulk() -> String {
    "512mb".into()
}
fn default_max_args() -> usize {
    1024 * 1024
}
fn default_max_output_buffer() -> String {
    "1gb".into()
}
fn default_max_query_buffer() -> String {
    "1gb".into()
}

/// A config problem, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: String,
        /// The offending key's dotted path, e.g. `tenants[1].prefix`.
        key: String,
        message: String,
    },
    /// A TLS setting whose file cannot be used (key like `backend.tls.ca`).
    #[error("{path}: {key}: {message}")]
    Tls {
        path: String,
        key: String,
        message: String,
    },
}

/// Redis's maxmemory policies (also the monitor's bounded `policy` label values).
pub const POLICIES: &[&str] = &[
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
];

/// Forwarding's automatic worker threads on a machine with `cores` cores.
fn forwarding_threads(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

impl Config {
    /// The runtime's worker threads: as configured, else one for the embedded engine (every
    /// command takes its one lock, as Redis runs every command on one thread: a second
    /// thread only adds lock and cache traffic between cores, measured about 10% slower
    /// pipelined) and, when forwarding, one per core but one (at least one). The core left
    /// over is for the kernel's socket work, which a proxy doubles: on a 2-core machine two
    /// threads measured 25-30% fewer unpipelined requests per second than one (the threads
    /// wake each other for every hand-off) and no more pipelined (README "Speed").
    pub fn worker_threads(&self) -> usize {
        match (self.server.worker_threads, self.backend.mode) {
            (0, BackendMode::Embedded) => 1,
            (0, _) => {
                forwarding_threads(std::thread::available_parallelism().map_or(1, usize::from))
            }
            (n, _) => n,
        }
    }

    /// Whether the runtime is tokio's current-thread scheduler rather than the multi-thread
    /// one: when forwarding on one worker thread. With one worker there is nothing to share
    /// or steal, and the current-thread scheduler skips the multi-thread one's atomics and
    /// its hand-offs between the worker and the thread that runs the accept loop: callgrind
    /// counts 7 390 instead of 8 090 instructions per unpipelined forwarded GET (1 210
    /// instead of 1 250 at -P 16). The embedded engine keeps the multi-thread runtime even
    /// on one worker: a script that runs long hands the worker to another thread from inside
    /// (`block_in_place`, `embedded::release_worker`), which needs it, so the
    /// other clients still get BUSY and SCRIPT KILL still gets through.
    pub fn current_thread_runtime(&self) -> bool {
        self.backend.mode != BackendMode::Embedded && self.worker_threads() == 1
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let mut config = Config::parse(&text, &shown)?;
        config.source = Some(path.to_path_buf());
        Ok(config)
    }

    /// Parses and validates config text; `origin` names it in errors. toml's errors carry
    /// the line, column and the offending key (e.g. "unknown field `foo`").
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
        cfg.validate(origin)?;
        Ok(cfg)
    }

    /// Re-checks values after command-line flags overrode some of them.
    pub fn revalidate(&self) -> Result<(), ConfigError> {
        self.validate("command line")
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: origin.to_string(),
            key: key.to_string(),
            message,
        };
        self.server
            .listen
            .parse::<SocketAddr>()
            .map_err(|e| invalid("server.listen", format!("{e} (want host:port)")))?;
        if !self.server.metrics_listen.is_empty() {
            self.server
                .metrics_listen
                .parse::<SocketAddr>()
                .map_err(|e| invalid("server.metrics_listen", format!("{e} (want host:port)")))?;
        }
        parse_duration(&self.server.timeout).map_err(|e| invalid("server.timeout", e))?;
        parse_size(&self.embedded.maxmemory).map_err(|e| invalid("embedded.maxmemory", e))?;
        if !POLICIES.contains(&self.embedded.maxmemory_policy.as_str()) {
            return Err(invalid(
                "embedded.maxmemory_policy",
                format!(
                    "unknown policy {:?} (one of {})",
                    self.embedded.maxmemory_policy,
                    POLICIES.join(", ")
                ),
            ));
        }
        if self.embedded.databases == 0 || self.embedded.databases > 1024 {
            return Err(invalid("embedded.databases", "must be 1..=1024".into()));
        }
        if self.embedded.hz == 0 || self.embedded.hz > 500 {
            return Err(invalid("embedded.hz", "must be 1..=500".into()));
        }
        parse_size(&self.limits.max_bulk_len).map_err(|e| invalid("limits.max_bulk_len", e))?;
        parse_size(&self.limits.max_query_buffer)
            .map_err(|e| invalid("limits.max_query_buffer", e))?;
        parse_size(&self.limits.max_output_buffer)
            .map_err(|e| invalid("limits.max_output_buffer", e))?;
        if self.limits.max_args == 0 {
            return Err(invalid("limits.max_args", "must be at least 1".into()));
        }
        match self.backend.mode {
            BackendMode::Embedded => {}
            BackendMode::Standalone => {
                let addr = self.backend.address.as_deref().unwrap_or("");
                if addr.is_empty() {
                    return Err(invalid(
                        "backend.address",
                        "required when mode = \"standalone\" (host:port)".into(),
                    ));
                }
                if !addr.contains(':') {
                    return Err(invalid(
                        "backend.address",
                        format!("{addr:?}: want host:port"),
                    ));
                }
            }
            BackendMode::Sentinel => {
                if self.backend.sentinels.is_empty() {
                    return Err(invalid(
                        "backend.sentinels",
                        "required when mode = \"sentinel\" (a list of host:port)".into(),
                    ));
                }
                if let Some(bad) = self.backend.sentinels.iter().find(|a| !a.contains(':')) {
                    return Err(invalid(
                        "backend.sentinels",
                        format!("{bad:?}: want host:port"),
                    ));
                }
                if self.backend.master_name.as_deref().unwrap_or("").is_empty() {
                    return Err(invalid(
                        "backend.master_name",
                        "required when mode = \"sentinel\"".into(),
                    ));
                }
            }
            BackendMode::Cluster => {
                if self.backend.nodes.is_empty() {
                    return Err(invalid(
                        "backend.nodes",
                        "required when mode = \"cluster\" (seed nodes, host:port)".into(),
                    ));
                }
                if let Some(bad) = self.backend.nodes.iter().find(|a| !a.contains(':')) {
                    return Err(invalid("backend.nodes", format!("{bad:?}: want host:port")));
                }
            }
        }
        if !["master", "replica", "prefer-replica"].contains(&self.backend.read_from.as_str()) {
            return Err(invalid(
                "backend.read_from",
                format!(
                    "{:?}: one of master, replica, prefer-replica",
                    self.backend.read_from
                ),
            ));
        }
        if self.backend.read_from != "master"
            && !matches!(
                self.backend.mode,
                BackendMode::Cluster | BackendMode::Sentinel
            )
        {
            return Err(invalid(
                "backend.read_from",
                "reading from replicas needs mode = \"sentinel\" or \"cluster\" (a standalone server has no replicas respgate knows of)".into(),
            ));
        }
        parse_duration(&self.backend.connect_timeout)
            .map_err(|e| invalid("backend.connect_timeout", e))?;
        parse_duration(&self.backend.command_timeout)
            .map_err(|e| invalid("backend.command_timeout", e))?;
        if self.backend.connections == 0 || self.backend.connections > 256 {
            return Err(invalid("backend.connections", "must be 1..=256".into()));
        }
        match parse_duration(&self.monitor.interval) {
            Ok(d) if d.is_zero() => {
                return Err(invalid("monitor.interval", "must be more than 0".into()));
            }
            Ok(_) => {}
            Err(e) => return Err(invalid("monitor.interval", e)),
        }
        let ratio = self.monitor.memory_warn_ratio;
        // NaN fails both comparisons, so it is refused too.
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(invalid(
                "monitor.memory_warn_ratio",
                format!("{ratio}: must be in (0, 1]"),
            ));
        }
        if let Some(i) = self
            .tenants
            .iter()
            .position(|t| t.backend_username.is_some())
            && self.backend.mode == BackendMode::Embedded
        {
            // Scripts are confined by the engine already, and a setting that silently does
            // nothing would be worse than a refusal.
            return Err(invalid(
                &format!("tenants[{i}].backend_username"),
                "is for backend modes standalone, sentinel and cluster only".into(),
            ));
        }
        tenants::validate(&self.tenants, &self.server)
            .map_err(|(key, message)| invalid(&key, message))?;
        if let Some(SentinelTlsConfig::Enabled(true)) = self.backend.sentinel_tls
            && self.backend.tls.is_none()
        {
            return Err(invalid(
                "backend.sentinel_tls",
                "true means \"as backend.tls\", but backend.tls is not set".into(),
            ));
        }
        // The certificate files themselves are read by `crate::tls::TlsSetup::load`, which
        // names the key of a file it cannot use.
        Ok(())
    }

    /// The effective `server.auth_failures_per_minute` (0 = no limit).
    pub fn auth_failures_per_minute(&self) -> u32 {
        self.server
            .auth_failures_per_minute
            .unwrap_or(if self.tenants.is_empty() { 0 } else { 10 })
    }

    /// `limits.max_output_buffer` in bytes (0 = none).
    pub fn max_output_buffer(&self) -> usize {
        parse_size(&self.limits.max_output_buffer)
            .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Parser limits in bytes, from the validated strings.
    pub fn parser_limits(&self) -> crate::protocol::ParserLimits {
        let mut limits = crate::protocol::ParserLimits::default();
        if let Ok(n) = parse_size(&self.limits.max_bulk_len) {
            limits.max_bulk_len = n as usize;
        }
        if let Ok(n) = parse_size(&self.limits.max_query_buffer) {
            limits.max_query_buffer = n as usize;
        }
        limits.max_args = self.limits.max_args;
        limits
    }
}

#[cfg(test)]
mod tests;
