//! The pool handle and the call path: encode, take a slot on the least-loaded
//! worker (or wait for one in a bounded FIFO queue), send, await the answer.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use pybridge_protocol::{Codec, Id, PendingError, write_notification, write_request};
use serde_json::value::RawValue;
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use crate::admission::Admission;
use crate::events::{PoolEvent, RecycleReason};
use crate::stats::{HealthStatus, PoolStats, WorkerState};
use crate::supervisor::{self, SupervisorMsg};
use crate::worker::{Outgoing, Worker, encode_frame};
use crate::{Error, FailureReason, PoolConfig, Result, TimeoutStage, WorkerFailure, WorkerId};

/// A pool of worker processes. Cheap to clone; all clones share the pool.
///
/// Dropping the last clone without [`Pool::shutdown`] kills every worker's
/// process group at once: no worker outlives the pool.
#[derive(Debug, Clone)]
pub struct Pool {
    handle: Arc<Handle>,
}

/// Owns the pool's lifetime: when the last [`Pool`] clone drops, so does this,
/// and with it every worker. Tasks hold [`Shared`], never this.
#[derive(Debug)]
struct Handle {
    shared: Arc<Shared>,
    /// The deadline sweep; stops when the pool is dropped.
    _sweep: AbortOnDropHandle<()>,
}

/// A request id reserved with [`Pool::reserve_id`]. Only the pool makes
/// them, so two calls can never share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(i64);

impl RequestId {
    /// The id as sent on the wire.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What [`Pool::shutdown`] found.
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

impl Pool {
    /// Starts the pool: spawns the minimum number of workers and waits until
    /// each is ready or has failed to start.
    ///
    /// # Errors
    /// [`Error::ProgramNotFound`] when the program cannot be found, and
    /// [`Error::StartFailed`] when not one worker became ready; in both cases
    /// nothing is left running.
    pub async fn start(config: PoolConfig) -> Result<Pool> {
        let spec = config.spec.clone();
        let program = tokio::task::spawn_blocking(move || spec.resolve_program())
            .await
            .map_err(|_| Error::StartFailed {
                reason: "program lookup panicked".into(),
            })??;
        crate::metrics::describe();
        let (events, _) = broadcast::channel(1024);
        let (supervisor_tx, supervisor_rx) = mpsc::channel(1024);
        let token = CancellationToken::new();
        let shared = Arc::new(Shared {
            codec: Codec::new(config.spec.framing, config.spec.max_frame),
            admission: Arc::new(Admission::new(
                config.queue_capacity,
                config.health.cancel_grace,
                Codec::new(config.spec.framing, config.spec.max_frame),
            )),
            manifest: OnceLock::new(),
            target: AtomicUsize::new(config.min_workers),
            config,
            program,
            next_id: AtomicI64::new(1),
            next_worker: AtomicU64::new(1),
            events,
            supervisor: supervisor_tx,
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
        });
        let pool = Pool {
            handle: Arc::new(Handle {
                _sweep: AbortOnDropHandle::new(tokio::spawn(sweep_deadlines(Arc::clone(&shared)))),
                shared: Arc::clone(&shared),
            }),
        };
        let (started_tx, started_rx) = oneshot::channel();
        shared.tracker.spawn(supervisor::run(
            Arc::clone(&shared),
            supervisor_rx,
            started_tx,
        ));
        match started_rx.await {
            Ok(Ok(())) => Ok(pool),
            Ok(Err(reason)) => {
                pool.shutdown().await;
                Err(Error::StartFailed { reason })
            }
            Err(_) => Err(Error::StartFailed {
                reason: "the supervisor stopped".into(),
            }),
        }
    }

    /// Calls `method` on the least-loaded worker with the pool's default timeout.
    ///
    /// # Errors
    /// See [`Pool::call_with_deadline`].
    pub async fn call(&self, method: &str, params: Option<&RawValue>) -> Result<Box<RawValue>> {
        let deadline = Instant::now() + self.handle.shared.config.default_timeout;
        self.call_with_deadline(method, params, deadline).await
    }

    /// Calls `method` on the least-loaded worker; the call fails at `deadline`
    /// wherever it is. When a worker is assigned, its id is recorded in the
    /// current span's `worker` field, if the span has one.
    ///
    /// # Errors
    /// [`Error::QueueFull`] when every worker is at its cap and the queue is
    /// full; [`Error::Timeout`] at the deadline; [`Error::WorkerFailed`] when the
    /// worker died or was killed while holding the call; [`Error::Remote`] when
    /// the worker answered with an error; [`Error::ShuttingDown`],
    /// [`Error::Unavailable`], [`Error::Encode`] as their names say.
    pub async fn call_with_deadline(
        &self,
        method: &str,
        params: Option<&RawValue>,
        deadline: Instant,
    ) -> Result<Box<RawValue>> {
        self.call_with_id(self.reserve_id(), method, params, deadline)
            .await
    }

    /// Reserves a request id, unique in this pool, for a later
    /// [`call_with_id`](Pool::call_with_id): a caller can open its span with the
    /// id the worker will see, so logs on both sides join up.
    pub fn reserve_id(&self) -> RequestId {
        RequestId(self.handle.shared.next_request_id())
    }

    /// Like [`call_with_deadline`](Pool::call_with_deadline), with a reserved id.
    ///
    /// # Errors
    /// As [`call_with_deadline`](Pool::call_with_deadline).
    pub async fn call_with_id(
        &self,
        id: RequestId,
        method: &str,
        params: Option<&RawValue>,
        deadline: Instant,
    ) -> Result<Box<RawValue>> {
        let shared = &self.handle.shared;
        if shared.admission.is_closing() {
            return Err(Error::ShuttingDown);
        }
        let id = id.0;
        let frame = shared.frame_request(id, method, params)?;
        let started = Instant::now();
        let slot = shared.admission.acquire(deadline, started).await?;
        let worker = Arc::clone(slot.worker());
        tracing::Span::current().record("worker", worker.id.0);
        // The deadline lives in the pending table and is fired by the pool's
        // sweep, not by a timer per call: registering a timer from outside
        // the runtime wakes its driver on every call.
        let mut call = slot.register(id, deadline)?;
        shared.sweep_by(deadline);
        if call.send(&worker.outbox, frame).await.is_err() {
            drop(call);
            return Err(Error::WorkerFailed {
                failure: Arc::new(failure_now(&worker, FailureReason::Exited)),
                written: false,
            });
        }
        let sent = Instant::now();
        let outcome = call.outcome().await;
        // Dropping the call settles its slot: freed if answered or failed;
        // parked if its deadline passed (the worker is asked to cancel it,
        // and the slot stays taken until the worker answers or dies).
        drop(call);
        if let Err(PendingError::DeadlineExceeded) = outcome {
            return Err(Error::Timeout {
                elapsed: started.elapsed(),
                stage: TimeoutStage::InFlight,
                worker: Some(worker.id),
            });
        }
        match outcome {
            Ok(response) => {
                worker.metrics.duration.record(sent.elapsed());
                worker.metrics.requests.increment(1);
                let served = worker.served.fetch_add(1, Ordering::Relaxed) + 1;
                if worker.recycle_after == Some(served) {
                    let msg = SupervisorMsg::Recycle {
                        worker: worker.id,
                        reason: RecycleReason::Requests,
                    };
                    // A full channel only delays recycling to the next tick's checks.
                    let _ = shared.supervisor.try_send(msg);
                }
                response.result.map_err(|error| Error::Remote {
                    worker: worker.id,
                    error,
                })
            }
            Err(PendingError::Failed(held)) => Err(held.into_error()),
            Err(PendingError::TableDropped) => Err(Error::WorkerFailed {
                failure: Arc::new(failure_now(&worker, FailureReason::Exited)),
                written: true,
            }),
            Err(_) => Err(Error::Timeout {
                elapsed: started.elapsed(),
                stage: TimeoutStage::InFlight,
                worker: Some(worker.id),
            }),
        }
    }

    /// Sends a notification to the least-loaded ready worker; no answer is awaited.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when no worker is ready, [`Error::Encode`] when the
    /// message cannot be framed, [`Error::ShuttingDown`] when closing.
    pub async fn notify(&self, method: &str, params: Option<&RawValue>) -> Result<()> {
        let shared = &self.handle.shared;
        if shared.admission.is_closing() {
            return Err(Error::ShuttingDown);
        }
        let frame = shared.frame_with(|buf| write_notification(buf, method, params))?;
        let worker = shared
            .admission
            .workers()
            .into_iter()
            .filter(|w| w.state() == WorkerState::Ready)
            .min_by_key(|w| w.in_flight())
            .ok_or_else(|| Error::Unavailable {
                reason: "no worker is ready".into(),
            })?;
        worker
            .outbox
            .send(Outgoing { id: None, frame })
            .await
            .map_err(|_| Error::WorkerFailed {
                failure: Arc::new(failure_now(&worker, FailureReason::Exited)),
                written: false,
            })
    }

    /// A snapshot of the pool and every live worker.
    pub fn stats(&self) -> PoolStats {
        self.handle.shared.stats()
    }

    /// Subscribes to the pool's events. A subscriber that falls more than
    /// 1024 events behind loses the oldest ones.
    pub fn subscribe(&self) -> broadcast::Receiver<PoolEvent> {
        self.handle.shared.events.subscribe()
    }

    /// The manifest the workers announced in their `$/ready` handshake (its
    /// params minus `pid`), as the first ready worker sent it; every worker
    /// the pool uses announced the same. `None` until a worker was ready, and
    /// for workers that announce none (the `READY` line, or no handshake).
    pub fn manifest(&self) -> Option<Arc<serde_json::Value>> {
        self.handle.shared.manifest.get().cloned().flatten()
    }

    /// The configuration the pool runs with.
    pub fn config(&self) -> &PoolConfig {
        &self.handle.shared.config
    }

    /// Kills one worker at once, as a crash would (for tests and chaos drills).
    /// Returns whether the worker was found.
    pub fn kill_worker(&self, worker: WorkerId) -> bool {
        match self.handle.shared.admission.worker(worker) {
            Some(w) => {
                crate::process::signal_group(w.pid, rustix::process::Signal::KILL);
                true
            }
            None => false,
        }
    }

    /// Shuts the pool down gracefully: new calls fail with
    /// [`Error::ShuttingDown`], queued calls fail, in-flight calls may finish
    /// within the drain timeout, then each worker's stdin is closed, and a
    /// worker still running after the exit grace gets SIGTERM, then SIGKILL,
    /// to its whole process group. Calling it again waits for the first call.
    pub async fn shutdown(&self) -> ShutdownReport {
        supervisor::shutdown(&self.handle.shared).await
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let shared = &self.shared;
        shared.admission.close();
        shared.token.cancel();
        // Tasks may never run again (the runtime may be going away), so kill
        // every process group here, synchronously.
        for worker in shared.admission.workers() {
            crate::process::signal_group(worker.pid, rustix::process::Signal::KILL);
        }
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
async fn sweep_deadlines(shared: Arc<Shared>) {
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

pub(crate) fn failure_now(worker: &Worker, reason: FailureReason) -> WorkerFailure {
    WorkerFailure {
        worker: worker.id,
        pid: Some(worker.pid),
        reason,
        status: None,
        stderr_tail: worker.stderr_tail(),
    }
}

impl Shared {
    /// Encodes a request, framed for the wire, in one buffer. NDJSON frames are
    /// written in place; raw params are copied once, never re-serialized.
    fn frame_request(&self, id: i64, method: &str, params: Option<&RawValue>) -> Result<Bytes> {
        self.frame_with(|buf| write_request(buf, &Id::Number(id), method, params))
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
        let status = if self.admission.is_closing() || ready == 0 && target > 0 {
            HealthStatus::Unhealthy
        } else if ready < target || crash_loop {
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
        }
    }

    fn nanos(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// Makes sure the deadline sweep runs by `deadline`.
    fn sweep_by(&self, deadline: Instant) {
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
