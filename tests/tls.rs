//! TLS on both sides, with certificates rcgen makes for each test (tests/common/tls.rs):
//! respgate forwarding to a redis-server that speaks TLS only (verified by CA and name,
//! with and without a client certificate), and respgate's own TLS listener (plain clients
//! refused without harm to others, client certificates required with `client_ca`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::redis_server::RedisServer;
use common::resp::{Conn, Value, read_value};
use common::respgate::{Respgate, temp_config};
use common::tls::Pki;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec())
}

fn error_text(v: &Value) -> String {
    match v {
        Value::Error(e) => e.clone(),
        other => panic!("not an error: {other:?}"),
    }
}

#[test]
fn forwarding_over_tls_set_get_resp3_pubsub_and_big_values() {
    let pki = Pki::generate();
    let redis = pki.redis_server(false);
    // No server_name: the certificate is checked against the address's host, 127.0.0.1.
    let gate = Respgate::standalone(&redis.addr(), &format!("tls = {{ ca = \"{}\" }}", pki.ca));
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(c.cmd_str("SET k v"), Value::Simple("OK".into()));
    assert_eq!(c.cmd_str("GET k"), bulk("v"));

    // RESP3 clients get RESP3 replies through their own TLS backend connection.
    let mut c3 = Conn::connect(&gate.addr);
    assert!(matches!(c3.cmd_str("HELLO 3"), Value::Map(_)));
    c3.cmd_str("HSET h f v");
    assert_eq!(
        c3.cmd_str("HGETALL h"),
        Value::Map(vec![(bulk("f"), bulk("v"))])
    );
    assert_eq!(c3.cmd_str("GET missing"), Value::Null);

    // Values and pipelines larger than a socket buffer: TLS records that rustls holds back
    // while the socket is full must still be sent.
    let big = vec![b'x'; 4 << 20];
    assert_eq!(c.cmd(&[b"SET", b"big", &big]), Value::Simple("OK".into()));
    assert_eq!(c.cmd(&[b"GET", b"big"]), Value::Bulk(big.clone()));
    let mut batch = Vec::new();
    for _ in 0..2000 {
        batch.extend(Conn::encode(&[b"INCR", b"n"]));
    }
    c.send_raw(&batch).unwrap();
    for i in 1..=2000 {
        assert_eq!(c.read(), Value::Int(i));
    }

    // Pub/sub goes through the bridge's own TLS connection.
    let mut sub = Conn::connect(&gate.addr);
    sub.cmd_str("SUBSCRIBE news");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        // The bridge subscribes upstream asynchronously: publish until someone hears it.
        if c.cmd_str("PUBLISH news hello") == Value::Int(1) {
            break;
        }
        assert!(Instant::now() < deadline, "the bridge never subscribed");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        sub.read(),
        Value::Array(vec![bulk("message"), bulk("news"), bulk("hello")])
    );

    // An explicit server_name the certificate holds works too.
    let named = Respgate::standalone(
        &redis.addr(),
        &format!(
            "tls = {{ ca = \"{}\", server_name = \"localhost\" }}",
            pki.ca
        ),
    );
    assert_eq!(Conn::connect(&named.addr).cmd_str("GET k"), bulk("v"));
}

/// The error a client gets from a respgate whose backend TLS cannot be established, and
/// how long it took.
fn backend_tls_error(redis: &RedisServer, tls_toml: &str) -> (String, Duration) {
    let gate = Respgate::standalone(
        &redis.addr(),
        &format!("connect_timeout = \"5s\"\ntls = {tls_toml}"),
    );
    let mut c = Conn::connect(&gate.addr);
    let t = Instant::now();
    let reply = error_text(&c.cmd_str("GET k"));
    let took = t.elapsed();
    // The client's connection survives the backend's failure (and hears it again).
    assert_eq!(error_text(&c.cmd_str("GET k")), reply);
    (reply, took)
}

#[test]
fn a_wrong_ca_or_server_name_is_a_clear_error_at_once() {
    let pki = Pki::generate();
    let redis = pki.redis_server(false);

    let (err, took) = backend_tls_error(&redis, &format!("{{ ca = \"{}\" }}", pki.other_ca));
    assert!(
        err.starts_with("ERR respgate: backend TLS handshake failed:"),
        "{err}"
    );
    assert!(err.contains("UnknownIssuer"), "{err}");
    assert!(took < Duration::from_secs(2), "took {took:?}");

    let (err, took) = backend_tls_error(
        &redis,
        &format!("{{ ca = \"{}\", server_name = \"redis.example\" }}", pki.ca),
    );
    assert!(
        err.starts_with("ERR respgate: backend TLS handshake failed:"),
        "{err}"
    );
    assert!(err.contains("redis.example"), "{err}");
    assert!(took < Duration::from_secs(2), "took {took:?}");

    // Plain TCP to a TLS port: an error, not a hang.
    let gate = Respgate::standalone(
        &redis.addr(),
        "connect_timeout = \"2s\"\ncommand_timeout = \"2s\"",
    );
    let mut c = Conn::connect(&gate.addr);
    let t = Instant::now();
    let err = error_text(&c.cmd_str("GET k"));
    assert!(err.starts_with("ERR respgate: backend"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
}

#[test]
fn mutual_tls_with_a_client_certificate() {
    let pki = Pki::generate();
    let redis = pki.redis_server(true);
    let gate = Respgate::standalone(&redis.addr(), &pki.backend_tls_mutual());
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(c.cmd_str("SET k v"), Value::Simple("OK".into()));
    assert_eq!(c.cmd_str("GET k"), bulk("v"));

    // Without a client certificate Redis refuses respgate; the client hears about it.
    let gate = Respgate::standalone(
        &redis.addr(),
        &format!(
            "connect_timeout = \"2s\"\ncommand_timeout = \"2s\"\ntls = {{ ca = \"{}\" }}",
            pki.ca
        ),
    );
    let mut c = Conn::connect(&gate.addr);
    let t = Instant::now();
    let err = error_text(&c.cmd_str("GET k"));
    assert!(err.starts_with("ERR respgate: backend"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // The startup check says why, though the TLS 1.3 handshake itself "succeeded".
    let warning = std::iter::from_fn(|| gate.logs.recv_timeout(Duration::from_secs(5)).ok())
        .find(|line| line.contains("backend not reachable yet"))
        .expect("a startup warning about the backend");
    assert!(warning.contains("CertificateRequired"), "{warning}");
}

/// One redis-server in Sentinel mode watching `master` (quorum 1), with TLS on its own
/// port when `tls` (then it also reaches the master over TLS), killed by pid on drop.
struct Sentinel {
    addr: String,
    child: std::process::Child,
    conf: std::path::PathBuf,
}

impl Sentinel {
    fn start(pki: &Pki, master: &RedisServer, tls: bool) -> Sentinel {
        let port = common::redis_server::free_port();
        let conf = std::env::temp_dir().join(format!(
            "respgate-tls-sentinel-{}-{port}.conf",
            std::process::id()
        ));
        let listen = if tls {
            format!(
                "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
                 tls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n",
                pki.server_cert, pki.server_key, pki.ca
            )
        } else {
            // Plain sentinel, TLS master: it still reaches the master over TLS.
            format!(
                "port {port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
                 tls-replication yes\n",
                pki.server_cert, pki.server_key, pki.ca
            )
        };
        std::fs::write(
            &conf,
            format!(
                "{listen}bind 127.0.0.1\ndaemonize no\ndir {dir}\n\
                 sentinel monitor mymaster 127.0.0.1 {master_port} 1\n",
                dir = std::env::temp_dir().display(),
                master_port = master.port
            ),
        )
        .expect("writing sentinel.conf");
        let child = std::process::Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawning redis-server --sentinel");
        Sentinel {
            addr: format!("127.0.0.1:{port}"),
            child,
            conf,
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.conf);
    }
}

/// Retries `GET k` through `gate` until it answers `v` (the sentinel may still be starting).
fn eventually_get(gate: &Respgate) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let mut c = Conn::connect(&gate.addr);
        last = c.cmd_str("GET k");
        if last == bulk("v") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("GET through sentinel mode never worked: {last:?}");
}

#[test]
fn sentinel_mode_over_tls_to_sentinels_and_master() {
    let pki = Pki::generate();
    let master = pki.redis_server(false);
    {
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let tls = rustls::ClientConnection::new(pki.client_config(false), name).unwrap();
        let tcp = std::net::TcpStream::connect(master.addr()).unwrap();
        let mut s = std::io::BufReader::new(rustls::StreamOwned::new(tls, tcp));
        use std::io::Write;
        s.get_mut()
            .write_all(&Conn::encode(&[b"SET", b"k", b"v"]))
            .unwrap();
        assert_eq!(read_value(&mut s).unwrap(), Value::Simple("OK".into()));
    }

    // Sentinels behind TLS too: `tls` serves both (no sentinel_tls).
    let sentinel = Sentinel::start(&pki, &master, true);
    let gate = Respgate::sentinel(
        std::slice::from_ref(&sentinel.addr),
        "mymaster",
        &format!("tls = {{ ca = \"{}\" }}", pki.ca),
    );
    eventually_get(&gate);
    drop(gate);
    drop(sentinel);

    // A plain sentinel in front of a TLS master: sentinel_tls = false.
    let sentinel = Sentinel::start(&pki, &master, false);
    let gate = Respgate::sentinel(
        std::slice::from_ref(&sentinel.addr),
        "mymaster",
        &format!("tls = {{ ca = \"{}\" }}\nsentinel_tls = false", pki.ca),
    );
    eventually_get(&gate);
}

#[test]
fn check_config_names_the_tls_key_of_a_bad_file() {
    let pki = Pki::generate();
    let path = temp_config(&format!(
        "[backend]\nmode = \"standalone\"\naddress = \"127.0.0.1:1\"\n\
         tls = {{ ca = \"{}\", cert = \"{}\", key = \"{}\" }}\n",
        pki.ca, pki.client_cert, pki.ca
    ));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_respgate"))
        .args(["check-config", &path])
        .output()
        .expect("running check-config");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("backend.tls.key:"), "{err}");
    assert!(err.contains("no PEM private key"), "{err}");

    let path = temp_config(&format!(
        "[server]\ntls = {{ cert = \"{}\", key = \"{}\", client_ca = \"{}\" }}\n",
        pki.server_cert, pki.server_key, pki.ca
    ));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_respgate"))
        .args(["check-config", &path])
        .output()
        .expect("running check-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// --- respgate's own TLS listener -------------------------------------------------------

/// respgate (embedded engine) serving TLS.
fn tls_gate(pki: &Pki, client_ca: bool) -> Respgate {
    let client_ca = if client_ca {
        format!(", client_ca = \"{}\"", pki.ca)
    } else {
        String::new()
    };
    let path = temp_config(&format!(
        "[server]\ntls = {{ cert = \"{}\", key = \"{}\"{client_ca} }}\n",
        pki.server_cert, pki.server_key
    ));
    Respgate::start_with(&["--config", &path])
}

type TlsClient = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn tls_connect(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<Client<TlsClient>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").expect("a valid name");
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    Ok(Client::new(tls))
}

/// A test client over any async stream: commands out, replies parsed by the blocking test
/// parser (retried as bytes arrive), bytes past a reply kept for the next one.
struct Client<S> {
    stream: S,
    buf: Vec<u8>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    fn new(stream: S) -> Self {
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Sends one command and reads its reply (within 10 s).
    async fn cmd(&mut self, args: &[&[u8]]) -> std::io::Result<Value> {
        self.send_raw(&Conn::encode(args)).await?;
        self.read().await
    }

    async fn read(&mut self) -> std::io::Result<Value> {
        let read = async {
            loop {
                let mut cursor = std::io::Cursor::new(&self.buf[..]);
                if let Ok(v) = read_value(&mut cursor) {
                    let used = cursor.position() as usize;
                    self.buf.drain(..used);
                    return Ok(v);
                }
                // Into the heap buffer: a stack array here would sit inside every future
                // that awaits a reply (the test futures overflowed the stack with one).
                self.buf.reserve(64 * 1024);
                if self.stream.read_buf(&mut self.buf).await? == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "closed",
                    ));
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .map_err(|_| std::io::Error::other("no reply within 10 s"))?
    }
}

#[tokio::test]
async fn tls_clients_are_served_and_plain_clients_on_the_tls_port_are_dropped() {
    let pki = Pki::generate();
    let gate = tls_gate(&pki, false);
    let mut a = tls_connect(&gate.addr, pki.client_config(false))
        .await
        .expect("TLS handshake with respgate");
    assert_eq!(
        a.cmd(&[b"SET", b"k", b"v"]).await.unwrap(),
        Value::Simple("OK".into())
    );
    assert_eq!(a.cmd(&[b"GET", b"k"]).await.unwrap(), bulk("v"));
    // A pipeline whose replies exceed a socket buffer.
    let big = vec![b'y'; 1 << 20];
    a.cmd(&[b"SET", b"big", &big]).await.unwrap();
    let mut batch = Vec::new();
    for _ in 0..8 {
        batch.extend(Conn::encode(&[b"GET", b"big"]));
    }
    a.send_raw(&batch).await.unwrap();
    for _ in 0..8 {
        assert_eq!(a.read().await.unwrap(), Value::Bulk(big.clone()));
    }

    // A plain-text client on the TLS port is disconnected...
    let mut plain = tokio::net::TcpStream::connect(&gate.addr).await.unwrap();
    plain.write_all(&Conn::encode(&[b"PING"])).await.unwrap();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match plain.read(&mut buf).await {
                // Whatever a TLS server answers a non-TLS hello (an alert, at most), it
                // is never a Redis reply, and then the connection ends.
                Ok(0) | Err(_) => return,
                Ok(n) => assert!(!buf[..n].starts_with(b"+PONG"), "plain PING answered"),
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the plain client was not disconnected");
    // ...a client that connects and never starts its handshake holds up nobody (it is
    // dropped when the handshake timeout passes); the TLS client never notices either.
    let _silent = tokio::net::TcpStream::connect(&gate.addr).await.unwrap();
    assert_eq!(a.cmd(&[b"GET", b"k"]).await.unwrap(), bulk("v"));
    let mut b = tls_connect(&gate.addr, pki.client_config(false))
        .await
        .expect("a second TLS client");
    assert_eq!(b.cmd(&[b"GET", b"k"]).await.unwrap(), bulk("v"));

    // Over max_clients, a TLS client is refused in words it can read (over TLS).
    assert_eq!(
        b.cmd(&[b"CONFIG", b"SET", b"maxclients", b"2"])
            .await
            .unwrap(),
        Value::Simple("OK".into())
    );
    let mut over = tls_connect(&gate.addr, pki.client_config(false))
        .await
        .expect("handshake of a client over the limit");
    assert_eq!(
        over.read().await.unwrap(),
        Value::Error("ERR max number of clients reached".into())
    );

    // Connections still in their handshake count too: a and b are in, `_silent` and
    // `silent2` handshake, so a fifth is one too many for maxclients 4...
    b.cmd(&[b"CONFIG", b"SET", b"maxclients", b"4"])
        .await
        .unwrap();
    let silent2 = tokio::net::TcpStream::connect(&gate.addr).await.unwrap();
    let mut over = tls_connect(&gate.addr, pki.client_config(false))
        .await
        .unwrap();
    assert_eq!(
        over.read().await.unwrap(),
        Value::Error("ERR max number of clients reached".into())
    );
    // ...until the silent ones leave.
    drop((_silent, silent2));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut c = tls_connect(&gate.addr, pki.client_config(false))
            .await
            .unwrap();
        match c.cmd(&[b"PING"]).await {
            Ok(Value::Simple(s)) if s == "PONG" => break,
            other => assert!(Instant::now() < deadline, "still refused: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn client_ca_requires_a_client_certificate() {
    let pki = Pki::generate();
    let gate = tls_gate(&pki, true);

    // Without a certificate: refused. In TLS 1.3 the client may finish its side of the
    // handshake before the server's verdict, so the refusal can arrive on the first read.
    let refused = match tls_connect(&gate.addr, pki.client_config(false)).await {
        Err(_) => true,
        Ok(mut s) => s.cmd(&[b"PING"]).await.is_err(),
    };
    assert!(refused, "a client without a certificate was served");

    let mut ok = tls_connect(&gate.addr, pki.client_config(true))
        .await
        .expect("TLS handshake with a client certificate");
    assert_eq!(
        ok.cmd(&[b"PING"]).await.unwrap(),
        Value::Simple("PONG".into())
    );
    assert_eq!(
        ok.cmd(&[b"SET", b"k", b"v"]).await.unwrap(),
        Value::Simple("OK".into())
    );
}

#[tokio::test]
async fn a_tls_subscriber_that_stops_reading_is_closed_at_the_output_limit() {
    let pki = Pki::generate();
    let gate = tls_gate(&pki, false);
    let mut admin = tls_connect(&gate.addr, pki.client_config(false))
        .await
        .unwrap();
    admin
        .cmd(&[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"pubsub 1mb 0 0",
        ])
        .await
        .unwrap();
    let mut lazy = tls_connect(&gate.addr, pki.client_config(false))
        .await
        .unwrap();
    lazy.cmd(&[b"SUBSCRIBE", b"flood"]).await.unwrap();
    let payload = vec![b'x'; 64 * 1024];
    for _ in 0..1024 {
        admin.cmd(&[b"PUBLISH", b"flood", &payload]).await.unwrap();
        let numsub = admin.cmd(&[b"PUBSUB", b"NUMSUB", b"flood"]).await.unwrap();
        if numsub == Value::Array(vec![bulk("flood"), Value::Int(0)]) {
            break;
        }
    }
    // Killed: its connection task ends although the client never reads what the TLS layer
    // still wants to send (closing gives up after a second), and the rest go on.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let info = admin.cmd(&[b"INFO", b"clients"]).await.unwrap();
        let text = String::from_utf8_lossy(info.as_bytes().unwrap_or_default()).into_owned();
        if text.contains("connected_clients:1\r\n") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lazy subscriber's task lives on: {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(lazy);
    assert_eq!(
        admin.cmd(&[b"PING"]).await.unwrap(),
        Value::Simple("PONG".into())
    );
}

#[tokio::test]
async fn a_client_certificate_can_stand_for_a_tenant() {
    let pki = Pki::generate();
    let path = temp_config(&format!(
        "[server]\nrequirepass = \"root\"\ntls = {{ cert = \"{}\", key = \"{}\", client_ca = \"{}\" }}\n\
         [[tenants]]\nname = \"app\"\nprefix = \"app:\"\ntls_identity = \"app-1\"\n",
        pki.server_cert, pki.server_key, pki.ca
    ));
    let gate = Respgate::start_with(&["--config", &path]);
    // The test client certificate's CN is app-1: no AUTH needed, and it is in app's namespace.
    let mut app = tls_connect(&gate.addr, pki.client_config(true))
        .await
        .expect("TLS handshake with a client certificate");
    assert_eq!(
        app.cmd(&[b"SET", b"k", b"v"]).await.unwrap(),
        Value::Simple("OK".into())
    );
    assert_eq!(
        app.cmd(&[b"KEYS", b"*"]).await.unwrap(),
        Value::Array(vec![bulk("k")])
    );
    // The admin (requirepass) sees where the key really is.
    let mut admin = tls_connect(&gate.addr, pki.client_config(true))
        .await
        .expect("TLS handshake");
    assert_eq!(
        admin.cmd(&[b"AUTH", b"default", b"root"]).await.unwrap(),
        Value::Simple("OK".into())
    );
    assert_eq!(admin.cmd(&[b"GET", b"app:k"]).await.unwrap(), bulk("v"));
}

#[test]
fn tls_identity_needs_verified_client_certificates() {
    let path =
        temp_config("[[tenants]]\nname = \"app\"\nprefix = \"app:\"\ntls_identity = \"app-1\"\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_respgate"))
        .args(["check-config", &path])
        .output()
        .expect("running check-config");
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("tenants[0].tls_identity"), "{text}");
}
