//! The one `Config`: every setting of the bridge, its documented default, and
//! validation of the whole.
//!
//! Values come in layers, each overriding the one before: defaults, a
//! preset, a TOML file, `PYBRIDGE_<SECTION>__<KEY>` environment variables
//! (and `PYBRIDGE_PRESET`), then command-line flags. [`Config::load`] merges them and remembers where every value came
//! from, so an error names the key and its source, and
//! [`Config::effective`] can print both.
//!
//! # The original system's options
//!
//! Every option of the JavaScript bridge pybridge replaces has a counterpart:
//!
//! | original | here | note |
//! |---|---|---|
//! | `frameworkPath` | `worker.command`, `worker.cwd` | any program and arguments; the embedded framework by default |
//! | `pythonExecutable` | `worker.command` | the interpreter is the command's program (`pybridge`'s embedded worker: `--python`, `PYBRIDGE_PYTHON`) |
//! | `maxProcesses` | `pool.min_workers`, `pool.max_workers` | the pool also grows and shrinks |
//! | `processIdleTimeout` | `pool.idle_timeout` | shrinks an idle pool instead of respawning workers forever |
//! | `processStartupTimeout` | `worker.startup_timeout` | |
//! | `requestTimeout` | `call.timeout`, per method in the catalog or `methods.*.timeout` | one deadline per call, not per attempt |
//! | `maxConcurrentRequests` | `pool.max_in_flight` | per worker, and enforced |
//! | `retryAttempts` | `retry.max_retries` | counts retries after the first attempt (the original counted the first) |
//! | `retryBackoff` | `retry.backoff` | honoured (the original ignored it) |
//! | `retryInitialDelay`, `retryMaxDelay` | `retry.initial_delay`, `retry.max_delay` | the cap also bounds server hints |
//! | `circuitBreakerEnabled` | `breaker.enabled` | |
//! | `circuitBreakerThreshold` | `breaker.failure_threshold` with `breaker.mode = "consecutive"` | only the dependency's failures count; the default mode is a failure rate (`breaker.failure_rate`, `window`, `min_calls`) |
//! | `circuitBreakerTimeout` | `breaker.break_duration` | |
//! | `circuitBreakerHalfOpenRequests` | `breaker.half_open_successes`, `breaker.half_open_probes` | probes are capped |
//! | `cacheEnabled` | `cache.enabled`, per method in the catalog or `methods.*.cache` | |
//! | `l1MaxItems` | `cache.memory` | a byte budget: items of unknown size cannot bound memory |
//! | `l1TTL`, `l2TTL` | per method in the catalog, `methods.*.cache_ttl`, `methods.*.disk_ttl` | |
//! | `l2MaxSize` | `cache.disk_size` | |
//! | `l2Directory` | `cache.dir`, `cache.disk` | on by default (the original's was off by mistake) |
//! | `enableMetrics` | always on in `pybridge serve` | libraries record through the `metrics` facade at no cost without a recorder |
//! | `logLevel` | `log.level` | any `tracing` filter |
//! | `debug`, `verbose` | `log.level = "debug"`, the `development` preset | one knob instead of three |
//! | (none) | `worker.connect`, `worker.secret_file` | remote workers on TCP or Unix sockets |
//! | (none) | `log.format`, `gateway.*`, `telemetry.*`, `service.*`, `pool.recycle_*`, `pool.ping_*`, `retry.budget_*` | new |

mod layers;
mod presets;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

pub use layers::{ConfigError, LoadOptions, Setting, Source};
pub use presets::Preset;
/// A value as [`LoadOptions::flag`] takes it and [`Setting`] shows it.
pub use toml::Value;

/// What [`Config::load`] returns: the configuration, and every setting as
/// `key = value` with its source.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Loaded {
    /// The merged, validated configuration.
    pub config: Config,
    /// Every setting and where its value came from.
    pub settings: Vec<Setting>,
}

/// Every setting of a bridge. `Config::default()` is a working configuration
/// for two workers; the fields' docs give each default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Config {
    /// A named group of settings applied before the file's own (none by default).
    pub preset: Option<Preset>,
    /// What to run as a worker.
    pub worker: WorkerConfig,
    /// The pool of workers.
    pub pool: PoolSettings,
    /// Calls.
    pub call: CallConfig,
    /// Retries.
    pub retry: RetryConfig,
    /// Circuit breakers, one per method.
    pub breaker: BreakerSettings,
    /// The result cache.
    pub cache: CacheSettings,
    /// The method catalog and validation.
    pub service: ServiceSettings,
    /// Per-method overrides, by public method name.
    pub methods: BTreeMap<String, MethodSettings>,
    /// Logging (read by the CLI; libraries only emit through `tracing`).
    pub log: LogConfig,
    /// The HTTP gateway of `pybridge serve`.
    pub gateway: GatewayConfig,
    /// The MCP server of `pybridge mcp` and `/mcp`.
    pub mcp: McpConfig,
    /// Trace export over OTLP/HTTP (the `otel` feature).
    pub telemetry: TelemetryConfig,
}

/// What to run as a worker (`[worker]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct WorkerConfig {
    /// The worker program and its arguments, never run through a shell.
    /// Empty (the default) means the embedded reference framework worker of
    /// the `pybridge` command; a library user must set it.
    pub command: Vec<String>,
    /// The worker's working directory (default: the host's).
    pub cwd: Option<PathBuf>,
    /// Extra environment variables for the worker.
    pub env: BTreeMap<String, String>,
    /// Whether the worker inherits the host's environment (default true).
    pub inherit_env: bool,
    /// `ndjson` (default) or `content-length`.
    pub framing: FramingSetting,
    /// `announce` (`READY` or `$/ready`, the default), `ping` or `none`.
    pub handshake: HandshakeSetting,
    /// How long a worker may take to become ready (default 10 s).
    #[serde(with = "humantime_serde")]
    pub startup_timeout: Duration,
    /// The largest message in either direction (default 16 MiB).
    pub max_frame: ByteSize,
    /// Remote workers to dial, beside (or, with `pool.min_workers = 0` and
    /// `pool.max_workers = 0`, instead of) spawned ones: `tcp://HOST:PORT` or
    /// `unix:/path/to.sock`, one worker per entry (default: none). A single
    /// string is one entry (`PYBRIDGE_WORKER__CONNECT=tcp://h:7001`).
    #[serde(deserialize_with = "one_or_many")]
    pub connect: Vec<String>,
    /// A file holding the secret remote workers are authenticated with
    /// (trailing whitespace ignored); without it, `PYBRIDGE_WORKER_SECRET`.
    pub secret_file: Option<PathBuf>,
}

/// A list, or one string as a list of one.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            command: Vec::new(),
            cwd: None,
            env: BTreeMap::new(),
            inherit_env: true,
            framing: FramingSetting::Ndjson,
            handshake: HandshakeSetting::Announce,
            startup_timeout: Duration::from_secs(10),
            max_frame: ByteSize::mib(16),
            connect: Vec::new(),
            secret_file: None,
        }
    }
}

/// How messages are delimited on a worker's pipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum FramingSetting {
    /// One JSON value per line.
    Ndjson,
    /// LSP-style `Content-Length` headers.
    ContentLength,
}

/// How a worker's readiness is detected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum HandshakeSetting {
    /// `READY` on stdout or a `$/ready` notification.
    Announce,
    /// A `$/ping` request.
    Ping,
    /// None: ready when spawned.
    None,
}

/// The pool of workers (`[pool]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PoolSettings {
    /// Workers kept running (default 2). Setting it sets `max_workers` too,
    /// unless that is set.
    pub min_workers: usize,
    /// The most workers under sustained queueing (default: `min_workers`).
    pub max_workers: Option<usize>,
    /// Calls in flight per worker (default 64).
    pub max_in_flight: usize,
    /// Calls that may wait for a worker (default 16,384).
    pub queue_capacity: usize,
    /// Queueing time that adds a worker (default 1 s).
    #[serde(with = "humantime_serde")]
    pub grow_after: Duration,
    /// Idle time after which a worker above the minimum stops (default 60 s).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Recycle a worker after this many requests, with ±10 % jitter (default: never).
    pub recycle_after_requests: Option<u64>,
    /// Recycle a worker after this age (default: never).
    #[serde(with = "humantime_serde::option")]
    pub max_age: Option<Duration>,
    /// Recycle a worker above this resident memory (default: never).
    pub max_rss: Option<ByteSize>,
    /// How often idle workers are pinged; `0s` disables pings (default 10 s).
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    /// How long a ping may take (default 5 s).
    #[serde(with = "humantime_serde")]
    pub ping_timeout: Duration,
    /// How long a worker may keep a cancelled call before it counts as hung (default 5 s).
    #[serde(with = "humantime_serde")]
    pub cancel_grace: Duration,
    /// The first delay after a failed start, doubling up to 5 s (default 100 ms).
    #[serde(with = "humantime_serde")]
    pub restart_backoff: Duration,
    /// Failed starts within 30 s that trip the crash-loop guard (default 5).
    pub crash_loop_starts: u32,
    /// The first cool-down of the crash-loop guard, doubling up to 5 min (default 5 s).
    #[serde(with = "humantime_serde")]
    pub crash_loop_cooldown: Duration,
    /// How long in-flight calls may finish at shutdown (default 10 s).
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// The grace after closing a worker's stdin, and after SIGTERM (default 2 s).
    #[serde(with = "humantime_serde")]
    pub exit_grace: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        PoolSettings {
            min_workers: 2,
            max_workers: None,
            max_in_flight: 64,
            queue_capacity: 16_384,
            grow_after: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(60),
            recycle_after_requests: None,
            max_age: None,
            max_rss: None,
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(5),
            cancel_grace: Duration::from_secs(5),
            restart_backoff: Duration::from_millis(100),
            crash_loop_starts: 5,
            crash_loop_cooldown: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(10),
            exit_grace: Duration::from_secs(2),
        }
    }
}

/// Calls (`[call]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CallConfig {
    /// The deadline of a call whose method sets none in the catalog (default 30 s).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// The longest one attempt may take (default: the whole deadline). Shorter
    /// than the deadline, it leaves time to retry an idempotent call on
    /// another worker when the first one hangs.
    #[serde(with = "humantime_serde::option")]
    pub attempt_timeout: Option<Duration>,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            timeout: Duration::from_secs(30),
            attempt_timeout: None,
        }
    }
}

/// Retries (`[retry]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RetryConfig {
    /// Whether failed calls are retried at all (default true). Only calls that
    /// are safe to repeat are: idempotent methods, or requests no worker saw.
    pub enabled: bool,
    /// Retries after the first attempt (default 2; the original counted the
    /// first attempt too).
    pub max_retries: u32,
    /// `exponential` (default), `linear` or `constant`.
    pub backoff: BackoffSetting,
    /// The first delay (default 50 ms).
    #[serde(with = "humantime_serde")]
    pub initial_delay: Duration,
    /// The cap on any delay, server hints included (default 5 s).
    #[serde(with = "humantime_serde")]
    pub max_delay: Duration,
    /// `decorrelated` (default), `full`, `equal` or `none`.
    pub jitter: JitterSetting,
    /// Retries allowed per call over ten seconds, as a fraction (default 0.2).
    pub budget_ratio: f64,
    /// Retries always allowed per second, whatever the ratio (default 10).
    pub budget_min_per_second: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            enabled: true,
            max_retries: 2,
            backoff: BackoffSetting::Exponential,
            initial_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
            jitter: JitterSetting::Decorrelated,
            budget_ratio: 0.2,
            budget_min_per_second: 10,
        }
    }
}

/// A backoff shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum BackoffSetting {
    /// The same delay every time.
    Constant,
    /// `initial × attempt`.
    Linear,
    /// `initial × 2^(attempt-1)`.
    Exponential,
}

/// A jitter shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum JitterSetting {
    /// Exact delays.
    None,
    /// Uniform in `[0, delay]`.
    Full,
    /// Uniform in `[delay/2, delay]`.
    Equal,
    /// AWS-style decorrelated jitter.
    Decorrelated,
}

/// Circuit breakers (`[breaker]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BreakerSettings {
    /// Whether each method gets a breaker (default true).
    pub enabled: bool,
    /// When a breaker opens: `failure-rate` (default) or `consecutive`.
    pub mode: BreakerMode,
    /// The share of failed calls over `window` that opens it, in
    /// `failure-rate` mode (default 0.5).
    pub failure_rate: f64,
    /// The sliding window of `failure-rate` mode (default 10 s).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Calls the window must hold before the rate counts (default 20).
    pub min_calls: u32,
    /// Dependency failures in a row that open it, in `consecutive` mode (default 5).
    pub failure_threshold: u32,
    /// How long an open breaker rejects calls before it probes (default 30 s).
    #[serde(with = "humantime_serde")]
    pub break_duration: Duration,
    /// Probe calls admitted at once while half-open (default 1).
    pub half_open_probes: u32,
    /// Successful probes that close it again (default 1).
    pub half_open_successes: u32,
    /// The most breakers kept (default 1,024).
    pub max_breakers: usize,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        BreakerSettings {
            enabled: true,
            mode: BreakerMode::FailureRate,
            failure_rate: 0.5,
            window: Duration::from_secs(10),
            min_calls: 20,
            failure_threshold: 5,
            break_duration: Duration::from_secs(30),
            half_open_probes: 1,
            half_open_successes: 1,
            max_breakers: 1024,
        }
    }
}

/// When a method's circuit breaker opens.
///
/// The default is a failure rate: a worker that dies or hangs fails all the
/// calls it held at once, and in a pool where the other workers still serve,
/// that burst must not cut the method off (each such incident counts once,
/// in either mode, but several at once could still make five in a row).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum BreakerMode {
    /// `failure_rate` of at least `min_calls` calls over `window`.
    FailureRate,
    /// `failure_threshold` dependency failures in a row.
    Consecutive,
}

/// The result cache (`[cache]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CacheSettings {
    /// Whether results of cacheable methods are cached (default true).
    pub enabled: bool,
    /// The memory tier's budget (default 64 MiB).
    pub memory: ByteSize,
    /// Whether the disk tier is used (default true).
    pub disk: bool,
    /// The disk tier's directory (default: the platform cache directory, `pybridge/`).
    pub dir: Option<PathBuf>,
    /// The disk tier's budget (default 100 MiB).
    pub disk_size: ByteSize,
    /// A string mixed into every key, to invalidate everything on a deploy
    /// (default empty). With a shared tier it also names the deployment:
    /// only processes with the same namespace share entries and invalidations.
    pub namespace: String,
    /// The shared tier on Redis, e.g. `redis://127.0.0.1:6379/0` (default
    /// none; needs the `redis` feature). Env `PYBRIDGE_CACHE__REDIS_URL`.
    pub redis_url: Option<String>,
    /// The longest a read of the shared tier waits; a call with less time
    /// left waits only that long (default 25 ms, at most 1 s).
    #[serde(with = "humantime_serde")]
    pub redis_read_timeout: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            enabled: true,
            memory: ByteSize::mib(64),
            disk: true,
            dir: None,
            disk_size: ByteSize::mib(100),
            namespace: String::new(),
            redis_url: None,
            redis_read_timeout: Duration::from_millis(25),
        }
    }
}

/// The method catalog and validation (`[service]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ServiceSettings {
    /// Reject methods the catalog does not know (default false: they pass
    /// through unvalidated).
    pub strict: bool,
    /// Convert strings that are wholly a number or boolean where the schema
    /// wants one (default false).
    pub coerce: bool,
    /// Fill in schema defaults (default false).
    pub apply_defaults: bool,
    /// Give results the original FixiPlug camelCase shapes (default false).
    pub fixiplug_results: bool,
    /// Check results against their schemas: `off` (default), `warn` or `enforce`.
    pub validate_results: ResultCheck,
    /// Catalog files with methods of your own, in the built-in format.
    pub catalog_files: Vec<PathBuf>,
    /// The largest params accepted (default 1 MiB).
    pub max_params: ByteSize,
    /// The deepest nesting of params accepted (default 32).
    pub max_depth: usize,
}

impl Default for ServiceSettings {
    fn default() -> Self {
        ServiceSettings {
            strict: false,
            coerce: false,
            apply_defaults: false,
            fixiplug_results: false,
            validate_results: ResultCheck::Off,
            catalog_files: Vec::new(),
            max_params: ByteSize::mib(1),
            max_depth: 32,
        }
    }
}

/// Whether results are checked against their schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ResultCheck {
    /// Not checked.
    Off,
    /// Checked; a violation is logged and counted.
    Warn,
    /// Checked; a violation fails the call.
    Enforce,
}

/// Overrides for one method (`[methods."<public name>"]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct MethodSettings {
    /// The name sent to the worker instead of the catalog's.
    pub wire_name: Option<String>,
    /// The call deadline instead of the catalog's.
    #[serde(with = "humantime_serde::option")]
    pub timeout: Option<Duration>,
    /// Whether results are cached, instead of the catalog's choice.
    pub cache: Option<bool>,
    /// How long results stay in memory.
    #[serde(with = "humantime_serde::option")]
    pub cache_ttl: Option<Duration>,
    /// How long results stay on disk.
    #[serde(with = "humantime_serde::option")]
    pub disk_ttl: Option<Duration>,
    /// Whether the method is safe to repeat, instead of the catalog's.
    pub idempotent: Option<bool>,
    /// Where the section came from (set by [`Config::load`]), so that an
    /// override of a method the registry does not know names its file.
    #[serde(skip)]
    pub origin: Option<Source>,
}

/// Logging (`[log]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct LogConfig {
    /// A `tracing` filter: `error`, `warn` (default), `info`, `debug`, or directives.
    pub level: String,
    /// `pretty` (default) or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "warn".into(),
            format: LogFormat::Pretty,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The HTTP gateway (`[gateway]`).
///
/// The defaults suit a gateway on loopback that a browser on the same
/// machine must not be able to drive: see `allowed_hosts` and
/// `allowed_origins`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct GatewayConfig {
    /// The address to listen on (default `127.0.0.1:7878`: loopback only).
    pub listen: String,
    /// A bearer token required on `/rpc` and `/metrics`, and for the
    /// details of `/health` (default: none).
    pub token: Option<String>,
    /// The largest request body (default 2 MiB).
    pub body_limit: ByteSize,
    /// The longest a request may take (default 60 s).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Send clients the full error of a failed call: the worker's own
    /// `error.data` (a traceback), a crashed worker's stderr tail and exit
    /// status (default `false`: clients get the code, the message, the
    /// error kind, whether a retry may help and the request id; the details
    /// go to the log under that request id). For development only.
    pub expose_error_details: bool,
    /// The longest a client may take to send a request's head, counted from
    /// when the connection is ready for one: accepted, or its previous
    /// response sent (default 10 s).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// The longest a connection may stay silent: open with no request in
    /// progress and no byte received, or in the middle of a request body
    /// (default 5 s).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// The most connections open at once (default 512). At the cap, and when
    /// the process runs out of file descriptors, the connection that has
    /// been idle the longest is closed to make room.
    pub max_connections: usize,
    /// The most entries in one batch (default 2000); a longer batch is
    /// answered with one `Invalid Request` error.
    pub max_batch: usize,
    /// How many calls of one batch run at once (default 32), so that one
    /// batch cannot fill the pool while other clients wait.
    pub batch_concurrency: usize,
    /// The largest response body (default 16 MiB); a batch whose answers
    /// would exceed it is answered with one error instead.
    pub max_response: ByteSize,
    /// `Host` header values accepted besides the listening address's own
    /// names, as `name` (any port) or `name:port`; `"*"` accepts any
    /// (default: none). The listening address's names are its address with
    /// its port, and `localhost:PORT` too for a loopback address; for an
    /// unspecified address (`0.0.0.0`, `[::]`), any IP address literal or
    /// `localhost`, with any port (a published container port differs from
    /// the listening one). No other name passes until it is listed here, so
    /// that a DNS name an attacker points at the gateway (DNS rebinding) is
    /// refused.
    pub allowed_hosts: Vec<String>,
    /// Origins (`scheme://host[:port]`) whose requests are accepted besides
    /// those of an allowed host (default: none). A request carrying any
    /// other `Origin` header, as browsers send, is refused with 403.
    pub allowed_origins: Vec<String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            listen: "127.0.0.1:7878".into(),
            token: None,
            body_limit: ByteSize::mib(2),
            request_timeout: Duration::from_secs(60),
            expose_error_details: false,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(5),
            max_connections: 512,
            max_batch: 2000,
            batch_concurrency: 32,
            max_response: ByteSize::mib(16),
            allowed_hosts: Vec::new(),
            allowed_origins: Vec::new(),
        }
    }
}

/// The MCP server (`[mcp]`): which registry methods become tools.
///
/// Patterns are public method names, where `*` matches any run of
/// characters (`pattern_learning.*`, `*.get_*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct McpConfig {
    /// Only methods matching one of these become tools (default: none
    /// listed, every available method).
    pub allow: Vec<String>,
    /// Methods matching one of these never become tools, even when allowed
    /// (default: none).
    pub deny: Vec<String>,
}

/// Trace export over OTLP/HTTP with protobuf (`[telemetry]`), read by
/// `pybridge::otel::Telemetry` when the bridge is built with the
/// `otel` feature (the CLI is); without it these keys are accepted and
/// unused.
///
/// Export is on when an endpoint is set: `otlp_endpoint` here (or
/// `--otlp-endpoint`), else the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`
/// or `OTEL_EXPORTER_OTLP_ENDPOINT`. The other standard variables
/// (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`,
/// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`) apply where the keys
/// below are not set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP address, such as `http://127.0.0.1:4318`
    /// (http only: pybridge is built without TLS);
    /// `/v1/traces` is appended unless the path already ends with it
    /// (default: none, the standard variables decide).
    pub otlp_endpoint: Option<String>,
    /// The `service.name` of exported spans (default: `OTEL_SERVICE_NAME`,
    /// else `pybridge`).
    pub service_name: Option<String>,
    /// The fraction of new traces recorded, from 0 to 1; a trace continued
    /// from a caller follows the caller's decision (default: the
    /// `OTEL_TRACES_SAMPLER` variables, else every trace).
    pub sample_ratio: Option<f64>,
    /// HTTP headers sent with every export, such as an API key (added to
    /// those of `OTEL_EXPORTER_OTLP_HEADERS`; for a name in both, this one).
    pub headers: BTreeMap<String, String>,
    /// The longest one export request may take (default 10 s). Exports run
    /// on their own thread: a slow collector never slows a call.
    #[serde(with = "humantime_serde")]
    pub export_timeout: Duration,
    /// The longest shutdown waits to send the spans still buffered
    /// (default 5 s).
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// The most finished spans waiting for export (default 2048). Past it,
    /// spans are dropped and counted in
    /// `pybridge_telemetry_spans_dropped_total`.
    pub max_queue: usize,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            service_name: None,
            sample_ratio: None,
            headers: BTreeMap::new(),
            export_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            max_queue: 2048,
        }
    }
}

impl Config {
    /// Loads the configuration from its layers; see [`LoadOptions`].
    ///
    /// ```
    /// use pybridge::config::{Config, LoadOptions, Source};
    ///
    /// let options = LoadOptions::new()
    ///     .env_vars([("PYBRIDGE_POOL__MIN_WORKERS", "3")])
    ///     .flag("cache.memory", "64MiB", "--cache-memory");
    /// let loaded = Config::load(&options)?;
    /// assert_eq!(loaded.config.pool.min_workers, 3);
    /// assert_eq!(loaded.config.cache.memory, pybridge::ByteSize::mib(64));
    /// let source = |key: &str| loaded.settings.iter().find(|s| s.key == key).map(|s| s.source.clone());
    /// assert_eq!(source("pool.min_workers"), Some(Source::Env("PYBRIDGE_POOL__MIN_WORKERS".into())));
    /// assert_eq!(source("pool.queue_capacity"), Some(Source::Default));
    /// # Ok::<(), pybridge::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError`] naming the key and its source for an unknown key, a
    /// value of the wrong type, an unreadable file, or a value that fails
    /// [`Config::validate`].
    pub fn load(options: &LoadOptions) -> Result<Loaded, ConfigError> {
        let (mut config, settings) = layers::load(options)?;
        for (name, method) in &mut config.methods {
            let prefix = format!("methods.\"{name}\".");
            method.origin = settings
                .iter()
                .find(|s| s.key.starts_with(&prefix) && s.source != Source::Default)
                .map(|s| s.source.clone());
        }
        Ok(Loaded { config, settings })
    }

    /// The effective configuration as `key = value` settings with their
    /// sources, for `pybridge config`.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn effective(options: &LoadOptions) -> Result<Vec<Setting>, ConfigError> {
        layers::load(options).map(|(_, settings)| settings)
    }

    /// The maximum number of workers, resolved.
    pub fn max_workers(&self) -> usize {
        self.pool.max_workers.unwrap_or(self.pool.min_workers)
    }

    /// Checks the configuration as a whole. Returns the first problem as
    /// `(key, problem)`; [`Config::load`] adds the key's source.
    ///
    /// # Errors
    /// The key and what is wrong with it.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, problem: &str| Err((key.to_string(), problem.to_string()));
        let p = &self.pool;
        if self.max_workers() == 0 && self.worker.connect.is_empty() {
            let key = if p.max_workers.is_some() {
                "pool.max_workers"
            } else {
                "pool.min_workers"
            };
            return fail(key, "must be at least 1 (or set worker.connect)");
        }
        for url in &self.worker.connect {
            if let Err(err) = pybridge_pool::Endpoint::parse(url) {
                return Err(("worker.connect".to_string(), err.to_string()));
            }
        }
        if p.min_workers > self.max_workers() {
            return fail("pool.min_workers", "must not exceed pool.max_workers");
        }
        if p.max_in_flight == 0 {
            return fail("pool.max_in_flight", "must be at least 1");
        }
        let positive = [
            ("worker.startup_timeout", self.worker.startup_timeout),
            ("pool.grow_after", p.grow_after),
            ("pool.idle_timeout", p.idle_timeout),
            ("pool.ping_timeout", p.ping_timeout),
            ("pool.restart_backoff", p.restart_backoff),
            ("pool.crash_loop_cooldown", p.crash_loop_cooldown),
            ("call.timeout", self.call.timeout),
            ("breaker.break_duration", self.breaker.break_duration),
            ("gateway.request_timeout", self.gateway.request_timeout),
            (
                "gateway.header_read_timeout",
                self.gateway.header_read_timeout,
            ),
            ("gateway.idle_timeout", self.gateway.idle_timeout),
        ];
        for (key, value) in positive {
            if value.is_zero() {
                return fail(key, "must be greater than zero");
            }
        }
        if self.call.attempt_timeout.is_some_and(|d| d.is_zero()) {
            return fail(
                "call.attempt_timeout",
                "must be greater than zero (leave it out for the whole deadline)",
            );
        }
        if p.max_age.is_some_and(|d| d.is_zero()) {
            return fail(
                "pool.max_age",
                "must be greater than zero (leave it out for never)",
            );
        }
        if p.recycle_after_requests == Some(0) {
            return fail(
                "pool.recycle_after_requests",
                "must be at least 1 (leave it out for never)",
            );
        }
        if p.max_rss.is_some_and(|b| b.as_u64() == 0) {
            return fail(
                "pool.max_rss",
                "must be greater than zero (leave it out for never)",
            );
        }
        if p.crash_loop_starts == 0 {
            return fail("pool.crash_loop_starts", "must be at least 1");
        }
        if self.worker.max_frame.as_u64() < 1024 {
            return fail("worker.max_frame", "must be at least 1 KiB");
        }
        let r = &self.retry;
        if r.initial_delay > r.max_delay {
            return fail("retry.initial_delay", "must not exceed retry.max_delay");
        }
        if !r.budget_ratio.is_finite() || !(0.0..=1000.0).contains(&r.budget_ratio) {
            return fail("retry.budget_ratio", "must be a number from 0 to 1000");
        }
        let b = &self.breaker;
        if b.enabled {
            if b.failure_threshold == 0 {
                return fail("breaker.failure_threshold", "must be at least 1");
            }
            if !(b.failure_rate > 0.0 && b.failure_rate <= 1.0) {
                return fail(
                    "breaker.failure_rate",
                    "must be a number above 0 and at most 1",
                );
            }
            if b.window.is_zero() {
                return fail("breaker.window", "must be greater than zero");
            }
            if b.min_calls == 0 {
                return fail("breaker.min_calls", "must be at least 1");
            }
            if b.half_open_probes == 0 || b.half_open_successes == 0 {
                return fail(
                    "breaker.half_open_probes",
                    "probes and successes must be at least 1",
                );
            }
            if b.max_breakers == 0 {
                return fail("breaker.max_breakers", "must be at least 1");
            }
        }
        if self.cache.enabled && self.cache.memory.as_u64() == 0 {
            return fail(
                "cache.memory",
                "must be greater than zero (set cache.enabled = false instead)",
            );
        }
        if self.cache.disk && self.cache.disk_size.as_u64() == 0 {
            return fail(
                "cache.disk_size",
                "must be greater than zero (set cache.disk = false instead)",
            );
        }
        if self
            .cache
            .redis_url
            .as_deref()
            .is_some_and(|u| u.trim().is_empty())
        {
            return fail(
                "cache.redis_url",
                "must not be empty (leave it unset instead)",
            );
        }
        if self.cache.redis_read_timeout.is_zero()
            || self.cache.redis_read_timeout > Duration::from_secs(1)
        {
            return fail(
                "cache.redis_read_timeout",
                "must be above zero and at most 1s",
            );
        }
        if self.service.max_params.as_u64() == 0 {
            return fail("service.max_params", "must be greater than zero");
        }
        if self.service.max_depth == 0 {
            return fail("service.max_depth", "must be at least 1");
        }
        if self.worker.command.first().is_some_and(|p| p.is_empty()) {
            return fail("worker.command", "the program must not be empty");
        }
        for (name, m) in &self.methods {
            if m.timeout.is_some_and(|d| d.is_zero()) {
                return fail(
                    &format!("methods.{name:?}.timeout"),
                    "must be greater than zero",
                );
            }
            if m.wire_name.as_deref().is_some_and(str::is_empty) {
                return fail(&format!("methods.{name:?}.wire_name"), "must not be empty");
            }
        }
        if self.gateway.listen.parse::<std::net::SocketAddr>().is_err() {
            return fail(
                "gateway.listen",
                "must be an address such as 127.0.0.1:7878",
            );
        }
        if self.gateway.token.as_deref().is_some_and(str::is_empty) {
            return fail(
                "gateway.token",
                "must not be empty (leave it out for no token)",
            );
        }
        let g = &self.gateway;
        let at_least_one = [
            ("gateway.max_connections", g.max_connections),
            ("gateway.max_batch", g.max_batch),
            ("gateway.batch_concurrency", g.batch_concurrency),
        ];
        for (key, value) in at_least_one {
            if value == 0 {
                return fail(key, "must be at least 1");
            }
        }
        if g.max_response.as_u64() < 1024 {
            return fail("gateway.max_response", "must be at least 1 KiB");
        }
        for (key, patterns) in [("mcp.allow", &self.mcp.allow), ("mcp.deny", &self.mcp.deny)] {
            if patterns.iter().any(|p| p.trim().is_empty()) {
                return fail(key, "must not hold an empty pattern");
            }
        }
        if g.allowed_hosts.iter().any(|h| h.trim().is_empty()) {
            return fail("gateway.allowed_hosts", "must not hold an empty name");
        }
        if g.allowed_origins
            .iter()
            .any(|o| !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return fail(
                "gateway.allowed_origins",
                "each must be an origin such as https://app.example.com",
            );
        }
        let t = &self.telemetry;
        if t.otlp_endpoint
            .as_deref()
            .is_some_and(|e| !e.starts_with("http://") || e.contains(char::is_whitespace))
        {
            return fail(
                "telemetry.otlp_endpoint",
                "must be an http:// URL such as http://127.0.0.1:4318 (pybridge is built \
                 without TLS: send to a collector on the host or in the cluster)",
            );
        }
        if t.service_name.as_deref().is_some_and(str::is_empty) {
            return fail("telemetry.service_name", "must not be empty");
        }
        if t.sample_ratio
            .is_some_and(|r| !r.is_finite() || !(0.0..=1.0).contains(&r))
        {
            return fail("telemetry.sample_ratio", "must be a number from 0 to 1");
        }
        if t.export_timeout.is_zero() {
            return fail("telemetry.export_timeout", "must be greater than zero");
        }
        if t.shutdown_timeout.is_zero() {
            return fail("telemetry.shutdown_timeout", "must be greater than zero");
        }
        if t.max_queue == 0 {
            return fail("telemetry.max_queue", "must be at least 1");
        }
        Ok(())
    }
}
