//! OpenTelemetry, behind the `otel` feature: OTLP/HTTP export of the spans
//! every layer opens through `tracing`, and the W3C trace context in and out
//! (from a caller's headers; to the workers in each request's `_meta`).
//!
//! Libraries never install a subscriber: [`Telemetry::layer`] gives the
//! binary a `tracing` layer to install beside its log layer, and
//! [`Telemetry::shutdown`] flushes what is buffered within a bound.
//!
//! Export runs on the batch span processor's own thread with the blocking
//! HTTP client (an async client would need a reactor that thread does not
//! have), writing the OTLP protobuf straight from the span data. A
//! collector that is down, slow or refusing therefore never slows a call:
//! finished spans wait in a bounded queue, and spans that find it full,
//! whose export failed or that the collector rejected are counted in
//! [`metrics::SPANS_DROPPED_TOTAL`].

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceState};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SpanData, SpanProcessor};
use pybridge_protocol::Meta;
use pybridge_service::telemetry::UNTRACED_CALL_TARGET;
use pybridge_service::telemetry::fields::{ATTEMPT_SPAN, CALL_SPAN, WORKER_SPAN};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{Filtered, LevelFilter};
use tracing_subscriber::layer::{Context as FilterContext, Filter};
use tracing_subscriber::registry::LookupSpan;

use self::exporter::Exporter;
pub use self::layer::TraceLayer;
use crate::config::TelemetryConfig;
use crate::{Error, Result};

/// The metrics of trace export, recorded through the `metrics` facade.
pub mod metrics {
    /// Counter: spans the collector accepted.
    pub const SPANS_EXPORTED_TOTAL: &str = "pybridge_telemetry_spans_exported_total";
    /// Counter: spans lost, by `reason`: `queue_full` (the export queue was
    /// full when the span ended), `export_failed` (the collector was
    /// unreachable, slow or refused the batch) or `rejected` (its partial
    /// success turned these spans away).
    pub const SPANS_DROPPED_TOTAL: &str = "pybridge_telemetry_spans_dropped_total";
    /// The `reason` label key of [`SPANS_DROPPED_TOTAL`].
    pub const REASON: &str = "reason";

    /// Registers the descriptions of the metrics above with the installed
    /// recorder.
    pub fn describe() {
        metrics::describe_counter!(
            SPANS_EXPORTED_TOTAL,
            metrics::Unit::Count,
            "Spans handed to the OTLP collector."
        );
        metrics::describe_counter!(
            SPANS_DROPPED_TOTAL,
            metrics::Unit::Count,
            "Spans lost before reaching the OTLP collector, by reason (queue_full, export_failed, rejected)."
        );
    }
}

mod exporter;
mod layer;
mod otlp;

/// The gateway's span of one HTTP request, which may start a trace.
const REQUEST_SPAN: &str = "http.request";

/// The name of the instrumentation scope of pybridge's spans.
const SCOPE: &str = "pybridge";

/// Trace export, set up from a [`TelemetryConfig`] and the standard
/// `OTEL_*` variables. Cheap to clone; clones share the exporter.
#[derive(Debug, Clone)]
pub struct Telemetry {
    inner: Option<Arc<Exporting>>,
}

#[derive(Debug)]
struct Exporting {
    processor: Arc<Gated>,
    ratio: f64,
    endpoint: String,
    sampling: Sampling,
}

impl Telemetry {
    /// Export on when an endpoint is set: `telemetry.otlp_endpoint`, else
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as given) or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended); off otherwise,
    /// and when `OTEL_SDK_DISABLED=true`. Nothing is sent until spans end.
    ///
    /// # Errors
    /// [`Error::Build`] when the exporter cannot be built: a malformed
    /// endpoint or header (from the config or `OTEL_EXPORTER_OTLP_HEADERS`),
    /// or a compression or protocol other than uncompressed `http/protobuf`
    /// asked for by the standard variables.
    pub fn from_config(config: &TelemetryConfig) -> Result<Telemetry> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(Telemetry::disabled());
        }
        let configured = config.otlp_endpoint.as_deref().map(traces_url);
        let endpoint = match &configured {
            Some(url) => url.clone(),
            None => match (
                env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
                env("OTEL_EXPORTER_OTLP_ENDPOINT"),
            ) {
                (Some(url), _) => url,
                (None, Some(base)) => traces_url(&base),
                (None, None) => return Ok(Telemetry::disabled()),
            },
        };
        let build_error = |message: String| Error::Build {
            part: "trace exporter (telemetry)",
            source: message.into(),
        };
        // The signal's own variable first, as the specification reads them.
        let standard = |name: &'static str| {
            let traces = name.replacen("OTLP_", "OTLP_TRACES_", 1);
            env(&traces)
                .map(|value| (traces, value))
                .or_else(|| env(name).map(|value| (name.to_string(), value)))
        };
        exporter::check_wire(
            refs(&standard("OTEL_EXPORTER_OTLP_COMPRESSION")),
            refs(&standard("OTEL_EXPORTER_OTLP_PROTOCOL")),
        )
        .map_err(build_error)?;
        let headers = exporter::headers(
            refs(&standard("OTEL_EXPORTER_OTLP_HEADERS")),
            &config.headers,
        )
        .map_err(build_error)?;
        let gate = Arc::new(Gate {
            pending: AtomicUsize::new(0),
            capacity: config.max_queue,
        });
        let exporter = Exporter::new(
            exporter::Target {
                url: &endpoint,
                headers,
                timeout: config.export_timeout,
            },
            Arc::clone(&gate),
        )
        .map_err(build_error)?;
        let batch = BatchSpanProcessor::builder(exporter)
            .with_batch_config(
                BatchConfigBuilder::default()
                    .with_max_queue_size(config.max_queue)
                    .build(),
            )
            .build();
        let mut processor = Gated {
            inner: batch,
            gate,
            shutdown_timeout: config.shutdown_timeout,
            shut: Arc::new(AtomicBool::new(false)),
        };
        processor.set_resource(&resource(config));
        let ratio = sample_ratio(config);
        Ok(Telemetry {
            inner: Some(Arc::new(Exporting {
                processor: Arc::new(processor),
                ratio,
                endpoint,
                sampling: Sampling {
                    threshold: threshold(ratio),
                },
            })),
        })
    }

    /// No export.
    pub fn disabled() -> Telemetry {
        Telemetry { inner: None }
    }

    /// Where spans go, when export is on.
    pub fn endpoint(&self) -> Option<&str> {
        self.inner.as_deref().map(|e| e.endpoint.as_str())
    }

    /// The `tracing` layer that turns spans into OpenTelemetry spans, when
    /// export is on, with its own filter: pybridge's spans (`debug`, below
    /// the usual log level) but not the gateway's per-connection span, the
    /// application's spans at `info` and above, and warnings and errors as
    /// span events. A call that starts a trace is drawn by the bridge before
    /// its span opens, so a call left out costs next to nothing; calls
    /// inside a traced span, and the gateway's requests (whose `traceparent`
    /// decides), are left to the sampler.
    ///
    /// Add it only when it is `Some`: with tracing-subscriber 0.3, a `None`
    /// layer beside layers that have their own filters enables every span
    /// (each call's spans are then built for no one), so branch, or collect
    /// the layers you have into one `Vec<Box<dyn Layer<_>>>`, this one first
    /// (each call looks its filter up in the subscriber, in layer order).
    ///
    /// Spans keep the conventions of tracing-opentelemetry: the fields
    /// `otel.name`, `otel.kind` and `otel.status_code` (with
    /// `otel.status_description`) set the span's name, kind and status
    /// instead of becoming attributes; events at `warn` and `error` inside a
    /// span become its events, named by their message; an `error` event, or
    /// one with an `error` field, marks the span's status as an error.
    /// Integers that fit in 64 bits are exported as integers, other values
    /// that are not booleans, floats or strings as their `Debug` text (an
    /// error as its `Display` text). A span ends when it closes. After
    /// [`Telemetry::shutdown`], spans get no context and nothing is queued.
    ///
    /// Entering a span does not make its OpenTelemetry context current
    /// (`opentelemetry::Context::current()`); to continue a pybridge span
    /// elsewhere, take its context from the span itself ([`span_context`]).
    pub fn layer<S>(&self) -> Option<Filtered<TraceLayer, Sampling, S>>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span>,
    {
        let exporting = self.inner.as_deref()?;
        SAMPLING_BUILT.store(true, Ordering::Relaxed);
        let processor: Arc<dyn SpanProcessor> = exporting.processor.clone();
        let shut = Arc::clone(&exporting.processor.shut);
        Some(
            TraceLayer::new::<S>(processor, shut, SCOPE, exporting.ratio)
                .with_filter(exporting.sampling.clone()),
        )
    }

    /// Sends every finished span now and waits for the collector (at most
    /// about `export_timeout`). Blocking: call it off the async runtime's
    /// threads. Returns whether the spans were handed over.
    pub fn force_flush(&self) -> bool {
        self.inner
            .as_deref()
            .is_some_and(|e| e.processor.force_flush().is_ok())
    }

    /// Flushes what is buffered and stops export, waiting at most
    /// `telemetry.shutdown_timeout`. Blocking: call it off the async
    /// runtime's threads. Returns whether everything was handed over in
    /// time (the collector's answer aside); spans ended later are dropped.
    pub fn shutdown(&self) -> bool {
        match self.inner.as_deref() {
            Some(e) => e
                .processor
                .shutdown_with_timeout(e.processor.shutdown_timeout)
                .is_ok(),
            None => true,
        }
    }
}

/// Continues the caller's trace: makes `span`'s parent the W3C trace
/// context in `traceparent` and `tracestate` (as read by `get`, a header
/// lookup). Without a valid `traceparent`, `span` stays a root. Call it
/// before the span is entered.
pub fn set_parent_from<'a>(span: &tracing::Span, get: impl Fn(&str) -> Option<&'a str>) {
    if span.is_disabled() {
        return;
    }
    let traceparent = get("traceparent");
    let Some(traceparent) = traceparent else {
        return;
    };
    let headers = Headers {
        traceparent,
        tracestate: get("tracestate"),
    };
    let cx = TraceContextPropagator::new()
        .extract_with_context(&opentelemetry::Context::new(), &headers);
    let parent = cx.span().span_context().clone();
    if parent.is_valid() {
        layer::set_parent(span, parent);
    }
}

/// The OpenTelemetry context of `span`, when trace export sees it: to
/// continue a pybridge span elsewhere (in a message to another service, or
/// as the parent of a span of another tracer). Valid whether or not the
/// trace is sampled; `is_sampled` says which.
pub fn span_context(span: &tracing::Span) -> Option<SpanContext> {
    if span.is_disabled() {
        return None;
    }
    layer::context_of(span).filter(SpanContext::is_valid)
}

/// The trace and span ids of `span`, as lowercase hex, when it belongs to
/// an exported trace: for log lines that join the trace.
pub fn ids(span: &tracing::Span) -> Option<(String, String)> {
    span_context(span).map(|sc| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

/// The filter of [`Telemetry::layer`]: which spans and events become
/// OpenTelemetry data, and the ratio at which the bridge keeps calls that
/// start a trace (read through the subscriber, so each subscriber has its
/// own).
#[derive(Debug, Clone)]
pub struct Sampling {
    /// A call is kept when a uniform 64-bit draw is below this; `u64::MAX`
    /// (a ratio of 1) keeps every call without drawing.
    threshold: u64,
}

fn threshold(ratio: f64) -> u64 {
    if ratio >= 1.0 {
        u64::MAX
    } else {
        // Saturating: a ratio just below 1 maps to just below the top.
        (ratio.max(0.0) * u64::MAX as f64) as u64
    }
}

/// Set once a [`Sampling`] filter has been built in this process: until
/// then no subscriber can export, and [`keep_call`] asks no dispatcher.
static SAMPLING_BUILT: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Spans that a [`Sampling`] filter let through, entered on this thread
    /// and not yet exited (counted by the filter's `on_enter`/`on_exit`).
    /// At zero the current span cannot belong to a trace, so the call path
    /// skips looking it up; otherwise it asks the span itself.
    static ENTERED: Cell<usize> = const { Cell::new(0) };
    /// This thread's draw state (see [`draw`]).
    static DRAW_STATE: Cell<u64> = const { Cell::new(0) };
}

/// Whether the bridge should open a traced span for a call made in the
/// current span: always without trace export in the current subscriber,
/// inside a traced span (the sampler follows the parent) and at a ratio of
/// 1; otherwise by a draw at the configured ratio.
pub(crate) fn keep_call() -> bool {
    if !SAMPLING_BUILT.load(Ordering::Relaxed) {
        return true;
    }
    let drawn = tracing::dispatcher::get_default(|dispatch| {
        dispatch
            .downcast_ref::<Sampling>()
            .is_none_or(|sampling| sampling.threshold == u64::MAX || draw(sampling.threshold))
    });
    // Outside the closure: inside it the current span cannot be looked up
    // (a nested `get_default` sees no subscriber), and a call in a traced
    // span would lose its own span.
    drawn || in_traced_span()
}

/// Whether the current span belongs to an OpenTelemetry trace; without a
/// lookup when no span that trace export sees is entered on this thread.
pub(crate) fn in_traced_span() -> bool {
    // Unknown while the thread is being torn down: ask the span.
    let entered = ENTERED.try_with(Cell::get).unwrap_or(1);
    entered > 0 && is_traced(&tracing::Span::current())
}

/// Whether a uniform draw falls below `threshold`.
fn draw(threshold: u64) -> bool {
    random() < threshold
}

/// SplitMix64 over a per-thread state: uniform enough for sampling (and for
/// the export's retry jitter), no shared cache line, no lock and no
/// allocation. Each thread starts at its own point of one shared sequence.
fn random() -> u64 {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;
    static SEEDS: AtomicU64 = AtomicU64::new(0x853c_49e6_748f_ea9b);
    let step = |state: &Cell<u64>| {
        let mut z = state.get();
        if z == 0 {
            // A new thread: a seed far from every other thread's.
            z = mix(SEEDS.fetch_add(GAMMA, Ordering::Relaxed)) | 1;
        }
        z = z.wrapping_add(GAMMA);
        state.set(z);
        mix(z)
    };
    // During thread teardown: a fresh seed, drawn once.
    DRAW_STATE
        .try_with(step)
        .unwrap_or_else(|_| mix(SEEDS.fetch_add(GAMMA, Ordering::Relaxed)))
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Sampling {
    fn ours(meta: &Metadata<'_>) -> bool {
        meta.target().starts_with("pybridge")
    }
}

impl<S: tracing::Subscriber + for<'span> LookupSpan<'span>> Filter<S> for Sampling {
    fn enabled(&self, meta: &Metadata<'_>, cx: &FilterContext<'_, S>) -> bool {
        if !meta.is_span() {
            return *meta.level() <= Level::WARN;
        }
        if !Sampling::ours(meta) {
            return *meta.level() <= Level::INFO;
        }
        if *meta.level() > Level::DEBUG || meta.name() == "connection" {
            return false;
        }
        // Inside a traced span the sampler follows the parent. A gateway
        // request's parent is only known once its headers are read; a call
        // that starts a trace was drawn by the bridge; any other span of
        // ours outside a traced one belongs to a call left out.
        if meta.target() == UNTRACED_CALL_TARGET {
            return false;
        }
        match meta.name() {
            // Drawn by the bridge before the span opened; a call's attempt
            // and round-trip spans are opened, with their parent named,
            // only for a call whose span is traced.
            REQUEST_SPAN | CALL_SPAN | ATTEMPT_SPAN | WORKER_SPAN => true,
            _ => cx.lookup_current().is_some(),
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::DEBUG)
    }

    fn on_enter(&self, _id: &tracing::span::Id, _cx: FilterContext<'_, S>) {
        let _ = ENTERED.try_with(|n| n.set(n.get() + 1));
    }

    fn on_exit(&self, _id: &tracing::span::Id, _cx: FilterContext<'_, S>) {
        let _ = ENTERED.try_with(|n| n.set(n.get().saturating_sub(1)));
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_span() && Sampling::ours(meta) && *meta.level() <= Level::DEBUG {
            // Decided per span: it depends on the parent and the draw.
            Interest::sometimes()
        } else if self.enabled_statically(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }
}

impl Sampling {
    fn enabled_statically(&self, meta: &Metadata<'_>) -> bool {
        match (meta.is_span(), Sampling::ours(meta)) {
            (false, _) => *meta.level() <= Level::WARN,
            (true, false) => *meta.level() <= Level::INFO,
            (true, true) => false,
        }
    }
}

/// The fraction of traces started here that are kept:
/// `telemetry.sample_ratio`, else the standard `OTEL_TRACES_SAMPLER`
/// variables (`*always_on`, `*always_off`, `*traceidratio` with
/// `OTEL_TRACES_SAMPLER_ARG`), else all. A trace continued from a caller
/// always follows the caller's decision.
fn sample_ratio(config: &TelemetryConfig) -> f64 {
    if let Some(ratio) = config.sample_ratio {
        return ratio;
    }
    let sampler = std::env::var("OTEL_TRACES_SAMPLER").unwrap_or_default();
    match sampler.trim().to_ascii_lowercase().as_str() {
        "always_off" | "parentbased_always_off" => 0.0,
        "traceidratio" | "parentbased_traceidratio" => std::env::var("OTEL_TRACES_SAMPLER_ARG")
            .ok()
            .and_then(|arg| arg.trim().parse::<f64>().ok())
            .filter(|r| (0.0..=1.0).contains(r))
            .unwrap_or(1.0),
        _ => 1.0,
    }
}

/// Whether `span` belongs to an OpenTelemetry trace (sampled or not).
pub(crate) fn is_traced(span: &tracing::Span) -> bool {
    span_context(span).is_some()
}

/// A span's W3C trace context, formatted for a request's `_meta`; the
/// `traceparent` lives on the stack, so a call that carries one allocates
/// only for a non-empty `tracestate`.
#[derive(Debug)]
pub(crate) struct WireContext {
    traceparent: [u8; 55],
    tracestate: Option<String>,
}

impl WireContext {
    /// The context of `span`, when it has a valid one (sampled or not: a
    /// worker must follow the caller's decision, not sample on its own).
    /// Costs one check when no OpenTelemetry layer sees the span.
    pub(crate) fn of(span: &tracing::Span) -> Option<WireContext> {
        let sc = span_context(span)?;
        let mut traceparent = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex_into(&mut traceparent[3..35], &sc.trace_id().to_bytes());
        hex_into(&mut traceparent[36..52], &sc.span_id().to_bytes());
        hex_into(&mut traceparent[53..55], &[sc.trace_flags().to_u8()]);
        // The propagator writes an empty tracestate; workers see none.
        let tracestate = (*sc.trace_state() != TraceState::NONE)
            .then(|| sc.trace_state().header())
            .filter(|s| !s.is_empty());
        Some(WireContext {
            traceparent,
            tracestate,
        })
    }

    /// The `_meta` member to send.
    pub(crate) fn meta(&self) -> Meta<'_> {
        Meta {
            traceparent: std::str::from_utf8(&self.traceparent).ok(),
            tracestate: self.tracestate.as_deref(),
        }
    }
}

fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
}

/// The OTLP/HTTP traces URL for a base address, as the standard variable
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is read; a URL that already names
/// `/v1/traces` is used as given.
fn traces_url(base: &str) -> String {
    let base = base.trim().trim_end_matches('/');
    if base.ends_with("/v1/traces") {
        base.to_string()
    } else {
        format!("{base}/v1/traces")
    }
}

fn resource(config: &TelemetryConfig) -> Resource {
    let builder = Resource::builder();
    let from_env = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
    match &config.service_name {
        Some(name) => builder.with_service_name(name.clone()),
        None if from_env => builder,
        None => builder.with_service_name("pybridge"),
    }
    .build()
}

/// A standard variable's name and value, borrowed.
fn refs(found: &Option<(String, String)>) -> Option<(&str, &str)> {
    found
        .as_ref()
        .map(|(name, value)| (name.as_str(), value.as_str()))
}

/// Header lookups for the propagator.
struct Headers<'a> {
    traceparent: &'a str,
    tracestate: Option<&'a str>,
}

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.traceparent),
            "tracestate" => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// Counts finished spans from the moment they are queued until their export
/// returns. The batch processor drops spans past its queue without saying
/// so; holding the same bound in front of it makes every such drop ours to
/// count, and it never sees a full queue.
#[derive(Debug)]
struct Gate {
    pending: AtomicUsize,
    capacity: usize,
}

impl Gate {
    fn try_take(&self) -> bool {
        self.pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_ok()
    }

    fn release(&self, n: usize) {
        // Never below zero, whatever the processor does.
        let _ = self
            .pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                Some(p.saturating_sub(n))
            });
    }
}

fn count_dropped(reason: &'static str, n: usize) {
    ::metrics::counter!(metrics::SPANS_DROPPED_TOTAL, metrics::REASON => reason)
        .increment(n as u64);
}

/// The batch processor behind the [`Gate`].
#[derive(Debug)]
struct Gated {
    inner: BatchSpanProcessor,
    gate: Arc<Gate>,
    /// How long a shutdown, or dropping the last handle, waits for the
    /// spans still queued (`telemetry.shutdown_timeout`).
    shutdown_timeout: Duration,
    /// Set by the first shutdown: later spans are neither traced nor
    /// queued, and no shutdown waits twice.
    shut: Arc<AtomicBool>,
}

impl Drop for Gated {
    fn drop(&mut self) {
        // What an SDK tracer provider does when its last handle goes: the
        // batch thread flushes and stops, unless it was shut down already.
        if !self.shut.swap(true, Ordering::AcqRel) {
            let _ = self.inner.shutdown_with_timeout(self.shutdown_timeout);
        }
    }
}

impl SpanProcessor for Gated {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        // The batch processor ignores unsampled spans; so does the count.
        // After shutdown it would drop the span without giving its place in
        // the gate back.
        if !span.span_context.is_sampled() || self.shut.load(Ordering::Acquire) {
            return;
        }
        if self.gate.try_take() {
            self.inner.on_end(span);
        } else {
            count_dropped("queue_full", 1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.shut.swap(true, Ordering::AcqRel) {
            return Err(opentelemetry_sdk::error::OTelSdkError::AlreadyShutdown);
        }
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

#[cfg(test)]
mod tests;
