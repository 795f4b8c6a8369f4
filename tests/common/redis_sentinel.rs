//! A Sentinel setup for tests: one master, one replica and three sentinels (quorum 2) on free
//! loopback ports, each in its own temp dir; stopped by pid on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::redis_server::{RedisServer, free_port};
use super::resp::{Conn, Value};

pub const MASTER_NAME: &str = "mymaster";

pub struct SentinelSetup {
    pub master: Option<RedisServer>,
    pub replica: Option<RedisServer>,
    sentinels: Vec<(u16, Child)>,
    dir: PathBuf,
}

impl SentinelSetup {
    /// Starts everything and waits until every sentinel knows the master and its replica.
    pub fn start() -> SentinelSetup {
        Self::start_with(&[])
    }

    /// Like [`SentinelSetup::start`], with extra arguments for the master.
    pub fn start_with(master_args: &[&str]) -> SentinelSetup {
        Self::start_opts(master_args, 1000)
    }

    /// A setup whose sentinels do not fail over by themselves (a master must be silent for a
    /// minute): for tests that are not about failover, so a busy machine cannot trigger one.
    pub fn start_stable() -> SentinelSetup {
        Self::start_opts(&[], 60_000)
    }

    /// `down_after_ms`: how long the master may be silent before the sentinels act.
    pub fn start_opts(master_args: &[&str], down_after_ms: u64) -> SentinelSetup {
        let master = RedisServer::start_with(master_args);
        let replica =
            RedisServer::start_with(&["--replicaof", "127.0.0.1", &master.port.to_string()]);
        let dir = std::env::temp_dir().join(format!(
            "respgate-sentinel-{}-{}",
            std::process::id(),
            master.port
        ));
        std::fs::create_dir_all(&dir).expect("sentinel temp dir");
        let mut setup = SentinelSetup {
            master: Some(master),
            replica: Some(replica),
            sentinels: Vec::new(),
            dir,
        };
        let master_port = setup.master.as_ref().map(|m| m.port).unwrap_or(0);
        for i in 0..3 {
            let port = free_port();
            let conf = setup.dir.join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                     sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} 2\n\
                     sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}\n\
                     sentinel failover-timeout {MASTER_NAME} 5000\n\
                     sentinel parallel-syncs {MASTER_NAME} 1\n",
                    dir = setup.dir.display()
                ),
            )
            .expect("writing sentinel.conf");
            let child = Command::new("redis-server")
                .arg(&conf)
                .arg("--sentinel")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawning redis-server --sentinel");
            setup.sentinels.push((port, child));
        }
        setup.wait_ready();
        setup
    }

    /// respgate following this setup's master through its sentinels, with extra
    /// `[backend]` keys in `backend_toml`.
    pub fn respgate(&self, backend_toml: &str) -> super::respgate::Respgate {
        super::respgate::Respgate::sentinel(&self.sentinel_addrs(), MASTER_NAME, backend_toml)
    }

    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|(p, _)| format!("127.0.0.1:{p}"))
            .collect()
    }

    /// What the first answering sentinel says the master is.
    pub fn master_addr(&self) -> Option<String> {
        for addr in self.sentinel_addrs() {
            if let Some(mut c) = Conn::try_connect(&addr) {
                c.send(&[
                    b"SENTINEL",
                    b"get-master-addr-by-name",
                    MASTER_NAME.as_bytes(),
                ]);
                if let Ok(Value::Array(v)) = c.try_read()
                    && let [Value::Bulk(h), Value::Bulk(p)] = v.as_slice()
                {
                    return Some(format!(
                        "{}:{}",
                        String::from_utf8_lossy(h),
                        String::from_utf8_lossy(p)
                    ));
                }
            }
        }
        None
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        for addr in self.sentinel_addrs() {
            loop {
                assert!(
                    Instant::now() < deadline,
                    "sentinel {addr} never saw the replica and its peers"
                );
                if let Some(mut c) = Conn::try_connect(&addr) {
                    c.send(&[b"SENTINEL", b"master", MASTER_NAME.as_bytes()]);
                    if let Ok(Value::Array(fields)) = c.try_read() {
                        let get = |name: &str| {
                            fields
                                .chunks(2)
                                .find(|kv| kv[0].as_bytes() == Some(name.as_bytes()))
                                .and_then(|kv| {
                                    kv[1]
                                        .as_bytes()
                                        .map(|b| String::from_utf8_lossy(b).into_owned())
                                })
                        };
                        if get("num-slaves").as_deref() == Some("1")
                            && get("num-other-sentinels").as_deref() == Some("2")
                        {
                            break;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for SentinelSetup {
    fn drop(&mut self) {
        for (_, child) in &mut self.sentinels {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
