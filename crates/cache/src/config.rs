//! The cache builder, its defaults, and the platform cache directory.

use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::cache::Cache;
use crate::disk::{Disk, DiskConfig};
use crate::error::{Error, Result};
use crate::event::{DiskFault, DiskOperation};
use crate::l1;
use crate::shared::Shared;
use crate::shared_tier::SharedTierConfig;

const MIB: u64 = 1024 * 1024;

/// Where the disk tier lives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiskLocation {
    /// `pybridge` in the platform's cache directory (see [`platform_cache_dir`]).
    Platform,
    /// This directory, used as is.
    Dir(PathBuf),
    /// No disk tier.
    Disabled,
}

/// Builds a [`Cache`]. Every setting has a documented default.
///
/// ```
/// # use std::num::NonZeroU64;
/// # use pybridge_cache::CacheBuilder;
/// let builder = CacheBuilder::new()
///     .namespace("catalog-v3")
///     .l1_max_bytes(NonZeroU64::new(16 << 20).expect("not zero"))
///     .memory_only();
/// ```
#[derive(Debug, Clone)]
pub struct CacheBuilder {
    l1_max_bytes: NonZeroU64,
    location: DiskLocation,
    l2_max_bytes: NonZeroU64,
    sweep_interval: Duration,
    namespace: String,
    write_queue: NonZeroUsize,
    disk_reads: NonZeroUsize,
    event_capacity: NonZeroUsize,
    shared_tier: Option<SharedTierConfig>,
    json_values: bool,
}

impl Default for CacheBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl CacheBuilder {
    /// Smallest disk budget accepted: room for a few typical entries.
    pub const MIN_L2_BYTES: u64 = 64 * 1024;
    /// Shortest sweep interval accepted.
    pub const MIN_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
    /// Longest namespace accepted, in bytes.
    pub const MAX_NAMESPACE_LEN: usize = 256;

    /// The defaults: 64 MiB in memory; a disk tier of 512 MiB in the platform
    /// cache directory, swept every 5 minutes; namespace `default`; a write
    /// queue of 1024; 16 concurrent disk reads; 64 buffered events.
    #[must_use]
    pub fn new() -> Self {
        CacheBuilder {
            l1_max_bytes: NonZeroU64::new(64 * MIB).expect("nonzero constant"),
            location: DiskLocation::Platform,
            l2_max_bytes: NonZeroU64::new(512 * MIB).expect("nonzero constant"),
            sweep_interval: Duration::from_secs(5 * 60),
            namespace: "default".to_owned(),
            write_queue: NonZeroUsize::new(1024).expect("nonzero constant"),
            disk_reads: NonZeroUsize::new(16).expect("nonzero constant"),
            event_capacity: NonZeroUsize::new(64).expect("nonzero constant"),
            shared_tier: None,
            json_values: false,
        }
    }

    /// Bytes the memory tier may hold (values plus a fixed per-entry overhead).
    #[must_use]
    pub fn l1_max_bytes(mut self, bytes: NonZeroU64) -> Self {
        self.l1_max_bytes = bytes;
        self
    }

    /// Puts the disk tier in `dir` (created if missing).
    #[must_use]
    pub fn l2_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.location = DiskLocation::Dir(dir.into());
        self
    }

    /// Sets where the disk tier lives.
    #[must_use]
    pub fn l2_location(mut self, location: DiskLocation) -> Self {
        self.location = location;
        self
    }

    /// No disk tier.
    #[must_use]
    pub fn memory_only(mut self) -> Self {
        self.location = DiskLocation::Disabled;
        self
    }

    /// Bytes the disk tier may hold: content, index and temporary files.
    /// At least [`CacheBuilder::MIN_L2_BYTES`].
    #[must_use]
    pub fn l2_max_bytes(mut self, bytes: NonZeroU64) -> Self {
        self.l2_max_bytes = bytes;
        self
    }

    /// How often the sweeper passes over the whole directory (and, while the
    /// disk tier is off, checks whether it works again). At least
    /// [`CacheBuilder::MIN_SWEEP_INTERVAL`]. The byte budget is also enforced
    /// after every batch of writes, between sweeps.
    ///
    /// The first sweep is not at the start: it runs a second later, or when
    /// the cache closes first, and only if no cache sharing the directory
    /// swept it within the interval when this one started (a `last-sweep`
    /// file in the directory records when; caches that start together may
    /// each sweep once). Until this cache's first sweep, its byte budget counts
    /// only its own writes.
    #[must_use]
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// The namespace of keys made with [`Cache::key`] (typically the catalog
    /// version). Non-empty, at most [`CacheBuilder::MAX_NAMESPACE_LEN`] bytes.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// Disk writes waiting for the disk task; beyond this, writes are dropped.
    #[must_use]
    pub fn write_queue_capacity(mut self, capacity: NonZeroUsize) -> Self {
        self.write_queue = capacity;
        self
    }

    /// Disk reads running at once on the blocking pool.
    #[must_use]
    pub fn max_concurrent_disk_reads(mut self, reads: NonZeroUsize) -> Self {
        self.disk_reads = reads;
        self
    }

    /// Whether every value is JSON (default: no, any bytes). When it is, a
    /// value read back from disk or the shared tier is checked once, on its
    /// way into memory: one that is not JSON is a corrupt entry (removed,
    /// counted and reported like one that fails its checksum), and a hit on
    /// it carries checked JSON ([`Fetched::json`](crate::Fetched::json)).
    /// Loaders should give [`Load::Json`](crate::Load::Json), checked
    /// already and carried the same way; bytes given as
    /// [`Load::Value`](crate::Load::Value) or
    /// [`Load::Negative`](crate::Load::Negative) are cached as they are
    /// (their memory hits carry no JSON), and in this mode they too must be
    /// JSON, or disk and the shared tier will find them corrupt.
    #[must_use]
    pub fn json_values(mut self, json: bool) -> Self {
        self.json_values = json;
        self
    }

    /// Events buffered per subscriber.
    #[must_use]
    pub fn event_capacity(mut self, capacity: NonZeroUsize) -> Self {
        self.event_capacity = capacity;
        self
    }

    /// Adds the shared tier on Redis after memory and disk (default: none).
    /// Needs the `redis` feature; without it `build()` fails.
    #[must_use]
    pub fn shared_tier(mut self, tier: SharedTierConfig) -> Self {
        self.shared_tier = Some(tier);
        self
    }

    /// Validates the settings and builds the cache.
    ///
    /// The disk is not touched here: the disk task checks the directory in the
    /// background, and an unusable directory turns the disk tier off (one
    /// warning, one [`CacheEvent::DiskTierDisabled`](crate::CacheEvent)) rather
    /// than failing the build.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a setting out of range, and
    /// [`Error::NoRuntime`] when a disk or shared tier is configured and this
    /// is called outside a Tokio runtime.
    pub fn build(self) -> Result<Cache> {
        if self.namespace.is_empty() {
            return Err(Error::InvalidConfig {
                field: "namespace",
                problem: "must not be empty",
            });
        }
        if self.namespace.len() > Self::MAX_NAMESPACE_LEN {
            return Err(Error::InvalidConfig {
                field: "namespace",
                problem: "must be at most 256 bytes",
            });
        }
        if self.sweep_interval < Self::MIN_SWEEP_INTERVAL {
            return Err(Error::InvalidConfig {
                field: "sweep_interval",
                problem: "must be at least 1 second",
            });
        }
        if self.l2_max_bytes.get() < Self::MIN_L2_BYTES {
            return Err(Error::InvalidConfig {
                field: "l2_max_bytes",
                problem: "must be at least 64 KiB",
            });
        }
        if let Some(tier) = &self.shared_tier {
            tier.validate()?;
            if cfg!(not(feature = "redis")) {
                return Err(Error::InvalidConfig {
                    field: "shared_tier",
                    problem: "needs the `redis` feature of pybridge-cache",
                });
            }
        }
        let configured = self.location != DiskLocation::Disabled;
        let runtime = if configured || self.shared_tier.is_some() {
            Some(Handle::try_current().map_err(|_| Error::NoRuntime)?)
        } else {
            None
        };
        let mut shared = Shared::new(self.event_capacity.get(), configured);
        shared.json_values = self.json_values;
        let shared = Arc::new(shared);
        let l1 = l1::build(self.l1_max_bytes.get(), Arc::clone(&shared));
        let dir = match self.location {
            DiskLocation::Disabled => None,
            DiskLocation::Dir(dir) => Some(dir),
            DiskLocation::Platform => {
                let dir = platform_cache_dir().map(|d| d.join("pybridge"));
                if dir.is_none() {
                    shared.disable_l2(DiskFault::new(
                        DiskOperation::Open,
                        std::io::ErrorKind::NotFound,
                        "no platform cache directory (HOME is not set)",
                    ));
                }
                dir
            }
        };
        let namespace: Arc<str> = Arc::from(self.namespace);
        let cache_shared = Arc::clone(&shared);
        #[cfg(feature = "redis")]
        let tier = match (&self.shared_tier, &runtime) {
            (Some(tier), Some(runtime)) => Some(
                crate::shared_tier::SharedTier::start(tier.parts(), Arc::clone(&shared), runtime)
                    .map_err(|_| Error::InvalidConfig {
                    field: "shared_tier.url",
                    problem: "is not a Redis URL (redis://host:port/db)",
                })?,
            ),
            _ => None,
        };
        #[cfg(not(feature = "redis"))]
        let tier = ();
        let disk = match (dir, runtime) {
            (Some(dir), Some(runtime)) => Some(Disk::start(
                DiskConfig {
                    dir,
                    max_bytes: self.l2_max_bytes.get(),
                    sweep_interval: self.sweep_interval,
                    queue: self.write_queue.get(),
                    reads: self.disk_reads.get(),
                },
                shared,
                &runtime,
            )),
            _ => None,
        };
        Ok(Cache::from_parts(
            l1,
            self.l1_max_bytes.get(),
            cache_shared,
            disk,
            namespace,
            tier,
        ))
    }
}

/// The platform's per-user cache directory: `$XDG_CACHE_HOME` (if absolute),
/// else `$HOME/.cache` on Unix; `$HOME/Library/Caches` on macOS;
/// `%LOCALAPPDATA%` on Windows. `None` when the variables are unset.
#[must_use]
pub fn platform_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if cfg!(windows) {
        return var("LOCALAPPDATA");
    }
    if cfg!(target_os = "macos") {
        return var("HOME").map(|home| home.join("Library").join("Caches"));
    }
    var("XDG_CACHE_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| var("HOME").map(|home| home.join(".cache")))
}
