//! The disk task: the only writer of the directory within a process. It writes
//! entries, applies invalidations, enforces the byte budget, sweeps, and
//! re-enables the tier after a failure once the directory works again.
//!
//! The start-up sweep is deferred: the tier opens as soon as its probe
//! passes, and the first sweep runs [`STARTUP_SWEEP_DELAY`] later, or when
//! the cache closes first (a one-call process), and only when no process
//! sharing the directory swept it within the sweep interval (a stamp file
//! records the last sweep). A process that makes one call and exits
//! therefore neither waits for a sweep before its call nor, most of the
//! time, at its exit; the directory is still swept at least once per
//! interval by whichever process comes first.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};
use std::mem;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use cacache::{Integrity, WriteOpts};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, MissedTickBehavior};

use super::layout::{self, CONTENT_DIR, INDEX_DIR, TMP_DIR};
use super::{Job, Target, WriteJob};
use crate::clock;
use crate::event::{CacheEvent, DiskFault, DiskOperation, SweepReport};
use crate::key::{DigestHashBuilder, KeyDigest};
use crate::shared::{ACTIVE, DISABLED, Shared};
use crate::stats::Stat;

/// Files no entry refers to (content, index buckets, temporary files) are
/// removed only when older than this, so that a write in progress in another
/// process sharing the directory is never mistaken for an orphan.
pub(crate) const ORPHAN_GRACE: Duration = Duration::from_secs(10 * 60);

/// Jobs taken from the queue per trip to the blocking pool.
const BATCH: usize = 64;

/// How long after the start the first sweep runs, when one is due: past the
/// first calls of a process, which need the disk's reads, not its sweep.
pub(crate) const STARTUP_SWEEP_DELAY: Duration = Duration::from_secs(1);

/// The file, at the top of the directory (outside cacache's folders, which
/// the sweep walks), holding the wall-clock time of the last sweep in Unix
/// milliseconds, as decimal text.
const SWEEP_STAMP: &str = "last-sweep";

#[derive(Debug)]
struct DiskEntry {
    integrity: Integrity,
    /// Content plus index bucket.
    bytes: u64,
    written_ms: u64,
    last_used_ms: u64,
    expires_ms: u64,
}

/// What the task knows of the directory. Rebuilt from disk at every sweep, so
/// entries written by another process sharing the directory are counted then.
#[derive(Debug)]
pub(crate) struct DiskState {
    dir: PathBuf,
    budget: u64,
    /// Eviction stops here, a tenth below the budget, so that a full cache
    /// does not evict on every write.
    low_water: u64,
    shared: Arc<Shared>,
    entries: HashMap<KeyDigest, DiskEntry, DigestHashBuilder>,
    total_bytes: u64,
    /// An invalidation arrived while the tier was off: the directory may hold
    /// entries that must never be served, so it is cleared before re-enabling.
    dirty: bool,
    sweep_interval: Duration,
    /// Whether this process has swept the directory (until then, `entries`
    /// and `total_bytes` count only its own writes).
    swept: bool,
}

pub(crate) async fn run(state: DiskState, mut rx: mpsc::Receiver<Job>, sweep_interval: Duration) {
    let shared = Arc::clone(&state.shared);
    let now = clock::wall_ms();
    let Some((mut state, due)) = blocking(state, move |s| s.start(now)).await else {
        return;
    };
    let first = if due {
        STARTUP_SWEEP_DELAY.min(sweep_interval)
    } else {
        sweep_interval
    };
    let mut ticker = tokio::time::interval_at(Instant::now() + first, sweep_interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // Ticks first: under a steady stream of writes the sweep must still run.
            biased;
            _ = ticker.tick() => {
                let now = clock::wall_ms();
                match blocking(state, move |s| s.periodic(now)).await {
                    Some((s, ())) => state = s,
                    None => return,
                }
            }
            job = rx.recv() => {
                let Some(job) = job else { break };
                let mut batch = Vec::with_capacity(BATCH);
                batch.push(job);
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let now = clock::wall_ms();
                // Read hits send a touch each; those (and flushes behind
                // them) need no I/O, so they skip the trip to the blocking pool.
                if batch.iter().all(Job::is_bookkeeping) && state.total_bytes <= state.budget {
                    state.process(batch, now);
                    continue;
                }
                match blocking(state, move |s| s.process(batch, now)).await {
                    Some((_, true)) | None => break,
                    Some((s, false)) => state = s,
                }
            }
        }
    }
    drop(rx);
    tracing::debug!(
        open = shared.l2_state() == ACTIVE,
        "disk cache task stopped"
    );
}

/// Runs `f` on the blocking pool with the state moved in and back out. A panic
/// there loses the state, so the tier is turned off and the task ends.
async fn blocking<R: Send + 'static>(
    mut state: DiskState,
    f: impl FnOnce(&mut DiskState) -> R + Send + 'static,
) -> Option<(DiskState, R)> {
    let shared = Arc::clone(&state.shared);
    match tokio::task::spawn_blocking(move || {
        let r = f(&mut state);
        (state, r)
    })
    .await
    {
        Ok(done) => Some(done),
        Err(e) => {
            shared.disable_l2(DiskFault::new(
                DiskOperation::Sweep,
                io::ErrorKind::Other,
                e.to_string(),
            ));
            None
        }
    }
}

impl DiskState {
    pub(crate) fn new(
        dir: PathBuf,
        budget: u64,
        sweep_interval: Duration,
        shared: Arc<Shared>,
    ) -> Self {
        DiskState {
            dir,
            budget,
            low_water: budget - budget / 10,
            shared,
            entries: HashMap::default(),
            total_bytes: 0,
            dirty: false,
            sweep_interval,
            swept: false,
        }
    }

    /// Probes the directory and opens the tier; returns whether a sweep is
    /// due (see [`Self::sweep_due`]).
    fn start(&mut self, now: u64) -> bool {
        match probe(&self.dir, now) {
            // Reads may start now; the sweep is deferred (see the module
            // docs). Until it runs, the byte budget counts this process's
            // writes only: the directory may exceed it by what is written
            // before the first sweep, at most one interval's worth.
            Ok(()) => {
                self.shared.set_l2_active();
                tracing::debug!(dir = %self.dir.display(), "disk cache tier active");
                self.sweep_due(now)
            }
            Err(fault) => {
                self.shared.disable_l2(fault);
                false
            }
        }
    }

    /// Whether no process sharing the directory swept it within the sweep
    /// interval (by the stamp file; a missing or unreadable stamp means due).
    /// A stamp a little ahead of `now` is another clock's rounding; one
    /// more than an interval ahead means the clock was set back, and is due.
    fn sweep_due(&self, now: u64) -> bool {
        let interval = u64::try_from(self.sweep_interval.as_millis()).unwrap_or(u64::MAX);
        let last = read_stamp(&self.dir.join(SWEEP_STAMP));
        last.is_none_or(|last| now.abs_diff(last) >= interval)
    }

    fn periodic(&mut self, now: u64) {
        match self.shared.l2_state() {
            ACTIVE => self.sweep_or_disable(now),
            DISABLED => self.try_restore(now),
            _ => {}
        }
    }

    fn try_restore(&mut self, now: u64) {
        if let Err(fault) = probe(&self.dir, now) {
            tracing::debug!(%fault, "disk cache tier still unusable");
            return;
        }
        if self.dirty {
            if let Err(fault) = self.remove_matching(&Target::All) {
                tracing::debug!(%fault, "disk cache tier still unusable");
                return;
            }
            self.dirty = false;
        }
        if let Err(fault) = self.sweep(now) {
            tracing::debug!(%fault, "disk cache tier still unusable");
            return;
        }
        if self.shared.set_l2_active() {
            tracing::info!(dir = %self.dir.display(), "disk cache tier restored");
            self.shared.emit(CacheEvent::DiskTierRestored);
        }
    }

    fn sweep_or_disable(&mut self, now: u64) {
        match self.sweep(now) {
            Ok(report) => self.shared.emit(CacheEvent::Swept(report)),
            Err(fault) => {
                self.shared.disable_l2(fault);
            }
        }
    }

    /// Does a batch of jobs in order. Returns whether the task must stop.
    fn process(&mut self, jobs: Vec<Job>, now: u64) -> bool {
        let mut replies: Vec<oneshot::Sender<()>> = Vec::new();
        let mut close = false;
        for job in jobs {
            match job {
                Job::Write(write) => self.write(write, now),
                Job::Touch { digest, at_ms } => {
                    if let Some(entry) = self.entries.get_mut(&digest) {
                        entry.last_used_ms = entry.last_used_ms.max(at_ms);
                    }
                }
                Job::Forget { digest } => self.forget(&digest),
                Job::Invalidate { target, reply } => {
                    self.invalidate(&target);
                    replies.push(reply);
                }
                Job::Flush { reply } => replies.push(reply),
                Job::Close { reply } => {
                    replies.push(reply);
                    close = true;
                }
            }
        }
        // A process that closes before its deferred first sweep still sweeps
        // when nobody did within the interval, or no process ever would.
        if close && !self.swept && self.shared.l2_state() == ACTIVE && self.sweep_due(now) {
            self.sweep_or_disable(now);
        }
        if self.shared.l2_state() == ACTIVE
            && self.total_bytes > self.budget
            && let Err(fault) = self.evict_to(self.low_water, now)
        {
            self.shared.disable_l2(fault);
        }
        self.publish_size();
        for reply in replies {
            let _ = reply.send(());
        }
        close
    }

    fn publish_size(&self) {
        self.shared
            .counters
            .set_l2_size(self.total_bytes, self.entries.len() as u64);
    }

    fn forget(&mut self, digest: &KeyDigest) {
        if let Some(entry) = self.entries.remove(digest) {
            self.total_bytes = self.total_bytes.saturating_sub(entry.bytes);
        }
    }

    fn write(&mut self, job: WriteJob, now: u64) {
        let shared = Arc::clone(&self.shared);
        let counters = &shared.counters;
        if self.shared.l2_state() != ACTIVE || job.expires_ms <= now {
            counters.incr(Stat::L2WritesDropped);
            return;
        }
        let record = layout::encode_record(&job.digest, job.negative, &job.value);
        if record.len() as u64 > self.low_water {
            counters.incr(Stat::L2WritesDropped);
            return;
        }
        match self.write_record(&job, &record, now) {
            Ok(()) => counters.incr(Stat::L2Writes),
            Err(fault) => {
                counters.incr(Stat::L2WritesDropped);
                self.shared.disable_l2(fault);
            }
        }
    }

    fn write_record(&mut self, job: &WriteJob, record: &[u8], now: u64) -> Result<(), DiskFault> {
        let key = job.digest.to_hex();
        // Replace, not append: drop the previous entry's bucket and content so
        // that rewriting a key neither grows its bucket nor orphans content.
        let previous = match self.entries.remove(&job.digest) {
            Some(entry) => {
                self.total_bytes = self.total_bytes.saturating_sub(entry.bytes);
                Some(entry.integrity)
            }
            None => cacache::metadata_sync(&self.dir, &key)
                .ok()
                .flatten()
                .map(|m| m.integrity),
        };
        if let Some(integrity) = previous {
            layout::remove_entry(&self.dir, &key, &integrity)
                .map_err(|(e, p)| io_fault(DiskOperation::Write, &e, &p))?;
        }
        let write = || {
            // No `size`: given one, cacache (with `mmap`) preallocates and
            // maps the temporary file, which measured slower than a plain
            // write for every value size up to its 1 MiB limit. The content
            // hash already covers truncation.
            let mut writer = WriteOpts::new()
                .algorithm(layout::ALGORITHM)
                .time(u128::from(now))
                .metadata(layout::meta_json(job.expires_ms, &job.method))
                .open_sync(&self.dir, &key)?;
            writer
                .write_all(record)
                .map_err(|e| cacache::Error::IoError(e, "writing a cache record".into()))?;
            writer.commit()
        };
        let integrity = layout::write_retrying_vanished(write)
            .map_err(|e| DiskFault::from_cacache(DiskOperation::Write, &e))?;
        let bucket_len =
            std::fs::metadata(layout::bucket_path(&self.dir, &key)).map_or(0, |m| m.len());
        let bytes = record.len() as u64 + bucket_len;
        self.entries.insert(
            job.digest,
            DiskEntry {
                integrity,
                bytes,
                written_ms: now,
                last_used_ms: now,
                expires_ms: job.expires_ms,
            },
        );
        self.total_bytes += bytes;
        Ok(())
    }

    fn invalidate(&mut self, target: &Target) {
        if self.shared.l2_state() != ACTIVE {
            self.dirty = true;
            return;
        }
        if let Err(fault) = self.remove_matching(target) {
            self.dirty = true;
            self.shared.disable_l2(fault);
        }
        self.publish_size();
    }

    /// Removes every entry `target` names, looking at the directory itself so
    /// that entries written by other processes are included.
    fn remove_matching(&mut self, target: &Target) -> Result<(), DiskFault> {
        let remove_fault = |(e, p): (io::Error, PathBuf)| io_fault(DiskOperation::Remove, &e, &p);
        if let Target::Key(digest) = target {
            let key = digest.to_hex();
            let integrity = match self.entries.remove(digest) {
                Some(entry) => {
                    self.total_bytes = self.total_bytes.saturating_sub(entry.bytes);
                    Some(entry.integrity)
                }
                None => cacache::metadata_sync(&self.dir, &key)
                    .map_err(|e| DiskFault::from_cacache(DiskOperation::Remove, &e))?
                    .map(|m| m.integrity),
            };
            if let Some(integrity) = integrity {
                layout::remove_entry(&self.dir, &key, &integrity).map_err(remove_fault)?;
            }
            return Ok(());
        }
        for meta in list(&self.dir)? {
            let matches = match target {
                Target::All => true,
                Target::Methods(methods) => layout::parse_meta(&meta.metadata)
                    .is_some_and(|m| methods.iter().any(|method| m.method == &**method)),
                Target::Key(_) => false,
            };
            if matches {
                layout::remove_entry(&self.dir, &meta.key, &meta.integrity)
                    .map_err(remove_fault)?;
                if let Some(digest) = KeyDigest::from_hex(&meta.key) {
                    self.forget(&digest);
                }
            }
        }
        if matches!(target, Target::All) {
            self.entries.clear();
            self.total_bytes = 0;
        }
        Ok(())
    }

    /// Removes expired entries, then the least recently used, until the
    /// directory holds at most `target` bytes (as far as this task knows).
    fn evict_to(&mut self, target: u64, now: u64) -> Result<u64, DiskFault> {
        let mut order: Vec<(bool, u64, KeyDigest)> = self
            .entries
            .iter()
            .map(|(digest, e)| {
                (
                    e.expires_ms > now,
                    e.last_used_ms.max(e.written_ms),
                    *digest,
                )
            })
            .collect();
        order.sort_unstable();
        let mut evicted = 0;
        for (live, _, digest) in order {
            if self.total_bytes <= target {
                break;
            }
            let Some(entry) = self.entries.remove(&digest) else {
                continue;
            };
            layout::remove_entry(&self.dir, &digest.to_hex(), &entry.integrity)
                .map_err(|(e, p)| io_fault(DiskOperation::Remove, &e, &p))?;
            self.total_bytes = self.total_bytes.saturating_sub(entry.bytes);
            if live {
                evicted += 1;
                self.shared.counters.incr(Stat::L2Evictions);
            } else {
                self.shared.counters.incr(Stat::L2Expirations);
            }
        }
        Ok(evicted)
    }

    /// A full pass over the directory: rebuilds what the task knows from disk,
    /// removes expired entries, broken and foreign entries, orphaned content,
    /// dead index buckets and abandoned temporary files, then evicts the least
    /// recently used entries while the directory is over budget.
    fn sweep(&mut self, now: u64) -> Result<SweepReport, DiskFault> {
        let grace = u64::try_from(ORPHAN_GRACE.as_millis()).unwrap_or(u64::MAX);
        let old = |mtime: u64| now.saturating_sub(mtime) > grace;
        let remove_fault = |(e, p): (io::Error, PathBuf)| io_fault(DiskOperation::Remove, &e, &p);
        let mut report = SweepReport::default();
        let mut total = 0u64;

        // Walk before listing: anything created after the walk is unknown to
        // it and therefore never treated as an orphan in this pass.
        let mut folders = Vec::new();
        let buckets = walk(&self.dir.join(INDEX_DIR), &mut folders)?;
        let contents = walk(&self.dir.join(CONTENT_DIR), &mut folders)?;
        for (path, file) in walk(&self.dir.join(TMP_DIR), &mut Vec::new())? {
            if old(file.mtime_ms) {
                layout::remove_file(&path)
                    .map_err(|e| io_fault(DiskOperation::Remove, &e, &path))?;
                report.orphans += 1;
            } else {
                total += file.len;
            }
        }

        let previous = mem::take(&mut self.entries);
        // `kept` holds the content and bucket paths of every entry that stays,
        // and of every entry removed here, so the orphan passes below skip them.
        let mut kept: HashSet<PathBuf> = HashSet::new();
        for meta in list(&self.dir)? {
            let bucket = layout::bucket_path(&self.dir, &meta.key);
            let content = layout::content_path(&self.dir, &meta.integrity);
            let written_ms = u64::try_from(meta.time).unwrap_or(u64::MAX);
            let content_len = contents
                .get(&content)
                .map(|f| f.len)
                .or_else(|| std::fs::metadata(&content).ok().map(|m| m.len()));
            let bucket_len = buckets.get(&bucket).map_or(0, |f| f.len);
            let ours = KeyDigest::from_hex(&meta.key).zip(layout::parse_meta(&meta.metadata));
            let verdict = match (content_len, ours) {
                // Content is written before its index entry: this one is broken.
                (None, _) => Verdict::Orphan,
                (Some(_), Some((_, entry))) if entry.expires_ms <= now => Verdict::Expired,
                (Some(content_len), Some((digest, entry))) => {
                    let last_used_ms = previous.get(&digest).map_or(written_ms, |e| e.last_used_ms);
                    self.entries.insert(
                        digest,
                        DiskEntry {
                            integrity: meta.integrity.clone(),
                            bytes: content_len + bucket_len,
                            written_ms,
                            last_used_ms,
                            expires_ms: entry.expires_ms,
                        },
                    );
                    Verdict::Keep
                }
                // Not written by this cache (or by another version of it): left
                // alone while young, since it may be another process's probe.
                (Some(_), None) if old(written_ms) => Verdict::Orphan,
                (Some(content_len), None) => {
                    total += content_len + bucket_len;
                    Verdict::Keep
                }
            };
            match verdict {
                Verdict::Keep => {}
                Verdict::Expired => {
                    layout::remove_entry(&self.dir, &meta.key, &meta.integrity)
                        .map_err(remove_fault)?;
                    report.expired += 1;
                }
                Verdict::Orphan => {
                    layout::remove_entry(&self.dir, &meta.key, &meta.integrity)
                        .map_err(remove_fault)?;
                    report.orphans += 1;
                }
            }
            kept.insert(content);
            kept.insert(bucket);
        }
        for (path, file) in contents
            .iter()
            .chain(buckets.iter())
            .filter(|(p, _)| !kept.contains(*p))
        {
            if !old(file.mtime_ms) {
                total += file.len;
            } else if layout::remove_file(path)
                .map_err(|e| io_fault(DiskOperation::Remove, &e, path))?
            {
                report.orphans += 1;
            }
        }
        // Empty folders: cacache never removes the two hash folders above
        // each entry, so without this every key ever written (and every
        // start-up probe) would leave up to two folders in each tree, for
        // every sweep to walk. Innermost first, each judged by its age at the
        // walk, so an old folder emptied here by removing an old one inside
        // it goes too. A young one may be another process's write in
        // progress and stays; one that is not empty fails to go.
        folders.sort_unstable_by_key(|(path, _)| std::cmp::Reverse(path.components().count()));
        for (path, mtime_ms) in &folders {
            if old(*mtime_ms) && std::fs::remove_dir(path).is_ok() {
                report.folders += 1;
            }
        }
        self.total_bytes = total + self.entries.values().map(|e| e.bytes).sum::<u64>();
        let counters = &self.shared.counters;
        counters.add(Stat::L2Expirations, report.expired);
        counters.add(Stat::L2Orphans, report.orphans);
        if self.total_bytes > self.budget {
            report.evicted = self.evict_to(self.low_water, now)?;
        }
        report.entries = self.entries.len() as u64;
        report.bytes = self.total_bytes;
        self.publish_size();
        self.swept = true;
        // Best effort: without the stamp, the next process sweeps again.
        if let Err(error) = write_stamp(&self.dir, now) {
            tracing::debug!(%error, "could not record the sweep's time");
        }
        tracing::debug!(?report, "disk cache swept");
        Ok(report)
    }
}

/// The time of the last sweep, from the stamp: only a small regular file
/// counts (not a link, a FIFO or anything else another user could put there).
fn read_stamp(path: &Path) -> Option<u64> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_file() || meta.len() > 32 {
        return None;
    }
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Records `now` as the time of the last sweep: written whole to a new file
/// in the temporary folder (never through a link), then renamed over the
/// stamp, so a reader sees the old time or the new one, never part of one.
/// A file left behind by a crash is swept from the temporary folder.
fn write_stamp(dir: &Path, now: u64) -> io::Result<()> {
    let tmp_dir = dir.join(TMP_DIR);
    std::fs::create_dir_all(&tmp_dir)?;
    let tmp = tmp_dir.join(format!("{SWEEP_STAMP}.{}.{now}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut file| file.write_all(now.to_string().as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, dir.join(SWEEP_STAMP)));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Writes, reads back and removes an entry with a unique key: proof that the
/// directory exists, is writable and readable, and has space.
fn probe(dir: &Path, now: u64) -> Result<(), DiskFault> {
    std::fs::create_dir_all(dir).map_err(|e| io_fault(DiskOperation::Open, &e, dir))?;
    // Unique per process and per probe: two caches in one process may share
    // a directory and probe it in the same millisecond.
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let n = PROBES.fetch_add(1, Ordering::Relaxed);
    let key = format!("pybridge-probe-{}-{n}-{now}", std::process::id());
    let fault = |e: cacache::Error| DiskFault::from_cacache(DiskOperation::Probe, &e);
    let integrity = layout::write_retrying_vanished(|| {
        cacache::write_sync_with_algo(layout::ALGORITHM, dir, &key, key.as_bytes())
    })
    .map_err(fault)?;
    let back = cacache::read_sync(dir, &key).map_err(fault)?;
    layout::remove_entry(dir, &key, &integrity)
        .map_err(|(e, p)| io_fault(DiskOperation::Probe, &e, &p))?;
    if back != key.as_bytes() {
        return Err(DiskFault::new(
            DiskOperation::Probe,
            io::ErrorKind::InvalidData,
            "probe entry read back differently",
        ));
    }
    Ok(())
}

fn io_fault(operation: DiskOperation, e: &io::Error, path: &Path) -> DiskFault {
    DiskFault::from_io(operation, e, path)
}

/// Every entry in the index; an index that does not exist yet is empty.
fn list(dir: &Path) -> Result<Vec<cacache::Metadata>, DiskFault> {
    if !dir.join(INDEX_DIR).exists() {
        return Ok(Vec::new());
    }
    let mut entries = Vec::new();
    for item in cacache::list_sync(dir) {
        match item {
            Ok(meta) => entries.push(meta),
            // A bucket removed while the walk ran.
            Err(cacache::Error::IoError(e, _)) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(DiskFault::from_cacache(DiskOperation::Sweep, &e)),
        }
    }
    Ok(entries)
}

enum Verdict {
    Keep,
    Expired,
    Orphan,
}

#[derive(Debug, Clone, Copy)]
struct FileInfo {
    len: u64,
    mtime_ms: u64,
}

/// Every regular file under `root`, recursively; a missing root is empty.
/// Every folder below `root` (not `root` itself) is added to `folders`
/// with its modification time in Unix milliseconds.
fn walk(
    root: &Path,
    folders: &mut Vec<(PathBuf, u64)>,
) -> Result<HashMap<PathBuf, FileInfo>, DiskFault> {
    let mut files = HashMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let read = match std::fs::read_dir(&dir) {
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_fault(DiskOperation::Sweep, &e, &dir)),
        };
        for item in read {
            let item = item.map_err(|e| io_fault(DiskOperation::Sweep, &e, &dir))?;
            let Ok(meta) = item.metadata() else { continue };
            let mtime_ms = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            if meta.is_dir() {
                folders.push((item.path(), mtime_ms));
                dirs.push(item.path());
            } else if meta.is_file() {
                files.insert(
                    item.path(),
                    FileInfo {
                        len: meta.len(),
                        mtime_ms,
                    },
                );
            }
        }
    }
    Ok(files)
}
