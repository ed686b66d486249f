//! The failure-rate windows of a closed breaker: the last N calls, or the
//! calls of the last T seconds in ten buckets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How many buckets a time window is divided into: the window slides in
/// tenths of its length.
pub(crate) const TIME_BUCKETS: u64 = 10;

/// What a closed breaker remembers of recent calls, under its lock: the
/// count window. A time window lives beside the lock (see [`TimeWindow`]).
#[derive(Debug)]
pub(crate) enum Window {
    /// Consecutive-failure mode keeps its count in the breaker's atomic word;
    /// time-window mode in its [`TimeWindow`].
    None,
    Count(CountWindow),
}

/// The outcomes of the last `size` calls, as a ring.
#[derive(Debug)]
pub(crate) struct CountWindow {
    failed: Box<[bool]>,
    next: usize,
    len: usize,
    failures: u32,
}

/// Calls and failures per bucket of `bucket_nanos`.
///
/// Most calls are successes in the current bucket, and once the window
/// holds enough calls such a success cannot trip the breaker: the buckets
/// in the window are the same, the failures too, only the calls grow. Those
/// are counted without the breaker's lock ([`TimeWindow::add_success`]).
/// Everything else (a failure, a bucket to start, clearing) runs under the
/// lock, so only one thread ever resets a bucket.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    buckets: [Bucket; TIME_BUCKETS as usize],
    bucket_nanos: u64,
    /// One more than the bucket index at which a tally under the lock last
    /// found enough calls and no trip ([`TimeWindow::settle`]); 0 for none.
    /// A success in that same bucket needs no tally.
    settled: AtomicU64,
}

/// What [`TimeWindow::add_success`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// Counted, in a settled bucket: nothing else to do.
    Settled,
    /// Counted, but the window may now trip: tally it under the lock.
    Unsettled,
    /// Not counted: its bucket must be started under the lock.
    NotStarted,
}

#[derive(Debug, Default)]
struct Bucket {
    /// Which bucket of time (nanoseconds since the breaker's epoch divided by
    /// the bucket length) the counts belong to. Written, after the counts are
    /// reset, with release ordering: a success that reads it as its own
    /// bucket adds to the reset counts.
    index: AtomicU64,
    /// 64 bits, so that adding never wraps; the tally saturates at `u32::MAX`.
    calls: AtomicU64,
    failures: AtomicU64,
}

/// Calls and failures currently in a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) failures: u32,
    pub(crate) calls: u32,
}

impl Tally {
    /// Whether these counts trip a breaker: enough calls, and a failure rate
    /// at or above the threshold.
    pub(crate) fn trips(self, failure_rate: f64, min_calls: u32) -> bool {
        self.calls >= min_calls && f64::from(self.failures) / f64::from(self.calls) >= failure_rate
    }
}

impl Window {
    pub(crate) fn count(size: u32) -> Self {
        let size = usize::try_from(size).expect("window size is validated to fit in memory");
        Window::Count(CountWindow {
            failed: vec![false; size].into_boxed_slice(),
            next: 0,
            len: 0,
            failures: 0,
        })
    }

    /// Adds one call's outcome and returns what the window now holds.
    pub(crate) fn record(&mut self, failed: bool) -> Tally {
        match self {
            Window::None => Tally {
                failures: 0,
                calls: 0,
            },
            Window::Count(window) => window.record(failed),
        }
    }

    /// Forgets every call: counters restart on every state change.
    pub(crate) fn clear(&mut self) {
        match self {
            Window::None => {}
            Window::Count(window) => {
                window.failed.fill(false);
                window.next = 0;
                window.len = 0;
                window.failures = 0;
            }
        }
    }
}

impl CountWindow {
    fn record(&mut self, failed: bool) -> Tally {
        let size = self.failed.len();
        if self.len == size {
            // The oldest outcome leaves as this one takes its place.
            if self.failed[self.next] {
                self.failures -= 1;
            }
        } else {
            self.len += 1;
        }
        self.failed[self.next] = failed;
        if failed {
            self.failures += 1;
        }
        self.next = (self.next + 1) % size;
        Tally {
            failures: self.failures,
            calls: u32::try_from(self.len).expect("window size is validated to fit in u32"),
        }
    }
}

impl TimeWindow {
    pub(crate) fn new(window: Duration) -> Self {
        let bucket_nanos = u64::try_from(window.as_nanos() / u128::from(TIME_BUCKETS))
            .expect("time window is validated to at most a day");
        TimeWindow {
            buckets: Default::default(),
            bucket_nanos,
            settled: AtomicU64::new(0),
        }
    }

    /// Counts a success at `now` (nanoseconds since the epoch) without the
    /// lock if its bucket is the current one.
    pub(crate) fn add_success(&self, now: u64) -> Added {
        let index = now / self.bucket_nanos;
        let bucket = self.bucket(index);
        if bucket.index.load(Ordering::Acquire) != index {
            return Added::NotStarted;
        }
        bucket.calls.fetch_add(1, Ordering::Relaxed);
        if self.settled.load(Ordering::Acquire) == index.wrapping_add(1) {
            Added::Settled
        } else {
            Added::Unsettled
        }
    }

    /// Marks the bucket of `now` settled: a tally under the lock found
    /// enough calls in the window and no trip, so until the next bucket a
    /// success can only lower the rate.
    pub(crate) fn settle(&self, now: u64) {
        let index = now / self.bucket_nanos;
        self.settled.store(index.wrapping_add(1), Ordering::Release);
    }

    /// Takes the mark away: a tally under the lock that did not settle its
    /// bucket (too few calls, or a late call's tally of an older bucket)
    /// says nothing about the current one, whose successes must be tallied
    /// again.
    pub(crate) fn unsettle(&self) {
        self.settled.store(0, Ordering::Release);
    }

    /// Adds one call's outcome at `now` (nanoseconds since the epoch) and
    /// returns what the window now holds. Only under the breaker's lock.
    pub(crate) fn record(&self, now: u64, failed: bool) -> Tally {
        let index = now / self.bucket_nanos;
        let bucket = self.bucket(index);
        if bucket.index.load(Ordering::Relaxed) != index {
            bucket.calls.store(0, Ordering::Relaxed);
            bucket.failures.store(0, Ordering::Relaxed);
            bucket.index.store(index, Ordering::Release);
        }
        bucket.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            bucket.failures.fetch_add(1, Ordering::Relaxed);
        }
        self.tally(index)
    }

    /// What the window holds at `now` (nanoseconds since the epoch).
    pub(crate) fn tally_at(&self, now: u64) -> Tally {
        self.tally(now / self.bucket_nanos)
    }

    /// A bucket counts while it is one of the last TIME_BUCKETS before
    /// bucket `index`, that one included; cleared buckets hold zeros and add
    /// nothing.
    fn tally(&self, index: u64) -> Tally {
        let (mut failures, mut calls) = (0u64, 0u64);
        for b in &self.buckets {
            let at = b.index.load(Ordering::Acquire);
            if at <= index && index - at < TIME_BUCKETS {
                failures = failures.saturating_add(b.failures.load(Ordering::Relaxed));
                calls = calls.saturating_add(b.calls.load(Ordering::Relaxed));
            }
        }
        Tally {
            failures: u32::try_from(failures).unwrap_or(u32::MAX),
            calls: u32::try_from(calls).unwrap_or(u32::MAX),
        }
    }

    /// Forgets every call (every state change restarts the counts). Only
    /// under the breaker's lock.
    pub(crate) fn clear(&self) {
        self.settled.store(0, Ordering::Release);
        for bucket in &self.buckets {
            bucket.calls.store(0, Ordering::Relaxed);
            bucket.failures.store(0, Ordering::Relaxed);
            bucket.index.store(0, Ordering::Release);
        }
    }

    fn bucket(&self, index: u64) -> &Bucket {
        // The modulo keeps the position below TIME_BUCKETS, which fits usize.
        let at = usize::try_from(index % TIME_BUCKETS).unwrap_or(0);
        &self.buckets[at]
    }
}

#[cfg(test)]
mod tests;
