//! The errors of the service layer: unknown methods, invalid params or
//! results, and catalog or configuration mistakes.

use std::fmt;
use std::path::PathBuf;

use pybridge_protocol::{ErrorCode, ErrorObject};
use serde::Serialize;

use crate::Violation;

/// A failure of the service layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The method is not in the registry and strict mode is on, or it is
    /// listed but unavailable (no worker implements it) (JSON-RPC `-32601`).
    #[error("{}{}", Unknown { method, unavailable: *unavailable }, DidYouMean(suggestions))]
    UnknownMethod {
        /// The name the caller used (the public name, never a wire name).
        method: String,
        /// Registry names close to it, closest first (at most three).
        suggestions: Vec<String>,
        /// The registry lists the method, but the worker does not implement it.
        unavailable: bool,
    },
    /// The method name is empty or uses a prefix reserved for the protocol
    /// (`rpc.` or `$/`), so no caller may call it (JSON-RPC `-32601`).
    #[error("method name `{method}` is empty or reserved for the protocol")]
    ReservedMethod {
        /// The name the caller used.
        method: String,
    },
    /// The params break the limits or the method's schema (JSON-RPC `-32602`);
    /// no worker saw them.
    #[error("invalid params for `{method}`: {}", Summary(violations))]
    InvalidParams {
        /// The method's public name (or the name used, for pass-through methods).
        method: String,
        /// Every violation found, in document order.
        violations: Vec<Violation>,
    },
    /// The worker's result does not match the method's result schema
    /// (result validation is on), or a declared result rename would overwrite
    /// a field (JSON-RPC `-32603`).
    #[error("invalid result from `{method}`: {}", Summary(violations))]
    InvalidResult {
        /// The method's public name.
        method: String,
        /// Every violation found.
        violations: Vec<Violation>,
    },
    /// Typed request params could not be encoded as JSON.
    #[error("cannot encode the params of `{method}`")]
    EncodeParams {
        /// The method's public name.
        method: &'static str,
        /// The serializer's error.
        #[source]
        source: serde_json::Error,
    },
    /// A result does not have the shape the typed API expects.
    #[error("cannot decode the result of `{method}`")]
    DecodeResult {
        /// The method's public name.
        method: &'static str,
        /// The deserializer's error, with the path of the offending field.
        #[source]
        source: serde_json::Error,
    },
    /// A catalog file is malformed; `key` locates the problem
    /// (`methods[2].cache.l1_ttl_ms`).
    #[error("catalog {file}: {key}: {problem}")]
    Catalog {
        /// The catalog file (or source name) at fault.
        file: String,
        /// Where in the file, as a path of keys and indexes.
        key: String,
        /// What is wrong there.
        problem: CatalogProblem,
    },
    /// A catalog or schema file could not be read.
    #[error("cannot read catalog file {}", path.display())]
    CatalogIo {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A worker's manifest is malformed; `key` locates the problem
    /// (`methods[2].timeout_ms`).
    #[error("invalid worker manifest: {key}: {reason}")]
    Manifest {
        /// Where in the manifest.
        key: String,
        /// What is wrong there.
        reason: String,
    },
    /// A configuration value is out of range or names something that does not exist.
    #[error("invalid configuration `{key}`: {reason}")]
    Config {
        /// The configuration key (`max_depth`, `methods.<name>.wire_name`, ...).
        key: String,
        /// Why it was rejected.
        reason: String,
    },
}

/// A convenient alias for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is wrong at one place of a catalog file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CatalogProblem {
    /// The file is not valid JSON.
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The key is not part of the catalog format (a typo, most likely).
    UnknownField,
    /// A required key is absent.
    MissingField,
    /// The value has the wrong JSON type.
    WrongType {
        /// The type the format requires.
        expected: &'static str,
    },
    /// The value has the right type but is not acceptable.
    InvalidValue {
        /// Why.
        reason: String,
    },
    /// A method name or alias is already used, by a method of `first_file`.
    DuplicateName {
        /// The name used twice.
        name: String,
        /// The file that used it first.
        first_file: String,
    },
    /// A schema does not compile (not valid JSON Schema 2020-12, an
    /// unresolvable `$ref`, an unknown `format`, ...).
    InvalidSchema {
        /// The compiler's message.
        reason: String,
    },
}

impl fmt::Display for CatalogProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CatalogProblem::Syntax {
                line,
                column,
                message,
            } => write!(f, "invalid JSON at line {line}, column {column}: {message}"),
            CatalogProblem::UnknownField => f.write_str("unknown field"),
            CatalogProblem::MissingField => f.write_str("missing field"),
            CatalogProblem::WrongType { expected } => write!(f, "expected {expected}"),
            CatalogProblem::InvalidValue { reason } => f.write_str(reason),
            CatalogProblem::DuplicateName { name, first_file } => {
                write!(f, "name `{name}` is already used in {first_file}")
            }
            CatalogProblem::InvalidSchema { reason } => write!(f, "invalid schema: {reason}"),
        }
    }
}

impl Error {
    /// Whether the same call may succeed if it is retried. Never true for
    /// this layer: its errors are about the request, the result or the
    /// configuration, and none of them changes on a second attempt.
    pub fn is_retryable(&self) -> bool {
        false
    }

    /// The JSON-RPC error code this error maps to when it is reported to a
    /// JSON-RPC client (the HTTP gateway, say).
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::UnknownMethod { .. } | Error::ReservedMethod { .. } => {
                ErrorCode::METHOD_NOT_FOUND
            }
            Error::InvalidParams { .. } | Error::EncodeParams { .. } => ErrorCode::INVALID_PARAMS,
            _ => ErrorCode::INTERNAL_ERROR,
        }
    }

    /// The violations, for [`Error::InvalidParams`] and [`Error::InvalidResult`].
    pub fn violations(&self) -> &[Violation] {
        match self {
            Error::InvalidParams { violations, .. } | Error::InvalidResult { violations, .. } => {
                violations
            }
            _ => &[],
        }
    }

    /// The JSON-RPC error object for this error. For invalid params, `data`
    /// is `{"method": ..., "violations": [{instance_path, schema_path,
    /// keyword, message}, ...]}`; for an unknown method it is `{"method": ...}`.
    pub fn to_error_object(&self) -> ErrorObject {
        #[derive(Serialize)]
        struct Data<'a> {
            method: &'a str,
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            violations: &'a [Violation],
            #[serde(skip_serializing_if = "<[_]>::is_empty")]
            suggestions: &'a [String],
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            unavailable: bool,
        }
        let object = ErrorObject::new(self.code(), self.to_string());
        let method = match self {
            Error::UnknownMethod { method, .. }
            | Error::ReservedMethod { method }
            | Error::InvalidParams { method, .. }
            | Error::InvalidResult { method, .. } => method.as_str(),
            Error::EncodeParams { method, .. } | Error::DecodeResult { method, .. } => method,
            _ => return object,
        };
        let (suggestions, unavailable) = match self {
            Error::UnknownMethod {
                suggestions,
                unavailable,
                ..
            } => (suggestions.as_slice(), *unavailable),
            _ => (&[][..], false),
        };
        let data = Data {
            method,
            violations: self.violations(),
            suggestions,
            unavailable,
        };
        // Serializing strings and a list of plain structs cannot fail; if it
        // somehow did, the error still carries its code and message.
        match object.clone().with_data(&data) {
            Ok(with_data) => with_data,
            Err(_) => object,
        }
    }
}

/// The first words of [`Error::UnknownMethod`].
struct Unknown<'a> {
    method: &'a str,
    unavailable: bool,
}

impl fmt::Display for Unknown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.unavailable {
            write!(
                f,
                "method `{}` is listed, but no worker implements it",
                self.method
            )
        } else {
            write!(f, "unknown method `{}`", self.method)
        }
    }
}

/// `; did you mean a, b?` when there are suggestions.
pub(crate) struct DidYouMean<'a>(pub(crate) &'a [String]);

impl fmt::Display for DidYouMean<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return Ok(());
        }
        write!(f, "; did you mean {}?", self.0.join(" or "))
    }
}

/// Displays the first violation and how many more there are.
struct Summary<'a>(&'a [Violation]);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            [] => f.write_str("no violation recorded"),
            [only] => write!(f, "{only}"),
            [first, rest @ ..] => write!(f, "{first} (and {} more)", rest.len()),
        }
    }
}
