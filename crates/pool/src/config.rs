//! Pool configuration: what to run, how many, and the policies that keep it healthy.

use std::ffi::{OsStr, OsString};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pybridge_protocol::{DEFAULT_MAX_FRAME, Framing};

use crate::{ConfigError, Endpoint, Error, RemotePolicy, Secret};

/// How a worker announces that it is ready to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Handshake {
    /// Wait for the line `READY` on stdout or a `$/ready` notification (the default).
    #[default]
    Announce,
    /// Send a `$/ping` request and wait for its answer.
    Ping,
    /// Trust the process as soon as it is spawned.
    None,
}

/// Which environment a worker starts with, before [`WorkerSpec::env`] additions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EnvPolicy {
    /// The host process's environment (the default).
    #[default]
    Inherit,
    /// An empty environment.
    Clear,
}

/// What to run as a worker, and how to talk to it.
///
/// The program is never run through a shell: arguments reach it exactly as given.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerSpec {
    /// The program, as a path or a name looked up in `PATH` once, when the pool starts.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
    /// The environment to start from.
    pub env_policy: EnvPolicy,
    /// Variables set on top of it. `PYTHONUNBUFFERED=1` is added unless set here,
    /// so workers that print their responses are not stuck in a buffer.
    pub env: Vec<(OsString, OsString)>,
    /// The working directory (default: the host's).
    pub cwd: Option<PathBuf>,
    /// How messages are delimited (default NDJSON).
    pub framing: Framing,
    /// How readiness is detected (default: `READY` or `$/ready`).
    pub handshake: Handshake,
    /// How long a worker may take to become ready before it is killed (default 10 s).
    pub startup_timeout: Duration,
    /// The largest frame accepted from or sent to the worker (default 16 MiB).
    pub max_frame: usize,
}

impl WorkerSpec {
    /// A worker running `program` with no arguments and the defaults above.
    pub fn new(program: impl Into<PathBuf>) -> WorkerSpec {
        WorkerSpec {
            program: program.into(),
            args: Vec::new(),
            env_policy: EnvPolicy::Inherit,
            env: Vec::new(),
            cwd: None,
            framing: Framing::Ndjson,
            handshake: Handshake::Announce,
            startup_timeout: Duration::from_secs(10),
            max_frame: DEFAULT_MAX_FRAME,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the worker.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Chooses the environment to start from.
    pub fn env_policy(mut self, policy: EnvPolicy) -> Self {
        self.env_policy = policy;
        self
    }

    /// Sets the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Chooses the framing.
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// Chooses the handshake.
    pub fn handshake(mut self, handshake: Handshake) -> Self {
        self.handshake = handshake;
        self
    }

    /// Sets the startup timeout.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Sets the maximum frame size.
    pub fn max_frame(mut self, bytes: usize) -> Self {
        self.max_frame = bytes;
        self
    }

    /// Resolves the program against `PATH` when it is a bare name. Done once,
    /// when the pool starts, so a later change of `PATH` or of the current
    /// directory cannot make restarts run something else.
    ///
    /// # Errors
    /// [`Error::ProgramNotFound`] when no executable file of that name exists.
    pub fn resolve_program(&self) -> Result<PathBuf, Error> {
        resolve_program(&self.program, std::env::var_os("PATH").as_deref())
    }
}

pub(crate) fn resolve_program(program: &Path, path_var: Option<&OsStr>) -> Result<PathBuf, Error> {
    let not_found = || Error::ProgramNotFound {
        program: program.to_path_buf(),
    };
    if program.as_os_str().is_empty() {
        return Err(not_found());
    }
    if program.components().count() > 1 || program.is_absolute() {
        return if is_executable(program) {
            Ok(program.to_path_buf())
        } else {
            Err(not_found())
        };
    }
    let path_var = path_var.ok_or_else(not_found)?;
    std::env::split_paths(path_var)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(not_found)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// When a worker is replaced although it is healthy.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RecyclePolicy {
    /// Replace after this many requests (each worker draws its own threshold
    /// within ±`jitter` of it, so workers do not recycle together). Default: never.
    pub max_requests: Option<u64>,
    /// The spread of `max_requests`, as a fraction (default 0.1).
    pub jitter: f64,
    /// Replace after this age (default: never).
    pub max_age: Option<Duration>,
    /// Replace when the worker's resident memory exceeds this many bytes (default: never).
    pub max_rss_bytes: Option<u64>,
    /// How long a recycled worker may take to finish its calls before it is
    /// stopped anyway (default 30 s).
    pub drain_timeout: Duration,
}

impl Default for RecyclePolicy {
    fn default() -> Self {
        RecyclePolicy {
            max_requests: None,
            jitter: 0.1,
            max_age: None,
            max_rss_bytes: None,
            drain_timeout: Duration::from_secs(30),
        }
    }
}

impl RecyclePolicy {
    /// Sets `max_requests`: recycle after this many requests.
    pub fn max_requests(mut self, value: Option<u64>) -> Self {
        self.max_requests = value;
        self
    }

    /// Sets `jitter`: the spread of `max_requests`, as a fraction.
    pub fn jitter(mut self, value: f64) -> Self {
        self.jitter = value;
        self
    }

    /// Sets `max_age`: recycle after this age.
    pub fn max_age(mut self, value: Option<Duration>) -> Self {
        self.max_age = value;
        self
    }

    /// Sets `max_rss_bytes`: recycle above this resident memory.
    pub fn max_rss_bytes(mut self, value: Option<u64>) -> Self {
        self.max_rss_bytes = value;
        self
    }

    /// Sets `drain_timeout`: how long a recycled worker may finish its calls.
    pub fn drain_timeout(mut self, value: Duration) -> Self {
        self.drain_timeout = value;
        self
    }
}

/// Liveness checks of idle workers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HealthPolicy {
    /// How often an idle worker is pinged (default 10 s; `None` disables pings).
    pub ping_interval: Option<Duration>,
    /// How long a ping may take (default 5 s).
    pub ping_timeout: Duration,
    /// Consecutive missed pings after which the worker is replaced (default 2).
    pub max_missed_pings: u32,
    /// How long a worker may keep a call after its deadline passed and
    /// `$/cancelRequest` was sent, before it is declared hung and replaced
    /// (default 5 s).
    pub cancel_grace: Duration,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        HealthPolicy {
            ping_interval: Some(Duration::from_secs(10)),
            ping_timeout: Duration::from_secs(5),
            max_missed_pings: 2,
            cancel_grace: Duration::from_secs(5),
        }
    }
}

impl HealthPolicy {
    /// Sets `ping_interval`: how often idle workers are pinged.
    pub fn ping_interval(mut self, value: Option<Duration>) -> Self {
        self.ping_interval = value;
        self
    }

    /// Sets `ping_timeout`: how long a ping may take.
    pub fn ping_timeout(mut self, value: Duration) -> Self {
        self.ping_timeout = value;
        self
    }

    /// Sets `max_missed_pings`: missed pings before replacement.
    pub fn max_missed_pings(mut self, value: u32) -> Self {
        self.max_missed_pings = value;
        self
    }

    /// Sets `cancel_grace`: how long a cancelled call may linger before the worker counts as hung.
    pub fn cancel_grace(mut self, value: Duration) -> Self {
        self.cancel_grace = value;
        self
    }
}

/// Restarts after failures, and the crash-loop guard.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RestartPolicy {
    /// The delay before retrying after a failed start; doubles per consecutive
    /// failure (default 100 ms).
    pub initial_backoff: Duration,
    /// The cap on that delay (default 5 s).
    pub max_backoff: Duration,
    /// This many failed starts (spawn error, exit before ready, handshake
    /// timeout) within `window` trip the crash-loop guard (default 5).
    pub crash_loop_starts: u32,
    /// The window for `crash_loop_starts` (default 30 s).
    pub window: Duration,
    /// The first cool-down of a tripped guard; doubles on every trip until a
    /// worker starts again (default 5 s).
    pub cooldown: Duration,
    /// The cap on the cool-down (default 5 min).
    pub max_cooldown: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            crash_loop_starts: 5,
            window: Duration::from_secs(30),
            cooldown: Duration::from_secs(5),
            max_cooldown: Duration::from_secs(300),
        }
    }
}

impl RestartPolicy {
    /// Sets `initial_backoff`: the first delay after a failed start.
    pub fn initial_backoff(mut self, value: Duration) -> Self {
        self.initial_backoff = value;
        self
    }

    /// Sets `max_backoff`: the cap on that delay.
    pub fn max_backoff(mut self, value: Duration) -> Self {
        self.max_backoff = value;
        self
    }

    /// Sets `crash_loop_starts`: failed starts within the window that trip the guard.
    pub fn crash_loop_starts(mut self, value: u32) -> Self {
        self.crash_loop_starts = value;
        self
    }

    /// Sets `window`: the window for counting failed starts.
    pub fn window(mut self, value: Duration) -> Self {
        self.window = value;
        self
    }

    /// Sets `cooldown`: the first cool-down of a tripped guard.
    pub fn cooldown(mut self, value: Duration) -> Self {
        self.cooldown = value;
        self
    }

    /// Sets `max_cooldown`: the cap on the cool-down.
    pub fn max_cooldown(mut self, value: Duration) -> Self {
        self.max_cooldown = value;
        self
    }
}

/// Growing and shrinking between the minimum and maximum worker counts.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScalePolicy {
    /// Add a worker when calls have been queueing for this long (default 1 s).
    pub grow_after: Duration,
    /// Remove a worker above the minimum that has been idle this long (default 60 s).
    pub idle_timeout: Duration,
}

impl Default for ScalePolicy {
    fn default() -> Self {
        ScalePolicy {
            grow_after: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

impl ScalePolicy {
    /// Sets `grow_after`: queueing time that adds a worker.
    pub fn grow_after(mut self, value: Duration) -> Self {
        self.grow_after = value;
        self
    }

    /// Sets `idle_timeout`: idle time that removes a worker above the minimum.
    pub fn idle_timeout(mut self, value: Duration) -> Self {
        self.idle_timeout = value;
        self
    }
}

/// The graceful shutdown sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownPolicy {
    /// How long in-flight calls may run on before workers are told to stop (default 10 s).
    pub drain_timeout: Duration,
    /// How long a worker may take to exit after its stdin closes, and again
    /// after SIGTERM, before it is killed (default 2 s each).
    pub exit_grace: Duration,
}

impl Default for ShutdownPolicy {
    fn default() -> Self {
        ShutdownPolicy {
            drain_timeout: Duration::from_secs(10),
            exit_grace: Duration::from_secs(2),
        }
    }
}

impl ShutdownPolicy {
    /// Sets `drain_timeout`: how long in-flight calls may finish.
    pub fn drain_timeout(mut self, value: Duration) -> Self {
        self.drain_timeout = value;
        self
    }

    /// Sets `exit_grace`: the grace after closing stdin and after SIGTERM.
    pub fn exit_grace(mut self, value: Duration) -> Self {
        self.exit_grace = value;
        self
    }
}

/// A validated pool configuration. Build it with [`PoolConfig::builder`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolConfig {
    /// What each worker runs.
    pub spec: WorkerSpec,
    /// Workers kept running at all times.
    pub min_workers: usize,
    /// The most workers the pool grows to.
    pub max_workers: usize,
    /// Requests in flight on one worker at once.
    pub max_in_flight: NonZeroUsize,
    /// Calls that may wait for a free worker; one more fails with `QueueFull`.
    pub queue_capacity: usize,
    /// The deadline of a call that does not set one.
    pub default_timeout: Duration,
    /// Lines of stderr kept per worker for crash reports.
    pub stderr_tail_lines: usize,
    /// Recycling of healthy workers.
    pub recycle: RecyclePolicy,
    /// Liveness checks.
    pub health: HealthPolicy,
    /// Restarts and the crash-loop guard.
    pub restart: RestartPolicy,
    /// Growing and shrinking.
    pub scale: ScalePolicy,
    /// The shutdown sequence.
    pub shutdown: ShutdownPolicy,
    /// Remote workers, dialled beside (or instead of) the spawned ones: one
    /// connection, and so one worker, per endpoint.
    pub endpoints: Vec<Endpoint>,
    /// The secret remote workers are authenticated with.
    pub secret: Option<Secret>,
    /// How remote workers are dialled and watched.
    pub remote: RemotePolicy,
}

impl PoolConfig {
    /// A builder for a pool of workers that run `spec`.
    pub fn builder(spec: WorkerSpec) -> PoolConfigBuilder {
        PoolConfigBuilder {
            config: PoolConfig {
                spec,
                min_workers: 2,
                max_workers: 2,
                max_in_flight: NonZeroUsize::new(64).expect("64 is not zero"),
                queue_capacity: 16_384,
                default_timeout: Duration::from_secs(30),
                stderr_tail_lines: 20,
                recycle: RecyclePolicy::default(),
                health: HealthPolicy::default(),
                restart: RestartPolicy::default(),
                scale: ScalePolicy::default(),
                shutdown: ShutdownPolicy::default(),
                endpoints: Vec::new(),
                secret: None,
                remote: RemotePolicy::default(),
            },
            max_set: false,
        }
    }
}

/// Builds a [`PoolConfig`]; every setting has a documented default.
#[derive(Debug, Clone)]
pub struct PoolConfigBuilder {
    config: PoolConfig,
    max_set: bool,
}

impl PoolConfigBuilder {
    /// A fixed number of workers (sets both minimum and maximum; default 2).
    pub fn workers(mut self, n: usize) -> Self {
        self.config.min_workers = n;
        self.config.max_workers = n;
        self.max_set = true;
        self
    }

    /// The minimum number of workers (default 2).
    pub fn min_workers(mut self, n: usize) -> Self {
        self.config.min_workers = n;
        self
    }

    /// The maximum number of workers (default: the minimum).
    pub fn max_workers(mut self, n: usize) -> Self {
        self.config.max_workers = n;
        self.max_set = true;
        self
    }

    /// Requests in flight per worker (default 64).
    pub fn max_in_flight(mut self, n: NonZeroUsize) -> Self {
        self.config.max_in_flight = n;
        self
    }

    /// Calls that may wait for a worker (default 16,384).
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.config.queue_capacity = n;
        self
    }

    /// The deadline of calls that set none (default 30 s).
    pub fn default_timeout(mut self, timeout: Duration) -> Self {
        self.config.default_timeout = timeout;
        self
    }

    /// Lines of stderr kept per worker for crash reports (default 20).
    pub fn stderr_tail_lines(mut self, n: usize) -> Self {
        self.config.stderr_tail_lines = n;
        self
    }

    /// Recycling of healthy workers (default: never).
    pub fn recycle(mut self, policy: RecyclePolicy) -> Self {
        self.config.recycle = policy;
        self
    }

    /// Liveness checks.
    pub fn health(mut self, policy: HealthPolicy) -> Self {
        self.config.health = policy;
        self
    }

    /// Restarts and the crash-loop guard.
    pub fn restart(mut self, policy: RestartPolicy) -> Self {
        self.config.restart = policy;
        self
    }

    /// Growing and shrinking.
    pub fn scale(mut self, policy: ScalePolicy) -> Self {
        self.config.scale = policy;
        self
    }

    /// The shutdown sequence.
    pub fn shutdown(mut self, policy: ShutdownPolicy) -> Self {
        self.config.shutdown = policy;
        self
    }

    /// Adds a remote worker to dial (default: none). With remote workers,
    /// `workers(0)` runs no local process at all.
    pub fn connect(mut self, endpoint: Endpoint) -> Self {
        self.config.endpoints.push(endpoint);
        self
    }

    /// The secret that authenticates remote workers, and them to the pool
    /// (default: none; a TCP worker then must run without one).
    pub fn secret(mut self, secret: Secret) -> Self {
        self.config.secret = Some(secret);
        self
    }

    /// How remote workers are dialled and watched.
    pub fn remote(mut self, policy: RemotePolicy) -> Self {
        self.config.remote = policy;
        self
    }

    /// Validates the configuration as a whole.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first setting that is out of range or
    /// contradicts another.
    pub fn build(self) -> Result<PoolConfig, Error> {
        let mut c = self.config;
        if !self.max_set {
            c.max_workers = c.min_workers;
        }
        let fail = |setting: &'static str, problem: &'static str| {
            Err(Error::Config(ConfigError { setting, problem }))
        };
        if c.max_workers == 0 && c.endpoints.is_empty() {
            return fail(
                "max_workers",
                "must be at least 1 unless remote workers are configured",
            );
        }
        for (i, endpoint) in c.endpoints.iter().enumerate() {
            if c.endpoints[..i].contains(endpoint) {
                return fail("endpoints", "must not name the same endpoint twice");
            }
        }
        if c.remote.connect_timeout.is_zero()
            || c.remote.keepalive.is_zero()
            || c.remote.user_timeout.is_zero()
        {
            return fail(
                "remote",
                "connect_timeout, keepalive and user_timeout must be greater than zero",
            );
        }
        if c.min_workers > c.max_workers {
            return fail("min_workers", "must not exceed max_workers");
        }
        if c.default_timeout.is_zero() {
            return fail("default_timeout", "must be greater than zero");
        }
        if c.spec.startup_timeout.is_zero() {
            return fail("spec.startup_timeout", "must be greater than zero");
        }
        if c.spec.max_frame < 64 {
            return fail("spec.max_frame", "must be at least 64 bytes");
        }
        if c.spec.program.as_os_str().is_empty() {
            return fail("spec.program", "must not be empty");
        }
        if !(0.0..1.0).contains(&c.recycle.jitter) {
            return fail("recycle.jitter", "must be in [0, 1)");
        }
        if c.recycle.max_requests == Some(0) {
            return fail("recycle.max_requests", "must be at least 1");
        }
        if c.recycle.max_age.is_some_and(|d| d.is_zero()) {
            return fail("recycle.max_age", "must be greater than zero");
        }
        if c.health.ping_interval.is_some_and(|d| d.is_zero()) {
            return fail("health.ping_interval", "must be greater than zero");
        }
        if c.health.ping_timeout.is_zero() {
            return fail("health.ping_timeout", "must be greater than zero");
        }
        if c.health.max_missed_pings == 0 {
            return fail("health.max_missed_pings", "must be at least 1");
        }
        if c.restart.initial_backoff > c.restart.max_backoff {
            return fail(
                "restart.initial_backoff",
                "must not exceed restart.max_backoff",
            );
        }
        if c.restart.crash_loop_starts == 0 {
            return fail("restart.crash_loop_starts", "must be at least 1");
        }
        if c.restart.window.is_zero() {
            return fail("restart.window", "must be greater than zero");
        }
        if c.restart.cooldown.is_zero() || c.restart.cooldown > c.restart.max_cooldown {
            return fail(
                "restart.cooldown",
                "must be greater than zero and at most max_cooldown",
            );
        }
        if c.scale.grow_after.is_zero() || c.scale.idle_timeout.is_zero() {
            return fail(
                "scale",
                "grow_after and idle_timeout must be greater than zero",
            );
        }
        Ok(c)
    }
}
