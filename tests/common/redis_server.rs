//! A throwaway redis-server for tests: free port, no persistence, killed (by pid) on drop.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::resp::{Conn, Value};

pub struct RedisServer {
    pub port: u16,
    child: Child,
    dir: std::path::PathBuf,
}

impl RedisServer {
    /// Starts redis-server on a free port and waits until it answers PING.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Like [`RedisServer::start`], with extra arguments (later ones override defaults).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        // Another process may grab the port between our probe and redis-server's bind,
        // so a server that exits early is retried on a new port.
        for _ in 0..10 {
            if let Some(server) = Self::try_start_on(free_port(), extra) {
                return server;
            }
        }
        panic!("could not start redis-server");
    }

    /// A server on `port` (e.g. restarting one a test stopped); None if it cannot bind.
    pub fn try_start_on(port: u16, extra: &[&str]) -> Option<RedisServer> {
        {
            // Each server works in a directory of its own: a replica writes the RDB it
            // receives there, and a server started in a directory holding a dump.rdb would
            // load another test's data.
            let dir =
                std::env::temp_dir().join(format!("respgate-redis-{}-{port}", std::process::id()));
            let _ = std::fs::create_dir_all(&dir);
            let mut child = match Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    &dir.to_string_lossy(),
                ])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    panic!("redis-server not found: run scripts/test.sh, which installs it")
                }
                Err(e) => panic!("spawning redis-server: {e}"),
            };
            if wait_ready(&mut child, port) {
                return Some(RedisServer { port, child, dir });
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        None
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server (by pid) and keeps its port bound by a plain listener, so no other
    /// test's server can get the port while sentinels still think a master lives there (they
    /// would turn that unrelated server into a replica of theirs).
    pub fn kill_holding_port(mut self) -> Option<std::net::TcpListener> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.port;
        let _ = std::fs::remove_dir_all(&self.dir);
        std::mem::forget(self);
        std::net::TcpListener::bind(("127.0.0.1", port)).ok()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a probe port");
    l.local_addr().expect("probe port address").port()
}

/// True once PING answers PONG; false if the server exits or stays silent for 10 s.
fn wait_ready(child: &mut Child, port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        // Never panic here: the child is not yet owned by a RedisServer that would stop it.
        if let Some(mut c) = Conn::try_connect(&format!("127.0.0.1:{port}")) {
            // It must be our server answering, not another test's that holds the port (then
            // ours fails to bind and exits).
            c.send(&[b"INFO", b"server"]);
            let ours = format!("process_id:{}\r\n", child.id());
            if c.try_read().is_ok_and(|v| {
                v.as_bytes()
                    .is_some_and(|b| String::from_utf8_lossy(b).contains(&ours))
            }) {
                // INFO answers while a dataset is loading; PING answers -LOADING until done.
                while Instant::now() < deadline {
                    c.send(&[b"PING"]);
                    match c.try_read() {
                        Ok(Value::Simple(_)) => return true,
                        Ok(_) => std::thread::sleep(Duration::from_millis(10)),
                        Err(_) => return false,
                    }
                }
                return false;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
