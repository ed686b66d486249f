//! The memory tier: a moka cache bounded by bytes, with a TTL per entry.

use std::sync::Arc;
use std::time::Duration;

use moka::Expiry;
use moka::notification::RemovalCause;
use tokio::time::Instant;

use crate::key::{DigestHashBuilder, KeyDigest};
use crate::shared::Shared;
use crate::stats::Stat;
use crate::value::Stored;

/// What moka holds per entry besides the value: its key, its slot in the
/// policy lists and the expiry wheel, and for a JSON value the `Arc` that
/// holds the text and the owner its bytes view it through (about 64 bytes).
/// An estimate; it keeps the byte bound honest for small values.
pub(crate) const ENTRY_OVERHEAD: u64 = 224;

pub(crate) type L1 = moka::future::Cache<KeyDigest, L1Entry, DigestHashBuilder>;

#[derive(Debug, Clone)]
pub(crate) struct L1Entry {
    pub(crate) value: Stored,
    /// Checked on every hit with Tokio's clock, so that TTLs hold exactly and
    /// follow a paused clock in tests; moka's own expiry (on the real clock)
    /// reclaims the memory.
    pub(crate) expires_at: Instant,
    pub(crate) ttl: Duration,
    pub(crate) negative: bool,
    pub(crate) method_tag: u64,
}

impl L1Entry {
    pub(crate) fn weight(len: usize) -> u64 {
        (len as u64).saturating_add(ENTRY_OVERHEAD)
    }
}

struct PerEntryTtl;

impl Expiry<KeyDigest, L1Entry> for PerEntryTtl {
    fn expire_after_create(
        &self,
        _: &KeyDigest,
        value: &L1Entry,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _: &KeyDigest,
        value: &L1Entry,
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub(crate) fn build(max_bytes: u64, shared: Arc<Shared>) -> L1 {
    moka::future::Cache::builder()
        .max_capacity(max_bytes)
        .weigher(|_, entry: &L1Entry| {
            u32::try_from(L1Entry::weight(entry.value.len())).unwrap_or(u32::MAX)
        })
        .expire_after(PerEntryTtl)
        .eviction_listener(move |_, _, cause| match cause {
            RemovalCause::Size => shared.counters.incr(Stat::L1Evictions),
            RemovalCause::Expired => shared.counters.incr(Stat::L1Expirations),
            RemovalCause::Explicit | RemovalCause::Replaced => {}
        })
        .build_with_hasher(DigestHashBuilder)
}
