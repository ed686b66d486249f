//! The original system's known failures (reference §4 and §13.3), each
//! reproduced against this crate and shown not to happen.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pybridge_resilience::{
    Backoff, CallError, Error, Jitter, RejectReason, RetryPolicy, State, StopReason,
};
use tokio::time::Instant;

use crate::support::{TestError, breaker, consecutive, ms, nz};

/// Original: `halfOpenAttempts` was counted but never checked, so ten
/// concurrent probes were all admitted with `halfOpenRequests = 1`.
#[tokio::test(start_paused = true)]
async fn half_open_does_not_admit_unlimited_probes() {
    let breaker = breaker(
        consecutive(1)
            .break_duration(ms(100))
            .half_open_max_probes(nz(1)),
    );
    breaker.try_acquire().unwrap().failure(ms(1));
    tokio::time::advance(ms(100)).await;
    let attempts: Vec<_> = (0..10).map(|_| breaker.try_acquire()).collect();
    let admitted = attempts.iter().filter(|a| a.is_ok()).count();
    assert_eq!(admitted, 1, "exactly one probe while half-open");
    for rejected in attempts.iter().filter_map(|a| a.as_ref().err()) {
        assert_eq!(rejected.reason(), RejectReason::HalfOpenFull);
    }
}

/// Original: a success from a call admitted before a trip still counted
/// once the breaker was half-open, and probe successes carried over between
/// half-open periods (two successes, a failure, a re-open: one success closed
/// a breaker configured for three).
#[tokio::test(start_paused = true)]
async fn a_success_from_before_a_trip_does_not_close_the_breaker() {
    let breaker = breaker(
        consecutive(1)
            .break_duration(ms(100))
            .half_open_max_probes(nz(3))
            .half_open_successes(nz(3)),
    );
    // A slow call is admitted while closed, then the breaker trips.
    let slow = breaker.try_acquire().unwrap();
    breaker.try_acquire().unwrap().failure(ms(1));
    tokio::time::advance(ms(100)).await;
    // Two probes succeed; the slow call's success arrives now, in half-open.
    breaker.try_acquire().unwrap().success(ms(1));
    breaker.try_acquire().unwrap().success(ms(1));
    slow.success(ms(150));
    assert_eq!(
        breaker.state(),
        State::HalfOpen,
        "the pre-trip success must not be the third"
    );

    // A failure re-opens; the two successes must not carry over.
    breaker.try_acquire().unwrap().failure(ms(1));
    assert_eq!(breaker.state(), State::Open);
    tokio::time::advance(ms(100)).await;
    breaker.try_acquire().unwrap().success(ms(1));
    assert_eq!(
        breaker.state(),
        State::HalfOpen,
        "one success of three, not three"
    );
    breaker.try_acquire().unwrap().success(ms(1));
    breaker.try_acquire().unwrap().success(ms(1));
    assert_eq!(breaker.state(), State::Closed);
}

/// Original: every error tripped the breaker, including validation errors,
/// method-not-found and "No available process in pool" (a burst of local
/// rejections opened a method's breaker for 60 s).
#[tokio::test(start_paused = true)]
async fn client_errors_and_local_rejections_do_not_trip_the_breaker() {
    let breaker = breaker(consecutive(3));
    for _ in 0..100 {
        let result = breaker
            .call(async { Err::<(), _>(TestError::Invalid) })
            .await;
        assert!(matches!(result, Err(CallError::Inner(TestError::Invalid))));
        let full = Error::BulkheadFull {
            max_concurrent: 1,
            max_queued: 0,
        };
        let result = breaker.call(async { Err::<(), _>(full) }).await;
        assert!(result.is_err());
    }
    assert_eq!(breaker.state(), State::Closed);
    // The dependency's own failures still do.
    for _ in 0..3 {
        let _ = breaker.call(async { Err::<(), _>(TestError::Fatal) }).await;
    }
    assert_eq!(breaker.state(), State::Open);
}

/// Original: a breaker rejection was "recoverable" with `retryAfter` = time
/// until half-open, so the retry loop slept up to 60 s inside one call.
#[tokio::test(start_paused = true)]
async fn a_retry_does_not_sleep_through_the_open_period() {
    let breaker = breaker(consecutive(1).break_duration(Duration::from_secs(60)));
    breaker.try_acquire().unwrap().failure(ms(1));
    let policy = RetryPolicy::builder()
        .max_retries(10)
        .backoff(Backoff::constant(ms(100)))
        .max_delay(Duration::from_secs(120))
        .build()
        .unwrap();
    let ran = AtomicU32::new(0);
    let start = Instant::now();
    let result = policy
        .run(None, |_| {
            breaker.call(async {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok::<_, TestError>(())
            })
        })
        .await;
    // With paused time a sleep would auto-advance the clock; none happened.
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    let error = result.unwrap_err();
    assert_eq!(error.attempts(), 1);
    assert_eq!(error.reason(), StopReason::NotRetryable);
    match error.last_error() {
        CallError::Policy(Error::Rejected(rejected)) => {
            assert_eq!(rejected.retry_after(), Some(Duration::from_secs(60)));
        }
        other => panic!("expected the rejection, got {other:?}"),
    }
}

/// Original: `retryAttempts`/`maxRetries` counted total attempts, 0 fell back
/// to the default, and a server's `retryAfter` overrode the backoff with no
/// cap.
#[tokio::test(start_paused = true)]
async fn retries_are_counted_and_hints_are_capped() {
    let policy = RetryPolicy::builder()
        .max_retries(0)
        .unlimited_budget()
        .build()
        .unwrap();
    let calls = AtomicU32::new(0);
    let _ = policy
        .run(None, |n| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Err::<(), _>(TestError::Transient(n)) }
        })
        .await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "0 retries is one attempt, not the default"
    );

    let policy = RetryPolicy::builder()
        .max_retries(1)
        .backoff(Backoff::constant(ms(100)))
        .jitter(Jitter::None)
        .max_delay(Duration::from_secs(2))
        .unlimited_budget()
        .build()
        .unwrap();
    let start = Instant::now();
    let _ = policy
        .run(None, |_| async {
            Err::<(), _>(TestError::Busy(Duration::from_secs(3600)))
        })
        .await;
    assert_eq!(
        start.elapsed(),
        Duration::from_secs(2),
        "an hour-long hint is cut to the cap"
    );
}
