//! The bridge: builds the layers from a [`Config`] and runs every call along
//! the path ARCHITECTURE.md describes: catalog, limits and validation, cache with
//! single-flight, the method's breaker inside each retry attempt, the pool,
//! and the adapters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pybridge_pool::{Pool, RequestId, ShutdownReport, WorkerSpec};
use pybridge_resilience::{BreakerRegistry, Classify, Outcome, RetryHint, RetryPolicy, StopReason};
use pybridge_service::telemetry::{self, CallGuard};
use pybridge_service::{MethodSpec, Service};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;
use tracing::Instrument;

use crate::assemble::Parts;
use crate::events::BridgeEvent;
use crate::health::{Health, Stats};
use crate::incidents::{Incident, Incidents};
use crate::{Config, Error, Result};

/// A running bridge: the workers, and everything in front of them. Cheap to
/// clone; every clone shares the same workers.
///
/// Dropping the last clone kills every worker; [`Bridge::shutdown`] stops
/// them gracefully instead.
#[derive(Debug, Clone)]
pub struct Bridge {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) service: Service,
    pub(crate) pool: Pool,
    #[cfg(feature = "cache")]
    pub(crate) cache: Option<pybridge_cache::Cache>,
    pub(crate) breakers: Option<BreakerRegistry>,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) events: Arc<broadcast::Sender<BridgeEvent>>,
    pub(crate) _forwarders: Vec<AbortOnDropHandle<()>>,
    pub(crate) counters: Counters,
    pub(crate) incidents: Incidents,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    calls: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    l1: AtomicU64,
    l2: AtomicU64,
    shared: AtomicU64,
    misses: AtomicU64,
}

/// Options for one call. The defaults come from the catalog and the configuration.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CallOptions {
    /// The time the call may take, instead of the method's timeout.
    pub timeout: Option<Duration>,
    /// An absolute deadline; wins over `timeout`.
    pub deadline: Option<Instant>,
    /// Skip the cache: neither read nor write it.
    pub no_cache: bool,
    /// Make one attempt only.
    pub no_retry: bool,
}

impl CallOptions {
    /// The defaults.
    pub fn new() -> CallOptions {
        CallOptions::default()
    }

    /// Sets the time the call may take.
    pub fn timeout(mut self, timeout: Duration) -> CallOptions {
        self.timeout = Some(timeout);
        self
    }

    /// Sets an absolute deadline.
    pub fn deadline(mut self, deadline: Instant) -> CallOptions {
        self.deadline = Some(deadline);
        self
    }

    /// Skips the cache.
    pub fn no_cache(mut self) -> CallOptions {
        self.no_cache = true;
        self
    }

    /// Makes one attempt only.
    pub fn no_retry(mut self) -> CallOptions {
        self.no_retry = true;
        self
    }
}

/// Where a result came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResultSource {
    /// A worker answered.
    Worker,
    /// The memory tier of the cache.
    CacheMemory,
    /// The disk tier of the cache.
    CacheDisk,
    /// The shared tier of the cache (Redis): another process computed it.
    CacheShared,
}

/// What [`Bridge::invalidate`] drops from the cache.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum Invalidate<'a> {
    /// The cached result of one call: a method (public name or alias) and
    /// its params, keyed exactly as the call would be.
    Call {
        /// The method, as a caller names it.
        method: &'a str,
        /// Its params, as a caller passes them.
        params: Option<&'a RawValue>,
    },
    /// Every cached result of a method (public name or alias).
    Method(&'a str),
    /// Every cached result.
    All,
}

/// A call's result, with what the worker said about it.
#[derive(Debug)]
#[non_exhaustive]
pub struct Reply {
    /// The result, unwrapped from its envelope and adapted.
    pub result: Box<RawValue>,
    /// The envelope's metadata, when the worker sent one.
    pub metadata: Option<Box<RawValue>>,
    /// Where the result came from.
    pub source: ResultSource,
    /// The call's correlation id: the id of its first request on the wire,
    /// also in its span and logs.
    pub correlation_id: i64,
}

/// One call of a [`Bridge::batch`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BatchCall {
    /// The method.
    pub method: String,
    /// Its params.
    pub params: Option<Box<RawValue>>,
}

impl BatchCall {
    /// A call of `method` with raw params.
    pub fn new(method: impl Into<String>, params: Option<Box<RawValue>>) -> BatchCall {
        BatchCall {
            method: method.into(),
            params,
        }
    }
}

/// Builds a [`Bridge`].
#[derive(Debug, Default)]
pub struct BridgeBuilder {
    config: Config,
    worker: Option<WorkerSpec>,
}

impl BridgeBuilder {
    /// Uses this configuration (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> BridgeBuilder {
        self.config = config;
        self
    }

    /// Runs this worker instead of `worker.command` from the configuration.
    /// Its framing, handshake, startup timeout and frame limit are taken from
    /// the spec, not the configuration.
    pub fn worker(mut self, spec: WorkerSpec) -> BridgeBuilder {
        self.worker = Some(spec);
        self
    }

    /// Validates the configuration, builds every layer and starts the workers.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration, [`Error::NoWorker`]
    /// without a worker command, [`Error::Build`] when the catalog, cache or
    /// policies cannot be built, and [`Error::Start`] when no worker starts.
    pub async fn build(self) -> Result<Bridge> {
        // Reading catalog files and compiling schemas blocks; keep it off
        // the runtime's threads.
        let (config, worker) = (self.config, self.worker);
        let parts = tokio::task::spawn_blocking(move || Parts::new(config, worker))
            .await
            .map_err(|err| Error::Build {
                part: "bridge parts (the builder task failed)",
                source: Box::new(err),
            })??;
        let inner = parts.start().await?;
        Ok(Bridge {
            inner: Arc::new(inner),
        })
    }
}

/// The error of one attempt, with what the retry policy needs to know.
#[derive(Debug)]
struct Attempt {
    error: Error,
    /// Whether the method may run twice.
    idempotent: bool,
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.error.report())
    }
}

/// What a worker's error data says about retrying.
#[derive(serde::Deserialize)]
struct RemoteHint {
    #[serde(default)]
    recoverable: bool,
    #[serde(default)]
    retry_after_ms: Option<u64>,
}

impl Attempt {
    /// What happened to the worker that failed this attempt, if the worker
    /// and not the request is to blame.
    fn incident(&self) -> Option<Incident> {
        use pybridge_pool::{Error as P, TimeoutStage};
        match &self.error {
            Error::Pool {
                source: P::WorkerFailed { failure, .. },
                ..
            } => Some(Incident::Death(failure.worker)),
            Error::Pool {
                source:
                    P::Timeout {
                        stage: TimeoutStage::InFlight,
                        worker: Some(worker),
                        ..
                    },
                ..
            } => Some(Incident::Timeout(*worker)),
            _ => None,
        }
    }
}

impl Classify for Attempt {
    fn retry_hint(&self) -> RetryHint {
        use pybridge_pool::Error as P;
        let Error::Pool { source, .. } = &self.error else {
            return RetryHint::No;
        };
        // Sending again is safe only if the worker never saw the request, or
        // running the method twice does no harm.
        let safe = self.idempotent || source.not_processed();
        match source {
            P::Remote { error, .. } => {
                let hint = error.data_as::<RemoteHint>().and_then(Result::ok);
                match hint {
                    Some(h) if h.recoverable && self.idempotent => match h.retry_after_ms {
                        Some(ms) => RetryHint::After(Duration::from_millis(ms)),
                        None => RetryHint::Yes,
                    },
                    _ => RetryHint::No,
                }
            }
            other if other.is_retryable() && safe => RetryHint::Yes,
            _ => RetryHint::No,
        }
    }

    fn is_dependency_failure(&self) -> bool {
        use pybridge_pool::{Error as P, TimeoutStage};
        use pybridge_protocol::ErrorCode;
        match &self.error {
            Error::Pool { source, .. } => match source {
                // The worker failed at its job.
                P::WorkerFailed { .. } | P::ResponseTooLarge { .. } | P::Unavailable { .. } => true,
                P::Timeout { stage, .. } => *stage == TimeoutStage::InFlight,
                // An answer that blames the request is no sign of a sick worker.
                P::Remote { error, .. } => !matches!(
                    error.code,
                    ErrorCode::INVALID_PARAMS
                        | ErrorCode::METHOD_NOT_FOUND
                        | ErrorCode::INVALID_REQUEST
                ),
                // Queue full, shutting down: local conditions, not the worker's fault.
                _ => false,
            },
            _ => false,
        }
    }
}

impl Bridge {
    /// A builder.
    pub fn builder() -> BridgeBuilder {
        BridgeBuilder::default()
    }

    /// Builds and starts a bridge from a configuration whose `worker.command`
    /// names the worker.
    ///
    /// # Errors
    /// As [`BridgeBuilder::build`].
    pub async fn from_config(config: Config) -> Result<Bridge> {
        Bridge::builder().config(config).build().await
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
    /// # Errors
    /// As [`Bridge::call`].
    pub async fn call_with(
        &self,
        method: &str,
        params: Option<&RawValue>,
        options: &CallOptions,
    ) -> Result<Reply> {
        let inner = &*self.inner;
        inner.counters.calls.fetch_add(1, Ordering::Relaxed);
        let outcome = self.call_inner(method, params, options).await;
        let counter = if outcome.is_ok() {
            &inner.counters.succeeded
        } else {
            &inner.counters.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        outcome
    }

    async fn call_inner(
        &self,
        method: &str,
        params: Option<&RawValue>,
        options: &CallOptions,
    ) -> Result<Reply> {
        let inner = &*self.inner;
        let prepared = self.prepare(method, params)?;
        let spec = Arc::clone(prepared.spec());
        let wire_params = prepared.params();
        let id = inner.pool.reserve_id();
        let span = open_call_span(id.get(), spec.name(), spec.wire_name());
        let guard = CallGuard::start(spec.metric_label().to_string());
        let deadline = options.deadline.unwrap_or_else(|| {
            let timeout = options
                .timeout
                .or(spec.timeout())
                .unwrap_or(inner.config.call.timeout);
            Instant::now() + timeout
        });
        let call =
            async {
                let (raw, source) = self
                    .fetch(&spec, wire_params, id, deadline, options)
                    .await?;
                if !spec.idempotent() {
                    self.invalidate_family(&spec).await;
                }
                let adapted = inner.service.adapt_result(&spec, raw).map_err(|source| {
                    Error::InvalidResult {
                        method: method.to_string(),
                        source,
                    }
                })?;
                Ok(Reply {
                    result: adapted.result,
                    metadata: adapted.metadata,
                    source,
                    correlation_id: id.get(),
                })
            }
            .instrument(span.clone())
            .await;
        let call = call.map_err(|err| self.with_suggestions(method, err));
        let outcome = match &call {
            Ok(_) => telemetry::Outcome::Ok,
            Err(e) => outcome_of(e),
        };
        span.record(telemetry::fields::OUTCOME, outcome.as_str());
        if let Err(e) = &call {
            telemetry::record_error(&span, e.code());
        }
        guard.finish(outcome);
        call
    }

    /// A worker that does not know the method (its -32601) keeps its
    /// message and data; the registry's closest names join the data, as
    /// `suggestions`, when the data is an object or absent.
    fn with_suggestions(&self, method: &str, err: Error) -> Error {
        use pybridge_pool::Error as P;
        use pybridge_protocol::ErrorCode;
        let Error::Pool {
            method: called,
            source: P::Remote { worker, error },
        } = err
        else {
            return err;
        };
        let suggestions = if error.code == ErrorCode::METHOD_NOT_FOUND {
            self.inner.service.catalog().suggest(method)
        } else {
            Vec::new()
        };
        let mut data = match error.data_as::<serde_json::Value>() {
            None => Some(serde_json::Map::new()),
            Some(Ok(serde_json::Value::Object(map))) => Some(map),
            Some(_) => None,
        };
        let error = match data.as_mut() {
            Some(map) if !suggestions.is_empty() => {
                map.insert("suggestions".into(), suggestions.into());
                error.clone().with_data(map).unwrap_or(error)
            }
            _ => error,
        };
        Error::Pool {
            method: called,
            source: P::Remote { worker, error },
        }
    }

    /// The catalog, the limits and the schema: a bad request ends here.
    fn prepare<'a>(
        &self,
        method: &str,
        params: Option<&'a RawValue>,
    ) -> Result<pybridge_service::Prepared<'a>> {
        self.inner
            .service
            .prepare(method, params)
            .map_err(|source| Error::Rejected {
                method: method.to_string(),
                source,
            })
    }

    /// The cache in front of the worker, when the method's policy allows.
    async fn fetch(
        &self,
        spec: &Arc<MethodSpec>,
        params: Option<&RawValue>,
        id: RequestId,
        deadline: Instant,
        options: &CallOptions,
    ) -> Result<(Box<RawValue>, ResultSource)> {
        #[cfg(feature = "cache")]
        if let Some(cache) = &self.inner.cache
            && !options.no_cache
            && spec.cache().enabled
        {
            return self
                .fetch_cached(cache, spec, params, id, deadline, options)
                .await;
        }
        let raw = self.execute(spec, params, id, deadline, options).await?;
        Ok((raw, ResultSource::Worker))
    }

    #[cfg(feature = "cache")]
    async fn fetch_cached(
        &self,
        cache: &pybridge_cache::Cache,
        spec: &Arc<MethodSpec>,
        params: Option<&RawValue>,
        id: RequestId,
        deadline: Instant,
        options: &CallOptions,
    ) -> Result<(Box<RawValue>, ResultSource)> {
        use pybridge_cache::{LoadError, Source};
        use telemetry::CacheTier;
        let counters = &self.inner.counters;
        let key = match cache.key(spec.wire_name(), params.map_or("null", RawValue::get)) {
            Ok(key) => key,
            Err(err) => {
                // Params the service accepted are JSON; if the cache still
                // cannot key them, the call goes on uncached.
                tracing::warn!(method = spec.name(), error = %err, "cannot build a cache key; not caching");
                let raw = self.execute(spec, params, id, deadline, options).await?;
                return Ok((raw, ResultSource::Worker));
            }
        };
        let policy = cache_policy(spec, &self.inner.config);
        let fetched = cache
            .get_or_load(&key, &policy, deadline, || async {
                let raw = self.execute(spec, params, id, deadline, options).await?;
                let text: Box<str> = raw.into();
                Ok::<_, Error>(bytes::Bytes::from(String::from(text)))
            })
            .await
            .map_err(|err| match err {
                LoadError::Loader(shared) => Arc::try_unwrap(shared).unwrap_or_else(Error::Shared),
                // The cache ended this call at its deadline, mostly while it
                // waited on another call's load of the same key; a load of its
                // own is normally ended first by the pool, with its own stage.
                LoadError::DeadlineExceeded { elapsed, .. } => Error::Pool {
                    method: spec.name().to_string(),
                    source: pybridge_pool::Error::Timeout {
                        elapsed,
                        stage: pybridge_pool::TimeoutStage::Queued,
                        worker: None,
                    },
                },
            })?;
        let (tier, source) = match fetched.source {
            Source::L1 => (CacheTier::L1, ResultSource::CacheMemory),
            Source::L2 => (CacheTier::L2, ResultSource::CacheDisk),
            Source::Shared => (CacheTier::Shared, ResultSource::CacheShared),
            _ => (CacheTier::Miss, ResultSource::Worker),
        };
        let counter = match tier {
            CacheTier::L1 => &counters.l1,
            CacheTier::L2 => &counters.l2,
            CacheTier::Shared => &counters.shared,
            _ => &counters.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::Span::current().record(telemetry::fields::CACHE_TIER, tier.as_str());
        telemetry::record_cache(spec.metric_label(), tier);
        let text = String::from_utf8(fetched.value.to_vec()).ok();
        let raw = text
            .and_then(|t| RawValue::from_string(t).ok())
            .ok_or_else(|| Error::DecodeResult {
                method: spec.name().to_string(),
                source: serde::de::Error::custom("a cached result is not JSON"),
            })?;
        Ok((raw, source))
    }

    /// A successful write (a method that is not idempotent) drops the
    /// cached reads the service's invalidation rules say it made stale (the
    /// framework's: its family's reads).
    async fn invalidate_family(&self, spec: &MethodSpec) {
        #[cfg(feature = "cache")]
        if let Some(cache) = &self.inner.cache {
            // One invalidation for all of them: another gateway that has
            // applied it has dropped every one of these reads, never some.
            let stale = self.inner.service.stale_after(spec);
            cache
                .invalidate_methods(stale.iter().map(|read| read.wire_name()))
                .await;
        }
        #[cfg(not(feature = "cache"))]
        let _ = spec;
    }

    /// The method's breaker inside each retry attempt, around the pool.
    async fn execute(
        &self,
        spec: &Arc<MethodSpec>,
        params: Option<&RawValue>,
        first_id: RequestId,
        deadline: Instant,
        options: &CallOptions,
    ) -> Result<Box<RawValue>> {
        let inner = &*self.inner;
        let breaker = match &inner.breakers {
            Some(registry) => match registry.get(spec.name()) {
                Ok(breaker) => Some(breaker),
                Err(err) => {
                    // A full registry must not fail calls; this method runs unguarded.
                    tracing::warn!(method = spec.name(), error = %err, "no breaker for method");
                    None
                }
            },
            None => None,
        };
        // Attempt and round-trip spans only for a traced call: one left out
        // by sampling pays for none (the call's span keeps its fields).
        let child_spans = traced(&tracing::Span::current());
        let attempt = |n: u32| {
            let breaker = breaker.clone();
            let id = if n == 1 {
                first_id
            } else {
                inner.pool.reserve_id()
            };
            // Recorded on the call's span: in the end, the attempts made.
            tracing::Span::current().record(telemetry::fields::ATTEMPT, n);
            let span = if child_spans {
                telemetry::attempt_span(n, id.get())
            } else {
                tracing::Span::none()
            };
            if let Some(b) = &breaker {
                span.record(telemetry::fields::BREAKER, b.state().as_str());
            }
            let run = async move {
                let permit = match &breaker {
                    Some(b) => Some(b.try_acquire_owned().map_err(|rejected| Attempt {
                        error: Error::CircuitOpen {
                            method: spec.name().to_string(),
                            retry_after: rejected.retry_after(),
                            source: rejected,
                        },
                        idempotent: spec.idempotent(),
                    })?),
                    None => None,
                };
                let started = Instant::now();
                let attempt_deadline = match inner.config.call.attempt_timeout {
                    Some(limit) => deadline.min(started + limit),
                    None => deadline,
                };
                let worker_span = if child_spans {
                    telemetry::worker_span(id.get(), spec.wire_name())
                } else {
                    tracing::Span::none()
                };
                let result = self
                    .send(&worker_span, id, spec.wire_name(), params, attempt_deadline)
                    .instrument(worker_span.clone())
                    .await;
                let result = result.map_err(|source| Attempt {
                    error: Error::Pool {
                        method: spec.name().to_string(),
                        source,
                    },
                    idempotent: spec.idempotent(),
                });
                if let Err(failed) = &result {
                    telemetry::record_error(&worker_span, failed.error.code());
                }
                if let Some(permit) = permit {
                    let outcome = match &result {
                        Ok(_) => Outcome::Success,
                        Err(e) if e.is_dependency_failure() => match e.incident() {
                            Some(i) if !inner.incidents.first(spec.name(), i) => Outcome::Ignored,
                            _ => Outcome::Failure,
                        },
                        Err(_) => Outcome::Ignored,
                    };
                    permit.record(outcome, started.elapsed());
                }
                result
            };
            async move {
                let result = run.instrument(span.clone()).await;
                if let Err(failed) = &result {
                    telemetry::record_error(&span, failed.error.code());
                }
                result
            }
        };
        let policy = inner.retry.as_ref().filter(|_| !options.no_retry);
        let Some(policy) = policy else {
            return attempt(1).await.map_err(|a| a.error);
        };
        let retries = &inner.counters.retries;
        policy
            .run_with_hook(Some(deadline), attempt, |_| {
                retries.fetch_add(1, Ordering::Relaxed);
            })
            .await
            .map_err(|err| {
                let (reason, attempts) = (err.reason(), err.attempts());
                let last = err.into_last_error().error;
                if matches!(reason, StopReason::DeadlineExceeded { .. }) && attempts > 1 {
                    Error::DeadlineExceeded {
                        method: spec.name().to_string(),
                        attempts,
                        last: Box::new(last),
                    }
                } else {
                    last
                }
            })
    }

    /// One request to a worker, carrying the trace context of `span` (the
    /// round trip's) in `_meta` when the `otel` feature traces it.
    async fn send(
        &self,
        span: &tracing::Span,
        id: RequestId,
        wire_method: &str,
        params: Option<&RawValue>,
        deadline: Instant,
    ) -> pybridge_pool::Result<Box<RawValue>> {
        let pool = &self.inner.pool;
        #[cfg(feature = "otel")]
        if let Some(wire) = crate::otel::WireContext::of(span) {
            let meta = wire.meta();
            return pool
                .call_with_meta(id, wire_method, params, deadline, Some(&meta))
                .await;
        }
        #[cfg(not(feature = "otel"))]
        let _ = span;
        pool.call_with_id(id, wire_method, params, deadline).await
    }

    /// Sends a notification: validated like a call, answered by nobody.
    ///
    /// # Errors
    /// [`Error::Rejected`] for bad params, [`Error::Pool`] when no worker can take it.
    pub async fn notify(&self, method: &str, params: Option<&RawValue>) -> Result<()> {
        let prepared = self.prepare(method, params)?;
        self.inner
            .pool
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
        if let Some(cache) = &self.inner.cache {
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
                    let catalog = self.inner.service.catalog();
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
        let inner = &*self.inner;
        let pool = inner.pool.stats();
        let open_breakers: Vec<_> = inner
            .breakers
            .as_ref()
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
        let cache_disk_ok = inner
            .cache
            .as_ref()
            .and_then(|cache| match cache.l2_status() {
                pybridge_cache::L2Status::NotConfigured => None,
                pybridge_cache::L2Status::Disabled(_) => Some(false),
                _ => Some(true),
            });
        #[cfg(not(feature = "cache"))]
        let cache_disk_ok = None;
        #[cfg(feature = "cache")]
        let cache_shared_tier = inner.cache.as_ref().map_or(
            pybridge_cache::SharedTierStatus::NotConfigured,
            pybridge_cache::Cache::shared_tier_status,
        );
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
        }
    }

    /// Call counters since the bridge started.
    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            calls: get(&c.calls),
            succeeded: get(&c.succeeded),
            failed: get(&c.failed),
            retries: get(&c.retries),
            cache_l1_hits: get(&c.l1),
            cache_l2_hits: get(&c.l2),
            cache_shared_hits: get(&c.shared),
            cache_misses: get(&c.misses),
        }
    }

    /// Subscribes to the events of every layer. A subscriber more than 1,024
    /// events behind gets [`BridgeEvent::Lagged`].
    pub fn events(&self) -> broadcast::Receiver<BridgeEvent> {
        self.inner.events.subscribe()
    }

    /// The configuration the bridge runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The catalog and validation in front of the workers.
    pub fn service(&self) -> &Service {
        &self.inner.service
    }

    /// The worker pool.
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The cache, when one is configured.
    #[cfg(feature = "cache")]
    pub fn cache(&self) -> Option<&pybridge_cache::Cache> {
        self.inner.cache.as_ref()
    }

    /// Shuts down gracefully: new calls fail with a shutting-down error,
    /// in-flight calls finish within `pool.drain_timeout`, workers are stopped
    /// (stdin closed, then SIGTERM, then SIGKILL), and the cache's pending disk
    /// writes are flushed. Bounded by the drain timeout plus twice the exit grace.
    pub async fn shutdown(&self) -> ShutdownReport {
        let _ = self.inner.events.send(BridgeEvent::ShuttingDown);
        let report = self.inner.pool.shutdown().await;
        #[cfg(feature = "cache")]
        if let Some(cache) = &self.inner.cache {
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

/// The call's span. With trace export sampling new traces, a call that
/// would start one is drawn before its span opens: one left out gets a span
/// only if a log layer wants it (at a target trace export ignores), and
/// none otherwise, so it costs nothing.
fn open_call_span(correlation_id: i64, method: &str, wire_method: &str) -> tracing::Span {
    #[cfg(feature = "otel")]
    if !crate::otel::keep_call(&tracing::Span::current()) {
        return if tracing::enabled!(target: "pybridge::call", tracing::Level::DEBUG) {
            telemetry::untraced_call_span(correlation_id, method, wire_method)
        } else {
            tracing::Span::none()
        };
    }
    telemetry::call_span(correlation_id, method, wire_method)
}

/// Whether a call's span belongs to an OpenTelemetry trace; without the
/// `otel` feature, whether it is recorded at all (for logs).
#[cfg(feature = "otel")]
fn traced(span: &tracing::Span) -> bool {
    crate::otel::is_traced(span)
}

#[cfg(not(feature = "otel"))]
fn traced(span: &tracing::Span) -> bool {
    !span.is_disabled()
}

fn to_params<P: Serialize + ?Sized>(method: &str, params: &P) -> Result<Option<Box<RawValue>>> {
    let raw = serde_json::value::to_raw_value(params).map_err(|source| Error::EncodeParams {
        method: method.to_string(),
        source,
    })?;
    Ok((raw.get() != "null").then_some(raw))
}

fn outcome_of(error: &Error) -> telemetry::Outcome {
    use telemetry::Outcome as O;
    match error.code() {
        "invalid_params" => O::InvalidParams,
        "method_not_found" => O::UnknownMethod,
        "timeout" => O::Timeout,
        "circuit_open" | "queue_full" | "unavailable" => O::Rejected,
        "remote_error" => O::WorkerError,
        "invalid_result" | "decode_error" => O::InvalidResult,
        "shutting_down" => O::ShuttingDown,
        _ => O::WorkerFailed,
    }
}

#[cfg(feature = "cache")]
fn cache_policy(spec: &MethodSpec, config: &Config) -> pybridge_cache::CachePolicy {
    let declared = spec.cache();
    let mut policy = pybridge_cache::CachePolicy::default();
    if let Some(ttl) = declared.l1_ttl {
        policy.l1_ttl = ttl;
    }
    if let Some(ttl) = declared.l2_ttl {
        policy.l2_ttl = ttl;
    }
    if !config.cache.disk {
        policy.tiers = pybridge_cache::Tiers::L1Only;
    }
    policy
}
