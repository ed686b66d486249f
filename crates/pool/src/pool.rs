//! The pool handle and the call path: encode, take a slot on the least-loaded
//! worker (or wait for one in a bounded FIFO queue), send, await the answer.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll, Waker};

use bytes::{BufMut, Bytes, BytesMut};
use pybridge_protocol::{
    Codec, Framing, Id, Pending, PendingError, write_notification, write_request,
};
use serde_json::value::RawValue;
use tokio::sync::{Notify, broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::{AbortOnDropHandle, TaskTracker};

use crate::events::{PoolEvent, RecycleReason};
use crate::stats::{HealthStatus, PoolStats, WorkerState};
use crate::supervisor::{self, SupervisorMsg};
use crate::worker::{Abandoned, HeldFailure, Outgoing, Worker, lock};
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
    pub(crate) workers: RwLock<Vec<Arc<Worker>>>,
    pub(crate) queue: WaitQueue,
    next_id: AtomicI64,
    pub(crate) next_worker: AtomicU64,
    pub(crate) closing: AtomicBool,
    /// Set while no worker can start (crash loop) so calls fail fast.
    pub(crate) unavailable: Mutex<Option<Arc<str>>>,
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
    /// Notified whenever a slot is released while the pool is closing.
    pub(crate) released: Notify,
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
            queue: WaitQueue::new(config.queue_capacity),
            target: AtomicUsize::new(config.min_workers),
            config,
            program,
            workers: RwLock::new(Vec::new()),
            next_id: AtomicI64::new(1),
            next_worker: AtomicU64::new(1),
            closing: AtomicBool::new(false),
            unavailable: Mutex::new(None),
            events,
            supervisor: supervisor_tx,
            supervise: token.child_token(),
            stop_all: token.child_token(),
            token,
            tracker: TaskTracker::new(),
            released: Notify::new(),
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
        if shared.closing.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let id = id.0;
        let frame = shared.frame_request(id, method, params)?;
        let started = Instant::now();
        let slot = shared.acquire(deadline, started).await?;
        let worker = Arc::clone(&slot.worker);
        tracing::Span::current().record("worker", worker.id.0);
        // The deadline lives in the pending table and is fired by the pool's
        // sweep, not by a timer per call: registering a timer from outside
        // the runtime wakes its driver on every call.
        let pending = worker
            .pending
            .register_with_deadline(Id::Number(id), deadline.into_std())
            .map_err(|err| Error::Encode(Arc::new(err)))?;
        shared.sweep_by(deadline);
        let mut call = InFlight {
            id,
            worker: Arc::clone(&worker),
            slot: Some(slot),
            pending: Some(pending),
        };
        if send(
            &worker.outbox,
            Outgoing {
                id: Some(id),
                frame,
            },
        )
        .await
        .is_err()
        {
            call.finish();
            return Err(Error::WorkerFailed {
                failure: Arc::new(failure_now(&worker, FailureReason::Exited)),
                written: false,
            });
        }
        let sent = Instant::now();
        let outcome = call.pending().await;
        if let Err(PendingError::DeadlineExceeded) = outcome {
            // The sweep parked the call; the worker is asked to cancel it,
            // and its slot stays taken until the worker answers or dies.
            call.expired();
            return Err(Error::Timeout {
                elapsed: started.elapsed(),
                stage: TimeoutStage::InFlight,
                worker: Some(worker.id),
            });
        }
        call.finish();
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
        if shared.closing.load(Ordering::Acquire) {
            return Err(Error::ShuttingDown);
        }
        let frame = shared.frame_with(|buf| write_notification(buf, method, params))?;
        let worker = shared.least_loaded().ok_or_else(|| Error::Unavailable {
            reason: "no worker is ready".into(),
        })?;
        send(&worker.outbox, Outgoing { id: None, frame })
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

    /// The configuration the pool runs with.
    pub fn config(&self) -> &PoolConfig {
        &self.handle.shared.config
    }

    /// Kills one worker at once, as a crash would (for tests and chaos drills).
    /// Returns whether the worker was found.
    pub fn kill_worker(&self, worker: WorkerId) -> bool {
        let workers = self
            .handle
            .shared
            .workers
            .read()
            .unwrap_or_else(|e| e.into_inner());
        match workers.iter().find(|w| w.id == worker) {
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
        shared.closing.store(true, Ordering::Release);
        shared.token.cancel();
        // Tasks may never run again (the runtime may be going away), so kill
        // every process group here, synchronously.
        let workers = shared.workers.read().unwrap_or_else(|e| e.into_inner());
        for worker in workers.iter() {
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
    let grace = shared.config.health.cancel_grace;
    loop {
        // While the sweep scans, every new deadline counts as earlier than
        // the next run, so its call leaves a wake-up permit behind.
        shared.sweep_at.store(u64::MAX, Ordering::Release);
        let now = Instant::now();
        let workers: Vec<Arc<Worker>> = shared
            .workers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut next = now + SWEEP_IDLE;
        for worker in &workers {
            worker.expire_due(now, grace);
            if let Some(at) = worker.pending.next_deadline() {
                next = next.min(Instant::from_std(at));
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

/// Sends a frame to a worker's writer. The outbox holds more than a worker's
/// in-flight cap, so a request finds room at once; waiting covers the rare
/// burst of control messages.
async fn send(outbox: &mpsc::Sender<Outgoing>, message: Outgoing) -> Result<(), ()> {
    match outbox.try_send(message) {
        Ok(()) => Ok(()),
        Err(mpsc::error::TrySendError::Full(message)) => outbox.send(message).await.map_err(|_| ()),
        Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
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

/// A call in flight on a worker. Dropping it before it finished (deadline,
/// or the caller went away) abandons it: `$/cancelRequest` is sent and the
/// slot is parked until the worker answers or dies.
struct InFlight {
    id: i64,
    worker: Arc<Worker>,
    slot: Option<SlotGuard>,
    pending: Option<Pending<HeldFailure>>,
}

impl InFlight {
    async fn pending(&mut self) -> pybridge_protocol::PendingResult<HeldFailure> {
        match self.pending.as_mut() {
            Some(pending) => pending.await,
            None => Err(PendingError::DeadlineExceeded),
        }
    }

    /// The call ended normally: release the slot.
    fn finish(&mut self) {
        self.pending = None;
        self.slot = None;
    }

    /// The deadline sweep failed and parked the call: hand its slot to the
    /// parked entry and ask the worker to stop.
    fn expired(&mut self) {
        self.pending = None;
        if let Some(slot) = self.slot.take() {
            let shared = Arc::clone(&slot.shared);
            self.worker.park_slot(self.id, slot);
            send_cancel(&shared, &self.worker, self.id);
        }
    }
}

/// Tells a worker to stop working on a call nobody waits for. Best effort: if
/// the outbox is full, the grace period still catches a worker that never
/// answers.
fn send_cancel(shared: &Shared, worker: &Worker, id: i64) {
    let params = format!("{{\"id\":{id}}}");
    let frame = RawValue::from_string(params).ok().and_then(|params| {
        shared
            .frame_with(|buf| write_notification(buf, "$/cancelRequest", Some(&params)))
            .ok()
    });
    if let Some(frame) = frame {
        let _ = worker.outbox.try_send(Outgoing { id: None, frame });
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let (Some(mut pending), Some(slot)) = (self.pending.take(), self.slot.take()) else {
            return;
        };
        let shared = Arc::clone(&slot.shared);
        let worker = &self.worker;
        let grace_until = Instant::now() + shared.config.health.cancel_grace;
        worker.abandon(
            self.id,
            Abandoned {
                grace_until,
                slot: Some(slot),
            },
        );
        // The answer may have been routed to `pending` just before the entry
        // was parked; then nothing will ever claim the entry, so claim it now.
        // A call the deadline sweep failed meanwhile stays parked.
        let mut cx = Context::from_waker(Waker::noop());
        match std::pin::Pin::new(&mut pending).poll(&mut cx) {
            Poll::Ready(Err(PendingError::DeadlineExceeded)) | Poll::Pending => {}
            Poll::Ready(_) => {
                worker.claim_abandoned(self.id);
                return;
            }
        }
        drop(pending);
        send_cancel(&shared, worker, self.id);
    }
}

/// One taken in-flight slot on a worker. Dropping it frees the slot and hands
/// a slot to the first queued call, if any.
#[derive(Debug)]
pub(crate) struct SlotGuard {
    pub(crate) worker: Arc<Worker>,
    pub(crate) shared: Arc<Shared>,
    armed: bool,
}

impl SlotGuard {
    /// Frees the slot without dispatching the queue (the dispatcher itself does this).
    fn release_quiet(mut self) {
        self.armed = false;
        self.worker.release();
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.worker.release();
        if self.shared.queue.len() > 0 {
            self.shared.dispatch();
        }
        if self.shared.closing.load(Ordering::Relaxed) {
            self.shared.released.notify_waiters();
        }
    }
}

impl Shared {
    /// Encodes a request, framed for the wire, in one buffer. NDJSON frames are
    /// written in place; raw params are copied once, never re-serialized.
    fn frame_request(&self, id: i64, method: &str, params: Option<&RawValue>) -> Result<Bytes> {
        self.frame_with(|buf| write_request(buf, &Id::Number(id), method, params))
    }

    pub(crate) fn frame_with(&self, write: impl FnOnce(&mut BytesMut)) -> Result<Bytes> {
        let too_large = |len: usize| {
            Error::Encode(Arc::new(pybridge_protocol::Error::FrameTooLarge {
                limit: self.codec.max_frame(),
                declared: Some(len as u64),
            }))
        };
        match self.codec.framing() {
            Framing::Ndjson => {
                let mut buf = BytesMut::with_capacity(256);
                write(&mut buf);
                if buf.len() > self.codec.max_frame() {
                    return Err(too_large(buf.len()));
                }
                // Raw params may be pretty-printed; a raw newline can only be
                // whitespace between JSON tokens, so a space replaces it.
                if memchr_newline(&buf) {
                    for b in buf.iter_mut() {
                        if *b == b'\n' || *b == b'\r' {
                            *b = b' ';
                        }
                    }
                }
                buf.put_u8(b'\n');
                Ok(buf.freeze())
            }
            _ => {
                let mut payload = BytesMut::with_capacity(256);
                write(&mut payload);
                let mut out = BytesMut::with_capacity(payload.len() + 32);
                self.codec
                    .encode_frame(&payload, &mut out)
                    .map_err(|err| Error::Encode(Arc::new(err)))?;
                Ok(out.freeze())
            }
        }
    }

    /// Takes a slot on the least-loaded ready worker, or waits in the queue.
    async fn acquire(self: &Arc<Self>, deadline: Instant, started: Instant) -> Result<SlotGuard> {
        if self.queue.len() == 0
            && let Some(slot) = self.try_reserve_any()
        {
            return Ok(slot);
        }
        if let Some(reason) = lock(&self.unavailable).clone() {
            return Err(Error::Unavailable { reason });
        }
        let (ticket, rx) = self.queue.push().map_err(|capacity| {
            metrics::counter!(crate::metrics::QUEUE_REJECTED).increment(1);
            Error::QueueFull { capacity }
        })?;
        let waiter = QueuedCall {
            shared: self,
            ticket,
        };
        // A slot may have been freed between the check above and the push.
        self.dispatch();
        tokio::select! {
            slot = rx => {
                drop(waiter);
                slot.map_err(|_| self.closed_error())
            }
            () = tokio::time::sleep_until(deadline) => {
                Err(Error::Timeout {
                    elapsed: started.elapsed(),
                    stage: TimeoutStage::Queued,
                    worker: None,
                })
            }
        }
    }

    fn closed_error(&self) -> Error {
        if self.closing.load(Ordering::Acquire) {
            return Error::ShuttingDown;
        }
        let reason = lock(&self.unavailable).clone();
        Error::Unavailable {
            reason: reason.unwrap_or_else(|| "the queue was cleared".into()),
        }
    }

    pub(crate) fn least_loaded(&self) -> Option<Arc<Worker>> {
        let workers = self.workers.read().unwrap_or_else(|e| e.into_inner());
        workers
            .iter()
            .filter(|w| w.state() == WorkerState::Ready)
            .min_by_key(|w| w.in_flight())
            .cloned()
    }

    fn try_reserve_any(self: &Arc<Self>) -> Option<SlotGuard> {
        let cap = self.config.max_in_flight.get();
        // Another caller may take the chosen slot between the scan and the
        // reservation; a few rescans settle it.
        for _ in 0..4 {
            let worker = {
                let workers = self.workers.read().unwrap_or_else(|e| e.into_inner());
                let best = workers
                    .iter()
                    .filter(|w| w.state() == WorkerState::Ready && w.in_flight() < cap)
                    .min_by_key(|w| w.in_flight())?;
                if !best.try_reserve(cap) {
                    continue;
                }
                Arc::clone(best)
            };
            return Some(SlotGuard {
                worker,
                shared: Arc::clone(self),
                armed: true,
            });
        }
        None
    }

    /// Hands free slots to queued calls, first come first served.
    pub(crate) fn dispatch(self: &Arc<Self>) {
        while self.queue.len() > 0 {
            let Some(slot) = self.try_reserve_any() else {
                return;
            };
            match self.queue.pop() {
                None => {
                    slot.release_quiet();
                    return;
                }
                Some(tx) => {
                    if let Err(slot) = tx.send(slot) {
                        // The caller gave up; offer the slot to the next one.
                        slot.release_quiet();
                    }
                }
            }
        }
    }

    pub(crate) fn stats(&self) -> PoolStats {
        let workers: Vec<_> = {
            let list = self.workers.read().unwrap_or_else(|e| e.into_inner());
            list.iter().map(|w| w.stats()).collect()
        };
        let ready = workers
            .iter()
            .filter(|w| w.state == WorkerState::Ready)
            .count();
        let target = self.target.load(Ordering::Relaxed);
        let crash_loop = self.crash_loop.load(Ordering::Relaxed);
        let status = if self.closing.load(Ordering::Relaxed) || ready == 0 && target > 0 {
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
            queued: self.queue.len(),
            queue_capacity: self.queue.capacity,
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

fn memchr_newline(buf: &[u8]) -> bool {
    buf.iter().any(|&b| b == b'\n' || b == b'\r')
}

/// The FIFO of calls waiting for a slot. Bounded: a push beyond the capacity
/// fails with the capacity.
#[derive(Debug)]
pub(crate) struct WaitQueue {
    waiters: Mutex<WaitQueueInner>,
    len: AtomicUsize,
    capacity: usize,
}

#[derive(Debug)]
struct WaitQueueInner {
    waiters: VecDeque<(u64, Instant, oneshot::Sender<SlotGuard>)>,
    next_ticket: u64,
}

impl WaitQueue {
    fn new(capacity: usize) -> WaitQueue {
        WaitQueue {
            waiters: Mutex::new(WaitQueueInner {
                waiters: VecDeque::new(),
                next_ticket: 0,
            }),
            len: AtomicUsize::new(0),
            capacity,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn push(&self) -> Result<(u64, oneshot::Receiver<SlotGuard>), usize> {
        let mut inner = lock(&self.waiters);
        if inner.waiters.len() >= self.capacity {
            return Err(self.capacity);
        }
        let ticket = inner.next_ticket;
        inner.next_ticket += 1;
        let (tx, rx) = oneshot::channel();
        inner.waiters.push_back((ticket, Instant::now(), tx));
        self.len.store(inner.waiters.len(), Ordering::Release);
        metrics::gauge!(crate::metrics::QUEUE_DEPTH).set(inner.waiters.len() as f64);
        Ok((ticket, rx))
    }

    fn pop(&self) -> Option<oneshot::Sender<SlotGuard>> {
        let mut inner = lock(&self.waiters);
        let front = inner.waiters.pop_front().map(|(_, _, tx)| tx);
        self.len.store(inner.waiters.len(), Ordering::Release);
        metrics::gauge!(crate::metrics::QUEUE_DEPTH).set(inner.waiters.len() as f64);
        front
    }

    fn remove(&self, ticket: u64) {
        let mut inner = lock(&self.waiters);
        if let Some(pos) = inner.waiters.iter().position(|(t, _, _)| *t == ticket) {
            inner.waiters.remove(pos);
            self.len.store(inner.waiters.len(), Ordering::Release);
            metrics::gauge!(crate::metrics::QUEUE_DEPTH).set(inner.waiters.len() as f64);
        }
    }

    /// Drops every waiter; each sees its channel closed.
    pub(crate) fn clear(&self) {
        let mut inner = lock(&self.waiters);
        inner.waiters.clear();
        self.len.store(0, Ordering::Release);
        metrics::gauge!(crate::metrics::QUEUE_DEPTH).set(0.0);
    }

    /// How long the oldest call has been waiting.
    pub(crate) fn oldest_wait(&self) -> Option<std::time::Duration> {
        lock(&self.waiters)
            .waiters
            .front()
            .map(|(_, since, _)| since.elapsed())
    }
}

/// Removes a queued call from the queue when its caller stops waiting.
struct QueuedCall<'a> {
    shared: &'a Shared,
    ticket: u64,
}

impl Drop for QueuedCall<'_> {
    fn drop(&mut self) {
        self.shared.queue.remove(self.ticket);
    }
}
