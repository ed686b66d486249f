//! Property tests: encode→decode round trips for arbitrary messages, arbitrary
//! bytes fed to either decoder, and valid streams split at arbitrary points.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::sample::Index;
use pybridge_protocol::{
    Codec, ContentLengthCodec, Error, ErrorCode, ErrorObject, Framing, Id, Message, NdjsonCodec,
    Notification, Request, Response,
};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio_util::codec::Decoder;

use crate::support::{describe, describe_message};

/// Strings heavy in what needs escaping: quotes, backslashes, control
/// characters, non-ASCII and astral characters.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z._/$]{0,12}",
        prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter),
        prop::collection::vec(
            prop::sample::select(vec![
                '"',
                '\\',
                '\n',
                '\r',
                '\t',
                '\u{0}',
                '\u{1f}',
                '\u{7f}',
                'é',
                '\u{2028}',
                '\u{1f600}',
                'a'
            ]),
            0..12
        )
        .prop_map(String::from_iter),
    ]
}

fn id() -> impl Strategy<Value = Id> {
    prop_oneof![
        any::<i64>().prop_map(Id::Number),
        text().prop_map(Id::from),
        Just(Id::Null),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(text(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Raw JSON for a value, compact or pretty-printed (raw text is kept as sent).
fn raw(value: Value, pretty: bool) -> Box<RawValue> {
    let text = if pretty {
        serde_json::to_string_pretty(&value)
    } else {
        serde_json::to_string(&value)
    };
    RawValue::from_string(text.expect("a Value serializes")).expect("valid JSON")
}

fn structured() -> impl Strategy<Value = Value> {
    prop_oneof![
        prop::collection::vec(value(), 0..5).prop_map(Value::Array),
        prop::collection::btree_map(text(), value(), 0..5)
            .prop_map(|m| Value::Object(m.into_iter().collect())),
    ]
}

fn params() -> impl Strategy<Value = Option<Box<RawValue>>> {
    prop::option::of((structured(), any::<bool>()).prop_map(|(v, pretty)| raw(v, pretty)))
}

fn error_object() -> impl Strategy<Value = ErrorObject> {
    (
        any::<i64>(),
        text(),
        prop::option::of((value(), any::<bool>()).prop_map(|(v, pretty)| raw(v, pretty))),
    )
        .prop_map(|(code, message, data)| ErrorObject {
            code: ErrorCode(code),
            message,
            data,
        })
}

fn single() -> impl Strategy<Value = Message> {
    prop_oneof![
        (id(), text(), params()).prop_map(|(id, method, params)| Message::Request(Request {
            id,
            method,
            params
        })),
        (text(), params())
            .prop_map(|(method, params)| Message::Notification(Notification { method, params })),
        (id(), value(), any::<bool>()).prop_map(|(id, v, pretty)| Message::Response(Response {
            id,
            result: Ok(raw(v, pretty)),
        })),
        (id(), error_object()).prop_map(|(id, error)| Message::Response(Response {
            id,
            result: Err(error),
        })),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        4 => single(),
        1 => prop::collection::vec(single().prop_map(Ok::<Message, Error>), 1..5).prop_map(Message::Batch),
    ]
}

/// Decodes every frame of `wire`, fed in pieces cut at `cuts`, then ends the stream.
fn frames<D>(codec: &mut D, wire: &[u8], cuts: &[usize]) -> Vec<Result<Bytes, String>>
where
    D: Decoder<Item = Result<Bytes, Error>, Error = Error>,
{
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&wire.len())) {
        buf.extend_from_slice(&wire[start..end]);
        start = end;
        while let Some(item) = codec.decode(&mut buf).expect("stream goes on") {
            out.push(item.map_err(|e| e.to_string()));
        }
    }
    while let Some(item) = codec.decode_eof(&mut buf).expect("stream goes on") {
        out.push(item.map_err(|e| e.to_string()));
    }
    out
}

fn cut_points(len: usize, cuts: &[Index]) -> Vec<usize> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(len + 1)).collect();
    points.sort_unstable();
    points
}

/// Pieces of wire data that make the decoders' states interesting.
fn chunk() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..48),
        prop::collection::vec(
            prop::sample::select(b"\r\n :{}[]\"\\0123456789".to_vec()),
            0..24
        ),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r\n\r\n".to_vec()),
        Just(b"Content-Length: ".to_vec()),
        Just(b"content-length:".to_vec()),
        "[0-9]{1,5}".prop_map(String::into_bytes),
        Just(br#"{"jsonrpc":"2.0","result":[1,2],"id":7}"#.to_vec()),
        Just(br#"{"jsonrpc":"2.0","method":"m","params":{"a":"\u00e9"}}"#.to_vec()),
        Just(b"\xff\xc3".to_vec()),
    ]
}

/// Feeds `chunks` to `codec`, checking after every step that the buffer holds
/// at most `retained` bytes plus the chunk being fed, and that its allocation
/// stays within a small multiple of that. Every frame is decoded as a message.
fn feed_arbitrary<D>(codec: &mut D, chunks: &[Vec<u8>], retained: usize)
where
    D: Decoder<Item = Result<Bytes, Error>, Error = Error>,
{
    let mut buf = BytesMut::new();
    let largest = chunks.iter().map(Vec::len).max().unwrap_or(0);
    for chunk in chunks {
        prop_assert_le(buf.len(), retained);
        buf.extend_from_slice(chunk);
        let mut steps = 0;
        while let Some(item) = codec.decode(&mut buf).expect("stream goes on") {
            steps += 1;
            assert!(
                steps <= chunk.len() + retained + 1,
                "decoding makes progress"
            );
            if let Ok(frame) = item {
                let _ = Message::from_slice(&frame);
            }
            prop_assert_le(buf.len(), retained + chunk.len());
        }
        prop_assert_le(buf.len(), retained);
        // BytesMut grows by doubling its whole allocation, read-past bytes
        // included, so allow a factor of four over what is ever held at once.
        assert!(
            buf.capacity() <= 4 * (retained + largest) + 64,
            "capacity {} for retained {retained} and chunks of {largest}",
            buf.capacity()
        );
    }
    let mut steps = 0;
    while let Some(item) = codec.decode_eof(&mut buf).expect("stream goes on") {
        steps += 1;
        assert!(steps <= retained + 2, "end of stream makes progress");
        if let Ok(frame) = item {
            let _ = Message::from_slice(&frame);
        }
    }
    assert!(buf.is_empty());
}

fn prop_assert_le(len: usize, bound: usize) {
    assert!(len <= bound, "buffer holds {len} bytes, more than {bound}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_then_decode_round_trips(message in message()) {
        let bytes = message.to_vec();
        let decoded = Message::from_slice(&bytes);
        prop_assert_eq!(describe(&decoded), describe_message(&message));
        let again = decoded.expect("decodes").to_vec();
        prop_assert_eq!(again, bytes);
        // The serde impl writes the same JSON.
        let serialized = serde_json::to_vec(&message).expect("serializes");
        prop_assert_eq!(
            describe(&Message::from_slice(&serialized)),
            describe_message(&message)
        );
    }

    #[test]
    fn a_frame_the_codec_did_not_check_decodes_as_a_checked_one(
        message in message(),
        at in any::<Index>(),
        byte in any::<u8>(),
    ) {
        // One byte of a valid message replaced by any byte: the decode for
        // unchecked frames must say what the codec's check and the usual
        // decode together say.
        let mut bytes = message.to_vec();
        let i = at.index(bytes.len());
        bytes[i] = byte;
        let expected = match std::str::from_utf8(&bytes) {
            Ok(_) => Message::from_slice(&bytes),
            Err(err) => Err(Error::InvalidUtf8 { valid_up_to: err.valid_up_to() }),
        };
        prop_assert_eq!(
            format!("{:?}", Message::from_frame(&bytes)),
            format!("{expected:?}")
        );
    }

    #[test]
    fn arbitrary_bytes_never_break_ndjson(
        chunks in prop::collection::vec(chunk(), 0..40),
        limit in 0usize..160,
    ) {
        let mut codec = NdjsonCodec::new(limit);
        feed_arbitrary(&mut codec, &chunks, limit + 1);
    }

    #[test]
    fn arbitrary_bytes_never_break_content_length(
        chunks in prop::collection::vec(chunk(), 0..40),
        limit in 0usize..160,
        header in 0usize..80,
    ) {
        let mut codec = ContentLengthCodec::new(limit).with_max_header(header);
        // A partial body, a header block short of its blank line, or, while
        // skipping garbage, what may be the start of a `Content-Length` name.
        let retained = limit.max(header + 3).max("content-length".len() - 1);
        feed_arbitrary(&mut codec, &chunks, retained);
    }

    #[test]
    fn split_streams_decode_like_whole_ones(
        messages in prop::collection::vec(message(), 1..8),
        framing in prop_oneof![Just(Framing::Ndjson), Just(Framing::ContentLength)],
        crlf in any::<bool>(),
        cuts in prop::collection::vec(any::<Index>(), 0..12),
    ) {
        let codec = Codec::new(framing, 1 << 20);
        let mut wire = BytesMut::new();
        let mut payloads = Vec::new();
        for message in &messages {
            let payload = message.to_vec();
            codec.encode_frame(&payload, &mut wire).expect("fits");
            if crlf && framing == Framing::Ndjson {
                // Some peers end lines with CRLF, and leave blank lines.
                let newline = wire.len() - 1;
                wire.truncate(newline);
                wire.extend_from_slice(b"\r\n\r\n");
            }
            payloads.push(payload);
        }
        let whole = frames(&mut codec.clone(), &wire, &[]);
        let split = frames(&mut codec.clone(), &wire, &cut_points(wire.len(), &cuts));
        prop_assert_eq!(&split, &whole);
        let expected: Vec<Result<Bytes, String>> = payloads
            .iter()
            .map(|p| {
                // Pretty-printed raw values lose their line breaks in NDJSON.
                let mut p = p.clone();
                if framing == Framing::Ndjson {
                    for b in &mut p {
                        if *b == b'\n' || *b == b'\r' {
                            *b = b' ';
                        }
                    }
                }
                Ok(Bytes::from(p))
            })
            .collect();
        prop_assert_eq!(&split, &expected);
        for ((frame, message), payload) in split.iter().zip(&messages).zip(&expected) {
            let frame = frame.as_ref().expect("valid frame");
            let decoded = Message::from_slice(frame);
            if framing == Framing::ContentLength {
                prop_assert_eq!(describe(&decoded), describe_message(message));
            }
            // Re-encoding what was decoded gives back the frame, byte for byte.
            prop_assert_eq!(&decoded.expect("decodes").to_vec()[..], &payload.as_ref().expect("valid")[..]);
        }
    }

    #[test]
    fn ids_round_trip(id in id()) {
        let text = serde_json::to_string(&id).expect("serializes");
        prop_assert_eq!(serde_json::from_str::<Id>(&text).expect("deserializes"), id.clone());
        let mut out = Vec::new();
        pybridge_protocol::write_request(&mut out, &id, "m", None);
        let Ok(Message::Request(request)) = Message::from_slice(&out) else {
            panic!("a request");
        };
        prop_assert_eq!(request.id, id);
    }
}
