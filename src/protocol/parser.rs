//! The client request parser: RESP multibulk and inline commands, resumable across reads,
//! with explicit limits.
//!
//! We do not use redis-protocol's decoder for client input (see DESIGN.md, "Known traps"): it
//! has no nesting or size limits, re-parses a partial frame from the start on every read, and
//! has no inline commands. This parser is a flat state machine: it remembers the multibulk
//! count, the arguments collected so far, the pending bulk length and how far it already
//! searched for a line end, so a command trickled in byte by byte costs O(bytes). Arguments
//! are zero-copy slices of the read buffer.

use bytes::{Buf, Bytes, BytesMut};

/// Redis's PROTO_INLINE_MAX_SIZE: also the longest `*N` / `$N` header line accepted.
const MAX_HEADER_LINE: usize = 64 * 1024;
/// Commands with more arguments than this skip the one-slice path.
const WHOLE_MAX_ARGS: i64 = 128;
/// Most commands cut from the buffer in one run, and most of their arguments (a run's
/// bookkeeping stays a few KiB per connection whatever a client pipelines; one reference
/// count shared by 64 commands is already nearly free).
const RUN_MAX_COMMANDS: usize = 64;
const RUN_MAX_ARGS: usize = 512;
/// Reads go into at least this much free buffer space.
const READ_CHUNK: usize = 16 * 1024;

/// Limits on what one client may send; breaking one is a protocol error.
#[derive(Debug, Clone)]
pub struct ParserLimits {
    /// Largest bulk argument (Redis's proto-max-bulk-len, default 512 MiB).
    pub max_bulk_len: usize,
    /// Most arguments in one command.
    pub max_args: usize,
    /// Most unparsed bytes buffered (Redis's client-query-buffer-limit, default 1 GiB).
    pub max_query_buffer: usize,
    /// Longest inline command line (Redis's PROTO_INLINE_MAX_SIZE, 64 KiB).
    pub max_inline_len: usize,
}

impl Default for ParserLimits {
    fn default() -> Self {
        ParserLimits {
            max_bulk_len: 512 * 1024 * 1024,
            max_args: 1024 * 1024,
            max_query_buffer: 1024 * 1024 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// A client broke the protocol. `Display` is Redis's error text (without `-` and CRLF);
/// the connection is closed after sending it, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("ERR Protocol error: invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("ERR Protocol error: invalid bulk length")]
    InvalidBulkLength,
    #[error("ERR Protocol error: expected '$', got '{}'", char::from(*.0))]
    ExpectedDollar(u8),
    #[error("ERR Protocol error: too big mbulk count string")]
    TooBigMultibulkCount,
    #[error("ERR Protocol error: too big bulk count string")]
    TooBigBulkCount,
    #[error("ERR Protocol error: too big inline request")]
    TooBigInline,
    #[error("ERR Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// Redis closes such a client silently (with a log line); we say why.
    #[error("ERR Protocol error: query buffer limit exceeded")]
    QueryBufferLimit,
}

/// One command of a run: its arguments are `spans[first..first + argc]`, its bytes
/// `run[start..end]`.
#[derive(Debug, Clone, Copy)]
struct Cut {
    first: usize,
    argc: usize,
    start: usize,
    end: usize,
    /// Every line ends in CRLF and every length is plain: any Redis reads it as we did.
    canonical: bool,
}

/// What [`RequestParser::next_collected`] found.
enum Collected {
    /// A run was cut: its commands are handed out by `next_of_run`.
    Run,
    Args(Vec<Bytes>),
    NeedMore,
}

/// A multibulk command being collected.
#[derive(Debug)]
struct Multibulk {
    remaining: usize,
    args: Vec<Bytes>,
    /// Length of the bulk argument whose header was read, body not yet complete.
    bulk_len: Option<usize>,
}

pub struct RequestParser {
    buf: BytesMut,
    limits: ParserLimits,
    pending: Option<Multibulk>,
    /// Bytes of the current line already searched for its newline.
    scanned: usize,
    /// Whole well-formed commands cut from the buffer together as one frozen slice (one
    /// reference count for all of them), handed out one by one; see [`Self::cut_run`].
    run: Bytes,
    /// Where each argument of the run's commands is in `run`.
    spans: Vec<(usize, usize)>,
    /// The run's commands, in order; `next_cut` is the next to hand out.
    cuts: Vec<Cut>,
    next_cut: usize,
    /// The last command's bytes exactly as received, when they are canonical RESP (every
    /// line ending in CRLF, plain lengths): forwarding may send them on as they are.
    last_frame: Option<Bytes>,
    /// Whether anyone takes `last_frame` (forwarding); otherwise it is not kept, which
    /// spares a reference count per command.
    keep_frames: bool,
}

impl RequestParser {
    pub fn new(limits: ParserLimits) -> Self {
        RequestParser {
            buf: BytesMut::with_capacity(READ_CHUNK),
            limits,
            pending: None,
            scanned: 0,
            run: Bytes::new(),
            spans: Vec::new(),
            cuts: Vec::new(),
            next_cut: 0,
            last_frame: None,
            keep_frames: false,
        }
    }

    /// The buffer to read socket bytes into; always has free space for a decent read.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK / 4 {
            self.buf.reserve(READ_CHUNK);
        }
        &mut self.buf
    }

    /// Bytes received and not yet consumed by a complete command.
    pub fn buffered(&self) -> usize {
        let in_run = self
            .cuts
            .get(self.next_cut)
            .map_or(0, |c| self.run.len() - c.start);
        self.buf.len()
            + in_run
            + self
                .pending
                .as_ref()
                .map(|m| m.args.iter().map(|a| a.len()).sum::<usize>())
                .unwrap_or(0)
    }

    /// The next complete command, if buffered bytes hold one; `Ok(None)` means more bytes
    /// are needed. argv[0] is the command name as sent. Empty commands (`*0`, `*-1`, blank
    /// inline lines) are skipped, as Redis skips them.
    pub fn next_command(&mut self) -> Result<Option<Vec<Bytes>>, ParseError> {
        let mut argv = Vec::new();
        Ok(self.next_command_into(&mut argv)?.then_some(argv))
    }

    /// [`Self::next_command`] into the caller's vector (cleared first), whose allocation
    /// serves command after command. Ok(false): more bytes are needed.
    pub fn next_command_into(&mut self, argv: &mut Vec<Bytes>) -> Result<bool, ParseError> {
        argv.clear();
        if self.next_of_run(argv) {
            return Ok(true);
        }
        match self.next_collected()? {
            Collected::Run => Ok(self.next_of_run(argv)),
            Collected::Args(args) => {
                *argv = args;
                Ok(true)
            }
            Collected::NeedMore => Ok(false),
        }
    }

    /// The next command when no run is being handed out: collected argument by argument
    /// (incremental multibulk, inline), or a new run cut.
    fn next_collected(&mut self) -> Result<Collected, ParseError> {
        loop {
            if self.buffered() > self.limits.max_query_buffer {
                return Err(ParseError::QueryBufferLimit);
            }
            if self.pending.is_some() {
                return Ok(match self.continue_multibulk()? {
                    Some(args) => Collected::Args(args),
                    None => Collected::NeedMore,
                });
            }
            let Some(&first) = self.buf.first() else {
                return Ok(Collected::NeedMore);
            };
            if first == b'*' {
                if self.cut_run() {
                    return Ok(Collected::Run);
                }
                let Some(count) =
                    self.take_header(MAX_HEADER_LINE, ParseError::TooBigMultibulkCount)?
                else {
                    return Ok(Collected::NeedMore);
                };
                let count = count.ok_or(ParseError::InvalidMultibulkLength)?;
                if count > self.limits.max_args as i64 || count > i32::MAX as i64 {
                    return Err(ParseError::InvalidMultibulkLength);
                }
                if count <= 0 {
                    continue;
                }
                let count = count as usize;
                self.pending = Some(Multibulk {
                    remaining: count,
                    // Don't trust the count for the allocation: grow as arguments arrive.
                    args: Vec::with_capacity(count.min(64)),
                    bulk_len: None,
                });
            } else {
                let max = self.limits.max_inline_len;
                let Some(line) = self.take_line(max, ParseError::TooBigInline)? else {
                    return Ok(Collected::NeedMore);
                };
                let args = split_inline(&line)?;
                // max_args holds for inline commands too (the fuzzer found it did not); a
                // 64 KiB line has at most 32 Ki arguments, so the default never refuses one.
                if args.len() > self.limits.max_args {
                    return Err(ParseError::TooBigInline);
                }
                if !args.is_empty() {
                    return Ok(Collected::Args(args));
                }
            }
        }
    }

    fn continue_multibulk(&mut self) -> Result<Option<Vec<Bytes>>, ParseError> {
        loop {
            let Some(mb) = self.pending.as_mut() else {
                return Ok(None);
            };
            let len = match mb.bulk_len {
                Some(len) => len,
                None => {
                    let Some(&first) = self.buf.first() else {
                        return Ok(None);
                    };
                    if first != b'$' {
                        return Err(ParseError::ExpectedDollar(first));
                    }
                    let Some(len) =
                        self.take_header(MAX_HEADER_LINE, ParseError::TooBigBulkCount)?
                    else {
                        return Ok(None);
                    };
                    let len = len.ok_or(ParseError::InvalidBulkLength)?;
                    if len < 0 || len as u64 > self.limits.max_bulk_len as u64 {
                        return Err(ParseError::InvalidBulkLength);
                    }
                    let len = len as usize;
                    if let Some(mb) = self.pending.as_mut() {
                        mb.bulk_len = Some(len);
                    }
                    len
                }
            };
            let need = len + 2;
            if self.buf.len() < need {
                // Grow geometrically towards the declared size instead of allocating it
                // up front: a client announcing 512 MiB and sending nothing costs little.
                let want = need - self.buf.len();
                let spare = self.buf.capacity() - self.buf.len();
                if want > spare {
                    self.buf
                        .reserve(want.min(self.buf.capacity().max(READ_CHUNK)));
                }
                return Ok(None);
            }
            let arg = self.buf.split_to(len).freeze();
            // Like Redis, the two bytes after the payload are skipped without checking.
            self.buf.advance(2);
            let Some(mb) = self.pending.as_mut() else {
                return Ok(None);
            };
            mb.args.push(arg);
            mb.bulk_len = None;
            mb.remaining -= 1;
            if mb.remaining == 0 {
                let done = self.pending.take().map(|m| m.args);
                return Ok(done);
            }
        }
    }

    /// The usual case: whole well-formed multibulk commands already buffered. As many as
    /// are there (up to [`RUN_MAX_COMMANDS`]) are cut from the buffer as one frozen slice,
    /// their arguments sliced from it as they are handed out: no split or allocation per
    /// header line, and one reference count for the run instead of one per command (those
    /// atomic operations were a tenth of a pipelined GET's CPU). False when the first
    /// command is incomplete or breaks a rule: the incremental path then takes it, with its
    /// errors.
    fn cut_run(&mut self) -> bool {
        let buf = &self.buf[..];
        self.spans.clear();
        self.cuts.clear();
        self.next_cut = 0;
        let mut at = 0;
        while self.cuts.len() < RUN_MAX_COMMANDS && self.spans.len() < RUN_MAX_ARGS {
            let first = self.spans.len();
            let Some((end, canonical)) = whole_multibulk_at(buf, at, &self.limits, &mut self.spans)
            else {
                self.spans.truncate(first);
                break;
            };
            self.cuts.push(Cut {
                first,
                argc: self.spans.len() - first,
                start: at,
                end,
                canonical,
            });
            at = end;
        }
        if self.cuts.is_empty() {
            return false;
        }
        self.run = self.buf.split_to(at).freeze();
        self.scanned = 0;
        true
    }

    /// The next command of the current run into `argv`, if any is left.
    fn next_of_run(&mut self, argv: &mut Vec<Bytes>) -> bool {
        self.last_frame = None;
        let Some(&cut) = self.cuts.get(self.next_cut) else {
            return false;
        };
        self.next_cut += 1;
        if cut.canonical && self.keep_frames {
            self.last_frame = Some(self.run.slice(cut.start..cut.end));
        }
        argv.extend(
            self.spans[cut.first..cut.first + cut.argc]
                .iter()
                .map(|&(body, end)| self.run.slice(body..end)),
        );
        if self.next_cut == self.cuts.len() {
            // The last one: its arguments hold what they need of the run.
            self.run = Bytes::new();
            self.cuts.clear();
            self.next_cut = 0;
        }
        true
    }

    /// Forwarding's fast lane (`server::forward_lane`): makes sure the whole commands at the
    /// head of the buffer are cut as a run, and says whether any of it is left to hand out.
    /// False when the next command takes the incremental path (incomplete, too long, over
    /// the query buffer limit, inline): [`Self::next_command_into`] then has its errors.
    pub fn cut_ahead(&mut self) -> bool {
        if self.next_cut < self.cuts.len() {
            return true;
        }
        if self.pending.is_some()
            || self.buf.first() != Some(&b'*')
            || self.buf.len() > self.limits.max_query_buffer
        {
            return false;
        }
        self.cut_run()
    }

    /// The name and argument count of the `i`-th command left in the run, if its bytes are
    /// canonical RESP (any Redis reads them as this parser did).
    pub fn run_command(&self, i: usize) -> Option<(&[u8], usize)> {
        let cut = self.cuts.get(self.next_cut.checked_add(i)?)?;
        if !cut.canonical {
            return None;
        }
        let &(body, end) = self.spans.get(cut.first)?;
        Some((self.run.get(body..end)?, cut.argc))
    }

    /// The `k`-th argument (0: the name) of the `i`-th command left in the run.
    pub fn run_arg(&self, i: usize, k: usize) -> Option<&[u8]> {
        let cut = self.cuts.get(self.next_cut.checked_add(i)?)?;
        if k >= cut.argc {
            return None;
        }
        let &(body, end) = self.spans.get(cut.first.checked_add(k)?)?;
        self.run.get(body..end)
    }

    /// The bytes of the `i`-th command left in the run, as received, sharing the run's
    /// buffer (kept to resend it elsewhere after a cluster redirection).
    pub fn run_frame(&self, i: usize) -> Option<Bytes> {
        let cut = self.cuts.get(self.next_cut.checked_add(i)?)?;
        (cut.start <= cut.end && cut.end <= self.run.len())
            .then(|| self.run.slice(cut.start..cut.end))
    }

    /// The bytes of the next `n` commands left in the run, as received (they follow each
    /// other in the run). Empty if fewer are left.
    pub fn run_bytes(&self, n: usize) -> &[u8] {
        let (Some(first), Some(last)) = (
            self.cuts.get(self.next_cut),
            n.checked_sub(1)
                .and_then(|k| self.cuts.get(self.next_cut.checked_add(k)?)),
        ) else {
            return &[];
        };
        self.run.get(first.start..last.end).unwrap_or(&[])
    }

    /// Hands out the next `n` commands of the run without their arguments (the fast lane
    /// sent their bytes).
    pub fn skip_run(&mut self, n: usize) {
        self.last_frame = None;
        self.next_cut = self.next_cut.saturating_add(n).min(self.cuts.len());
        if self.next_cut == self.cuts.len() {
            self.run = Bytes::new();
            self.cuts.clear();
            self.next_cut = 0;
        }
    }

    /// Keep each canonical command's bytes for [`Self::take_frame`] (forwarding).
    pub fn keep_frames(&mut self, on: bool) {
        self.keep_frames = on;
    }

    /// The bytes of the command [`Self::next_command`] just returned, if they are canonical
    /// RESP that any Redis reads exactly as this parser did (None otherwise).
    pub fn take_frame(&mut self) -> Option<Bytes> {
        self.last_frame.take()
    }

    /// Takes one `*N` / `$N` header line if complete and returns its number (None inside:
    /// not a number), consuming the line in place.
    fn take_header(
        &mut self,
        max: usize,
        too_long: ParseError,
    ) -> Result<Option<Option<i64>>, ParseError> {
        let start = self.scanned.min(self.buf.len());
        match self.buf[start..].iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let end = start + pos;
                self.scanned = 0;
                let line = &self.buf[1..end];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let n = parse_len(line);
                self.buf.advance(end + 1);
                Ok(Some(n))
            }
            None => {
                if self.buf.len() > max {
                    return Err(too_long);
                }
                self.scanned = self.buf.len();
                Ok(None)
            }
        }
    }

    /// Takes one line (without its `\n` and an optional `\r` before it) if complete.
    /// Searching resumes where the previous call stopped.
    fn take_line(&mut self, max: usize, too_long: ParseError) -> Result<Option<Bytes>, ParseError> {
        let start = self.scanned.min(self.buf.len());
        match self.buf[start..].iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let end = start + pos;
                self.scanned = 0;
                let mut line = self.buf.split_to(end + 1);
                line.truncate(end);
                if line.last() == Some(&b'\r') {
                    line.truncate(end - 1);
                }
                Ok(Some(line.freeze()))
            }
            None => {
                if self.buf.len() > max {
                    return Err(too_long);
                }
                self.scanned = self.buf.len();
                Ok(None)
            }
        }
    }
}

/// Redis's string2ll for header counts: optional '-', digits, fits in i64.
/// A whole well-formed multibulk at `buf[at..]`: pushes its arguments' spans and returns
/// where it ends and whether it is canonical. None when it is incomplete, empty, longer than
/// [`WHOLE_MAX_ARGS`] or breaks a limit (the caller may have pushed some spans: it drops them).
fn whole_multibulk_at(
    buf: &[u8],
    at: usize,
    limits: &ParserLimits,
    spans: &mut Vec<(usize, usize)>,
) -> Option<(usize, bool)> {
    let (count, mut pos, mut canonical) = header_at(buf, at, b'*')?;
    // Long commands take the incremental path: `spans` stays small.
    if count <= 0 || count > limits.max_args as i64 || count > WHOLE_MAX_ARGS {
        return None;
    }
    for _ in 0..count {
        let (len, body, plain) = header_at(buf, pos, b'$')?;
        if len < 0 || len as u64 > limits.max_bulk_len as u64 {
            return None;
        }
        let end = body.checked_add(len as usize)?;
        // Like Redis, the two bytes after the payload are skipped without checking.
        pos = end.checked_add(2)?;
        if pos > buf.len() {
            return None;
        }
        canonical &= plain && &buf[end..pos] == b"\r\n";
        spans.push((body, end));
    }
    Some((pos, canonical))
}

/// The number of the `kind` header line (`*N` or `$N`) at `at` and where the line after it
/// starts; None if the line is incomplete, too long, of another kind or not a number.
/// Also whether the line was canonical (plain digits, CRLF).
#[inline(always)]
fn header_at(buf: &[u8], at: usize, kind: u8) -> Option<(i64, usize, bool)> {
    // One- and two-digit lengths with CRLF, by far the most common, matched whole (inlined
    // into the command loop: no call per argument).
    match buf.get(at..) {
        Some(&[k, d @ b'0'..=b'9', b'\r', b'\n', ..]) if k == kind => {
            Some((i64::from(d - b'0'), at + 4, true))
        }
        Some(&[k, d1 @ b'1'..=b'9', d0 @ b'0'..=b'9', b'\r', b'\n', ..]) if k == kind => {
            let n = i64::from(d1 - b'0') * 10 + i64::from(d0 - b'0');
            Some((n, at + 5, true))
        }
        _ => long_header_at(buf, at, kind),
    }
}

/// [`header_at`] for every header but the short canonical ones.
#[inline(never)]
fn long_header_at(buf: &[u8], at: usize, kind: u8) -> Option<(i64, usize, bool)> {
    if buf.get(at) != Some(&kind) {
        return None;
    }
    let start = at + 1;
    let line = buf.get(start..)?;
    // Nearly every other header is a short plain number ending in CRLF: read it in one go. A
    // leading zero, a sign or anything unusual is the general parser's (Redis refuses
    // leading zeros).
    let mut n: i64 = 0;
    let mut digits = 0;
    while digits < line.len() && digits < 18 && line[digits].is_ascii_digit() {
        n = n * 10 + i64::from(line[digits] - b'0');
        digits += 1;
    }
    let plain = digits == 1 || (digits > 1 && line[0] != b'0');
    if plain {
        match (line.get(digits), line.get(digits + 1)) {
            (Some(b'\r'), Some(b'\n')) => return Some((n, start + digits + 2, true)),
            (Some(b'\n'), _) => return Some((n, start + digits + 1, false)),
            (Some(b'\r'), None) | (None, _) => return None,
            _ => {}
        }
    }
    let nl = line[..line.len().min(MAX_HEADER_LINE)]
        .iter()
        .position(|&b| b == b'\n')?;
    let text = &line[..nl];
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    Some((parse_len(text)?, start + nl + 1, false))
}

fn parse_len(b: &[u8]) -> Option<i64> {
    crate::backend::embedded::num::parse_i64(b)
}

/// Splits an inline command like Redis's sdssplitargs: whitespace separates arguments;
/// "double quotes" take \n \r \t \b \a \xHH and \<any> escapes; 'single quotes' take \';
/// a closing quote must be followed by whitespace or the end. A NUL byte ends the line,
/// as it does for Redis's C-string based splitter.
fn split_inline(line: &[u8]) -> Result<Vec<Bytes>, ParseError> {
    let line = match line.iter().position(|&b| b == 0) {
        Some(nul) => &line[..nul],
        None => line,
    };
    let is_space = |c: u8| matches!(c, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c);
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Ok(args);
        }
        let mut cur = Vec::new();
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return Err(ParseError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    cur.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 4;
                    continue;
                } else if c == b'\\' && i + 1 < n {
                    cur.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                    i += 2;
                    continue;
                } else if c == b'"' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return Err(ParseError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if in_sq {
                if i >= n {
                    return Err(ParseError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    cur.push(b'\'');
                    i += 2;
                    continue;
                } else if c == b'\'' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return Err(ParseError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' => break,
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        args.push(Bytes::from(cur));
    }
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
mod tests;
