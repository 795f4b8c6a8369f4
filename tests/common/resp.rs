//! A minimal blocking RESP2/RESP3 client for tests: send a command, read one reply as a tree.
//! Deliberately independent from respgate's own parser and encoder, so tests check them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Vec<u8>),
    NullBulk,
    NullArray,
    Null,
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Set(Vec<Value>),
    Double(String),
    Bool(bool),
    Verbatim(String, Vec<u8>),
    BigNumber(String),
    Push(Vec<Value>),
}

impl Value {
    /// A canonical form for order-insensitive comparison: arrays, sets and maps sorted.
    pub fn sorted(&self) -> Value {
        let key = |v: &Value| format!("{v:?}");
        match self {
            Value::Array(v) | Value::Set(v) | Value::Push(v) => {
                let mut items: Vec<Value> = v.iter().map(|x| x.sorted()).collect();
                items.sort_by_key(key);
                match self {
                    Value::Set(_) => Value::Set(items),
                    Value::Push(_) => Value::Push(items),
                    _ => Value::Array(items),
                }
            }
            Value::Map(pairs) => {
                let mut p: Vec<(Value, Value)> = pairs
                    .iter()
                    .map(|(k, v)| (k.sorted(), v.sorted()))
                    .collect();
                p.sort_by_key(|(k, _)| key(k));
                Value::Map(p)
            }
            other => other.clone(),
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) | Value::Verbatim(_, b) => Some(b),
            Value::Simple(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Value::Error(_))
    }
}

pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    /// Like [`Conn::connect`], but None instead of a panic when nobody listens.
    pub fn try_connect(addr: &str) -> Option<Conn> {
        let s = TcpStream::connect(addr).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
        Some(Conn {
            writer: s.try_clone().ok()?,
            reader: BufReader::new(s),
        })
    }

    pub fn connect(addr: &str) -> Conn {
        let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Conn {
            writer: s.try_clone().unwrap(),
            reader: BufReader::new(s),
        }
    }

    pub fn encode(args: &[&[u8]]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    pub fn send(&mut self, args: &[&[u8]]) {
        self.writer.write_all(&Self::encode(args)).unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes)
    }

    pub fn cmd(&mut self, args: &[&[u8]]) -> Value {
        self.send(args);
        self.read()
    }

    /// Convenience: whitespace-separated command.
    pub fn cmd_str(&mut self, line: &str) -> Value {
        let parts: Vec<&[u8]> = line.split_whitespace().map(|s| s.as_bytes()).collect();
        self.cmd(&parts)
    }

    pub fn read(&mut self) -> Value {
        self.try_read().expect("reading a reply")
    }

    pub fn try_read(&mut self) -> std::io::Result<Value> {
        read_value(&mut self.reader)
    }

    /// True when nothing arrives within `wait` (for "no push was sent" checks).
    pub fn nothing_within(&mut self, wait: Duration) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        let _ = self.reader.get_ref().set_read_timeout(Some(wait));
        let quiet = match self.reader.fill_buf() {
            Ok(b) => b.is_empty(),
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        let _ = self
            .reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(20)));
        quiet
    }

    /// The next value if one arrives within `wait` (None: nothing came).
    pub fn try_read_within(&mut self, wait: Duration) -> Option<Value> {
        if self.reader.buffer().is_empty() && self.nothing_within(wait) {
            return None;
        }
        self.try_read().ok()
    }

    /// True once the server has closed the connection (read returns EOF).
    pub fn is_closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
    }
}

fn line<R: BufRead>(r: &mut R) -> std::io::Result<String> {
    let mut buf = Vec::new();
    r.read_until(b'\n', &mut buf)?;
    if buf.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "closed",
        ));
    }
    if !buf.ends_with(b"\r\n") {
        return Err(std::io::Error::other(format!(
            "bad line {:?}",
            String::from_utf8_lossy(&buf)
        )));
    }
    buf.truncate(buf.len() - 2);
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn bulk<R: BufRead>(r: &mut R, len: usize) -> std::io::Result<Vec<u8>> {
    let mut b = vec![0u8; len + 2];
    r.read_exact(&mut b)?;
    b.truncate(len);
    Ok(b)
}

fn num(s: &str) -> std::io::Result<i64> {
    s.parse()
        .map_err(|_| std::io::Error::other(format!("bad number {s:?}")))
}

pub fn read_value<R: BufRead>(r: &mut R) -> std::io::Result<Value> {
    let l = line(r)?;
    let (t, rest) = l.split_at(1);
    Ok(match t {
        "+" => Value::Simple(rest.into()),
        "-" => Value::Error(rest.into()),
        ":" => Value::Int(num(rest)?),
        "$" => match num(rest)? {
            -1 => Value::NullBulk,
            n => Value::Bulk(bulk(r, n as usize)?),
        },
        "*" | "~" | ">" => {
            let n = num(rest)?;
            if n < 0 {
                Value::NullArray
            } else {
                let mut v = Vec::new();
                for _ in 0..n {
                    v.push(read_value(r)?);
                }
                match t {
                    "*" => Value::Array(v),
                    "~" => Value::Set(v),
                    _ => Value::Push(v),
                }
            }
        }
        "%" => {
            let n = num(rest)?;
            let mut v = Vec::new();
            for _ in 0..n {
                let k = read_value(r)?;
                v.push((k, read_value(r)?));
            }
            Value::Map(v)
        }
        "_" => Value::Null,
        "," => Value::Double(rest.into()),
        "#" => Value::Bool(rest == "t"),
        "(" => Value::BigNumber(rest.into()),
        "=" => {
            let b = bulk(r, num(rest)? as usize)?;
            let fmt = String::from_utf8_lossy(&b[..3.min(b.len())]).into_owned();
            Value::Verbatim(fmt, b.get(4..).unwrap_or_default().to_vec())
        }
        _ => return Err(std::io::Error::other(format!("unknown reply type {l:?}"))),
    })
}

/// Splits a script line into arguments the way redis-cli does: whitespace separates,
/// "double quotes" with \n \r \t \" \\ \xHH escapes, 'single quotes' literal.
pub fn split_args(line: &str) -> Vec<Vec<u8>> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let mut cur = Vec::new();
        if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                    match b[i] {
                        b'n' => cur.push(b'\n'),
                        b'r' => cur.push(b'\r'),
                        b't' => cur.push(b'\t'),
                        b'x' if i + 2 < b.len() => {
                            let h = std::str::from_utf8(&b[i + 1..i + 3]).unwrap();
                            cur.push(u8::from_str_radix(h, 16).unwrap());
                            i += 2;
                        }
                        c => cur.push(c),
                    }
                } else {
                    cur.push(b[i]);
                }
                i += 1;
            }
            i += 1;
        } else if b[i] == b'\'' {
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                cur.push(b[i]);
                i += 1;
            }
            i += 1;
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                cur.push(b[i]);
                i += 1;
            }
        }
        out.push(cur);
    }
    out
}
