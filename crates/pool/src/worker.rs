//! The state one worker shares between its I/O tasks, its callers and the supervisor.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{BufMut, Bytes, BytesMut};
use pybridge_protocol::{Codec, Framing};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::admission::Lot;
use crate::pipe::Pipe;
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
    /// Its slots, pending calls and parked calls; only `admission` changes them.
    pub(crate) lot: Lot,
    /// The protocol version it announced, once ready.
    pub(crate) protocol_version: OnceLock<Arc<str>>,
    pub(crate) served: AtomicU64,
    pub(crate) rss_bytes: AtomicU64,
    pub(crate) missed_pings: AtomicU32,
    /// The round trip of the last answered ping, in microseconds (0: none yet).
    rtt_micros: AtomicU64,
    /// The index of its remote endpoint; `None` for a spawned process.
    pub(crate) endpoint: Option<usize>,
    /// The request count after which it is recycled, drawn with jitter at spawn.
    pub(crate) recycle_after: Option<u64>,
    pub(crate) outbox: mpsc::Sender<Outgoing>,
    /// Its write half while the writer task does not hold it: a call alone
    /// on the worker writes its frame itself.
    pub(crate) pipe: Arc<Pipe>,
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
    pub(crate) duration: metrics::Histogram,
}

impl WorkerMetrics {
    pub(crate) fn new(slot: usize) -> WorkerMetrics {
        use crate::metrics::*;
        let slot = slot.to_string();
        WorkerMetrics {
            requests: metrics::counter!(REQUESTS, LABEL_SLOT => slot.clone()),
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
    /// The pool's `max_in_flight`, until the worker advertises less.
    pub(crate) cap: usize,
    pub(crate) outbox: mpsc::Sender<Outgoing>,
    pub(crate) stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// The index of its remote endpoint; `None` for a spawned process.
    pub(crate) endpoint: Option<usize>,
}

impl Worker {
    pub(crate) fn new(parts: WorkerParts) -> Worker {
        let spawned_at = Instant::now();
        Worker {
            id: parts.id,
            slot: parts.slot,
            pid: parts.pid,
            spawned_at,
            restarts: parts.restarts,
            state: AtomicU8::new(STARTING),
            lot: Lot::new(parts.cap, parts.slot, spawned_at),
            protocol_version: OnceLock::new(),
            served: AtomicU64::new(0),
            rss_bytes: AtomicU64::new(0),
            missed_pings: AtomicU32::new(0),
            rtt_micros: AtomicU64::new(0),
            endpoint: parts.endpoint,
            recycle_after: parts.recycle_after,
            outbox: parts.outbox,
            pipe: Arc::default(),
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
        self.lot.in_flight()
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

    pub(crate) fn set_rtt(&self, rtt: std::time::Duration) {
        let micros = u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX).max(1);
        self.rtt_micros.store(micros, Ordering::Relaxed);
    }

    pub(crate) fn stderr_tail(&self) -> Vec<String> {
        lock(&self.stderr_tail).iter().cloned().collect()
    }

    pub(crate) fn stats(&self) -> WorkerStats {
        let rss = self.rss_bytes.load(Ordering::Relaxed);
        let rtt = self.rtt_micros.load(Ordering::Relaxed);
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
            max_in_flight: self.lot.cap(),
            protocol_version: self.protocol_version.get().cloned(),
            remote: self.endpoint.is_some(),
            rtt: (rtt > 0).then(|| std::time::Duration::from_micros(rtt)),
        }
    }
}

/// Encodes one message, framed for the wire, in one buffer. NDJSON frames are
/// written in place; raw params are copied once, never re-serialized.
pub(crate) fn encode_frame(
    codec: &Codec,
    write: impl FnOnce(&mut BytesMut),
) -> crate::Result<Bytes> {
    encode_frame_sized(codec, 0, write)
}

/// Frames up to this size are cut from a buffer of this size that each
/// thread keeps ([`FRAMES`]); larger ones get a buffer of their own.
const SHARED_BUFFER: usize = 16 * 1024;

thread_local! {
    /// This thread's buffer that small frames are written into and split off:
    /// the frames cut from one allocation share it (a reference count each)
    /// and free it with the last, where a buffer per frame cost two
    /// allocations and two frees per call (the buffer, and the header that
    /// `freeze` adds to a buffer not filled to its capacity).
    static FRAMES: Cell<BytesMut> = Cell::new(BytesMut::new());
}

/// [`encode_frame`] for a message of about `hint` bytes: the buffer is sized
/// once, where growing from a small one would copy large params several times.
pub(crate) fn encode_frame_sized(
    codec: &Codec,
    hint: usize,
    write: impl FnOnce(&mut BytesMut),
) -> crate::Result<Bytes> {
    /// The envelope around the params: version, id, method name, `_meta`.
    const ENVELOPE: usize = 256;
    let need = hint.saturating_add(ENVELOPE);
    if need > SHARED_BUFFER {
        return encode_into(codec, &mut BytesMut::with_capacity(need), write);
    }
    // Taken out of the cell while in use (an empty one is left, without
    // allocating), so that a nested use, or one while the thread exits,
    // gets a buffer of its own instead of a panic.
    let mut buf = FRAMES.try_with(Cell::take).unwrap_or_default();
    if buf.capacity() < need {
        if buf.capacity() == 0 {
            buf = BytesMut::with_capacity(SHARED_BUFFER);
        } else {
            // The rest of this buffer is too small: frames still in flight
            // keep the old allocation alive, this thread moves to a new one
            // (or back to the start of the old one, when they are all gone).
            buf.reserve(need);
        }
    }
    let framed = encode_into(codec, &mut buf, write);
    // A frame larger than its estimate (or refused as too large) grew this
    // buffer with it: let that allocation go with the frame, so that no
    // thread keeps more than about twice the buffer's size.
    if !matches!(&framed, Ok(frame) if frame.len() <= SHARED_BUFFER) {
        buf = BytesMut::new();
    }
    let _ = FRAMES.try_with(|cell| cell.set(buf));
    framed
}

/// What this thread's frame buffer has left to write into.
#[cfg(test)]
pub(crate) fn frame_buffer_capacity() -> usize {
    FRAMES.with(|cell| {
        let buf = cell.take();
        let capacity = buf.capacity();
        cell.set(buf);
        capacity
    })
}

/// Writes one message framed into `buf`, which holds nothing yet, and
/// splits it off; on an error `buf` is left empty.
fn encode_into(
    codec: &Codec,
    buf: &mut BytesMut,
    write: impl FnOnce(&mut BytesMut),
) -> crate::Result<Bytes> {
    let too_large = |len: usize| {
        crate::Error::Encode(Arc::new(pybridge_protocol::Error::FrameTooLarge {
            limit: codec.max_frame(),
            declared: Some(len as u64),
        }))
    };
    write(buf);
    match codec.framing() {
        Framing::Ndjson => {
            if buf.len() > codec.max_frame() {
                let len = buf.len();
                buf.clear();
                return Err(too_large(len));
            }
            // Raw params may be pretty-printed; a raw newline can only be
            // whitespace between JSON tokens, so a space replaces it.
            let mut from = 0;
            while let Some(at) = memchr::memchr2(b'\n', b'\r', &buf[from..]) {
                buf[from + at] = b' ';
                from += at + 1;
            }
            buf.put_u8(b'\n');
        }
        _ => {
            // The codec checks the size, and copies the payload after its
            // header.
            let payload = buf.split();
            if let Err(err) = codec.encode_frame(&payload, buf) {
                buf.clear();
                return Err(crate::Error::Encode(Arc::new(err)));
            }
        }
    }
    Ok(buf.split().freeze())
}
