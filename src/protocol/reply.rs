//! Replies as values, and their encoding to RESP2 or RESP3 bytes.
//!
//! Engine and command code build a [`Reply`] without caring about the client's protocol version;
//! [`Reply::encode`] applies RESP2 downgrades (maps to flat arrays, doubles to bulk strings, ...)
//! exactly as Redis does. We write this by hand rather than through redis-protocol's frame types
//! because the encoder is tiny, sits on the hot path and must never allocate per reply.

use bytes::{BufMut, Bytes, BytesMut};

/// The protocol version a connection speaks (`HELLO 2` / `HELLO 3`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Protocol {
    #[default]
    Resp2,
    Resp3,
}

/// One reply, in the richest (RESP3) shape; RESP2 clients get Redis's downgrade of it.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+OK`
    Simple(&'static str),
    /// `+...` with an owned text (e.g. TYPE's reply, PING's "PONG" is `Simple`).
    Status(String),
    /// `-ERR ...`: the text without the leading `-` and without CRLF.
    Error(String),
    Integer(i64),
    Bulk(Bytes),
    /// Null bulk in RESP2 (`$-1`), `_` in RESP3.
    Null,
    /// Null array in RESP2 (`*-1`), `_` in RESP3.
    NullArray,
    Array(Vec<Reply>),
    /// RESP3 map; RESP2 gets a flat array of key, value, key, value.
    Map(Vec<(Reply, Reply)>),
    /// RESP3 set; RESP2 gets an array.
    Set(Vec<Reply>),
    /// RESP3 double; RESP2 gets a bulk string formatted like Redis (`%.17g` style).
    Double(f64),
    /// A double already formatted, for replies Redis prints another way than `%.17g`
    /// (GEO coordinates use its "human" long-double format): RESP3 `,text`, RESP2 a bulk.
    DoubleText(String),
    /// RESP3 boolean; RESP2 gets integer 1/0.
    Boolean(bool),
    /// RESP3 verbatim string (`=`) with a 3-letter format; RESP2 gets a bulk string.
    Verbatim(&'static str, Bytes),
    /// RESP3 big number; RESP2 gets a bulk string.
    BigNumber(String),
    /// RESP3 push frame; RESP2 gets an array (pub/sub messages).
    Push(Vec<Reply>),
}

impl Reply {
    pub const OK: Reply = Reply::Simple("OK");

    pub fn ok() -> Reply {
        Reply::OK
    }

    /// An error reply; `msg` starts with the error code (`ERR ...`, `WRONGTYPE ...`).
    pub fn err(msg: impl Into<String>) -> Reply {
        Reply::Error(msg.into())
    }

    pub fn bulk(b: impl Into<Bytes>) -> Reply {
        Reply::Bulk(b.into())
    }

    pub fn bulk_str(s: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(s.as_bytes()))
    }

    pub fn bulk_int(i: i64) -> Reply {
        let mut buf = itoa::Buffer::new();
        Reply::Bulk(Bytes::copy_from_slice(buf.format(i).as_bytes()))
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Appends the wire form of this reply for a client speaking `proto`.
    pub fn encode(&self, proto: Protocol, out: &mut BytesMut) {
        match self {
            Reply::Simple(s) => simple_line(out, b'+', s.as_bytes()),
            Reply::Status(s) => simple_line(out, b'+', s.as_bytes()),
            Reply::Error(s) => simple_line(out, b'-', s.as_bytes()),
            Reply::Integer(i) => {
                let mut buf = itoa::Buffer::new();
                simple_line(out, b':', buf.format(*i).as_bytes())
            }
            Reply::Bulk(b) => bulk(out, b),
            Reply::Null => match proto {
                Protocol::Resp2 => out.put_slice(b"$-1\r\n"),
                Protocol::Resp3 => out.put_slice(b"_\r\n"),
            },
            Reply::NullArray => match proto {
                Protocol::Resp2 => out.put_slice(b"*-1\r\n"),
                Protocol::Resp3 => out.put_slice(b"_\r\n"),
            },
            Reply::Array(items) => {
                header(out, b'*', items.len());
                for item in items {
                    item.encode(proto, out);
                }
            }
            Reply::Set(items) => {
                header(
                    out,
                    if proto == Protocol::Resp3 { b'~' } else { b'*' },
                    items.len(),
                );
                for item in items {
                    item.encode(proto, out);
                }
            }
            Reply::Push(items) => {
                header(
                    out,
                    if proto == Protocol::Resp3 { b'>' } else { b'*' },
                    items.len(),
                );
                for item in items {
                    item.encode(proto, out);
                }
            }
            Reply::Map(pairs) => {
                match proto {
                    Protocol::Resp3 => header(out, b'%', pairs.len()),
                    Protocol::Resp2 => header(out, b'*', pairs.len() * 2),
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Reply::Double(d) => {
                let text = format_double(*d);
                match proto {
                    Protocol::Resp3 => simple_line(out, b',', text.as_bytes()),
                    Protocol::Resp2 => bulk(out, text.as_bytes()),
                }
            }
            Reply::DoubleText(text) => match proto {
                Protocol::Resp3 => simple_line(out, b',', text.as_bytes()),
                Protocol::Resp2 => bulk(out, text.as_bytes()),
            },
            Reply::Boolean(b) => match proto {
                Protocol::Resp3 => out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
                Protocol::Resp2 => out.put_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
            },
            Reply::Verbatim(fmt, b) => match proto {
                Protocol::Resp3 => {
                    header(out, b'=', b.len() + 4);
                    out.put_slice(fmt.as_bytes());
                    out.put_u8(b':');
                    out.put_slice(b);
                    out.put_slice(b"\r\n");
                }
                Protocol::Resp2 => bulk(out, b),
            },
            Reply::BigNumber(n) => match proto {
                Protocol::Resp3 => simple_line(out, b'(', n.as_bytes()),
                Protocol::Resp2 => bulk(out, n.as_bytes()),
            },
        }
    }
}

/// Formats a double the way Redis's RESP3 `addReplyDouble` does (`%.17g`, with `inf`/`-inf`/`nan`).
pub fn format_double(d: f64) -> String {
    if d.is_nan() {
        return "nan".into();
    }
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    format_g17(d)
}

/// C's `%.17g`: 17 significant digits, shortest of fixed or exponent form, trailing zeros removed.
pub fn format_g17(d: f64) -> String {
    format_g(d, 17)
}

/// C's `%.<precision>g` for finite values.
pub fn format_g(d: f64, precision: usize) -> String {
    if d == 0.0 {
        return if d.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let p = precision.max(1);
    // Exponent as printed by %e with p-1 digits after the point.
    let sci = format!("{:.*e}", p - 1, d);
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m.to_string(), e.parse::<i32>().unwrap_or(0)),
        None => (sci.clone(), 0),
    };
    if exp < -4 || exp >= p as i32 {
        let m = trim_zeros(&mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{}{:02}", m, sign, exp.abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{:.*}", decimals, d))
    }
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        let t = s.trim_end_matches('0');
        t.trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

fn simple_line(out: &mut BytesMut, prefix: u8, text: &[u8]) {
    out.reserve(text.len() + 3);
    out.put_u8(prefix);
    out.put_slice(text);
    out.put_slice(b"\r\n");
}

fn header(out: &mut BytesMut, prefix: u8, len: usize) {
    let mut buf = itoa::Buffer::new();
    simple_line(out, prefix, buf.format(len).as_bytes());
}

fn bulk(out: &mut BytesMut, b: &[u8]) {
    header(out, b'$', b.len());
    out.reserve(b.len() + 2);
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(r: &Reply, p: Protocol) -> Vec<u8> {
        let mut out = BytesMut::new();
        r.encode(p, &mut out);
        out.to_vec()
    }

    #[test]
    fn map_downgrades_to_flat_array_in_resp2() {
        let m = Reply::Map(vec![(Reply::bulk_str("a"), Reply::Integer(1))]);
        assert_eq!(enc(&m, Protocol::Resp2), b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&m, Protocol::Resp3), b"%1\r\n$1\r\na\r\n:1\r\n");
    }

    #[test]
    fn nulls_booleans_doubles() {
        assert_eq!(enc(&Reply::Null, Protocol::Resp2), b"$-1\r\n");
        assert_eq!(enc(&Reply::NullArray, Protocol::Resp2), b"*-1\r\n");
        assert_eq!(enc(&Reply::Null, Protocol::Resp3), b"_\r\n");
        assert_eq!(enc(&Reply::Boolean(true), Protocol::Resp3), b"#t\r\n");
        assert_eq!(enc(&Reply::Boolean(false), Protocol::Resp2), b":0\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Protocol::Resp3), b",1.5\r\n");
        assert_eq!(enc(&Reply::Double(1.5), Protocol::Resp2), b"$3\r\n1.5\r\n");
        let human = Reply::DoubleText("13.36138933897018433".into());
        assert_eq!(enc(&human, Protocol::Resp3), b",13.36138933897018433\r\n");
        assert_eq!(
            enc(&human, Protocol::Resp2),
            b"$20\r\n13.36138933897018433\r\n"
        );
        assert_eq!(
            enc(
                &Reply::Verbatim("txt", Bytes::from_static(b"hi")),
                Protocol::Resp3
            ),
            b"=6\r\ntxt:hi\r\n"
        );
        assert_eq!(
            enc(&Reply::Push(vec![Reply::Integer(1)]), Protocol::Resp3),
            b">1\r\n:1\r\n"
        );
    }

    #[test]
    fn g17_matches_c() {
        assert_eq!(format_g17(3.0), "3");
        assert_eq!(format_g17(0.1), "0.10000000000000001");
        assert_eq!(format_g17(1e20), "1e+20");
        assert_eq!(format_g17(1.5e-7), "1.4999999999999999e-07");
        assert_eq!(format_g17(10.5), "10.5");
    }
}
