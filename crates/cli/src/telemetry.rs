//! Trace export for the commands: the OpenTelemetry layer beside the log
//! layer, trace ids in JSON log lines, and a bounded flush at exit.

use std::fmt;

use pybridge::config::TelemetryConfig;
use pybridge::otel::Telemetry;
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Sets export up from the configuration and the `OTEL_*` variables; off
/// without an endpoint. A malformed setting is a usage error.
pub(crate) fn start(config: &TelemetryConfig) -> anyhow::Result<Telemetry> {
    Telemetry::from_config(config).map_err(|e| anyhow::anyhow!(e.report()))
}

/// The OpenTelemetry layer, when export is on, with its own filter (see
/// `Telemetry::layer`): pybridge's spans below the log level, not the
/// gateway's per-connection span (each HTTP request starts its own trace),
/// and head sampling of calls.
pub(crate) fn layer<S>(telemetry: &Telemetry) -> Option<impl Layer<S> + Send + Sync + 'static>
where
    S: Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
{
    telemetry.layer::<S>()
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
        let Some((trace_id, span_id)) = pybridge::otel::ids(&tracing::Span::current()) else {
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
