//! Starts the respgate binary on free loopback ports for a test, and stops it (by pid) on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct Respgate {
    child: Child,
    pub addr: String,
    pub metrics_addr: String,
    /// Log lines respgate printed after it started (stderr), for tests that check logs.
    pub logs: mpsc::Receiver<String>,
}

impl Respgate {
    /// respgate with no config file (embedded engine), on port 0.
    pub fn start() -> Respgate {
        Self::start_with(&[])
    }

    /// respgate with extra arguments (e.g. `--config FILE`).
    pub fn start_with(extra: &[&str]) -> Respgate {
        Self::start_args(extra, true)
    }

    /// Starts respgate; when `with_ports` is set, listen/metrics flags pick free ports.
    pub fn start_args(extra: &[&str], with_ports: bool) -> Respgate {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_respgate"));
        if with_ports {
            cmd.args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"]);
        }
        cmd.args(extra)
            .args(["--log-level", "info"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawning respgate");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Keep draining so respgate never blocks on a full pipe.
                    continue;
                }
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.split("respgate listening on ").nth(1) {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let metrics_addr = rest
                            .split("http://")
                            .nth(1)
                            .and_then(|m| m.split('/').next())
                            .unwrap_or("")
                            .to_string();
                        return Respgate {
                            child,
                            addr,
                            metrics_addr,
                            logs: rx,
                        };
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("respgate did not report its listen address in time");
                }
            }
        }
    }

    /// respgate forwarding to the Redis server at `backend` (standalone mode), with extra
    /// `[backend]` keys in `backend_toml`.
    pub fn standalone(backend: &str, backend_toml: &str) -> Respgate {
        let path = temp_config(&format!(
            "[backend]\nmode = \"standalone\"\naddress = \"{backend}\"\n{backend_toml}\n"
        ));
        Self::start_with(&["--config", &path])
    }

    /// respgate following the master named `master_name` through `sentinels`.
    pub fn sentinel(sentinels: &[String], master_name: &str, backend_toml: &str) -> Respgate {
        let list: Vec<String> = sentinels.iter().map(|s| format!("\"{s}\"")).collect();
        let path = temp_config(&format!(
            "[backend]\nmode = \"sentinel\"\nsentinels = [{}]\nmaster_name = \"{master_name}\"\n{backend_toml}\n",
            list.join(", ")
        ));
        Self::start_with(&["--config", &path])
    }

    /// respgate in front of a Redis Cluster, seeded with `nodes`.
    pub fn cluster(nodes: &[String], backend_toml: &str) -> Respgate {
        let list: Vec<String> = nodes.iter().map(|s| format!("\"{s}\"")).collect();
        let path = temp_config(&format!(
            "[backend]\nmode = \"cluster\"\nnodes = [{}]\n{backend_toml}\n",
            list.join(", ")
        ));
        Self::start_with(&["--config", &path])
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().expect("waiting for respgate");
        std::mem::forget(self);
        status
    }

    /// Waits up to `within` for the process to exit by itself; its status, or None.
    pub fn wait_exit(&mut self, within: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }

    /// Has the process exited (crashed)?
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Respgate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            // A failing test shows what respgate logged last (tests that read `logs`
            // themselves have taken their lines already). The reader ends at the pipe's EOF.
            let mut lines = Vec::new();
            while let Ok(line) = self.logs.recv_timeout(Duration::from_millis(500)) {
                lines.push(line);
            }
            let shown = lines.len().min(80);
            eprintln!("--- respgate {}: its last {shown} log lines ---", self.addr);
            for line in &lines[lines.len() - shown..] {
                eprintln!("{line}");
            }
        }
    }
}

/// Writes a config file for one test (unique name, in the temp dir) and returns its path.
pub fn temp_config(text: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let path = std::env::temp_dir().join(format!(
        "respgate-test-{}-{}.toml",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, text).expect("writing a test config");
    path.to_string_lossy().into_owned()
}
