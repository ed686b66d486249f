//! The disk tier: cacache in a directory, read on the caller's path, written
//! and swept by one background task (its first sweep deferred past the
//! start, see `disk/task.rs`).
//!
//! Reads run on the blocking pool, one hop per read (index lookup, content read
//! and integrity check together), bounded by a semaphore. Everything that
//! changes the directory — writes, invalidations, the sweep — goes through one
//! bounded queue to one task, so those never race each other within a process,
//! and an invalidation is ordered after every write queued before it. A write
//! that finds the queue full is dropped and counted: the caller never waits
//! for the disk.

mod layout;
mod task;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use cacache::Integrity;
use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::clock;
use crate::event::{CacheEvent, Corruption, DiskFault, DiskOperation};
use crate::key::KeyDigest;
use crate::shared::{ACTIVE, STARTING, Shared};
use crate::stats::Stat;
use crate::value::Stored;

/// How long a read waits for the start-up check of the directory before it
/// skips the disk tier for that call.
const STARTUP_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub(crate) struct DiskConfig {
    pub(crate) dir: PathBuf,
    pub(crate) max_bytes: u64,
    pub(crate) sweep_interval: Duration,
    pub(crate) queue: usize,
    pub(crate) reads: usize,
}

/// A value found on disk, with its absolute expiry.
#[derive(Debug)]
pub(crate) struct DiskHit {
    pub(crate) value: Stored,
    pub(crate) negative: bool,
    pub(crate) expires_ms: u64,
}

#[derive(Debug)]
pub(crate) struct WriteJob {
    pub(crate) digest: KeyDigest,
    pub(crate) method: Arc<str>,
    pub(crate) value: Bytes,
    pub(crate) negative: bool,
    pub(crate) expires_ms: u64,
}

#[derive(Debug, Clone)]
pub(crate) enum Target {
    Key(KeyDigest),
    /// Every entry of these methods (one invalidation: a write drops all the
    /// reads it made stale at once).
    Methods(Arc<[Arc<str>]>),
    All,
}

#[derive(Debug)]
pub(crate) enum Job {
    Write(WriteJob),
    /// A read hit, for least-recently-used eviction.
    Touch {
        digest: KeyDigest,
        at_ms: u64,
    },
    /// A reader removed this entry (corrupt or expired).
    Forget {
        digest: KeyDigest,
    },
    Invalidate {
        target: Target,
        reply: oneshot::Sender<()>,
    },
    Flush {
        reply: oneshot::Sender<()>,
    },
    Close {
        reply: oneshot::Sender<()>,
    },
}

impl Job {
    /// Jobs that only update what the task knows, without touching the disk.
    pub(crate) fn is_bookkeeping(&self) -> bool {
        matches!(
            self,
            Job::Touch { .. } | Job::Forget { .. } | Job::Flush { .. }
        )
    }
}

#[derive(Debug)]
pub(crate) struct Disk {
    dir: Arc<Path>,
    tx: mpsc::Sender<Job>,
    reads: Semaphore,
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Disk {
    /// Starts the disk task; it checks the directory before anything else and
    /// turns the tier off (with one warning and an event) if it is unusable.
    pub(crate) fn start(config: DiskConfig, shared: Arc<Shared>, runtime: &Handle) -> Disk {
        let (tx, rx) = mpsc::channel(config.queue);
        let dir: Arc<Path> = Arc::from(config.dir.as_path());
        let reads = Semaphore::new(config.reads);
        let state = task::DiskState::new(
            config.dir.clone(),
            config.max_bytes,
            config.sweep_interval,
            Arc::clone(&shared),
        );
        let handle = runtime.spawn(task::run(state, rx, config.sweep_interval));
        Disk {
            dir,
            tx,
            reads,
            shared,
            task: Mutex::new(Some(handle)),
        }
    }

    /// Looks `digest` up on disk. Every failure is a miss: a corrupt entry is
    /// counted, reported and removed; an I/O error turns the tier off.
    pub(crate) async fn read(&self, digest: KeyDigest) -> Option<DiskHit> {
        match self.shared.l2_state() {
            ACTIVE => {}
            STARTING => {
                tokio::time::timeout(STARTUP_WAIT, self.shared.l2_started())
                    .await
                    .ok()?;
                if self.shared.l2_state() != ACTIVE {
                    return None;
                }
            }
            _ => return None,
        }
        let _permit = self.reads.acquire().await.ok()?;
        let now_ms = clock::wall_ms();
        let dir = Arc::clone(&self.dir);
        let json = self.shared.json_values;
        let read =
            tokio::task::spawn_blocking(move || read_entry(&dir, &digest, now_ms, json)).await;
        match read {
            Ok(Read::Hit(hit)) => {
                let _ = self.tx.try_send(Job::Touch {
                    digest,
                    at_ms: now_ms,
                });
                Some(hit)
            }
            Ok(Read::Miss) => None,
            Ok(Read::Expired { removed }) => {
                if removed {
                    self.shared.counters.incr(Stat::L2Expirations);
                    let _ = self.tx.try_send(Job::Forget { digest });
                }
                None
            }
            Ok(Read::Corrupt { kind, removal }) => {
                self.shared.counters.incr(Stat::L2Corrupt);
                tracing::warn!(key = %digest, ?kind, "corrupt disk cache entry removed");
                if let Err(fault) = removal {
                    self.shared.counters.incr(Stat::L2Errors);
                    tracing::debug!(%fault, "could not remove a corrupt disk cache entry");
                }
                let _ = self.tx.try_send(Job::Forget { digest });
                self.shared
                    .emit(CacheEvent::CorruptEntryRemoved { key: digest, kind });
                None
            }
            Ok(Read::Failed(fault)) => {
                self.shared.disable_l2(fault);
                None
            }
            Err(join) => {
                self.shared.disable_l2(DiskFault::new(
                    DiskOperation::Read,
                    io::ErrorKind::Other,
                    join.to_string(),
                ));
                None
            }
        }
    }

    /// Queues a write; never waits. Returns whether it was queued.
    pub(crate) fn write(&self, job: WriteJob) -> bool {
        if !matches!(self.shared.l2_state(), ACTIVE | STARTING) {
            return false;
        }
        match self.tx.try_send(Job::Write(job)) {
            Ok(()) => true,
            Err(_) => {
                self.shared.counters.incr(Stat::L2WritesDropped);
                tracing::debug!("disk cache write queue full; write dropped");
                false
            }
        }
    }

    /// Removes entries from disk; returns once they are gone. While the tier is
    /// off, the task remembers that it must clear the directory before it
    /// serves from it again.
    pub(crate) async fn invalidate(&self, target: Target) {
        self.request(|reply| Job::Invalidate { target, reply })
            .await;
    }

    /// Waits until every job queued before this call has been done.
    pub(crate) async fn flush(&self) {
        self.request(|reply| Job::Flush { reply }).await;
    }

    /// Finishes queued work and stops the task; the tier is closed after.
    pub(crate) async fn close(&self) {
        self.request(|reply| Job::Close { reply }).await;
        let handle = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            // The task has ended or is about to: it returns right after the reply.
            let _ = handle.await;
        }
        self.shared.close_l2();
    }

    async fn request(&self, job: impl FnOnce(oneshot::Sender<()>) -> Job) {
        let (reply, done) = oneshot::channel();
        // A closed queue means the task is gone and there is nothing to wait for.
        if self.tx.send(job(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

enum Read {
    Hit(DiskHit),
    Miss,
    Expired {
        removed: bool,
    },
    Corrupt {
        kind: Corruption,
        removal: Result<(), DiskFault>,
    },
    Failed(DiskFault),
}

/// One blocking pass: the index entry, its expiry, the content and its
/// checks; with `json`, the check that the value is JSON too.
fn read_entry(dir: &Path, digest: &KeyDigest, now_ms: u64, json: bool) -> Read {
    let key = digest.to_hex();
    let meta = match cacache::metadata_sync(dir, &key) {
        Ok(Some(meta)) => meta,
        Ok(None) => return Read::Miss,
        Err(e) => return Read::Failed(DiskFault::from_cacache(DiskOperation::Read, &e)),
    };
    let Some(entry) = layout::parse_meta(&meta.metadata) else {
        return corrupt(dir, &key, &meta.integrity, Corruption::BadMetadata);
    };
    if entry.expires_ms <= now_ms {
        let removed = remove_if_current(dir, &key, &meta.integrity).is_ok();
        return Read::Expired { removed };
    }
    match cacache::read_hash_sync(dir, &meta.integrity) {
        Ok(record) => match layout::decode_record(record, digest) {
            Some((value, negative)) => {
                let value = if json {
                    match Stored::checked_json(&value) {
                        Some(value) => value,
                        None => return corrupt(dir, &key, &meta.integrity, Corruption::NotJson),
                    }
                } else {
                    Stored::bytes(value)
                };
                Read::Hit(DiskHit {
                    value,
                    negative,
                    expires_ms: entry.expires_ms,
                })
            }
            None => corrupt(dir, &key, &meta.integrity, Corruption::BadRecord),
        },
        Err(cacache::Error::IntegrityError(_) | cacache::Error::SizeMismatch(..)) => {
            corrupt(dir, &key, &meta.integrity, Corruption::IntegrityMismatch)
        }
        Err(cacache::Error::IoError(e, _)) if e.kind() == io::ErrorKind::NotFound => {
            corrupt(dir, &key, &meta.integrity, Corruption::MissingContent)
        }
        Err(e) => Read::Failed(DiskFault::from_cacache(DiskOperation::Read, &e)),
    }
}

fn corrupt(dir: &Path, key: &str, integrity: &Integrity, kind: Corruption) -> Read {
    Read::Corrupt {
        kind,
        removal: remove_if_current(dir, key, integrity),
    }
}

/// Removes the entry for `key` if the index still points at `integrity`, so a
/// fresh write that landed since the read is left alone.
fn remove_if_current(dir: &Path, key: &str, integrity: &Integrity) -> Result<(), DiskFault> {
    match cacache::metadata_sync(dir, key) {
        Ok(Some(meta)) if meta.integrity == *integrity => {}
        Ok(_) => return Ok(()),
        Err(e) => return Err(DiskFault::from_cacache(DiskOperation::Remove, &e)),
    }
    layout::remove_entry(dir, key, integrity)
        .map_err(|(e, path)| DiskFault::from_io(DiskOperation::Remove, &e, &path))
}

#[cfg(test)]
mod tests;
