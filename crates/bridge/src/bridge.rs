//! The bridge: a cheap handle over the [`Layers`] that
//! [`BridgeBuilder`](crate::BridgeBuilder) assembled, with the call
//! counters and incident memory; the public operations. The call path is
//! in `call.rs`, the classification of a failed attempt in `attempt.rs`.

mod attempt;
mod call;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use pybridge_pool::ShutdownReport;
use pybridge_service::Catalog;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::sync::broadcast;

use crate::assemble::Layers;
use crate::events::BridgeEvent;
use crate::health::{Counters, Health, Stats};
use crate::incidents::Incidents;
use crate::options::{BatchCall, CallOptions, CallRequest, Invalidate, Reply, to_params};
use crate::{Config, Error, Result};

/// A running bridge: the workers, and everything in front of them. Cheap to
/// clone; every clone shares the same workers.
///
/// Dropping the last clone kills every worker; [`Bridge::shutdown`] stops
/// them gracefully instead.
///
/// A bridge is a [`tower::Service`] of [`CallRequest`]s, so middleware one
/// already uses wraps it; here a concurrency limit:
///
/// ```
/// use pybridge::{Bridge, CallRequest, Config};
/// use serde_json::json;
/// use tower::{Service, ServiceBuilder, ServiceExt};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let sdk = concat!(env!("CARGO_MANIFEST_DIR"), "/../../python/pybridge-worker/src");
/// # let mut config = Config::default();
/// # config.worker.command = vec!["python3".into(), "-m".into(), "pybridge_worker".into()];
/// # config.worker.env.insert("PYTHONPATH".into(), sdk.into());
/// # config.pool.min_workers = 1;
/// # config.cache.enabled = false;
/// let bridge = Bridge::from_config(config).await?;
/// let mut service = ServiceBuilder::new()
///     .concurrency_limit(8)
///     .service(bridge.clone());
///
/// let request = CallRequest::json("test.echo", &json!([1, 2]))?;
/// let reply = service.ready().await?.call(request).await?;
/// assert_eq!(reply.result.get(), "[1,2]");
/// bridge.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    layers: Layers,
    counters: Counters,
    incidents: Incidents,
}

impl Bridge {
    pub(crate) fn new(layers: Layers) -> Bridge {
        Bridge {
            inner: Arc::new(Inner {
                layers,
                counters: Counters::default(),
                incidents: Incidents::default(),
            }),
        }
    }

    /// Calls `method` with params given as a JSON value; returns the result as one.
    ///
    /// # Errors
    /// See [`Error`]: the request may be rejected, the worker may answer with
    /// an error, die or time out, the breaker may be open.
    pub async fn call(&self, method: &str, params: serde_json::Value) -> Result<serde_json::Value> {
        let raw = to_params(method, &params)?;
        let reply = self
            .call_with(method, raw.as_deref(), &CallOptions::default())
            .await?;
        serde_json::from_str(reply.result.get()).map_err(|source| Error::DecodeResult {
            method: method.to_string(),
            source,
        })
    }

    /// Calls `method` with raw JSON params and returns the raw result: nothing
    /// is parsed or serialized again on the way unless validation or an
    /// adapter needs it.
    ///
    /// # Errors
    /// As [`Bridge::call`].
    pub async fn call_raw(&self, method: &str, params: Option<&RawValue>) -> Result<Box<RawValue>> {
        Ok(self
            .call_with(method, params, &CallOptions::default())
            .await?
            .result)
    }

    /// Calls `method` with typed params and decodes the result into `T`.
    ///
    /// # Errors
    /// As [`Bridge::call`], plus [`Error::DecodeResult`] when the result does
    /// not fit `T`.
    pub async fn call_as<T: DeserializeOwned, P: Serialize + ?Sized>(
        &self,
        method: &str,
        params: &P,
    ) -> Result<T> {
        let raw = to_params(method, params)?;
        let reply = self
            .call_with(method, raw.as_deref(), &CallOptions::default())
            .await?;
        serde_json::from_str(reply.result.get()).map_err(|source| Error::DecodeResult {
            method: method.to_string(),
            source,
        })
    }

    /// Calls `method` with per-call options; the [`Reply`] also carries the
    /// envelope's metadata, where the result came from, and the correlation id.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use pybridge::config::MethodSettings;
    /// use pybridge::{Bridge, CallOptions, Config, Invalidate, ResultSource};
    /// use serde_json::value::to_raw_value;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let sdk = concat!(env!("CARGO_MANIFEST_DIR"), "/../../python/pybridge-worker/src");
    /// # let mut config = Config::default();
    /// # config.worker.command = vec!["python3".into(), "-m".into(), "pybridge_worker".into()];
    /// # config.worker.env.insert("PYTHONPATH".into(), sdk.into());
    /// # config.pool.min_workers = 1;
    /// config.cache.disk = false;
    /// let mut cached = MethodSettings::default();
    /// cached.cache = Some(true);
    /// config.methods.insert("test.echo".into(), cached);
    /// let bridge = Bridge::from_config(config).await?;
    ///
    /// let params = to_raw_value(&[1, 2])?;
    /// let options = CallOptions::new().timeout(Duration::from_secs(5));
    /// let first = bridge.call_with("test.echo", Some(&params), &options).await?;
    /// assert_eq!(first.source, ResultSource::Worker);
    /// let again = bridge.call_with("test.echo", Some(&params), &options).await?;
    /// assert_eq!((again.source, again.result.get()), (ResultSource::CacheMemory, "[1,2]"));
    ///
    /// bridge.invalidate(Invalidate::Method("test.echo")).await?;
    /// let fresh = bridge.call_with("test.echo", Some(&params), &options).await?;
    /// assert_eq!(fresh.source, ResultSource::Worker);
    /// assert_eq!(bridge.stats().cache_l1_hits, 1);
    /// bridge.shutdown().await;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`Bridge::call`].
    pub async fn call_with(
        &self,
        method: &str,
        params: Option<&RawValue>,
        options: &CallOptions,
    ) -> Result<Reply> {
        let counters = &self.inner.counters;
        counters.call_started();
        let outcome = self.call_inner(method, params, options).await;
        counters.call_ended(outcome.is_ok());
        outcome
    }

    /// Sends a notification: validated like a call, answered by nobody.
    ///
    /// # Errors
    /// [`Error::Rejected`] for bad params, [`Error::Pool`] when no worker can take it.
    pub async fn notify(&self, method: &str, params: Option<&RawValue>) -> Result<()> {
        let prepared = self.prepare(method, params)?;
        self.inner
            .layers
            .pool()
            .notify(prepared.wire_name(), prepared.params())
            .await
            .map_err(|source| Error::Pool {
                method: method.to_string(),
                source,
            })
    }

    /// Runs several calls concurrently; the results come back in order.
    pub async fn batch(&self, calls: Vec<BatchCall>) -> Vec<Result<Reply>> {
        let mut tasks = tokio::task::JoinSet::new();
        let n = calls.len();
        for (index, call) in calls.into_iter().enumerate() {
            let bridge = self.clone();
            tasks.spawn(async move {
                let reply = bridge
                    .call_with(
                        &call.method,
                        call.params.as_deref(),
                        &CallOptions::default(),
                    )
                    .await;
                (index, reply)
            });
        }
        let mut replies: Vec<Option<Result<Reply>>> = (0..n).map(|_| None).collect();
        // A call task never panics by design; if one did, its slot would
        // report the bridge as gone rather than lose the answer.
        while let Some(joined) = tasks.join_next().await {
            if let Ok((index, reply)) = joined {
                replies[index] = Some(reply);
            }
        }
        replies
            .into_iter()
            .map(|r| r.unwrap_or(Err(Error::ShuttingDown)))
            .collect()
    }

    /// The typed API of the SQLite Extensions Framework, over this bridge.
    #[cfg(feature = "framework")]
    pub fn framework(&self) -> pybridge_framework::Framework<Bridge> {
        pybridge_framework::Framework::new(self.clone())
    }

    /// Drops cached results: in this process's memory and disk tiers and,
    /// with a shared tier, from Redis and (published on the deployment's
    /// channel) from every other process's memory and disk tiers. Without a
    /// cache it does nothing.
    ///
    /// # Errors
    /// [`Error::Rejected`] when [`Invalidate::Call`] names a method or params
    /// that a call would be rejected for.
    pub async fn invalidate(&self, what: Invalidate<'_>) -> Result<()> {
        #[cfg(feature = "cache")]
        if let Some(cache) = self.inner.layers.cache() {
            match what {
                Invalidate::Call { method, params } => {
                    let prepared = self.prepare(method, params)?;
                    let text = prepared.params().map_or("null", RawValue::get);
                    // Params the service accepted are JSON, so this keys them
                    // as `fetch_cached` does.
                    if let Ok(key) = cache.key(prepared.wire_name(), text) {
                        cache.invalidate(&key).await;
                    }
                }
                Invalidate::Method(method) => {
                    let catalog = self.catalog();
                    let wire = catalog
                        .resolve(method)
                        .map_or(method, |(spec, _)| spec.wire_name());
                    cache.invalidate_method(wire).await;
                }
                Invalidate::All => cache.invalidate_all().await,
            }
        }
        #[cfg(not(feature = "cache"))]
        let _ = what;
        Ok(())
    }

    /// The pool, breakers and cache, and an overall status.
    pub fn health(&self) -> Health {
        use pybridge_pool::HealthStatus;
        let layers = &self.inner.layers;
        let pool = layers.pool().stats();
        let open_breakers: Vec<_> = layers
            .breakers()
            .map(|registry| {
                registry
                    .states()
                    .into_iter()
                    .filter(|(_, state)| *state != pybridge_resilience::State::Closed)
                    .map(|(name, state)| (name.to_string(), state))
                    .collect()
            })
            .unwrap_or_default();
        #[cfg(feature = "cache")]
        let cache_disk_ok = layers.cache().and_then(|cache| match cache.l2_status() {
            pybridge_cache::L2Status::NotConfigured => None,
            pybridge_cache::L2Status::Disabled(_) => Some(false),
            _ => Some(true),
        });
        #[cfg(not(feature = "cache"))]
        let cache_disk_ok = None;
        #[cfg(feature = "cache")]
        let cache_shared_tier = layers.cache().map_or(
            pybridge_cache::SharedTierStatus::NotConfigured,
            pybridge_cache::Cache::shared_tier_status,
        );
        #[cfg(feature = "cache")]
        let cache_shared_stats = layers
            .cache()
            .map(pybridge_cache::Cache::shared_tier_stats)
            .unwrap_or_default();
        #[cfg(feature = "cache")]
        let shared_off = cache_shared_tier == pybridge_cache::SharedTierStatus::Off;
        #[cfg(not(feature = "cache"))]
        let shared_off = false;
        let mut status = pool.status;
        if status == HealthStatus::Healthy
            && (!open_breakers.is_empty() || cache_disk_ok == Some(false) || shared_off)
        {
            status = HealthStatus::Degraded;
        }
        Health {
            status,
            pool,
            open_breakers,
            cache_disk_ok,
            #[cfg(feature = "cache")]
            cache_shared_tier,
            #[cfg(feature = "cache")]
            cache_shared_stats,
        }
    }

    /// Call counters since the bridge started.
    pub fn stats(&self) -> Stats {
        self.inner.counters.snapshot()
    }

    /// Subscribes to the events of every layer. A subscriber more than 1,024
    /// events behind gets [`BridgeEvent::Lagged`].
    pub fn events(&self) -> broadcast::Receiver<BridgeEvent> {
        self.inner.layers.events().subscribe()
    }

    /// The configuration the bridge runs with.
    pub fn config(&self) -> &Config {
        self.inner.layers.config()
    }

    /// The method registry: every method with its schemas, policies,
    /// availability and where each of its fields came from, for listing and
    /// discovery. Calls go through [`Bridge::call`] and friends, never
    /// around them.
    pub fn catalog(&self) -> &Catalog {
        self.inner.layers.service().catalog()
    }

    /// The worker's manifest (its `$/ready` declaration), when one was sent.
    pub fn manifest(&self) -> Option<Arc<serde_json::Value>> {
        self.inner.layers.pool().manifest()
    }

    /// Kills the process of worker `index` (in [`Health::pool`]'s order)
    /// with SIGKILL, as a crash would; the pool restarts it. Returns
    /// whether there was such a worker to kill. For tests of recovery.
    #[cfg(feature = "test-util")]
    pub fn kill_worker(&self, index: usize) -> bool {
        let pool = self.inner.layers.pool();
        pool.stats()
            .workers
            .get(index)
            .is_some_and(|worker| pool.kill_worker(worker.id))
    }

    /// Shuts down gracefully: new calls fail with a shutting-down error,
    /// in-flight calls finish within `pool.drain_timeout`, workers are stopped
    /// (stdin closed, then SIGTERM, then SIGKILL), and the cache's pending disk
    /// writes are flushed. Bounded by the drain timeout plus twice the exit grace.
    pub async fn shutdown(&self) -> ShutdownReport {
        let _ = self.inner.layers.events().send(BridgeEvent::ShuttingDown);
        let report = self.inner.layers.pool().shutdown().await;
        #[cfg(feature = "cache")]
        if let Some(cache) = self.inner.layers.cache() {
            cache.close().await;
        }
        report
    }
}

impl pybridge_service::Call for Bridge {
    type Error = Error;

    async fn call(&self, method: &str, params: Box<RawValue>) -> Result<Box<RawValue>> {
        self.call_raw(method, Some(&params)).await
    }
}

/// A [`Bridge`] is a `tower` service of calls, so tower middleware composes
/// with it. It is always ready: admission (the pool's bounded queue, the
/// breakers) happens inside the call, whose failure is a typed [`Error`]
/// such as [`ErrorKind::QueueFull`](crate::ErrorKind::QueueFull). To shed
/// load before a call starts, put tower's `load_shed` over a
/// `concurrency_limit` (or a rate limit), whose readiness it reads.
impl tower::Service<CallRequest> for Bridge {
    type Response = Reply;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Reply>> + Send + 'static>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: CallRequest) -> Self::Future {
        let bridge = self.clone();
        Box::pin(async move {
            bridge
                .call_with(&request.method, request.params.as_deref(), &request.options)
                .await
        })
    }
}
