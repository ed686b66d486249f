//! Trace export for the commands: the OpenTelemetry layer beside the log
//! layer, trace ids in JSON log lines, and a bounded flush at exit.
//!
//! Built without the `otel` feature, the same functions exist and export
//! nothing: a configured endpoint is then a usage error, not a silent no-op.

use std::fmt;

use pybridge::config::TelemetryConfig;
#[cfg(feature = "otel")]
pub(crate) use pybridge::otel::Telemetry;
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Sets export up from the configuration and the `OTEL_*` variables; off
/// without an endpoint. A malformed setting is a usage error.
#[cfg(feature = "otel")]
pub(crate) fn start(config: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    Telemetry::from_config(config).map_err(|e| anyhow::anyhow!(e.report()))
}

/// Export off; an endpoint from the configuration or the standard
/// variables cannot be honoured by this build.
#[cfg(not(feature = "otel"))]
pub(crate) fn start(config: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    let variable = [
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ]
    .into_iter()
    .find(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()));
    if let Some(source) = config
        .otlp_endpoint
        .as_ref()
        .map(|_| "telemetry.otlp_endpoint")
        .or(variable)
    {
        anyhow::bail!(
            "{source} is set, but this pybridge was built without the `otel` feature: \
             rebuild it with `--features otel` or unset {source}"
        );
    }
    Ok(Telemetry)
}

/// Trace export compiled out: never an endpoint, never a layer.
#[cfg(not(feature = "otel"))]
#[derive(Debug, Default)]
pub(crate) struct Telemetry;

#[cfg(not(feature = "otel"))]
impl Telemetry {
    pub(crate) fn disabled() -> Telemetry {
        Telemetry
    }

    pub(crate) fn endpoint(&self) -> Option<&str> {
        None
    }

    /// Nothing is buffered; reports a flush that finished.
    fn shutdown(self) -> bool {
        true
    }
}

/// The OpenTelemetry layer, when export is on, with its own filter (see
/// `Telemetry::layer`): pybridge's spans below the log level, not the
/// gateway's per-connection span (each HTTP request starts its own trace),
/// and head sampling of calls.
#[cfg(feature = "otel")]
pub(crate) fn layer<S>(telemetry: &Telemetry) -> Option<impl Layer<S> + Send + Sync + 'static>
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    telemetry.layer::<S>()
}

#[cfg(not(feature = "otel"))]
pub(crate) fn layer<S>(_: &Telemetry) -> Option<impl Layer<S> + Send + Sync + 'static>
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    None::<tracing_subscriber::layer::Identity>
}

/// The trace and span ids of `span` when it is exported.
#[cfg(feature = "otel")]
fn ids(span: &tracing::Span) -> Option<(String, String)> {
    pybridge::otel::ids(span)
}

#[cfg(not(feature = "otel"))]
fn ids(_: &tracing::Span) -> Option<(String, String)> {
    None
}

/// Continues the caller's W3C trace from its headers in `span`.
#[cfg(feature = "otel")]
pub(crate) fn set_parent_from<'h>(span: &tracing::Span, header: impl Fn(&str) -> Option<&'h str>) {
    pybridge::otel::set_parent_from(span, header);
}

#[cfg(not(feature = "otel"))]
pub(crate) fn set_parent_from<'h>(_: &tracing::Span, _: impl Fn(&str) -> Option<&'h str>) {}

/// Describes the export's own metrics to the recorder.
pub(crate) fn describe_metrics() {
    #[cfg(feature = "otel")]
    pybridge::otel::metrics::describe();
}

/// Logs where export stands, once the subscriber is installed.
pub(crate) fn announce(telemetry: &Telemetry) {
    if let Some(endpoint) = telemetry.endpoint() {
        tracing::info!(endpoint, "exporting traces over OTLP/HTTP");
    }
}

/// Flushes buffered spans at exit, within `telemetry.shutdown_timeout`.
pub(crate) async fn shutdown(telemetry: Telemetry) {
    if telemetry.endpoint().is_none() {
        return;
    }
    // The flush blocks on the exporter's thread; keep it off the runtime's.
    let flushed = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    if !matches!(flushed, Ok(true)) {
        tracing::warn!("trace export did not finish within telemetry.shutdown_timeout");
    }
}

/// A JSON event format that adds `trace_id` and `span_id` to each line
/// written inside an exported span, so logs and traces join up.
#[derive(Debug)]
pub(crate) struct WithTraceIds<F>(pub(crate) F);

impl<S, N, F> FormatEvent<S, N> for WithTraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some((trace_id, span_id)) = ids(&tracing::Span::current()) else {
            return self.0.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        if let Some(end) = line.rfind('}') {
            let ids = format!(",\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\"");
            line.insert_str(end, &ids);
        }
        writer.write_str(&line)
    }
}
