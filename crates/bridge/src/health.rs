//! Health and statistics snapshots.

use pybridge_pool::{HealthStatus, PoolStats};
use pybridge_resilience::State as BreakerState;

/// The bridge's health: the pool's, its breakers' and its cache's.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Health {
    /// Overall: unhealthy if no worker can serve; degraded if fewer workers
    /// than wanted are ready, a breaker is open, or the disk or shared cache
    /// tier is off.
    pub status: HealthStatus,
    /// The pool and each worker.
    pub pool: PoolStats,
    /// Every method's breaker that is not closed.
    pub open_breakers: Vec<(String, BreakerState)>,
    /// Whether the disk tier of the cache is working (`None` without a disk tier).
    pub cache_disk_ok: Option<bool>,
    /// The state of the cache's shared tier on Redis; `Off` makes the bridge
    /// degraded (calls still succeed, from memory, disk and workers).
    #[cfg(feature = "cache")]
    pub cache_shared_tier: pybridge_cache::SharedTierStatus,
}

/// Call counters since the bridge started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Calls made.
    pub calls: u64,
    /// Calls that returned a result.
    pub succeeded: u64,
    /// Calls that failed.
    pub failed: u64,
    /// Retries made.
    pub retries: u64,
    /// Results served from memory.
    pub cache_l1_hits: u64,
    /// Results served from disk.
    pub cache_l2_hits: u64,
    /// Results served from the shared tier (Redis).
    pub cache_shared_hits: u64,
    /// Cacheable calls that went to a worker.
    pub cache_misses: u64,
}
