//! CONFIG GET / SET / RESETSTAT / REWRITE over the server's parameter set.

use bytes::Bytes;

use crate::protocol::{Reply, errors};
use crate::server::session::Session;

pub fn config(s: &mut Session, argv: &[Bytes]) -> Reply {
    let sub = argv[1].to_ascii_lowercase();
    match sub.as_slice() {
        b"get" => {
            let patterns: Vec<&[u8]> = argv[2..].iter().map(|b| b.as_ref()).collect();
            let pairs = s.shared.params.read().get(&patterns);
            Reply::Map(
                pairs
                    .into_iter()
                    .map(|(k, v)| (Reply::bulk_str(k), Reply::bulk(v.into_bytes())))
                    .collect(),
            )
        }
        b"set" => {
            if argv.len() < 4 || !argv.len().is_multiple_of(2) {
                return Reply::err(errors::wrong_arity("config|set"));
            }
            // All or nothing, like Redis 7: check every pair before applying any.
            let mut accepted = Vec::new();
            {
                let params = s.shared.params.read();
                for pair in argv[2..].chunks(2) {
                    match params.check(&pair[0], &pair[1]) {
                        Ok(kv) => {
                            if accepted.iter().any(|(n, _)| *n == kv.0) {
                                return Reply::err(format!(
                                    "ERR CONFIG SET failed (possibly related to argument '{}') - duplicate parameter",
                                    kv.0
                                ));
                            }
                            accepted.push(kv)
                        }
                        Err(e) => return Reply::err(errors::sanitize(e.to_string())),
                    }
                }
            }
            let mut params = s.shared.params.write();
            for (name, value) in accepted {
                s.shared.engine.apply_config(name, &value);
                s.shared.slowlog.configure(name, &value);
                if name == "client-output-buffer-limit" {
                    s.shared.pubsub.set_output_limit(&value);
                    if let Some(n) = crate::server::pubsub::hard_output_limit(&value, "normal") {
                        s.shared
                            .normal_output_limit
                            .store(n, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                if name == "appendonly" {
                    let cfg = &s.shared.config.embedded;
                    let fsync = crate::backend::embedded::aof::Fsync::parse(&cfg.appendfsync);
                    if let Err(e) =
                        s.shared
                            .engine
                            .set_appendonly(value == "yes", &cfg.aof_path(), fsync)
                    {
                        tracing::error!(error = %e, "CONFIG SET appendonly failed");
                        return Reply::err(format!("ERR Background AOF rewrite failed: {e}"));
                    }
                }
                params.apply(name, value);
            }
            Reply::ok()
        }
        b"resetstat" => {
            s.shared.cmdstats.reset();
            s.shared.stats.reset();
            s.shared.engine.reset_stats();
            Reply::ok()
        }
        b"rewrite" => Reply::err("ERR The server is running without a config file"),
        b"help" => Reply::Array(
            [
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "REWRITE",
                "    Rewrite the configuration file.",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|l| Reply::Status(l.to_string()))
            .collect(),
        ),
        _ => Reply::err(errors::unknown_subcommand(&argv[1], "config")),
    }
}
