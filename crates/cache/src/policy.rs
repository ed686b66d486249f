//! Per-method cache policy: whether and where a method's results are kept,
//! and for how long.

use std::time::Duration;

use crate::error::{Error, Result};

/// Which tiers a method's results use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Tiers {
    /// Memory, then disk (the default).
    #[default]
    Both,
    /// Memory only: nothing of this method is written to disk.
    L1Only,
    /// Disk only: results are read from disk on every call and never kept in
    /// memory (large values that are rarely read again).
    L2Only,
}

impl Tiers {
    pub(crate) fn l1(self) -> bool {
        matches!(self, Tiers::Both | Tiers::L1Only)
    }

    pub(crate) fn l2(self) -> bool {
        matches!(self, Tiers::Both | Tiers::L2Only)
    }
}

/// How one method's results are cached. The bridge builds one per catalog
/// entry; the cache itself knows nothing of methods beyond their names.
///
/// A plain struct with public fields: start from [`CachePolicy::default`] (or
/// [`CachePolicy::disabled`]) and set what differs, then check it once with
/// [`CachePolicy::validate`] when the catalog loads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CachePolicy {
    /// Whether the method is cached at all. When `false` every call runs the
    /// loader and nothing is read or stored. Default `true`.
    pub enabled: bool,
    /// How long a result lives in memory. Default 5 minutes.
    pub l1_ttl: Duration,
    /// How long a result lives on disk, across restarts. Default 1 hour.
    pub l2_ttl: Duration,
    /// Which tiers the method uses. Default [`Tiers::Both`].
    pub tiers: Tiers,
    /// Results larger than this are returned to the caller but not stored.
    /// Default 1 MiB.
    pub max_entry_bytes: usize,
    /// How long a negative result (a [`Load::Negative`](crate::Load::Negative)
    /// from the loader) is kept, in every tier the method uses. `None`, the
    /// default, stores no negative results. Loader errors are never stored.
    pub negative_ttl: Option<Duration>,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            enabled: true,
            l1_ttl: Duration::from_secs(5 * 60),
            l2_ttl: Duration::from_secs(60 * 60),
            tiers: Tiers::Both,
            max_entry_bytes: 1024 * 1024,
            negative_ttl: None,
        }
    }
}

impl CachePolicy {
    /// A policy that caches nothing.
    #[must_use]
    pub fn disabled() -> Self {
        CachePolicy {
            enabled: false,
            ..CachePolicy::default()
        }
    }

    /// The default policy with one TTL for both tiers.
    #[must_use]
    pub fn with_ttl(ttl: Duration) -> Self {
        CachePolicy {
            l1_ttl: ttl,
            l2_ttl: ttl,
            ..CachePolicy::default()
        }
    }

    /// Checks that every tier the policy uses can hold something.
    ///
    /// A policy that fails this check still works (a zero TTL simply stores
    /// nothing in that tier); the check exists to catch catalog mistakes early.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the field: a zero TTL for a tier in use,
    /// a zero `max_entry_bytes`, or a zero `negative_ttl`.
    pub fn validate(&self) -> Result<()> {
        if !self.enabled {
            return Ok(());
        }
        if self.tiers.l1() && self.l1_ttl.is_zero() {
            return Err(Error::InvalidConfig {
                field: "l1_ttl",
                problem: "must be above zero when L1 is used",
            });
        }
        if self.tiers.l2() && self.l2_ttl.is_zero() {
            return Err(Error::InvalidConfig {
                field: "l2_ttl",
                problem: "must be above zero when L2 is used",
            });
        }
        if self.max_entry_bytes == 0 {
            return Err(Error::InvalidConfig {
                field: "max_entry_bytes",
                problem: "must be above zero",
            });
        }
        if self.negative_ttl.is_some_and(|t| t.is_zero()) {
            return Err(Error::InvalidConfig {
                field: "negative_ttl",
                problem: "must be above zero (use None to disable)",
            });
        }
        Ok(())
    }
}
