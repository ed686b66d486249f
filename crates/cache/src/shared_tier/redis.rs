//! The shared tier's Redis side: the read on the caller's path, the one task
//! that writes, deletes, publishes and probes, and the subscriber that hands
//! other processes' invalidations to the cache.
//!
//! Lock-free on the read path: a read loads the state, clones the connection
//! manager (an `Arc`) and waits at most its timeout. The state has one home
//! ([`Tier::transition`]); each change is an event, a log line and the state
//! gauge. The connection manager's own retries are cut to one: the tier's
//! breaker (failures in a row → off → background probe) replaces them, because
//! a frozen server would otherwise cost every call its full timeout.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout};

use super::message::{self, Invalidation};
use super::record::{self, Record};
use super::{
    SharedTierEvent, SharedTierStats, SharedTierStatus, TierCounters, TierSettings, TierStat,
    redact,
};
use crate::clock;
use crate::event::CacheEvent;
use crate::key::KeyDigest;
use crate::shared::Shared;
use crate::value::Stored;

const CONNECTING: u8 = 0;
const ACTIVE: u8 = 1;
const OFF: u8 = 2;
const CLOSED: u8 = 3;

/// Invalidations kept while they cannot be sent (tier off, or a burst);
/// beyond this they collapse into one "everything", which is always correct.
const PENDING_CAP: usize = 256;
/// Keys removed per `UNLINK` while a method or everything is invalidated.
const SCAN_BATCH: usize = 500;
/// Remote invalidations waiting for the cache to apply them.
const REMOTE_QUEUE: usize = 1024;

/// The write of an entry, run by Redis as one step: it sets the value (with
/// its TTL) and lists it in its method's index only if neither the
/// deployment's epoch nor the method's moved since the load's read.
/// KEYS: entry, method index, epochs hash. ARGV: record, TTL in ms, the
/// method's epoch field, the epochs read (deployment, method).
const WRITE_SCRIPT: &str = r"
local seen = redis.call('HMGET', KEYS[3], 'all', ARGV[3])
if (seen[1] or '0') ~= ARGV[4] or (seen[2] or '0') ~= ARGV[5] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
redis.call('PEXPIRE', KEYS[2], ARGV[2], 'NX')
redis.call('PEXPIRE', KEYS[2], ARGV[2], 'GT')
return 1
";

/// The deployment's and a method's invalidation epochs in Redis, as a read
/// saw them before its load ran. Every invalidation bumps the epoch of what
/// it covers (a key's bumps its method's) before it deletes anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Epochs {
    all: u64,
    method: u64,
}

/// What a read found.
#[derive(Debug)]
pub(crate) enum Read {
    /// A whole entry.
    Hit(Record),
    /// Nothing usable; the epochs a write of this key must still find, if
    /// Redis answered.
    Miss(Option<Epochs>),
}

/// What the subscriber hands to the cache.
#[derive(Debug)]
pub(crate) enum Remote {
    /// Another process invalidated this; apply it to memory and disk.
    Invalidate(Invalidation),
    /// Invalidations may have been missed: drop the memory tier, and the
    /// disk tier too when `disk` (a subscription that was lost and is back:
    /// whatever was published meanwhile never reached this process).
    Flush { disk: bool },
}

/// One entry to write.
#[derive(Debug)]
struct WriteJob {
    digest: KeyDigest,
    method: Arc<str>,
    method_tag: u64,
    record: Vec<u8>,
    ttl_ms: u64,
    epochs: Epochs,
}

#[derive(Debug)]
enum Job {
    Write(WriteJob),
    /// A reader found this entry corrupt.
    Delete(String),
}

/// The shared tier: owned by the cache; its tasks stop when it is dropped.
#[derive(Debug)]
pub(crate) struct SharedTier {
    tier: Arc<Tier>,
    tasks: Vec<JoinHandle<()>>,
}

#[derive(Debug)]
struct Tier {
    settings: TierSettings,
    /// `pybridge:<deployment>:`; every key starts with it.
    prefix: String,
    channel: String,
    /// `<prefix>epochs`: a hash of invalidation epochs, field `all` for the
    /// deployment and the method tag in hex for each method. Never deleted by
    /// an invalidation (a reset epoch could match a stale write again).
    epochs: String,
    /// This instance's nonce in every message it publishes.
    sender: u64,
    client: redis::Client,
    conn: Mutex<ConnectionManager>,
    state: AtomicU8,
    failures: AtomicU32,
    last_error: Mutex<String>,
    counters: TierCounters,
    shared: Arc<Shared>,
    jobs: mpsc::Sender<Job>,
    pending: Mutex<VecDeque<Invalidation>>,
    wake: Notify,
    remote: mpsc::Sender<Remote>,
}

impl Drop for SharedTier {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl SharedTier {
    /// Starts the tier's tasks. Nothing connects here: the writer task's first
    /// probe does, and until it answers reads skip the tier.
    ///
    /// # Errors
    ///
    /// The URL does not parse as a Redis URL.
    pub(crate) fn start(
        settings: TierSettings,
        shared: Arc<Shared>,
        runtime: &Handle,
    ) -> Result<(Self, mpsc::Receiver<Remote>), redis::RedisError> {
        let client = redis::Client::open(settings.url.as_str())?;
        let conn = manager(&client, &settings)?;
        let (jobs, jobs_rx) = mpsc::channel(settings.write_queue);
        let (remote, remote_rx) = mpsc::channel(REMOTE_QUEUE);
        let prefix = format!("pybridge:{}:", settings.deployment);
        let channel = format!("{prefix}invalidations");
        let epochs = format!("{prefix}epochs");
        let counters = TierCounters::new();
        counters.set_state(SharedTierStatus::Connecting);
        let tier = Arc::new(Tier {
            sender: nonce(),
            prefix,
            channel,
            epochs,
            client,
            conn: Mutex::new(conn),
            state: AtomicU8::new(CONNECTING),
            failures: AtomicU32::new(0),
            last_error: Mutex::new(String::new()),
            counters,
            shared,
            jobs,
            pending: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            remote,
            settings,
        });
        let tasks = vec![
            runtime.spawn(Arc::clone(&tier).run(jobs_rx)),
            runtime.spawn(Arc::clone(&tier).subscribe()),
        ];
        Ok((SharedTier { tier, tasks }, remote_rx))
    }

    pub(crate) fn status(&self) -> SharedTierStatus {
        self.tier.status()
    }

    pub(crate) fn stats(&self) -> SharedTierStats {
        self.tier.counters.snapshot()
    }

    pub(crate) fn count(&self, stat: TierStat) {
        self.tier.counters.incr(stat);
    }

    /// The entry for `digest`, if Redis has a whole one within the read
    /// timeout: the smaller of the configured maximum and what is left before
    /// `deadline`. Every failure is a miss. A miss carries the epochs read
    /// in the same round trip, for the write of what the loader produces.
    pub(crate) async fn read(
        &self,
        digest: &KeyDigest,
        method_tag: u64,
        deadline: Instant,
    ) -> Read {
        match self.read_entry(digest, method_tag, deadline).await {
            Ok(record) => Read::Hit(record),
            Err(epochs) => Read::Miss(epochs),
        }
    }

    async fn read_entry(
        &self,
        digest: &KeyDigest,
        method_tag: u64,
        deadline: Instant,
    ) -> Result<Record, Option<Epochs>> {
        let tier = &self.tier;
        let wait = tier
            .settings
            .max_read_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        if tier.state.load(Ordering::Acquire) != ACTIVE || wait.is_zero() {
            tier.counters.incr(TierStat::Skipped);
            return Err(None);
        }
        let name = tier.key_name(digest, method_tag);
        let mut conn = tier.conn();
        // The epochs first: whatever the loader then reads is at least as new
        // as they are. One pipeline, one round trip.
        let mut pipe = redis::pipe();
        pipe.cmd("HMGET")
            .arg(&tier.epochs)
            .arg("all")
            .arg(epoch_field(method_tag))
            .cmd("GET")
            .arg(&name);
        let reply = timeout(
            wait,
            pipe.query_async::<(Vec<Option<u64>>, Option<Vec<u8>>)>(&mut conn),
        )
        .await;
        let (seen, bytes) = match reply {
            Ok(Ok(reply)) => {
                tier.succeeded();
                reply
            }
            Ok(Err(e)) => {
                tier.failed(&format!("read: {e}"));
                return Err(None);
            }
            Err(_) => {
                tier.failed(&format!("read: no answer within {wait:?}"));
                return Err(None);
            }
        };
        let epochs = match seen[..] {
            [all, method] => Some(Epochs {
                all: all.unwrap_or(0),
                method: method.unwrap_or(0),
            }),
            _ => None,
        };
        let Some(bytes) = bytes else {
            tier.counters.incr(TierStat::Misses);
            return Err(epochs);
        };
        // An expired record is a miss before its value is read as JSON.
        let now_ms = clock::wall_ms();
        let record = match record::decode(Bytes::from(bytes), digest) {
            Some(record) if tier.shared.json_values && record.expires_ms > now_ms => {
                Stored::checked_json(&record.value.bytes).map(|value| Record { value, ..record })
            }
            decoded => decoded,
        };
        match record {
            Some(record) if record.expires_ms > now_ms => {
                tier.counters.incr(TierStat::Hits);
                Ok(record)
            }
            Some(_) => {
                tier.counters.incr(TierStat::Misses);
                Err(epochs)
            }
            // A record that fails its checks, or whose value is not JSON in
            // a cache of JSON values.
            None => {
                tier.counters.incr(TierStat::Corrupt);
                tier.counters.incr(TierStat::Misses);
                tracing::warn!(key = %digest, "corrupt shared cache entry; deleting it");
                tier.shared.emit(CacheEvent::SharedTier(
                    SharedTierEvent::CorruptEntryRemoved { key: *digest },
                ));
                // A full queue only delays the deletion: the entry is never
                // served, and it expires by its TTL.
                let _ = tier.jobs.try_send(Job::Delete(name));
                Err(epochs)
            }
        }
    }

    /// Queues a write that Redis applies only if `epochs` (read before the
    /// load) still hold; dropped (and counted) without them, when the tier
    /// is not active or the queue is full. Never waits.
    #[expect(
        clippy::too_many_arguments,
        reason = "the parts of one entry, passed through from the cache's store"
    )]
    pub(crate) fn write(
        &self,
        digest: &KeyDigest,
        method: &Arc<str>,
        method_tag: u64,
        negative: bool,
        ttl: Duration,
        value: &[u8],
        epochs: Option<Epochs>,
    ) {
        let tier = &self.tier;
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let Some(epochs) = epochs else {
            // The load's read never reached Redis: nothing says whether an
            // invalidation ran since, so the value may not be shared.
            tier.counters.incr(TierStat::WritesDropped);
            return;
        };
        if ttl_ms == 0 || tier.state.load(Ordering::Acquire) != ACTIVE {
            tier.counters.incr(TierStat::WritesDropped);
            return;
        }
        let expires_ms = clock::wall_ms().saturating_add(ttl_ms);
        let job = Job::Write(WriteJob {
            digest: *digest,
            method: Arc::clone(method),
            method_tag,
            record: record::encode(digest, negative, expires_ms, value),
            ttl_ms,
            epochs,
        });
        if tier.jobs.try_send(job).is_err() {
            tier.counters.incr(TierStat::WritesDropped);
        }
    }

    /// Deletes what `target` covers from Redis and publishes it to the other
    /// processes, in the background and in order with the writes queued
    /// before it. While the tier is off the invalidation is kept (a bounded
    /// list that collapses into "everything") and sent when it comes back.
    pub(crate) fn invalidate(&self, target: Invalidation) {
        self.tier.push_pending(target);
        self.tier.wake.notify_one();
    }

    /// Stops the tier's tasks; reads and writes skip it from now on.
    pub(crate) fn close(&self) {
        self.tier
            .transition(SharedTierStatus::Closed, "cache closed");
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn manager(client: &redis::Client, s: &TierSettings) -> redis::RedisResult<ConnectionManager> {
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(s.connect_timeout))
        .set_response_timeout(Some(s.write_timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(s.probe_interval);
    ConnectionManager::new_lazy_with_config(client.clone(), config)
}

/// A random-enough nonce without a random-number dependency: the process id,
/// the time, an address and a per-process count (two caches built in one
/// process at once must still tell each other's messages apart), hashed.
fn nonce() -> u64 {
    static BUILT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut hasher = blake3::Hasher::new();
    hasher.update(&BUILT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.update(&now.to_le_bytes());
    let local = 0_u8;
    hasher.update(&(std::ptr::addr_of!(local) as usize).to_le_bytes());
    let bytes = hasher.finalize();
    u64::from_le_bytes(bytes.as_bytes()[..8].try_into().expect("8 bytes of 32"))
}

/// A method's field in the epochs hash.
fn epoch_field(method_tag: u64) -> String {
    format!("{method_tag:016x}")
}

/// Escapes Redis glob characters, so a deployment name is matched literally.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Tier {
    fn status(&self) -> SharedTierStatus {
        match self.state.load(Ordering::Acquire) {
            CONNECTING => SharedTierStatus::Connecting,
            ACTIVE => SharedTierStatus::Active,
            OFF => SharedTierStatus::Off,
            _ => SharedTierStatus::Closed,
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.conn
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn key_name(&self, digest: &KeyDigest, method_tag: u64) -> String {
        format!("{}{method_tag:016x}:{}", self.prefix, digest.to_hex())
    }

    fn index_name(&self, method_tag: u64) -> String {
        format!("{}idx:{method_tag:016x}", self.prefix)
    }

    /// The one place the state changes. Returns whether it did.
    fn transition(&self, to: SharedTierStatus, reason: &str) -> bool {
        let code = match to {
            SharedTierStatus::Connecting => CONNECTING,
            SharedTierStatus::Active => ACTIVE,
            SharedTierStatus::Off => OFF,
            SharedTierStatus::NotConfigured | SharedTierStatus::Closed => CLOSED,
        };
        let before = self.state.swap(code, Ordering::AcqRel);
        if before == code {
            return false;
        }
        if before == CLOSED {
            // Closed is final.
            self.state.store(CLOSED, Ordering::Release);
            return false;
        }
        let from = match before {
            CONNECTING => SharedTierStatus::Connecting,
            ACTIVE => SharedTierStatus::Active,
            _ => SharedTierStatus::Off,
        };
        self.counters.set_state(to);
        let url = redact(&self.settings.url);
        match to {
            SharedTierStatus::Off => tracing::warn!(
                url,
                from = from.as_str(),
                reason,
                "shared cache tier off; serving from memory and disk, probing in the background"
            ),
            _ => tracing::info!(
                url,
                from = from.as_str(),
                to = to.as_str(),
                reason,
                "shared cache tier state changed"
            ),
        }
        self.shared
            .emit(CacheEvent::SharedTier(SharedTierEvent::StateChanged {
                from,
                to,
                reason: reason.to_owned(),
            }));
        true
    }

    fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
    }

    /// Counts a failure; the `failure_threshold`-th in a row turns the tier off.
    fn failed(&self, error: &str) {
        self.counters.incr(TierStat::Errors);
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = error.to_owned();
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        tracing::debug!(error, failures = n, "shared cache tier failure");
        if n >= self.settings.failure_threshold
            && self.state.load(Ordering::Acquire) == ACTIVE
            && self.transition(SharedTierStatus::Off, error)
        {
            self.wake.notify_one();
        }
    }

    fn push_pending(&self, target: Invalidation) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.front() == Some(&Invalidation::All) || pending.contains(&target) {
            return;
        }
        if target == Invalidation::All || pending.len() >= PENDING_CAP {
            pending.clear();
            pending.push_back(Invalidation::All);
            return;
        }
        pending.push_back(target);
    }

    fn take_pending(&self) -> Option<Invalidation> {
        self.pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    fn put_back(&self, target: Invalidation) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if pending.front() == Some(&Invalidation::All) {
            return;
        }
        if target == Invalidation::All {
            pending.clear();
        }
        pending.push_front(target);
    }

    /// The writer task: writes, deletes and invalidations while active;
    /// probes while not.
    async fn run(self: Arc<Self>, mut jobs: mpsc::Receiver<Job>) {
        loop {
            match self.state.load(Ordering::Acquire) {
                CLOSED => return,
                ACTIVE => {}
                _ => {
                    self.drop_queued(&mut jobs);
                    if !self.probe().await {
                        tokio::time::sleep(self.settings.probe_interval).await;
                    }
                    continue;
                }
            }
            if let Some(target) = self.take_pending() {
                self.apply_invalidation(target, &mut jobs).await;
                continue;
            }
            tokio::select! {
                biased;
                () = self.wake.notified() => {}
                job = jobs.recv() => match job {
                    Some(Job::Write(job)) => self.store(&job).await,
                    Some(Job::Delete(name)) => {
                        let _ = self.command(redis::cmd("UNLINK").arg(&name), "delete").await;
                    }
                    None => return,
                },
            }
        }
    }

    /// Writes queued before the tier went off would be stale by the time it
    /// comes back (invalidations may have run meanwhile): drop them.
    fn drop_queued(&self, jobs: &mut mpsc::Receiver<Job>) {
        while let Ok(job) = jobs.try_recv() {
            if matches!(job, Job::Write(_)) {
                self.counters.incr(TierStat::WritesDropped);
            }
        }
    }

    /// One PING on a fresh connection; on success the tier is active again,
    /// and the memory tier is flushed if it had been off (invalidations from
    /// other processes were not received meanwhile).
    async fn probe(&self) -> bool {
        let mut conn = self.conn();
        let wait = self.settings.connect_timeout + self.settings.write_timeout;
        let pong = timeout(wait, redis::cmd("PING").query_async::<String>(&mut conn)).await;
        match pong {
            Ok(Ok(_)) => {
                self.succeeded();
                let was_off = self.state.load(Ordering::Acquire) == OFF;
                if was_off {
                    self.flush(false).await;
                }
                self.transition(SharedTierStatus::Active, "redis answered");
                true
            }
            outcome => {
                let error = match outcome {
                    Ok(Err(e)) => format!("probe: {e}"),
                    _ => format!("probe: no answer within {wait:?}"),
                };
                self.counters.incr(TierStat::Errors);
                // A manager whose connection hangs (a frozen server) would
                // keep waiting on it: start the next probe on a new one.
                if let Ok(fresh) = manager(&self.client, &self.settings) {
                    *self.conn.lock().unwrap_or_else(PoisonError::into_inner) = fresh;
                }
                if self.state.load(Ordering::Acquire) == CONNECTING {
                    self.transition(SharedTierStatus::Off, &error);
                }
                false
            }
        }
    }

    /// Asks the cache to drop its memory tier (and its disk tier when
    /// `disk`). Waits only for the cache's applier, which never waits on Redis.
    /// The cache counts the flush once it is applied.
    async fn flush(&self, disk: bool) {
        // An error only means the cache is gone.
        let _ = self.remote.send(Remote::Flush { disk }).await;
    }

    /// Runs one command with the write timeout; counts success or failure.
    async fn command(&self, cmd: &redis::Cmd, what: &str) -> bool {
        let mut conn = self.conn();
        let reply = timeout(
            self.settings.write_timeout,
            cmd.query_async::<redis::Value>(&mut conn),
        )
        .await;
        self.settle(reply, what)
    }

    fn settle<T>(
        &self,
        reply: Result<redis::RedisResult<T>, tokio::time::error::Elapsed>,
        what: &str,
    ) -> bool {
        match reply {
            Ok(Ok(_)) => {
                self.succeeded();
                true
            }
            Ok(Err(e)) => {
                self.failed(&format!("{what}: {e}"));
                false
            }
            Err(_) => {
                self.failed(&format!(
                    "{what}: no answer within {:?}",
                    self.settings.write_timeout
                ));
                false
            }
        }
    }

    /// `SET` with the entry's TTL, and the key added to its method's index
    /// (which lives as long as its longest entry), in one script that first
    /// checks the load's epochs: a value loaded before an invalidation that
    /// Redis has seen is never written.
    async fn store(&self, job: &WriteJob) {
        let name = self.key_name(&job.digest, job.method_tag);
        let index = self.index_name(job.method_tag);
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(WRITE_SCRIPT)
            .arg(3)
            .arg(&name)
            .arg(&index)
            .arg(&self.epochs)
            .arg(&job.record[..])
            .arg(job.ttl_ms)
            .arg(epoch_field(job.method_tag))
            .arg(job.epochs.all)
            .arg(job.epochs.method);
        let mut conn = self.conn();
        let reply = timeout(
            self.settings.write_timeout,
            cmd.query_async::<i64>(&mut conn),
        )
        .await;
        let written = matches!(reply, Ok(Ok(1)));
        if self.settle(reply, "write") && written {
            self.counters.incr(TierStat::Writes);
        } else {
            self.counters.incr(TierStat::WritesDropped);
            if !written {
                tracing::debug!(
                    method = &*job.method,
                    "shared cache write refused: invalidated since its load started"
                );
            }
        }
        tracing::trace!(method = &*job.method, "shared cache write");
    }

    /// Deletes, then publishes. Writes still queued that the invalidation
    /// covers are dropped first: they were loaded before it.
    async fn apply_invalidation(&self, target: Invalidation, jobs: &mut mpsc::Receiver<Job>) {
        let mut keep = Vec::new();
        while let Ok(job) = jobs.try_recv() {
            match job {
                Job::Write(w) if target.covers(&w.digest, &w.method) => {
                    self.counters.incr(TierStat::WritesDropped);
                }
                job => keep.push(job),
            }
        }
        // The epochs first: from here on Redis refuses every write of a value
        // loaded before, and the deletion below removes those written before.
        let deleted = self.bump(&target).await
            && match &target {
                Invalidation::Key { digest, method_tag } => {
                    let name = self.key_name(digest, *method_tag);
                    self.command(redis::cmd("UNLINK").arg(&name), "invalidate")
                        .await
                }
                Invalidation::Methods(methods) => {
                    let mut deleted = true;
                    for method in methods.iter() {
                        let index = self.index_name(crate::key::method_tag(method));
                        if !self.delete_index(&index).await {
                            deleted = false;
                            break;
                        }
                    }
                    deleted
                }
                Invalidation::All => {
                    let pattern = format!("{}*", glob_escape(&self.prefix));
                    self.delete_matching(&pattern).await
                }
            };
        let published = deleted
            && self
                .command(
                    redis::cmd("PUBLISH")
                        .arg(&self.channel)
                        .arg(message::encode(self.sender, &target)),
                    "publish",
                )
                .await;
        if published {
            self.counters.incr(TierStat::Published);
        } else {
            self.put_back(target);
        }
        for job in keep {
            match job {
                Job::Write(w) => self.store(&w).await,
                Job::Delete(name) => {
                    let _ = self
                        .command(redis::cmd("UNLINK").arg(&name), "delete")
                        .await;
                }
            }
        }
    }

    /// Bumps the epochs `target` covers (a key's is its method's).
    async fn bump(&self, target: &Invalidation) -> bool {
        let mut pipe = redis::pipe();
        match target {
            Invalidation::Key { method_tag, .. } => {
                pipe.cmd("HINCRBY")
                    .arg(&self.epochs)
                    .arg(epoch_field(*method_tag))
                    .arg(1)
                    .ignore();
            }
            Invalidation::Methods(methods) => {
                for method in methods.iter() {
                    pipe.cmd("HINCRBY")
                        .arg(&self.epochs)
                        .arg(epoch_field(crate::key::method_tag(method)))
                        .arg(1)
                        .ignore();
                }
            }
            Invalidation::All => {
                pipe.cmd("HINCRBY")
                    .arg(&self.epochs)
                    .arg("all")
                    .arg(1)
                    .ignore();
            }
        }
        let mut conn = self.conn();
        let reply = timeout(
            self.settings.write_timeout,
            pipe.query_async::<()>(&mut conn),
        )
        .await;
        self.settle(reply, "invalidate")
    }

    /// Removes every key listed in a method's index, then the index.
    async fn delete_index(&self, index: &str) -> bool {
        let mut conn = self.conn();
        loop {
            let batch = timeout(
                self.settings.write_timeout,
                redis::cmd("SPOP")
                    .arg(index)
                    .arg(SCAN_BATCH)
                    .query_async::<Vec<String>>(&mut conn),
            )
            .await;
            let names = match batch {
                Ok(Ok(names)) => names,
                other => return self.settle(other, "invalidate method"),
            };
            if names.is_empty() {
                self.succeeded();
                return true;
            }
            if !self
                .command(redis::cmd("UNLINK").arg(&names), "invalidate method")
                .await
            {
                return false;
            }
        }
    }

    /// Removes every key matching `pattern` (the deployment's prefix).
    async fn delete_matching(&self, pattern: &str) -> bool {
        let mut conn = self.conn();
        let mut cursor: u64 = 0;
        loop {
            let page = timeout(
                self.settings.write_timeout,
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(SCAN_BATCH)
                    .query_async::<(u64, Vec<String>)>(&mut conn),
            )
            .await;
            let (next, mut names) = match page {
                Ok(Ok(page)) => page,
                other => return self.settle(other, "invalidate all"),
            };
            // The epochs outlive every invalidation (see `Tier::epochs`),
            // those of a deployment whose name extends ours included (the
            // pattern matches them too). No entry or index name ends so.
            names.retain(|name| !name.ends_with(":epochs"));
            if !names.is_empty()
                && !self
                    .command(redis::cmd("UNLINK").arg(&names), "invalidate all")
                    .await
            {
                return false;
            }
            if next == 0 {
                return true;
            }
            cursor = next;
        }
    }

    /// The subscriber task: (re)subscribes, flushes the memory tier each time
    /// (messages sent while it was not subscribed are lost), and hands other
    /// processes' invalidations to the cache.
    async fn subscribe(self: Arc<Self>) {
        let wait = self.settings.connect_timeout + self.settings.write_timeout;
        let mut first = true;
        loop {
            if self.state.load(Ordering::Acquire) == CLOSED {
                return;
            }
            let connected = timeout(wait, async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&self.channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            })
            .await;
            let pubsub = match connected {
                Ok(Ok(pubsub)) => pubsub,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "shared cache subscription failed");
                    tokio::time::sleep(self.settings.probe_interval).await;
                    continue;
                }
                Err(_) => {
                    tracing::debug!("shared cache subscription timed out");
                    tokio::time::sleep(self.settings.probe_interval).await;
                    continue;
                }
            };
            // The first subscription flushes memory only (what is on disk
            // from before this process is as it was without a shared tier);
            // every later one flushes disk too: messages were lost.
            self.flush(!first).await;
            first = false;
            tracing::info!(
                channel = self.channel,
                "shared cache invalidations subscribed"
            );
            self.shared
                .emit(CacheEvent::SharedTier(SharedTierEvent::Resubscribed));
            let mut messages = pubsub.into_on_message();
            while let Some(msg) = messages.next().await {
                let Ok(text) = std::str::from_utf8(msg.get_payload_bytes()) else {
                    continue;
                };
                match message::decode(text) {
                    Some((sender, _)) if sender == self.sender => {}
                    // The cache counts it once applied.
                    Some((_, target)) => {
                        if self.remote.send(Remote::Invalidate(target)).await.is_err() {
                            // The cache is gone.
                            return;
                        }
                    }
                    None => tracing::debug!(text, "unknown shared cache message ignored"),
                }
            }
            tracing::info!(
                channel = self.channel,
                "shared cache subscription lost; resubscribing"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
