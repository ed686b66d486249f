//! The errors of the pool.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pybridge_protocol::ErrorObject;

use crate::WorkerId;

/// A call or pool operation that failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Every worker is at its in-flight cap and the wait queue is full.
    #[error("the wait queue is full ({capacity} calls waiting)")]
    QueueFull {
        /// The queue's capacity.
        capacity: usize,
    },
    /// The pool is shutting down and accepts no new calls.
    #[error("the pool is shutting down")]
    ShuttingDown,
    /// The call's deadline passed.
    #[error("deadline exceeded after {elapsed:?} ({stage})")]
    Timeout {
        /// How long the call had run.
        elapsed: Duration,
        /// Where the call was when the deadline passed.
        stage: TimeoutStage,
        /// The worker that held the call, once it was sent to one.
        worker: Option<WorkerId>,
    },
    /// The worker holding the call exited, was killed, or broke the protocol.
    #[error("{failure}")]
    WorkerFailed {
        /// What happened to the worker; shared by every call it held.
        failure: Arc<WorkerFailure>,
        /// Whether the request had been written to the worker. When false, the
        /// worker certainly never saw it and it is safe to send again.
        written: bool,
    },
    /// The worker answered with a JSON-RPC error.
    #[error("worker {worker} answered with error {}: {}", .error.code, .error.message)]
    Remote {
        /// The worker that answered.
        worker: WorkerId,
        /// The error object it sent.
        error: ErrorObject,
    },
    /// The worker's answer was larger than the frame limit and was discarded.
    #[error("worker {worker} answered with a frame over the {limit}-byte limit")]
    ResponseTooLarge {
        /// The worker that answered.
        worker: WorkerId,
        /// The frame limit.
        limit: usize,
    },
    /// The request could not be encoded (too large for a frame, say).
    #[error("cannot encode the request")]
    Encode(#[source] Arc<pybridge_protocol::Error>),
    /// No worker can be started: the crash-loop guard is cooling down.
    #[error("no worker is available: {reason}")]
    Unavailable {
        /// The last start failure.
        reason: Arc<str>,
    },
    /// No worker could be started when the pool started.
    #[error("no worker became ready: {reason}")]
    StartFailed {
        /// The first start failure.
        reason: Arc<str>,
    },
    /// The worker program does not exist or is not executable.
    #[error("worker program {program:?} not found or not executable")]
    ProgramNotFound {
        /// The program as configured.
        program: PathBuf,
    },
    /// The configuration is invalid.
    #[error("invalid pool configuration: {0}")]
    Config(ConfigError),
    /// A remote worker URL that cannot be parsed.
    #[error("invalid remote worker url {url:?}: it {problem}")]
    InvalidEndpoint {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The shared secret cannot be used.
    #[error("invalid worker secret: {problem}")]
    InvalidSecret {
        /// What is wrong with it (never the secret itself).
        problem: Arc<str>,
    },
}

/// A pool result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A setting that is out of range or contradicts another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The setting, as a path (`recycle.jitter`).
    pub setting: &'static str,
    /// What is wrong with it.
    pub problem: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.setting, self.problem)
    }
}

/// Where a call was when its deadline passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutStage {
    /// Waiting for a free worker: never written.
    Queued,
    /// Sent to a worker, which did not answer in time. The pool asked it to
    /// cancel the request.
    InFlight,
}

impl fmt::Display for TimeoutStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutStage::Queued => "waiting for a worker",
            TimeoutStage::InFlight => "waiting for the worker's answer",
        })
    }
}

/// What happened to a worker that failed the calls it held.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerFailure {
    /// The worker.
    pub worker: WorkerId,
    /// Its process id.
    pub pid: Option<u32>,
    /// Why it failed.
    pub reason: FailureReason,
    /// Its exit status as text (`exit status: 3`, `signal: 9 (SIGKILL)`), once known.
    pub status: Option<String>,
    /// The last lines it wrote to stderr.
    pub stderr_tail: Vec<String>,
}

/// Why a worker failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureReason {
    /// The process exited or was killed by something outside the pool.
    Exited,
    /// It closed its stdout or the pipe broke while it still ran.
    ProtocolBroken,
    /// It kept a call past its deadline and the cancel grace period; the pool
    /// killed it (a remote worker: disconnected it).
    Hung,
    /// It missed too many pings; the pool killed it (a remote worker:
    /// disconnected it).
    Unresponsive,
    /// It was stopped by pool shutdown before answering.
    Shutdown,
    /// It was recycled and did not finish in time.
    Recycled,
    /// Its connection (a remote worker's) was closed or broke.
    Disconnected,
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureReason::Exited => "the process exited",
            FailureReason::ProtocolBroken => "the worker broke the protocol (stdout closed)",
            FailureReason::Hung => "the worker hung and was killed (a remote one: disconnected)",
            FailureReason::Unresponsive => {
                "the worker stopped answering pings and was killed (a remote one: disconnected)"
            }
            FailureReason::Shutdown => "the pool shut down before the worker answered",
            FailureReason::Recycled => "the worker was recycled before it answered",
            FailureReason::Disconnected => "the connection to the remote worker was lost",
        })
    }
}

impl fmt::Display for WorkerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "worker {}", self.worker)?;
        if let Some(pid) = self.pid {
            write!(f, " (pid {pid})")?;
        }
        write!(f, ": {}", self.reason)?;
        if let Some(status) = &self.status {
            write!(f, ", {status}")?;
        }
        if let Some(last) = self.stderr_tail.last() {
            write!(f, "; last stderr line: {last}")?;
        }
        Ok(())
    }
}

impl Error {
    /// Whether the worker certainly never received the request, so sending it
    /// again cannot run it twice.
    pub fn not_processed(&self) -> bool {
        match self {
            Error::QueueFull { .. }
            | Error::ShuttingDown
            | Error::Encode(_)
            | Error::Unavailable { .. }
            | Error::StartFailed { .. }
            | Error::ProgramNotFound { .. }
            | Error::Config(_)
            | Error::InvalidEndpoint { .. }
            | Error::InvalidSecret { .. } => true,
            Error::Timeout { stage, .. } => *stage == TimeoutStage::Queued,
            Error::WorkerFailed { written, .. } => !written,
            Error::Remote { .. } | Error::ResponseTooLarge { .. } => false,
        }
    }

    /// Whether trying again may succeed: after a worker failure or overload,
    /// yes; after a bad request or an answer, no. Whether it is *safe* to try
    /// again is a separate question: see [`Error::not_processed`].
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::QueueFull { .. } | Error::WorkerFailed { .. } | Error::Unavailable { .. } => {
                true
            }
            Error::Timeout { .. } => true,
            Error::Remote { .. }
            | Error::ResponseTooLarge { .. }
            | Error::ShuttingDown
            | Error::Encode(_)
            | Error::StartFailed { .. }
            | Error::ProgramNotFound { .. }
            | Error::Config(_)
            | Error::InvalidEndpoint { .. }
            | Error::InvalidSecret { .. } => false,
        }
    }

    /// The worker's failure, for errors caused by one.
    pub fn worker_failure(&self) -> Option<&WorkerFailure> {
        match self {
            Error::WorkerFailed { failure, .. } => Some(failure),
            _ => None,
        }
    }
}
