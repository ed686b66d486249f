//! The cache's side of the shared tier: reading it on the slow path, writing
//! and publishing through it, and applying what other processes publish.
//!
//! Without the `redis` feature every hook here is empty and the tier reports
//! [`SharedTierStatus::NotConfigured`].

use std::sync::Arc;
#[cfg(feature = "redis")]
use std::sync::{Mutex, PoisonError, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::{Cache, Fetched, Inner};
use crate::key::CacheKey;
use crate::policy::CachePolicy;
use crate::shared_tier::{SharedTierStats, SharedTierStatus};

/// What the builder hands to the cache.
#[cfg(feature = "redis")]
pub(crate) type Parts = Option<(
    crate::shared_tier::SharedTier,
    tokio::sync::mpsc::Receiver<crate::shared_tier::Remote>,
)>;
/// What the builder hands to the cache.
#[cfg(not(feature = "redis"))]
pub(crate) type Parts = ();

/// What the shared tier had seen when a load started: the Redis epochs of the
/// key's method and of the deployment, read with the miss. A load's write
/// carries them, and Redis refuses it if an invalidation (from any process)
/// bumped one since, so a value loaded before an invalidation is never
/// written after it. Without an epoch (the read was skipped or failed) the
/// write is dropped.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fence {
    #[cfg(feature = "redis")]
    epochs: Option<crate::shared_tier::Epochs>,
}

/// The shared tier's answer on the read path.
pub(crate) enum SharedRead {
    /// A whole entry, put in memory unless an invalidation ran meanwhile.
    #[cfg_attr(
        not(feature = "redis"),
        expect(dead_code, reason = "only a tier on Redis has hits")
    )]
    Hit(Fetched),
    /// Nothing usable; what the loader's write must carry.
    Miss(Fence),
}

/// The tier as the cache holds it: the tier and the task that applies other
/// processes' invalidations (aborted with the cache).
#[derive(Debug, Default)]
pub(crate) struct Attached {
    #[cfg(feature = "redis")]
    tier: Option<crate::shared_tier::SharedTier>,
    /// The receiver until [`start`] hands it to the applier.
    #[cfg(feature = "redis")]
    remote: Mutex<Option<tokio::sync::mpsc::Receiver<crate::shared_tier::Remote>>>,
    #[cfg(feature = "redis")]
    applier: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        #[cfg(feature = "redis")]
        if let Some(applier) = self
            .applier
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            applier.abort();
        }
    }
}

#[cfg(not(feature = "redis"))]
pub(crate) fn attach(_parts: Parts) -> Attached {
    Attached::default()
}

#[cfg(not(feature = "redis"))]
pub(crate) fn start(_cache: &Arc<Inner>) {}

#[cfg(feature = "redis")]
pub(crate) fn attach(parts: Parts) -> Attached {
    let Some((tier, remote)) = parts else {
        return Attached::default();
    };
    Attached {
        tier: Some(tier),
        remote: Mutex::new(Some(remote)),
        applier: Mutex::new(None),
    }
}

/// Starts the applier. It holds the cache weakly, so it never keeps it alive.
#[cfg(feature = "redis")]
pub(crate) fn start(cache: &Arc<Inner>) {
    let remote = cache
        .tier
        .remote
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let (Some(remote), Ok(runtime)) = (remote, tokio::runtime::Handle::try_current()) {
        let task = runtime.spawn(apply(Arc::downgrade(cache), remote));
        *cache
            .tier
            .applier
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(task);
    }
}

#[cfg(feature = "redis")]
async fn apply(
    cache: Weak<Inner>,
    mut remote: tokio::sync::mpsc::Receiver<crate::shared_tier::Remote>,
) {
    use crate::disk::Target;
    use crate::shared_tier::{Invalidation, Remote};
    while let Some(message) = remote.recv().await {
        let Some(inner) = cache.upgrade() else {
            return;
        };
        let target = match message {
            Remote::Flush { disk } => {
                if disk {
                    inner.invalidate_local(&Target::All).await;
                    tracing::info!("memory and disk tiers flushed: invalidations were missed");
                } else {
                    inner.bump_epoch().await;
                    inner.l1.invalidate_all();
                    tracing::debug!("memory tier flushed: invalidations may have been missed");
                }
                if let Some(tier) = &inner.tier.tier {
                    tier.count(crate::shared_tier::TierStat::MemoryFlushes);
                }
                continue;
            }
            Remote::Invalidate(Invalidation::Key { digest, .. }) => Target::Key(digest),
            Remote::Invalidate(Invalidation::Methods(methods)) => Target::Methods(methods),
            Remote::Invalidate(Invalidation::All) => Target::All,
        };
        inner.invalidate_local(&target).await;
        tracing::debug!(?target, "invalidation from another process applied");
        if let Some(tier) = &inner.tier.tier {
            tier.count(crate::shared_tier::TierStat::Received);
        }
    }
}

impl Attached {
    pub(crate) fn publish_key(&self, key: &CacheKey) {
        #[cfg(feature = "redis")]
        if let Some(tier) = &self.tier {
            tier.invalidate(crate::shared_tier::Invalidation::Key {
                digest: *key.digest(),
                method_tag: key.method_tag(),
            });
        }
        #[cfg(not(feature = "redis"))]
        let _ = key;
    }

    pub(crate) fn publish_methods(&self, methods: Arc<[Arc<str>]>) {
        #[cfg(feature = "redis")]
        if let Some(tier) = &self.tier {
            tier.invalidate(crate::shared_tier::Invalidation::Methods(methods));
        }
        #[cfg(not(feature = "redis"))]
        let _ = methods;
    }

    pub(crate) fn publish_all(&self) {
        #[cfg(feature = "redis")]
        if let Some(tier) = &self.tier {
            tier.invalidate(crate::shared_tier::Invalidation::All);
        }
    }

    /// Queues a write of a value the cache just stored (it passed the size
    /// cap and the epoch check); Redis takes it only if `fence` still holds.
    pub(crate) fn write(
        &self,
        key: &CacheKey,
        value: &Bytes,
        negative: bool,
        ttl: Duration,
        fence: Fence,
    ) {
        #[cfg(feature = "redis")]
        if let Some(tier) = &self.tier {
            tier.write(
                key.digest(),
                key.method_arc(),
                key.method_tag(),
                negative,
                ttl,
                value,
                fence.epochs,
            );
        }
        #[cfg(not(feature = "redis"))]
        let _ = (key, value, negative, ttl, fence);
    }

    /// A waiter got a value its leader read from the shared tier.
    pub(crate) fn count_hit(&self) {
        #[cfg(feature = "redis")]
        if let Some(tier) = &self.tier {
            tier.count(crate::shared_tier::TierStat::Hits);
        }
    }

    pub(crate) fn close(&self) {
        #[cfg(feature = "redis")]
        if let Some(tier) = &self.tier {
            tier.close();
        }
    }

    fn status(&self) -> SharedTierStatus {
        #[cfg(feature = "redis")]
        if let Some(tier) = &self.tier {
            return tier.status();
        }
        SharedTierStatus::NotConfigured
    }

    fn stats(&self) -> SharedTierStats {
        #[cfg(feature = "redis")]
        if let Some(tier) = &self.tier {
            return tier.stats();
        }
        SharedTierStats::default()
    }
}

impl Inner {
    /// Reads the shared tier after a memory and disk miss; a hit goes into
    /// memory for the rest of its TTL (capped at the memory TTL), unless an
    /// invalidation ran since this load started.
    pub(super) async fn shared_read(
        &self,
        key: &CacheKey,
        policy: &CachePolicy,
        epoch: u64,
        deadline: Instant,
    ) -> SharedRead {
        #[cfg(feature = "redis")]
        {
            let Some(tier) = self.tier.tier.as_ref() else {
                return SharedRead::Miss(Fence::default());
            };
            let hit = match tier.read(key.digest(), key.method_tag(), deadline).await {
                crate::shared_tier::Read::Hit(hit) => hit,
                crate::shared_tier::Read::Miss(epochs) => {
                    return SharedRead::Miss(Fence { epochs });
                }
            };
            if policy.tiers.l1() {
                let remaining =
                    Duration::from_millis(hit.expires_ms.saturating_sub(crate::clock::wall_ms()));
                let ttl = if hit.negative {
                    policy.negative_ttl.unwrap_or(policy.l1_ttl)
                } else {
                    policy.l1_ttl
                };
                self.store_l1(key, epoch, &hit.value, hit.negative, ttl.min(remaining))
                    .await;
            }
            SharedRead::Hit(Fetched::new(hit.value, super::Source::Shared, hit.negative))
        }
        #[cfg(not(feature = "redis"))]
        {
            let _ = (key, policy, epoch, deadline);
            SharedRead::Miss(Fence::default())
        }
    }
}

impl Cache {
    /// The state of the shared tier on Redis
    /// ([`SharedTierStatus::NotConfigured`] without one).
    #[must_use]
    pub fn shared_tier_status(&self) -> SharedTierStatus {
        self.inner.tier.status()
    }

    /// The shared tier's counters (all zero without one).
    #[must_use]
    pub fn shared_tier_stats(&self) -> SharedTierStats {
        self.inner.tier.stats()
    }
}
