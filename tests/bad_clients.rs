//! Owns the bad-client suite: misbehaving clients over real sockets against a respgate
//! process (embedded engine) — slowloris, a half-sent bulk held open, clients that never read
//! (pipelined big GETs, a pub/sub subscriber), a flood of 20 000 connections over max_clients,
//! idle timeout, a command with a million arguments, deeply nested garbage. Each test checks
//! that another client keeps being served and that respgate's RSS comes back near its
//! baseline afterwards (figures printed with `--nocapture`).

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::resp::{Conn, Value};
use common::respgate::{Respgate, temp_config};

const MIB: u64 = 1024 * 1024;

/// How far above its baseline respgate's RSS may stay once a bad client is gone. Freed memory
/// is not always returned to the kernel at once: glibc malloc keeps per-thread arenas and
/// trims only their tops, and each tokio worker thread touched its own. 64 MiB is far below
/// what any of these clients would cost if respgate held on to their data (a 100 MB declared
/// bulk per connection, hundreds of MB of unread replies, a million arguments).
const RSS_MARGIN: u64 = 64 * MIB;

/// VmRSS of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn mib(b: u64) -> f64 {
    b as f64 / MIB as f64
}

/// A fresh client is served: PING answered within a second. Returns how long it took.
fn served(gate: &Respgate) -> Duration {
    let t = Instant::now();
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(c.cmd_str("PING"), Value::Simple("PONG".into()));
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "a fresh client waited {took:?}"
    );
    took
}

/// RSS after start and a few clients have come and gone.
fn baseline(gate: &Respgate) -> u64 {
    for _ in 0..4 {
        served(gate);
    }
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(c.cmd_str("SET warm up"), Value::Simple("OK".into()));
    std::thread::sleep(Duration::from_millis(200));
    rss(gate.pid())
}

/// Waits (up to 10 s) for RSS to come back within the margin of the baseline; prints it.
fn rss_returns(gate: &Respgate, base: u64, peak: u64, what: &str) {
    rss_returns_within(gate, base, peak, what, RSS_MARGIN)
}

/// [`rss_returns`] with a margin of its own.
fn rss_returns_within(gate: &Respgate, base: u64, peak: u64, what: &str, margin: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        served(gate);
        let now = rss(gate.pid());
        if now <= base + margin {
            eprintln!(
                "{what}: RSS baseline {:.1} MiB, peak seen {:.1} MiB, after {:.1} MiB",
                mib(base),
                mib(peak),
                mib(now)
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: RSS {:.1} MiB stays above baseline {:.1} MiB + {:.0} MiB",
            mib(now),
            mib(base),
            mib(margin)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads until the server closes the connection (EOF or reset) or `limit` passes; true if
/// it closed. Returns what was read too.
fn closes_within(s: &mut TcpStream, limit: Duration) -> (bool, Vec<u8>) {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return (false, got);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (true, got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (true, got),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (false, got);
            }
            Err(e) => panic!("reading: {e}"),
        }
    }
}

fn with_config(toml: &str) -> Respgate {
    let path = temp_config(toml);
    Respgate::start_with(&["--config", &path])
}

/// Slowloris: 200 clients each trickle a command one byte per second for 7 seconds (with
/// the header sent first: `*1\r\n$4\r\n` then `PING\r\n` byte by byte... and a last byte).
/// Meanwhile fresh clients are served at once, and in the end every slow client gets PONG.
#[test]
fn slowloris_does_not_hold_up_others() {
    let gate = Respgate::start();
    let base = baseline(&gate);
    let frame = b"*1\r\n$4\r\nPING\r\n";
    let (head, tail) = frame.split_at(frame.len() - 7);
    let mut slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = TcpStream::connect(&gate.addr).unwrap();
            s.write_all(head).unwrap();
            s
        })
        .collect();
    let mut worst = Duration::ZERO;
    for &b in tail {
        for s in &mut slow {
            s.write_all(&[b]).unwrap();
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(1) {
            worst = worst.max(served(&gate));
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut reply = [0u8; 7];
        s.read_exact(&mut reply).unwrap();
        assert_eq!(&reply, b"+PONG\r\n");
    }
    eprintln!("slowloris: 200 trickling clients; slowest fresh PING {worst:?}");
    let peak = rss(gate.pid());
    drop(slow);
    rss_returns(&gate, base, peak, "slowloris");
}

/// 300 clients announce a 100 MB bulk argument, send 1 KB of it and hold the connection
/// open: respgate must not allocate what was announced (30 GB), and others are served.
#[test]
fn half_sent_bulks_held_open_cost_little() {
    let gate = Respgate::start();
    let base = baseline(&gate);
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut s = TcpStream::connect(&gate.addr).unwrap();
        s.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$104857600\r\n")
            .unwrap();
        s.write_all(&[b'x'; 1024]).unwrap();
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    served(&gate);
    let peak = rss(gate.pid());
    assert!(
        peak <= base + RSS_MARGIN,
        "300 half-sent 100 MB bulks cost {:.1} MiB of RSS",
        mib(peak - base.min(peak))
    );
    // Still waiting for the rest: nothing was answered, nothing was closed.
    for s in &mut held {
        let (closed, got) = closes_within(s, Duration::from_millis(5));
        assert!(
            !closed && got.is_empty(),
            "a half-sent command was answered"
        );
    }
    drop(held);
    rss_returns(&gate, base, peak, "half-sent bulk");
}

/// A client pipelines 400 GETs of a 1 MiB value (400 MiB of replies) and never reads.
/// Normal clients have no output buffer limit in Redis (`normal 0 0 0`); respgate bounds
/// them by backpressure instead: once the socket is full it stops reading that client's
/// requests, so RSS stays near the baseline, and other clients are served meanwhile.
#[test]
fn a_client_that_never_reads_big_replies() {
    let gate = Respgate::start();
    let base = baseline(&gate);
    let mut c = Conn::connect(&gate.addr);
    let value = vec![b'v'; MIB as usize];
    assert_eq!(c.cmd(&[b"SET", b"big", &value]), Value::Simple("OK".into()));
    let base = base.max(rss(gate.pid()));

    let lazy = TcpStream::connect(&gate.addr).unwrap();
    let get = Conn::encode(&[b"GET", b"big"]);
    let writer = {
        let mut w = lazy.try_clone().unwrap();
        std::thread::spawn(move || {
            // Blocks once respgate stops reading us; ends when the socket is closed.
            for _ in 0..400 {
                if w.write_all(&get).is_err() {
                    break;
                }
            }
        })
    };
    let mut peak = 0;
    for _ in 0..15 {
        std::thread::sleep(Duration::from_millis(200));
        peak = peak.max(rss(gate.pid()));
        let t = Instant::now();
        assert_eq!(c.cmd(&[b"GET", b"big"]), Value::Bulk(value.clone()));
        assert!(t.elapsed() < Duration::from_secs(1));
    }
    assert!(
        peak <= base + RSS_MARGIN,
        "a non-reading client grew RSS from {:.1} to {:.1} MiB",
        mib(base),
        mib(peak)
    );
    let _ = lazy.shutdown(std::net::Shutdown::Both);
    drop(lazy);
    writer.join().unwrap();
    rss_returns(&gate, base, peak, "non-reading client (400 x 1 MiB GET)");
}

/// Forwarding to a real redis-server, a pipeline's replies are collected in respgate before
/// they are written, so a client pipelining 2000 GETs of a 1 MiB value without reading made
/// respgate hold 1.1 GB (found by this test). Over `limits.max_output_buffer` (32 MiB here,
/// 1 GiB by default; Redis has no limit for normal clients) it is disconnected instead, RSS
/// stays bounded, and other clients are served.
#[test]
fn forwarding_a_client_that_never_reads_hits_the_output_limit() {
    let redis = common::redis_server::RedisServer::start();
    let path = temp_config(&format!(
        "[backend]\nmode = \"standalone\"\naddress = \"{}\"\n[limits]\nmax_output_buffer = \"32mb\"\n",
        redis.addr()
    ));
    let gate = Respgate::start_with(&["--config", &path]);
    let base = baseline(&gate);
    let mut c = Conn::connect(&gate.addr);
    let value = vec![b'v'; MIB as usize];
    assert_eq!(c.cmd(&[b"SET", b"big", &value]), Value::Simple("OK".into()));
    let mut lazy = TcpStream::connect(&gate.addr).unwrap();
    let get = Conn::encode(&[b"GET", b"big"]).repeat(2000);
    let mut w = lazy.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&get);
    });
    let mut peak = 0;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(200));
        peak = peak.max(rss(gate.pid()));
        let t = Instant::now();
        assert_eq!(c.cmd(&[b"GET", b"big"]), Value::Bulk(value.clone()));
        // Served, not queued behind the lazy client (3 s, not 1: a 1 MiB reply on a
        // 2-core machine busy with the rest of the suite took 1.0x s once).
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }
    // Only now read: what reached the socket, then the close.
    let (closed, read) = closes_within(&mut lazy, Duration::from_secs(5));
    let got = read.len();
    let _ = writer.join();
    assert!(closed, "the non-reading client was not disconnected");
    eprintln!(
        "forwarding, non-reading client: disconnected at the 32 MiB limit ({:.1} MiB reached it); RSS peak {:.1} MiB",
        mib(got as u64),
        mib(peak)
    );
    // Replies already read from the backend (an unbounded channel, up to the backend
    // socket's pace) sit above the 32 MiB limit until the next check: alone this peaks near
    // 50-60 MiB, on a loaded machine (the whole suite on 2 cores) 94 MiB was seen. Twice the
    // usual margin still tells bounded from the 1.1 GB held before the limit existed.
    assert!(
        peak <= base + 2 * RSS_MARGIN,
        "RSS grew from {:.1} to {:.1} MiB",
        mib(base),
        mib(peak)
    );
    // The same doubled margin as the peak above: glibc keeps what the in-flight replies used.
    rss_returns_within(
        &gate,
        base,
        peak,
        "forwarding, non-reading client",
        2 * RSS_MARGIN,
    );
}

/// A subscriber that never reads while a publisher sends 1 MiB messages: over
/// `client-output-buffer-limit pubsub` (set to 8 MB here) it is disconnected, the publisher
/// sees its receiver count drop to 0, and RSS stays bounded.
#[test]
fn a_subscriber_that_never_reads_is_disconnected() {
    let gate = Respgate::start();
    let base = baseline(&gate);
    let mut publisher = Conn::connect(&gate.addr);
    assert_eq!(
        publisher.cmd(&[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"pubsub 8mb 0 0"
        ]),
        Value::Simple("OK".into())
    );
    let mut sub = TcpStream::connect(&gate.addr).unwrap();
    sub.write_all(&Conn::encode(&[b"SUBSCRIBE", b"news"]))
        .unwrap();
    let mut confirm = [0u8; 33];
    sub.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    sub.read_exact(&mut confirm).unwrap();
    assert!(confirm.starts_with(b"*3\r\n$9\r\nsubscribe\r\n"));

    let msg = vec![b'm'; MIB as usize];
    let mut peak = 0;
    let mut dropped_at = None;
    for i in 0..200 {
        match publisher.cmd(&[b"PUBLISH", b"news", &msg]) {
            Value::Int(1) => {}
            Value::Int(0) => {
                dropped_at = Some(i);
                break;
            }
            other => panic!("PUBLISH: {other:?}"),
        }
        peak = peak.max(rss(gate.pid()));
    }
    let Some(dropped_at) = dropped_at else {
        panic!("the subscriber was never disconnected after 200 MiB of messages");
    };
    let (closed, got) = closes_within(&mut sub, Duration::from_secs(10));
    assert!(closed, "the subscriber's connection was not closed");
    eprintln!(
        "non-reading subscriber: disconnected after {dropped_at} x 1 MiB messages ({:.1} MiB had reached its socket)",
        mib(got.len() as u64)
    );
    assert!(
        peak <= base + RSS_MARGIN,
        "RSS grew from {:.1} to {:.1} MiB",
        mib(base),
        mib(peak)
    );
    assert_eq!(
        publisher.cmd_str("PUBSUB NUMSUB news"),
        Value::Array(vec![Value::Bulk(b"news".to_vec()), Value::Int(0)])
    );
    rss_returns(&gate, base, peak, "non-reading subscriber");
}

/// Environment variable that turns [`flood_helper`] on in a child process.
const FLOOD_ENV: &str = "RESPGATE_BAD_CLIENTS_FLOOD";

/// Run as a child process by [`connection_flood_over_max_clients`] (the test binary again,
/// with `FLOOD_ENV=addr,count`): opens `count` connections as fast as it can, waits two
/// seconds, then classifies each (refused with the max clients error / open and silent /
/// closed), prints one `FLOOD ...` line and holds every connection until stdin closes.
/// Split over two processes because this machine's hard RLIMIT_NOFILE is 20 000, which one
/// process cannot use entirely for sockets.
#[test]
#[ignore = "helper process for connection_flood_over_max_clients"]
fn flood_helper() {
    let Ok(spec) = std::env::var(FLOOD_ENV) else {
        return;
    };
    let (addr, count) = spec.split_once(',').expect("addr,count");
    let count: usize = count.parse().expect("count");
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let mut socks = Vec::with_capacity(count);
    let mut connect_failed = 0;
    let t = Instant::now();
    for _ in 0..count {
        match TcpStream::connect(addr) {
            Ok(s) => socks.push(s),
            Err(_) => connect_failed += 1,
        }
    }
    let connecting = t.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (mut refused, mut open, mut closed, mut other) = (0, 0, 0, 0);
    let mut buf = [0u8; 64];
    for s in &mut socks {
        s.set_nonblocking(true).unwrap();
        match s.read(&mut buf) {
            Ok(n) if buf[..n].starts_with(b"-ERR max number of clients reached\r\n") => {
                refused += 1
            }
            Ok(0) => closed += 1,
            Ok(_) => other += 1,
            Err(e) if e.kind() == ErrorKind::WouldBlock => open += 1,
            Err(_) => closed += 1,
        }
    }
    println!(
        "FLOOD refused={refused} open={open} closed={closed} other={other} connect_failed={connect_failed} connect_ms={}",
        connecting.as_millis()
    );
    std::io::stdout().flush().unwrap();
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(socks);
}

/// 20 000 connections at once against max_clients = 1000, from two child processes of
/// 10 000 each: at most 1000 stay open, the rest get `-ERR max number of clients reached`,
/// a fresh client meanwhile gets that error at once (respgate stays responsive), and once
/// the flood goes away a fresh client is served, respgate's descriptors are released and
/// its RSS returns near the baseline.
#[test]
fn connection_flood_over_max_clients() {
    // respgate inherits our soft limit: raise it to the hard limit (20 000 here), so
    // respgate itself can take max_clients connections plus the ones it refuses.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    // 20 000 needs a hard limit of 10 000 per process (20 000 here); with a lower one the
    // flood shrinks to what fits, and max_clients with it.
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    let per_child = hard.saturating_sub(64).min(10_000) as usize;
    let max_clients = (per_child / 2).min(1000);
    if per_child < 10_000 {
        eprintln!("flood: hard open files limit {hard}: {per_child} connections per helper");
    }
    let gate = with_config(&format!("[server]\nmax_clients = {max_clients}\n"));
    let base = baseline(&gate);
    let base_fds = open_fds(gate.pid());
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<std::process::Child> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "flood_helper",
                    "--exact",
                    "--ignored",
                    "--nocapture",
                    "--quiet",
                ])
                .env(FLOOD_ENV, format!("{},{per_child}", gate.addr))
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut totals = [0usize; 6];
    let mut drains = Vec::new();
    for child in &mut children {
        let out = child.stdout.take().unwrap();
        let mut line = String::new();
        let mut r = std::io::BufReader::new(out);
        loop {
            line.clear();
            use std::io::BufRead;
            assert!(r.read_line(&mut line).unwrap() > 0, "helper ended early");
            if let Some(rest) = line.strip_prefix("FLOOD ") {
                for (i, kv) in rest.split_whitespace().enumerate() {
                    totals[i] += kv.split_once('=').unwrap().1.parse::<usize>().unwrap();
                }
                break;
            }
        }
        // Keep reading its output, so it never writes to a closed pipe.
        drains.push(std::thread::spawn(move || {
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        }));
    }
    let [refused, open, closed, other, failed, connect_ms] = totals;
    let peak = rss(gate.pid());
    let peak_fds = open_fds(gate.pid());
    eprintln!(
        "flood: {} connections: refused {refused}, open {open}, closed {closed}, other {other}, connect failed {failed} (connecting took {connect_ms} ms summed over both helpers); respgate fds {base_fds} -> {peak_fds}",
        2 * per_child
    );
    assert_eq!(other, 0);
    assert!(
        open <= max_clients,
        "{open} connections admitted over max_clients = {max_clients}"
    );
    assert!(
        open >= max_clients * 9 / 10,
        "only {open} of max_clients = {max_clients} admitted"
    );
    assert_eq!(refused + open + closed + failed, 2 * per_child);
    assert!(
        refused >= (2 * per_child - max_clients) * 9 / 10,
        "only {refused} refused"
    );

    // Still responsive while full: a fresh client is refused at once.
    let t = Instant::now();
    let mut fresh = TcpStream::connect(&gate.addr).unwrap();
    let (closed_fresh, got) = closes_within(&mut fresh, Duration::from_secs(2));
    assert!(closed_fresh && got == b"-ERR max number of clients reached\r\n");
    eprintln!(
        "flood: a fresh client while full was refused in {:?}",
        t.elapsed()
    );

    for mut child in children {
        drop(child.stdin.take());
        child.wait().unwrap();
    }
    for d in drains {
        d.join().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_fds(gate.pid()) > base_fds + 10 {
        assert!(
            Instant::now() < deadline,
            "respgate keeps the flood's descriptors"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    rss_returns(&gate, base, peak, "connection flood");
}

/// `timeout = 1` closes a client idle for a second; a client that keeps talking stays, and
/// so does a subscriber that only listens (Redis exempts pub/sub clients from the timeout).
#[test]
fn idle_clients_are_closed_after_timeout() {
    let gate = with_config("[server]\ntimeout = \"1\"\n");
    let base = baseline(&gate);
    let mut idle = TcpStream::connect(&gate.addr).unwrap();
    idle.write_all(b"PING\r\n").unwrap();
    let mut busy = Conn::connect(&gate.addr);
    let mut sub = Conn::connect(&gate.addr);
    sub.cmd_str("SUBSCRIBE news");
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(2500) {
        assert_eq!(busy.cmd_str("PING"), Value::Simple("PONG".into()));
        std::thread::sleep(Duration::from_millis(250));
    }
    let (closed, got) = closes_within(&mut idle, Duration::from_secs(1));
    assert!(closed, "the idle client is still connected after 2.5 s");
    assert_eq!(got, b"+PONG\r\n");
    assert_eq!(busy.cmd_str("PING"), Value::Simple("PONG".into()));
    assert_eq!(busy.cmd_str("PUBLISH news hi"), Value::Int(1));
    assert_eq!(
        sub.read(),
        Value::Array(vec![
            Value::Bulk(b"message".to_vec()),
            Value::Bulk(b"news".to_vec()),
            Value::Bulk(b"hi".to_vec()),
        ])
    );
    let peak = rss(gate.pid());
    rss_returns(&gate, base, peak, "idle timeout");
}

/// DEL with 1 000 000 keys (15 MB of request) is answered as Redis does (`:0`); one with
/// more arguments than `limits.max_args` (1 Mi) gets Redis's protocol error and is closed.
#[test]
fn a_command_with_a_million_arguments() {
    let gate = Respgate::start();
    let base = baseline(&gate);
    let mut req = b"*1000001\r\n$3\r\nDEL\r\n".to_vec();
    for i in 0..1_000_000u32 {
        req.extend_from_slice(format!("$7\r\nk{i:06}\r\n").as_bytes());
    }
    let mut c = Conn::connect(&gate.addr);
    c.send_raw(&req).unwrap();
    assert_eq!(c.read(), Value::Int(0));
    let peak = rss(gate.pid());
    assert_eq!(c.cmd_str("PING"), Value::Simple("PONG".into()));
    served(&gate);
    eprintln!(
        "million arguments: {:.1} MiB request, RSS {:.1} -> {:.1} MiB right after",
        mib(req.len() as u64),
        mib(base),
        mib(peak)
    );

    let mut over = TcpStream::connect(&gate.addr).unwrap();
    over.write_all(b"*1048577\r\n$3\r\nDEL\r\n").unwrap();
    let (closed, got) = closes_within(&mut over, Duration::from_secs(5));
    assert!(closed);
    assert_eq!(got, b"-ERR Protocol error: invalid multibulk length\r\n");
    drop(c);
    rss_returns(&gate, base, peak, "a million arguments");
}

/// `*1\r\n` nested 100 000 deep: Redis refuses nested multibulk in requests
/// (`expected '$', got '*'`) and closes; so does respgate, without recursing.
#[test]
fn deeply_nested_garbage_is_a_protocol_error() {
    let gate = Respgate::start();
    let base = baseline(&gate);
    let mut s = TcpStream::connect(&gate.addr).unwrap();
    // Written from a thread: respgate closes after the first few bytes, and the rest may
    // meet a reset.
    let garbage = b"*1\r\n".repeat(100_000);
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&garbage);
    });
    let (closed, got) = closes_within(&mut s, Duration::from_secs(5));
    let _ = writer.join();
    assert!(closed);
    assert_eq!(got, b"-ERR Protocol error: expected '$', got '*'\r\n");
    let peak = rss(gate.pid());
    rss_returns(&gate, base, peak, "nested garbage");
}

/// CPU time (user + system) respgate has used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("proc stat");
    // Fields after the command name (which is in parentheses): utime is the 12th, stime 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let ticks = f[11] + f[12];
    Duration::from_millis(ticks * 10) // USER_HZ is 100 on Linux
}

/// Like Redis, max_clients beyond what the open files limit allows is lowered at start to
/// fit (hard limit minus respgate's 64 reserved descriptors), so clients over it are refused
/// with the max clients error rather than left waiting in the listen queue.
#[test]
fn max_clients_is_fitted_to_the_open_files_limit() {
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    let gate = with_config("[server]\nmax_clients = 100000\n");
    let want = if hard >= 100_064 { 100_000 } else { hard - 64 };
    let mut c = Conn::connect(&gate.addr);
    assert_eq!(
        c.cmd_str("CONFIG GET maxclients"),
        Value::Array(vec![
            Value::Bulk(b"maxclients".to_vec()),
            Value::Bulk(want.to_string().into_bytes())
        ])
    );
    eprintln!("max_clients = 100000 under a hard open files limit of {hard}: {want}");
}

/// With its descriptor limit lowered under it (prlimit, 128 files) while max_clients is
/// 10000, accept() fails with EMFILE: respgate backs off (little CPU, one log line a second
/// at most), does not crash, and serves again once the clients go away.
#[test]
fn accept_failing_with_emfile_neither_spins_nor_crashes() {
    let mut gate = Respgate::start();
    let base = baseline(&gate);
    let pid = gate.pid().to_string();
    let lowered = std::process::Command::new("prlimit")
        .args(["--pid", &pid, "--nofile=128:128"])
        .status();
    if !lowered.is_ok_and(|s| s.success()) {
        eprintln!("prlimit is not available: skipping the EMFILE test");
        return;
    }
    let socks: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(&gate.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let cpu_before = cpu_time(gate.pid());
    while gate.logs.try_recv().is_ok() {}
    std::thread::sleep(Duration::from_secs(2));
    let cpu = cpu_time(gate.pid()) - cpu_before;
    let warnings = gate
        .logs
        .try_iter()
        .filter(|l| l.contains("accept failed"))
        .count();
    eprintln!("EMFILE: 400 clients over 128 descriptors: {cpu:?} CPU in 2 s, {warnings} warnings");
    assert!(
        cpu < Duration::from_millis(500),
        "respgate spins: {cpu:?} CPU in 2 s"
    );
    assert!(warnings <= 3, "{warnings} accept warnings in 2 s");
    assert!(!gate.exited());
    let peak = rss(gate.pid());
    drop(socks);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if pings(&gate.addr) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not serving after the EMFILE episode"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    rss_returns(&gate, base, peak, "EMFILE episode");
}

/// One PING on a new connection, answered within a second?
fn pings(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let mut reply = [0u8; 7];
    s.set_read_timeout(Some(Duration::from_secs(1))).is_ok()
        && s.write_all(b"PING\r\n").is_ok()
        && s.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
