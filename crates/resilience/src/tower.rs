//! tower `Layer`s for the retry policy, the circuit breaker and the
//! bulkhead, so the policies compose with axum, tonic and any tower stack.
//!
//! The services box their futures (one allocation per call); the
//! allocation-free path is the permit API, which the bridge uses directly.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service};

use crate::{Bulkhead, CallError, CircuitBreaker, Classify, Error, RetryError, RetryPolicy};

/// The boxed future of the services in this module.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Retries requests with a [`RetryPolicy`]. The request must be `Clone`
/// (each attempt sends a copy) and so must the inner service (each attempt
/// waits for readiness on its own copy).
#[derive(Debug, Clone)]
pub struct RetryLayer {
    policy: RetryPolicy,
    timeout: Option<Duration>,
}

impl RetryLayer {
    /// Retries with `policy`, without a deadline.
    #[must_use]
    pub fn new(policy: RetryPolicy) -> Self {
        RetryLayer {
            policy,
            timeout: None,
        }
    }

    /// Gives every request a deadline `total` after it arrives; no retry
    /// starts that would begin after it.
    #[must_use]
    pub fn with_deadline_after(mut self, total: Duration) -> Self {
        self.timeout = Some(total);
        self
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = RetryService<S>;

    fn layer(&self, inner: S) -> RetryService<S> {
        RetryService {
            inner,
            policy: self.policy.clone(),
            timeout: self.timeout,
        }
    }
}

/// The service of a [`RetryLayer`].
#[derive(Debug, Clone)]
pub struct RetryService<S> {
    inner: S,
    policy: RetryPolicy,
    timeout: Option<Duration>,
}

impl<S, Req> Service<Req> for RetryService<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Classify + fmt::Display + Send,
    Req: Clone + Send + 'static,
{
    type Response = S::Response;
    type Error = RetryError<S::Error>;
    type Future = BoxFuture<Result<S::Response, RetryError<S::Error>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Each attempt waits for readiness on its own clone of the service.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let policy = self.policy.clone();
        let service = self.inner.clone();
        let deadline = self.timeout.map(|total| Instant::now() + total);
        Box::pin(async move {
            policy
                .run(deadline, move |_attempt| {
                    let mut service = service.clone();
                    let request = request.clone();
                    async move {
                        poll_fn(|cx| service.poll_ready(cx)).await?;
                        service.call(request).await
                    }
                })
                .await
        })
    }
}

/// Guards a service with a [`CircuitBreaker`]: a rejected request fails at
/// once without reaching the service, and every result is recorded.
#[derive(Debug, Clone)]
pub struct BreakerLayer {
    breaker: CircuitBreaker,
}

impl BreakerLayer {
    /// Guards with `breaker` (every service this layer wraps shares it).
    #[must_use]
    pub fn new(breaker: CircuitBreaker) -> Self {
        BreakerLayer { breaker }
    }
}

impl<S> Layer<S> for BreakerLayer {
    type Service = BreakerService<S>;

    fn layer(&self, inner: S) -> BreakerService<S> {
        BreakerService {
            inner,
            breaker: self.breaker.clone(),
        }
    }
}

/// The service of a [`BreakerLayer`].
#[derive(Debug, Clone)]
pub struct BreakerService<S> {
    inner: S,
    breaker: CircuitBreaker,
}

impl<S, Req> Service<Req> for BreakerService<S>
where
    S: Service<Req>,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Classify + Send + 'static,
{
    type Response = S::Response;
    type Error = CallError<S::Error>;
    type Future = BoxFuture<Result<S::Response, CallError<S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(CallError::Inner)
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let permit = match self.breaker.try_acquire_owned() {
            Ok(permit) => permit,
            Err(rejected) => {
                return Box::pin(std::future::ready(Err(CallError::Policy(Error::Rejected(
                    rejected,
                )))));
            }
        };
        let future = self.inner.call(request);
        Box::pin(async move {
            let started = Instant::now();
            let result = future.await;
            permit.record_result(&result, started.elapsed());
            result.map_err(CallError::Inner)
        })
    }
}

/// Limits a service's concurrency with a [`Bulkhead`]; a request that finds
/// the bulkhead and its queue full fails at once.
#[derive(Debug, Clone)]
pub struct BulkheadLayer {
    bulkhead: Bulkhead,
}

impl BulkheadLayer {
    /// Limits with `bulkhead` (every service this layer wraps shares it).
    #[must_use]
    pub fn new(bulkhead: Bulkhead) -> Self {
        BulkheadLayer { bulkhead }
    }
}

impl<S> Layer<S> for BulkheadLayer {
    type Service = BulkheadService<S>;

    fn layer(&self, inner: S) -> BulkheadService<S> {
        BulkheadService {
            inner,
            bulkhead: self.bulkhead.clone(),
        }
    }
}

/// The service of a [`BulkheadLayer`].
#[derive(Debug, Clone)]
pub struct BulkheadService<S> {
    inner: S,
    bulkhead: Bulkhead,
}

impl<S, Req> Service<Req> for BulkheadService<S>
where
    S: Service<Req> + Clone + Send + 'static,
    S::Future: Send,
    S::Response: Send,
    S::Error: Send,
    Req: Send + 'static,
{
    type Response = S::Response;
    type Error = CallError<S::Error>;
    type Future = BoxFuture<Result<S::Response, CallError<S::Error>>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The slot is taken in the call, where waiting for it is bounded by
        // the queue; the inner service's readiness is awaited after that.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Req) -> Self::Future {
        let bulkhead = self.bulkhead.clone();
        let mut service = self.inner.clone();
        Box::pin(async move {
            let _slot = bulkhead.acquire().await.map_err(CallError::Policy)?;
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(CallError::Inner)?;
            service.call(request).await.map_err(CallError::Inner)
        })
    }
}
