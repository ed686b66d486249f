//! Counters of what the cache did, kept as atomics and mirrored to `metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Gauge, counter, gauge};

use crate::metrics as names;

/// A snapshot of the cache's counters and sizes, from [`Cache::stats`](crate::Cache::stats).
///
/// Counters only grow. Memory-tier evictions and sizes are applied lazily by
/// moka; [`Cache::run_pending_tasks`](crate::Cache::run_pending_tasks) applies
/// them at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Calls answered from memory.
    pub l1_hits: u64,
    /// Calls answered from disk.
    pub l2_hits: u64,
    /// Calls answered by a loader, including those that waited on another
    /// caller's load of the same key.
    pub misses: u64,
    /// Loader runs.
    pub loads: u64,
    /// Loader runs that failed.
    pub load_errors: u64,
    /// Calls that waited on a load already running for their key.
    pub coalesced: u64,
    /// Calls whose policy disables caching.
    pub bypassed: u64,
    /// Calls that ended because their deadline passed (while waiting on
    /// another caller's load, or while loading themselves).
    pub deadline_exceeded: u64,
    /// Loaded values larger than the policy's `max_entry_bytes` (returned, not stored).
    pub oversized: u64,
    /// Loaded values not stored because an invalidation ran during the load.
    pub invalidated_during_load: u64,
    /// Memory entries evicted by the byte bound.
    pub l1_evictions: u64,
    /// Memory entries that expired.
    pub l1_expirations: u64,
    /// Disk entries evicted by the byte budget.
    pub l2_evictions: u64,
    /// Disk entries removed after their TTL.
    pub l2_expirations: u64,
    /// Orphaned disk files removed.
    pub l2_orphans_removed: u64,
    /// Corrupt disk entries found (each was a miss and was removed).
    pub l2_corrupt: u64,
    /// Disk I/O failures.
    pub l2_errors: u64,
    /// Entries written to disk.
    pub l2_writes: u64,
    /// Disk writes dropped (queue full, disk tier off, larger than the budget).
    pub l2_writes_dropped: u64,
    /// Bytes held in memory (values plus a fixed per-entry overhead).
    pub l1_bytes: u64,
    /// Entries held in memory.
    pub l1_entries: u64,
    /// Bytes on disk (as of the last write or sweep).
    pub l2_bytes: u64,
    /// Entries on disk (as of the last write or sweep).
    pub l2_entries: u64,
}

/// One counter of [`CacheStats`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stat {
    L1Hits,
    L2Hits,
    Misses,
    Loads,
    LoadErrors,
    Coalesced,
    Bypassed,
    DeadlineExceeded,
    Oversized,
    InvalidatedDuringLoad,
    L1Evictions,
    L1Expirations,
    L2Evictions,
    L2Expirations,
    L2Orphans,
    L2Corrupt,
    L2Errors,
    L2Writes,
    L2WritesDropped,
}

const STATS: usize = Stat::L2WritesDropped as usize + 1;

/// The counters, and the gauges the sweeper and the store path keep current.
#[derive(Debug)]
pub(crate) struct Counters {
    values: [AtomicU64; STATS],
    handles: [Counter; STATS],
    pub(crate) l2_bytes: AtomicU64,
    pub(crate) l2_entries: AtomicU64,
    pub(crate) l1_bytes_gauge: Gauge,
    pub(crate) l1_entries_gauge: Gauge,
    pub(crate) l2_bytes_gauge: Gauge,
    pub(crate) l2_entries_gauge: Gauge,
    pub(crate) disk_active_gauge: Gauge,
}

impl Counters {
    pub(crate) fn new() -> Self {
        names::describe();
        let handles = [
            counter!(names::HITS_TOTAL, "tier" => "l1"),
            counter!(names::HITS_TOTAL, "tier" => "l2"),
            counter!(names::MISSES_TOTAL),
            counter!(names::LOADS_TOTAL),
            counter!(names::LOAD_ERRORS_TOTAL),
            counter!(names::COALESCED_TOTAL),
            counter!(names::BYPASSED_TOTAL),
            counter!(names::DEADLINE_EXCEEDED_TOTAL),
            counter!(names::NOT_STORED_TOTAL, "reason" => "oversized"),
            counter!(names::NOT_STORED_TOTAL, "reason" => "invalidated"),
            counter!(names::EVICTIONS_TOTAL, "tier" => "l1"),
            counter!(names::EXPIRATIONS_TOTAL, "tier" => "l1"),
            counter!(names::EVICTIONS_TOTAL, "tier" => "l2"),
            counter!(names::EXPIRATIONS_TOTAL, "tier" => "l2"),
            counter!(names::ORPHANS_REMOVED_TOTAL),
            counter!(names::CORRUPT_ENTRIES_TOTAL),
            counter!(names::DISK_ERRORS_TOTAL),
            counter!(names::DISK_WRITES_TOTAL),
            counter!(names::DISK_WRITES_DROPPED_TOTAL),
        ];
        Counters {
            values: std::array::from_fn(|_| AtomicU64::new(0)),
            handles,
            l2_bytes: AtomicU64::new(0),
            l2_entries: AtomicU64::new(0),
            l1_bytes_gauge: gauge!(names::SIZE_BYTES, "tier" => "l1"),
            l1_entries_gauge: gauge!(names::ENTRIES, "tier" => "l1"),
            l2_bytes_gauge: gauge!(names::SIZE_BYTES, "tier" => "l2"),
            l2_entries_gauge: gauge!(names::ENTRIES, "tier" => "l2"),
            disk_active_gauge: gauge!(names::DISK_ACTIVE),
        }
    }

    #[inline]
    pub(crate) fn add(&self, stat: Stat, n: u64) {
        self.values[stat as usize].fetch_add(n, Ordering::Relaxed);
        self.handles[stat as usize].increment(n);
    }

    #[inline]
    pub(crate) fn incr(&self, stat: Stat) {
        self.add(stat, 1);
    }

    pub(crate) fn get(&self, stat: Stat) -> u64 {
        self.values[stat as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn set_l2_size(&self, bytes: u64, entries: u64) {
        self.l2_bytes.store(bytes, Ordering::Relaxed);
        self.l2_entries.store(entries, Ordering::Relaxed);
        self.l2_bytes_gauge.set(bytes as f64);
        self.l2_entries_gauge.set(entries as f64);
    }

    pub(crate) fn snapshot(&self, l1_bytes: u64, l1_entries: u64) -> CacheStats {
        self.l1_bytes_gauge.set(l1_bytes as f64);
        self.l1_entries_gauge.set(l1_entries as f64);
        CacheStats {
            l1_hits: self.get(Stat::L1Hits),
            l2_hits: self.get(Stat::L2Hits),
            misses: self.get(Stat::Misses),
            loads: self.get(Stat::Loads),
            load_errors: self.get(Stat::LoadErrors),
            coalesced: self.get(Stat::Coalesced),
            bypassed: self.get(Stat::Bypassed),
            deadline_exceeded: self.get(Stat::DeadlineExceeded),
            oversized: self.get(Stat::Oversized),
            invalidated_during_load: self.get(Stat::InvalidatedDuringLoad),
            l1_evictions: self.get(Stat::L1Evictions),
            l1_expirations: self.get(Stat::L1Expirations),
            l2_evictions: self.get(Stat::L2Evictions),
            l2_expirations: self.get(Stat::L2Expirations),
            l2_orphans_removed: self.get(Stat::L2Orphans),
            l2_corrupt: self.get(Stat::L2Corrupt),
            l2_errors: self.get(Stat::L2Errors),
            l2_writes: self.get(Stat::L2Writes),
            l2_writes_dropped: self.get(Stat::L2WritesDropped),
            l1_bytes,
            l1_entries,
            l2_bytes: self.l2_bytes.load(Ordering::Relaxed),
            l2_entries: self.l2_entries.load(Ordering::Relaxed),
        }
    }
}
