//! The bridge's one error type: every layer's typed error kept as its source,
//! an [`ErrorKind`] with its stable name, and the JSON-RPC error it maps to.

use std::time::Duration;

use pybridge_pool::Error as PoolError;
use pybridge_protocol::{ErrorCode, ErrorObject};
use pybridge_service::Error as ServiceError;
use serde_json::json;

use crate::config::ConfigError;

/// A call or bridge operation that failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request was rejected before any worker saw it: unknown method (in
    /// strict mode), reserved name, or params that break the method's schema
    /// or limits; or the method's schema itself does not compile (kind
    /// [`ErrorKind::Config`]). Never retried, never counted against a breaker.
    #[error("request to `{method}` rejected")]
    Rejected {
        /// The method as called.
        method: String,
        /// The service layer's verdict, with every violation.
        #[source]
        source: ServiceError,
    },
    /// The worker's result broke the method's result schema (when results
    /// are checked and enforced).
    #[error("result of `{method}` rejected")]
    InvalidResult {
        /// The method as called.
        method: String,
        /// The violations.
        #[source]
        source: ServiceError,
    },
    /// The call failed in the pool: the worker answered with an error, died,
    /// hung, or no worker was free in time. A worker's own error is shown
    /// with its message (and the closest method names for its -32601).
    #[error("call to `{method}` failed{}", PoolText(source))]
    Pool {
        /// The method as called.
        method: String,
        /// The pool's error.
        #[source]
        source: PoolError,
    },
    /// The method's circuit breaker is open; the call was not attempted.
    #[error("circuit breaker of `{method}` is open")]
    CircuitOpen {
        /// The method as called.
        method: String,
        /// When the breaker will admit a probe.
        retry_after: Option<Duration>,
        /// The breaker's rejection.
        #[source]
        source: pybridge_resilience::Rejected,
    },
    /// The call's deadline left no time for another attempt; the last
    /// attempt's error is the source.
    #[error("deadline of `{method}` passed after {attempts} attempt(s)")]
    DeadlineExceeded {
        /// The method as called.
        method: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        last: Box<Error>,
    },
    /// The params could not be serialized to JSON.
    #[error("cannot encode the params of `{method}`")]
    EncodeParams {
        /// The method as called.
        method: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The result did not have the shape the caller asked for.
    #[error("cannot decode the result of `{method}`")]
    DecodeResult {
        /// The method as called.
        method: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The bridge is shutting down.
    #[error("the bridge is shutting down")]
    ShuttingDown,
    /// A failure shared by calls that were coalesced into one cache load.
    #[error(transparent)]
    Shared(std::sync::Arc<Error>),
    /// The configuration is invalid.
    #[error("invalid configuration")]
    Config(#[source] ConfigError),
    /// A part of the bridge could not be built from the configuration.
    #[error("cannot build the {part}")]
    Build {
        /// Which part: `catalog`, `cache`, `retry policy`, …
        part: &'static str,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No worker could be started.
    #[error("cannot start the workers")]
    Start(#[source] PoolError),
    /// No worker command was configured.
    #[error("no worker command: set `worker.command` or give one to the builder")]
    NoWorker,
}

/// A bridge result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is: the stable, machine-readable name
/// clients, logs and metrics see ([`as_str`](ErrorKind::as_str)), and the
/// decisions made on it. Match it instead of a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The params broke the method's schema or limits, or could not be encoded.
    InvalidParams,
    /// No such method: unknown to the registry (strict mode), reserved, or
    /// unknown to the worker.
    MethodNotFound,
    /// The result broke the method's result schema.
    InvalidResult,
    /// The worker answered with an error of its own.
    RemoteError,
    /// The worker died or broke its stream while it held the call.
    WorkerFailed,
    /// The call's deadline passed.
    Timeout,
    /// Every worker was busy and the queue was full.
    QueueFull,
    /// No worker could take the call.
    Unavailable,
    /// The bridge or pool is shutting down.
    ShuttingDown,
    /// The response was over a frame limit.
    ResponseTooLarge,
    /// The request was over a frame limit.
    RequestTooLarge,
    /// The method's circuit breaker is open.
    CircuitOpen,
    /// The result did not have the shape the caller asked for.
    DecodeError,
    /// The configuration is invalid, or names no worker; or a method's
    /// schema (one compiled on its first call) does not compile.
    Config,
    /// No worker could be started.
    StartFailed,
    /// Anything else: a failure of the bridge itself.
    Internal,
}

impl ErrorKind {
    /// The kind's name: `invalid_params`, `method_not_found`, `remote_error`,
    /// `worker_failed`, `timeout`, `queue_full`, `circuit_open`, …
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidParams => "invalid_params",
            ErrorKind::MethodNotFound => "method_not_found",
            ErrorKind::InvalidResult => "invalid_result",
            ErrorKind::RemoteError => "remote_error",
            ErrorKind::WorkerFailed => "worker_failed",
            ErrorKind::Timeout => "timeout",
            ErrorKind::QueueFull => "queue_full",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::ShuttingDown => "shutting_down",
            ErrorKind::ResponseTooLarge => "response_too_large",
            ErrorKind::RequestTooLarge => "request_too_large",
            ErrorKind::CircuitOpen => "circuit_open",
            ErrorKind::DecodeError => "decode_error",
            ErrorKind::Config => "config",
            ErrorKind::StartFailed => "start_failed",
            ErrorKind::Internal => "internal",
        }
    }

    /// Whether the failure is on the serving side (a worker or the bridge),
    /// worth a warning in a server's log; the others are the caller's (bad
    /// params, deadlines, overload) and would flood it.
    pub const fn is_server_side(self) -> bool {
        match self {
            ErrorKind::RemoteError
            | ErrorKind::WorkerFailed
            | ErrorKind::InvalidResult
            | ErrorKind::DecodeError
            | ErrorKind::ResponseTooLarge
            | ErrorKind::Unavailable
            | ErrorKind::Internal => true,
            ErrorKind::InvalidParams
            | ErrorKind::MethodNotFound
            | ErrorKind::Timeout
            | ErrorKind::QueueFull
            | ErrorKind::ShuttingDown
            | ErrorKind::RequestTooLarge
            | ErrorKind::CircuitOpen
            | ErrorKind::Config
            | ErrorKind::StartFailed => false,
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Shared(error) => error.kind(),
            // A method's schema that does not compile (one compiled on first
            // use) is the worker's or the catalog's fault, not the caller's.
            Error::Rejected {
                source: ServiceError::Catalog { .. },
                ..
            }
            | Error::InvalidResult {
                source: ServiceError::Catalog { .. },
                ..
            } => ErrorKind::Config,
            Error::Rejected { source, .. } => {
                if source.code() == ErrorCode::METHOD_NOT_FOUND {
                    ErrorKind::MethodNotFound
                } else {
                    ErrorKind::InvalidParams
                }
            }
            Error::InvalidResult { .. } => ErrorKind::InvalidResult,
            Error::Pool { source, .. } => pool_kind(source),
            Error::CircuitOpen { .. } => ErrorKind::CircuitOpen,
            Error::DeadlineExceeded { .. } => ErrorKind::Timeout,
            Error::EncodeParams { .. } => ErrorKind::InvalidParams,
            Error::DecodeResult { .. } => ErrorKind::DecodeError,
            Error::ShuttingDown => ErrorKind::ShuttingDown,
            Error::Config(_) | Error::Build { .. } | Error::NoWorker => ErrorKind::Config,
            Error::Start(_) => ErrorKind::StartFailed,
        }
    }

    /// Whether trying the same call again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Shared(error) => error.is_retryable(),
            Error::Pool { source, .. } => source.is_retryable(),
            Error::CircuitOpen { .. } | Error::DeadlineExceeded { .. } => true,
            Error::Rejected { .. }
            | Error::InvalidResult { .. }
            | Error::EncodeParams { .. }
            | Error::DecodeResult { .. }
            | Error::ShuttingDown
            | Error::Config(_)
            | Error::Build { .. }
            | Error::Start(_)
            | Error::NoWorker => false,
        }
    }

    /// The method the failed call was for, if the failure belongs to one.
    pub fn method(&self) -> Option<&str> {
        match self {
            Error::Shared(error) => error.method(),
            Error::Rejected { method, .. }
            | Error::InvalidResult { method, .. }
            | Error::Pool { method, .. }
            | Error::CircuitOpen { method, .. }
            | Error::DeadlineExceeded { method, .. }
            | Error::EncodeParams { method, .. }
            | Error::DecodeResult { method, .. } => Some(method),
            Error::ShuttingDown
            | Error::Config(_)
            | Error::Build { .. }
            | Error::Start(_)
            | Error::NoWorker => None,
        }
    }

    /// The message with every cause, `outer: inner: …`.
    pub fn report(&self) -> String {
        let mut text = self.to_string();
        // These show their source in their own message already.
        if let Error::Pool {
            source: PoolError::Remote { .. } | PoolError::ResponseTooLarge { .. },
            ..
        } = self
        {
            return text;
        }
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        text
    }

    /// The JSON-RPC error object a server answers this failure with, in
    /// full. A worker's own error object passes through unchanged; every
    /// other one carries `data.code` (the [`kind`](Error::kind)) and the
    /// details, including what a worker wrote to stderr: for development.
    /// Serve [`to_safe_error_object`](Error::to_safe_error_object) to clients.
    pub fn to_error_object(&self) -> ErrorObject {
        let (code, mut data) = match self {
            Error::Shared(error) => return error.to_error_object(),
            Error::Rejected { source, .. } => {
                let object = source.to_error_object();
                let data = object.data_as::<serde_json::Value>().and_then(Result::ok);
                (object.code, data.unwrap_or_else(|| json!({})))
            }
            Error::Pool {
                source: PoolError::Remote { error, .. },
                ..
            } => return error.clone(),
            Error::Pool { source, .. } => (pool_code(source), pool_data(source)),
            Error::CircuitOpen { retry_after, .. } => (
                ErrorCode::CIRCUIT_OPEN,
                json!({ "retry_after_ms": retry_after.map(|d| d.as_millis() as u64) }),
            ),
            Error::DeadlineExceeded { attempts, .. } => {
                (ErrorCode::TIMEOUT, json!({ "attempts": attempts }))
            }
            Error::EncodeParams { .. } => (ErrorCode::INVALID_PARAMS, json!({})),
            Error::ShuttingDown => (ErrorCode::SHUTTING_DOWN, json!({})),
            Error::InvalidResult { .. }
            | Error::DecodeResult { .. }
            | Error::Config(_)
            | Error::Build { .. }
            | Error::Start(_)
            | Error::NoWorker => (ErrorCode::INTERNAL_ERROR, json!({})),
        };
        if let Some(map) = data.as_object_mut() {
            map.insert("code".into(), json!(self.kind().as_str()));
        }
        let object = ErrorObject::new(code, self.report());
        // A `Value` always serializes.
        object.clone().with_data(&data).unwrap_or(object)
    }

    /// The error object a client may see: the JSON-RPC code, a message that
    /// quotes nothing a worker wrote to stderr (a worker's own error keeps
    /// its message; a failed worker is named by what happened, not by its
    /// last words), and `data` holding only the kind (`code`) and whether a
    /// retry may help (`retryable`).
    pub fn to_safe_error_object(&self) -> ErrorObject {
        let object = ErrorObject::new(self.to_error_object().code, safe_message(self));
        let data = json!({"code": self.kind().as_str(), "retryable": self.is_retryable()});
        // A `Value` always serializes.
        object.clone().with_data(&data).unwrap_or(object)
    }
}

/// The message of `err` without anything a worker wrote to stderr.
fn safe_message(err: &Error) -> String {
    match err {
        Error::Shared(inner) => safe_message(inner),
        Error::Pool { source, .. } => match source {
            PoolError::Remote { error, .. } => error.message.clone(),
            PoolError::WorkerFailed { .. } => format!("{err}: the worker handling it failed"),
            PoolError::Unavailable { .. } | PoolError::StartFailed { .. } => {
                format!("{err}: no worker is available")
            }
            // Their causes describe the gateway's own state.
            PoolError::Timeout { .. }
            | PoolError::QueueFull { .. }
            | PoolError::ShuttingDown
            | PoolError::ResponseTooLarge { .. } => err.report(),
            // The pool's error type is not exhaustive: a new kind shows only
            // this level's message until it is listed here.
            _ => err.to_string(),
        },
        Error::DeadlineExceeded { last, .. } => format!("{err}: {}", safe_message(last)),
        // Their causes describe the caller's request.
        Error::Rejected { .. } | Error::CircuitOpen { .. } => err.report(),
        Error::InvalidResult { .. }
        | Error::EncodeParams { .. }
        | Error::DecodeResult { .. }
        | Error::ShuttingDown
        | Error::Config(_)
        | Error::Build { .. }
        | Error::Start(_)
        | Error::NoWorker => err.to_string(),
    }
}

/// The kind of a pool failure.
fn pool_kind(error: &PoolError) -> ErrorKind {
    match error {
        PoolError::Remote { error, .. } => match error.code {
            ErrorCode::METHOD_NOT_FOUND => ErrorKind::MethodNotFound,
            ErrorCode::INVALID_PARAMS => ErrorKind::InvalidParams,
            _ if is_sdk_too_large(error) => ErrorKind::ResponseTooLarge,
            _ => ErrorKind::RemoteError,
        },
        PoolError::WorkerFailed { .. } => ErrorKind::WorkerFailed,
        PoolError::Timeout { .. } => ErrorKind::Timeout,
        PoolError::QueueFull { .. } => ErrorKind::QueueFull,
        PoolError::Unavailable { .. } | PoolError::StartFailed { .. } => ErrorKind::Unavailable,
        PoolError::ShuttingDown => ErrorKind::ShuttingDown,
        PoolError::ResponseTooLarge { .. } => ErrorKind::ResponseTooLarge,
        PoolError::Encode(_) => ErrorKind::RequestTooLarge,
        PoolError::ProgramNotFound { .. }
        | PoolError::Config(_)
        | PoolError::InvalidEndpoint { .. }
        | PoolError::InvalidSecret { .. } => ErrorKind::Internal,
        // The pool's error type is not exhaustive (another crate's), so a
        // wildcard is required; a new variant is the bridge's failure until
        // it is classified here.
        _ => ErrorKind::Internal,
    }
}

/// The settings that bound a response's size, named in both "too large" errors.
const FRAME_SETTINGS: &str = "the bridge's `worker.max_frame` and the worker SDK's `max_frame` (`Worker(max_frame=...)`) bound a response; raise both, or return less";

/// The worker SDK's answer to a result above its own frame limit.
fn is_sdk_too_large(error: &ErrorObject) -> bool {
    error.code == ErrorCode::INTERNAL_ERROR
        && error
            .data_as::<serde_json::Value>()
            .and_then(Result::ok)
            .is_some_and(|d| d.get("type").and_then(|t| t.as_str()) == Some("ResponseTooLarge"))
}

/// What `Error::Pool` adds to its message: a worker's error with its message
/// (and the suggestions the bridge put in its data), or the frame settings.
struct PoolText<'a>(&'a PoolError);

impl std::fmt::Display for PoolText<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            PoolError::Remote { error, .. } => {
                write!(f, ": {}", self.0)?;
                if is_sdk_too_large(error) {
                    write!(f, " ({FRAME_SETTINGS})")?;
                }
                let suggestions = error
                    .data_as::<serde_json::Value>()
                    .and_then(Result::ok)
                    .and_then(|d| d.get("suggestions").cloned());
                if let Some(serde_json::Value::Array(names)) = suggestions {
                    let names: Vec<&str> = names.iter().filter_map(|n| n.as_str()).collect();
                    if !names.is_empty() {
                        write!(f, "; did you mean {}?", names.join(" or "))?;
                    }
                }
                Ok(())
            }
            PoolError::ResponseTooLarge { .. } => write!(f, ": {} ({FRAME_SETTINGS})", self.0),
            _ => Ok(()),
        }
    }
}

fn pool_code(error: &PoolError) -> ErrorCode {
    match error {
        PoolError::Timeout { .. } => ErrorCode::TIMEOUT,
        PoolError::QueueFull { .. } | PoolError::Unavailable { .. } => ErrorCode::OVERLOADED,
        PoolError::WorkerFailed { .. } | PoolError::ResponseTooLarge { .. } => {
            ErrorCode::WORKER_FAILED
        }
        PoolError::ShuttingDown => ErrorCode::SHUTTING_DOWN,
        PoolError::Encode(_) => ErrorCode::INVALID_PARAMS,
        _ => ErrorCode::INTERNAL_ERROR,
    }
}

fn pool_data(error: &PoolError) -> serde_json::Value {
    match error {
        PoolError::WorkerFailed { failure, written } => json!({
            "worker": failure.worker.to_string(),
            "pid": failure.pid,
            "status": failure.status,
            "stderr_tail": failure.stderr_tail,
            "written": written,
        }),
        PoolError::QueueFull { capacity } => json!({ "capacity": capacity }),
        PoolError::Timeout { elapsed, stage, .. } => {
            json!({ "elapsed_ms": elapsed.as_millis() as u64, "stage": stage.to_string() })
        }
        _ => json!({}),
    }
}

/// The typed framework API reports its own encoding and decoding failures
/// through this conversion.
impl From<ServiceError> for Error {
    fn from(source: ServiceError) -> Error {
        match source {
            ServiceError::DecodeResult { method, .. } => Error::InvalidResult {
                method: method.to_string(),
                source,
            },
            ServiceError::EncodeParams { method, .. } => Error::Rejected {
                method: method.to_string(),
                source,
            },
            other => Error::Rejected {
                method: String::new(),
                source: other,
            },
        }
    }
}

#[cfg(test)]
mod tests;
