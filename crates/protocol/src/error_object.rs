//! The JSON-RPC error object and its standard codes.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

/// A JSON-RPC error code.
///
/// The constants are the codes the specification defines, plus the codes
/// pybridge uses inside the server-error range (`-32099..=-32000`) for the
/// failures a bridge adds: timeouts, overload, cancellation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(pub i64);

impl ErrorCode {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: ErrorCode = ErrorCode(-32700);
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: ErrorCode = ErrorCode(-32600);
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: ErrorCode = ErrorCode(-32601);
    /// Invalid method parameters.
    pub const INVALID_PARAMS: ErrorCode = ErrorCode(-32602);
    /// Internal JSON-RPC error.
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(-32603);
    /// Generic server error (first code of the server-error range).
    pub const SERVER_ERROR: ErrorCode = ErrorCode(-32000);
    /// The call ran out of time (pybridge).
    pub const TIMEOUT: ErrorCode = ErrorCode(-32001);
    /// A circuit breaker rejected the call (pybridge).
    pub const CIRCUIT_OPEN: ErrorCode = ErrorCode(-32002);
    /// The bridge is overloaded: a queue or bulkhead is full (pybridge).
    pub const OVERLOADED: ErrorCode = ErrorCode(-32003);
    /// The worker holding the call died or broke the protocol (pybridge).
    pub const WORKER_FAILED: ErrorCode = ErrorCode(-32004);
    /// The bridge is shutting down (pybridge).
    pub const SHUTTING_DOWN: ErrorCode = ErrorCode(-32005);
    /// The request was cancelled (the code LSP uses for `$/cancelRequest`).
    pub const REQUEST_CANCELLED: ErrorCode = ErrorCode(-32800);

    /// The range the specification reserves for implementation-defined server errors.
    pub const SERVER_ERROR_RANGE: std::ops::RangeInclusive<i64> = -32099..=-32000;

    /// Whether the code lies in the implementation-defined server-error range.
    pub fn is_server_error(self) -> bool {
        Self::SERVER_ERROR_RANGE.contains(&self.0)
    }

    /// Whether the code is reserved by the specification (`-32768..=-32000`).
    pub fn is_reserved(self) -> bool {
        (-32768..=-32000).contains(&self.0)
    }

    /// The specification's message for a standard code, if it is one.
    pub fn standard_message(self) -> Option<&'static str> {
        Some(match self {
            Self::PARSE_ERROR => "Parse error",
            Self::INVALID_REQUEST => "Invalid Request",
            Self::METHOD_NOT_FOUND => "Method not found",
            Self::INVALID_PARAMS => "Invalid params",
            Self::INTERNAL_ERROR => "Internal error",
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<i64> for ErrorCode {
    fn from(code: i64) -> Self {
        ErrorCode(code)
    }
}

/// The `error` member of a failed response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorObject {
    /// What kind of error occurred.
    pub code: ErrorCode,
    /// A short description of the error.
    pub message: String,
    /// Additional information, as the server chose to send it. A `data`
    /// member that is `null` is kept as raw `null`, not read as absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub data: Option<Box<RawValue>>,
}

/// Records `data` as present even when it is `null`: `Option`'s own impl would
/// read `null` as absent and drop it.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Box<RawValue>>, D::Error> {
    Box::<RawValue>::deserialize(deserializer).map(Some)
}

impl ErrorObject {
    /// An error object without data.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorObject {
            code,
            message: message.into(),
            data: None,
        }
    }

    /// An error object for a standard code with the specification's message.
    pub fn standard(code: ErrorCode) -> Self {
        let message = code.standard_message().unwrap_or("Server error");
        ErrorObject::new(code, message)
    }

    /// Attaches `data`, serialized from any value.
    ///
    /// # Errors
    /// Fails when `data` cannot be serialized to JSON.
    pub fn with_data<T: Serialize + ?Sized>(mut self, data: &T) -> Result<Self, serde_json::Error> {
        self.data = Some(serde_json::value::to_raw_value(data)?);
        Ok(self)
    }

    /// Parses `data` into a typed value, if present.
    ///
    /// # Errors
    /// Fails when `data` does not have the shape of `T`.
    pub fn data_as<'a, T: Deserialize<'a>>(&'a self) -> Option<Result<T, serde_json::Error>> {
        self.data
            .as_deref()
            .map(|raw| serde_json::from_str(raw.get()))
    }
}

impl PartialEq for ErrorObject {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
            && self.message == other.message
            && self.data.as_ref().map(|d| d.get()) == other.data.as_ref().map(|d| d.get())
    }
}

impl fmt::Display for ErrorObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}
