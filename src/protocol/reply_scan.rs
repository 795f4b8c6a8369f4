//! Cutting a backend's reply stream into whole RESP2/RESP3 frames without decoding them, so
//! replies can be passed to clients byte for byte; plus a small decoder for the few frames
//! respgate itself must read (pub/sub messages, handshake replies).
//!
//! The scanner is resumable: it remembers how far into the current frame it got and how many
//! elements each open aggregate still owes, so a reply arriving in many reads costs
//! O(bytes), and nesting lives on a heap stack (no recursion) bounded by `MAX_DEPTH`.

use bytes::Bytes;

/// Deepest nesting accepted from a backend (Redis itself caps Lua replies far lower).
const MAX_DEPTH: usize = 4096;
/// Longest header or simple line accepted from a backend.
const MAX_LINE: usize = 64 * 1024 * 1024;

/// A backend sent something that is not RESP: the connection cannot be trusted any more.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    #[error("backend protocol error: unexpected type byte {0:#04x}")]
    BadType(u8),
    #[error("backend protocol error: invalid length {0:?}")]
    BadLength(String),
    #[error("backend protocol error: nesting deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("backend protocol error: line longer than {MAX_LINE} bytes")]
    LineTooLong,
}

/// Finds where complete frames end in a growing buffer whose start is a frame's start.
#[derive(Debug, Default)]
pub struct ReplyScanner {
    /// Bytes of the current frame already walked.
    pos: usize,
    /// Elements still owed by each open aggregate, innermost last.
    owed: Vec<usize>,
}

impl ReplyScanner {
    pub fn new() -> ReplyScanner {
        ReplyScanner::default()
    }

    /// Length of the first complete frame in `buf`, or None if more bytes are needed. After
    /// `Some(n)` the caller removes those n bytes, and the next call starts a new frame.
    #[inline(always)]
    pub fn scan(&mut self, buf: &[u8]) -> Result<Option<usize>, ScanError> {
        if self.pos == 0
            && self.owed.is_empty()
            && let Some(n) = short_frame(buf)
        {
            return Ok(Some(n));
        }
        self.walk(buf)
    }

    /// [`Self::scan`] for any frame, resuming where the last call stopped.
    #[inline(never)]
    fn walk(&mut self, buf: &[u8]) -> Result<Option<usize>, ScanError> {
        loop {
            let Some(&kind) = buf.get(self.pos) else {
                return Ok(None);
            };
            let Some(line_end) = find_crlf(buf, self.pos + 1)? else {
                return Ok(None);
            };
            let line = &buf[self.pos + 1..line_end];
            let after_line = line_end + 2;
            match kind {
                b'+' | b'-' | b':' | b'_' | b'#' | b',' | b'(' => {
                    self.pos = after_line;
                }
                b'$' | b'!' | b'=' => {
                    let len = parse_len(line)?;
                    if len < 0 {
                        self.pos = after_line;
                    } else {
                        let end = after_line + len as usize + 2;
                        if buf.len() < end {
                            return Ok(None);
                        }
                        self.pos = end;
                    }
                }
                b'*' | b'~' | b'>' | b'%' | b'|' => {
                    let n = parse_len(line)?;
                    self.pos = after_line;
                    if n > 0 {
                        let n = n as usize;
                        let owed = match kind {
                            b'%' => n.saturating_mul(2),
                            // An attribute's pairs, then the frame it annotates.
                            b'|' => n.saturating_mul(2).saturating_add(1),
                            _ => n,
                        };
                        if self.owed.len() >= MAX_DEPTH {
                            return Err(ScanError::TooDeep);
                        }
                        self.owed.push(owed);
                        continue;
                    }
                }
                other => return Err(ScanError::BadType(other)),
            }
            // One element is complete: settle it with the aggregates above it.
            loop {
                match self.owed.last_mut() {
                    None => {
                        let n = self.pos;
                        self.pos = 0;
                        return Ok(Some(n));
                    }
                    Some(left) => {
                        *left -= 1;
                        if *left > 0 {
                            break;
                        }
                        self.owed.pop();
                    }
                }
            }
        }
    }
}

/// The length of the whole frame at the start of `buf` when it is one of the commonest
/// replies and complete: a bulk string with a one- or two-digit length, a null bulk, or a
/// short simple string, error or integer. None: the general scan decides (it gives the
/// same length).
#[inline(always)]
fn short_frame(buf: &[u8]) -> Option<usize> {
    let end = match *buf {
        [b'$', d @ b'0'..=b'9', b'\r', b'\n', ..] => 4 + usize::from(d - b'0') + 2,
        [b'$', d1 @ b'1'..=b'9', d0 @ b'0'..=b'9', b'\r', b'\n', ..] => {
            5 + usize::from(d1 - b'0') * 10 + usize::from(d0 - b'0') + 2
        }
        [b'$', b'-', b'1', b'\r', b'\n', ..] => 5,
        [b'+' | b'-' | b':', ..] => {
            // Within the first few bytes, or not short.
            let cr = buf.iter().take(32).position(|&b| b == b'\r')?;
            if buf.get(cr + 1) != Some(&b'\n') {
                return None;
            }
            cr + 2
        }
        _ => return None,
    };
    (buf.len() >= end).then_some(end)
}

fn find_crlf(buf: &[u8], from: usize) -> Result<Option<usize>, ScanError> {
    let hay = buf.get(from..).unwrap_or_default();
    let limit = hay.len().min(MAX_LINE + 1);
    // Lines are short (headers, simple replies): a plain scan for CR beats comparing pairs.
    let mut at = 0;
    while let Some(i) = hay[at..limit].iter().position(|&b| b == b'\r') {
        let cr = at + i;
        if hay.get(cr + 1) == Some(&b'\n') && cr + 1 < limit {
            return Ok(Some(from + cr));
        }
        at = cr + 1;
    }
    if hay.len() > MAX_LINE {
        Err(ScanError::LineTooLong)
    } else {
        Ok(None)
    }
}

fn parse_len(line: &[u8]) -> Result<i64, ScanError> {
    // Nearly every length is a few plain digits or a null's -1: read them without the text
    // round trip.
    if line == b"-1" {
        return Ok(-1);
    }
    if !line.is_empty() && line.len() <= 18 && line.iter().all(u8::is_ascii_digit) {
        return Ok(line.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0')));
    }
    let bad = || ScanError::BadLength(String::from_utf8_lossy(line).into_owned());
    let text = std::str::from_utf8(line).map_err(|_| bad())?;
    let n: i64 = text.parse().map_err(|_| bad())?;
    if n < -1 {
        return Err(bad());
    }
    Ok(n)
}

/// A decoded frame, for the few replies respgate reads itself. Kinds it never needs to look
/// into are kept as `Other`.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Simple(Bytes),
    Error(Bytes),
    Integer(i64),
    Bulk(Bytes),
    Null,
    /// Arrays, sets and push frames alike.
    Array(Vec<Frame>),
    Other,
}

impl Frame {
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Frame::Simple(b) | Frame::Bulk(b) => Some(b),
            _ => None,
        }
    }
}

/// Decodes one complete frame (as cut by [`ReplyScanner`]). Nesting deeper than a few levels
/// is not needed by any caller and decodes as `Other`.
pub fn decode(frame: &Bytes) -> Frame {
    let mut pos = 0;
    decode_at(frame, &mut pos, 0).unwrap_or(Frame::Other)
}

fn decode_at(buf: &Bytes, pos: &mut usize, depth: usize) -> Option<Frame> {
    let kind = *buf.get(*pos)?;
    let end = find_crlf(buf, *pos + 1).ok()??;
    let line = buf.slice(*pos + 1..end);
    *pos = end + 2;
    Some(match kind {
        b'+' => Frame::Simple(line),
        b'-' => Frame::Error(line),
        b':' => Frame::Integer(std::str::from_utf8(&line).ok()?.parse().ok()?),
        b'_' => Frame::Null,
        b'$' | b'!' | b'=' => {
            let n = parse_len(&line).ok()?;
            if n < 0 {
                return Some(Frame::Null);
            }
            let start = *pos;
            let stop = start + n as usize;
            *pos = stop + 2;
            let body = buf.get(start..stop).map(|_| buf.slice(start..stop))?;
            if kind == b'!' {
                Frame::Error(body)
            } else {
                Frame::Bulk(body)
            }
        }
        b'*' | b'~' | b'>' => {
            let n = parse_len(&line).ok()?;
            if n < 0 {
                return Some(Frame::Null);
            }
            if depth > 8 {
                return None;
            }
            let mut items = Vec::with_capacity((n as usize).min(64));
            for _ in 0..n {
                items.push(decode_at(buf, pos, depth + 1)?);
            }
            Frame::Array(items)
        }
        _ => Frame::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8], chunk: usize) -> Vec<Vec<u8>> {
        let mut scanner = ReplyScanner::new();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for piece in input.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(n) = scanner.scan(&buf).expect("valid input") {
                out.push(buf.drain(..n).collect());
            }
        }
        assert!(buf.is_empty(), "leftover bytes");
        out
    }

    const STREAM: &[u8] = b"+OK\r\n-ERR x\r\n:12\r\n$3\r\nabc\r\n$-1\r\n*-1\r\n*0\r\n\
*2\r\n$1\r\na\r\n*2\r\n:1\r\n:2\r\n%1\r\n+k\r\n*1\r\n_\r\n~2\r\n#t\r\n,1.5\r\n\
>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$0\r\n\r\n=8\r\ntxt:abcd\r\n|1\r\n+a\r\n+b\r\n:7\r\n(123\r\n!3\r\nbad\r\n";

    #[test]
    fn cuts_every_kind_of_frame_whatever_the_read_size() {
        let whole = frames(STREAM, STREAM.len());
        assert_eq!(whole.len(), 15);
        assert_eq!(whole[7], b"*2\r\n$1\r\na\r\n*2\r\n:1\r\n:2\r\n".to_vec());
        assert_eq!(whole[12], b"|1\r\n+a\r\n+b\r\n:7\r\n".to_vec());
        for chunk in [1, 2, 3, 7, 13] {
            assert_eq!(frames(STREAM, chunk), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn finds_line_ends_past_a_lone_cr_and_reads_lengths_exactly() {
        let mut s = ReplyScanner::new();
        assert_eq!(s.scan(b"+a\rb\r\n:1\r\n"), Ok(Some(6)));
        assert_eq!(s.scan(b"+a\r"), Ok(None));
        let mut s = ReplyScanner::new();
        assert_eq!(s.scan(b"$-1\r\n"), Ok(Some(5)));
        assert_eq!(s.scan(b"$12\r\n0123456789\r\n\r\n"), Ok(Some(19)));
        assert_eq!(s.scan(b"$010\r\n0123456789\r\n"), Ok(Some(18)));
        let mut s = ReplyScanner::new();
        assert!(matches!(
            s.scan(b"$99999999999999999999\r\n"),
            Err(ScanError::BadLength(_))
        ));
    }

    #[test]
    fn short_frames_are_cut_as_the_general_walk_cuts_them() {
        let frames: &[&[u8]] = &[
            b"$3\r\nabc\r\n",
            b"$0\r\n\r\n",
            b"$16\r\n0123456789abcdef\r\n",
            b"$99\r\n",
            b"$-1\r\n",
            b"$-2\r\n",
            b"$010\r\n0123456789\r\n",
            b"$1\rx\r\n",
            b"+OK\r\n",
            b"+a\rb\r\n",
            b"-ERR wrong\r\n",
            b":-12\r\n",
            b":1\n\r\n",
            b"+a\r",
        ];
        for frame in frames {
            let long = [*frame, &b"x".repeat(40)[..], b"\r\n"].concat();
            for whole in [frame.to_vec(), [*frame, &b"+next\r\n"[..]].concat(), long] {
                for cut in 0..=whole.len() {
                    let buf = &whole[..cut];
                    let general = ReplyScanner::new().walk(buf);
                    if let Some(n) = short_frame(buf) {
                        assert_eq!(general, Ok(Some(n)), "{:?}", String::from_utf8_lossy(buf));
                    }
                    assert_eq!(ReplyScanner::new().scan(buf), general);
                }
            }
        }
    }

    #[test]
    fn rejects_garbage_and_excess_nesting() {
        let mut s = ReplyScanner::new();
        assert_eq!(s.scan(b"?x\r\n"), Err(ScanError::BadType(b'?')));
        let mut s = ReplyScanner::new();
        assert!(matches!(s.scan(b"$-5\r\n"), Err(ScanError::BadLength(_))));
        let deep = b"*1\r\n".repeat(MAX_DEPTH + 1);
        let mut s = ReplyScanner::new();
        assert_eq!(s.scan(&deep), Err(ScanError::TooDeep));
    }

    #[test]
    fn decodes_pubsub_messages() {
        let f = Bytes::from_static(b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n");
        assert_eq!(
            decode(&f),
            Frame::Array(vec![
                Frame::Bulk(Bytes::from_static(b"message")),
                Frame::Bulk(Bytes::from_static(b"ch")),
                Frame::Bulk(Bytes::from_static(b"hi")),
            ])
        );
        assert_eq!(
            decode(&Bytes::from_static(b"-ERR no\r\n")),
            Frame::Error("ERR no".into())
        );
    }
}
