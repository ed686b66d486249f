//! The closed-state success path allocates nothing, and neither does a
//! rejection while open; proved by counting this thread's allocations.
//!
//! `allocation-counter` replaces the global allocator of this test binary
//! and counts per thread, so tests running in parallel do not disturb it.
//! The futures are polled once by hand with a no-op waker: they complete on
//! their first poll in these paths, and no runtime (which allocates for its
//! own bookkeeping) is involved.

use std::future::Future;
use std::num::NonZeroUsize;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use pybridge_resilience::{BreakerRegistry, CircuitBreaker, Outcome, RetryPolicy};

use crate::support::{TestError, consecutive, ms};

fn poll_once<F: Future>(future: F) -> F::Output {
    let mut context = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("the path under test must not wait"),
    }
}

/// Allocations made by `f` on this thread, after one warm-up run (which may
/// initialise thread-locals).
fn allocations(mut f: impl FnMut()) -> u64 {
    f();
    allocation_counter::measure(f).count_total
}

fn retry_and_breaker() -> (RetryPolicy, CircuitBreaker) {
    // The default policy, budget included: the budget's deposit is on the path.
    let policy = RetryPolicy::builder().build().unwrap();
    let breaker = crate::support::breaker(consecutive(5));
    (policy, breaker)
}

#[test]
fn a_successful_call_through_retry_and_breaker_allocates_nothing() {
    let (policy, breaker) = retry_and_breaker();
    let count = allocations(|| {
        let value = poll_once(policy.run(None, |_| {
            breaker.call(async { Ok::<u64, TestError>(std::hint::black_box(42)) })
        }));
        assert_eq!(value.unwrap(), 42);
    });
    assert_eq!(count, 0);
}

#[test]
fn the_permit_api_allocates_nothing_in_any_hot_path() {
    let breaker = crate::support::breaker(consecutive(1_000).slow_call_threshold(ms(10)));
    let count = allocations(|| {
        for outcome in [Outcome::Success, Outcome::Failure, Outcome::Ignored] {
            breaker.try_acquire().unwrap().record(outcome, ms(20));
        }
        drop(breaker.try_acquire().unwrap());
    });
    assert_eq!(count, 0);
    // The count is still below the threshold: the breaker stayed closed.
    assert!(breaker.try_acquire().is_ok());
}

#[test]
fn a_rejection_while_open_allocates_nothing() {
    let breaker = crate::support::breaker(consecutive(1));
    breaker.try_acquire().unwrap().failure(ms(1));
    let count = allocations(|| {
        let rejected = breaker.try_acquire().unwrap_err();
        std::hint::black_box(rejected);
        let rejected_call = poll_once(breaker.call(async { Ok::<(), TestError>(()) }));
        assert!(rejected_call.is_err());
    });
    assert_eq!(count, 0);
}

#[test]
fn a_registry_hit_allocates_nothing() {
    let registry = BreakerRegistry::new(
        consecutive(5).build().unwrap(),
        NonZeroUsize::new(16).unwrap(),
    );
    registry.get("framework.learn").unwrap();
    let key = String::from("framework.learn");
    let count = allocations(|| {
        let breaker = registry.get(&key).unwrap();
        breaker.try_acquire().unwrap().success(ms(1));
    });
    assert_eq!(count, 0);
}

#[test]
fn the_counter_does_count() {
    // Guards the tests above against a counter that reports zero for
    // everything (for instance if the global allocator were not installed).
    let count = allocations(|| {
        std::hint::black_box(Box::new(1_u64));
    });
    assert_eq!(count, 1);
}
