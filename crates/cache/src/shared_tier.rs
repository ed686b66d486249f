//! The shared tier: a cache on Redis that several processes read and write,
//! with every invalidation published to all of them.
//!
//! The types here (settings, status, events, counters) are compiled with or
//! without the `redis` feature, so that a facade can report the tier's state
//! and pass its settings through either way; the tier itself
//! (`shared_tier/redis.rs`) is the feature's.
//!
//! The tier sits after memory and disk and before the loader. It never makes
//! a call fail or wait longer than its read timeout: reads are bounded by the
//! smaller of the configured maximum and the caller's remaining time; writes
//! and invalidations go through one bounded background queue; and after
//! `failure_threshold` failures in a row the tier turns itself off, probes in
//! the background, and comes back when Redis answers again.

#[cfg(feature = "redis")]
mod message;
#[cfg(feature = "redis")]
mod record;
#[cfg(feature = "redis")]
mod redis;
#[cfg(all(test, feature = "redis"))]
mod tests;

use std::fmt;
use std::num::{NonZeroU32, NonZeroUsize};
#[cfg(feature = "redis")]
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[cfg(feature = "redis")]
use metrics::{Counter, Gauge, counter, gauge};

#[cfg(feature = "redis")]
pub(crate) use self::message::Invalidation;
#[cfg(feature = "redis")]
pub(crate) use self::redis::{Epochs, Read, Remote, SharedTier};
use crate::error::{Error, Result};
#[cfg(feature = "redis")]
use crate::metrics as names;

/// Settings of the shared tier on Redis
/// ([`CacheBuilder::shared_tier`](crate::CacheBuilder::shared_tier)).
///
/// The defaults suit a cache next to its callers: tens of milliseconds, not
/// the Redis client's database-minded half second.
///
/// ```
/// # use std::time::Duration;
/// # use pybridge_cache::SharedTierConfig;
/// let tier = SharedTierConfig::new("redis://127.0.0.1:6379/0")
///     .deployment("checkout")
///     .max_read_timeout(Duration::from_millis(20));
/// assert_eq!(tier.url(), "redis://127.0.0.1:6379/0");
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedTierConfig {
    url: String,
    deployment: String,
    max_read_timeout: Duration,
    write_timeout: Duration,
    connect_timeout: Duration,
    failure_threshold: NonZeroU32,
    probe_interval: Duration,
    write_queue: NonZeroUsize,
}

impl fmt::Debug for SharedTierConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("SharedTierConfig")
            .field("url", &redact(&self.url))
            .field("deployment", &self.deployment)
            .field("max_read_timeout", &self.max_read_timeout)
            .field("write_timeout", &self.write_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("failure_threshold", &self.failure_threshold)
            .field("probe_interval", &self.probe_interval)
            .field("write_queue", &self.write_queue)
            .finish()
    }
}

impl SharedTierConfig {
    /// Longest read timeout accepted: a shared tier slower than this is no
    /// faster than most workers.
    pub const MAX_READ_TIMEOUT: Duration = Duration::from_secs(1);

    /// The defaults for a Redis at `url` (`redis://host:port/db`): deployment
    /// `default`; reads of at most 25 ms; writes and invalidations of at most
    /// 250 ms; connections within 250 ms; off after 3 failures in a row;
    /// probed every 500 ms while off; 1024 queued writes.
    #[must_use]
    pub fn new(url: impl Into<String>) -> Self {
        SharedTierConfig {
            url: url.into(),
            deployment: "default".to_owned(),
            max_read_timeout: Duration::from_millis(25),
            write_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_millis(250),
            failure_threshold: NonZeroU32::new(3).expect("nonzero constant"),
            probe_interval: Duration::from_millis(500),
            write_queue: NonZeroUsize::new(1024).expect("nonzero constant"),
        }
    }

    /// The Redis URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The deployment's namespace: processes share entries and invalidations
    /// only with processes of the same deployment on the same Redis. It
    /// prefixes every key and names the invalidation channel.
    #[must_use]
    pub fn deployment(mut self, deployment: impl Into<String>) -> Self {
        self.deployment = deployment.into();
        self
    }

    /// The longest a read waits for Redis; a call with less time left waits
    /// only that long. At most [`SharedTierConfig::MAX_READ_TIMEOUT`].
    #[must_use]
    pub fn max_read_timeout(mut self, timeout: Duration) -> Self {
        self.max_read_timeout = timeout;
        self
    }

    /// The longest a background write, delete or publish waits for Redis.
    #[must_use]
    pub fn write_timeout(mut self, timeout: Duration) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// The longest a connection attempt waits.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Failures in a row (reads, writes, publishes) that turn the tier off.
    #[must_use]
    pub fn failure_threshold(mut self, failures: NonZeroU32) -> Self {
        self.failure_threshold = failures;
        self
    }

    /// How often an off tier checks whether Redis answers again.
    #[must_use]
    pub fn probe_interval(mut self, interval: Duration) -> Self {
        self.probe_interval = interval;
        self
    }

    /// Writes waiting for the background task; beyond this they are dropped
    /// and counted.
    #[must_use]
    pub fn write_queue_capacity(mut self, capacity: NonZeroUsize) -> Self {
        self.write_queue = capacity;
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        let zero = |d: Duration| d.is_zero();
        if self.url.is_empty() {
            return Err(invalid("shared_tier.url", "must not be empty"));
        }
        if self.deployment.is_empty() || self.deployment.len() > 128 {
            return Err(invalid(
                "shared_tier.deployment",
                "must be 1 to 128 bytes long",
            ));
        }
        if zero(self.max_read_timeout) || self.max_read_timeout > Self::MAX_READ_TIMEOUT {
            return Err(invalid(
                "shared_tier.max_read_timeout",
                "must be above zero and at most 1 second",
            ));
        }
        if zero(self.write_timeout) || zero(self.connect_timeout) || zero(self.probe_interval) {
            return Err(invalid(
                "shared_tier timeouts",
                "must be above zero (write, connect, probe)",
            ));
        }
        Ok(())
    }

    #[cfg(feature = "redis")]
    pub(crate) fn parts(&self) -> TierSettings {
        TierSettings {
            url: self.url.clone(),
            deployment: self.deployment.clone(),
            max_read_timeout: self.max_read_timeout,
            write_timeout: self.write_timeout,
            connect_timeout: self.connect_timeout,
            failure_threshold: self.failure_threshold.get(),
            probe_interval: self.probe_interval,
            write_queue: self.write_queue.get(),
        }
    }
}

/// The validated settings, as the tier's tasks use them.
#[cfg(feature = "redis")]
#[derive(Debug, Clone)]
pub(crate) struct TierSettings {
    pub(crate) url: String,
    pub(crate) deployment: String,
    pub(crate) max_read_timeout: Duration,
    pub(crate) write_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) failure_threshold: u32,
    pub(crate) probe_interval: Duration,
    pub(crate) write_queue: usize,
}

fn invalid(field: &'static str, problem: &'static str) -> Error {
    Error::InvalidConfig { field, problem }
}

/// `redis://user:secret@host` → `redis://user:***@host`.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The state of the shared tier ([`Cache::shared_tier_status`](crate::Cache::shared_tier_status)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SharedTierStatus {
    /// No shared tier was configured.
    NotConfigured,
    /// Configured; the first connection has not answered yet. Reads skip it.
    Connecting,
    /// Reads, writes and invalidations go to Redis.
    Active,
    /// Redis failed `failure_threshold` times in a row (or never answered);
    /// the tier is skipped and probed in the background.
    Off,
    /// The cache was closed.
    Closed,
}

impl SharedTierStatus {
    /// `not_configured`, `connecting`, `active`, `off` or `closed`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SharedTierStatus::NotConfigured => "not_configured",
            SharedTierStatus::Connecting => "connecting",
            SharedTierStatus::Active => "active",
            SharedTierStatus::Off => "off",
            SharedTierStatus::Closed => "closed",
        }
    }

    #[cfg(feature = "redis")]
    /// The value of the state gauge: 1 active, 0 off, 0.5 connecting, -1
    /// not configured or closed.
    pub(crate) fn gauge(self) -> f64 {
        match self {
            SharedTierStatus::Active => 1.0,
            SharedTierStatus::Connecting => 0.5,
            SharedTierStatus::Off => 0.0,
            SharedTierStatus::NotConfigured | SharedTierStatus::Closed => -1.0,
        }
    }
}

impl fmt::Display for SharedTierStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something that happened to the shared tier, carried by
/// [`CacheEvent::SharedTier`](crate::CacheEvent::SharedTier).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SharedTierEvent {
    /// The tier's state changed (each change is also a log line and the
    /// `pybridge_cache_shared_state` gauge).
    StateChanged {
        /// The state before.
        from: SharedTierStatus,
        /// The state now.
        to: SharedTierStatus,
        /// Why, for people (the last error when it turned off).
        reason: String,
    },
    /// The invalidation subscription was (re-)established. Messages published
    /// while it was down are lost, so the memory tier was flushed.
    Resubscribed,
    /// An entry failed its integrity check: it was a miss, never returned, and
    /// was deleted from Redis.
    CorruptEntryRemoved {
        /// The entry's key.
        key: crate::KeyDigest,
    },
}

/// Counters of the shared tier ([`Cache::shared_tier_stats`](crate::Cache::shared_tier_stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedTierStats {
    /// Calls answered from Redis.
    pub hits: u64,
    /// Reads that found nothing usable (absent, expired or corrupt).
    pub misses: u64,
    /// Reads skipped because the tier was not active.
    pub skipped: u64,
    /// Redis failures: timeouts, refused connections, errors.
    pub errors: u64,
    /// Corrupt entries found and deleted.
    pub corrupt: u64,
    /// Entries written.
    pub writes: u64,
    /// Writes dropped: queue full, tier off, or larger than the entry cap.
    pub writes_dropped: u64,
    /// Invalidations published to other processes.
    pub published: u64,
    /// Invalidations received from other processes and applied.
    pub received: u64,
    /// Times the memory tier was flushed because invalidations may have been
    /// missed (resubscribed, or the tier came back).
    pub memory_flushes: u64,
}

#[cfg(feature = "redis")]
/// One counter of [`SharedTierStats`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum TierStat {
    Hits,
    Misses,
    Skipped,
    Errors,
    Corrupt,
    Writes,
    WritesDropped,
    Published,
    Received,
    MemoryFlushes,
}

#[cfg(feature = "redis")]
const TIER_STATS: usize = TierStat::MemoryFlushes as usize + 1;

#[cfg(feature = "redis")]
/// The shared tier's counters, mirrored to `metrics`.
#[derive(Debug)]
pub(crate) struct TierCounters {
    values: [AtomicU64; TIER_STATS],
    handles: [Counter; TIER_STATS],
    state: Gauge,
}

#[cfg(feature = "redis")]
impl TierCounters {
    pub(crate) fn new() -> Self {
        names::describe_shared();
        TierCounters {
            values: std::array::from_fn(|_| AtomicU64::new(0)),
            handles: [
                counter!(names::HITS_TOTAL, "tier" => "shared"),
                counter!(names::SHARED_MISSES_TOTAL),
                counter!(names::SHARED_SKIPPED_TOTAL),
                counter!(names::SHARED_ERRORS_TOTAL),
                counter!(names::SHARED_CORRUPT_ENTRIES_TOTAL),
                counter!(names::SHARED_WRITES_TOTAL),
                counter!(names::SHARED_WRITES_DROPPED_TOTAL),
                counter!(names::SHARED_INVALIDATIONS_TOTAL, "direction" => "published"),
                counter!(names::SHARED_INVALIDATIONS_TOTAL, "direction" => "received"),
                counter!(names::SHARED_MEMORY_FLUSHES_TOTAL),
            ],
            state: gauge!(names::SHARED_STATE),
        }
    }

    #[inline]
    pub(crate) fn incr(&self, stat: TierStat) {
        self.values[stat as usize].fetch_add(1, Ordering::Relaxed);
        self.handles[stat as usize].increment(1);
    }

    pub(crate) fn set_state(&self, status: SharedTierStatus) {
        self.state.set(status.gauge());
    }

    pub(crate) fn snapshot(&self) -> SharedTierStats {
        let get = |s: TierStat| self.values[s as usize].load(Ordering::Relaxed);
        SharedTierStats {
            hits: get(TierStat::Hits),
            misses: get(TierStat::Misses),
            skipped: get(TierStat::Skipped),
            errors: get(TierStat::Errors),
            corrupt: get(TierStat::Corrupt),
            writes: get(TierStat::Writes),
            writes_dropped: get(TierStat::WritesDropped),
            published: get(TierStat::Published),
            received: get(TierStat::Received),
            memory_flushes: get(TierStat::MemoryFlushes),
        }
    }
}
