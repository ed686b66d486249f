//! The state one worker shares between its I/O tasks, its callers and the supervisor.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use pybridge_protocol::{Id, PendingTable};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::pool::SlotGuard;
use crate::stats::{WorkerState, WorkerStats};
use crate::{FailureReason, WorkerFailure};

/// A worker's identity within its pool: a counter, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u64);

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}", self.0)
    }
}

/// Why a call held by a worker failed without an answer.
#[derive(Debug, Clone)]
pub(crate) enum HeldFailure {
    /// The worker failed; shared by every call it held, plus whether this
    /// call's request had reached it.
    Worker {
        failure: Arc<WorkerFailure>,
        written: bool,
    },
    /// The answer was larger than the frame limit and was skipped.
    TooLarge { worker: WorkerId, limit: usize },
}

impl HeldFailure {
    pub(crate) fn worker(failure: &Arc<WorkerFailure>, written: bool) -> HeldFailure {
        HeldFailure::Worker {
            failure: Arc::clone(failure),
            written,
        }
    }

    pub(crate) fn too_large(worker: WorkerId, limit: usize) -> HeldFailure {
        HeldFailure::TooLarge { worker, limit }
    }

    pub(crate) fn into_error(self) -> crate::Error {
        match self {
            HeldFailure::Worker { failure, written } => {
                crate::Error::WorkerFailed { failure, written }
            }
            HeldFailure::TooLarge { worker, limit } => {
                crate::Error::ResponseTooLarge { worker, limit }
            }
        }
    }
}

/// A framed message on its way to the worker's stdin. `id` is set for
/// requests, so that frames never written can be failed as safe to resend.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) id: Option<i64>,
    pub(crate) frame: Bytes,
}

/// A call whose deadline passed (or whose caller went away) while the worker
/// still held it. Its slot stays taken until the worker answers or dies, so a
/// worker is never handed more work than its cap. The deadline sweep parks
/// the call first; its caller hands over the slot when it wakes.
#[derive(Debug)]
pub(crate) struct Abandoned {
    pub(crate) grace_until: Instant,
    pub(crate) slot: Option<SlotGuard>,
}

const STARTING: u8 = 0;
const READY: u8 = 1;
const DRAINING: u8 = 2;
const DEAD: u8 = 3;

#[derive(Debug)]
pub(crate) struct Worker {
    pub(crate) id: WorkerId,
    pub(crate) slot: usize,
    pub(crate) pid: u32,
    pub(crate) spawned_at: Instant,
    /// How many workers died in this slot before this one.
    pub(crate) restarts: u64,
    state: AtomicU8,
    in_flight: AtomicUsize,
    pub(crate) served: AtomicU64,
    pub(crate) rss_bytes: AtomicU64,
    pub(crate) missed_pings: AtomicU32,
    /// When the worker last went idle, in milliseconds since it spawned.
    idle_since_ms: AtomicU64,
    /// The request count after which it is recycled, drawn with jitter at spawn.
    pub(crate) recycle_after: Option<u64>,
    pub(crate) pending: PendingTable<HeldFailure>,
    pub(crate) outbox: mpsc::Sender<Outgoing>,
    pub(crate) abandoned: Mutex<HashMap<i64, Abandoned>>,
    pub(crate) stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// Cancelled to kill the worker at once; the reason is set first.
    pub(crate) kill: CancellationToken,
    /// Cancelled to stop the worker gracefully (drain, close stdin, escalate).
    pub(crate) stop: CancellationToken,
    pub(crate) end_reason: Mutex<Option<FailureReason>>,
    pub(crate) metrics: WorkerMetrics,
}

#[derive(Debug)]
pub(crate) struct WorkerMetrics {
    pub(crate) requests: metrics::Counter,
    pub(crate) in_flight: metrics::Gauge,
    pub(crate) duration: metrics::Histogram,
}

impl WorkerMetrics {
    pub(crate) fn new(slot: usize) -> WorkerMetrics {
        use crate::metrics::*;
        let slot = slot.to_string();
        WorkerMetrics {
            requests: metrics::counter!(REQUESTS, LABEL_SLOT => slot.clone()),
            in_flight: metrics::gauge!(IN_FLIGHT, LABEL_SLOT => slot.clone()),
            duration: metrics::histogram!(REQUEST_DURATION, LABEL_SLOT => slot),
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent before anything can
    // panic, so a poisoned lock is still safe to use.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug)]
pub(crate) struct WorkerParts {
    pub(crate) id: WorkerId,
    pub(crate) slot: usize,
    pub(crate) pid: u32,
    pub(crate) restarts: u64,
    pub(crate) recycle_after: Option<u64>,
    pub(crate) outbox: mpsc::Sender<Outgoing>,
    pub(crate) stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl Worker {
    pub(crate) fn new(parts: WorkerParts) -> Worker {
        Worker {
            id: parts.id,
            slot: parts.slot,
            pid: parts.pid,
            spawned_at: Instant::now(),
            restarts: parts.restarts,
            state: AtomicU8::new(STARTING),
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            rss_bytes: AtomicU64::new(0),
            missed_pings: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
            recycle_after: parts.recycle_after,
            pending: PendingTable::new(),
            outbox: parts.outbox,
            abandoned: Mutex::new(HashMap::new()),
            stderr_tail: parts.stderr_tail,
            kill: CancellationToken::new(),
            stop: CancellationToken::new(),
            end_reason: Mutex::new(None),
            metrics: WorkerMetrics::new(parts.slot),
        }
    }

    pub(crate) fn state(&self) -> WorkerState {
        WorkerState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub(crate) fn set_ready(&self) -> bool {
        self.state
            .compare_exchange(STARTING, READY, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Stops routing new calls here; returns whether the worker was ready.
    pub(crate) fn set_draining(&self) -> bool {
        self.state
            .compare_exchange(READY, DRAINING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn set_dead(&self) {
        self.state.store(DEAD, Ordering::Release);
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Takes one of the worker's in-flight slots if it is ready and below `cap`.
    pub(crate) fn try_reserve(&self, cap: usize) -> bool {
        let mut current = self.in_flight.load(Ordering::Relaxed);
        loop {
            if current >= cap || self.state.load(Ordering::Acquire) != READY {
                return false;
            }
            match self.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    self.metrics.in_flight.increment(1.0);
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }

    pub(crate) fn release(&self) {
        let before = self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.metrics.in_flight.decrement(1.0);
        if before == 1 {
            let ms = u64::try_from(self.spawned_at.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.idle_since_ms.store(ms, Ordering::Relaxed);
        }
    }

    /// How long the worker has had nothing in flight.
    pub(crate) fn idle_for(&self) -> Option<Duration> {
        if self.in_flight() > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Relaxed));
        Some(self.spawned_at.elapsed().saturating_sub(since))
    }

    /// Marks the worker for killing with `reason` (the first reason wins).
    pub(crate) fn kill_with(&self, reason: FailureReason) {
        lock(&self.end_reason).get_or_insert(reason);
        self.kill.cancel();
    }

    /// Asks the worker to stop gracefully (the first reason wins).
    pub(crate) fn stop_with(&self, reason: FailureReason) {
        lock(&self.end_reason).get_or_insert(reason);
        self.stop.cancel();
    }

    pub(crate) fn stderr_tail(&self) -> Vec<String> {
        lock(&self.stderr_tail).iter().cloned().collect()
    }

    /// Parks a call whose caller stopped waiting, with its slot.
    pub(crate) fn abandon(&self, id: i64, entry: Abandoned) {
        let mut map = lock(&self.abandoned);
        map.insert(id, entry);
    }

    /// Fails the calls whose deadline has passed and parks them, in one step
    /// under the parking lot's lock: a late answer that finds its call gone
    /// from the pending table then always finds it parked. Returns their ids.
    pub(crate) fn expire_due(&self, now: Instant, grace: Duration) -> Vec<i64> {
        let mut map = lock(&self.abandoned);
        let due = self.pending.expire_ids(now.into_std());
        let ids: Vec<i64> = due.iter().filter_map(Id::as_number).collect();
        for id in &ids {
            // A caller that went away at the same moment may have parked it
            // already, with its slot; keep that entry.
            map.entry(*id).or_insert(Abandoned {
                grace_until: now + grace,
                slot: None,
            });
        }
        ids
    }

    /// Hands an expired call's slot to its parked entry; frees it at once if
    /// the late answer already claimed the entry.
    pub(crate) fn park_slot(&self, id: i64, slot: SlotGuard) {
        let unparked = {
            let mut map = lock(&self.abandoned);
            match map.get_mut(&id) {
                Some(entry) => {
                    entry.slot = Some(slot);
                    None
                }
                None => Some(slot),
            }
        };
        // Dropped outside the lock: freeing the slot may dispatch queued calls.
        drop(unparked);
    }

    /// Removes a parked call (its late answer arrived); returns whether it was
    /// parked. Always takes the lock: a call being expired right now is only
    /// visible under it.
    pub(crate) fn claim_abandoned(&self, id: i64) -> bool {
        // The entry (and the slot it frees) drops after the lock is released.
        let entry = lock(&self.abandoned).remove(&id);
        entry.is_some()
    }

    /// Frees every parked call's slot (the worker is gone).
    pub(crate) fn clear_abandoned(&self) -> usize {
        let entries: Vec<Abandoned> = {
            let mut map = lock(&self.abandoned);
            map.drain().map(|(_, entry)| entry).collect()
        };
        entries.len()
    }

    /// Calls kept past their deadline for longer than the grace period.
    pub(crate) fn overdue_abandoned(&self, now: Instant) -> bool {
        lock(&self.abandoned).values().any(|a| a.grace_until <= now)
    }

    pub(crate) fn stats(&self) -> WorkerStats {
        let rss = self.rss_bytes.load(Ordering::Relaxed);
        WorkerStats {
            id: self.id,
            slot: self.slot,
            pid: self.pid,
            state: self.state(),
            in_flight: self.in_flight(),
            served: self.served.load(Ordering::Relaxed),
            restarts: self.restarts,
            rss_bytes: (rss > 0).then_some(rss),
            age: self.spawned_at.elapsed(),
        }
    }
}
