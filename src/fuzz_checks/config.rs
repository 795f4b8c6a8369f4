//! Fuzz check of the config parser: any text is `Ok` or `Err`, never a panic, and a config
//! that validates also builds everything respgate builds from it at start (tenants with their
//! ACLs and TTL rules, parser limits, durations). Half the inputs are raw text; the other
//! half assemble a document from the real section and key names, so validation is reached.

use super::Input;
use crate::config::{Config, parse_duration, parse_size};
use crate::policy::Tenants;

const SECTIONS: &[&str] = &[
    "[server]",
    "[backend]",
    "[backend.tls]",
    "[embedded]",
    "[limits]",
    "[monitor]",
    "[[tenants]]",
    "[[tenants.ttl]]",
];

const KEYS: &[&str] = &[
    "listen",
    "metrics_listen",
    "max_clients",
    "requirepass",
    "timeout",
    "default_tenant",
    "auth_failures_per_minute",
    "mode",
    "address",
    "sentinels",
    "master_name",
    "nodes",
    "read_from",
    "connect_timeout",
    "command_timeout",
    "connections",
    "maxmemory",
    "maxmemory_policy",
    "databases",
    "hz",
    "appendonly",
    "appendfsync",
    "max_bulk_len",
    "max_args",
    "max_query_buffer",
    "max_output_buffer",
    "interval",
    "memory_warn_ratio",
    "name",
    "username",
    "password",
    "password_sha256",
    "prefix",
    "durable",
    "deny",
    "allow",
    "read_only",
    "pattern",
    "default_ttl",
    "max_ttl",
    "require_ttl",
    "ca",
    "server_name",
    "insecure_skip_verify",
    "tls_identity",
    "sentinel_tls",
];

const VALUES: &[&str] = &[
    "\"127.0.0.1:0\"",
    "\"0\"",
    "\"10m\"",
    "\"1h\"",
    "\"256mb\"",
    "\"99999999999999999999d\"",
    "\"18446744073709551615gb\"",
    "\"\"",
    "\"a:\"",
    "\"b:\"",
    "\"a\"",
    "\"_\"",
    "\"__keyspace@0__:\"",
    "\"tile:*\"",
    "\"[\"",
    "\"embedded\"",
    "\"standalone\"",
    "\"sentinel\"",
    "\"cluster\"",
    "\"clamp\"",
    "\"reject\"",
    "\"audit\"",
    "\"noeviction\"",
    "\"allkeys-lru\"",
    "\"replica\"",
    "0",
    "1",
    "-1",
    "16",
    "1024",
    "1025",
    "18446744073709551615",
    "9223372036854775807",
    "0.5",
    "nan",
    "inf",
    "-0.0",
    "true",
    "false",
    "[]",
    "[\"@dangerous\"]",
    "[\"+get\", \"-@all\", \"@\"]",
    "[\"h:1\"]",
    "[\"\"]",
    "{}",
    "{ ca = \"x\" }",
    "\"{a}\"",
    "\"p}\"",
];

fn document(input: &mut Input) -> String {
    let mut text = String::new();
    let lines = input.below(24);
    for _ in 0..lines {
        if input.below(4) == 0 {
            text.push_str(input.pick(SECTIONS));
        } else {
            text.push_str(input.pick(KEYS));
            text.push_str(" = ");
            text.push_str(input.pick(VALUES));
        }
        text.push('\n');
    }
    text
}

pub fn config(data: &[u8]) {
    let mut input = Input::new(data);
    let text = if input.bool() {
        document(&mut input)
    } else {
        String::from_utf8_lossy(input.rest()).into_owned()
    };
    let Ok(cfg) = Config::parse(&text, "fuzz") else {
        return;
    };
    cfg.revalidate().expect("a loaded config revalidates");
    let _ = cfg.parser_limits();
    let _ = cfg.auth_failures_per_minute();
    let _ = cfg.monitor.interval();
    for d in [
        &cfg.server.timeout,
        &cfg.backend.connect_timeout,
        &cfg.backend.command_timeout,
    ] {
        parse_duration(d).expect("validated duration");
    }
    parse_size(&cfg.embedded.maxmemory).expect("validated size");
    if let Err(e) = Tenants::from_config(&cfg) {
        panic!("validated config, but its tenants do not build: {e}\n{text}");
    }
}
