//! The pool handle and the call path: encode, take a slot on the least-loaded
//! worker (or wait for one in a bounded FIFO queue), send, await the answer.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use pybridge_protocol::{Meta, PendingError, write_notification};
use serde_json::value::RawValue;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

use crate::events::{PoolEvent, RecycleReason};
use crate::shared::{Shared, ShutdownReport, SupervisorMsg, sweep_deadlines};
use crate::stats::{PoolStats, WorkerState};
use crate::supervisor;
use crate::worker::{Outgoing, Worker};
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

/// When a call started and when it must be answered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTime {
    /// The caller's reading of the clock as the call started: its queue
    /// wait and timeouts measure from it.
    pub started: Instant,
    /// When the call fails with a timeout if no answer has come.
    pub deadline: Instant,
}

/// A worker's result from [`Pool::call_with_meta_in`], with the pool's
/// reading of the clock as the answer reached the caller: a caller that
/// times the call (a breaker, say) reads it there instead of again.
#[derive(Debug)]
#[non_exhaustive]
pub struct Answer {
    /// The worker's result, checked as JSON.
    pub result: Box<RawValue>,
    /// When the pool handed the answer over.
    pub at: Instant,
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
        let program = if config.max_workers == 0 {
            // Remote workers only: nothing is ever spawned.
            spec.program.clone()
        } else {
            tokio::task::spawn_blocking(move || spec.resolve_program())
                .await
                .map_err(|_| Error::StartFailed {
                    reason: "program lookup panicked".into(),
                })??
        };
        crate::metrics::describe();
        let (events, _) = broadcast::channel(1024);
        let (supervisor_tx, supervisor_rx) = mpsc::channel(1024);
        let shared = Arc::new(Shared::new(config, program, events, supervisor_tx));
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
        self.call_with_meta(id, method, params, deadline, None)
            .await
    }

    /// Like [`call_with_id`](Pool::call_with_id), with a `_meta` member in
    /// the request (docs/protocol.md, section 9): the caller's W3C trace
    /// context, so the worker can continue the trace. `None`, or a `Meta`
    /// with only empty members, sends the request without `_meta`.
    ///
    /// # Errors
    /// As [`call_with_deadline`](Pool::call_with_deadline).
    pub async fn call_with_meta(
        &self,
        id: RequestId,
        method: &str,
        params: Option<&RawValue>,
        deadline: Instant,
        meta: Option<&Meta<'_>>,
    ) -> Result<Box<RawValue>> {
        let answer = self
            .call_with_meta_in(
                &tracing::Span::current(),
                id,
                method,
                params,
                CallTime {
                    started: Instant::now(),
                    deadline,
                },
                meta,
            )
            .await?;
        Ok(answer.result)
    }

    /// Like [`call_with_meta`](Pool::call_with_meta), recording the worker's
    /// id in `span`'s `worker` field rather than the current span's: for a
    /// caller that does not enter its span on every poll of the call (each
    /// enter and exit of a traced span costs lookups in the subscriber).
    /// `time` says when the call started, by the caller's own reading of
    /// the clock (a caller that has one saves the pool reading it again),
    /// and when it must be answered by; the [`Answer`] says when it was
    /// answered, by the reading the pool takes for its own metrics.
    ///
    /// # Errors
    /// As [`call_with_deadline`](Pool::call_with_deadline).
    pub async fn call_with_meta_in(
        &self,
        span: &tracing::Span,
        id: RequestId,
        method: &str,
        params: Option<&RawValue>,
        time: CallTime,
        meta: Option<&Meta<'_>>,
    ) -> Result<Answer> {
        let CallTime { started, deadline } = time;
        let shared = &self.handle.shared;
        if shared.admission.is_closing() {
            return Err(Error::ShuttingDown);
        }
        let id = id.0;
        let frame = shared.frame_request(id, method, params, meta)?;
        let (slot, sent) = shared.admission.acquire(deadline, started).await?;
        let worker = Arc::clone(slot.worker());
        span.record("worker", worker.id.0);
        // The deadline lives in the pending table and is fired by the pool's
        // sweep, not by a timer per call: registering a timer from outside
        // the runtime wakes its driver on every call.
        let mut call = slot.register(id, deadline)?;
        shared.sweep_by(deadline);
        if call.send(&worker, frame).await.is_err() {
            drop(call);
            return Err(Error::WorkerFailed {
                failure: Arc::new(failure_now(&worker, FailureReason::Exited)),
                written: false,
            });
        }
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
                let at = Instant::now();
                worker
                    .metrics
                    .duration
                    .record(at.saturating_duration_since(sent));
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
                match response.result {
                    Ok(result) => Ok(Answer { result, at }),
                    Err(error) => Err(Error::Remote {
                        worker: worker.id,
                        error,
                    }),
                }
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

pub(crate) fn failure_now(worker: &Worker, reason: FailureReason) -> WorkerFailure {
    WorkerFailure {
        worker: worker.id,
        pid: worker.endpoint.is_none().then_some(worker.pid),
        reason,
        status: None,
        stderr_tail: worker.stderr_tail(),
    }
}
