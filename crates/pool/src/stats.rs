//! Snapshots of the pool's state for health endpoints and dashboards.

use std::sync::Arc;
use std::time::Duration;

use crate::WorkerId;

/// The state of one worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WorkerState {
    /// Spawned, not yet ready.
    Starting,
    /// Taking calls.
    Ready,
    /// Finishing its calls before it stops; takes no new ones.
    Draining,
    /// Its process has ended.
    Dead,
}

impl WorkerState {
    pub(crate) fn from_u8(v: u8) -> WorkerState {
        match v {
            0 => WorkerState::Starting,
            1 => WorkerState::Ready,
            2 => WorkerState::Draining,
            _ => WorkerState::Dead,
        }
    }

    /// A lowercase name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerState::Starting => "starting",
            WorkerState::Ready => "ready",
            WorkerState::Draining => "draining",
            WorkerState::Dead => "dead",
        }
    }
}

/// One worker's numbers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WorkerStats {
    /// The worker.
    pub id: WorkerId,
    /// Its position in the pool (the label of its metrics); a replacement
    /// takes the place of the worker it replaces.
    pub slot: usize,
    /// Its process id.
    pub pid: u32,
    /// Its state.
    pub state: WorkerState,
    /// Calls it holds now.
    pub in_flight: usize,
    /// Calls it has answered.
    pub served: u64,
    /// How many workers died and were replaced before this one in its place
    /// in the pool.
    pub restarts: u64,
    /// Resident memory at the last measurement, in bytes.
    pub rss_bytes: Option<u64>,
    /// Time since it was spawned.
    pub age: Duration,
    /// The most calls the pool puts in flight on it at once: the pool's
    /// `max_in_flight`, or the worker's advertised `max_concurrency` if lower.
    pub max_in_flight: usize,
    /// The protocol version it announced in its `$/ready` handshake ("1.0"
    /// when it announced none), once ready; `None` for other handshakes.
    pub protocol_version: Option<std::sync::Arc<str>>,
    /// Whether it is a remote worker (a connection, not a child process;
    /// its `pid` is then 0 and its endpoint is in [`PoolStats::endpoints`]).
    pub remote: bool,
    /// The round trip of its last answered `$/ping`.
    pub rtt: Option<Duration>,
}

/// The state of a remote worker's endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointState {
    /// Dialling, authenticating, or waiting for the worker's `$/ready`.
    Connecting,
    /// Connected, and its worker takes calls.
    Ready,
    /// The last dial failed, or the connection was lost or cut (hung,
    /// unresponsive); dialled again after a backoff.
    Unhealthy,
    /// Disconnected on purpose (shutdown).
    Stopped,
}

impl EndpointState {
    /// A lowercase name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            EndpointState::Connecting => "connecting",
            EndpointState::Ready => "ready",
            EndpointState::Unhealthy => "unhealthy",
            EndpointState::Stopped => "stopped",
        }
    }
}

/// One remote worker endpoint's state.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EndpointStats {
    /// Its address as configured (`tcp://host:7001`, `unix:/run/w.sock`).
    pub address: Arc<str>,
    /// Its state.
    pub state: EndpointState,
    /// The worker on its current connection, if any.
    pub worker: Option<WorkerId>,
    /// The round trip of the last answered `$/ping` on it.
    pub rtt: Option<Duration>,
    /// Why the last dial or connection failed.
    pub last_error: Option<Arc<str>>,
    /// Connections that became ready.
    pub connects: u64,
    /// Dials that failed and connections that were lost or cut.
    pub failures: u64,
}

/// Overall health of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HealthStatus {
    /// As many ready workers as wanted.
    Healthy,
    /// Some ready workers, fewer than wanted.
    Degraded,
    /// No ready worker, a crash loop, or shutting down.
    Unhealthy,
}

impl HealthStatus {
    /// A lowercase name for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Unhealthy => "unhealthy",
        }
    }
}

/// A snapshot of the pool.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PoolStats {
    /// Overall health.
    pub status: HealthStatus,
    /// The number of workers the pool wants now.
    pub target_workers: usize,
    /// Workers that take calls.
    pub ready_workers: usize,
    /// Calls waiting for a worker.
    pub queued: usize,
    /// The queue's capacity.
    pub queue_capacity: usize,
    /// Calls answered by all workers, past and present.
    pub served: u64,
    /// Workers replaced after they died.
    pub restarts: u64,
    /// Whether the crash-loop guard is cooling down.
    pub crash_loop: bool,
    /// Every live worker.
    pub workers: Vec<WorkerStats>,
    /// Every remote endpoint, in configuration order.
    pub endpoints: Vec<EndpointStats>,
}
