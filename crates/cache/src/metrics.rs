//! Metric names of the cache layer, all in one place.
//!
//! Recorded through the `metrics` facade; nothing is recorded unless the
//! application installs a recorder. Handles are registered when the cache is
//! built, so install the recorder before building the cache.

/// Counter: calls answered from a tier; label `tier` = `l1` | `l2`.
pub const HITS_TOTAL: &str = "pybridge_cache_hits_total";
/// Counter: calls answered by a loader (including callers that waited on
/// another caller's load).
pub const MISSES_TOTAL: &str = "pybridge_cache_misses_total";
/// Counter: loader runs.
pub const LOADS_TOTAL: &str = "pybridge_cache_loads_total";
/// Counter: loader runs that returned an error.
pub const LOAD_ERRORS_TOTAL: &str = "pybridge_cache_load_errors_total";
/// Counter: calls that waited for a load already running for their key.
pub const COALESCED_TOTAL: &str = "pybridge_cache_coalesced_total";
/// Counter: calls whose policy disables caching.
pub const BYPASSED_TOTAL: &str = "pybridge_cache_bypassed_total";
/// Counter: calls that ended because their deadline passed.
pub const DEADLINE_EXCEEDED_TOTAL: &str = "pybridge_cache_deadline_exceeded_total";
/// Counter: loaded values not stored; label `reason` = `oversized` | `invalidated`.
pub const NOT_STORED_TOTAL: &str = "pybridge_cache_not_stored_total";
/// Counter: entries evicted to stay within the byte bound; label `tier`.
pub const EVICTIONS_TOTAL: &str = "pybridge_cache_evictions_total";
/// Counter: entries removed because their TTL passed; label `tier`.
pub const EXPIRATIONS_TOTAL: &str = "pybridge_cache_expirations_total";
/// Counter: orphaned disk files removed by the sweeper.
pub const ORPHANS_REMOVED_TOTAL: &str = "pybridge_cache_orphans_removed_total";
/// Counter: corrupt disk entries found (each was a miss and was removed).
pub const CORRUPT_ENTRIES_TOTAL: &str = "pybridge_cache_corrupt_entries_total";
/// Counter: disk-tier I/O failures.
pub const DISK_ERRORS_TOTAL: &str = "pybridge_cache_disk_errors_total";
/// Counter: entries written to disk.
pub const DISK_WRITES_TOTAL: &str = "pybridge_cache_disk_writes_total";
/// Counter: disk writes dropped (queue full, disk tier off, larger than the budget).
pub const DISK_WRITES_DROPPED_TOTAL: &str = "pybridge_cache_disk_writes_dropped_total";
/// Gauge: bytes held; label `tier`.
pub const SIZE_BYTES: &str = "pybridge_cache_size_bytes";
/// Gauge: entries held; label `tier`.
pub const ENTRIES: &str = "pybridge_cache_entries";
/// Gauge: 1 while the disk tier is active, else 0.
pub const DISK_ACTIVE: &str = "pybridge_cache_disk_active";

pub(crate) fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(HITS_TOTAL, Unit::Count, "Calls answered from a cache tier.");
    describe_counter!(MISSES_TOTAL, Unit::Count, "Calls answered by a loader.");
    describe_counter!(LOADS_TOTAL, Unit::Count, "Loader runs.");
    describe_counter!(LOAD_ERRORS_TOTAL, Unit::Count, "Loader runs that failed.");
    describe_counter!(
        COALESCED_TOTAL,
        Unit::Count,
        "Calls that shared a load already running."
    );
    describe_counter!(
        BYPASSED_TOTAL,
        Unit::Count,
        "Calls whose policy disables caching."
    );
    describe_counter!(
        DEADLINE_EXCEEDED_TOTAL,
        Unit::Count,
        "Calls that ended because their deadline passed."
    );
    describe_counter!(
        NOT_STORED_TOTAL,
        Unit::Count,
        "Loaded values that were not stored."
    );
    describe_counter!(
        EVICTIONS_TOTAL,
        Unit::Count,
        "Entries evicted to stay within the byte bound."
    );
    describe_counter!(
        EXPIRATIONS_TOTAL,
        Unit::Count,
        "Entries removed at the end of their TTL."
    );
    describe_counter!(
        ORPHANS_REMOVED_TOTAL,
        Unit::Count,
        "Orphaned disk files removed."
    );
    describe_counter!(
        CORRUPT_ENTRIES_TOTAL,
        Unit::Count,
        "Corrupt disk entries found and removed."
    );
    describe_counter!(DISK_ERRORS_TOTAL, Unit::Count, "Disk tier I/O failures.");
    describe_counter!(DISK_WRITES_TOTAL, Unit::Count, "Entries written to disk.");
    describe_counter!(
        DISK_WRITES_DROPPED_TOTAL,
        Unit::Count,
        "Disk writes dropped."
    );
    describe_gauge!(SIZE_BYTES, Unit::Bytes, "Bytes held per tier.");
    describe_gauge!(ENTRIES, Unit::Count, "Entries held per tier.");
    describe_gauge!(DISK_ACTIVE, Unit::Count, "1 while the disk tier is active.");
}

/// Counter: shared-tier reads that found nothing usable (absent, expired or
/// corrupt). Its hits are `pybridge_cache_hits_total{tier="shared"}`.
pub const SHARED_MISSES_TOTAL: &str = "pybridge_cache_shared_misses_total";
/// Counter: shared-tier reads skipped because the tier was not active.
pub const SHARED_SKIPPED_TOTAL: &str = "pybridge_cache_shared_skipped_total";
/// Counter: shared-tier failures (timeouts, refused connections, errors).
pub const SHARED_ERRORS_TOTAL: &str = "pybridge_cache_shared_errors_total";
/// Counter: corrupt shared-tier entries found (each was a miss and was deleted).
pub const SHARED_CORRUPT_ENTRIES_TOTAL: &str = "pybridge_cache_shared_corrupt_entries_total";
/// Counter: entries written to the shared tier.
pub const SHARED_WRITES_TOTAL: &str = "pybridge_cache_shared_writes_total";
/// Counter: shared-tier writes dropped (queue full, tier off, over the entry cap).
pub const SHARED_WRITES_DROPPED_TOTAL: &str = "pybridge_cache_shared_writes_dropped_total";
/// Counter: invalidations on the shared channel; label `direction` =
/// `published` | `received`.
pub const SHARED_INVALIDATIONS_TOTAL: &str = "pybridge_cache_shared_invalidations_total";
/// Counter: memory-tier flushes because invalidations may have been missed.
pub const SHARED_MEMORY_FLUSHES_TOTAL: &str = "pybridge_cache_shared_memory_flushes_total";
/// Gauge: the shared tier's state: 1 active, 0.5 connecting, 0 off, -1 not
/// configured or closed.
pub const SHARED_STATE: &str = "pybridge_cache_shared_state";

#[cfg(feature = "redis")]
pub(crate) fn describe_shared() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(
        SHARED_MISSES_TOTAL,
        Unit::Count,
        "Shared-tier reads that found nothing usable."
    );
    describe_counter!(
        SHARED_SKIPPED_TOTAL,
        Unit::Count,
        "Shared-tier reads skipped while the tier was not active."
    );
    describe_counter!(SHARED_ERRORS_TOTAL, Unit::Count, "Shared-tier failures.");
    describe_counter!(
        SHARED_CORRUPT_ENTRIES_TOTAL,
        Unit::Count,
        "Corrupt shared-tier entries found and deleted."
    );
    describe_counter!(
        SHARED_WRITES_TOTAL,
        Unit::Count,
        "Entries written to the shared tier."
    );
    describe_counter!(
        SHARED_WRITES_DROPPED_TOTAL,
        Unit::Count,
        "Shared-tier writes dropped."
    );
    describe_counter!(
        SHARED_INVALIDATIONS_TOTAL,
        Unit::Count,
        "Invalidations published to or received from other processes."
    );
    describe_counter!(
        SHARED_MEMORY_FLUSHES_TOTAL,
        Unit::Count,
        "Memory-tier flushes after invalidations may have been missed."
    );
    describe_gauge!(
        SHARED_STATE,
        Unit::Count,
        "State of the shared tier: 1 active, 0.5 connecting, 0 off, -1 not configured."
    );
}
