//! NDJSON framing: line endings, blank lines, the frame limit, resynchronising
//! after a bad line, and end of stream.

use bytes::BytesMut;
use pybridge_protocol::{Codec, DEFAULT_MAX_FRAME, Error, Framing, Message, NdjsonCodec};
use tokio_util::codec::{Decoder, Encoder};

use crate::support::{Frame, feed, ok};

const LIMIT: usize = 16;

/// Feeds `chunks` to a codec with a 16-byte limit and checks the frames it yields.
fn check(chunks: &[&[u8]], expected: &[Frame]) {
    let mut codec = NdjsonCodec::new(LIMIT);
    // A partial line is kept up to the limit plus a `\r` that may precede its newline.
    let frames = feed(&mut codec, chunks, LIMIT, LIMIT + 1);
    assert_eq!(frames, expected, "frames of {chunks:?}");
    // The same bytes one at a time give the same frames.
    let all: Vec<u8> = chunks.concat();
    let bytes: Vec<&[u8]> = all.chunks(1).collect();
    let mut codec = NdjsonCodec::new(LIMIT);
    assert_eq!(
        feed(&mut codec, &bytes, LIMIT, LIMIT + 1),
        expected,
        "byte by byte"
    );
    // And through the run-time chosen codec.
    let mut codec = Codec::new(Framing::Ndjson, LIMIT);
    assert_eq!(
        feed(&mut codec, chunks, LIMIT, LIMIT + 1),
        expected,
        "as Codec"
    );
}

fn too_large(declared: Option<u64>) -> Frame {
    Frame::TooLarge { declared }
}

#[test]
fn lines() {
    check(&[b"{}\n[1]\n"], &[ok("{}"), ok("[1]")]);
    check(&[b"{\"a\"", b":1}\n"], &[ok("{\"a\":1}")]);
    check(&[b"a\r\nb\r\n"], &[ok("a"), ok("b")]);
    // Only the `\r` right before the newline belongs to the terminator.
    check(&[b"a\rb\r\n"], &[ok("a\rb")]);
}

#[test]
fn blank_lines_are_skipped() {
    check(&[b"\n\n  \r\n\t \n{}\n\r\n\n[]\n"], &[ok("{}"), ok("[]")]);
    check(&[b"\n", b"\r", b"\n", b" "], &[]);
}

#[test]
fn frame_at_the_limit_and_one_byte_over() {
    let at = "x".repeat(LIMIT);
    let over = "y".repeat(LIMIT + 1);
    check(&[format!("{at}\n").as_bytes()], &[ok(&at)]);
    check(&[format!("{at}\r\n").as_bytes()], &[ok(&at)]);
    check(&[at.as_bytes(), b"\n"], &[ok(&at)]);
    // The `\r` arrives before its `\n`: the line is still within the limit.
    check(&[at.as_bytes(), b"\r", b"\n"], &[ok(&at)]);
    check(
        &[format!("{at}\r").as_bytes(), b"\nok\n"],
        &[ok(&at), ok("ok")],
    );
    // One byte over, whole or in pieces, is rejected once and skipped.
    check(
        &[format!("{over}\nok\n").as_bytes()],
        &[too_large(None), ok("ok")],
    );
    check(&[over.as_bytes(), b"\nok\n"], &[too_large(None), ok("ok")]);
    check(
        &[format!("{over}\r").as_bytes(), b"\nok\n"],
        &[too_large(None), ok("ok")],
    );
}

#[test]
fn oversized_line_across_many_chunks_is_reported_once_and_skipped() {
    let mut codec = NdjsonCodec::new(LIMIT);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let chunk = [b'z'; 10];
    for _ in 0..1_000 {
        buf.extend_from_slice(&chunk);
        while let Some(frame) = codec.decode(&mut buf).expect("stream goes on") {
            frames.push(frame);
        }
        // Never more than the limit (plus a `\r`) and the chunk just fed.
        assert!(buf.len() <= LIMIT + 1 + chunk.len(), "{}", buf.len());
        assert!(
            buf.capacity() <= 4 * (LIMIT + 1 + chunk.len()),
            "{}",
            buf.capacity()
        );
    }
    assert_eq!(frames.len(), 1);
    assert!(matches!(
        frames[0],
        Err(Error::FrameTooLarge {
            limit: LIMIT,
            declared: None
        })
    ));
    buf.extend_from_slice(b"zzz\n{\"ok\":1}\n");
    let next = codec.decode(&mut buf).expect("stream goes on");
    assert_eq!(
        next.expect("a frame").expect("good").as_ref(),
        b"{\"ok\":1}"
    );
    assert!(codec.decode(&mut buf).expect("stream goes on").is_none());
}

#[test]
fn resynchronises_after_garbage() {
    let long = "g".repeat(40);
    check(
        &[
            b"not json at all\n",
            long.as_bytes(),
            b"\n{\"a\":1}\n",
            b"\xff\xfe\n",
            b"[2]\n",
        ],
        &[
            ok("not json at all"),
            too_large(None),
            ok("{\"a\":1}"),
            Frame::Utf8 { valid_up_to: 0 },
            ok("[2]"),
        ],
    );
}

#[test]
fn invalid_utf8_fails_only_its_frame() {
    check(
        &[b"{\"a\":\"\xc3\x28\"}\n{\"b\":2}\n"],
        &[Frame::Utf8 { valid_up_to: 6 }, ok("{\"b\":2}")],
    );
    // A multi-byte character split across chunks is fine.
    check(&[b"\"\xc3", b"\xa9\"\n"], &[ok("\"\u{e9}\"")]);
}

#[test]
fn without_the_utf8_check_a_frame_that_is_not_utf8_comes_out_as_it_is() {
    let chunks: &[&[u8]] = &[b"{\"a\":\"\xc3\x28\"}\n{\"b\":2}\n\xff"];
    let expected = [
        Frame::Ok(b"{\"a\":\"\xc3\x28\"}".to_vec()),
        ok("{\"b\":2}"),
        Frame::Ok(b"\xff".to_vec()),
    ];
    let mut codec = NdjsonCodec::new(LIMIT).without_utf8_check();
    assert_eq!(feed(&mut codec, chunks, LIMIT, LIMIT + 1), expected);
    let mut codec = Codec::new(Framing::Ndjson, LIMIT).without_utf8_check();
    assert_eq!(feed(&mut codec, chunks, LIMIT, LIMIT + 1), expected);
}

#[test]
fn end_of_stream() {
    // An unterminated last line is still a frame.
    check(&[b"{}\n[1]"], &[ok("{}"), ok("[1]")]);
    check(&[b"{}\n[1]\r"], &[ok("{}"), ok("[1]")]);
    check(&[b"{}\n  "], &[ok("{}")]);
    check(&[b"\xff"], &[Frame::Utf8 { valid_up_to: 0 }]);
    // A too-long unterminated line was already reported; nothing more comes of it.
    let long = "q".repeat(LIMIT + 5);
    check(&[long.as_bytes()], &[too_large(None)]);
    check(&[], &[]);
}

#[test]
fn encoder() {
    let codec = NdjsonCodec::new(LIMIT);
    let mut dst = BytesMut::new();
    codec.encode_frame(b"{}", &mut dst).expect("fits");
    codec
        .encode_frame(&[b'1'; LIMIT], &mut dst)
        .expect("at the limit");
    let mut expected = b"{}\n".to_vec();
    expected.extend_from_slice(&[b'1'; LIMIT]);
    expected.push(b'\n');
    assert_eq!(&dst[..], &expected[..]);

    let err = codec
        .encode_frame(&[b'1'; LIMIT + 1], &mut dst)
        .expect_err("too large");
    assert!(
        matches!(err, Error::FrameTooLarge { limit: LIMIT, .. }),
        "{err:?}"
    );
    assert_eq!(&dst[..], &expected[..], "nothing written on failure");

    let mut codec = codec;
    let mut dst = BytesMut::new();
    Encoder::encode(&mut codec, &b"[]"[..], &mut dst).expect("fits");
    assert_eq!(&dst[..], b"[]\n");
}

#[test]
fn encoder_replaces_raw_newlines_in_pretty_printed_params() {
    let pretty =
        serde_json::to_string_pretty(&serde_json::json!({"a": [1, 2], "b": "x\ny"})).expect("json");
    assert!(pretty.contains('\n'));
    let params =
        serde_json::value::RawValue::from_string(pretty.replace('\n', "\r\n")).expect("still JSON");
    let mut payload = Vec::new();
    pybridge_protocol::write_request(&mut payload, &7.into(), "m", Some(&params));

    let codec = NdjsonCodec::new(DEFAULT_MAX_FRAME);
    let mut wire = BytesMut::new();
    codec.encode_frame(&payload, &mut wire).expect("fits");
    assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1);
    assert!(!wire.contains(&b'\r'));
    assert_eq!(wire.last(), Some(&b'\n'));

    let mut decoder = codec.clone();
    let frame = decoder
        .decode(&mut wire)
        .expect("stream goes on")
        .expect("a frame")
        .expect("a good frame");
    let Ok(Message::Request(request)) = Message::from_slice(&frame) else {
        panic!("a request");
    };
    assert_eq!(
        request.params_as::<serde_json::Value>().expect("json"),
        serde_json::json!({"a": [1, 2], "b": "x\ny"})
    );
}

#[test]
fn codec_enum() {
    let codec = Codec::new(Framing::Ndjson, 99);
    assert_eq!(codec.framing(), Framing::Ndjson);
    assert_eq!(codec.max_frame(), 99);
    assert_eq!(Framing::default(), Framing::Ndjson);
    let codec = Codec::new(Framing::ContentLength, 98);
    assert_eq!(codec.framing(), Framing::ContentLength);
    assert_eq!(codec.max_frame(), 98);
    let mut dst = BytesMut::new();
    codec.encode_frame(b"{}", &mut dst).expect("fits");
    assert_eq!(&dst[..], b"Content-Length: 2\r\n\r\n{}");
    let mut codec = codec;
    Encoder::encode(&mut codec, &b"[]"[..], &mut dst).expect("fits");
    assert_eq!(
        &dst[..],
        b"Content-Length: 2\r\n\r\n{}Content-Length: 2\r\n\r\n[]"
    );
}

#[test]
fn codecs_are_cheap_to_share() {
    fn assert_traits<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_traits::<NdjsonCodec>();
    assert_traits::<pybridge_protocol::ContentLengthCodec>();
    assert_traits::<Codec>();
    assert_traits::<Framing>();
}

#[test]
fn the_head_of_an_oversized_line_is_kept_for_the_caller_once() {
    let mut codec = NdjsonCodec::new(LIMIT);
    let mut buf = BytesMut::from(&b"{\"id\":42,\"result\":\"xxxxxxxxxxxxxxxxxxxxxxxx\n{}\n"[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Ok(Some(Err(Error::FrameTooLarge { .. })))
    ));
    let head = codec.take_rejected_head().expect("head kept");
    assert!(head.starts_with(b"{\"id\":42,"), "{head:?}");
    assert_eq!(codec.take_rejected_head(), None, "taken once");
    assert_eq!(
        codec.decode(&mut buf).unwrap().unwrap().unwrap(),
        &b"{}"[..]
    );

    // Rejected before its newline arrived: the head is what was in hand,
    // never more than REJECTED_HEAD bytes.
    let mut codec = NdjsonCodec::new(LIMIT);
    let long = vec![b'7'; pybridge_protocol::REJECTED_HEAD * 2];
    let mut buf = BytesMut::from(&long[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Ok(Some(Err(Error::FrameTooLarge { .. })))
    ));
    assert_eq!(
        codec.take_rejected_head().unwrap().len(),
        pybridge_protocol::REJECTED_HEAD
    );
    let mut codec = Codec::new(Framing::Ndjson, LIMIT);
    let mut buf = BytesMut::from(&b"{\"id\":1,\"result\":\"yyyyyyyyyyyyy\"}\n"[..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Ok(Some(Err(Error::FrameTooLarge { .. })))
    ));
    assert!(codec.take_rejected_head().is_some(), "through Codec too");
}
