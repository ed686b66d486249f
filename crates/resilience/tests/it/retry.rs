//! The retry policy: attempts, delays, hints, deadlines, the budget, events.

use std::cell::RefCell;
use std::time::Duration;

use pybridge_resilience::{
    Backoff, Event, Jitter, RetryBudget, RetryError, RetryEvent, RetryHint, RetryPolicy,
    RetryPolicyBuilder, RetryStopped, StopReason,
};
use tokio::time::Instant;

use crate::support::{TestError, ms};

/// A policy with deterministic delays: constant or exponential without jitter.
fn policy(max_retries: u32, backoff: Backoff) -> RetryPolicyBuilder {
    RetryPolicy::builder()
        .max_retries(max_retries)
        .backoff(backoff)
        .jitter(Jitter::None)
        .max_delay(Duration::from_secs(1))
        .unlimited_budget()
}

/// What a run did: the attempt numbers it passed, the offset from the start
/// at which each attempt began, and its result.
struct Trace {
    attempts: Vec<u32>,
    started_at: Vec<Duration>,
    result: Result<&'static str, RetryError<TestError>>,
}

/// Runs `policy` over an operation whose attempt `n` returns `outcome(n)`
/// and which takes `work` to run.
async fn trace(
    policy: &RetryPolicy,
    deadline: Option<Duration>,
    work: Duration,
    outcome: impl Fn(u32) -> Result<&'static str, TestError>,
) -> Trace {
    let start = Instant::now();
    let seen = RefCell::new((Vec::new(), Vec::new()));
    let result = policy
        .run(deadline.map(|d| start + d), |attempt| {
            seen.borrow_mut().0.push(attempt);
            seen.borrow_mut().1.push(start.elapsed());
            let result = outcome(attempt);
            async move {
                tokio::time::sleep(work).await;
                result
            }
        })
        .await;
    let (attempts, started_at) = seen.into_inner();
    Trace {
        attempts,
        started_at,
        result,
    }
}

fn always_transient(n: u32) -> Result<&'static str, TestError> {
    Err(TestError::Transient(n))
}

#[tokio::test(start_paused = true)]
async fn a_success_runs_once() {
    let policy = policy(3, Backoff::constant(ms(100))).build().unwrap();
    let trace = trace(&policy, None, ms(0), |_| Ok("done")).await;
    assert_eq!(trace.attempts, [1]);
    assert_eq!(trace.result.unwrap(), "done");
}

#[tokio::test(start_paused = true)]
async fn max_retries_counts_retries_after_the_first_attempt() {
    for max_retries in [0, 1, 3] {
        let policy = policy(max_retries, Backoff::constant(ms(10)))
            .build()
            .unwrap();
        let trace = trace(&policy, None, ms(0), always_transient).await;
        let expected: Vec<u32> = (1..=max_retries + 1).collect();
        assert_eq!(trace.attempts, expected);
        let error = trace.result.unwrap_err();
        assert_eq!(error.attempts(), max_retries + 1);
        assert_eq!(error.reason(), StopReason::RetriesExhausted { max_retries });
        assert_eq!(
            error.last_error(),
            &TestError::Transient(max_retries + 1),
            "the last error"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_succeeds_after_failures() {
    let policy = policy(5, Backoff::constant(ms(10))).build().unwrap();
    let trace = trace(&policy, None, ms(0), |n| {
        if n < 3 {
            Err(TestError::Transient(n))
        } else {
            Ok("third")
        }
    })
    .await;
    assert_eq!(trace.attempts, [1, 2, 3]);
    assert_eq!(trace.result.unwrap(), "third");
}

#[tokio::test(start_paused = true)]
async fn non_retryable_errors_are_never_retried() {
    let policy = policy(5, Backoff::constant(ms(10))).build().unwrap();
    for error in [TestError::Fatal, TestError::Invalid] {
        let trace = trace(&policy, None, ms(0), |_| Err(error.clone())).await;
        assert_eq!(trace.attempts, [1]);
        let stopped = trace.result.unwrap_err();
        assert_eq!(stopped.reason(), StopReason::NotRetryable);
        assert_eq!(stopped.into_last_error(), error);
    }
}

#[tokio::test(start_paused = true)]
async fn attempts_are_spaced_by_the_backoff() {
    let policy = policy(4, Backoff::exponential(ms(100), 2.0))
        .build()
        .unwrap();
    let trace = trace(&policy, None, ms(5), always_transient).await;
    // Each attempt takes 5 ms, then waits 100, 200, 400, 800 ms.
    assert_eq!(
        trace.started_at,
        [ms(0), ms(105), ms(310), ms(715), ms(1520)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_hint_is_honoured_but_capped() {
    let policy = policy(2, Backoff::constant(ms(100))).build().unwrap();
    let hinted = trace(&policy, None, ms(0), |_| Err(TestError::Busy(ms(300)))).await;
    assert_eq!(hinted.started_at, [ms(0), ms(300), ms(600)]);
    // A hint of a minute is cut to the policy's 1 s cap.
    let capped = trace(&policy, None, ms(0), |_| {
        Err(TestError::Busy(Duration::from_secs(60)))
    })
    .await;
    assert_eq!(capped.started_at, [ms(0), ms(1000), ms(2000)]);
    // A hint shorter than the backoff does not shorten it.
    let short = trace(&policy, None, ms(0), |_| Err(TestError::Busy(ms(1)))).await;
    assert_eq!(short.started_at, [ms(0), ms(100), ms(200)]);
}

#[tokio::test(start_paused = true)]
async fn no_attempt_starts_if_the_deadline_would_pass_first() {
    let policy = policy(10, Backoff::constant(ms(100))).build().unwrap();
    let start = Instant::now();
    let trace = trace(&policy, Some(ms(250)), ms(0), always_transient).await;
    assert_eq!(trace.started_at, [ms(0), ms(100), ms(200)]);
    let error = trace.result.unwrap_err();
    assert_eq!(
        error.reason(),
        StopReason::DeadlineExceeded {
            delay: ms(100),
            remaining: ms(50)
        }
    );
    assert_eq!(error.last_error(), &TestError::Transient(3));
    // The policy returned at once instead of sleeping towards the deadline.
    assert_eq!(start.elapsed(), ms(200));
}

#[tokio::test(start_paused = true)]
async fn an_attempt_that_would_start_exactly_at_the_deadline_does_not() {
    let policy = policy(10, Backoff::constant(ms(100))).build().unwrap();
    let trace = trace(&policy, Some(ms(200)), ms(0), always_transient).await;
    assert_eq!(trace.attempts, [1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_passed_deadline_still_runs_the_first_attempt_only() {
    let policy = policy(10, Backoff::constant(ms(100))).build().unwrap();
    let trace = trace(&policy, Some(Duration::ZERO), ms(0), always_transient).await;
    assert_eq!(trace.attempts, [1]);
    assert!(matches!(
        trace.result.unwrap_err().reason(),
        StopReason::DeadlineExceeded { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_shared_budget_stops_a_retry_storm() {
    // No ratio, one retry per second over one second: one retry in all,
    // shared by two policies.
    let budget = RetryBudget::builder()
        .ttl(Duration::from_secs(1))
        .min_retries_per_sec(1)
        .retry_ratio(0.0)
        .build()
        .unwrap();
    let first = policy(5, Backoff::constant(ms(10)))
        .budget(budget.clone())
        .build()
        .unwrap();
    let second = policy(5, Backoff::constant(ms(10)))
        .budget(budget.clone())
        .build()
        .unwrap();
    let used = trace(&first, None, ms(0), always_transient).await;
    assert_eq!(used.attempts, [1, 2], "one retry, then the budget is empty");
    assert_eq!(
        used.result.unwrap_err().reason(),
        StopReason::BudgetExhausted
    );
    let starved = trace(&second, None, ms(0), always_transient).await;
    assert_eq!(starved.attempts, [1]);
    assert_eq!(
        starved.result.unwrap_err().reason(),
        StopReason::BudgetExhausted
    );
    // Once the withdrawal is older than the ttl, the budget allows one again.
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(budget.available(), 1);
}

#[tokio::test(start_paused = true)]
async fn calls_earn_retries_at_the_budget_ratio() {
    let budget = RetryBudget::builder()
        .min_retries_per_sec(0)
        .retry_ratio(0.5)
        .build()
        .unwrap();
    let policy = policy(5, Backoff::constant(ms(10)))
        .budget(budget.clone())
        .build()
        .unwrap();
    for _ in 0..4 {
        trace(&policy, None, ms(0), |_| Ok("fine")).await;
    }
    // Five calls (four successes and this one) earn two and a half retries.
    let trace = trace(&policy, None, ms(0), always_transient).await;
    assert_eq!(trace.attempts, [1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_retry_refused_by_the_deadline_spends_no_budget() {
    let budget = RetryBudget::builder()
        .ttl(Duration::from_secs(10))
        .min_retries_per_sec(1)
        .retry_ratio(0.0)
        .build()
        .unwrap();
    let policy = policy(5, Backoff::constant(ms(100)))
        .budget(budget.clone())
        .build()
        .unwrap();
    let trace = trace(&policy, Some(ms(50)), ms(0), always_transient).await;
    assert_eq!(trace.attempts, [1]);
    assert_eq!(budget.available(), 10);
}

#[tokio::test(start_paused = true)]
async fn every_retry_is_announced() {
    let policy = policy(2, Backoff::constant(ms(100))).build().unwrap();
    let mut events = policy.subscribe();
    let mut hooked = Vec::new();
    let result: Result<(), _> = policy
        .run_with_hook(
            None,
            |n| async move { Err(TestError::Transient(n)) },
            |info| hooked.push((info.attempt, info.delay, info.error.clone())),
        )
        .await;
    assert!(result.is_err());
    assert_eq!(
        hooked,
        [
            (1, ms(100), TestError::Transient(1)),
            (2, ms(100), TestError::Transient(2))
        ]
    );
    let events = crate::support::drain(&mut events);
    assert_eq!(events.len(), 3, "{events:?}");
    for (attempt, event) in (1_u32..).zip(&events[..2]) {
        match event {
            Event::Retry(RetryEvent {
                attempt: seen,
                delay,
                hint,
                error,
                ..
            }) => {
                assert_eq!(*seen, attempt);
                assert_eq!(*delay, ms(100));
                assert_eq!(*hint, RetryHint::Yes);
                assert_eq!(&**error, format!("transient failure {attempt}"));
            }
            other => panic!("expected a retry event, got {other:?}"),
        }
    }
    match &events[2] {
        Event::RetryStopped(RetryStopped {
            attempts,
            reason,
            error,
            ..
        }) => {
            assert_eq!(*attempts, 3);
            assert_eq!(*reason, StopReason::RetriesExhausted { max_retries: 2 });
            assert_eq!(&**error, "transient failure 3");
        }
        other => panic!("expected RetryStopped, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn jittered_runs_stay_within_the_schedule() {
    // Decorrelated jitter from 100 ms: every delay is at least the backoff
    // and at most the cap, so four retries take between 0.4 s and 4 s.
    let policy = RetryPolicy::builder()
        .max_retries(4)
        .backoff(Backoff::constant(ms(100)))
        .max_delay(Duration::from_secs(1))
        .seed(3)
        .unlimited_budget()
        .build()
        .unwrap();
    let trace = trace(&policy, None, ms(0), always_transient).await;
    let gaps: Vec<Duration> = trace.started_at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps.len(), 4);
    assert!(
        gaps.iter().all(|gap| (ms(100)..=ms(1000)).contains(gap)),
        "{gaps:?}"
    );
    assert!(
        gaps.iter().any(|gap| *gap != ms(100)),
        "jitter moved no delay: {gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn errors_explain_themselves() {
    let policy = policy(2, Backoff::constant(ms(1))).build().unwrap();
    let error = policy
        .run(
            None,
            |n| async move { Err::<(), _>(TestError::Transient(n)) },
        )
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "gave up after 3 attempt(s): all 2 retries were used"
    );
    let source = std::error::Error::source(&error).expect("the last error is the source");
    assert_eq!(source.to_string(), "transient failure 3");
}

#[test]
fn the_run_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let policy = policy(1, Backoff::constant(ms(1))).build().unwrap();
    let run = policy.run(None, |_| async { Ok::<_, TestError>(()) });
    assert_send(&run);
}

#[tokio::test(start_paused = true)]
async fn a_run_started_at_a_given_time_deposits_in_the_budget_as_at_that_time() {
    let budget = RetryBudget::builder()
        .ttl(Duration::from_secs(10))
        .min_retries_per_sec(0)
        .retry_ratio(0.5)
        .build()
        .unwrap();
    let policy = policy(5, Backoff::constant(ms(10)))
        .budget(budget.clone())
        .build()
        .unwrap();
    let started = Instant::now();
    for _ in 0..2 {
        let run = policy.run_with_hook_at(
            started,
            None,
            |_| async { Ok::<_, TestError>("fine") },
            |_| {},
        );
        assert_eq!(run.await.unwrap(), "fine");
    }
    assert_eq!(
        budget.available(),
        1,
        "two calls at ratio 0.5 earn one retry"
    );
    // The deposits count from `started`, so they expire a ttl after it.
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(budget.available(), 0);
}
