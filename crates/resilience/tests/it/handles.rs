//! Handles are cheap Clone + Send + Sync and every public type is Debug.

use std::fmt::Debug;

use pybridge_resilience::{
    Backoff, BreakDuration, BreakerConfig, BreakerConfigBuilder, BreakerRegistry, Bulkhead,
    BulkheadBuilder, BulkheadPermit, CallError, CircuitBreaker, Delays, Error, Event, FailureMode,
    Jitter, Outcome, OwnedPermit, Permit, RejectReason, Rejected, RetryBudget, RetryBudgetBuilder,
    RetryError, RetryEvent, RetryHint, RetryInfo, RetryPolicy, RetryPolicyBuilder, RetryStopped,
    State, StateChange, StopReason, TransitionReason,
};

fn handle<T: Clone + Send + Sync + Debug + 'static>() {}
fn debug<T: Debug>() {}
fn send_sync<T: Send + Sync>() {}

#[test]
fn handles_are_clone_send_sync() {
    handle::<RetryPolicy>();
    handle::<RetryBudget>();
    handle::<CircuitBreaker>();
    handle::<BreakerRegistry>();
    handle::<Bulkhead>();
    handle::<BreakerConfig>();
    send_sync::<OwnedPermit>();
    send_sync::<Permit<'static>>();
    send_sync::<Error>();
    send_sync::<Event>();
}

#[test]
fn public_types_are_debug() {
    debug::<Backoff>();
    debug::<BreakDuration>();
    debug::<BreakerConfigBuilder>();
    debug::<BulkheadBuilder>();
    debug::<BulkheadPermit>();
    debug::<CallError<Error>>();
    debug::<Delays>();
    debug::<FailureMode>();
    debug::<Jitter>();
    debug::<Outcome>();
    debug::<OwnedPermit>();
    debug::<Permit<'static>>();
    debug::<RejectReason>();
    debug::<Rejected>();
    debug::<RetryBudgetBuilder>();
    debug::<RetryError<Error>>();
    debug::<RetryEvent>();
    debug::<RetryHint>();
    debug::<RetryInfo<'static, Error>>();
    debug::<RetryPolicyBuilder>();
    debug::<RetryStopped>();
    debug::<State>();
    debug::<StateChange>();
    debug::<StopReason>();
    debug::<TransitionReason>();
}

#[tokio::test(start_paused = true)]
async fn clones_share_state() {
    let breaker = CircuitBreaker::new(BreakerConfig::default());
    let clone = breaker.clone();
    clone.isolate();
    assert_eq!(breaker.state(), State::Isolated);
    let text = format!("{breaker:?}");
    assert!(text.contains("Isolated"), "{text}");
}
