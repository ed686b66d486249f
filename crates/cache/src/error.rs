//! The errors of the cache layer: configuration and key construction, and
//! why a read through the cache returned no value.
//!
//! A call through the cache never fails because of the cache's storage: the
//! disk tier degrades instead of failing, and a loader's error is handed back
//! to the caller unchanged (shared as `Arc<E>` between coalesced callers). What
//! remains is a builder or a policy that does not validate, params that are not
//! JSON ([`Error`]), and a caller whose deadline passed ([`LoadError`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A failure to configure the cache or to build a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of its allowed range.
    #[error("invalid cache configuration: `{field}` {problem}")]
    InvalidConfig {
        /// The builder or policy field at fault.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The disk tier needs a Tokio runtime for its writer and sweeper task,
    /// and `build()` was called outside one.
    #[error("the disk tier needs a Tokio runtime: build the cache inside one")]
    NoRuntime,
    /// The params of a key are not valid JSON.
    #[error("cache key params are not valid JSON at byte {offset}: {problem}")]
    InvalidParams {
        /// Byte offset in the params text where the problem was found.
        offset: usize,
        /// What is wrong.
        problem: ParamsProblem,
    },
}

impl Error {
    /// Whether trying the same thing again may succeed.
    ///
    /// Every error of this crate is a property of its input, so the answer is
    /// always `false`; the method exists so the bridge asks every layer the same
    /// question in the same way.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::InvalidConfig { .. } | Error::NoRuntime | Error::InvalidParams { .. } => false,
        }
    }
}

/// A convenient alias for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why [`Cache::get_or_load`](crate::Cache::get_or_load) returned no value.
///
/// Generic over the loader's error `E`. Deliberately not `#[non_exhaustive]`:
/// callers map each case to an error of their own, and a new case must be a
/// compile error for them rather than fall into a catch-all.
#[derive(Debug)]
pub enum LoadError<E> {
    /// The loader failed: this caller's own load, or the load of the caller it
    /// waited on. Every caller that waited on one load gets the same `Arc`.
    Loader(Arc<E>),
    /// The caller's deadline passed before a value was ready. Only this caller
    /// gives up: a load it was running is handed to a caller that still has time.
    DeadlineExceeded {
        /// How long the caller spent in `get_or_load`.
        elapsed: Duration,
        /// Whether the caller was waiting on a load started by another caller
        /// (`true`), or was reading the disk or running its own loader (`false`).
        coalesced: bool,
    },
}

impl<E> Clone for LoadError<E> {
    fn clone(&self) -> Self {
        match self {
            LoadError::Loader(e) => LoadError::Loader(Arc::clone(e)),
            LoadError::DeadlineExceeded { elapsed, coalesced } => LoadError::DeadlineExceeded {
                elapsed: *elapsed,
                coalesced: *coalesced,
            },
        }
    }
}

impl<E> fmt::Display for LoadError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Loader(_) => f.write_str("the cache loader failed"),
            LoadError::DeadlineExceeded {
                elapsed,
                coalesced: true,
            } => write!(
                f,
                "deadline passed after {elapsed:?} while waiting for another caller's load"
            ),
            LoadError::DeadlineExceeded {
                elapsed,
                coalesced: false,
            } => write!(f, "deadline passed after {elapsed:?} while loading"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for LoadError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Loader(e) => Some(&**e),
            LoadError::DeadlineExceeded { .. } => None,
        }
    }
}

/// Why key params could not be canonicalized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParamsProblem {
    /// The text is not valid UTF-8.
    InvalidUtf8,
    /// A token that JSON does not allow here.
    Syntax,
    /// The text ends inside a value.
    UnexpectedEnd,
    /// Something follows the top-level value.
    TrailingCharacters,
    /// A string holds a raw control character or a bad escape.
    InvalidString,
    /// A `\u` escape is a lone surrogate.
    LoneSurrogate,
    /// A number's exponent does not fit in 64 bits.
    NumberOutOfRange,
    /// Arrays and objects nest deeper than the limit.
    TooDeep,
}

impl fmt::Display for ParamsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParamsProblem::InvalidUtf8 => "invalid UTF-8",
            ParamsProblem::Syntax => "unexpected character",
            ParamsProblem::UnexpectedEnd => "unexpected end of input",
            ParamsProblem::TrailingCharacters => "trailing characters after the value",
            ParamsProblem::InvalidString => "invalid string (raw control character or bad escape)",
            ParamsProblem::LoneSurrogate => "lone UTF-16 surrogate in a \\u escape",
            ParamsProblem::NumberOutOfRange => "number exponent out of range",
            ParamsProblem::TooDeep => "nesting deeper than 128 levels",
        })
    }
}
