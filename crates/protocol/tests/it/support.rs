//! Shared helpers: a comparable picture of what decoding produced, and a
//! driver that feeds a codec chunk by chunk.

use bytes::BytesMut;
use pybridge_protocol::{Error, ErrorCode, HeaderProblem, Id, Message, Rule};
use tokio_util::codec::Decoder;

/// What a decoded message is, with params, results and data as their raw text,
/// or which error a server must answer it with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decoded {
    Request {
        id: Id,
        method: String,
        params: Option<String>,
    },
    Notification {
        method: String,
        params: Option<String>,
    },
    Success {
        id: Id,
        result: String,
    },
    Failure {
        id: Id,
        code: i64,
        message: String,
        data: Option<String>,
    },
    Batch(Vec<Decoded>),
    /// `-32600`, with the broken rule and the id the error response carries.
    Invalid {
        rule: Rule,
        id: Id,
    },
    /// `-32700`; the error response carries the null id.
    Parse,
}

pub(crate) fn request(id: impl Into<Id>, method: &str, params: Option<&str>) -> Decoded {
    Decoded::Request {
        id: id.into(),
        method: method.to_owned(),
        params: params.map(str::to_owned),
    }
}

pub(crate) fn notification(method: &str, params: Option<&str>) -> Decoded {
    Decoded::Notification {
        method: method.to_owned(),
        params: params.map(str::to_owned),
    }
}

pub(crate) fn success(id: impl Into<Id>, result: &str) -> Decoded {
    Decoded::Success {
        id: id.into(),
        result: result.to_owned(),
    }
}

pub(crate) fn failure(id: impl Into<Id>, code: i64, message: &str, data: Option<&str>) -> Decoded {
    Decoded::Failure {
        id: id.into(),
        code,
        message: message.to_owned(),
        data: data.map(str::to_owned),
    }
}

pub(crate) fn invalid(rule: Rule, id: impl Into<Id>) -> Decoded {
    Decoded::Invalid {
        rule,
        id: id.into(),
    }
}

/// The null id, for readability in expectations.
pub(crate) const NULL: Id = Id::Null;

/// Describes a decode outcome; checks on the way that an error maps to the
/// code and id the specification prescribes for its kind.
pub(crate) fn describe(outcome: &Result<Message, Error>) -> Decoded {
    match outcome {
        Ok(message) => describe_message(message),
        Err(err) => describe_error(err),
    }
}

pub(crate) fn describe_message(message: &Message) -> Decoded {
    match message {
        Message::Request(r) => Decoded::Request {
            id: r.id.clone(),
            method: r.method.clone(),
            params: r.params.as_ref().map(|p| p.get().to_owned()),
        },
        Message::Notification(n) => Decoded::Notification {
            method: n.method.clone(),
            params: n.params.as_ref().map(|p| p.get().to_owned()),
        },
        Message::Response(r) => match &r.result {
            Ok(result) => Decoded::Success {
                id: r.id.clone(),
                result: result.get().to_owned(),
            },
            Err(error) => Decoded::Failure {
                id: r.id.clone(),
                code: error.code.0,
                message: error.message.clone(),
                data: error.data.as_ref().map(|d| d.get().to_owned()),
            },
        },
        Message::Batch(entries) => Decoded::Batch(entries.iter().map(describe).collect()),
    }
}

fn describe_error(err: &Error) -> Decoded {
    match err {
        Error::Parse { .. } => {
            assert_eq!(err.code(), ErrorCode::PARSE_ERROR, "{err}");
            assert_eq!(err.id(), &Id::Null, "{err}");
            Decoded::Parse
        }
        Error::Invalid { rule, id } => {
            assert_eq!(err.code(), ErrorCode::INVALID_REQUEST, "{err}");
            assert_eq!(err.id(), id, "{err}");
            Decoded::Invalid {
                rule: *rule,
                id: id.clone(),
            }
        }
        other => panic!("decoding a message failed with a non-decoding error: {other:?}"),
    }
}

/// Decodes `text` both from bytes and from a `str`, checks both agree, and
/// describes the outcome.
pub(crate) fn decode(text: &str) -> Decoded {
    let from_slice = describe(&Message::from_slice(text.as_bytes()));
    let from_str = describe(&text.parse::<Message>());
    assert_eq!(
        from_slice, from_str,
        "from_slice and from_str disagree on {text}"
    );
    from_slice
}

/// What a codec yielded for one frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Frame {
    Ok(Vec<u8>),
    TooLarge { declared: Option<u64> },
    Utf8 { valid_up_to: usize },
    Header(HeaderProblem),
}

pub(crate) fn ok(frame: &str) -> Frame {
    Frame::Ok(frame.as_bytes().to_vec())
}

fn frame(item: Result<bytes::Bytes, Error>, limit: usize) -> Frame {
    match item {
        Ok(bytes) => Frame::Ok(bytes.to_vec()),
        Err(Error::FrameTooLarge { limit: l, declared }) => {
            assert_eq!(l, limit);
            Frame::TooLarge { declared }
        }
        Err(Error::InvalidUtf8 { valid_up_to }) => Frame::Utf8 { valid_up_to },
        Err(Error::MalformedHeader { problem }) => Frame::Header(problem),
        Err(other) => panic!("a codec yielded an unexpected frame error: {other:?}"),
    }
}

/// Feeds `chunks` one at a time to `codec`, drains every frame after each,
/// then signals end of stream. After every feed the buffer must hold at most
/// `retained` bytes plus the chunk just fed.
pub(crate) fn feed<D>(codec: &mut D, chunks: &[&[u8]], limit: usize, retained: usize) -> Vec<Frame>
where
    D: Decoder<Item = Result<bytes::Bytes, Error>, Error = Error>,
{
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        assert!(
            buf.len() <= retained,
            "buffer holds {} > {retained} bytes",
            buf.len()
        );
        buf.extend_from_slice(chunk);
        while let Some(item) = codec
            .decode(&mut buf)
            .expect("decoding never fails the stream")
        {
            frames.push(frame(item, limit));
            assert!(buf.len() <= retained + chunk.len());
        }
        assert!(
            buf.len() <= retained,
            "buffer holds {} > {retained} bytes",
            buf.len()
        );
    }
    while let Some(item) = codec
        .decode_eof(&mut buf)
        .expect("decoding never fails the stream")
    {
        frames.push(frame(item, limit));
    }
    assert!(buf.is_empty(), "end of stream leaves nothing buffered");
    frames
}
