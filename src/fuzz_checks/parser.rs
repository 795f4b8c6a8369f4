//! Fuzz checks of the request parser: any bytes, in any read chunking, give the same commands
//! (or the same error), limits only ever cut the command list short, and what was parsed
//! re-encodes to itself; structured streams of valid commands parse back exactly.

use bytes::Bytes;

use super::Input;
use crate::protocol::{ParseError, ParserLimits, RequestParser};

/// What a parser made of a byte stream.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    commands: Vec<Vec<Bytes>>,
    error: Option<ParseError>,
}

/// Feeds `stream` to a parser in pieces of the given sizes (cycled), taking every complete
/// command after each piece as the connection loop does.
fn run(stream: &[u8], limits: ParserLimits, chunks: &[usize]) -> Outcome {
    let mut parser = RequestParser::new(limits);
    let mut commands = Vec::new();
    let mut at = 0;
    let mut i = 0;
    loop {
        loop {
            match parser.next_command() {
                Ok(Some(argv)) => {
                    assert!(!argv.is_empty(), "an empty command was returned");
                    commands.push(argv);
                }
                Ok(None) => break,
                Err(error) => {
                    return Outcome {
                        commands,
                        error: Some(error),
                    };
                }
            }
        }
        if at >= stream.len() {
            return Outcome {
                commands,
                error: None,
            };
        }
        let n = chunks
            .get(i % chunks.len().max(1))
            .copied()
            .unwrap_or(stream.len())
            .max(1);
        i += 1;
        let end = (at + n).min(stream.len());
        parser.buffer_mut().extend_from_slice(&stream[at..end]);
        at = end;
    }
}

/// Errors whose moment depends on how much is buffered (like Redis, which checks the
/// query buffer's length when a line has no newline yet).
fn size_dependent(e: &ParseError) -> bool {
    matches!(
        e,
        ParseError::TooBigInline
            | ParseError::TooBigMultibulkCount
            | ParseError::TooBigBulkCount
            | ParseError::QueryBufferLimit
    )
}

/// `narrow` (smaller reads or tighter limits) may stop earlier than `wide`, never later and
/// never with other commands.
fn check_narrower(narrow: &Outcome, wide: &Outcome, what: &str) {
    assert!(
        narrow.commands.len() <= wide.commands.len()
            && narrow.commands[..] == wide.commands[..narrow.commands.len()],
        "{what}: commands differ\nnarrow: {narrow:?}\nwide: {wide:?}"
    );
    match (&narrow.error, &wide.error) {
        (None, None) => assert_eq!(narrow.commands, wide.commands, "{what}"),
        (None, Some(_)) => panic!("{what}: only the wider run failed\n{narrow:?}\n{wide:?}"),
        (Some(_), _) => {}
    }
}

fn encode(argv: &[Bytes]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", argv.len()).into_bytes();
    for a in argv {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn roomy() -> ParserLimits {
    ParserLimits::default()
}

/// Raw bytes: the first byte seeds the read sizes, the rest is what a client sent.
pub fn parser_raw(data: &[u8]) {
    let mut input = Input::new(data);
    let nchunks = 1 + input.below(8);
    let chunks: Vec<usize> = (0..nchunks).map(|_| 1 + input.below(64)).collect();
    let stream = input.rest();

    let whole = run(stream, roomy(), &[stream.len()]);
    let chunked = run(stream, roomy(), &chunks);
    let bytewise = run(stream, roomy(), &[1]);
    check_narrower(&chunked, &whole, "chunked vs whole");
    check_narrower(&bytewise, &whole, "byte by byte vs whole");
    if let Some(e) = &chunked.error
        && !size_dependent(e)
    {
        assert_eq!(
            chunked, whole,
            "a content error must not depend on chunking"
        );
    }

    let tight = ParserLimits {
        max_bulk_len: 64,
        max_args: 8,
        max_query_buffer: 512,
        max_inline_len: 128,
    };
    let limited = run(stream, tight.clone(), &chunks);
    check_narrower(&limited, &whole, "tight limits vs roomy");
    for argv in &limited.commands {
        assert!(argv.len() <= tight.max_args, "max_args not enforced");
    }

    // What was parsed re-encodes as multibulk and parses back to itself.
    let mut again = Vec::new();
    for argv in &whole.commands {
        again.extend_from_slice(&encode(argv));
    }
    let back = run(&again, roomy(), &chunks);
    assert_eq!(back.error, None);
    assert_eq!(back.commands, whole.commands, "re-encoded commands differ");

    if let Some(e) = &whole.error {
        // Every error is one of Redis's protocol error texts.
        assert!(e.to_string().starts_with("ERR Protocol error: "), "{e}");
    }
}

/// Bytes Redis's inline splitter passes through unquoted.
fn inline_plain(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'"' | b'\'' | b'\\')
}

/// A stream of valid commands built from the input, each sent as multibulk or as an inline
/// line (plain, "double-quoted with \xHH escapes", or 'single-quoted'), with skipped empty
/// commands in between: all of it, in any chunking, parses back to exactly those commands.
/// A cut at a random point gives a prefix of them.
pub fn parser_structured(data: &[u8]) {
    let mut input = Input::new(data);
    let nchunks = 1 + input.below(4);
    let chunks: Vec<usize> = (0..nchunks).map(|_| 1 + input.below(200)).collect();
    let mut stream = Vec::new();
    let mut want: Vec<Vec<Bytes>> = Vec::new();
    let mut guard = 0;
    while !input.is_empty() && guard < 64 {
        guard += 1;
        match input.below(8) {
            0 => stream.extend_from_slice(b"*0\r\n"),
            1 => stream.extend_from_slice(input.pick(&[&b"*-1\r\n"[..], b"\r\n", b"  \t \r\n"])),
            _ => {
                let argc = 1 + input.below(6);
                let argv: Vec<Bytes> = (0..argc)
                    .map(|_| {
                        let b = if input.bool() {
                            input.word(b"GETSETabc:{}*?[]-_ 0123", 12)
                        } else {
                            input.bytes(40).to_vec()
                        };
                        Bytes::from(b)
                    })
                    .collect();
                match input.below(4) {
                    0 | 1 => stream.extend_from_slice(&encode(&argv)),
                    2 => {
                        // Double quotes: every byte as \xHH.
                        for (i, a) in argv.iter().enumerate() {
                            if i > 0 {
                                stream.push(b' ');
                            }
                            stream.push(b'"');
                            for b in a.iter() {
                                stream.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                            }
                            stream.push(b'"');
                        }
                        stream.extend_from_slice(b"\r\n");
                    }
                    _ => {
                        // Plain words where possible, single quotes otherwise.
                        let mut line = Vec::new();
                        let mut ok = true;
                        for (i, a) in argv.iter().enumerate() {
                            if i > 0 {
                                line.extend_from_slice(b" \t");
                            }
                            if !a.is_empty() && a.iter().all(|&b| inline_plain(b)) && a[0] != b'*' {
                                line.extend_from_slice(a);
                            } else if a.iter().all(|&b| b != b'\n' && b != 0 && b != b'\r')
                                && a.last() != Some(&b'\\')
                            {
                                line.push(b'\'');
                                for &b in a.iter() {
                                    // \' is the only escape inside single quotes; a
                                    // backslash before anything else is literal (a
                                    // trailing one would escape the closing quote).
                                    if b == b'\'' {
                                        line.push(b'\\');
                                    }
                                    line.push(b);
                                }
                                line.push(b'\'');
                            } else {
                                ok = false;
                            }
                        }
                        if !ok || line.first() == Some(&b'*') {
                            stream.extend_from_slice(&encode(&argv));
                        } else {
                            stream.extend_from_slice(&line);
                            stream.extend_from_slice(b"\n");
                        }
                    }
                }
                want.push(argv);
            }
        }
    }
    let got = run(&stream, roomy(), &chunks);
    assert_eq!(
        got.error,
        None,
        "valid stream refused: {:?}",
        String::from_utf8_lossy(&stream)
    );
    assert_eq!(
        got.commands,
        want,
        "stream {:?}",
        String::from_utf8_lossy(&stream)
    );

    if !stream.is_empty() {
        let cut = input.below(stream.len());
        let part = run(&stream[..cut], roomy(), &chunks);
        assert_eq!(part.error, None);
        assert!(
            part.commands.len() <= want.len() && part.commands[..] == want[..part.commands.len()],
            "a cut stream gave other commands"
        );
    }
}
