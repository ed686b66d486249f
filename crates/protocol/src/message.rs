//! JSON-RPC 2.0 messages: requests, notifications, responses and batches.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::{Error, ErrorObject, Id};

/// The prefix the specification reserves for its own methods (`rpc.discover`, …).
pub const RPC_RESERVED_PREFIX: &str = "rpc.";
/// The prefix of pybridge's protocol methods (`$/ping`, `$/cancelRequest`, …),
/// as in the Language Server Protocol.
pub const BRIDGE_RESERVED_PREFIX: &str = "$/";

/// Who a method name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MethodKind {
    /// Reserved by the JSON-RPC specification (`rpc.` prefix).
    RpcReserved,
    /// A pybridge protocol method (`$/` prefix).
    Bridge,
    /// An application method.
    Application,
}

impl MethodKind {
    /// Classifies a method name by its prefix.
    pub fn of(method: &str) -> MethodKind {
        if method.starts_with(RPC_RESERVED_PREFIX) {
            MethodKind::RpcReserved
        } else if method.starts_with(BRIDGE_RESERVED_PREFIX) {
            MethodKind::Bridge
        } else {
            MethodKind::Application
        }
    }
}

/// A call that expects a response.
#[derive(Debug, Clone)]
pub struct Request {
    /// The id the response will carry.
    pub id: Id,
    /// The method to invoke.
    pub method: String,
    /// Positional (array) or named (object) parameters; raw so they are never parsed twice.
    pub params: Option<Box<RawValue>>,
}

/// A call that expects no response.
#[derive(Debug, Clone)]
pub struct Notification {
    /// The method to invoke.
    pub method: String,
    /// Positional (array) or named (object) parameters.
    pub params: Option<Box<RawValue>>,
}

/// The answer to a request: a result or an error, never both.
#[derive(Debug, Clone)]
pub struct Response {
    /// The id of the request this answers; null when it could not be determined.
    pub id: Id,
    /// The raw `result` member, or the `error` member.
    pub result: Result<Box<RawValue>, ErrorObject>,
}

/// Any JSON-RPC message, including a batch.
#[derive(Debug)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A notification.
    Notification(Notification),
    /// A response.
    Response(Response),
    /// A batch. Each entry decodes on its own: one invalid entry does not
    /// invalidate the others, as the specification requires.
    Batch(Vec<Result<Message, Error>>),
}

/// Serializes a value into raw JSON for `params` or `result`.
///
/// # Errors
/// Fails when the value cannot be represented as JSON (a map with non-string keys, say).
pub fn to_raw<T: Serialize + ?Sized>(value: &T) -> Result<Box<RawValue>, Error> {
    serde_json::value::to_raw_value(value).map_err(Error::Serialize)
}

fn structured_params<T: Serialize + ?Sized>(params: &T) -> Result<Box<RawValue>, Error> {
    let raw = to_raw(params)?;
    match raw.get().as_bytes().first() {
        Some(b'{' | b'[') => Ok(raw),
        _ => Err(Error::invalid(crate::Rule::ParamsNotStructured, Id::Null)),
    }
}

impl Request {
    /// A request whose params are serialized from any value that becomes a JSON
    /// object or array.
    ///
    /// # Errors
    /// Fails when the params cannot be serialized or are not an object or array.
    pub fn new<P: Serialize + ?Sized>(
        id: impl Into<Id>,
        method: impl Into<String>,
        params: &P,
    ) -> Result<Self, Error> {
        Ok(Request {
            id: id.into(),
            method: method.into(),
            params: Some(structured_params(params)?),
        })
    }

    /// Who the method belongs to.
    pub fn method_kind(&self) -> MethodKind {
        MethodKind::of(&self.method)
    }

    /// Parses the params into a typed value.
    ///
    /// # Errors
    /// Fails when the params do not have the shape of `T` (absent params read as `null`).
    pub fn params_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.params.as_deref().map_or("null", RawValue::get))
    }
}

impl Notification {
    /// A notification whose params are serialized from any value that becomes a
    /// JSON object or array.
    ///
    /// # Errors
    /// Fails when the params cannot be serialized or are not an object or array.
    pub fn new<P: Serialize + ?Sized>(
        method: impl Into<String>,
        params: &P,
    ) -> Result<Self, Error> {
        Ok(Notification {
            method: method.into(),
            params: Some(structured_params(params)?),
        })
    }

    /// Who the method belongs to.
    pub fn method_kind(&self) -> MethodKind {
        MethodKind::of(&self.method)
    }

    /// Parses the params into a typed value.
    ///
    /// # Errors
    /// Fails when the params do not have the shape of `T` (absent params read as `null`).
    pub fn params_as<'a, T: Deserialize<'a>>(&'a self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self.params.as_deref().map_or("null", RawValue::get))
    }
}

impl Response {
    /// A successful response with a result serialized from any value.
    ///
    /// # Errors
    /// Fails when the result cannot be serialized.
    pub fn success<T: Serialize + ?Sized>(id: impl Into<Id>, result: &T) -> Result<Self, Error> {
        Ok(Response {
            id: id.into(),
            result: Ok(to_raw(result)?),
        })
    }

    /// A failed response.
    pub fn error(id: impl Into<Id>, error: ErrorObject) -> Self {
        Response {
            id: id.into(),
            result: Err(error),
        }
    }

    /// Parses a successful result into a typed value.
    ///
    /// # Errors
    /// Returns the error object of a failed response as `Err(Ok(..))`, and a
    /// result of the wrong shape as `Err(Err(..))`.
    pub fn result_as<'a, T: Deserialize<'a>>(
        &'a self,
    ) -> Result<T, Result<&'a ErrorObject, serde_json::Error>> {
        match &self.result {
            Ok(raw) => serde_json::from_str(raw.get()).map_err(Err),
            Err(error) => Err(Ok(error)),
        }
    }
}

impl Message {
    /// Encodes the message as compact JSON.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        crate::encode::write_message(&mut out, self);
        out
    }
}

struct Version;

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("2.0")
    }
}

impl Serialize for Request {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("jsonrpc", &Version)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("method", &self.method)?;
        if let Some(params) = &self.params {
            map.serialize_entry("params", params)?;
        }
        map.end()
    }
}

impl Serialize for Notification {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("jsonrpc", &Version)?;
        map.serialize_entry("method", &self.method)?;
        if let Some(params) = &self.params {
            map.serialize_entry("params", params)?;
        }
        map.end()
    }
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("jsonrpc", &Version)?;
        match &self.result {
            Ok(result) => map.serialize_entry("result", result)?,
            Err(error) => map.serialize_entry("error", error)?,
        }
        map.serialize_entry("id", &self.id)?;
        map.end()
    }
}

impl Serialize for Message {
    /// Serializes the message. Invalid entries of a batch have no JSON form and
    /// are left out.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Message::Request(m) => m.serialize(serializer),
            Message::Notification(m) => m.serialize(serializer),
            Message::Response(m) => m.serialize(serializer),
            Message::Batch(entries) => {
                let mut seq = serializer.serialize_seq(None)?;
                for entry in entries.iter().flatten() {
                    seq.serialize_element(entry)?;
                }
                seq.end()
            }
        }
    }
}
