//! Resilience benchmarks: the overhead a call pays to go through a retry
//! policy and a circuit breaker in the closed state when it succeeds, next
//! to the bare call measured in the same run.
//!
//! Every future here completes on its first poll, so each is polled once by
//! hand with a no-op waker: no runtime is involved, and the difference
//! between a variant and `bare` is exactly the policies' own cost.
//!
//! Run: `cargo bench -p pybridge-benches --bench resilience`.

use std::fmt;
use std::future::Future;
use std::num::NonZeroU32;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use pybridge_resilience::{BreakerConfig, CircuitBreaker, Classify, RetryHint, RetryPolicy};

#[derive(Debug)]
struct BenchError;

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bench error")
    }
}

impl Classify for BenchError {
    fn retry_hint(&self) -> RetryHint {
        RetryHint::Yes
    }

    fn is_dependency_failure(&self) -> bool {
        true
    }
}

/// The call being protected: the cheapest possible successful operation, so
/// that the policies' overhead is not hidden by the call's own cost.
async fn bare_call() -> Result<u64, BenchError> {
    Ok(std::hint::black_box(42))
}

/// One attempt as the bridge makes it: a permit from the breaker, the call,
/// and its result recorded on the permit.
async fn permit_attempt(breaker: &CircuitBreaker) -> Result<u64, BenchError> {
    let permit = breaker.try_acquire().map_err(|_| BenchError)?;
    let result = bare_call().await;
    permit.record_result(&result, Duration::ZERO);
    result
}

fn poll_once<F: Future>(future: F) -> F::Output {
    let mut context = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut context) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a closed-state success never waits"),
    }
}

fn closed_success(c: &mut Criterion) {
    // The defaults (a shared retry budget included) and a consecutive-failure
    // breaker: what the bridge runs by default.
    let policy = RetryPolicy::builder().build().expect("default policy");
    let unbudgeted = RetryPolicy::builder()
        .unlimited_budget()
        .build()
        .expect("valid policy");
    let breaker = CircuitBreaker::new(BreakerConfig::default());
    let rate_breaker = CircuitBreaker::new(
        BreakerConfig::builder()
            .failure_rate_over_calls(
                0.5,
                NonZeroU32::new(100).expect("not zero"),
                NonZeroU32::new(20).expect("not zero"),
            )
            .build()
            .expect("valid breaker"),
    );

    let mut group = c.benchmark_group("resilience/closed_success");
    group.bench_function("bare", |b| b.iter(|| poll_once(bare_call())));
    group.bench_function("breaker", |b| {
        b.iter(|| poll_once(breaker.call(bare_call())))
    });
    group.bench_function("retry", |b| {
        b.iter(|| poll_once(policy.run(None, |_| bare_call())))
    });
    group.bench_function("retry+breaker", |b| {
        b.iter(|| poll_once(policy.run(None, |_| breaker.call(bare_call()))))
    });
    group.bench_function("retry+breaker permit", |b| {
        b.iter(|| poll_once(policy.run(None, |_| permit_attempt(&breaker))))
    });
    group.bench_function("retry(no budget)+breaker", |b| {
        b.iter(|| poll_once(unbudgeted.run(None, |_| breaker.call(bare_call()))))
    });
    group.bench_function("retry+breaker(count window)", |b| {
        b.iter(|| poll_once(policy.run(None, |_| rate_breaker.call(bare_call()))))
    });
    group.finish();

    // For scale: the cost of a rejection while open (no call is made).
    let open = CircuitBreaker::new(BreakerConfig::default());
    open.isolate();
    let tripped = CircuitBreaker::new(
        BreakerConfig::builder()
            .consecutive_failures(NonZeroU32::new(1).expect("not zero"))
            .break_duration(Duration::from_secs(3600))
            .build()
            .expect("valid breaker"),
    );
    tripped
        .try_acquire()
        .expect("closed")
        .failure(Duration::ZERO);
    let mut group = c.benchmark_group("resilience/rejection");
    group.bench_function("open", |b| {
        b.iter(|| std::hint::black_box(tripped.try_acquire().is_err()))
    });
    group.bench_function("isolated", |b| {
        b.iter(|| std::hint::black_box(open.try_acquire().is_err()))
    });
    group.finish();
}

/// Criterion measures each variant in its own time slot, so on a shared,
/// loaded machine a slot that loses the CPU more often looks slower. This
/// measures the bare call and each variant in alternating short batches and
/// reports the median of each, which preemption cannot skew much: the added
/// cost is the difference of two medians taken over the same moments.
///
/// It runs under `cargo bench` when no filter excludes "interleaved", and as
/// a short smoke run under `cargo test --benches`.
#[allow(clippy::print_stdout, reason = "a benchmark reports its figures")]
fn interleaved(_c: &mut Criterion) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let benchmarking = args.iter().any(|arg| arg == "--bench");
    let filtered_out = args
        .iter()
        .filter(|arg| !arg.starts_with('-'))
        .any(|filter| !"resilience/interleaved".contains(filter.as_str()));
    if benchmarking && filtered_out {
        return;
    }
    let (batch_calls, rounds): (u32, usize) = if benchmarking { (20_000, 301) } else { (10, 3) };

    let policy = RetryPolicy::builder().build().expect("default policy");
    let unbudgeted = RetryPolicy::builder()
        .unlimited_budget()
        .build()
        .expect("valid policy");
    let breaker = CircuitBreaker::new(BreakerConfig::default());
    let batch = |f: &dyn Fn() -> u64| {
        let started = std::time::Instant::now();
        for _ in 0..batch_calls {
            std::hint::black_box(f());
        }
        started.elapsed().as_secs_f64() * 1e9 / f64::from(batch_calls)
    };
    let bare = || poll_once(bare_call()).unwrap_or(0);
    let permit = || {
        let permit = breaker.try_acquire().expect("closed");
        let result = poll_once(bare_call());
        permit.record_result(&result, Duration::ZERO);
        result.unwrap_or(0)
    };
    let call = || poll_once(breaker.call(bare_call())).unwrap_or(0);
    let retry = || poll_once(policy.run(None, |_| bare_call())).unwrap_or(0);
    let both = || poll_once(policy.run(None, |_| breaker.call(bare_call()))).unwrap_or(0);
    let unbudgeted_both =
        || poll_once(unbudgeted.run(None, |_| breaker.call(bare_call()))).unwrap_or(0);
    let retry_permit = || poll_once(policy.run(None, |_| permit_attempt(&breaker))).unwrap_or(0);
    let variants: [(&str, &dyn Fn() -> u64); 6] = [
        ("breaker permit", &permit),
        ("breaker", &call),
        ("retry", &retry),
        ("retry+breaker", &both),
        ("retry+breaker permit", &retry_permit),
        ("retry(no budget)+breaker", &unbudgeted_both),
    ];
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    for (name, variant) in variants {
        let (mut base, mut with) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
        for _ in 0..rounds {
            base.push(batch(&bare));
            with.push(batch(variant));
        }
        let (base, with) = (median(base), median(with));
        println!(
            "resilience/interleaved/{name}: bare {base:.2} ns, with policies {with:.2} ns, \
             added {:.2} ns, ratio {:.1}x",
            with - base,
            with / base
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3));
    targets = closed_success, interleaved
}
criterion_main!(benches);
