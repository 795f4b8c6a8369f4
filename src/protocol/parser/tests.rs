//! Unit tests of the request parser: pipelines, any split point, limits, inline commands and
//! Redis's protocol errors.

use super::*;
use rand::{Rng, SeedableRng};

fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ParseError> {
    let mut p = RequestParser::new(ParserLimits::default());
    p.buffer_mut().extend_from_slice(input);
    let mut out = Vec::new();
    while let Some(cmd) = p.next_command()? {
        out.push(cmd.iter().map(|a| a.to_vec()).collect());
    }
    Ok(out)
}

fn args(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn multibulk_pipeline() {
    let got = parse_all(b"*1\r\n$4\r\nPING\r\n*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n").unwrap();
    assert_eq!(got, vec![args(&["PING"]), args(&["SET", "k", ""])]);
}

#[test]
fn empty_multibulk_is_skipped() {
    let got = parse_all(b"*0\r\n*-1\r\n*-5\r\n*1\r\n$4\r\nPING\r\n").unwrap();
    assert_eq!(got, vec![args(&["PING"])]);
}

#[test]
fn every_split_point_gives_the_same_commands() {
    let input: &[u8] = b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\nSET a \"b c\"\r\n*1\r\n$4\r\nPING\r\n";
    let want = parse_all(input).unwrap();
    for split in 0..input.len() {
        let mut p = RequestParser::new(ParserLimits::default());
        let mut got = Vec::new();
        for chunk in [&input[..split], &input[split..]] {
            p.buffer_mut().extend_from_slice(chunk);
            while let Some(cmd) = p.next_command().unwrap() {
                got.push(cmd.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
            }
        }
        assert_eq!(got, want, "split at {split}");
    }
    // Byte by byte.
    let mut p = RequestParser::new(ParserLimits::default());
    let mut got = Vec::new();
    for b in input {
        p.buffer_mut().extend_from_slice(&[*b]);
        while let Some(cmd) = p.next_command().unwrap() {
            got.push(cmd.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
        }
    }
    assert_eq!(got, want);
}

#[test]
fn protocol_errors_use_redis_texts() {
    let cases: &[(&[u8], &str)] = &[
        (b"*abc\r\n", "ERR Protocol error: invalid multibulk length"),
        (
            b"*99999999999999999999\r\n",
            "ERR Protocol error: invalid multibulk length",
        ),
        (
            b"*2000000\r\n",
            "ERR Protocol error: invalid multibulk length",
        ),
        (b"*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"),
        (
            b"*1\r\n$1099511627776\r\n",
            "ERR Protocol error: invalid bulk length",
        ),
        (b"*1\r\n$x\r\n", "ERR Protocol error: invalid bulk length"),
        (
            b"*1\r\n+PING\r\n",
            "ERR Protocol error: expected '$', got '+'",
        ),
        (
            b"SET a \"b\r\n",
            "ERR Protocol error: unbalanced quotes in request",
        ),
        (
            b"SET a \"b\"c\r\n",
            "ERR Protocol error: unbalanced quotes in request",
        ),
        (
            b"SET a 'b\r\n",
            "ERR Protocol error: unbalanced quotes in request",
        ),
    ];
    for (input, text) in cases {
        let err = parse_all(input).unwrap_err();
        assert_eq!(
            err.to_string(),
            *text,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn long_lines_without_newline_are_refused() {
    let err = parse_all(&vec![b'a'; 70 * 1024]).unwrap_err();
    assert_eq!(err, ParseError::TooBigInline);
    let mut mb = b"*".to_vec();
    mb.extend(vec![b'1'; 70 * 1024]);
    assert_eq!(
        parse_all(&mb).unwrap_err(),
        ParseError::TooBigMultibulkCount
    );
    let mut b = b"*1\r\n$".to_vec();
    b.extend(vec![b'1'; 70 * 1024]);
    assert_eq!(parse_all(&b).unwrap_err(), ParseError::TooBigBulkCount);
}

#[test]
fn limits_are_configurable() {
    let limits = ParserLimits {
        max_bulk_len: 4,
        max_args: 2,
        max_query_buffer: 100,
        max_inline_len: 10,
    };
    let mut p = RequestParser::new(limits.clone());
    p.buffer_mut().extend_from_slice(b"*3\r\n");
    assert_eq!(
        p.next_command().unwrap_err(),
        ParseError::InvalidMultibulkLength
    );
    let mut p = RequestParser::new(limits.clone());
    p.buffer_mut().extend_from_slice(b"*1\r\n$5\r\n");
    assert_eq!(p.next_command().unwrap_err(), ParseError::InvalidBulkLength);
    let mut p = RequestParser::new(limits);
    p.buffer_mut().extend_from_slice(&[b'*'; 101]);
    assert_eq!(p.next_command().unwrap_err(), ParseError::QueryBufferLimit);
}

/// Found by the `parser_raw` fuzz target: max_args was enforced on multibulk commands only.
#[test]
fn max_args_holds_for_inline_commands() {
    let limits = ParserLimits {
        max_args: 2,
        ..ParserLimits::default()
    };
    let mut p = RequestParser::new(limits);
    p.buffer_mut().extend_from_slice(
        b"a b
a b c
",
    );
    assert_eq!(p.next_command().unwrap().unwrap().len(), 2);
    assert_eq!(p.next_command().unwrap_err(), ParseError::TooBigInline);
}

#[test]
fn inline_quoting_like_redis() {
    let got = parse_all(b"set k \"a\\x41\\n\\\"q\" 'it\\'s' plain\r\n").unwrap();
    assert_eq!(
        got,
        vec![vec![
            b"set".to_vec(),
            b"k".to_vec(),
            b"aA\n\"q".to_vec(),
            b"it's".to_vec(),
            b"plain".to_vec()
        ]]
    );
    assert_eq!(
        parse_all(b"\r\n\n   \r\nPING\n").unwrap(),
        vec![args(&["PING"])]
    );
    assert_eq!(
        parse_all(b"a\"b c\"d e\n").unwrap_err(),
        ParseError::UnbalancedQuotes
    );
    assert_eq!(
        parse_all(b"a\"b c\" e\n").unwrap(),
        vec![args(&["ab c", "e"])]
    );
}

#[test]
fn big_bulk_declared_but_not_sent_does_not_allocate_it() {
    let mut p = RequestParser::new(ParserLimits::default());
    p.buffer_mut().extend_from_slice(b"*1\r\n$500000000\r\nabc");
    assert_eq!(p.next_command().unwrap(), None);
    assert!(p.buf.capacity() < 1 << 20, "capacity {}", p.buf.capacity());
}

#[test]
fn random_bytes_in_random_chunks_never_panic() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let alphabet = b"*$\r\n0123456789-abc \"'\\x";
    for _ in 0..2000 {
        let len = rng.random_range(0..200);
        let input: Vec<u8> = (0..len)
            .map(|_| {
                if rng.random_bool(0.7) {
                    alphabet[rng.random_range(0..alphabet.len())]
                } else {
                    rng.random()
                }
            })
            .collect();
        let mut p = RequestParser::new(ParserLimits::default());
        let mut pos = 0;
        'feed: while pos < input.len() {
            let n = rng.random_range(1..=8).min(input.len() - pos);
            p.buffer_mut().extend_from_slice(&input[pos..pos + n]);
            pos += n;
            loop {
                match p.next_command() {
                    Ok(Some(cmd)) => assert!(!cmd.is_empty()),
                    Ok(None) => break,
                    Err(_) => break 'feed,
                }
            }
        }
    }
}

/// A whole buffered command takes the one-slice path, a trickled one the incremental path:
/// both must accept and refuse exactly the same headers (leading zeros, signs, spaces).
#[test]
fn whole_and_trickled_commands_agree_on_odd_headers() {
    let inputs: &[&[u8]] = &[
        b"*03\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n",
        b"*2\r\n$01\r\na\r\n$1\r\nb\r\n",
        b"*2\r\n$+1\r\na\r\n$1\r\nb\r\n",
        b"*2\r\n$ 1\r\na\r\n$1\r\nb\r\n",
        b"*2\r\n$-1\r\n$1\r\nb\r\n",
        b"*1\r\n$0\r\n\r\n",
        b"*1\n$3\nGET\r\n",
        b"*1\r\n$3\r\nGETxx*1\r\n$4\r\nPING\r\n",
        b"*2\r\n$3\r\nGET\r\n*1\r\n$4\r\nPING\r\n",
        b"*99999999999999999999\r\n",
        b"*1\r\n$3x\r\nGET\r\n",
        b"*1\r\n$1234567890123456789\r\n",
        b"*1\r\n$\r\n",
        b"*0001\r\n$4\r\nPING\r\n",
        b"*1\r\r\n$4\r\nPING\r\n",
    ];
    for input in inputs {
        let whole = parse_all(input);
        let mut p = RequestParser::new(ParserLimits::default());
        let mut trickled: Result<Vec<Vec<Vec<u8>>>, ParseError> = Ok(Vec::new());
        for b in input.iter() {
            p.buffer_mut().extend_from_slice(&[*b]);
            match p.next_command() {
                Ok(Some(cmd)) => {
                    if let Ok(v) = trickled.as_mut() {
                        v.push(cmd.iter().map(|a| a.to_vec()).collect());
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    trickled = Err(e);
                    break;
                }
            }
        }
        assert_eq!(whole, trickled, "{}", String::from_utf8_lossy(input));
    }
}

#[test]
fn a_run_of_buffered_commands_is_handed_out_in_order_with_its_frames() {
    // More whole commands than one run holds, then half a command.
    let one = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n";
    let mut input = Vec::new();
    for _ in 0..RUN_MAX_COMMANDS + 10 {
        input.extend_from_slice(one);
    }
    let tail = b"*2\r\n$3\r\nGET\r\n$3\r\nke";
    input.extend_from_slice(tail);
    let mut p = RequestParser::new(ParserLimits::default());
    p.keep_frames(true);
    p.buffer_mut().extend_from_slice(&input);
    let mut seen = 0;
    while let Some(cmd) = p.next_command().unwrap() {
        assert_eq!(
            cmd,
            vec![Bytes::from_static(b"GET"), Bytes::from_static(b"key")]
        );
        assert_eq!(p.take_frame().as_deref(), Some(&one[..]));
        seen += 1;
        // What is left: the commands not handed out yet, and the half one.
        let left = (RUN_MAX_COMMANDS + 10 - seen) * one.len() + tail.len();
        assert_eq!(p.buffered(), left, "after {seen}");
    }
    assert_eq!(seen, RUN_MAX_COMMANDS + 10);
    p.buffer_mut().extend_from_slice(b"y\r\n");
    let last = p.next_command().unwrap().unwrap();
    assert_eq!(
        last,
        vec![Bytes::from_static(b"GET"), Bytes::from_static(b"key")]
    );
    assert_eq!(p.buffered(), 0);
}

#[test]
fn a_run_keeps_its_bookkeeping_small_whatever_is_pipelined() {
    // 100 commands of 100 arguments each, all buffered at once.
    let mut input = Vec::new();
    for _ in 0..100 {
        input.extend_from_slice(b"*100\r\n");
        for _ in 0..100 {
            input.extend_from_slice(b"$1\r\nx\r\n");
        }
    }
    let mut p = RequestParser::new(ParserLimits::default());
    p.buffer_mut().extend_from_slice(&input);
    let mut argv = Vec::new();
    let mut seen = 0;
    while p.next_command_into(&mut argv).unwrap() {
        assert_eq!(argv.len(), 100);
        seen += 1;
        assert!(p.spans.capacity() <= 2 * (RUN_MAX_ARGS + WHOLE_MAX_ARGS as usize));
        assert!(p.cuts.capacity() <= 2 * RUN_MAX_COMMANDS);
    }
    assert_eq!(seen, 100);
}

/// The fast lane's view of a run: names and argument counts of canonical commands, their
/// bytes as sent, and the rest handed out as usual after the ones it took.
#[test]
fn the_fast_lane_takes_whole_canonical_commands_and_leaves_the_rest() {
    let mut p = RequestParser::new(ParserLimits::default());
    p.buffer_mut().extend_from_slice(b"GET a\r\n");
    // Inline commands are the incremental path's.
    assert!(!p.cut_ahead());
    assert_eq!(
        p.next_command().unwrap(),
        Some(vec![Bytes::from("GET"), Bytes::from("a")])
    );
    let get = b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n";
    let set = b"*3\r\n$3\r\nset\r\n$1\r\nk\r\n$1\r\nv\r\n";
    // A header ending in a bare LF: this parser reads it, but it is not canonical.
    let odd = b"*2\n$3\r\nGET\r\n$1\r\nb\r\n";
    for part in [&get[..], set, odd, b"*2\r\n$3\r\nGE"] {
        p.buffer_mut().extend_from_slice(part);
    }
    assert!(p.cut_ahead());
    assert_eq!(p.run_command(0), Some((&b"GET"[..], 2)));
    assert_eq!(p.run_command(1), Some((&b"set"[..], 3)));
    assert_eq!(p.run_command(2), None, "not canonical");
    assert_eq!(p.run_command(3), None, "incomplete: not in the run");
    assert_eq!(p.run_bytes(2), [&get[..], set].concat());
    assert_eq!(p.run_bytes(9), b"");
    // One command's arguments and bytes (the cluster lane's slot and resend).
    assert_eq!(p.run_arg(0, 1), Some(&b"a"[..]));
    assert_eq!(p.run_arg(1, 0), Some(&b"set"[..]));
    assert_eq!(p.run_arg(1, 2), Some(&b"v"[..]));
    assert_eq!(p.run_arg(1, 3), None, "past its arguments");
    assert_eq!(p.run_frame(0).as_deref(), Some(&get[..]));
    assert_eq!(p.run_frame(1).as_deref(), Some(&set[..]));
    assert_eq!(p.run_frame(3), None);
    p.skip_run(1);
    assert_eq!(
        p.run_arg(0, 1),
        Some(&b"k"[..]),
        "counted from what is left"
    );
    assert_eq!(p.run_frame(0).as_deref(), Some(&set[..]));
    p.skip_run(1);
    // The odd one is handed out by the usual path, then the incomplete one waits.
    assert!(p.cut_ahead());
    assert_eq!(
        p.next_command().unwrap(),
        Some(vec![Bytes::from("GET"), Bytes::from("b")])
    );
    assert!(!p.cut_ahead());
    assert_eq!(p.next_command().unwrap(), None);
    // The incremental path has started on it: it finishes it.
    p.buffer_mut().extend_from_slice(b"T\r\n$1\r\nc\r\n");
    assert!(!p.cut_ahead());
    assert_eq!(
        p.next_command().unwrap(),
        Some(vec![Bytes::from("GET"), Bytes::from("c")])
    );
    // Then whole commands are the lane's again.
    p.buffer_mut().extend_from_slice(get);
    assert!(p.cut_ahead());
    assert_eq!(p.run_command(0), Some((&b"GET"[..], 2)));
    p.skip_run(1);
    assert_eq!(p.buffered(), 0);
    assert!(!p.cut_ahead());
}
