//! The command line: defaults, port conflicts, check-config, graceful SIGTERM, /metrics.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::resp::{Conn, Value};
use common::respgate::Respgate;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_respgate"))
}

#[test]
fn port_taken_gives_one_line_error_and_nonzero_exit() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = bin()
        .args(["--listen", &addr, "--metrics-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("cannot listen"))
        .unwrap_or("");
    assert!(line.contains(&addr), "stderr: {err}");
    assert!(line.contains("in use"), "stderr: {err}");
}

#[test]
fn check_config_names_bad_key_and_line() {
    let dir = std::env::temp_dir().join(format!("respgate-cc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[server]\nlisten = \"127.0.0.1:7000\"\n\n[embedded]\nmaxmemroy = \"1gb\"\n",
    )
    .unwrap();
    let out = bin()
        .args(["check-config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("maxmemroy") && err.contains("line 5"), "{err}");

    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/embedded.toml");
    let out = bin().args(["check-config", example]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_explains_itself() {
    let out = bin().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("embedded") && text.contains("--config") && text.contains("check-config"),
        "{text}"
    );
}

#[test]
fn sigterm_finishes_in_flight_and_exits_zero() {
    let gate = Respgate::start();
    let mut c = Conn::connect(&gate.addr);
    // A pipeline already sent must be answered in full before the connection closes.
    let mut batch = Vec::new();
    for i in 0..2000 {
        batch.extend(Conn::encode(&[b"INCR".as_slice(), b"n"]));
        let _ = i;
    }
    c.send_raw(&batch).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let reader = std::thread::spawn(move || {
        let mut last = Value::Null;
        for _ in 0..2000 {
            last = c.read();
        }
        (last, c.is_closed())
    });
    let status = gate.terminate();
    assert!(status.success(), "exit status {status:?}");
    let (last, closed) = reader.join().unwrap();
    assert_eq!(last, Value::Int(2000));
    assert!(closed);
}

/// On SIGTERM a client blocked forever gets its timeout reply and an idle client is closed;
/// respgate exits at once (not after its 10 s grace period).
#[test]
fn sigterm_answers_blocked_and_closes_idle_clients() {
    let gate = Respgate::start();
    let mut blocked = Conn::connect(&gate.addr);
    let mut idle = Conn::connect(&gate.addr);
    assert_eq!(idle.cmd_str("PING"), Value::Simple("PONG".into()));
    blocked.send(&[b"BLPOP".as_slice(), b"nothing", b"0"]);
    std::thread::sleep(Duration::from_millis(100));
    let started = std::time::Instant::now();
    let status = gate.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(blocked.read(), Value::NullArray);
    assert!(blocked.is_closed());
    assert!(idle.is_closed());
}

#[test]
fn metrics_endpoint_counts_connections_and_commands() {
    let gate = Respgate::start();
    let mut c = Conn::connect(&gate.addr);
    c.cmd_str("SET a 1");
    c.cmd_str("GET a");
    c.cmd_str("GET");
    let mut s = TcpStream::connect(&gate.metrics_addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(
        body.contains("respgate_connections_accepted_total 1"),
        "{body}"
    );
    assert!(body.contains("respgate_connected_clients 1"), "{body}");
    assert!(
        body.contains("respgate_commands_total{command=\"get\",tenant=\"\",result=\"ok\"} 1"),
        "{body}"
    );
    assert!(
        // Refused for its arity: Redis's ERR class.
        body.contains("respgate_commands_total{command=\"get\",tenant=\"\",result=\"err\"} 1"),
        "{body}"
    );
}

#[test]
fn ping_is_a_health_check() {
    let gate = Respgate::start();
    let out = bin().args(["ping", "--addr", &gate.addr]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("PONG"));
    // Nobody listening: unhealthy, quickly.
    let gone = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = gone.local_addr().unwrap().to_string();
    drop(gone);
    let out = bin().args(["ping", "--addr", &addr]).output().unwrap();
    assert!(!out.status.success(), "{out:?}");
}

#[test]
fn dockerfile_runs_as_non_root_with_a_ping_health_check() {
    // The image cannot be built here (no Docker engine): check what it promises.
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile"))
        .expect("Dockerfile");
    assert_eq!(
        text.matches("\nFROM ").count() + usize::from(text.starts_with("FROM ")),
        2
    );
    assert!(text.contains("\nUSER respgate"));
    assert!(text.contains("HEALTHCHECK") && text.contains("\"ping\""));
    assert!(text.contains("EXPOSE 6379 9379"));
    assert!(text.contains("VOLUME [\"/etc/respgate\""));
}
