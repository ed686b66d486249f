//! The failure-rate windows of a closed breaker: the last N calls, or the
//! calls of the last T seconds in ten buckets.

use std::time::Duration;

/// How many buckets a time window is divided into: the window slides in
/// tenths of its length.
pub(crate) const TIME_BUCKETS: u64 = 10;

/// What a closed breaker remembers of recent calls in a failure-rate mode.
#[derive(Debug)]
pub(crate) enum Window {
    /// Consecutive-failure mode keeps its count in the breaker's atomic word.
    None,
    Count(CountWindow),
    Time(TimeWindow),
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
#[derive(Debug)]
pub(crate) struct TimeWindow {
    buckets: [Bucket; TIME_BUCKETS as usize],
    bucket_nanos: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which bucket of time (nanoseconds since the breaker's epoch divided by
    /// the bucket length) the counts belong to.
    index: u64,
    calls: u32,
    failures: u32,
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

    pub(crate) fn time(window: Duration) -> Self {
        let bucket_nanos = u64::try_from(window.as_nanos() / u128::from(TIME_BUCKETS))
            .expect("time window is validated to at most a day");
        Window::Time(TimeWindow {
            buckets: [Bucket::default(); TIME_BUCKETS as usize],
            bucket_nanos,
        })
    }

    /// Adds one call's outcome at `now` (nanoseconds since the epoch) and
    /// returns what the window now holds.
    pub(crate) fn record(&mut self, now: u64, failed: bool) -> Tally {
        match self {
            Window::None => Tally {
                failures: 0,
                calls: 0,
            },
            Window::Count(window) => window.record(failed),
            Window::Time(window) => window.record(now, failed),
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
            Window::Time(window) => window.buckets = [Bucket::default(); TIME_BUCKETS as usize],
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
    fn record(&mut self, now: u64, failed: bool) -> Tally {
        let index = now / self.bucket_nanos;
        let bucket = &mut self.buckets[(index % TIME_BUCKETS) as usize];
        if bucket.index != index {
            *bucket = Bucket {
                index,
                calls: 0,
                failures: 0,
            };
        }
        bucket.calls = bucket.calls.saturating_add(1);
        if failed {
            bucket.failures = bucket.failures.saturating_add(1);
        }
        // A bucket counts while it is one of the last TIME_BUCKETS, the
        // current one included; cleared buckets hold zeros and add nothing.
        self.buckets
            .iter()
            .filter(|b| b.index <= index && index - b.index < TIME_BUCKETS)
            .fold(
                Tally {
                    failures: 0,
                    calls: 0,
                },
                |tally, b| Tally {
                    failures: tally.failures.saturating_add(b.failures),
                    calls: tally.calls.saturating_add(b.calls),
                },
            )
    }
}

#[cfg(test)]
mod tests;
