//! Turning command-line flags into configuration layers, and choosing the worker.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use pybridge::config::{LoadOptions, Source};
use pybridge::{Bridge, Config};

/// Flags every subcommand takes.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// A TOML configuration file.
    #[arg(long, global = true, value_name = "FILE", env = "PYBRIDGE_CONFIG_FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The number of workers.
    #[arg(long, global = true, value_name = "N")]
    pub(crate) workers: Option<usize>,
    /// Threads of the async runtime (default: every core for `serve`; for
    /// the other commands the cores the local workers leave free, one at
    /// least).
    #[arg(
        long,
        global = true,
        value_name = "N",
        env = "PYBRIDGE_RUNTIME_THREADS"
    )]
    pub(crate) runtime_threads: Option<std::num::NonZeroUsize>,
    /// A preset: development, production or low-latency.
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) preset: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum)]
    pub(crate) log_format: Option<LogFormatArg>,
    /// Log level or `tracing` filter directives (default from the configuration: warn).
    #[arg(long, global = true, value_name = "FILTER")]
    pub(crate) log_level: Option<String>,
    /// Export traces over OTLP/HTTP to this collector address, such as
    /// `http://127.0.0.1:4318` (`telemetry.otlp_endpoint`; the standard
    /// `OTEL_EXPORTER_OTLP_*` variables apply without it).
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) otlp_endpoint: Option<String>,
    /// A remote worker to dial, `tcp://HOST:PORT` or `unix:/path/to.sock`
    /// (repeatable; sets `worker.connect`). For `conform`: the one listening
    /// worker to check instead of spawning one.
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) connect: Vec<String>,
    /// The shared cache tier on Redis, e.g. `redis://127.0.0.1:6379/0`
    /// (`cache.redis_url`; env `PYBRIDGE_CACHE__REDIS_URL`).
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) redis_url: Option<String>,
    /// The Python interpreter that runs the embedded worker, when no worker
    /// command is given.
    #[arg(
        long,
        global = true,
        value_name = "PROGRAM",
        env = "PYBRIDGE_PYTHON",
        default_value = "python3"
    )]
    pub(crate) python: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LogFormatArg {
    Pretty,
    Json,
}

/// `pybridge config`.
#[derive(Debug, Args)]
pub(crate) struct ConfigArgs {
    /// The worker program and its arguments.
    #[arg(last = true, value_name = "WORKER")]
    pub(crate) worker: Vec<String>,
}

impl GlobalArgs {
    /// The layers: the file, the process environment, and these flags plus
    /// the subcommand's own.
    pub(crate) fn load_options(
        &self,
        extra: &[(&str, toml::Value, &str)],
        worker: &[String],
    ) -> LoadOptions {
        let mut options = LoadOptions::new().process_env();
        if let Some(file) = &self.config {
            options = options.file(file);
        }
        if let Some(n) = self.workers {
            options = options.flag("pool.min_workers", n as i64, "--workers");
        }
        if let Some(preset) = &self.preset {
            options = options.flag("preset", preset.as_str(), "--preset");
        }
        if let Some(format) = self.log_format {
            let name = match format {
                LogFormatArg::Pretty => "pretty",
                LogFormatArg::Json => "json",
            };
            options = options.flag("log.format", name, "--log-format");
        }
        if let Some(level) = &self.log_level {
            options = options.flag("log.level", level.as_str(), "--log-level");
        }
        if let Some(endpoint) = &self.otlp_endpoint {
            options = options.flag(
                "telemetry.otlp_endpoint",
                endpoint.as_str(),
                "--otlp-endpoint",
            );
        }
        if !self.connect.is_empty() {
            let urls: Vec<toml::Value> = self
                .connect
                .iter()
                .map(|u| toml::Value::String(u.clone()))
                .collect();
            options = options.flag("worker.connect", toml::Value::Array(urls), "--connect");
        }
        if let Some(url) = &self.redis_url {
            options = options.flag("cache.redis_url", url.as_str(), "--redis-url");
        }
        for (key, value, flag) in extra {
            options = options.flag(key, value.clone(), flag);
        }
        if !worker.is_empty() {
            let command: Vec<toml::Value> = worker
                .iter()
                .map(|a| toml::Value::String(a.clone()))
                .collect();
            options = options.flag("worker.command", toml::Value::Array(command), "--");
        }
        options
    }
}

/// Loads the configuration and fills in the embedded worker when no command is set.
pub(crate) fn load(
    global: &GlobalArgs,
    extra: &[(&str, toml::Value, &str)],
    worker: &[String],
) -> Result<Config> {
    let mut config = Config::load(&global.load_options(extra, worker))?.config;
    if config.worker.command.is_empty() {
        // Unpacking writes a few files once; this thread may block for it.
        config.worker.command =
            tokio::task::block_in_place(|| crate::embedded::default_command(&global.python))?;
    }
    Ok(config)
}

pub(crate) async fn start(config: Config) -> Result<Bridge> {
    Bridge::from_config(config)
        .await
        .map_err(|e| anyhow::anyhow!(e.report()))
        .context("starting the bridge")
}

/// For a long-running command: compiles every method's schemas now, on a
/// blocking thread, instead of on each method's first call on a runtime
/// thread. A schema that does not compile is logged with where it is; calls
/// to its method fail with a configuration error that says the same.
pub(crate) fn compile_schemas_ahead(bridge: &Bridge) -> tokio::task::JoinHandle<()> {
    let catalog = bridge.catalog().clone();
    tokio::task::spawn_blocking(move || {
        for spec in catalog.methods() {
            if let Err(error) = spec.compile_schemas() {
                tracing::warn!(method = spec.name(), %error, "a schema does not compile");
            }
        }
    })
}

pub(crate) fn print_config(global: &GlobalArgs, args: &ConfigArgs) -> Result<ExitCode> {
    let settings = Config::effective(&global.load_options(&[], &args.worker))?;
    let mut text = String::new();
    for setting in settings {
        let source = match &setting.source {
            Source::Default => String::from("default"),
            other => other.to_string(),
        };
        text.push_str(&format!(
            "{} = {}    # {}\n",
            setting.key, setting.value, source
        ));
    }
    // Not settings of the bridge but of the process (src/runtime.rs).
    use crate::runtime::{Work, threads};
    text.push_str(&if global.runtime_threads.is_some() {
        format!(
            "# runtime threads: {} (--runtime-threads)\n",
            threads(global, Work::Pool)
        )
    } else {
        format!(
            "# runtime threads: serve {} (every core); bench, mcp {} (the cores the local workers leave free, one at least)\n",
            threads(global, Work::Gateway),
            threads(global, Work::Pool)
        )
    });
    crate::out::print(&text)?;
    Ok(ExitCode::SUCCESS)
}
