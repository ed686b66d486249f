//! Admission, slots and the parking lot: the one home of every claim a call
//! has on a worker.
//!
//! A call is *admitted* when it takes one of a worker's in-flight slots,
//! either at once (least-loaded worker below its cap) or from the bounded
//! FIFO queue when a slot frees. Its slot stays taken until its answer is
//! settled, or, when its caller goes away or its deadline passes while the
//! worker holds it, until the *parked* call's late answer arrives or the
//! worker dies. Nothing outside this module touches a slot count, the wait
//! queue, a worker's pending table or its parking lot: the call path, the
//! reader, the deadline sweep, the supervisor and the worker's end all go
//! through the narrow interface below.
//!
//! # Lock order
//!
//! A worker's lot lock, then its pending table's internal lock; never the
//! other way round. Every step that takes a call out of the pending table
//! (an answer settled, a deadline fired, a caller abandoning, the worker's
//! end) happens under the lot lock, so whoever comes second sees the first
//! step whole: an answer that misses the table finds its call parked, and a
//! caller that goes away finds its answer delivered or its call still in the
//! table, never in between. The queue's lock is a leaf: nothing else is
//! taken while it is held, and slots are freed outside every lock (freeing
//! one may dispatch queued calls).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use pybridge_protocol::{
    Codec, Id, Pending, PendingError, PendingResult, PendingTable, Response, write_notification,
};
use serde_json::value::RawValue;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::pipe::Direct;
use crate::stats::WorkerState;
use crate::worker::{HeldFailure, Outgoing, Worker, WorkerId, encode_frame, lock};
use crate::{Error, Result, TimeoutStage, WorkerFailure};

/// The pool's admission: its workers, their slots, and the wait queue.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Workers in the order they joined; routing picks among the ready ones.
    roster: RwLock<Vec<Arc<Worker>>>,
    queue: WaitQueue,
    /// Set when shutdown begins: no new call is admitted.
    closing: AtomicBool,
    /// Set while no worker can start (crash loop) so calls fail fast.
    unavailable: Mutex<Option<Arc<str>>>,
    /// Notified whenever a slot is released while the pool is closing.
    released: Notify,
    /// How long a parked call may wait for its late answer before its worker
    /// counts as hung.
    grace: Duration,
    /// Frames the `$/cancelRequest` sent for a call nobody waits for.
    codec: Codec,
}

/// One worker's slots, pending calls and parked calls.
#[derive(Debug)]
pub(crate) struct Lot {
    /// The most calls this worker may hold: the pool's `max_in_flight`, or
    /// less if the worker advertised a lower `max_concurrency`.
    cap: AtomicUsize,
    in_flight: AtomicUsize,
    /// When the worker last went idle, in milliseconds since it spawned.
    idle_since_ms: AtomicU64,
    spawned_at: Instant,
    pending: PendingTable<HeldFailure>,
    parked: Mutex<HashMap<i64, Parked>>,
    /// The pool's own `$/ping`s not yet answered, those given up on
    /// included: a dying worker's count of failed calls leaves them out, and
    /// a late answer to one is expected, not a stray.
    pings: Mutex<Vec<i64>>,
    in_flight_gauge: metrics::Gauge,
}

/// A `$/ping` registered outside the slot accounting. Its id leaves the
/// lot's list of pings when it drops [`settled`](Ping::settled); one given
/// up on (timed out, or its health check cancelled) stays until its late
/// answer comes or the worker dies.
pub(crate) struct Ping<'a> {
    lot: &'a Lot,
    id: i64,
    pub(crate) pending: Pending<HeldFailure>,
    /// Answered, or failed with the worker.
    pub(crate) settled: bool,
}

impl Drop for Ping<'_> {
    fn drop(&mut self) {
        if self.settled {
            lock(&self.lot.pings).retain(|id| *id != self.id);
        }
    }
}

/// A call whose deadline passed (or whose caller went away) while the worker
/// still held it. Its slot stays taken until the worker answers or dies, so
/// a worker is never handed more work than its cap. The deadline sweep parks
/// an expired call without its slot; its caller hands the slot over when it
/// wakes (or drops).
#[derive(Debug)]
struct Parked {
    grace_until: Instant,
    slot: Option<SlotGuard>,
}

/// What became of an answer read from a worker.
#[derive(Debug)]
pub(crate) enum Settled {
    /// Its caller got it.
    Delivered,
    /// Its call was parked; the parked slot is free again.
    Late,
    /// It answered a `$/ping` the pool had given up on.
    LatePing,
    /// No call has its id.
    Unknown(Response),
}

impl Lot {
    pub(crate) fn new(cap: usize, slot: usize, spawned_at: Instant) -> Lot {
        Lot {
            cap: AtomicUsize::new(cap.max(1)),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            spawned_at,
            pending: PendingTable::new(),
            parked: Mutex::new(HashMap::new()),
            pings: Mutex::new(Vec::new()),
            in_flight_gauge: metrics::gauge!(crate::metrics::IN_FLIGHT, crate::metrics::LABEL_SLOT => slot.to_string()),
        }
    }

    /// Calls holding a slot now, parked ones included.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The most calls the worker may hold at once.
    pub(crate) fn cap(&self) -> usize {
        self.cap.load(Ordering::Acquire)
    }

    /// Lowers the cap to what the worker advertised; set before it is ready.
    pub(crate) fn limit(&self, cap: usize) {
        self.cap.fetch_min(cap.max(1), Ordering::AcqRel);
    }

    /// How long the worker has had nothing in flight.
    pub(crate) fn idle_for(&self) -> Option<Duration> {
        if self.in_flight() > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        Some(self.spawned_at.elapsed().saturating_sub(since))
    }

    /// Whether a parked call has outlived its grace period.
    pub(crate) fn overdue(&self, now: Instant) -> bool {
        lock(&self.parked).values().any(|p| p.grace_until <= now)
    }

    /// Takes one slot if the worker is ready and below its cap.
    fn try_take(&self, worker: &Worker) -> bool {
        let cap = self.cap();
        let mut current = self.in_flight.load(Ordering::Relaxed);
        loop {
            if current >= cap || worker.state() != WorkerState::Ready {
                return false;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.in_flight_gauge.increment(1.0);
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }

    fn give_back(&self) {
        let before = self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.in_flight_gauge.decrement(1.0);
        if before == 1 {
            let ms = u64::try_from(self.spawned_at.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.idle_since_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// Registers a request outside the slot accounting (the pool's own
    /// `$/ping`s), answered through the same table.
    pub(crate) fn register_ping(&self, id: i64) -> Result<Ping<'_>> {
        let pending = self
            .pending
            .register(Id::Number(id))
            .map_err(|err| Error::Encode(Arc::new(err)))?;
        lock(&self.pings).push(id);
        Ok(Ping {
            lot: self,
            id,
            pending,
            settled: false,
        })
    }

    /// Settles an answer read from the worker: to its caller, or to its
    /// parked call (freeing the slot), or nowhere.
    pub(crate) fn settle_answer(&self, response: Response) -> Settled {
        let freed = {
            let mut parked = lock(&self.parked);
            let response = match self.pending.complete(response) {
                Ok(()) => return Settled::Delivered,
                Err(response) => response,
            };
            let Some(id) = response.id.as_number() else {
                return Settled::Unknown(response);
            };
            match parked.remove(&id) {
                Some(entry) => entry,
                None => {
                    let mut pings = lock(&self.pings);
                    return match pings.iter().position(|p| *p == id) {
                        Some(at) => {
                            pings.swap_remove(at);
                            Settled::LatePing
                        }
                        None => Settled::Unknown(response),
                    };
                }
            }
        };
        // The slot drops here, outside the lock.
        drop(freed);
        Settled::Late
    }

    /// Fails the call `id` (its answer was too large to read); frees its
    /// slot if it was parked. Returns whether any call had the id.
    pub(crate) fn fail_one(&self, id: i64, reason: HeldFailure) -> bool {
        let freed = {
            let mut parked = lock(&self.parked);
            if self.pending.fail(&Id::Number(id), reason) {
                return true;
            }
            parked.remove(&id)
        };
        freed.is_some()
    }

    /// Fails the calls whose deadline has passed and parks them, in one step
    /// under the lot's lock. Returns the earliest deadline still pending.
    pub(crate) fn expire_due(&self, now: Instant, grace: Duration) -> Option<Instant> {
        let mut parked = lock(&self.parked);
        for id in self.pending.expire_ids(now.into_std()) {
            if let Some(id) = id.as_number() {
                // A caller that went away at the same moment may have parked
                // it already, with its slot; keep that entry.
                parked.entry(id).or_insert(Parked {
                    grace_until: now + grace,
                    slot: None,
                });
            }
        }
        drop(parked);
        self.pending.next_deadline().map(Instant::from_std)
    }

    /// The worker is gone: fails every call it held (`unwritten` ones as
    /// never received) and every later registration, and frees every parked
    /// slot. Returns how many calls were failed.
    pub(crate) fn close(&self, failure: &Arc<WorkerFailure>, unwritten: &[i64]) -> usize {
        let (failed, freed): (usize, Vec<Parked>) = {
            let mut parked = lock(&self.parked);
            for id in unwritten {
                self.pending
                    .fail(&Id::Number(*id), HeldFailure::worker(failure, false));
            }
            // Pings are not calls: failed first, so the count is of calls.
            for id in lock(&self.pings).iter() {
                self.pending
                    .fail(&Id::Number(*id), HeldFailure::worker(failure, true));
            }
            let failed = self.pending.close(&HeldFailure::worker(failure, true));
            (failed, parked.drain().map(|(_, entry)| entry).collect())
        };
        drop(freed);
        failed
    }
}

impl Admission {
    pub(crate) fn new(queue_capacity: usize, grace: Duration, codec: Codec) -> Admission {
        Admission {
            roster: RwLock::new(Vec::new()),
            queue: WaitQueue::new(queue_capacity),
            closing: AtomicBool::new(false),
            unavailable: Mutex::new(None),
            released: Notify::new(),
            grace,
            codec,
        }
    }

    // The roster.

    /// Adds a spawned worker; it takes calls once it is ready.
    pub(crate) fn join(&self, worker: Arc<Worker>) {
        self.roster
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(worker);
    }

    /// Removes a worker that is gone.
    pub(crate) fn leave(&self, id: WorkerId) {
        self.roster
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|w| w.id != id);
    }

    pub(crate) fn workers(&self) -> Vec<Arc<Worker>> {
        self.roster
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn worker(&self, id: WorkerId) -> Option<Arc<Worker>> {
        let roster = self.roster.read().unwrap_or_else(|e| e.into_inner());
        roster.iter().find(|w| w.id == id).cloned()
    }

    /// Slots taken on every worker, parked calls included.
    pub(crate) fn in_flight(&self) -> usize {
        let roster = self.roster.read().unwrap_or_else(|e| e.into_inner());
        roster.iter().map(|w| w.lot.in_flight()).sum()
    }

    // Opening and closing.

    pub(crate) fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// Stops admitting calls and fails the queued ones; returns whether it
    /// was already closing.
    pub(crate) fn close(&self) -> bool {
        let was = self.closing.swap(true, Ordering::AcqRel);
        self.queue.clear();
        was
    }

    /// Waits until a slot is released or `within` passes.
    pub(crate) async fn released(&self, within: Duration) {
        tokio::select! {
            () = self.released.notified() => {}
            () = tokio::time::sleep(within) => {}
        }
    }

    /// Fails queued and new calls at once with `reason` until a worker is
    /// ready again (`None`).
    pub(crate) fn set_unavailable(&self, reason: Option<Arc<str>>) {
        let clear = reason.is_some();
        *lock(&self.unavailable) = reason;
        if clear {
            self.queue.clear();
        }
    }

    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(crate) fn queue_capacity(&self) -> usize {
        self.queue.capacity
    }

    /// How long the oldest queued call has been waiting.
    pub(crate) fn oldest_wait(&self) -> Option<Duration> {
        self.queue.oldest_wait()
    }

    // Admission.

    /// Takes a slot on the least-loaded ready worker, or waits in the queue.
    /// A call whose deadline passes while it waits fails with a queue-stage
    /// timeout and is never sent, even if a slot came free at that moment.
    /// Returns the slot and the time it was granted: `started` (the caller's
    /// reading of the clock just now) when one was free, else the grant's
    /// own reading, so the caller reads the clock no more to know when its
    /// request left the queue.
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        deadline: Instant,
        started: Instant,
    ) -> Result<(SlotGuard, Instant)> {
        let timeout = || Error::Timeout {
            elapsed: started.elapsed(),
            stage: TimeoutStage::Queued,
            worker: None,
        };
        // `started` is the caller's reading of the clock just now.
        if started >= deadline {
            return Err(timeout());
        }
        if self.queue.len() == 0
            && let Some(slot) = self.try_reserve_any()
        {
            return Ok((slot, started));
        }
        if let Some(reason) = lock(&self.unavailable).clone() {
            return Err(Error::Unavailable { reason });
        }
        let (ticket, rx) = self.queue.push(deadline).map_err(|capacity| {
            metrics::counter!(crate::metrics::QUEUE_REJECTED).increment(1);
            Error::QueueFull { capacity }
        })?;
        let waiter = QueuedCall {
            admission: self,
            ticket,
        };
        // A slot may have been freed between the check above and the push.
        self.dispatch();
        let granted = tokio::select! {
            slot = rx => slot,
            () = tokio::time::sleep_until(deadline) => return Err(timeout()),
        };
        drop(waiter);
        let now = Instant::now();
        match granted {
            // Checked at the grant: a call woken late must not be sent late.
            Ok(slot) if now < deadline => Ok((slot, now)),
            Ok(slot) => {
                drop(slot);
                Err(timeout())
            }
            // The dispatcher drops the waiters whose deadline passed.
            Err(_) if now >= deadline => Err(timeout()),
            Err(_) => Err(self.closed_error()),
        }
    }

    fn closed_error(&self) -> Error {
        if self.is_closing() {
            return Error::ShuttingDown;
        }
        let reason = lock(&self.unavailable).clone();
        Error::Unavailable {
            reason: reason.unwrap_or_else(|| "the queue was cleared".into()),
        }
    }

    /// The ready worker with the most room relative to its cap.
    fn try_reserve_any(self: &Arc<Self>) -> Option<SlotGuard> {
        // Another caller may take the chosen slot between the scan and the
        // reservation; a few rescans settle it.
        for _ in 0..4 {
            let worker = {
                let roster = self.roster.read().unwrap_or_else(|e| e.into_inner());
                let best = roster
                    .iter()
                    .filter(|w| w.state() == WorkerState::Ready && w.lot.in_flight() < w.lot.cap())
                    .min_by(|a, b| load(a).cmp(&load(b)))?;
                if !best.lot.try_take(best) {
                    continue;
                }
                Arc::clone(best)
            };
            return Some(SlotGuard {
                worker,
                admission: Arc::clone(self),
                armed: true,
            });
        }
        None
    }

    /// Hands free slots to queued calls, first come first served; a waiter
    /// whose deadline has passed gets none (its caller fails at the queue
    /// stage).
    pub(crate) fn dispatch(self: &Arc<Self>) {
        while self.queue.len() > 0 {
            let Some(slot) = self.try_reserve_any() else {
                return;
            };
            let mut slot = Some(slot);
            let now = Instant::now();
            while let Some(granted) = slot.take() {
                match self.queue.pop() {
                    None => granted.release_quiet(),
                    Some((deadline, _)) if deadline <= now => slot = Some(granted),
                    Some((_, tx)) => {
                        if let Err(granted) = tx.send(granted) {
                            // The caller gave up; offer the slot to the next one.
                            slot = Some(granted);
                        }
                    }
                }
            }
            if self.queue.len() == 0 {
                return;
            }
        }
    }

    fn release(self: &Arc<Self>, worker: &Worker) {
        worker.lot.give_back();
        if self.queue.len() > 0 {
            self.dispatch();
        }
        if self.is_closing() {
            self.released.notify_waiters();
        }
    }

    // The deadline sweep.

    /// Fails `worker`'s calls whose deadline passed and parks them; returns
    /// the earliest deadline still pending there.
    pub(crate) fn expire_due(&self, worker: &Worker, now: Instant) -> Option<Instant> {
        worker.lot.expire_due(now, self.grace)
    }

    /// Tells a worker to stop working on a call nobody waits for. Best
    /// effort: if the outbox is full, the grace period still catches a worker
    /// that never answers.
    fn send_cancel(&self, worker: &Worker, id: i64) {
        let params = format!("{{\"id\":{id}}}");
        let frame = RawValue::from_string(params).ok().and_then(|params| {
            encode_frame(&self.codec, |buf| {
                write_notification(buf, "$/cancelRequest", Some(&params));
            })
            .ok()
        });
        if let Some(frame) = frame {
            let _ = worker.outbox.try_send(Outgoing { id: None, frame });
        }
    }
}

/// Routing load: calls held relative to the cap, compared without division.
fn load(worker: &Worker) -> impl Ord {
    // in_flight / cap, scaled; caps are at most a few thousand.
    let (held, cap) = (
        worker.lot.in_flight() as u128,
        worker.lot.cap().max(1) as u128,
    );
    (held << 32) / cap
}

/// One taken in-flight slot on a worker. Dropping it frees the slot and
/// hands a slot to the first queued call, if any.
#[derive(Debug)]
pub(crate) struct SlotGuard {
    worker: Arc<Worker>,
    admission: Arc<Admission>,
    armed: bool,
}

impl SlotGuard {
    pub(crate) fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }

    /// Frees the slot without dispatching the queue (the dispatcher itself does this).
    fn release_quiet(mut self) {
        self.armed = false;
        self.worker.lot.give_back();
    }

    /// Registers the call `id` on the slot's worker, to fail at `deadline`.
    pub(crate) fn register(self, id: i64, deadline: Instant) -> Result<Call> {
        let pending = self
            .worker
            .lot
            .pending
            .register_with_deadline(Id::Number(id), deadline.into_std())
            .map_err(|err| Error::Encode(Arc::new(err)))?;
        Ok(Call {
            id,
            slot: Some(self),
            pending: Some(pending),
            written: false,
        })
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if self.armed {
            self.admission.release(&self.worker);
        }
    }
}

/// A call holding a slot on a worker, from registration until its answer is
/// settled. Dropping it before then (its deadline passed, or its caller went
/// away) parks it, under the lot's lock, if the worker may still answer:
/// `$/cancelRequest` is sent and the slot stays taken until the answer comes
/// or the worker dies. A call whose answer arrived, or whose request was
/// neither written (in whole or in part) nor handed to the worker's writer,
/// frees its slot at once.
#[derive(Debug)]
pub(crate) struct Call {
    id: i64,
    slot: Option<SlotGuard>,
    pending: Option<Pending<HeldFailure>>,
    /// Whether the request was written, in whole or in part, by its caller,
    /// or handed to the worker's writer.
    written: bool,
}

impl Call {
    /// Writes the request itself when it is alone on an idle worker (see
    /// [`Pipe`](crate::pipe::Pipe)); otherwise hands it to the worker's
    /// writer. The outbox holds more than a worker's in-flight cap, so a
    /// request finds room at once; waiting covers the rare burst of control
    /// messages. Fails when the worker's stdin is closed.
    pub(crate) async fn send(
        &mut self,
        worker: &Worker,
        frame: bytes::Bytes,
    ) -> std::result::Result<(), ()> {
        let outbox = &worker.outbox;
        let frame = if worker.in_flight() <= 1 {
            match worker.pipe.try_write(frame) {
                Direct::Written => {
                    self.written = true;
                    return Ok(());
                }
                Direct::Started => {
                    self.written = true;
                    // Wakes the writer to finish the frame. A full outbox
                    // wakes it anyway; a closed one means the worker is gone.
                    let _ = outbox.try_send(Outgoing {
                        id: None,
                        frame: bytes::Bytes::new(),
                    });
                    return Ok(());
                }
                Direct::Queue(frame) => frame,
            }
        } else {
            frame
        };
        let message = Outgoing {
            id: Some(self.id),
            frame,
        };
        let sent = match outbox.try_send(message) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(message)) => {
                outbox.send(message).await.map_err(|_| ())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        };
        // No await between the send finishing and this line: a caller that
        // drops the call sees `written` exactly as the outbox does.
        self.written = sent.is_ok();
        sent
    }

    /// Waits for the answer. An answer or a failure frees the slot; a passed
    /// deadline leaves the call to be parked when it drops.
    pub(crate) async fn outcome(&mut self) -> PendingResult<HeldFailure> {
        let outcome = match self.pending.as_mut() {
            Some(pending) => pending.await,
            None => Err(PendingError::DeadlineExceeded),
        };
        self.pending = None;
        if !matches!(outcome, Err(PendingError::DeadlineExceeded)) {
            self.slot = None;
        }
        outcome
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        let Some(slot) = self.slot.take() else {
            return;
        };
        let id = self.id;
        let worker = Arc::clone(&slot.worker);
        let admission = Arc::clone(&slot.admission);
        let lot = &worker.lot;
        let (freed, cancel) = {
            let mut parked = lock(&lot.parked);
            // Under the lot's lock the reader is never between taking the
            // answer out of the table and handing it over: the answer has
            // either reached `pending` or will find the call parked.
            let state = match self.pending.take() {
                None => Poll::Ready(Err(PendingError::DeadlineExceeded)),
                Some(mut pending) => {
                    let mut cx = Context::from_waker(Waker::noop());
                    let state = std::pin::Pin::new(&mut pending).poll(&mut cx);
                    // A pending one leaves the table here, still under the lock.
                    drop(pending);
                    state
                }
            };
            match state {
                // The sweep parked it (without its slot); unless its late
                // answer already claimed the entry, the slot joins it.
                Poll::Ready(Err(PendingError::DeadlineExceeded)) => match parked.get_mut(&id) {
                    Some(entry) => {
                        entry.slot = Some(slot);
                        (None, true)
                    }
                    None => (Some(slot), false),
                },
                // Answered, or failed with its worker: nothing to wait for.
                Poll::Ready(_) => (Some(slot), false),
                Poll::Pending if self.written => {
                    let grace_until = Instant::now() + admission.grace;
                    parked.insert(
                        id,
                        Parked {
                            grace_until,
                            slot: Some(slot),
                        },
                    );
                    (None, true)
                }
                // Never handed to the writer: the worker will never see it.
                Poll::Pending => (Some(slot), false),
            }
        };
        if cancel {
            admission.send_cancel(&worker, id);
        }
        // Freed outside the lock: freeing a slot may dispatch queued calls.
        drop(freed);
    }
}

/// The FIFO of calls waiting for a slot. Bounded: a push beyond the capacity
/// fails with the capacity.
#[derive(Debug)]
struct WaitQueue {
    waiters: Mutex<WaitQueueInner>,
    len: AtomicUsize,
    capacity: usize,
}

#[derive(Debug)]
struct Waiter {
    ticket: u64,
    since: Instant,
    deadline: Instant,
    tx: oneshot::Sender<SlotGuard>,
}

#[derive(Debug)]
struct WaitQueueInner {
    waiters: VecDeque<Waiter>,
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

    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn set_len(&self, inner: &WaitQueueInner) {
        self.len.store(inner.waiters.len(), Ordering::Release);
        metrics::gauge!(crate::metrics::QUEUE_DEPTH).set(inner.waiters.len() as f64);
    }

    fn push(
        &self,
        deadline: Instant,
    ) -> std::result::Result<(u64, oneshot::Receiver<SlotGuard>), usize> {
        let mut inner = lock(&self.waiters);
        if inner.waiters.len() >= self.capacity {
            return Err(self.capacity);
        }
        let ticket = inner.next_ticket;
        inner.next_ticket += 1;
        let (tx, rx) = oneshot::channel();
        inner.waiters.push_back(Waiter {
            ticket,
            since: Instant::now(),
            deadline,
            tx,
        });
        self.set_len(&inner);
        Ok((ticket, rx))
    }

    fn pop(&self) -> Option<(Instant, oneshot::Sender<SlotGuard>)> {
        let mut inner = lock(&self.waiters);
        let front = inner.waiters.pop_front().map(|w| (w.deadline, w.tx));
        self.set_len(&inner);
        front
    }

    fn remove(&self, ticket: u64) {
        let mut inner = lock(&self.waiters);
        if let Some(pos) = inner.waiters.iter().position(|w| w.ticket == ticket) {
            inner.waiters.remove(pos);
            self.set_len(&inner);
        }
    }

    /// Drops every waiter; each sees its channel closed.
    fn clear(&self) {
        let waiters = {
            let mut inner = lock(&self.waiters);
            let waiters = std::mem::take(&mut inner.waiters);
            self.set_len(&inner);
            waiters
        };
        drop(waiters);
    }

    fn oldest_wait(&self) -> Option<Duration> {
        lock(&self.waiters)
            .waiters
            .front()
            .map(|w| w.since.elapsed())
    }
}

/// Removes a queued call from the queue when its caller stops waiting.
struct QueuedCall<'a> {
    admission: &'a Admission,
    ticket: u64,
}

impl Drop for QueuedCall<'_> {
    fn drop(&mut self) {
        self.admission.queue.remove(self.ticket);
    }
}
