//! Logs go to stderr, never stdout (stdout carries results). What workers
//! write to their stderr (including a redirected `print()`) reaches the
//! operator by default, one `[worker N] line` per line. With trace export
//! on, the OpenTelemetry layer sits beside the log layers with its own
//! filter, and JSON lines carry `trace_id` and `span_id`.

use std::io::Write as _;

use crate::telemetry::Telemetry;
use pybridge::config::{LogConfig, LogFormat};
use tracing::field::{Field, Visit};
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::telemetry::WithTraceIds;

/// The target of the pool's events carrying one line of a worker's stderr.
const WORKER_STDERR: &str = "pybridge_pool::worker_stderr";

/// Installs the subscriber: `RUST_LOG` if set, else the configured level.
///
/// Worker stderr lines are shown whatever the level, unless the filter
/// names their target itself (`pybridge_pool::worker_stderr=off` hides
/// them). In text format they are printed as `[worker N] line`; in JSON
/// format they are JSON events like every other. The trace export layer is
/// added when `telemetry` exports.
pub(crate) fn init(config: &LogConfig, telemetry: &Telemetry) {
    init_with(config, telemetry, None);
}

/// A layer besides the log output, with its own filter (`pybridge mcp`
/// routes worker `$/log` lines to MCP clients through one).
pub(crate) type Extra = Box<dyn tracing_subscriber::Layer<Registry> + Send + Sync>;

/// [`init`], plus `extra`.
pub(crate) fn init_with(config: &LogConfig, telemetry: &Telemetry, extra: Option<Extra>) {
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| EnvFilter::try_new(v).is_ok())
        .unwrap_or_else(|| config.level.clone());
    let filter = || EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("warn"));
    let user_decides = directives.contains(WORKER_STDERR);
    let is_worker_line = || filter_fn(|meta| meta.target() == WORKER_STDERR);
    // Every layer, each with its own filter, in one `Vec` on the registry:
    // no `Option` layer and no empty `Vec`. A `None` layer beside per-layer
    // filters makes every callsite "always" enabled in tracing-subscriber
    // 0.3 (each call's spans built, entered and closed for no one), and an
    // empty `Vec` spoils the level hint so that worker lines are lost.
    // Trace export first: the bridge finds its sampling filter once per call
    // by downcasting the subscriber, which searches the layers in order.
    let mut layers: Vec<Extra> = crate::telemetry::layer::<Registry>(telemetry)
        .map(Layer::boxed)
        .into_iter()
        .chain(extra)
        .collect();
    match config.format {
        LogFormat::Json => {
            let main = if user_decides {
                filter()
            } else {
                filter().add_directive(
                    format!("{WORKER_STDERR}=info")
                        .parse()
                        .expect("a valid directive"),
                )
            };
            let json = tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr);
            layers.push(if telemetry.endpoint().is_some() {
                json.event_format(WithTraceIds(tracing_subscriber::fmt::format().json()))
                    .with_filter(main)
                    .boxed()
            } else {
                json.with_filter(main).boxed()
            });
        }
        _ => {
            layers.push(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_filter(filter().and(is_worker_line().not()))
                    .boxed(),
            );
            layers.push(if user_decides {
                WorkerLines
                    .with_filter(filter().and(is_worker_line()))
                    .boxed()
            } else {
                WorkerLines.with_filter(is_worker_line()).boxed()
            });
        }
    }
    // A second install (tests run commands in one process) is harmless.
    let _ = Registry::default().with(layers).try_init();
    crate::telemetry::announce(telemetry);
}

/// Prints the pool's worker stderr events as `[worker N] line`.
#[derive(Debug)]
struct WorkerLines;

impl<S: tracing::Subscriber> Layer<S> for WorkerLines {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut fields = LineFields::default();
        event.record(&mut fields);
        let worker = fields.worker.trim_start_matches('w');
        let mut err = std::io::stderr().lock();
        // Nowhere to report a failed write to stderr.
        let _ = writeln!(err, "[worker {worker}] {}", fields.line);
    }
}

/// The `worker` and `line` fields of a worker stderr event.
#[derive(Debug, Default)]
struct LineFields {
    worker: String,
    line: String,
}

impl Visit for LineFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record(field, value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record(field, format!("{value:?}"));
    }
}

impl LineFields {
    fn record(&mut self, field: &Field, value: String) {
        match field.name() {
            "worker" => self.worker = value,
            "line" => self.line = value,
            _ => {}
        }
    }
}
