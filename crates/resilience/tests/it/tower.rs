//! The tower layers compose the policies around any service.

use std::future::{Ready, poll_fn, ready};
use std::num::NonZeroUsize;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use pybridge_resilience::tower::{BreakerLayer, BulkheadLayer, RetryLayer};
use pybridge_resilience::{
    Backoff, Bulkhead, CallError, Error, Jitter, RetryPolicy, State, StopReason,
};
use tower::{Layer, Service};

use crate::support::{TestError, breaker, consecutive, ms};

/// Fails its first `failures` calls with `error`, then echoes the request.
#[derive(Clone)]
struct Flaky {
    calls: Arc<AtomicU32>,
    failures: u32,
    error: TestError,
}

impl Flaky {
    fn new(failures: u32, error: TestError) -> Self {
        Flaky {
            calls: Arc::new(AtomicU32::new(0)),
            failures,
            error,
        }
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Service<u32> for Flaky {
    type Response = u32;
    type Error = TestError;
    type Future = Ready<Result<u32, TestError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), TestError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u32) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        ready(if n < self.failures {
            Err(self.error.clone())
        } else {
            Ok(request)
        })
    }
}

/// Takes `delay` to answer.
#[derive(Clone)]
struct Slow {
    delay: Duration,
}

impl Service<u32> for Slow {
    type Response = u32;
    type Error = TestError;
    type Future = Pin<Box<dyn std::future::Future<Output = Result<u32, TestError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), TestError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: u32) -> Self::Future {
        let delay = self.delay;
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            Ok(request)
        })
    }
}

async fn send<S: Service<u32>>(service: &mut S, request: u32) -> Result<S::Response, S::Error> {
    poll_fn(|cx| service.poll_ready(cx)).await?;
    service.call(request).await
}

fn retry_policy(max_retries: u32) -> RetryPolicy {
    RetryPolicy::builder()
        .max_retries(max_retries)
        .backoff(Backoff::constant(ms(10)))
        .jitter(Jitter::None)
        .unlimited_budget()
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_retries_retryable_errors() {
    let inner = Flaky::new(2, TestError::Transient(0));
    let mut service = RetryLayer::new(retry_policy(3)).layer(inner.clone());
    assert_eq!(send(&mut service, 7).await.unwrap(), 7);
    assert_eq!(inner.calls(), 3);

    let fatal = Flaky::new(5, TestError::Fatal);
    let mut service = RetryLayer::new(retry_policy(3)).layer(fatal.clone());
    let error = send(&mut service, 7).await.unwrap_err();
    assert_eq!(error.reason(), StopReason::NotRetryable);
    assert_eq!(fatal.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_retry_layer_stops_at_its_deadline() {
    let inner = Flaky::new(100, TestError::Transient(0));
    let mut service = RetryLayer::new(retry_policy(50))
        .with_deadline_after(ms(35))
        .layer(inner.clone());
    let error = send(&mut service, 1).await.unwrap_err();
    assert!(matches!(
        error.reason(),
        StopReason::DeadlineExceeded { .. }
    ));
    assert_eq!(inner.calls(), 4, "attempts at 0, 10, 20 and 30 ms");
}

#[tokio::test(start_paused = true)]
async fn the_breaker_layer_rejects_without_calling_the_service() {
    let breaker = breaker(consecutive(2));
    let inner = Flaky::new(100, TestError::Fatal);
    let mut service = BreakerLayer::new(breaker.clone()).layer(inner.clone());
    for _ in 0..2 {
        let error = send(&mut service, 1).await.unwrap_err();
        assert!(matches!(error, CallError::Inner(TestError::Fatal)));
    }
    assert_eq!(breaker.state(), State::Open);
    let error = send(&mut service, 1).await.unwrap_err();
    assert!(matches!(error, CallError::Policy(Error::Rejected(_))));
    assert_eq!(inner.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_around_breaker_stops_at_the_rejection() {
    let breaker = breaker(consecutive(2));
    let inner = Flaky::new(100, TestError::Transient(0));
    let guarded = BreakerLayer::new(breaker.clone()).layer(inner.clone());
    let mut service = RetryLayer::new(retry_policy(10)).layer(guarded);
    let error = send(&mut service, 1).await.unwrap_err();
    assert_eq!(
        error.attempts(),
        3,
        "two failures open the breaker, the third is rejected"
    );
    assert_eq!(error.reason(), StopReason::NotRetryable);
    assert_eq!(inner.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_bulkhead_layer_limits_concurrency() {
    let bulkhead = Bulkhead::builder()
        .max_concurrent(NonZeroUsize::new(1).unwrap())
        .max_queued(0)
        .build()
        .unwrap();
    let layer = BulkheadLayer::new(bulkhead);
    let mut first = layer.layer(Slow { delay: ms(50) });
    let mut second = first.clone();
    let running = tokio::spawn(async move { send(&mut first, 1).await });
    tokio::task::yield_now().await;
    let rejected = send(&mut second, 2).await.unwrap_err();
    assert!(matches!(
        rejected,
        CallError::Policy(Error::BulkheadFull { .. })
    ));
    assert_eq!(running.await.unwrap().unwrap(), 1);
    assert_eq!(
        send(&mut second, 3).await.unwrap(),
        3,
        "the slot is free again"
    );
}
