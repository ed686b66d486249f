//! Typed events that the retry policy, circuit breakers and the registry
//! publish on bounded broadcast channels.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::{RetryHint, State, StopReason, TransitionReason};

/// How many events a channel keeps for a slow receiver. A receiver that falls
/// further behind gets `RecvError::Lagged` and loses the oldest ones; the
/// sender never waits.
pub(crate) const EVENT_CAPACITY: usize = 256;

/// Something a policy did that an observer may want to know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A retry policy is about to sleep before another attempt.
    Retry(RetryEvent),
    /// A retry policy gave up and returned the last error.
    RetryStopped(RetryStopped),
    /// A circuit breaker changed state.
    StateChanged(StateChange),
    /// A registry created a breaker from its template.
    BreakerCreated {
        /// The breaker's key.
        key: Arc<str>,
    },
    /// A registry evicted a closed breaker to stay within its bound.
    BreakerEvicted {
        /// The breaker's key.
        key: Arc<str>,
    },
}

/// A retry about to happen.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryEvent {
    /// The attempt that failed (1 is the first call).
    pub attempt: u32,
    /// How long the policy waits before the next attempt.
    pub delay: Duration,
    /// What the failed attempt's error said about retrying.
    pub hint: RetryHint,
    /// The failed attempt's error, rendered with `Display`.
    pub error: Arc<str>,
}

/// A retry policy giving up.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryStopped {
    /// How many attempts ran.
    pub attempts: u32,
    /// Why the policy stopped.
    pub reason: StopReason,
    /// The last attempt's error, rendered with `Display`.
    pub error: Arc<str>,
}

/// A circuit breaker's state change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateChange {
    /// The breaker's name (its registry key), if it has one.
    pub breaker: Option<Arc<str>>,
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// Why it changed.
    pub reason: TransitionReason,
    /// When it changed.
    pub at: Instant,
}

/// Sends an event built only when someone listens, so a policy that nobody
/// observes never renders error messages. Both checks take the channel's
/// uncontended lock once; events happen per retry or per transition, never
/// per successful call.
pub(crate) fn emit(tx: &broadcast::Sender<Event>, make: impl FnOnce() -> Event) {
    if tx.receiver_count() > 0 {
        // A receiver may have gone between the two checks; losing the event
        // then is exactly what a receiver that left asked for.
        let _ = tx.send(make());
    }
}

pub(crate) fn channel() -> broadcast::Sender<Event> {
    broadcast::Sender::new(EVENT_CAPACITY)
}
