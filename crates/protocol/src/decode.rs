//! Strict decoding of JSON-RPC 2.0 messages.
//!
//! `RawValue` cannot sit inside `#[serde(untagged)]` or `flatten`, so the
//! envelope is read into a struct of raw members, each recording whether it
//! was present at all (a member set to `null` is not the same as a missing
//! one), and classified by hand. Params and results stay raw: they are
//! validated as JSON once and copied once, never parsed into a tree.

use std::str::FromStr;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::{Error, ErrorObject, Id, Message, Notification, Request, Response, Rule};

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow, deserialize_with = "present")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    params: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

/// Records a member as present even when its value is `null`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(Some)
}

impl Message {
    /// Decodes one message or batch from JSON bytes, strictly.
    ///
    /// # Errors
    /// [`Error::Parse`] when the bytes are not JSON, [`Error::Invalid`] naming
    /// the broken rule when they are JSON but not JSON-RPC 2.0. Entries of a
    /// batch fail on their own, inside [`Message::Batch`].
    pub fn from_slice(bytes: &[u8]) -> Result<Message, Error> {
        if let Some(response) = plain_response(bytes) {
            return Ok(Message::Response(response));
        }
        decode_general(bytes)
    }
}

impl Message {
    /// Decodes one frame from a codec built
    /// [`without_utf8_check`](crate::Codec::without_utf8_check): like
    /// [`Message::from_slice`], and a frame that is not UTF-8 is
    /// [`Error::InvalidUtf8`], as the codec would have said. The usual
    /// answer is read without a pass of its own for UTF-8: every byte of it
    /// outside the result is matched against ASCII, and the result is
    /// checked as it is parsed.
    ///
    /// # Errors
    /// As [`Message::from_slice`], and [`Error::InvalidUtf8`].
    pub fn from_frame(frame: &[u8]) -> Result<Message, Error> {
        if let Some(response) = plain_response(frame) {
            return Ok(Message::Response(response));
        }
        let text = std::str::from_utf8(frame).map_err(|err| Error::InvalidUtf8 {
            valid_up_to: err.valid_up_to(),
        })?;
        text.parse()
    }
}

/// Decodes any message or batch member by member.
pub(crate) fn decode_general(bytes: &[u8]) -> Result<Message, Error> {
    if first_byte(bytes) == Some(b'[') {
        return decode_batch(serde_json::from_slice(bytes));
    }
    decode_single(serde_json::from_slice(bytes))
}

impl FromStr for Message {
    type Err = Error;

    fn from_str(text: &str) -> Result<Message, Error> {
        if first_byte(text.as_bytes()) == Some(b'[') {
            return decode_batch(serde_json::from_str(text));
        }
        decode_single(serde_json::from_str(text))
    }
}

/// The prefix of nearly every answer: workers write compact JSON with the
/// members in the order the specification lists them.
const PLAIN_HEAD: &[u8] = br#"{"jsonrpc":"2.0","id":"#;
const PLAIN_RESULT: &[u8] = br#","result":"#;

/// Reads an answer of the one shape nearly all of them have,
/// `{"jsonrpc":"2.0","id":<integer>,"result":<value>}`, without the
/// envelope's per-member work (each member read as a raw value, checked
/// as UTF-8 and matched by name): for a 100 B answer, 1,150 instructions
/// against the general path's 2,820. `None` for anything else (another
/// order, spaces, a string id, an error, a member more, bad JSON), which
/// the general path decides; for this shape both give the same message.
pub(crate) fn plain_response(bytes: &[u8]) -> Option<Response> {
    let rest = bytes.strip_prefix(PLAIN_HEAD)?;
    let (negative, rest) = match rest.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, rest),
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    // At most 18 digits always fit in an i64; JSON forbids leading zeros.
    if digits == 0 || digits > 18 || (digits > 1 && rest[0] == b'0') {
        return None;
    }
    let magnitude = rest[..digits]
        .iter()
        .fold(0_i64, |n, d| n * 10 + i64::from(d - b'0'));
    let id = if negative { -magnitude } else { magnitude };
    let body = rest[digits..].strip_prefix(PLAIN_RESULT)?;
    // JSON's whitespace only: `trim_ascii_end` would also take a form feed,
    // which the general path rejects as a trailing character.
    let end = body
        .iter()
        .rposition(|b| !is_json_whitespace(*b))
        .map_or(0, |last| last + 1);
    let body = body[..end].strip_suffix(b"}")?;
    // One value and nothing after it but whitespace: a second member, a
    // stray brace or bad JSON fails here and goes to the general path.
    let result = serde_json::from_slice::<Box<RawValue>>(body).ok()?;
    Some(Response {
        id: Id::Number(id),
        result: Ok(result),
    })
}

pub(crate) fn first_byte(bytes: &[u8]) -> Option<u8> {
    bytes.iter().copied().find(|b| !is_json_whitespace(*b))
}

/// Whitespace as JSON has it (RFC 8259): space, tab, line feed, carriage
/// return; not form feed or vertical tab.
fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn decode_batch(entries: Result<Vec<&RawValue>, serde_json::Error>) -> Result<Message, Error> {
    let entries = entries.map_err(|err| structural(&err))?;
    if entries.is_empty() {
        return Err(Error::invalid(Rule::EmptyBatch, Id::Null));
    }
    let decoded = entries
        .into_iter()
        .map(|raw| {
            if first_byte(raw.get().as_bytes()) == Some(b'[') {
                return Err(Error::invalid(Rule::NestedBatch, Id::Null));
            }
            decode_single(serde_json::from_str(raw.get()))
        })
        .collect();
    Ok(Message::Batch(decoded))
}

/// Maps a serde error to a parse error (bad JSON) or an invalid message (good
/// JSON of the wrong shape).
fn structural(err: &serde_json::Error) -> Error {
    match err.classify() {
        serde_json::error::Category::Data => {
            let rule = if is_duplicate(err) {
                Rule::DuplicateMember
            } else {
                Rule::NotAnObject
            };
            Error::invalid(rule, Id::Null)
        }
        _ => Error::parse(err),
    }
}

/// Reads an id. serde_json reads `-0` as a float, but it has no fraction or
/// exponent: it is the integer zero.
pub(crate) fn parse_id(raw: &RawValue) -> Result<Id, serde_json::Error> {
    if raw.get() == "-0" {
        return Ok(Id::Number(0));
    }
    serde_json::from_str(raw.get())
}

/// Whether serde rejected an object for naming a member twice.
fn is_duplicate(err: &serde_json::Error) -> bool {
    err.classify() == serde_json::error::Category::Data
        && err.to_string().starts_with("duplicate field")
}

fn decode_single(envelope: Result<Envelope<'_>, serde_json::Error>) -> Result<Message, Error> {
    let envelope = envelope.map_err(|err| structural(&err))?;
    let id = envelope.id.map(parse_id);
    // The id to answer an invalid message with, when it could be read.
    let known_id = || match &id {
        Some(Ok(id)) => id.clone(),
        _ => Id::Null,
    };
    let fail = |rule| Err(Error::invalid(rule, known_id()));

    match envelope.jsonrpc {
        Some(v) if is_version(v) => {}
        _ => return fail(Rule::Version),
    }

    if let Some(method) = envelope.method {
        if envelope.result.is_some() || envelope.error.is_some() {
            return fail(Rule::MethodInResponse);
        }
        let Ok(method) = serde_json::from_str::<String>(method.get()) else {
            return fail(Rule::MethodType);
        };
        let params = match envelope.params {
            None => None,
            Some(raw) if matches!(first_byte(raw.get().as_bytes()), Some(b'{' | b'[')) => {
                Some(raw.to_owned())
            }
            Some(_) => return fail(Rule::ParamsNotStructured),
        };
        return match id {
            None => Ok(Message::Notification(Notification { method, params })),
            Some(Ok(id)) => Ok(Message::Request(Request { id, method, params })),
            Some(Err(_)) => fail(Rule::IdType),
        };
    }

    let result = match (envelope.result, envelope.error) {
        (Some(_), Some(_)) => return fail(Rule::ResultAndError),
        (None, None) => return fail(Rule::NotAMessage),
        (Some(result), None) => Ok(result.to_owned()),
        // A derived Deserialize also reads a struct from an array, so the
        // object shape is checked first.
        (None, Some(error)) if first_byte(error.get().as_bytes()) != Some(b'{') => {
            return fail(Rule::ErrorObjectShape);
        }
        (None, Some(error)) => match serde_json::from_str::<ErrorObject>(error.get()) {
            Ok(error) => Err(error),
            Err(err) if is_duplicate(&err) => return fail(Rule::DuplicateMember),
            Err(_) => return fail(Rule::ErrorObjectShape),
        },
    };
    match id {
        None => fail(Rule::MissingResponseId),
        Some(Ok(id)) => Ok(Message::Response(Response { id, result })),
        Some(Err(_)) => fail(Rule::IdType),
    }
}

/// Whether `jsonrpc` is the string "2.0". Peers write it plainly, which is
/// matched as bytes; an escaped spelling such as `"2\u002e0"` is the same
/// string and is unescaped before comparing.
pub(crate) fn is_version(raw: &RawValue) -> bool {
    let text = raw.get();
    text == "\"2.0\""
        || (text.contains('\\')
            && serde_json::from_str::<String>(text).is_ok_and(|version| version == "2.0"))
}
