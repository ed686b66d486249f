//! Health and statistics snapshots, and the counters behind [`Stats`].

use std::sync::atomic::{AtomicU64, Ordering};

use pybridge_pool::{HealthStatus, PoolStats};
use pybridge_resilience::State as BreakerState;
#[cfg(feature = "cache")]
use pybridge_service::telemetry::CacheTier;
use serde::ser::{Serialize, Serializer};
use serde_json::json;

/// The bridge's health: the pool's, its breakers' and its cache's.
///
/// It serializes to the JSON that `pybridge serve` answers on `/health`:
/// `status`, `workers`, `endpoints`, the pool's counts, `open_breakers`,
/// `cache_disk_ok` and `cache_shared`.
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
    /// The shared tier's counters (all zero without one).
    #[cfg(feature = "cache")]
    pub cache_shared_stats: pybridge_cache::SharedTierStats,
}

impl Serialize for Health {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let workers: Vec<_> = self
            .pool
            .workers
            .iter()
            .map(|w| {
                json!({
                    "id": w.id.to_string(),
                    "pid": w.pid,
                    "state": w.state.as_str(),
                    "in_flight": w.in_flight,
                    "served": w.served,
                    "restarts": w.restarts,
                    "rss_bytes": w.rss_bytes,
                    "age_ms": w.age.as_millis() as u64,
                    "remote": w.remote,
                })
            })
            .collect();
        let endpoints: Vec<_> = self
            .pool
            .endpoints
            .iter()
            .map(|e| {
                json!({
                    "address": &*e.address,
                    "state": e.state.as_str(),
                    "worker": e.worker.map(|w| w.to_string()),
                    "rtt_us": e.rtt.map(|d| d.as_micros() as u64),
                    "last_error": e.last_error.as_deref(),
                    "connects": e.connects,
                    "failures": e.failures,
                })
            })
            .collect();
        let breakers: Vec<_> = self
            .open_breakers
            .iter()
            .map(|(method, state)| json!({"method": method, "state": state.as_str()}))
            .collect();
        #[cfg(feature = "cache")]
        let shared = {
            let stats = &self.cache_shared_stats;
            json!({
                "state": self.cache_shared_tier.as_str(),
                "hits": stats.hits,
                "misses": stats.misses,
                "errors": stats.errors,
                "writes": stats.writes,
                "writes_dropped": stats.writes_dropped,
                "invalidations_published": stats.published,
                "invalidations_received": stats.received,
            })
        };
        #[cfg(not(feature = "cache"))]
        let shared = json!({"state": "not_configured"});
        json!({
            "status": self.status.as_str(),
            "workers": workers,
            "endpoints": endpoints,
            "ready_workers": self.pool.ready_workers,
            "target_workers": self.pool.target_workers,
            "queued": self.pool.queued,
            "restarts": self.pool.restarts,
            "crash_loop": self.pool.crash_loop,
            "open_breakers": breakers,
            "cache_disk_ok": self.cache_disk_ok,
            "cache_shared": shared,
        })
        .serialize(serializer)
    }
}

/// Call counters since the bridge started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
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

/// The counters behind [`Stats`], written by every call; relaxed atomics,
/// since each counts on its own and no reader needs them in step.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    calls: AtomicU64,
    succeeded: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    l1: AtomicU64,
    l2: AtomicU64,
    shared: AtomicU64,
    misses: AtomicU64,
}

impl Counters {
    /// A call began.
    pub(crate) fn call_started(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// A call ended, with a result or not.
    pub(crate) fn call_ended(&self, ok: bool) {
        let counter = if ok { &self.succeeded } else { &self.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The retry policy made another attempt.
    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// A cacheable call's result came from `tier`.
    #[cfg(feature = "cache")]
    pub(crate) fn served_from(&self, tier: CacheTier) {
        let counter = match tier {
            CacheTier::L1 => &self.l1,
            CacheTier::L2 => &self.l2,
            CacheTier::Shared => &self.shared,
            CacheTier::Miss => &self.misses,
            // Not a lookup (and the enum is another crate's, not exhaustive).
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> Stats {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Stats {
            calls: get(&self.calls),
            succeeded: get(&self.succeeded),
            failed: get(&self.failed),
            retries: get(&self.retries),
            cache_l1_hits: get(&self.l1),
            cache_l2_hits: get(&self.l2),
            cache_shared_hits: get(&self.shared),
            cache_misses: get(&self.misses),
        }
    }
}
