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
