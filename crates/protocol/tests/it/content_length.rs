//! Content-Length framing: header parsing, the frame and header limits,
//! bodies split across reads, and resynchronising after a bad header.

use bytes::BytesMut;
use pybridge_protocol::{
    Codec, ContentLengthCodec, DEFAULT_MAX_HEADER, Error, Framing, HeaderProblem,
};
use tokio_util::codec::Decoder;

use crate::support::{Frame, feed, ok};

const LIMIT: usize = 64;
const HEADER: usize = 96;

fn retained() -> usize {
    // A partial body, or a header block short of its terminator.
    LIMIT.max(HEADER + 3)
}

/// 64-byte frames, 96-byte header blocks.
fn codec() -> ContentLengthCodec {
    ContentLengthCodec::new(LIMIT).with_max_header(HEADER)
}

/// Feeds `chunks` to a codec (64-byte frames, 96-byte headers) and checks
/// the frames it yields, also when the same bytes arrive one at a time.
fn check(chunks: &[&[u8]], expected: &[Frame]) {
    assert_eq!(
        feed(&mut codec(), chunks, LIMIT, retained()),
        expected,
        "frames of {chunks:?}"
    );
    let all: Vec<u8> = chunks.concat();
    let bytes: Vec<&[u8]> = all.chunks(1).collect();
    assert_eq!(
        feed(&mut codec(), &bytes, LIMIT, retained()),
        expected,
        "byte by byte"
    );
    assert_eq!(
        feed(&mut codec(), &[&all], LIMIT, retained().max(all.len())),
        expected,
        "in one piece"
    );
}

fn header(problem: HeaderProblem) -> Frame {
    Frame::Header(problem)
}

#[test]
fn frames() {
    check(&[b"Content-Length: 2\r\n\r\n{}"], &[ok("{}")]);
    check(
        &[b"Content-Length: 2\r\n\r\n{}Content-Length: 3\r\n\r\n[1]"],
        &[ok("{}"), ok("[1]")],
    );
    check(&[b"Content-Length: 0\r\n\r\n"], &[ok("")]);
    // The body may contain anything, terminators included.
    check(
        &[b"Content-Length: 8\r\n\r\n\r\n\r\n\r\n\r\n"],
        &[ok("\r\n\r\n\r\n\r\n")],
    );
}

#[test]
fn header_names_in_any_case_and_extra_headers() {
    for head in [
        "content-length: 2",
        "CONTENT-LENGTH: 2",
        "Content-Length:2",
        "Content-Length:   2   ",
        "Content-Length\t: 2",
        "Content-Type: application/vscode-jsonrpc; charset=utf-8\r\nContent-Length: 2",
        "Content-Length: 2\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8",
        "X-A: 1\r\nContent-Length: 2\r\nX-B: :::",
        // A bare `\n` ends a header line too.
        "X-A: 1\nContent-Length: 2",
    ] {
        let text = format!("{head}\r\n\r\n{{}}");
        check(&[text.as_bytes()], &[ok("{}")]);
    }
}

#[test]
fn bad_lengths() {
    let cases: &[(&str, HeaderProblem)] = &[
        ("Content-Type: text", HeaderProblem::MissingLength),
        (
            "Content-Length: 2\r\nContent-Length: 2",
            HeaderProblem::DuplicateLength,
        ),
        (
            "Content-Length: 2\r\ncontent-length: 3",
            HeaderProblem::DuplicateLength,
        ),
        ("Content-Length: abc", HeaderProblem::BadLength),
        ("Content-Length: -1", HeaderProblem::BadLength),
        ("Content-Length: +2", HeaderProblem::BadLength),
        ("Content-Length: 2.0", HeaderProblem::BadLength),
        ("Content-Length: 0x2", HeaderProblem::BadLength),
        ("Content-Length: 2 2", HeaderProblem::BadLength),
        ("Content-Length:", HeaderProblem::BadLength),
        (
            "Content-Length: 99999999999999999999999",
            HeaderProblem::BadLength,
        ),
        ("Content-Length 2", HeaderProblem::BadLine),
        ("Content-Length: 2\r\nno colon here", HeaderProblem::BadLine),
        ("Content-Length: 2\r\nX-\u{e9}: 1", HeaderProblem::BadLine),
    ];
    for (head, problem) in cases {
        // The bad block is reported and skipped, and the next frame decodes.
        let text = format!("{head}\r\n\r\nContent-Length: 2\r\n\r\n[]");
        check(&[text.as_bytes()], &[header(*problem), ok("[]")]);
    }
}

#[test]
fn header_block_too_long() {
    let padding = "p".repeat(HEADER);
    // Terminated, but longer than the limit: reported, then decoding resumes at
    // the next `Content-Length` name, which here is the block's own.
    let text =
        format!("X-Pad: {padding}\r\nContent-Length: 2\r\n\r\n{{}}Content-Length: 2\r\n\r\n[]");
    check(
        &[text.as_bytes()],
        &[header(HeaderProblem::TooLong), ok("{}"), ok("[]")],
    );
    let text = format!("X-Pad: {padding}\r\n\r\n{{}}Content-Length: 2\r\n\r\n[]");
    check(
        &[text.as_bytes()],
        &[header(HeaderProblem::TooLong), ok("[]")],
    );
    // Exactly at the limit is fine.
    let at = format!("X: {}\r\nContent-Length: 2", "p".repeat(HEADER - 22));
    assert_eq!(at.len(), HEADER);
    check(&[format!("{at}\r\n\r\n{{}}").as_bytes()], &[ok("{}")]);
    let over = format!("X: {}\r\nContent-Length: 2", "p".repeat(HEADER - 21));
    check(
        &[format!("{over}\r\n\r\n{{}}Content-Length: 2\r\n\r\n[]").as_bytes()],
        &[header(HeaderProblem::TooLong), ok("{}"), ok("[]")],
    );
    // Never terminated: rejected once the limit is passed, without waiting for more.
    let mut codec = codec();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for _ in 0..100 {
        buf.extend_from_slice(b"X-Endless: aaaaaaaa\r\n");
        while let Some(frame) = codec.decode(&mut buf).expect("stream goes on") {
            frames.push(frame);
        }
        assert!(buf.len() <= retained(), "{}", buf.len());
    }
    assert_eq!(frames.len(), 1);
    assert!(matches!(
        frames[0],
        Err(Error::MalformedHeader {
            problem: HeaderProblem::TooLong
        })
    ));
    buf.extend_from_slice(b"\r\nContent-Length: 2\r\n\r\n{}");
    let frame = codec
        .decode(&mut buf)
        .expect("stream goes on")
        .expect("a frame");
    assert_eq!(frame.expect("good").as_ref(), b"{}");
}

#[test]
fn declared_length_over_the_limit_is_skipped_without_allocating_it() {
    let mut codec = ContentLengthCodec::new(1024);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(b"Content-Length: 1000000000\r\n\r\n");
    let frame = codec
        .decode(&mut buf)
        .expect("stream goes on")
        .expect("a frame");
    assert!(matches!(
        frame,
        Err(Error::FrameTooLarge {
            limit: 1024,
            declared: Some(1_000_000_000)
        })
    ));
    let chunk = vec![b'b'; 64 * 1024];
    let mut skipped = 0usize;
    while skipped < 1_000_000_000 {
        let n = chunk.len().min(1_000_000_000 - skipped);
        buf.extend_from_slice(&chunk[..n]);
        skipped += n;
        assert!(codec.decode(&mut buf).expect("stream goes on").is_none());
        assert!(buf.is_empty());
        assert!(buf.capacity() <= 4 * chunk.len(), "{}", buf.capacity());
    }
    buf.extend_from_slice(b"Content-Length: 2\r\n\r\n{}");
    let frame = codec
        .decode(&mut buf)
        .expect("stream goes on")
        .expect("a frame");
    assert_eq!(frame.expect("good").as_ref(), b"{}");

    // A declared length past u64 is a bad length, not a huge frame.
    check(
        &[b"Content-Length: 18446744073709551616\r\n\r\nContent-Length: 2\r\n\r\n{}"],
        &[header(HeaderProblem::BadLength), ok("{}")],
    );
    // In small pieces too.
    let body = vec![b'x'; LIMIT + 1];
    let mut input = format!("Content-Length: {}\r\n\r\n", LIMIT + 1).into_bytes();
    input.extend_from_slice(&body);
    input.extend_from_slice(b"Content-Length: 2\r\n\r\n{}");
    let pieces: Vec<&[u8]> = input.chunks(7).collect();
    check(
        &pieces,
        &[
            Frame::TooLarge {
                declared: Some(LIMIT as u64 + 1),
            },
            ok("{}"),
        ],
    );
}

#[test]
fn body_at_the_limit() {
    let body = "b".repeat(LIMIT);
    check(
        &[format!("Content-Length: {LIMIT}\r\n\r\n{body}").as_bytes()],
        &[ok(&body)],
    );
}

#[test]
fn body_split_across_chunks() {
    check(
        &[
            b"Content-Le",
            b"ngth: 1",
            b"1\r",
            b"\n\r",
            b"\n{\"a\":",
            b"[1,2]",
            b"}",
        ],
        &[ok("{\"a\":[1,2]}")],
    );
}

#[test]
fn invalid_utf8_fails_only_its_frame() {
    check(
        &[b"Content-Length: 3\r\n\r\n\"\xff\"Content-Length: 2\r\n\r\n{}"],
        &[Frame::Utf8 { valid_up_to: 1 }, ok("{}")],
    );
}

#[test]
fn without_the_utf8_check_a_body_that_is_not_utf8_comes_out_as_it_is() {
    let chunks: &[&[u8]] = &[b"Content-Length: 3\r\n\r\n\"\xff\"Content-Length: 2\r\n\r\n{}"];
    let expected = [Frame::Ok(b"\"\xff\"".to_vec()), ok("{}")];
    let mut codec = Codec::new(Framing::ContentLength, LIMIT).without_utf8_check();
    assert_eq!(feed(&mut codec, chunks, LIMIT, LIMIT + 64), expected);
}

#[test]
fn resynchronises_after_a_malformed_header() {
    check(
        &[b"Content-Length: x\r\n\r\nContent-Length: 2\r\n\r\n{}"],
        &[header(HeaderProblem::BadLength), ok("{}")],
    );
    // The body of a frame whose header was lost is garbage in front of the
    // next header; it is reported once and the frames after it decode.
    check(
        &[
            b"Content-Lenght: 7\r\n\r\n{\"a\":1}",
            b"Content-Length: 2\r\n\r\n{}",
            b"Content-Length: 2\r\n\r\n[]",
        ],
        &[
            header(HeaderProblem::MissingLength),
            header(HeaderProblem::BadLine),
            ok("{}"),
            ok("[]"),
        ],
    );
    // Garbage longer than the header limit.
    let garbage = format!("{{\"pad\":\"{}\"}}", "g".repeat(3 * HEADER));
    let text = format!(
        "Content-Length: 1x\r\n\r\n{garbage}Content-Length: 2\r\n\r\n{{}}content-length: 2\r\n\r\n[]"
    );
    check(
        &[text.as_bytes()],
        &[
            header(HeaderProblem::BadLength),
            header(HeaderProblem::TooLong),
            ok("{}"),
            ok("[]"),
        ],
    );
    // Garbage that ends in a line break before the next header.
    check(
        &[b"junk\r\nContent-Length: 2\r\n\r\n{}Content-Length: 2\r\n\r\n[]"],
        &[header(HeaderProblem::BadLine), ok("{}"), ok("[]")],
    );
    // A bad line inside a header block: the block's own length still holds.
    check(
        &["X-A: \u{e9}\r\nContent-Length: 2\r\n\r\n{}".as_bytes()],
        &[header(HeaderProblem::BadLine), ok("{}")],
    );
    // Garbage that is not JSON, glued to the next header.
    check(
        &[b"hello worldContent-Length: 2\r\n\r\n{}"],
        &[header(HeaderProblem::BadLine), ok("{}")],
    );
}

#[test]
fn end_of_stream_drops_an_incomplete_frame() {
    check(
        &[b"Content-Length: 2\r\n\r\n{}Content-Length: 5\r\n\r\n{}"],
        &[ok("{}")],
    );
    check(&[b"Content-Length: 2\r\n"], &[]);
    check(&[b"Content-Length: 2\r\n\r\n{"], &[]);
    check(
        &[b"Content-Length: 999\r\n\r\nabc"],
        &[Frame::TooLarge {
            declared: Some(999),
        }],
    );
    // The codec is ready for a new stream afterwards.
    let mut codec = codec();
    let mut buf = BytesMut::from(&b"Content-Length: 5\r\n\r\n{"[..]);
    assert!(codec.decode_eof(&mut buf).expect("ends").is_none());
    buf.extend_from_slice(b"Content-Length: 2\r\n\r\n{}");
    let frame = codec
        .decode(&mut buf)
        .expect("stream goes on")
        .expect("a frame");
    assert_eq!(frame.expect("good").as_ref(), b"{}");
}

#[test]
fn encoder() {
    let codec = ContentLengthCodec::new(LIMIT);
    assert_eq!(codec.max_frame(), LIMIT);
    let mut dst = BytesMut::new();
    codec.encode_frame(b"{\"a\":1}", &mut dst).expect("fits");
    codec.encode_frame(b"", &mut dst).expect("fits");
    assert_eq!(
        &dst[..],
        b"Content-Length: 7\r\n\r\n{\"a\":1}Content-Length: 0\r\n\r\n"
    );
    let err = codec
        .encode_frame(&[b'x'; LIMIT + 1], &mut dst)
        .expect_err("too large");
    assert!(
        matches!(err, Error::FrameTooLarge { limit: LIMIT, .. }),
        "{err:?}"
    );

    // What the encoder writes, the decoder reads, also with a pretty-printed body.
    let pretty = "{\n  \"a\": 1\n}";
    let mut wire = BytesMut::new();
    codec
        .encode_frame(pretty.as_bytes(), &mut wire)
        .expect("fits");
    let mut decoder = Codec::new(Framing::ContentLength, LIMIT);
    let frame = decoder
        .decode(&mut wire)
        .expect("stream goes on")
        .expect("a frame");
    assert_eq!(frame.expect("good").as_ref(), pretty.as_bytes());
    assert_eq!(DEFAULT_MAX_HEADER, 1024);
}

#[test]
fn the_head_of_an_oversized_body_that_came_with_its_header_is_kept_once() {
    let mut codec = codec();
    let body = format!("{{\"id\":9,\"result\":\"{}\"}}", "z".repeat(LIMIT));
    let wire = format!("Content-Length: {}\r\n\r\n{body}", body.len());
    let mut buf = BytesMut::from(wire.as_bytes());
    assert!(matches!(
        codec.decode(&mut buf),
        Ok(Some(Err(Error::FrameTooLarge { .. })))
    ));
    let head = codec.take_rejected_head().expect("head kept");
    assert!(head.starts_with(b"{\"id\":9,"), "{head:?}");
    assert_eq!(codec.take_rejected_head(), None, "taken once");
    let mut codec = Codec::new(Framing::ContentLength, LIMIT);
    let mut buf = BytesMut::from(wire.as_bytes());
    assert!(matches!(
        codec.decode(&mut buf),
        Ok(Some(Err(Error::FrameTooLarge { .. })))
    ));
    assert!(codec.take_rejected_head().is_some(), "through Codec too");
}
