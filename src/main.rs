//! The `respgate` command line: parse flags, load config, set up logging, run the server.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use respgate::config::Config;

/// jemalloc, as Redis itself uses, instead of the system allocator: the embedded engine
/// allocates per key, value and list element, and with glibc's malloc pipelined LPUSH ran
/// 0.87-0.98x Redis against 1.06-1.09x with jemalloc (split placement, same run), and 1M keys
/// took 1.18x Redis's RSS against 1.06x (README "Speed"). Binary only: the library (and the
/// fuzz targets, which need the sanitizers' allocator) keep the system one.
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// respgate — a Redis-protocol proxy. With no arguments it serves Redis clients on
/// 127.0.0.1:6379 from its embedded in-memory engine (nothing else to install) and exports
/// Prometheus metrics on http://127.0.0.1:9379/metrics.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// TOML config file (see config/embedded.toml for every key, documented).
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to serve Redis clients on (overrides server.listen), e.g. 127.0.0.1:6380.
    #[arg(long, value_name = "HOST:PORT")]
    listen: Option<String>,
    /// Address for Prometheus /metrics (overrides server.metrics_listen); "" disables it.
    #[arg(long, value_name = "HOST:PORT")]
    metrics_listen: Option<String>,
    /// Log level or tracing filter (error, warn, info, debug, trace). RUST_LOG also works.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate a config file and exit: prints "ok" or the bad key and its line.
    CheckConfig {
        /// The TOML file to check.
        file: PathBuf,
    },
    /// Print a running respgate's status: mode, backend nodes and roles, memory and
    /// evictions per node, tenants, eviction risk alarms (from its metrics listener).
    Status {
        /// respgate's metrics listener; default: server.metrics_listen of --config, else
        /// 127.0.0.1:9379.
        #[arg(long, value_name = "HOST:PORT")]
        metrics_addr: Option<String>,
        /// Print the raw JSON of GET /status instead of the summary.
        #[arg(long)]
        json: bool,
    },
    /// Send PING to a respgate (or any Redis) and exit 0 if it answers PONG, or NOAUTH
    /// (alive, wants a login); for container health checks. Plain TCP only.
    Ping {
        /// Where to connect; default 127.0.0.1:6379.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:6379")]
        addr: String,
    },
}

fn main() -> ExitCode {
    #[cfg(not(target_env = "msvc"))]
    respgate::command::info::set_mem_allocator("jemalloc");
    let cli = Cli::parse();
    if let Some(Command::CheckConfig { file }) = &cli.command {
        let shown = file.display().to_string();
        let loaded = Config::load(file).and_then(|c| {
            respgate::tls::TlsSetup::load(&c, &shown)?;
            Ok(c)
        });
        return match loaded {
            Ok(_) => {
                println!("{}: ok", file.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(2)
            }
        };
    }
    if let Some(Command::Ping { addr }) = &cli.command {
        return ping(addr);
    }
    if let Some(Command::Status { metrics_addr, json }) = &cli.command {
        let addr = match metrics_addr {
            Some(a) => a.clone(),
            None => match &cli.config {
                Some(path) => match Config::load(path) {
                    Ok(c) => c.server.metrics_listen,
                    Err(e) => {
                        eprintln!("respgate: {e}");
                        return ExitCode::from(2);
                    }
                },
                None => respgate::config::ServerConfig::default().metrics_listen,
            },
        };
        return status(&addr, *json);
    }
    init_logging(cli.log_level.as_deref());
    let mut config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("respgate: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if let Some(l) = cli.listen {
        config.server.listen = l;
    }
    if let Some(m) = cli.metrics_listen {
        config.server.metrics_listen = m;
    }
    // Flags bypass the file's validation; re-check the merged result.
    if let Err(e) = config.revalidate() {
        eprintln!("respgate: {e}");
        return ExitCode::from(2);
    }
    // Certificates and keys are read once, here: a bad file stops respgate before it
    // listens, naming the config key.
    let origin = cli
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "config".into());
    let tls = match respgate::tls::TlsSetup::load(&config, &origin) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("respgate: {e}");
            return ExitCode::from(2);
        }
    };

    let mut builder = if config.current_thread_runtime() {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut multi = tokio::runtime::Builder::new_multi_thread();
        multi.worker_threads(config.worker_threads());
        multi
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("respgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let bound = match respgate::server::bind_with_tls(config, tls).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("respgate: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = bound
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let metrics = bound
            .metrics_addr()
            .map(|a| format!("http://{a}/metrics"))
            .unwrap_or_else(|| "disabled".into());
        let mode = bound.backend_description();
        tracing::info!("respgate listening on {addr} ({mode}), metrics {metrics}");
        match respgate::server::serve(bound).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("respgate: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// `respgate status`: GET /status from the metrics listener and print it.
fn status(addr: &str, json: bool) -> ExitCode {
    let body = match http_get(addr, "/status") {
        Ok(b) => b,
        Err(e) => {
            eprintln!("respgate status: cannot read http://{addr}/status: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        println!("{body}");
        return ExitCode::SUCCESS;
    }
    match serde_json::from_str::<respgate::monitor::status::Status>(&body) {
        Ok(s) => {
            print!("{}", respgate::monitor::status::render_text(&s));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("respgate status: http://{addr}/status did not answer a status: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A minimal HTTP/1.1 GET (the metrics listener closes after one response).
fn http_get(addr: &str, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    use std::time::Duration;
    let timeout = Duration::from_secs(5);
    let sock = addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or_else(|| format!("{addr}: no address"))?;
    let mut s = std::net::TcpStream::connect_timeout(&sock, timeout).map_err(|e| e.to_string())?;
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or("incomplete HTTP response")?;
    let status_line = head.lines().next().unwrap_or("");
    if !status_line.contains(" 200 ") {
        return Err(format!("HTTP {status_line}"));
    }
    Ok(body.to_string())
}

fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::try_new(l),
        None => EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new("info")),
    }
    .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// `respgate ping`: one PING, two seconds at most.
fn ping(addr: &str) -> ExitCode {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    use std::time::Duration;
    let limit = Duration::from_secs(2);
    let answer = (|| -> std::io::Result<Vec<u8>> {
        let target = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("address did not resolve"))?;
        let mut s = std::net::TcpStream::connect_timeout(&target, limit)?;
        s.set_read_timeout(Some(limit))?;
        s.set_write_timeout(Some(limit))?;
        s.write_all(b"*1\r\n$4\r\nPING\r\n")?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        Ok(buf[..n].to_vec())
    })();
    match answer {
        Ok(reply) if reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH") => {
            println!("{addr}: {}", String::from_utf8_lossy(&reply).trim_end());
            ExitCode::SUCCESS
        }
        Ok(reply) => {
            eprintln!(
                "{addr}: unexpected reply {:?}",
                String::from_utf8_lossy(&reply)
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{addr}: {e}");
            ExitCode::from(1)
        }
    }
}
