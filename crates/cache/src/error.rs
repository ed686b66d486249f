//! The errors of the cache layer: configuration and key construction.
//!
//! A call through the cache never fails because of the cache itself: the disk
//! tier degrades instead of failing, and a loader's error is handed back to the
//! caller unchanged (shared as `Arc<E>` between coalesced callers). What remains
//! is a builder or a policy that does not validate, and params that are not JSON.

use std::fmt;

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
