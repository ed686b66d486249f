//! The one place that names pybridge's per-call telemetry: metric names,
//! label keys and values, histogram buckets, and the call span's fields.
//!
//! The service records validation failures itself; the bridge records calls,
//! latency, in-flight calls and cache outcomes with the names and helpers
//! defined here, so that every layer speaks one coherent metric set (the
//! original exported two sets whose names collided with different types).
//! Recording goes through the `metrics` and `tracing` facades and costs
//! nothing when no recorder or subscriber is installed.

use std::sync::OnceLock;
use std::time::Instant;

use metrics::{Counter, Gauge, Histogram, SharedString, Unit};

/// Counter: calls finished, by [`labels::METHOD`] and [`labels::OUTCOME`].
pub const CALLS_TOTAL: &str = "pybridge_service_calls_total";
/// Histogram: call latency in seconds, from the caller's request to its
/// answer (cache hits included), by [`labels::METHOD`] and [`labels::OUTCOME`].
/// Buckets: [`LATENCY_BUCKETS_SECONDS`].
pub const CALL_DURATION_SECONDS: &str = "pybridge_service_call_duration_seconds";
/// Gauge: calls in flight, by [`labels::METHOD`].
pub const CALLS_IN_FLIGHT: &str = "pybridge_service_calls_in_flight";
/// Counter: requests rejected before reaching a worker, by
/// [`labels::METHOD`] and [`labels::REASON`] (see [`Rejection`]).
pub const VALIDATION_FAILURES_TOTAL: &str = "pybridge_service_validation_failures_total";
/// Counter: results that broke their result schema, by [`labels::METHOD`].
pub const INVALID_RESULTS_TOTAL: &str = "pybridge_service_invalid_results_total";
/// Counter: cache outcomes of calls, by [`labels::METHOD`] and
/// [`labels::TIER`] (see [`CacheTier`]). Exactly one per call, so hits are
/// never counted twice (the original counted a miss as a hit too).
pub const CACHE_LOOKUPS_TOTAL: &str = "pybridge_service_cache_lookups_total";

/// Bucket upper bounds of [`CALL_DURATION_SECONDS`], in seconds: from a
/// cache hit (tens of microseconds) to the longest generation (120 s).
/// The `metrics` facade carries no buckets; the exporter is configured with
/// these.
pub const LATENCY_BUCKETS_SECONDS: [f64; 18] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 120.0,
];

/// The `method` label value of calls to methods outside the catalog: their
/// names come from callers, and one label value per name would let any
/// caller grow the metric set without bound.
pub const PASS_THROUGH_LABEL: &str = "_pass_through";
/// The `method` label value of calls rejected before a method was found.
pub const UNKNOWN_LABEL: &str = "_unknown";

/// Metric label keys.
pub mod labels {
    /// The method's public name (or [`PASS_THROUGH_LABEL`](super::PASS_THROUGH_LABEL)).
    pub const METHOD: &str = "method";
    /// How a call ended: an [`Outcome`](super::Outcome).
    pub const OUTCOME: &str = "outcome";
    /// Why a request was rejected: a [`Rejection`](super::Rejection).
    pub const REASON: &str = "reason";
    /// Where a result came from: a [`CacheTier`](super::CacheTier).
    pub const TIER: &str = "tier";
}

/// The call span and its field names. Fields that are not known when the
/// span opens are declared empty and recorded later with
/// `span.record(fields::ATTEMPT, n)`.
pub mod fields {
    /// The span's name.
    pub const CALL_SPAN: &str = "pybridge.call";
    /// The correlation id: the JSON-RPC request id sent to the worker, so a
    /// log line can be joined to the wire traffic.
    pub const CORRELATION_ID: &str = "correlation_id";
    /// The method's public name.
    pub const METHOD: &str = "method";
    /// The method name sent to the worker.
    pub const WIRE_METHOD: &str = "wire_method";
    /// The attempt number, from 1.
    pub const ATTEMPT: &str = "attempt";
    /// The id of the worker that served the attempt.
    pub const WORKER: &str = "worker";
    /// Where the result came from: a [`CacheTier`](super::CacheTier).
    pub const CACHE_TIER: &str = "cache_tier";
    /// How the call ended: an [`Outcome`](super::Outcome).
    pub const OUTCOME: &str = "outcome";
    /// The span of one attempt of a call (a retry opens another).
    pub const ATTEMPT_SPAN: &str = "pybridge.attempt";
    /// The span of one round trip to a worker: the wait for a slot, the
    /// request and its answer. The worker's own spans are its children.
    pub const WORKER_SPAN: &str = "pybridge.worker";
    /// The breaker's state when the attempt was admitted (`closed`,
    /// `open`, `half_open`).
    pub const BREAKER: &str = "breaker";
    /// OpenTelemetry semantic conventions for RPC: always `jsonrpc`.
    pub const RPC_SYSTEM_NAME: &str = "rpc.system.name";
    /// OpenTelemetry semantic conventions for RPC: the method name sent to
    /// the worker.
    pub const RPC_METHOD: &str = "rpc.method";
    /// OpenTelemetry semantic conventions for JSON-RPC: the request id on
    /// the wire (for a call, its correlation id).
    pub const JSONRPC_REQUEST_ID: &str = "jsonrpc.request.id";
    /// OpenTelemetry semantic conventions: the kind of error a failed span
    /// ended with (the bridge error's code, such as `timeout`).
    pub const ERROR_TYPE: &str = "error.type";
    /// The OpenTelemetry status, `ERROR` for a failed span.
    pub const OTEL_STATUS_CODE: &str = "otel.status_code";
}

/// The value of [`fields::RPC_SYSTEM_NAME`].
pub const RPC_SYSTEM: &str = "jsonrpc";

/// How a call ended; the [`labels::OUTCOME`] values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// A result.
    Ok,
    /// Rejected by the limits or the schema.
    InvalidParams,
    /// Not in the catalog (strict mode), or a reserved name.
    UnknownMethod,
    /// The deadline passed.
    Timeout,
    /// The queue was full or the circuit breaker was open.
    Rejected,
    /// The worker answered with an error.
    WorkerError,
    /// The worker died or its stream broke while it held the call.
    WorkerFailed,
    /// The result broke its schema (result validation enforced).
    InvalidResult,
    /// The caller went away (the call's future was dropped).
    Cancelled,
    /// The bridge is shutting down.
    ShuttingDown,
}

impl Outcome {
    /// Every outcome, in declaration order (an outcome's index in it is its
    /// discriminant).
    pub const ALL: [Outcome; 10] = [
        Outcome::Ok,
        Outcome::InvalidParams,
        Outcome::UnknownMethod,
        Outcome::Timeout,
        Outcome::Rejected,
        Outcome::WorkerError,
        Outcome::WorkerFailed,
        Outcome::InvalidResult,
        Outcome::Cancelled,
        Outcome::ShuttingDown,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::InvalidParams => "invalid_params",
            Outcome::UnknownMethod => "unknown_method",
            Outcome::Timeout => "timeout",
            Outcome::Rejected => "rejected",
            Outcome::WorkerError => "worker_error",
            Outcome::WorkerFailed => "worker_failed",
            Outcome::InvalidResult => "invalid_result",
            Outcome::Cancelled => "cancelled",
            Outcome::ShuttingDown => "shutting_down",
        }
    }
}

/// Where a call's result came from; the [`labels::TIER`] values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheTier {
    /// The in-memory cache.
    L1,
    /// The disk cache.
    L2,
    /// The shared cache tier on Redis.
    Shared,
    /// Neither: a worker computed it (and the cache stored it).
    Miss,
    /// The method is not cached.
    Bypass,
}

impl CacheTier {
    /// Every tier, in declaration order (a tier's index is its place here).
    const ALL: [CacheTier; 5] = [
        CacheTier::L1,
        CacheTier::L2,
        CacheTier::Shared,
        CacheTier::Miss,
        CacheTier::Bypass,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            CacheTier::L1 => "l1",
            CacheTier::L2 => "l2",
            CacheTier::Shared => "shared",
            CacheTier::Miss => "miss",
            CacheTier::Bypass => "bypass",
        }
    }
}

/// Why a request was rejected before reaching a worker; the
/// [`labels::REASON`] values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rejection {
    /// A limit checked before validation.
    Limit,
    /// The schema (or a legacy-name conflict).
    Schema,
    /// Unknown (strict mode) or reserved method.
    UnknownMethod,
}

impl Rejection {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::Limit => "limit",
            Rejection::Schema => "schema",
            Rejection::UnknownMethod => "unknown_method",
        }
    }
}

/// Registers descriptions and units of every metric above with the
/// installed recorder. Binaries call it once after installing one.
pub fn describe() {
    metrics::describe_counter!(
        CALLS_TOTAL,
        Unit::Count,
        "Calls finished, by method and outcome."
    );
    metrics::describe_histogram!(
        CALL_DURATION_SECONDS,
        Unit::Seconds,
        "Call latency, by method and outcome."
    );
    metrics::describe_gauge!(CALLS_IN_FLIGHT, Unit::Count, "Calls in flight, by method.");
    metrics::describe_counter!(
        VALIDATION_FAILURES_TOTAL,
        Unit::Count,
        "Requests rejected before reaching a worker, by method and reason."
    );
    metrics::describe_counter!(
        INVALID_RESULTS_TOTAL,
        Unit::Count,
        "Results that broke their result schema, by method."
    );
    metrics::describe_counter!(
        CACHE_LOOKUPS_TOTAL,
        Unit::Count,
        "Where call results came from (l1, l2, miss, bypass), by method."
    );
}

/// The call span, at `target`.
macro_rules! call_span_at {
    ($target:expr, $correlation_id:expr, $method:expr, $wire_method:expr) => {
        tracing::debug_span!(
            target: $target,
            "pybridge.call",
            { fields::CORRELATION_ID } = $correlation_id,
            { fields::METHOD } = $method,
            { fields::WIRE_METHOD } = $wire_method,
            { fields::RPC_SYSTEM_NAME } = RPC_SYSTEM,
            { fields::RPC_METHOD } = $wire_method,
            { fields::JSONRPC_REQUEST_ID } = $correlation_id,
            { fields::ATTEMPT } = tracing::field::Empty,
            { fields::WORKER } = tracing::field::Empty,
            { fields::CACHE_TIER } = tracing::field::Empty,
            { fields::BREAKER } = tracing::field::Empty,
            { fields::OUTCOME } = tracing::field::Empty,
            { fields::ERROR_TYPE } = tracing::field::Empty,
            { fields::OTEL_STATUS_CODE } = tracing::field::Empty,
        )
    };
}

/// The target of call spans left out of trace export by head sampling but
/// still wanted by a log layer (a prefix filter on `pybridge::call` keeps
/// matching it).
pub const UNTRACED_CALL_TARGET: &str = "pybridge::call::untraced";

/// Opens the span of one call, with the correlation id and the method; the
/// attempt (the number of attempts made, in the end), worker, cache tier,
/// breaker state, outcome and error type are recorded later.
pub fn call_span(correlation_id: i64, method: &str, wire_method: &str) -> tracing::Span {
    call_span_at!("pybridge::call", correlation_id, method, wire_method)
}

/// [`call_span`] for a call that trace export leaves out, at
/// [`UNTRACED_CALL_TARGET`]: for logs only.
pub fn untraced_call_span(correlation_id: i64, method: &str, wire_method: &str) -> tracing::Span {
    call_span_at!(
        "pybridge::call::untraced",
        correlation_id,
        method,
        wire_method
    )
}

/// Opens the span of attempt `attempt` (from 1) of a call, as a child of
/// the call's span `call` (named, so that neither needs to be entered),
/// whose request has id `request_id` on the wire; the breaker state, worker
/// and error type are recorded later.
pub fn attempt_span(call: &tracing::Span, attempt: u32, request_id: i64) -> tracing::Span {
    tracing::debug_span!(
        target: "pybridge::call",
        parent: call,
        "pybridge.attempt",
        { fields::ATTEMPT } = attempt,
        { fields::JSONRPC_REQUEST_ID } = request_id,
        { fields::BREAKER } = tracing::field::Empty,
        { fields::ERROR_TYPE } = tracing::field::Empty,
        { fields::OTEL_STATUS_CODE } = tracing::field::Empty,
    )
}

/// Opens the span of one round trip to a worker (a client span, in
/// OpenTelemetry's terms), as a child of the attempt's span `attempt`: the
/// slot wait, the request `request_id` of `wire_method`, and its answer.
/// The pool records the worker's id in it.
pub fn worker_span(attempt: &tracing::Span, request_id: i64, wire_method: &str) -> tracing::Span {
    tracing::debug_span!(
        target: "pybridge::call",
        parent: attempt,
        "pybridge.worker",
        otel.kind = "client",
        { fields::RPC_SYSTEM_NAME } = RPC_SYSTEM,
        { fields::RPC_METHOD } = wire_method,
        { fields::JSONRPC_REQUEST_ID } = request_id,
        { fields::WORKER } = tracing::field::Empty,
        { fields::ERROR_TYPE } = tracing::field::Empty,
        { fields::OTEL_STATUS_CODE } = tracing::field::Empty,
    )
}

/// Records a failure on `span`: its [`fields::ERROR_TYPE`] and an error
/// status.
pub fn record_error(span: &tracing::Span, error_type: &str) {
    span.record(fields::ERROR_TYPE, error_type);
    span.record(fields::OTEL_STATUS_CODE, "ERROR");
}

/// Counts where a call's result came from (the call path uses
/// [`MethodMetrics::record_cache`], which builds no key per call).
pub fn record_cache(method: &str, tier: CacheTier) {
    metrics::counter!(
        CACHE_LOOKUPS_TOTAL,
        labels::METHOD => method.to_owned(),
        labels::TIER => tier.as_str()
    )
    .increment(1);
}

pub(crate) fn count_rejection(method: &str, reason: Rejection) {
    metrics::counter!(
        VALIDATION_FAILURES_TOTAL,
        labels::METHOD => method.to_owned(),
        labels::REASON => reason.as_str()
    )
    .increment(1);
}

pub(crate) fn count_invalid_result(method: &str) {
    metrics::counter!(INVALID_RESULTS_TOTAL, labels::METHOD => method.to_owned()).increment(1);
}

/// One method's call metrics: the in-flight gauge, and a counter and a
/// latency histogram per [`Outcome`]. Each handle is registered with the
/// recorder installed at its first use and then reused, so a call builds,
/// hashes and looks up no metric key. Install the recorder before the first
/// call (as `pybridge serve` does).
pub struct MethodMetrics {
    label: SharedString,
    in_flight: OnceLock<Gauge>,
    outcomes: [OnceLock<(Counter, Histogram)>; Outcome::ALL.len()],
    cache_lookups: [OnceLock<Counter>; CacheTier::ALL.len()],
}

impl MethodMetrics {
    /// The metrics of the method labelled `label` (use
    /// [`MethodSpec::metric_label`](crate::MethodSpec::metric_label)).
    pub fn new(label: impl Into<SharedString>) -> Self {
        Self {
            label: label.into(),
            in_flight: OnceLock::new(),
            outcomes: Default::default(),
            cache_lookups: Default::default(),
        }
    }

    /// Counts where one of this method's calls got its result: what
    /// [`record_cache`] counts, through a handle registered once.
    pub fn record_cache(&self, tier: CacheTier) {
        self.cache_lookups[tier as usize]
            .get_or_init(|| {
                metrics::counter!(
                    CACHE_LOOKUPS_TOTAL,
                    labels::METHOD => self.label.clone(),
                    labels::TIER => tier.as_str()
                )
            })
            .increment(1);
    }

    fn in_flight(&self) -> &Gauge {
        self.in_flight
            .get_or_init(|| metrics::gauge!(CALLS_IN_FLIGHT, labels::METHOD => self.label.clone()))
    }

    fn outcome(&self, outcome: Outcome) -> &(Counter, Histogram) {
        self.outcomes[outcome as usize].get_or_init(|| {
            let labels = [
                (labels::METHOD, self.label.clone()),
                (labels::OUTCOME, SharedString::const_str(outcome.as_str())),
            ];
            (
                metrics::counter!(CALLS_TOTAL, &labels),
                metrics::histogram!(CALL_DURATION_SECONDS, &labels),
            )
        })
    }
}

impl std::fmt::Debug for MethodMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MethodMetrics")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// Measures one call: counts it in flight from [`start`](Self::start), and
/// records its outcome and latency when [`finish`](Self::finish)ed. A guard
/// dropped unfinished (the caller's future was dropped) records
/// [`Outcome::Cancelled`], so the in-flight gauge never drifts.
#[derive(Debug)]
#[must_use = "a call guard measures the call until it is finished or dropped"]
pub struct CallGuard<'a> {
    metrics: Handles<'a>,
    started: Instant,
    finished: bool,
}

#[derive(Debug)]
enum Handles<'a> {
    Shared(&'a MethodMetrics),
    Own(Box<MethodMetrics>),
}

impl CallGuard<'static> {
    /// Starts measuring a call to `method` (a metric label: use
    /// [`MethodSpec::metric_label`](crate::MethodSpec::metric_label)),
    /// registering its handles for this call only; the call path uses
    /// [`CallGuard::start_for`] with the method's own.
    pub fn start(method: impl Into<SharedString>) -> Self {
        Self::begin(
            Handles::Own(Box::new(MethodMetrics::new(method))),
            Instant::now(),
        )
    }
}

impl<'a> CallGuard<'a> {
    /// Starts measuring a call with the method's registered handles
    /// ([`MethodSpec::metrics`](crate::MethodSpec::metrics)).
    pub fn start_for(metrics: &'a MethodMetrics) -> Self {
        Self::begin(Handles::Shared(metrics), Instant::now())
    }

    /// Like [`CallGuard::start_for`], for a call that started at `started`:
    /// the call path reads the clock once and passes the reading down.
    pub fn start_at(metrics: &'a MethodMetrics, started: Instant) -> Self {
        Self::begin(Handles::Shared(metrics), started)
    }

    fn begin(metrics: Handles<'a>, started: Instant) -> Self {
        let guard = Self {
            metrics,
            started,
            finished: false,
        };
        guard.handles().in_flight().increment(1.0);
        guard
    }

    fn handles(&self) -> &MethodMetrics {
        match &self.metrics {
            Handles::Shared(metrics) => metrics,
            Handles::Own(metrics) => metrics,
        }
    }

    /// Records the call's outcome and latency.
    pub fn finish(mut self, outcome: Outcome) {
        self.record(outcome, Instant::now());
    }

    /// Records the call's outcome and its latency up to `ended`, a clock
    /// reading the caller already has (and took from the same clock as the
    /// start).
    pub fn finish_at(mut self, outcome: Outcome, ended: Instant) {
        self.record(outcome, ended);
    }

    fn record(&mut self, outcome: Outcome, ended: Instant) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        let elapsed = ended.saturating_duration_since(self.started).as_secs_f64();
        let metrics = self.handles();
        metrics.in_flight().decrement(1.0);
        let (count, latency) = metrics.outcome(outcome);
        count.increment(1);
        latency.record(elapsed);
    }
}

impl Drop for CallGuard<'_> {
    fn drop(&mut self) {
        // A finished guard reads no clock on its way out.
        if !self.finished {
            self.record(Outcome::Cancelled, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use metrics::{
        Counter, Gauge, Histogram, HistogramFn, Key, KeyName, Metadata, SharedString, Unit,
    };

    use super::{CallGuard, MethodMetrics, Outcome};

    /// A recorder that keeps every histogram sample, in order.
    #[derive(Default)]
    struct Samples(Arc<Mutex<Vec<f64>>>);

    struct Sink(Arc<Mutex<Vec<f64>>>);

    impl HistogramFn for Sink {
        fn record(&self, value: f64) {
            self.0.lock().expect("not poisoned").push(value);
        }
    }

    impl metrics::Recorder for Samples {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
            Counter::noop()
        }
        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }
        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::from_arc(Arc::new(Sink(Arc::clone(&self.0))))
        }
    }

    #[test]
    fn a_call_guard_measures_between_the_readings_it_is_given() {
        let recorder = Samples::default();
        metrics::with_local_recorder(&recorder, || {
            let metrics = MethodMetrics::new("test.echo");
            let t0 = Instant::now();
            CallGuard::start_at(&metrics, t0)
                .finish_at(Outcome::Ok, t0 + Duration::from_millis(1500));
            // An end before the start records zero, never a panic.
            CallGuard::start_at(&metrics, t0 + Duration::from_secs(1))
                .finish_at(Outcome::Timeout, t0);
        });
        assert_eq!(*recorder.0.lock().expect("not poisoned"), [1.5, 0.0]);
    }

    #[test]
    fn every_cache_tier_has_its_place_among_all() {
        use super::CacheTier;
        for (index, tier) in CacheTier::ALL.into_iter().enumerate() {
            assert_eq!(tier as usize, index, "{tier:?}");
            // A new tier fails to compile here until it joins `ALL`.
            match tier {
                CacheTier::L1
                | CacheTier::L2
                | CacheTier::Shared
                | CacheTier::Miss
                | CacheTier::Bypass => {}
            }
        }
    }

    #[test]
    fn every_outcome_has_its_place_among_all() {
        for (index, outcome) in Outcome::ALL.into_iter().enumerate() {
            assert_eq!(outcome as usize, index, "{outcome:?}");
            // A new outcome fails to compile here until it joins `ALL`.
            match outcome {
                Outcome::Ok
                | Outcome::InvalidParams
                | Outcome::UnknownMethod
                | Outcome::Timeout
                | Outcome::Rejected
                | Outcome::WorkerError
                | Outcome::WorkerFailed
                | Outcome::InvalidResult
                | Outcome::Cancelled
                | Outcome::ShuttingDown => {}
            }
        }
    }
}
