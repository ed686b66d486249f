//! The bridge's one error type: every layer's typed error kept as its source,
//! a stable machine-readable code, and the JSON-RPC error it maps to.

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
    /// or limits. Never retried, never counted against a breaker.
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

impl Error {
    /// A stable, machine-readable name for the failure, for logs, metrics
    /// and API clients: `invalid_params`, `method_not_found`, `remote_error`,
    /// `worker_failed`, `timeout`, `queue_full`, `circuit_open`, …
    pub fn code(&self) -> &'static str {
        match self {
            Error::Shared(error) => error.code(),
            Error::Rejected { source, .. } => match source.code() {
                ErrorCode::METHOD_NOT_FOUND => "method_not_found",
                _ => "invalid_params",
            },
            Error::InvalidResult { .. } => "invalid_result",
            Error::Pool { source, .. } => match source {
                PoolError::Remote { error, .. } => match error.code {
                    ErrorCode::METHOD_NOT_FOUND => "method_not_found",
                    ErrorCode::INVALID_PARAMS => "invalid_params",
                    _ if is_sdk_too_large(error) => "response_too_large",
                    _ => "remote_error",
                },
                PoolError::WorkerFailed { .. } => "worker_failed",
                PoolError::Timeout { .. } => "timeout",
                PoolError::QueueFull { .. } => "queue_full",
                PoolError::Unavailable { .. } | PoolError::StartFailed { .. } => "unavailable",
                PoolError::ShuttingDown => "shutting_down",
                PoolError::ResponseTooLarge { .. } => "response_too_large",
                PoolError::Encode(_) => "request_too_large",
                _ => "internal",
            },
            Error::CircuitOpen { .. } => "circuit_open",
            Error::DeadlineExceeded { .. } => "timeout",
            Error::EncodeParams { .. } => "invalid_params",
            Error::DecodeResult { .. } => "decode_error",
            Error::ShuttingDown => "shutting_down",
            Error::Config(_) => "config",
            Error::Build { .. } => "config",
            Error::Start(_) => "start_failed",
            Error::NoWorker => "config",
        }
    }

    /// Whether trying the same call again later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Shared(error) => error.is_retryable(),
            Error::Pool { source, .. } => source.is_retryable(),
            Error::CircuitOpen { .. } | Error::DeadlineExceeded { .. } => true,
            _ => false,
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
            _ => None,
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

    /// The JSON-RPC error object a server answers this failure with. A
    /// worker's own error object passes through unchanged; every other one
    /// carries `data.code` (the [`code`](Error::code)) and the details.
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
            _ => (ErrorCode::INTERNAL_ERROR, json!({})),
        };
        if let Some(map) = data.as_object_mut() {
            map.insert("code".into(), json!(self.code()));
        }
        let object = ErrorObject::new(code, self.report());
        // A `Value` always serializes.
        object.clone().with_data(&data).unwrap_or(object)
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
