//! Unit tests of Content-Length header parsing and resynchronisation.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::{ContentLengthCodec, State, find_length_name, header_line, parse_header, resync_point};
use crate::HeaderProblem;

#[test]
fn header_lines() {
    assert_eq!(
        header_line(b"Content-Length: 12"),
        Ok((&b"Content-Length"[..], &b"12"[..]))
    );
    assert_eq!(
        header_line(b" X-A :  v : w "),
        Ok((&b"X-A"[..], &b"v : w"[..]))
    );
    assert_eq!(
        header_line(b"a!#$%&'*+-.^_`|~9:"),
        Ok((&b"a!#$%&'*+-.^_`|~9"[..], &b""[..]))
    );
    for bad in [
        &b"no colon"[..],
        b": empty name",
        b"two words: x",
        b"{\"a\":1}Content-Length: 2",
        b"X-\xc3\xa9: 1",
        b"(x): 1",
    ] {
        assert_eq!(header_line(bad), Err(HeaderProblem::BadLine), "{bad:?}");
    }
}

#[test]
fn header_blocks() {
    assert_eq!(parse_header(b"Content-Length: 5"), Ok(5));
    assert_eq!(parse_header(b"\r\ncontent-LENGTH:0\r\nX: y"), Ok(0));
    assert_eq!(
        parse_header(b"Content-Length: 18446744073709551615"),
        Ok(u64::MAX)
    );
    assert_eq!(parse_header(b""), Err(HeaderProblem::MissingLength));
    assert_eq!(parse_header(b"X: 1"), Err(HeaderProblem::MissingLength));
    assert_eq!(
        parse_header(b"Content-Length: 1\r\nContent-Length: 1"),
        Err(HeaderProblem::DuplicateLength)
    );
    assert_eq!(
        parse_header(b"Content-Length: 18446744073709551616"),
        Err(HeaderProblem::BadLength)
    );
    assert_eq!(
        parse_header(b"Content-Length: 1_0"),
        Err(HeaderProblem::BadLength)
    );
}

#[test]
fn length_names_are_found_in_any_case() {
    assert_eq!(find_length_name(b"xxContent-Length"), Some(2));
    assert_eq!(find_length_name(b"cCONTENT-length"), Some(1));
    assert_eq!(find_length_name(b"content-lengt"), None);
    assert_eq!(find_length_name(b""), None);
}

#[test]
fn resync_points() {
    // Glued behind garbage on the same line.
    assert_eq!(resync_point(b"{\"a\":1}Content-Length: 2"), Some(7));
    assert_eq!(resync_point(b"12345content-length: 2"), Some(5));
    // At the start of a line after a line that is not a header.
    assert_eq!(resync_point(b"junk\r\nContent-Length: 2"), Some(6));
    assert_eq!(resync_point(b"junk\nX: 1\nContent-Length: 2"), Some(10));
    // A genuine header block that is wrong has no better starting point.
    assert_eq!(resync_point(b"Content-Length: x"), None);
    assert_eq!(
        resync_point(b"Content-Length: 1\r\nContent-Length: 2"),
        None
    );
    assert_eq!(resync_point(b"X: 1\r\nContent-Length: 2"), None);
    assert_eq!(resync_point(b"Content-Length 2"), None);
    assert_eq!(resync_point(b""), None);
}

#[test]
fn an_oversized_body_is_counted_down_not_buffered() {
    let mut codec = ContentLengthCodec::new(10);
    let mut buf = BytesMut::from(&b"Content-Length: 25\r\n\r\n0123456789"[..]);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Err(_)))));
    assert!(matches!(codec.state, State::SkipBody(25)));
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    assert!(matches!(codec.state, State::SkipBody(15)));
    assert!(buf.is_empty());
    buf.extend_from_slice(b"0123456789abcdeContent-Length: 1\r\n\r\n7");
    let frame = codec
        .decode(&mut buf)
        .expect("stream goes on")
        .expect("a frame");
    assert_eq!(frame.expect("good").as_ref(), b"7");
    assert!(matches!(codec.state, State::Header));
}

#[test]
fn skipping_garbage_keeps_only_a_possible_name_prefix() {
    let mut codec = ContentLengthCodec::new(10).with_max_header(24);
    let mut buf = BytesMut::from(&b"garbage without any header at all, Content-Le"[..]);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Err(_)))));
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    assert!(matches!(codec.state, State::SkipHeader));
    assert_eq!(
        &buf[..],
        b"l, Content-Le",
        "the length of the name, less one"
    );
    buf.extend_from_slice(b"ngth: 1\r\n\r\nz");
    let frame = codec
        .decode(&mut buf)
        .expect("stream goes on")
        .expect("a frame");
    assert_eq!(frame.expect("good").as_ref(), b"z");
}

#[test]
fn a_body_within_the_limit_is_reserved_once() {
    let mut codec = ContentLengthCodec::new(1 << 20);
    let mut buf = BytesMut::from(&b"Content-Length: 100000\r\n\r\n"[..]);
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    assert!(matches!(codec.state, State::Body(100_000)));
    assert!(buf.capacity() >= 100_000);
}
