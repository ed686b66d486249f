//! Logs go to stderr, never stdout (stdout carries results).

use pybridge::config::{LogConfig, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the subscriber: `RUST_LOG` if set, else the configured level.
pub(crate) fn init(config: &LogConfig) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(&config.level).ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second install (tests run commands in one process) is harmless.
    let _ = match config.format {
        LogFormat::Json => builder.json().try_init(),
        _ => builder.try_init(),
    };
}
