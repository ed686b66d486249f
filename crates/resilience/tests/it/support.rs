//! Shared test helpers: an error type that classifies itself every way.

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

use pybridge_resilience::{
    BreakerConfig, BreakerConfigBuilder, CircuitBreaker, Classify, Event, RetryHint, StateChange,
};
use tokio::sync::broadcast;

/// An operation's error, one variant per classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TestError {
    /// Retryable, and the dependency's fault (a crashed worker).
    Transient(u32),
    /// Not retryable, but the dependency's fault (a server bug).
    Fatal,
    /// Not retryable and not the dependency's fault (bad params).
    Invalid,
    /// Retryable after a server hint, and the dependency's fault.
    Busy(Duration),
}

impl fmt::Display for TestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TestError::Transient(n) => write!(f, "transient failure {n}"),
            TestError::Fatal => f.write_str("fatal failure"),
            TestError::Invalid => f.write_str("invalid params"),
            TestError::Busy(after) => write!(f, "busy, retry after {after:?}"),
        }
    }
}

impl std::error::Error for TestError {}

impl Classify for TestError {
    fn retry_hint(&self) -> RetryHint {
        match self {
            TestError::Transient(_) => RetryHint::Yes,
            TestError::Fatal | TestError::Invalid => RetryHint::No,
            TestError::Busy(after) => RetryHint::After(*after),
        }
    }

    fn is_dependency_failure(&self) -> bool {
        !matches!(self, TestError::Invalid)
    }
}

pub(crate) fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

pub(crate) fn nz(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("test values are not zero")
}

/// A breaker from a builder that the test knows is valid.
pub(crate) fn breaker(config: BreakerConfigBuilder) -> CircuitBreaker {
    CircuitBreaker::new(config.build().expect("a valid test configuration"))
}

/// The default configuration with a consecutive-failure threshold.
pub(crate) fn consecutive(threshold: u32) -> BreakerConfigBuilder {
    BreakerConfig::builder().consecutive_failures(nz(threshold))
}

/// Every event waiting in `events`, without waiting for more.
pub(crate) fn drain(events: &mut broadcast::Receiver<Event>) -> Vec<Event> {
    std::iter::from_fn(|| events.try_recv().ok()).collect()
}

/// The state changes among `events`, as (from, to, reason) tuples.
pub(crate) fn changes(
    events: &[Event],
) -> Vec<(
    pybridge_resilience::State,
    pybridge_resilience::State,
    pybridge_resilience::TransitionReason,
)> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::StateChanged(StateChange {
                from, to, reason, ..
            }) => Some((*from, *to, *reason)),
            _ => None,
        })
        .collect()
}
