//! A throwaway redis-server for tests: free port, no persistence, killed (by pid) on drop.

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::resp::{Conn, Value, read_value};

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

    /// A redis-server that speaks TLS only (`--port 0 --tls-port <free>`), with the given
    /// certificate, key and CA files (`--tls-auth-clients no` unless `extra` says otherwise);
    /// [`RedisServer::port`] is the TLS port. Ready once PING answers over TLS, made with
    /// `client` (which must trust the server's CA, and carry a client certificate if the
    /// server requires one).
    pub fn start_tls(
        cert: &str,
        key: &str,
        ca: &str,
        client: Arc<rustls::ClientConfig>,
        extra: &[&str],
    ) -> RedisServer {
        for _ in 0..10 {
            let port = free_port();
            let port_text = port.to_string();
            let mut args = vec![
                "--port",
                "0",
                "--tls-port",
                &port_text,
                "--tls-cert-file",
                cert,
                "--tls-key-file",
                key,
                "--tls-ca-cert-file",
                ca,
                "--tls-auth-clients",
                "no",
            ];
            args.extend_from_slice(extra);
            let ready = |child: &mut Child, port: u16| wait_ready_tls(child, port, &client);
            if let Some(server) = Self::try_start_inner(port, &args, &ready) {
                return server;
            }
        }
        panic!("could not start a TLS redis-server");
    }

    /// A server on `port` (e.g. restarting one a test stopped); None if it cannot bind.
    pub fn try_start_on(port: u16, extra: &[&str]) -> Option<RedisServer> {
        Self::try_start_inner(port, extra, &wait_ready)
    }

    fn try_start_inner(
        port: u16,
        extra: &[&str],
        ready: &dyn Fn(&mut Child, u16) -> bool,
    ) -> Option<RedisServer> {
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
            if ready(&mut child, port) {
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

/// [`wait_ready`] over TLS.
fn wait_ready_tls(child: &mut Child, port: u16, client: &Arc<rustls::ClientConfig>) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        let connected = TcpStream::connect(("127.0.0.1", port))
            .ok()
            .and_then(|tcp| {
                tcp.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                let name = rustls_pki_types::ServerName::try_from("127.0.0.1").ok()?;
                let tls = rustls::ClientConnection::new(client.clone(), name).ok()?;
                Some(rustls::StreamOwned::new(tls, tcp))
            });
        if let Some(stream) = connected
            && let Some(ready) = probe(stream, child.id(), deadline)
        {
            return ready;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Asks the server on `stream` whether it is the process `pid` and answers PING:
/// Some(true) when ready, Some(false) when it never will be, None when it is not ours (yet).
fn probe<S: Read + Write>(stream: S, pid: u32, deadline: Instant) -> Option<bool> {
    let mut c = BufReader::new(stream);
    c.get_mut()
        .write_all(&Conn::encode(&[b"INFO", b"server"]))
        .ok()?;
    let ours = format!("process_id:{pid}\r\n");
    let info = read_value(&mut c).ok()?;
    if !info
        .as_bytes()
        .is_some_and(|b| String::from_utf8_lossy(b).contains(&ours))
    {
        return None;
    }
    while Instant::now() < deadline {
        if c.get_mut().write_all(&Conn::encode(&[b"PING"])).is_err() {
            return Some(false);
        }
        match read_value(&mut c) {
            Ok(Value::Simple(_)) => return Some(true),
            Ok(_) => std::thread::sleep(Duration::from_millis(10)),
            Err(_) => return Some(false),
        }
    }
    Some(false)
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
