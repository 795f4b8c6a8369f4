//! Reading whole RESP2/RESP3 frames (as [`ReplyScanner`] cuts them) without copying: the
//! elements of an aggregate as raw sub-frames, integers and errors; and a decoder into
//! [`Frame`] that, unlike `reply_scan::decode`, walks maps, attributes and RESP3 scalars
//! correctly (CLUSTER SLOTS replies carry a metadata map per node in RESP3, and a decoder
//! that stops at the map would lose its place in the rest of the reply).
//!
//! Merging split replies works on raw sub-frames on purpose: values are copied byte for byte,
//! so a RESP2 null (`$-1`) stays a RESP2 null and a RESP3 null (`_`) a RESP3 null.

use bytes::Bytes;

use crate::protocol::reply_scan::{Frame, ReplyScanner};

/// Deepest nesting [`decode`] follows; no reply respgate reads itself comes close.
const MAX_DEPTH: usize = 16;

/// The header line of the frame at `pos`: its type byte, the line, and where the body starts.
fn header(buf: &[u8], pos: usize) -> Option<(u8, &[u8], usize)> {
    let kind = *buf.get(pos)?;
    let rest = buf.get(pos + 1..)?;
    let end = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((kind, &rest[..end], pos + 1 + end + 2))
}

fn parse_int(line: &[u8]) -> Option<i64> {
    std::str::from_utf8(line).ok()?.parse().ok()
}

/// True for an error reply (`-...` or RESP3 `!len`).
pub fn is_error(frame: &[u8]) -> bool {
    matches!(frame.first(), Some(b'-' | b'!'))
}

/// True for a null reply in either protocol (`$-1`, `*-1`, `_`).
pub fn is_null(frame: &[u8]) -> bool {
    frame.starts_with(b"_\r\n") || frame.starts_with(b"$-1\r\n") || frame.starts_with(b"*-1\r\n")
}

/// The value of an integer reply (`:n`).
pub fn integer(frame: &[u8]) -> Option<i64> {
    match header(frame, 0)? {
        (b':', line, _) => parse_int(line),
        _ => None,
    }
}

/// The text of an error reply, without `-` / `!len` framing.
pub fn error_text(frame: &[u8]) -> Option<&[u8]> {
    match header(frame, 0)? {
        (b'-', line, _) => Some(line),
        (b'!', line, body) => {
            let len = usize::try_from(parse_int(line)?).ok()?;
            frame.get(body..body.checked_add(len)?)
        }
        _ => None,
    }
}

/// The elements of an array, set or push frame, each as its own complete raw frame, with
/// the aggregate's type byte. None for anything else (including null arrays) or if the frame
/// is truncated.
pub fn elements(frame: &[u8]) -> Option<(u8, Vec<&[u8]>)> {
    let (kind, line, mut pos) = header(frame, 0)?;
    if !matches!(kind, b'*' | b'~' | b'>') {
        return None;
    }
    let n = usize::try_from(parse_int(line)?).ok()?;
    // The count comes from the backend: do not trust it for the allocation.
    let mut items = Vec::with_capacity(n.min(1024));
    let mut scanner = ReplyScanner::new();
    for _ in 0..n {
        let len = scanner.scan(frame.get(pos..)?).ok()??;
        items.push(&frame[pos..pos + len]);
        pos += len;
    }
    Some((kind, items))
}

/// Decodes one complete frame into a [`Frame`]: arrays, sets and pushes as `Array`; maps as
/// an `Array` of alternating keys and values; attributes are skipped (the annotated value is
/// returned); doubles, booleans and big numbers as `Other`. None if malformed or nested
/// deeper than [`MAX_DEPTH`].
pub fn decode(frame: &Bytes) -> Option<Frame> {
    let mut pos = 0;
    decode_at(frame, &mut pos, 0)
}

fn decode_at(buf: &Bytes, pos: &mut usize, depth: usize) -> Option<Frame> {
    if depth > MAX_DEPTH {
        return None;
    }
    let (kind, line, body) = header(buf, *pos)?;
    let line = buf.slice(*pos + 1..*pos + 1 + line.len());
    *pos = body;
    Some(match kind {
        b'+' => Frame::Simple(line),
        b'-' => Frame::Error(line),
        b':' => Frame::Integer(parse_int(&line)?),
        b'_' => Frame::Null,
        b',' | b'#' | b'(' => Frame::Other,
        b'$' | b'!' | b'=' => {
            let n = parse_int(&line)?;
            if n < 0 {
                return Some(Frame::Null);
            }
            let start = *pos;
            let stop = start.checked_add(usize::try_from(n).ok()?)?;
            let end = stop.checked_add(2)?;
            if buf.get(stop..end)? != b"\r\n" {
                return None;
            }
            *pos = end;
            let body = buf.slice(start..stop);
            if kind == b'!' {
                Frame::Error(body)
            } else {
                Frame::Bulk(body)
            }
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = parse_int(&line)?;
            if n < 0 {
                return Some(Frame::Null);
            }
            let n = usize::try_from(n).ok()?;
            let count = if matches!(kind, b'%' | b'|') {
                n.checked_mul(2)?
            } else {
                n
            };
            let mut items = Vec::with_capacity(count.min(1024));
            for _ in 0..count {
                items.push(decode_at(buf, pos, depth + 1)?);
            }
            if kind == b'|' {
                // An attribute annotates the frame that follows it: return that frame.
                return decode_at(buf, pos, depth);
            }
            Frame::Array(items)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &'static [u8]) -> Bytes {
        Bytes::from_static(s)
    }

    #[test]
    fn elements_are_raw_subframes() {
        let f = b"*4\r\n$1\r\na\r\n$-1\r\n_\r\n*2\r\n:1\r\n%1\r\n+k\r\n+v\r\n";
        let (kind, items) = elements(f).expect("array");
        assert_eq!(kind, b'*');
        assert_eq!(
            items,
            vec![
                &b"$1\r\na\r\n"[..],
                b"$-1\r\n",
                b"_\r\n",
                b"*2\r\n:1\r\n%1\r\n+k\r\n+v\r\n"
            ]
        );
        assert_eq!(elements(b"*0\r\n"), Some((b'*', vec![])));
        assert_eq!(elements(b"*-1\r\n"), None);
        assert_eq!(elements(b":1\r\n"), None);
        // Truncated: a count the body does not hold.
        assert_eq!(elements(b"*3\r\n:1\r\n"), None);
        assert_eq!(elements(b"*99999999999\r\n"), None);
    }

    #[test]
    fn scalars() {
        assert_eq!(integer(b":42\r\n"), Some(42));
        assert_eq!(integer(b":-1\r\n"), Some(-1));
        assert_eq!(integer(b"+42\r\n"), None);
        assert!(is_error(b"-ERR x\r\n"));
        assert!(is_error(b"!3\r\nbad\r\n"));
        assert!(!is_error(b"+OK\r\n"));
        assert_eq!(error_text(b"-MOVED 1 h:1\r\n"), Some(&b"MOVED 1 h:1"[..]));
        assert_eq!(error_text(b"!3\r\nbad\r\n"), Some(&b"bad"[..]));
        assert_eq!(error_text(b"!9\r\nbad\r\n"), None);
        assert!(is_null(b"$-1\r\n") && is_null(b"_\r\n") && is_null(b"*-1\r\n"));
        assert!(!is_null(b"$0\r\n\r\n"));
    }

    #[test]
    fn decodes_maps_attributes_and_resp3_scalars_in_place() {
        let f = b(b"*3\r\n%1\r\n$8\r\nhostname\r\n$1\r\nh\r\n|1\r\n+a\r\n+b\r\n:7\r\n#t\r\n");
        assert_eq!(
            decode(&f),
            Some(Frame::Array(vec![
                Frame::Array(vec![Frame::Bulk(b(b"hostname")), Frame::Bulk(b(b"h"))]),
                Frame::Integer(7),
                Frame::Other,
            ]))
        );
        assert_eq!(decode(&b(b"!3\r\nbad\r\n")), Some(Frame::Error(b(b"bad"))));
        assert_eq!(decode(&b(b"$3\r\nab\r\n")), None);
        assert_eq!(decode(&b(b"$5\r\nab\r\n")), None);
        assert_eq!(decode(&b(b"?\r\n")), None);
        let deep = Bytes::from(b"*1\r\n".repeat(MAX_DEPTH + 2));
        assert_eq!(decode(&deep), None);
    }
}
