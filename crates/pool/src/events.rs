//! Typed events about workers and the pool, for subscribers.

use std::sync::Arc;
use std::time::Duration;

use crate::{FailureReason, WorkerId};

/// Something that happened to the pool or one of its workers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum PoolEvent {
    /// A worker process was spawned.
    WorkerSpawned {
        /// The worker.
        worker: WorkerId,
        /// Its process id.
        pid: u32,
    },
    /// A worker completed its handshake and takes calls.
    WorkerReady {
        /// The worker.
        worker: WorkerId,
        /// Its process id.
        pid: u32,
        /// Time from spawn to ready.
        startup: Duration,
    },
    /// A worker failed to start (spawn error, exit before ready, handshake timeout).
    StartFailed {
        /// Why.
        reason: Arc<str>,
    },
    /// A worker's process ended.
    WorkerExited {
        /// The worker.
        worker: WorkerId,
        /// Its process id.
        pid: u32,
        /// Why it ended.
        reason: ExitReason,
        /// Its exit status as text, once known.
        status: Option<String>,
        /// Calls it held that failed with it.
        failed_calls: usize,
    },
    /// A healthy worker is being replaced.
    WorkerRecycling {
        /// The worker.
        worker: WorkerId,
        /// Why.
        reason: RecycleReason,
    },
    /// A replacement for a worker that died is starting.
    WorkerRestarting {
        /// The worker that died.
        replacing: WorkerId,
    },
    /// Too many failed starts: no new starts until the cool-down ends.
    CrashLoop {
        /// How long the pool waits before it tries again.
        cooldown: Duration,
        /// The last start failure.
        reason: Arc<str>,
    },
    /// A worker started again after a crash loop.
    Recovered,
    /// The pool grew or shrank.
    Resized {
        /// The new target number of workers.
        workers: usize,
    },
    /// A response arrived that no call awaits (unknown or null id).
    UnroutableResponse {
        /// The worker that sent it.
        worker: WorkerId,
    },
    /// A worker announced a manifest other than the pool's (the first ready
    /// worker's) and is not used; its start fails.
    ManifestMismatch {
        /// The worker.
        worker: WorkerId,
        /// Its process id.
        pid: u32,
    },
    /// The pool started shutting down.
    ShuttingDown,
    /// A connection to a remote worker was made and authenticated; its
    /// `$/ready` comes next.
    Connected {
        /// The worker on this connection.
        worker: WorkerId,
        /// The endpoint's address.
        address: Arc<str>,
    },
}

/// Why a worker's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitReason {
    /// It exited or died on its own, or was killed from outside.
    Crashed(FailureReason),
    /// The pool stopped it on purpose (recycling, shrinking, shutdown).
    Stopped,
}

/// Why a healthy worker is recycled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecycleReason {
    /// It served its quota of requests.
    Requests,
    /// It reached its maximum age.
    Age,
    /// Its resident memory went over the limit.
    Memory,
}
