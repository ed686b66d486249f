//! Unit tests of the NDJSON decoder's scanning state.

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::{NdjsonCodec, is_blank};

#[test]
fn a_long_line_is_scanned_once() {
    let mut codec = NdjsonCodec::new(1 << 20);
    let mut buf = BytesMut::new();
    for i in 1..=10 {
        buf.extend_from_slice(&[b'x'; 100]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        assert_eq!(
            codec.scanned,
            100 * i,
            "the next search starts past what was searched"
        );
    }
    buf.extend_from_slice(b"\n");
    let frame = codec
        .decode(&mut buf)
        .expect("stream goes on")
        .expect("a frame");
    assert_eq!(frame.expect("good").len(), 1000);
    assert_eq!(codec.scanned, 0);
}

#[test]
fn discarding_lasts_until_the_next_newline() {
    let mut codec = NdjsonCodec::new(4);
    let mut buf = BytesMut::from(&b"123456"[..]);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Err(_)))));
    assert!(codec.discarding);
    assert!(buf.is_empty());
    buf.extend_from_slice(b"789");
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    assert!(codec.discarding);
    assert!(buf.is_empty());
    buf.extend_from_slice(b"0\nok\n");
    let frame = codec
        .decode(&mut buf)
        .expect("stream goes on")
        .expect("a frame");
    assert_eq!(frame.expect("good").as_ref(), b"ok");
    assert!(!codec.discarding);
}

#[test]
fn a_carriage_return_at_the_limit_waits_for_its_newline() {
    let mut codec = NdjsonCodec::new(4);
    let mut buf = BytesMut::from(&b"1234\r"[..]);
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    assert!(!codec.discarding);
    buf.extend_from_slice(b"x");
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Err(_)))));
    assert!(codec.discarding);
}

#[test]
fn blank_means_json_whitespace_only() {
    assert!(is_blank(b""));
    assert!(is_blank(b" \t\r"));
    assert!(!is_blank(b" x"));
    assert!(!is_blank(b"\x0c"));
}
