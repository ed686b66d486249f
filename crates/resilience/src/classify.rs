//! The one question every error answers before a policy acts on it: may it be
//! retried, and is it the dependency's fault?

use std::sync::Arc;
use std::time::Duration;

/// How an error classifies itself for the resilience policies.
///
/// This is the only way a policy learns about an error: the retry policy
/// never retries an error whose [`retry_hint`](Classify::retry_hint) is
/// [`RetryHint::No`], and a circuit breaker counts only errors whose
/// [`is_dependency_failure`](Classify::is_dependency_failure) is `true`.
/// There are deliberately no default methods: the system this crate replaces
/// counted every error against its breakers, and a default would let that
/// mistake back in silently.
///
/// ```
/// use std::time::Duration;
/// use pybridge_resilience::{Classify, RetryHint};
///
/// #[derive(Debug)]
/// enum CallError {
///     InvalidParams,
///     Busy { retry_after: Duration },
///     WorkerCrashed,
/// }
///
/// impl Classify for CallError {
///     fn retry_hint(&self) -> RetryHint {
///         match self {
///             CallError::InvalidParams => RetryHint::No,
///             CallError::Busy { retry_after } => RetryHint::After(*retry_after),
///             CallError::WorkerCrashed => RetryHint::Yes,
///         }
///     }
///
///     fn is_dependency_failure(&self) -> bool {
///         // The caller sent bad params: the dependency is healthy.
///         !matches!(self, CallError::InvalidParams)
///     }
/// }
///
/// assert_eq!(CallError::InvalidParams.retry_hint(), RetryHint::No);
/// assert!(CallError::WorkerCrashed.is_dependency_failure());
/// ```
pub trait Classify {
    /// Whether a new attempt of the same operation may succeed.
    fn retry_hint(&self) -> RetryHint;

    /// Whether this error is the dependency's fault and so counts as a failure
    /// for a circuit breaker. A caller's mistake (a validation error), or a
    /// rejection by a local policy (an open breaker, a full bulkhead), is not.
    fn is_dependency_failure(&self) -> bool;
}

/// Whether an operation that failed may be tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RetryHint {
    /// Another attempt cannot succeed (a bad request, a rejection by a policy).
    No,
    /// Another attempt may succeed after the policy's backoff.
    Yes,
    /// Another attempt may succeed, but not before this delay (a server's
    /// `retry_after`). The retry policy waits at least this long, but never
    /// longer than its maximum delay.
    After(Duration),
}

impl RetryHint {
    /// Whether any retry is allowed.
    #[must_use]
    pub fn is_retryable(self) -> bool {
        !matches!(self, RetryHint::No)
    }
}

impl<E: Classify + ?Sized> Classify for &E {
    fn retry_hint(&self) -> RetryHint {
        (**self).retry_hint()
    }

    fn is_dependency_failure(&self) -> bool {
        (**self).is_dependency_failure()
    }
}

impl<E: Classify + ?Sized> Classify for Box<E> {
    fn retry_hint(&self) -> RetryHint {
        (**self).retry_hint()
    }

    fn is_dependency_failure(&self) -> bool {
        (**self).is_dependency_failure()
    }
}

impl<E: Classify + ?Sized> Classify for Arc<E> {
    fn retry_hint(&self) -> RetryHint {
        (**self).retry_hint()
    }

    fn is_dependency_failure(&self) -> bool {
        (**self).is_dependency_failure()
    }
}
