//! Events the cache publishes, and the health of its disk tier.

use std::fmt;
use std::io;

use crate::KeyDigest;

/// Something that happened in the cache that an operator may want to see.
///
/// Published on a bounded broadcast channel ([`Cache::subscribe`](crate::Cache::subscribe));
/// a receiver that falls behind loses the oldest events, never blocks the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheEvent {
    /// The disk tier stopped being used; the cache serves from memory only.
    /// Published once per failure, with the warning that goes with it.
    DiskTierDisabled {
        /// The failure that disabled it.
        fault: DiskFault,
    },
    /// The disk tier works again after a failure (checked once per sweep
    /// interval). Entries invalidated while it was disabled were cleared first.
    DiskTierRestored,
    /// A disk entry failed its integrity check or was unreadable as a record.
    /// It was treated as a miss, never returned, and removed.
    CorruptEntryRemoved {
        /// The entry's key.
        key: KeyDigest,
        /// What was wrong with it.
        kind: Corruption,
    },
    /// The disk sweeper finished a pass over the whole directory.
    Swept(SweepReport),
    /// Something happened to the shared tier on Redis.
    SharedTier(crate::SharedTierEvent),
}

/// A disk-tier failure, as carried by [`CacheEvent::DiskTierDisabled`] and
/// [`L2Status::Disabled`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskFault {
    /// What the cache was doing.
    pub operation: DiskOperation,
    /// The I/O error kind.
    pub kind: io::ErrorKind,
    /// The error message, with the path where there is one.
    pub message: String,
}

impl DiskFault {
    pub(crate) fn new(
        operation: DiskOperation,
        kind: io::ErrorKind,
        message: impl Into<String>,
    ) -> Self {
        DiskFault {
            operation,
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn from_cacache(operation: DiskOperation, err: &cacache::Error) -> Self {
        let kind = match err {
            cacache::Error::IoError(e, _) => e.kind(),
            _ => io::ErrorKind::Other,
        };
        DiskFault::new(operation, kind, err.to_string())
    }

    pub(crate) fn from_io(
        operation: DiskOperation,
        err: &io::Error,
        path: &std::path::Path,
    ) -> Self {
        DiskFault::new(operation, err.kind(), format!("{}: {err}", path.display()))
    }
}

impl fmt::Display for DiskFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} failed ({:?}): {}",
            self.operation, self.kind, self.message
        )
    }
}

/// The disk operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DiskOperation {
    /// Finding or creating the cache directory.
    Open,
    /// The write-read-remove check run at start and before re-enabling.
    Probe,
    /// Reading an entry.
    Read,
    /// Writing an entry.
    Write,
    /// Removing an entry.
    Remove,
    /// Listing the directory during a sweep.
    Sweep,
}

impl fmt::Display for DiskOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DiskOperation::Open => "opening the cache directory",
            DiskOperation::Probe => "probing the cache directory",
            DiskOperation::Read => "reading an entry",
            DiskOperation::Write => "writing an entry",
            DiskOperation::Remove => "removing an entry",
            DiskOperation::Sweep => "sweeping the cache directory",
        })
    }
}

/// What was wrong with a corrupt disk entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corruption {
    /// The content does not match its recorded hash or size (flipped bytes,
    /// truncation).
    IntegrityMismatch,
    /// The index points to content that is gone.
    MissingContent,
    /// The content is intact but is not a record of this key.
    BadRecord,
    /// The index entry's metadata is not the cache's.
    BadMetadata,
    /// The record is intact but its value is not JSON, in a cache whose
    /// values are ([`CacheBuilder::json_values`](crate::CacheBuilder::json_values)).
    NotJson,
}

/// What one sweep of the disk tier did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SweepReport {
    /// Entries removed because their TTL had passed.
    pub expired: u64,
    /// Orphaned files removed (content no entry points to, dead index files,
    /// abandoned temporary files, broken or foreign entries).
    pub orphans: u64,
    /// Live entries removed, oldest first, to get under the byte budget.
    pub evicted: u64,
    /// Empty folders removed from the index and content trees: cacache
    /// leaves an entry's hash folders behind when the entry goes, and the
    /// sweep removes them once they are old enough not to be another
    /// process's write in progress.
    pub folders: u64,
    /// Entries on disk after the sweep.
    pub entries: u64,
    /// Bytes on disk after the sweep (content, index and temporary files).
    pub bytes: u64,
}

/// The state of the disk tier.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum L2Status {
    /// The cache was built without a disk tier.
    NotConfigured,
    /// The directory is being checked; reads wait briefly for the result.
    Starting,
    /// Reads and writes go to disk.
    Active,
    /// A disk failure turned the tier off; the cache runs from memory.
    Disabled(DiskFault),
    /// The cache was closed; pending writes were flushed.
    Closed,
}

impl L2Status {
    /// Whether the disk tier is serving reads and taking writes.
    #[must_use]
    pub fn is_active(&self) -> bool {
        matches!(self, L2Status::Active)
    }
}
