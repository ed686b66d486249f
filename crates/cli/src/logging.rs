//! Logs go to stderr, never stdout (stdout carries results). With trace
//! export on, the OpenTelemetry layer sits beside the log layer with its own
//! filter, and JSON lines carry `trace_id` and `span_id`.

use pybridge::config::{LogConfig, LogFormat};
use pybridge::otel::Telemetry;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::telemetry::WithTraceIds;

/// Installs the subscriber: `RUST_LOG` if set, else the configured level,
/// and the trace export layer when `telemetry` exports.
pub(crate) fn init(config: &LogConfig, telemetry: &Telemetry) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&config.level).ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = match (config.format, telemetry.endpoint().is_some()) {
        (LogFormat::Json, true) => fmt
            .json()
            .event_format(WithTraceIds(tracing_subscriber::fmt::format().json()))
            .with_filter(filter)
            .boxed(),
        (LogFormat::Json, false) => fmt.json().with_filter(filter).boxed(),
        _ => fmt.with_filter(filter).boxed(),
    };
    // A second install (tests run commands in one process) is harmless.
    let _ = Registry::default()
        .with(logs)
        .with(crate::telemetry::layer(telemetry))
        .try_init();
    crate::telemetry::announce(telemetry);
}
