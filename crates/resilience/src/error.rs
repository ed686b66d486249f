//! The errors of the resilience layer: invalid configuration, the rejections
//! of its policies, and the wrappers that carry an operation's own error.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::{Classify, RetryHint};

/// A failure of this crate's policies (not of the operation they guard).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A builder was given a value it cannot work with.
    #[error("invalid {component} configuration: `{field}` {problem}")]
    InvalidConfig {
        /// The component being configured (`"retry"`, `"breaker"`, ...).
        component: &'static str,
        /// The offending setting.
        field: &'static str,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A circuit breaker refused the call without running it.
    #[error(transparent)]
    Rejected(#[from] Rejected),
    /// A bulkhead has every slot busy and its wait queue full.
    #[error("bulkhead is full: {max_concurrent} calls running and {max_queued} waiting")]
    BulkheadFull {
        /// The bulkhead's concurrency limit.
        max_concurrent: usize,
        /// The bulkhead's wait-queue bound.
        max_queued: usize,
    },
    /// An operation did not finish within its time limit and was dropped.
    #[error("timed out after {elapsed:?} (limit {limit:?})")]
    Timeout {
        /// How long the operation had run when it was dropped.
        elapsed: Duration,
        /// The time it was allowed.
        limit: Duration,
    },
    /// A breaker registry is at capacity and no breaker in it may be evicted
    /// (all are open, half-open or isolated).
    #[error("circuit breaker registry is full ({capacity} breakers, none evictable)")]
    RegistryFull {
        /// The registry's bound.
        capacity: usize,
    },
}

/// A convenient alias for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn config(
        component: &'static str,
        field: &'static str,
        problem: &'static str,
    ) -> Self {
        Error::InvalidConfig {
            component,
            field,
            problem,
        }
    }
}

impl Classify for Error {
    fn retry_hint(&self) -> RetryHint {
        match self {
            // A full bulkhead and a timeout are transient; the rest will fail
            // the same way however often they are tried. A rejection in
            // particular must not be retried: sleeping through a breaker's
            // open period is the bug this crate exists to fix.
            Error::BulkheadFull { .. } | Error::Timeout { .. } => RetryHint::Yes,
            Error::InvalidConfig { .. } | Error::Rejected(_) | Error::RegistryFull { .. } => {
                RetryHint::No
            }
        }
    }

    fn is_dependency_failure(&self) -> bool {
        // Only a timeout says something about the dependency's health; every
        // other variant is a local decision.
        matches!(self, Error::Timeout { .. })
    }
}

/// A circuit breaker's refusal to admit a call.
///
/// It is `Copy` and built without allocating, so rejecting while open stays
/// cheap under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected {
    pub(crate) reason: RejectReason,
    pub(crate) retry_at: Option<Instant>,
    pub(crate) retry_after: Option<Duration>,
}

/// Why a circuit breaker rejected a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The breaker is open; it admits a probe after its break duration.
    Open,
    /// The breaker is half-open and all its probe slots are taken.
    HalfOpenFull,
    /// The breaker was isolated by hand; only a reset closes it.
    Isolated,
}

impl Rejected {
    /// Why the call was rejected.
    #[must_use]
    pub fn reason(&self) -> RejectReason {
        self.reason
    }

    /// When the breaker will admit a probe call again, if known (it is not
    /// known while half-open or isolated).
    #[must_use]
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// How long after the rejection the breaker will admit a probe call, if known.
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            RejectReason::Open => f.write_str("circuit breaker is open")?,
            RejectReason::HalfOpenFull => {
                f.write_str("circuit breaker is half-open and all its probe calls are in flight")?;
            }
            RejectReason::Isolated => f.write_str("circuit breaker is isolated")?,
        }
        if let Some(after) = self.retry_after {
            write!(f, "; next probe in {after:?}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Rejected {}

impl Classify for Rejected {
    fn retry_hint(&self) -> RetryHint {
        RetryHint::No
    }

    fn is_dependency_failure(&self) -> bool {
        false
    }
}

/// Why a retry policy stopped trying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The last error classified itself as not retryable.
    NotRetryable,
    /// Every allowed retry was used.
    RetriesExhausted {
        /// The policy's `max_retries`.
        max_retries: u32,
    },
    /// The next attempt would have started at or after the deadline.
    DeadlineExceeded {
        /// The delay the next attempt would have waited.
        delay: Duration,
        /// What was left of the deadline.
        remaining: Duration,
    },
    /// The shared retry budget had no token left for this retry.
    BudgetExhausted,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::NotRetryable => f.write_str("the error is not retryable"),
            StopReason::RetriesExhausted { max_retries } => {
                write!(f, "all {max_retries} retries were used")
            }
            StopReason::DeadlineExceeded { delay, remaining } => write!(
                f,
                "the deadline would pass first (next delay {delay:?}, {remaining:?} left)"
            ),
            StopReason::BudgetExhausted => f.write_str("the retry budget is exhausted"),
        }
    }
}

impl StopReason {
    /// A short, stable label for metrics and logs.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            StopReason::NotRetryable => "not_retryable",
            StopReason::RetriesExhausted { .. } => "retries_exhausted",
            StopReason::DeadlineExceeded { .. } => "deadline_exceeded",
            StopReason::BudgetExhausted => "budget_exhausted",
        }
    }
}

/// The error of an operation run under a retry policy: the last underlying
/// error, and why the policy stopped.
#[derive(Debug, thiserror::Error)]
#[error("gave up after {attempts} attempt(s): {reason}")]
pub struct RetryError<E> {
    reason: StopReason,
    attempts: u32,
    #[source]
    last: E,
}

impl<E> RetryError<E> {
    pub(crate) fn new(reason: StopReason, attempts: u32, last: E) -> Self {
        RetryError {
            reason,
            attempts,
            last,
        }
    }

    /// Why the policy stopped.
    #[must_use]
    pub fn reason(&self) -> StopReason {
        self.reason
    }

    /// How many attempts ran (the first one included).
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The error of the last attempt.
    #[must_use]
    pub fn last_error(&self) -> &E {
        &self.last
    }

    /// The error of the last attempt, by value.
    #[must_use]
    pub fn into_last_error(self) -> E {
        self.last
    }
}

impl<E: Classify> Classify for RetryError<E> {
    fn retry_hint(&self) -> RetryHint {
        // The policy already decided; retrying its result again would multiply
        // attempts (retries nested in retries).
        RetryHint::No
    }

    fn is_dependency_failure(&self) -> bool {
        self.last.is_dependency_failure()
    }
}

/// The error of an operation run under a breaker, bulkhead or timeout: either
/// the policy refused or stopped it, or the operation itself failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    /// The policy refused or stopped the call.
    #[error(transparent)]
    Policy(Error),
    /// The operation ran and failed.
    #[error(transparent)]
    Inner(E),
}

impl<E> CallError<E> {
    /// The operation's own error, if that is what this is.
    #[must_use]
    pub fn inner(&self) -> Option<&E> {
        match self {
            CallError::Inner(e) => Some(e),
            CallError::Policy(_) => None,
        }
    }

    /// The policy's error, if that is what this is.
    #[must_use]
    pub fn policy(&self) -> Option<&Error> {
        match self {
            CallError::Policy(e) => Some(e),
            CallError::Inner(_) => None,
        }
    }
}

impl<E: Classify> Classify for CallError<E> {
    fn retry_hint(&self) -> RetryHint {
        match self {
            CallError::Policy(e) => e.retry_hint(),
            CallError::Inner(e) => e.retry_hint(),
        }
    }

    fn is_dependency_failure(&self) -> bool {
        match self {
            CallError::Policy(e) => e.is_dependency_failure(),
            CallError::Inner(e) => e.is_dependency_failure(),
        }
    }
}
