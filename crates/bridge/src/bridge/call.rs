//! The call path: catalog, limits and validation, the cache with
//! single-flight, the method's breaker inside each retry attempt, the pool,
//! and the adapters, in the order ARCHITECTURE.md describes.

use std::sync::Arc;

use pybridge_pool::{CallTime, RequestId};
use pybridge_resilience::{Classify, Outcome, StopReason};
use pybridge_service::MethodSpec;
use pybridge_service::telemetry::{self, CallGuard};
use serde_json::value::RawValue;
use tokio::time::Instant;
use tracing::Instrument;

use super::Bridge;
use super::attempt::Attempt;
use crate::options::{CallOptions, Reply, ResultSource};
use crate::{Error, ErrorKind, Result};

impl Bridge {
    pub(super) async fn call_inner(
        &self,
        method: &str,
        params: Option<&RawValue>,
        options: &CallOptions,
    ) -> Result<Reply> {
        let inner = &*self.inner;
        let prepared = self.prepare(method, params)?;
        let spec = Arc::clone(prepared.spec());
        let wire_params = prepared.params();
        let id = inner.layers.pool().reserve_id();
        // Whether a log layer records the call's spans and what happens in
        // them (debug at `pybridge::call`); trace export alone does not.
        let logged = tracing::enabled!(target: "pybridge::call", tracing::Level::DEBUG);
        let span = open_call_span(logged, id.get(), spec.name(), spec.wire_name());
        // The one clock reading of the call's start: the metrics, the
        // deadline, the retry budget and the first attempt's latency all
        // measure from it.
        let started = Instant::now();
        let guard = CallGuard::start_at(spec.metrics(), started.into_std());
        let deadline = options.deadline.unwrap_or_else(|| {
            let timeout = options
                .timeout
                .or(spec.timeout())
                .unwrap_or(inner.layers.config().call.timeout);
            started + timeout
        });
        let call = Call {
            span: &span,
            spec: &spec,
            params: wire_params,
            id,
            deadline,
            options,
        };
        // The call's fields are recorded on its span directly, and its
        // attempts name it as their parent: the span is entered on every
        // poll (each enter and exit a lookup in the subscriber for each
        // layer) only when logs are written inside it.
        let call = if logged {
            self.run(method, call, started)
                .instrument(span.clone())
                .await
        } else {
            self.run(method, call, started).await
        };
        let call = call.map_err(|err| self.with_suggestions(method, err));
        let outcome = match &call {
            Ok(_) => telemetry::Outcome::Ok,
            Err(e) => outcome_of(e),
        };
        span.record(telemetry::fields::OUTCOME, outcome.as_str());
        if let Err(e) = &call {
            telemetry::record_error(&span, e.kind().as_str());
        }
        guard.finish_at(outcome, Instant::now().into_std());
        call
    }

    /// The cache or the worker, then the invalidations a write makes and
    /// the method's result adapters.
    async fn run(&self, method: &str, call: Call<'_>, started: Instant) -> Result<Reply> {
        let spec = call.spec;
        let id = call.id;
        let (raw, source) = self.fetch(call, started).await?;
        if !spec.idempotent() {
            self.invalidate_family(spec).await;
        }
        let adapted = self
            .inner
            .layers
            .service()
            .adapt_result(spec, raw)
            .map_err(|source| Error::InvalidResult {
                method: method.to_string(),
                source,
            })?;
        Ok(Reply {
            result: adapted.result,
            metadata: adapted.metadata,
            source,
            correlation_id: id.get(),
        })
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
            self.inner.layers.service().catalog().suggest(method)
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
    pub(super) fn prepare<'a>(
        &self,
        method: &str,
        params: Option<&'a RawValue>,
    ) -> Result<pybridge_service::Prepared<'a>> {
        self.inner
            .layers
            .service()
            .prepare(method, params)
            .map_err(|source| Error::Rejected {
                method: method.to_string(),
                source,
            })
    }

    /// The cache in front of the worker, when the method's policy allows.
    async fn fetch(
        &self,
        call: Call<'_>,
        started: Instant,
    ) -> Result<(Box<RawValue>, ResultSource)> {
        #[cfg(feature = "cache")]
        if let Some(cache) = self.inner.layers.cache()
            && !call.options.no_cache
            && call.spec.cache().enabled
        {
            return self.fetch_cached(cache, call, started).await;
        }
        let raw = self.execute_from(call, started).await?;
        Ok((raw, ResultSource::Worker))
    }

    #[cfg(feature = "cache")]
    async fn fetch_cached(
        &self,
        cache: &pybridge_cache::Cache,
        call: Call<'_>,
        started: Instant,
    ) -> Result<(Box<RawValue>, ResultSource)> {
        let Call {
            span,
            spec,
            params,
            deadline,
            ..
        } = call;
        use pybridge_cache::{LoadError, Source};
        use telemetry::CacheTier;
        let counters = &self.inner.counters;
        let key = match cache.key(
            Arc::clone(spec.wire_name_shared()),
            params.map_or("null", RawValue::get),
        ) {
            Ok(key) => key,
            Err(err) => {
                // Params the service accepted are JSON; if the cache still
                // cannot key them, the call goes on uncached.
                tracing::warn!(method = spec.name(), error = %err, "cannot build a cache key; not caching");
                // Boxed, like the cache's own loads: a hit should not carry
                // the size of a worker call's future.
                let raw = Box::pin(self.execute(call)).await?;
                return Ok((raw, ResultSource::Worker));
            }
        };
        let policy = self.inner.layers.cache_policy(spec);
        // The call's start, read microseconds ago, judges the memory entry's
        // expiry: a hit reads the clock only to end the call's latency.
        let fetched = cache
            .get_or_load_at(&key, &policy, started, deadline, || async {
                self.execute(call).await.map(pybridge_cache::Load::Json)
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
            // A load; the cache's enum is another crate's, not exhaustive.
            _ => (CacheTier::Miss, ResultSource::Worker),
        };
        counters.served_from(tier);
        span.record(telemetry::fields::CACHE_TIER, tier.as_str());
        spec.metrics().record_cache(tier);
        // The cache holds JSON values: the worker's, checked by the pool,
        // and those read back from disk or Redis, checked as they came into
        // memory (one that is not JSON is a corrupt entry there). Only a
        // value without that check is read here.
        let raw = match fetched.json() {
            Some(json) => json.to_owned(),
            None => serde_json::from_slice::<Box<RawValue>>(&fetched.value).map_err(|_| {
                Error::DecodeResult {
                    method: spec.name().to_string(),
                    source: serde::de::Error::custom("a cached result is not JSON"),
                }
            })?,
        };
        Ok((raw, source))
    }

    /// A successful write (a method that is not idempotent) drops the
    /// cached reads the service's invalidation rules say it made stale (the
    /// framework's: its family's reads).
    async fn invalidate_family(&self, spec: &MethodSpec) {
        #[cfg(feature = "cache")]
        if let Some(cache) = self.inner.layers.cache() {
            // One invalidation for all of them: another gateway that has
            // applied it has dropped every one of these reads, never some.
            let stale = self.inner.layers.service().stale_after(spec);
            cache
                .invalidate_methods(stale.iter().map(|read| read.wire_name()))
                .await;
        }
        #[cfg(not(feature = "cache"))]
        let _ = spec;
    }

    /// The method's breaker inside each retry attempt, around the pool, for
    /// a load the cache starts (it reads the clock when the load begins).
    #[cfg(feature = "cache")]
    async fn execute(&self, call: Call<'_>) -> Result<Box<RawValue>> {
        self.execute_from(call, Instant::now()).await
    }

    /// The method's breaker inside each retry attempt, around the pool, for
    /// a call whose first attempt starts at `started`, a clock reading the
    /// caller already has.
    async fn execute_from(&self, call: Call<'_>, started: Instant) -> Result<Box<RawValue>> {
        let Call {
            span: call_span,
            spec,
            params,
            id: first_id,
            deadline,
            options,
        } = call;
        let inner = &*self.inner;
        let breaker = match inner.layers.breakers() {
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
        let child_spans = traced(call_span);
        let breaker = breaker.as_ref();
        // One future per attempt, not nested ones: an async block stores
        // what it captures apart from what it awaits, so each wrapper would
        // hold its inner future twice, and every layer above copies it.
        let attempt = |n: u32| {
            let id = if n == 1 {
                first_id
            } else {
                inner.layers.pool().reserve_id()
            };
            // Recorded on the call's span: in the end, the attempts made.
            call_span.record(telemetry::fields::ATTEMPT, n);
            let span = if child_spans {
                telemetry::attempt_span(call_span, n, id.get())
            } else {
                tracing::Span::none()
            };
            if let Some(b) = breaker {
                span.record(telemetry::fields::BREAKER, b.state().as_str());
            }
            // The breaker admits the attempt as it starts (the retry policy
            // awaits it at once).
            let admitted = match breaker {
                Some(b) => b.try_acquire().map(Some).map_err(|rejected| Attempt {
                    error: Error::CircuitOpen {
                        method: spec.name().to_string(),
                        retry_after: rejected.retry_after(),
                        source: rejected,
                    },
                    idempotent: spec.idempotent(),
                }),
                None => Ok(None),
            };
            async move {
                let permit = match admitted {
                    Ok(permit) => permit,
                    Err(rejected) => {
                        telemetry::record_error(&span, rejected.error.kind().as_str());
                        return Err(rejected);
                    }
                };
                // The first attempt starts with the call (a breaker
                // admission later, which is no measurable time); a retry
                // reads the clock after its backoff.
                let started = if n == 1 { started } else { Instant::now() };
                let attempt_deadline = match inner.layers.config().call.attempt_timeout {
                    Some(limit) => deadline.min(started + limit),
                    None => deadline,
                };
                // The round trip's span is a child of the attempt's, named
                // as its parent. Neither is entered on each poll of the
                // attempt's future (the pool records the worker in the
                // round trip's directly): every enter and exit of a traced
                // span costs lookups in the subscriber, for each layer.
                let worker_span = if child_spans {
                    telemetry::worker_span(&span, id.get(), spec.wire_name())
                } else {
                    tracing::Span::none()
                };
                let result = self
                    .send(
                        &worker_span,
                        id,
                        spec.wire_name(),
                        params,
                        started,
                        attempt_deadline,
                    )
                    .await;
                // The pool's reading as it handed the answer over ends a
                // successful attempt; a failed one reads the clock below.
                let (result, answered) = match result {
                    Ok(answer) => (Ok(answer.result), Some(answer.at)),
                    Err(source) => (
                        Err(Attempt {
                            error: Error::Pool {
                                method: spec.name().to_string(),
                                source,
                            },
                            idempotent: spec.idempotent(),
                        }),
                        None,
                    ),
                };
                if let Err(failed) = &result {
                    let kind = failed.error.kind().as_str();
                    telemetry::record_error(&worker_span, kind);
                    telemetry::record_error(&span, kind);
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
                    let ended = answered.unwrap_or_else(Instant::now);
                    permit.record_at(outcome, ended.saturating_duration_since(started), ended);
                }
                result
            }
        };
        let policy = inner.layers.retry().filter(|_| !options.no_retry);
        let Some(policy) = policy else {
            return attempt(1).await.map_err(|a| a.error);
        };
        let counters = &inner.counters;
        policy
            .run_with_hook_at(started, Some(deadline), attempt, |_| counters.retried())
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
        started: Instant,
        deadline: Instant,
    ) -> pybridge_pool::Result<pybridge_pool::Answer> {
        let pool = self.inner.layers.pool();
        // The pool's futures are boxed: they are the largest part of a
        // call's state, and every layer above would otherwise hold them
        // inline and copy them each time its own future is built or moved
        // (a profile showed those copies at a tenth of the bridge's CPU).
        // One allocation per attempt is cheaper.
        #[cfg(feature = "otel")]
        let wire = crate::otel::WireContext::of(span);
        #[cfg(feature = "otel")]
        let meta = wire.as_ref().map(crate::otel::WireContext::meta);
        #[cfg(not(feature = "otel"))]
        let meta = None;
        // The pool records the worker in `span` itself, which the caller
        // does not enter (a disabled span records nothing, and costs no
        // lookup of the current one).
        let time = CallTime { started, deadline };
        Box::pin(pool.call_with_meta_in(span, id, wire_method, params, time, meta.as_ref())).await
    }
}

/// What each stage of one call works with: its span (recorded on, never
/// entered here), its method, params, first request id, deadline and
/// options.
#[derive(Clone, Copy)]
struct Call<'a> {
    span: &'a tracing::Span,
    spec: &'a Arc<MethodSpec>,
    params: Option<&'a RawValue>,
    id: RequestId,
    deadline: Instant,
    options: &'a CallOptions,
}

/// The call's span. With trace export sampling new traces, a call that
/// would start one is drawn before its span opens: one left out gets a span
/// only if a log layer wants it (`logged`; at a target trace export
/// ignores), and none otherwise, so it costs nothing.
fn open_call_span(
    logged: bool,
    correlation_id: i64,
    method: &str,
    wire_method: &str,
) -> tracing::Span {
    #[cfg(not(feature = "otel"))]
    let _ = logged;
    #[cfg(feature = "otel")]
    if !crate::otel::keep_call() {
        return if logged {
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

fn outcome_of(error: &Error) -> telemetry::Outcome {
    use telemetry::Outcome as O;
    match error.kind() {
        ErrorKind::InvalidParams | ErrorKind::RequestTooLarge => O::InvalidParams,
        ErrorKind::MethodNotFound => O::UnknownMethod,
        ErrorKind::Timeout => O::Timeout,
        ErrorKind::CircuitOpen | ErrorKind::QueueFull | ErrorKind::Unavailable => O::Rejected,
        ErrorKind::RemoteError => O::WorkerError,
        ErrorKind::InvalidResult | ErrorKind::DecodeError => O::InvalidResult,
        ErrorKind::ShuttingDown => O::ShuttingDown,
        ErrorKind::WorkerFailed
        | ErrorKind::ResponseTooLarge
        | ErrorKind::Config
        | ErrorKind::StartFailed
        | ErrorKind::Internal => O::WorkerFailed,
    }
}
