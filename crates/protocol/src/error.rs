//! The errors of the protocol layer: decoding, framing and correlation.

use std::fmt;

use crate::{ErrorCode, ErrorObject, Id};

/// A failure to decode, frame or correlate a JSON-RPC message.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not valid JSON (JSON-RPC `-32700`).
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Parse {
        /// 1-based line of the first error.
        line: usize,
        /// 1-based column of the first error.
        column: usize,
        /// What the JSON parser expected.
        message: String,
    },
    /// Valid JSON that breaks a rule of JSON-RPC 2.0 (JSON-RPC `-32600`).
    #[error("invalid message: {rule}")]
    Invalid {
        /// The rule that was broken.
        rule: Rule,
        /// The message's id where it could be read, for the error response.
        id: Id,
    },
    /// A frame is longer than the configured maximum; it was skipped without
    /// being buffered.
    #[error("frame exceeds the limit of {limit} bytes")]
    FrameTooLarge {
        /// The configured maximum frame size.
        limit: usize,
        /// The size the frame declared in its Content-Length header when
        /// decoding, or the payload's size when encoding; `None` for an NDJSON
        /// line, which is rejected before its end is seen.
        declared: Option<u64>,
    },
    /// A frame is not valid UTF-8; only that frame is rejected.
    #[error("frame is not valid UTF-8 after byte {valid_up_to}")]
    InvalidUtf8 {
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// A Content-Length header block could not be read; the codec skipped it.
    #[error("malformed frame header: {problem}")]
    MalformedHeader {
        /// What was wrong with it.
        problem: HeaderProblem,
    },
    /// A message could not be serialized.
    #[error("cannot serialize message")]
    Serialize(#[source] serde_json::Error),
    /// A request id was registered twice in a pending table.
    #[error("request id {id} is already pending")]
    DuplicateId {
        /// The id registered twice.
        id: Id,
    },
    /// The transport failed.
    #[error("transport i/o failed")]
    Io(#[from] std::io::Error),
}

/// A convenient alias for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A rule of the JSON-RPC 2.0 specification that a message broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// The message is neither an object nor an array.
    NotAnObject,
    /// `jsonrpc` is missing or not exactly `"2.0"`.
    Version,
    /// `method` is not a string.
    MethodType,
    /// `params` is present but neither an array nor an object.
    ParamsNotStructured,
    /// `id` is not an integer, a string or null (fractional numbers included).
    IdType,
    /// A response carries both `result` and `error`.
    ResultAndError,
    /// A message has neither `method` nor `result`/`error`.
    NotAMessage,
    /// A message has `method` and also `result` or `error`.
    MethodInResponse,
    /// A response has no `id` member.
    MissingResponseId,
    /// `error` is not an object with an integer `code` and a string `message`.
    ErrorObjectShape,
    /// A batch is empty.
    EmptyBatch,
    /// A batch entry is itself an array.
    NestedBatch,
    /// A member appears more than once.
    DuplicateMember,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::NotAnObject => "a message must be a JSON object (or an array for a batch)",
            Rule::Version => "\"jsonrpc\" must be exactly \"2.0\"",
            Rule::MethodType => "\"method\" must be a string",
            Rule::ParamsNotStructured => "\"params\" must be an array or an object",
            Rule::IdType => "\"id\" must be an integer, a string or null",
            Rule::ResultAndError => "a response must not carry both \"result\" and \"error\"",
            Rule::NotAMessage => "a message needs \"method\", or \"result\" or \"error\"",
            Rule::MethodInResponse => {
                "a message must not carry \"method\" together with \"result\" or \"error\""
            }
            Rule::MissingResponseId => "a response must have an \"id\" member",
            Rule::ErrorObjectShape => {
                "\"error\" must be an object with an integer \"code\" and a string \"message\""
            }
            Rule::EmptyBatch => "a batch must not be empty",
            Rule::NestedBatch => "a batch entry must not be an array",
            Rule::DuplicateMember => "a member must not appear twice",
        })
    }
}

/// What was wrong with a Content-Length header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderProblem {
    /// The header block is longer than the header limit.
    TooLong,
    /// A header line has no `:`, or is not ASCII.
    BadLine,
    /// No `Content-Length` header was found.
    MissingLength,
    /// `Content-Length` is not a decimal number.
    BadLength,
    /// `Content-Length` appears twice.
    DuplicateLength,
}

impl fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderProblem::TooLong => "header block is too long",
            HeaderProblem::BadLine => "header line is not `Name: value` in ASCII",
            HeaderProblem::MissingLength => "no Content-Length header",
            HeaderProblem::BadLength => "Content-Length is not a decimal number",
            HeaderProblem::DuplicateLength => "Content-Length appears twice",
        })
    }
}

impl Error {
    pub(crate) fn invalid(rule: Rule, id: Id) -> Self {
        Error::Invalid { rule, id }
    }

    pub(crate) fn parse(err: &serde_json::Error) -> Self {
        // serde_json appends the position to its message; it is kept in fields.
        let message = err.to_string();
        let message = message
            .rsplit_once(" at line ")
            .map_or(message.as_str(), |(m, _)| m);
        Error::Parse {
            line: err.line(),
            column: err.column(),
            message: message.to_string(),
        }
    }

    /// The JSON-RPC code this error maps to when answered to a peer.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Parse { .. } | Error::InvalidUtf8 { .. } => ErrorCode::PARSE_ERROR,
            Error::Invalid { .. } => ErrorCode::INVALID_REQUEST,
            Error::FrameTooLarge { .. } | Error::MalformedHeader { .. } => {
                ErrorCode::INVALID_REQUEST
            }
            Error::Serialize(_) | Error::DuplicateId { .. } | Error::Io(_) => {
                ErrorCode::INTERNAL_ERROR
            }
        }
    }

    /// The id to answer with: the message's id where it could be read, otherwise null.
    pub fn id(&self) -> &Id {
        match self {
            Error::Invalid { id, .. } => id,
            _ => &Id::Null,
        }
    }

    /// The error object a server answers this failure with: the specification's
    /// code and message, and this error's description as `data`.
    pub fn to_error_object(&self) -> ErrorObject {
        let object = ErrorObject::standard(self.code());
        let detail = self.to_string();
        // A string always serializes, so the fallback is never taken.
        object.clone().with_data(&detail).unwrap_or(object)
    }

    /// Whether the same operation may succeed if tried again. Only transport
    /// failures may; a malformed message stays malformed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Io(_))
    }
}
