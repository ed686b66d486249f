//! Unit tests of the retry policy's configuration and delay preview.

use std::time::Duration;

use super::RetryPolicy;
use crate::{Backoff, Jitter};

#[test]
fn seeded_previews_are_reproducible_per_run_and_differ_between_runs() {
    let build = || {
        RetryPolicy::builder()
            .max_retries(8)
            .backoff(Backoff::exponential(Duration::from_millis(10), 2.0))
            .seed(42)
            .build()
            .expect("valid policy")
    };
    let (a, b) = (build(), build());
    let first: Vec<_> = a.delays().collect();
    assert_eq!(first.len(), 8);
    assert_eq!(
        first,
        b.delays().collect::<Vec<_>>(),
        "same seed, same first run"
    );
    assert_ne!(
        first,
        a.delays().collect::<Vec<_>>(),
        "each run has its own stream"
    );
}

#[test]
fn the_preview_without_jitter_is_the_schedule() {
    let policy = RetryPolicy::builder()
        .max_retries(4)
        .backoff(Backoff::linear(
            Duration::from_secs(1),
            Duration::from_secs(1),
        ))
        .jitter(Jitter::None)
        .max_delay(Duration::from_secs(3))
        .build()
        .expect("valid policy");
    let delays: Vec<_> = policy.delays().map(|d| d.as_secs()).collect();
    assert_eq!(delays, [1, 2, 3, 3]);
}

#[test]
fn defaults() {
    let policy = RetryPolicy::builder().build().expect("valid defaults");
    assert_eq!(
        policy.max_retries(),
        2,
        "the original's 3 attempts are 2 retries"
    );
    assert!(policy.budget().is_some(), "a budget is on by default");
    assert_eq!(policy.inner.schedule.jitter, Jitter::Decorrelated);
    assert_eq!(policy.inner.schedule.max_delay, Duration::from_secs(30));
    assert_eq!(
        policy.inner.schedule.backoff,
        Backoff::exponential(Duration::from_secs(1), 2.0)
    );
}

#[test]
fn invalid_settings_are_refused() {
    let error = RetryPolicy::builder()
        .max_delay(Duration::ZERO)
        .build()
        .expect_err("zero cap");
    assert!(error.to_string().contains("max_delay"), "{error}");
    let error = RetryPolicy::builder()
        .backoff(Backoff::exponential(Duration::from_secs(60), 2.0))
        .build()
        .expect_err("starts above the cap");
    assert!(error.to_string().contains("backoff"), "{error}");
}
