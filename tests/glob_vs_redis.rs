//! Differential test: `respgate::glob::glob_match` against a real redis-server's `KEYS`.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use respgate::glob::glob_match;

mod common;

use common::redis_server::RedisServer;

const ALPHABET: &[u8] = b"abc*?[]^-\\/";

#[derive(Debug)]
#[allow(dead_code)] // payloads are only read through Debug in panic messages
enum Reply {
    Simple(Vec<u8>),
    Error(Vec<u8>),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

struct Conn {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Conn {
    fn connect(port: u16) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Conn {
            writer: stream,
            reader,
        })
    }

    fn cmd(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out)?;
        self.read_reply()
    }

    fn read_line(&mut self) -> std::io::Result<Vec<u8>> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        if !line.ends_with(b"\r\n") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "truncated RESP line",
            ));
        }
        line.truncate(line.len() - 2);
        Ok(line)
    }

    fn read_reply(&mut self) -> std::io::Result<Reply> {
        let line = self.read_line()?;
        let (kind, rest) = line
            .split_first()
            .ok_or_else(|| std::io::Error::other("empty RESP line"))?;
        let num = |rest: &[u8]| -> std::io::Result<i64> {
            std::str::from_utf8(rest)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| std::io::Error::other("bad RESP integer"))
        };
        Ok(match kind {
            b'+' => Reply::Simple(rest.to_vec()),
            b'-' => Reply::Error(rest.to_vec()),
            b':' => Reply::Int(num(rest)?),
            b'$' => {
                let n = num(rest)?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut buf = vec![0; n as usize + 2];
                    self.reader.read_exact(&mut buf)?;
                    buf.truncate(n as usize);
                    Reply::Bulk(Some(buf))
                }
            }
            b'*' => {
                let n = num(rest)?;
                if n < 0 {
                    Reply::Array(None)
                } else {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(self.read_reply()?);
                    }
                    Reply::Array(Some(items))
                }
            }
            other => {
                return Err(std::io::Error::other(format!(
                    "unexpected RESP type byte {other:?}"
                )));
            }
        })
    }

    fn keys(&mut self, pattern: &[u8]) -> BTreeSet<Vec<u8>> {
        match self.cmd(&[b"KEYS", pattern]).expect("KEYS") {
            Reply::Array(Some(items)) => items
                .into_iter()
                .map(|r| match r {
                    Reply::Bulk(Some(k)) => k,
                    other => panic!("KEYS returned a non-bulk item {other:?}"),
                })
                .collect(),
            other => panic!(
                "KEYS {:?} returned {other:?}",
                String::from_utf8_lossy(pattern)
            ),
        }
    }

    fn set(&mut self, key: &[u8]) {
        match self.cmd(&[b"SET", key, b"1"]).expect("SET") {
            Reply::Simple(s) if s == b"OK" => {}
            other => panic!("SET returned {other:?}"),
        }
    }
}

fn start_redis() -> (RedisServer, Conn) {
    let redis = RedisServer::start();
    let conn = Conn::connect(redis.port).expect("connect to redis-server");
    (redis, conn)
}

fn random_string(rng: &mut StdRng, max_len: usize, star_bias: bool) -> Vec<u8> {
    let len = rng.random_range(1..=max_len);
    (0..len)
        .map(|_| {
            if star_bias && rng.random_ratio(1, 6) {
                b'*'
            } else {
                ALPHABET[rng.random_range(0..ALPHABET.len())]
            }
        })
        .collect()
}

#[test]
fn glob_matches_redis_keys() {
    let (_guard, mut conn) = start_redis();
    let mut rng = StdRng::seed_from_u64(0x5eed_610b);

    let mut keys = BTreeSet::new();
    while keys.len() < 200 {
        keys.insert(random_string(&mut rng, 6, false));
    }
    for key in &keys {
        conn.set(key);
    }

    let mut patterns: Vec<Vec<u8>> = (0..300).map(|_| random_string(&mut rng, 6, true)).collect();
    // A few hand-picked shapes the random walk may miss.
    for p in [
        &b"["[..],
        b"[^",
        b"[a-",
        b"[a-]",
        b"[]]",
        b"[\\]",
        b"\\",
        b"a\\",
        b"[c-a]*",
        b"*\\*",
        b"*/*",
        b"[\\^-]?",
        b"[^-]*",
    ] {
        patterns.push(p.to_vec());
    }

    let mut failures = Vec::new();
    let mut nonempty = 0;
    for pattern in &patterns {
        let from_redis = conn.keys(pattern);
        if !from_redis.is_empty() {
            nonempty += 1;
        }
        let ours: BTreeSet<Vec<u8>> = keys
            .iter()
            .filter(|k| glob_match(pattern, k, false))
            .cloned()
            .collect();
        if ours != from_redis {
            let show = |s: &BTreeSet<Vec<u8>>| -> Vec<String> {
                s.iter()
                    .map(|k| String::from_utf8_lossy(k).into_owned())
                    .collect()
            };
            failures.push(format!(
                "pattern {:?}: only ours {:?}, only redis {:?}",
                String::from_utf8_lossy(pattern),
                show(&ours.difference(&from_redis).cloned().collect()),
                show(&from_redis.difference(&ours).cloned().collect()),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} patterns disagree with redis:\n{}",
        failures.len(),
        patterns.len(),
        failures.join("\n")
    );
    eprintln!(
        "{nonempty} of {} patterns matched at least one key",
        patterns.len()
    );
    assert!(
        nonempty >= 30,
        "random patterns too selective to be a useful comparison"
    );

    // Quirks outside the random alphabet: signed-char ranges and the nesting limit.
    let long_key = vec![b'a'; 1100];
    let mut extra_keys: Vec<Vec<u8>> = vec![b"\xff".to_vec(), b"\x80".to_vec(), b"\x10".to_vec()];
    extra_keys.push(long_key.clone());
    for k in &extra_keys {
        conn.set(k);
    }
    let nested = |n: usize| {
        let mut p = b"a".to_vec();
        p.extend(b"*a".repeat(n));
        p
    };
    for pattern in [
        b"[a-\xff]".to_vec(),
        b"[\x80-\xff]".to_vec(),
        nested(1000),
        nested(1001),
    ] {
        let from_redis = conn.keys(&pattern);
        for k in &extra_keys {
            assert_eq!(
                glob_match(&pattern, k, false),
                from_redis.contains(k),
                "pattern {:?} key {:?}",
                String::from_utf8_lossy(&pattern[..pattern.len().min(20)]),
                String::from_utf8_lossy(&k[..k.len().min(20)]),
            );
        }
    }
}
