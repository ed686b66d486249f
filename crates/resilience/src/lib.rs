//! Resilience policies for pybridge: retry with backoff, jitter, budgets and
//! deadlines; circuit breakers and their keyed registry; timeouts; bulkheads.
//!
//! # Place in the layers
//!
//! `caller → bridge → service → cache → resilience → pool → protocol`. The
//! bridge runs each call through a method's [`CircuitBreaker`] (taken from a
//! [`BreakerRegistry`]) inside each attempt of a [`RetryPolicy`]. This crate
//! knows nothing of JSON-RPC: it works on any async operation whose error
//! implements [`Classify`], which answers the two questions every decision
//! here rests on — may this be retried (and not before when), and is it the
//! dependency's fault.
//!
//! # What it fixes
//!
//! The system this replaces retried without jitter, counted "retries" as
//! total attempts, let a server's `retry_after` exceed every cap, slept
//! through a breaker's whole open period, admitted unlimited half-open
//! probes, carried probe successes across half-open periods, and tripped its
//! breakers on every error (validation errors included). Here `max_retries`
//! counts retries after the first attempt; hints are capped; a breaker
//! rejection is not retryable; half-open admits at most N probes; every state
//! change resets the counters and starts a new generation, so results of
//! calls admitted before it are ignored; and only dependency failures count.
//!
//! # Observability
//!
//! Policies publish typed [`Event`]s on bounded broadcast channels
//! (`subscribe()` on each handle) and record metrics through the `metrics`
//! facade under the names in [`metrics`] (all `pybridge_resilience_*`).
//! Time comes from `tokio::time`, so tests drive it with paused time.
//!
//! # Features
//!
//! - `tower` (off by default): the module `tower`, with `RetryLayer`,
//!   `BreakerLayer` and `BulkheadLayer`, so the policies compose with axum,
//!   tonic and any tower stack.
//!
//! # Example
//!
//! ```
//! use std::num::NonZeroU32;
//! use std::time::Duration;
//!
//! use pybridge_resilience::{
//!     Backoff, BreakerConfig, CircuitBreaker, Classify, RetryHint, RetryPolicy, StopReason,
//! };
//!
//! #[derive(Debug)]
//! struct Flaky;
//!
//! impl std::fmt::Display for Flaky {
//!     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
//!         f.write_str("worker busy")
//!     }
//! }
//!
//! impl Classify for Flaky {
//!     fn retry_hint(&self) -> RetryHint {
//!         RetryHint::Yes
//!     }
//!     fn is_dependency_failure(&self) -> bool {
//!         true
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), pybridge_resilience::Error> {
//! let policy = RetryPolicy::builder()
//!     .max_retries(3)
//!     .backoff(Backoff::exponential(Duration::from_millis(10), 2.0))
//!     .build()?;
//! let breaker = CircuitBreaker::new(
//!     BreakerConfig::builder()
//!         .consecutive_failures(NonZeroU32::new(2).expect("not zero"))
//!         .build()?,
//! );
//!
//! // The breaker runs inside each attempt: the first two attempts fail and
//! // open it, and the third is rejected, which stops the retries at once.
//! let result = policy
//!     .run(None, |_attempt| breaker.call(async { Err::<(), _>(Flaky) }))
//!     .await;
//! let error = result.expect_err("every attempt fails");
//! assert_eq!(error.attempts(), 3);
//! assert_eq!(error.reason(), StopReason::NotRetryable);
//! assert!(error.last_error().policy().is_some(), "the last error is the rejection");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod backoff;
mod breaker;
mod budget;
mod bulkhead;
mod classify;
mod error;
mod event;
pub mod metrics;
mod registry;
mod retry;
mod timeout;
#[cfg(feature = "tower")]
pub mod tower;

pub use backoff::{Backoff, Jitter};
pub use breaker::{
    BreakDuration, BreakerConfig, BreakerConfigBuilder, CircuitBreaker, FailureMode, Outcome,
    OwnedPermit, Permit, State, TransitionReason,
};
pub use budget::{RetryBudget, RetryBudgetBuilder};
pub use bulkhead::{Bulkhead, BulkheadBuilder, BulkheadPermit};
pub use classify::{Classify, RetryHint};
pub use error::{CallError, Error, RejectReason, Rejected, Result, RetryError, StopReason};
pub use event::{Event, RetryEvent, RetryStopped, StateChange};
pub use registry::BreakerRegistry;
pub use retry::{Delays, RetryInfo, RetryPolicy, RetryPolicyBuilder};
pub use timeout::{timeout, timeout_at};
