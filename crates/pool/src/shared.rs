//! The state every part of the pool shares: configuration, admission (see
//! `admission.rs`), the event and supervisor channels, cancellation, the
//! supervisor's counters, and the deadline sweep.
//!
//! The call path (`pool.rs`), the worker processes (`process.rs`) and the
//! supervisor (`supervisor.rs`) each depend on this module and on
//! `admission`, never on each other's state: a worker reports to the
//! supervisor through [`SupervisorMsg`]s on the channel kept here.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use pybridge_protocol::{Codec, Id, Meta, write_request_with_meta};
use serde_json::value::RawValue;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admission::Admission;
use crate::events::{PoolEvent, RecycleReason};
use crate::remote::EndpointSlot;
use crate::stats::{HealthStatus, PoolStats, WorkerState};
use crate::worker::{encode_frame, encode_frame_sized};
use crate::{PoolConfig, Result, WorkerId};

/// What a worker's task, or the call path, tells the supervisor.
#[derive(Debug)]
pub(crate) enum SupervisorMsg {
    Ready {
        worker: WorkerId,
    },
    StartFailed {
        worker: WorkerId,
        reason: Arc<str>,
    },
    Exited {
        worker: WorkerId,
        crashed: bool,
    },
    Recycle {
        worker: WorkerId,
        reason: RecycleReason,
    },
}

/// What [`Pool::shutdown`](crate::Pool::shutdown) found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Whether every in-flight call finished within the drain timeout.
    pub drained: bool,
    /// Calls that were still in flight when workers were stopped, and failed.
    pub abandoned_calls: usize,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: PoolConfig,
    pub(crate) program: PathBuf,
    pub(crate) codec: Codec,
    /// Workers, their slots and parked calls, and the wait queue.
    pub(crate) admission: Arc<Admission>,
    /// The remote endpoints, in configuration order.
    pub(crate) endpoints: Vec<EndpointSlot>,
    /// The manifest of the first ready worker (`None` inside when it
    /// announced none); every later worker must announce the same.
    pub(crate) manifest: OnceLock<Option<Arc<serde_json::Value>>>,
    next_id: AtomicI64,
    pub(crate) next_worker: AtomicU64,
    pub(crate) events: broadcast::Sender<PoolEvent>,
    pub(crate) supervisor: mpsc::Sender<SupervisorMsg>,
    /// Cancelled when the pool is dropped or finally shut down: every task stops.
    pub(crate) token: CancellationToken,
    /// Cancelled when shutdown begins: the supervisor stops restarting workers.
    pub(crate) supervise: CancellationToken,
    /// Cancelled when shutdown has drained: every worker, including one that
    /// is still starting, stops gracefully.
    pub(crate) stop_all: CancellationToken,
    pub(crate) tracker: TaskTracker,
    /// Answers served by workers that are gone.
    pub(crate) retired_served: AtomicU64,
    pub(crate) restarts: AtomicU64,
    pub(crate) target: AtomicUsize,
    pub(crate) crash_loop: AtomicBool,
    shutdown_done: tokio::sync::watch::Sender<Option<ShutdownReport>>,
    /// When the deadline sweep will next run, as nanoseconds since `epoch`.
    sweep_at: AtomicU64,
    /// Wakes the sweep for a deadline earlier than `sweep_at`.
    sweep_sooner: Notify,
    epoch: Instant,
}

impl Shared {
    pub(crate) fn new(
        config: PoolConfig,
        program: PathBuf,
        events: broadcast::Sender<PoolEvent>,
        supervisor: mpsc::Sender<SupervisorMsg>,
    ) -> Shared {
        let token = CancellationToken::new();
        // Every frame read is decoded with `Message::from_frame`, which
        // checks its UTF-8 as it reads: the codec's own pass would be a
        // second one over every answer.
        let codec = Codec::new(config.spec.framing, config.spec.max_frame).without_utf8_check();
        Shared {
            admission: Arc::new(Admission::new(
                config.queue_capacity,
                config.health.cancel_grace,
                codec.clone(),
            )),
            codec,
            endpoints: config
                .endpoints
                .iter()
                .cloned()
                .map(EndpointSlot::new)
                .collect(),
            manifest: OnceLock::new(),
            target: AtomicUsize::new(config.min_workers),
            config,
            program,
            next_id: AtomicI64::new(1),
            next_worker: AtomicU64::new(1),
            events,
            supervisor,
            supervise: token.child_token(),
            stop_all: token.child_token(),
            token,
            tracker: TaskTracker::new(),
            retired_served: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            crash_loop: AtomicBool::new(false),
            shutdown_done: tokio::sync::watch::Sender::new(None),
            sweep_at: AtomicU64::new(u64::MAX),
            sweep_sooner: Notify::new(),
            epoch: Instant::now(),
        }
    }

    /// Encodes a request, framed for the wire, in one buffer. NDJSON frames are
    /// written in place; raw params are copied once, never re-serialized.
    pub(crate) fn frame_request(
        &self,
        id: i64,
        method: &str,
        params: Option<&RawValue>,
        meta: Option<&Meta<'_>>,
    ) -> Result<Bytes> {
        let hint = method.len() + params.map_or(0, |p| p.get().len());
        encode_frame_sized(&self.codec, hint, |buf| {
            write_request_with_meta(buf, &Id::Number(id), method, params, meta)
        })
    }

    pub(crate) fn frame_with(&self, write: impl FnOnce(&mut BytesMut)) -> Result<Bytes> {
        encode_frame(&self.codec, write)
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let workers: Vec<_> = self.admission.workers().iter().map(|w| w.stats()).collect();
        let ready = workers
            .iter()
            .filter(|w| w.state == WorkerState::Ready)
            .count();
        let target = self.target.load(Ordering::Relaxed);
        let crash_loop = self.crash_loop.load(Ordering::Relaxed);
        let endpoints: Vec<_> = self.endpoints.iter().map(EndpointSlot::stats).collect();
        let wanted = target + endpoints.len();
        let local_ready = workers
            .iter()
            .filter(|w| w.state == WorkerState::Ready && !w.remote)
            .count();
        let endpoints_down = self.endpoints.iter().any(|e| !e.is_ready());
        let status = if self.admission.is_closing() || ready == 0 && wanted > 0 {
            HealthStatus::Unhealthy
        } else if local_ready < target || crash_loop || endpoints_down {
            HealthStatus::Degraded
        } else {
            HealthStatus::Healthy
        };
        let live: u64 = workers.iter().map(|w| w.served).sum();
        PoolStats {
            status,
            target_workers: target,
            ready_workers: ready,
            queued: self.admission.queued(),
            queue_capacity: self.admission.queue_capacity(),
            served: live + self.retired_served.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            crash_loop,
            workers,
            endpoints,
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Makes sure the deadline sweep runs by `deadline`.
    pub(crate) fn sweep_by(&self, deadline: Instant) {
        let at = self.nanos(deadline);
        if at < self.sweep_at.load(Ordering::Acquire) {
            self.sweep_at.fetch_min(at, Ordering::AcqRel);
            self.sweep_sooner.notify_one();
        }
    }

    pub(crate) fn next_request_id(&self) -> i64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn emit(&self, event: PoolEvent) {
        // No subscriber is not an error.
        let _ = self.events.send(event);
    }

    pub(crate) fn shutdown_done(&self) -> &tokio::sync::watch::Sender<Option<ShutdownReport>> {
        &self.shutdown_done
    }
}

/// The longest the deadline sweep sleeps when no call has a deadline.
const SWEEP_IDLE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Fails the calls whose deadline passed, on every worker. One timer for the
/// pool, set to the earliest deadline of any call, instead of one per call:
/// every timer the runtime must keep near changes how its threads park, and
/// a timer per call (or a frequent tick) measurably slows each round trip.
/// Calls mostly share one timeout, so a new call's deadline is rarely the
/// earliest and rarely wakes the sweep.
pub(crate) async fn sweep_deadlines(shared: Arc<Shared>) {
    loop {
        // While the sweep scans, every new deadline counts as earlier than
        // the next run, so its call leaves a wake-up permit behind.
        shared.sweep_at.store(u64::MAX, Ordering::Release);
        let now = Instant::now();
        let mut next = now + SWEEP_IDLE;
        for worker in shared.admission.workers() {
            if let Some(at) = shared.admission.expire_due(&worker, now) {
                next = next.min(at);
            }
        }
        shared.sweep_at.store(shared.nanos(next), Ordering::Release);
        // A call registered during the scan left a permit, so the sweep
        // scans again at once; one registered after it sees the new time.
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = shared.sweep_sooner.notified() => {}
        }
    }
}
