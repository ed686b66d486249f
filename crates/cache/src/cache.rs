//! The cache handle: the read path (memory, disk, shared tier, loader),
//! single-flight, stores, invalidation, stats and events.

mod tier;

use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use serde_json::value::RawValue;
use tokio::sync::{RwLock, broadcast};
use tokio::time::Instant;

use crate::LoadError;
use crate::clock;
use crate::disk::{Disk, Target, WriteJob};
use crate::event::{CacheEvent, L2Status};
use crate::flight::{Flights, Outcome, Role};
use crate::key::{CacheKey, JsonText, KeyDigest, NamespaceKey, method_tag};
use crate::l1::{L1, L1Entry};
use crate::policy::CachePolicy;
use crate::shared::Shared;
use crate::stats::{CacheStats, Stat};
use crate::value::{Json, Stored};

/// What a loader produces: a value to return and cache, or a negative result
/// (the encoded form of an error the caller wants remembered for a while).
///
/// A negative result is stored only when the policy sets a
/// [`negative_ttl`](CachePolicy::negative_ttl), and comes back marked
/// [`Fetched::negative`]. An `Err` from the loader is never stored.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Load {
    /// A result to cache under the policy's TTLs.
    Value(Bytes),
    /// A negative result to cache under the policy's `negative_ttl`.
    Negative(Bytes),
    /// A result that is JSON, already checked: cached under the policy's
    /// TTLs like [`Load::Value`], and handed out again as checked JSON
    /// ([`Fetched::json`]) without being read again.
    Json(Box<RawValue>),
}

impl Load {
    fn into_parts(self) -> (Stored, bool) {
        match self {
            Load::Value(b) => (Stored::bytes(b), false),
            Load::Negative(b) => (Stored::bytes(b), true),
            Load::Json(json) => (Stored::json(json), false),
        }
    }

    fn text(&self) -> (&[u8], bool) {
        match self {
            Load::Value(b) => (b, false),
            Load::Negative(b) => (b, true),
            Load::Json(json) => (json.get().as_bytes(), false),
        }
    }
}

/// Two loads are equal when they would cache the same bytes the same way.
impl PartialEq for Load {
    fn eq(&self, other: &Self) -> bool {
        self.text() == other.text()
    }
}

impl Eq for Load {}

impl From<Bytes> for Load {
    fn from(value: Bytes) -> Self {
        Load::Value(value)
    }
}

impl From<Vec<u8>> for Load {
    fn from(value: Vec<u8>) -> Self {
        Load::Value(Bytes::from(value))
    }
}

impl From<Box<RawValue>> for Load {
    fn from(value: Box<RawValue>) -> Self {
        Load::Json(value)
    }
}

/// Which tier answered a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Source {
    /// Memory.
    L1,
    /// Disk (and the value was promoted to memory if the policy uses it).
    L2,
    /// The shared tier on Redis (and the value was put in memory if the
    /// policy uses it).
    Shared,
    /// The loader ran (for this caller or for the caller it waited on).
    Loader,
}

impl Source {
    /// `l1`, `l2`, `shared` or `loader`, for span fields and labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Source::L1 => "l1",
            Source::L2 => "l2",
            Source::Shared => "shared",
            Source::Loader => "loader",
        }
    }
}

/// The answer to [`Cache::get_or_load`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Fetched {
    /// The value (shared, never copied per caller).
    pub value: Bytes,
    /// Which tier answered.
    pub source: Source,
    /// Whether this is a negative result (see [`Load::Negative`]).
    pub negative: bool,
    /// Whether this caller waited on a load started by another caller.
    pub coalesced: bool,
    /// `value` as checked JSON, when it is (see [`Fetched::json`]).
    json: Option<Json>,
}

impl Fetched {
    pub(crate) fn new(stored: Stored, source: Source, negative: bool) -> Self {
        Fetched {
            value: stored.bytes,
            source,
            negative,
            coalesced: false,
            json: stored.json,
        }
    }

    /// The value as JSON the cache has checked: a [`Load::Json`], or, in a
    /// cache built with [`json_values`](crate::CacheBuilder::json_values),
    /// any value read back from disk or the shared tier. The same text as
    /// [`Fetched::value`]; `None` for other values.
    #[must_use]
    pub fn json(&self) -> Option<&RawValue> {
        self.json.as_deref().map(|json| &**json)
    }
}

/// Two answers are equal when they carry the same bytes from the same place
/// in the same way (the JSON view is the same text).
impl PartialEq for Fetched {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
            && self.source == other.source
            && self.negative == other.negative
            && self.coalesced == other.coalesced
    }
}

impl Eq for Fetched {}

/// A two-tier cache of byte values: moka in memory, cacache on disk.
///
/// A cheap handle: clones share one cache. Build it with
/// [`CacheBuilder`](crate::CacheBuilder). The disk task stops when the last
/// handle is dropped (after finishing queued writes) or on [`Cache::close`].
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    l1: L1,
    l1_capacity: u64,
    flights: Flights,
    /// Bumped by every invalidation. A load stores its result only if no
    /// invalidation ran since it started, so a value read before an
    /// invalidation can never be stored after it.
    epoch: AtomicU64,
    /// Invalidations being applied right now. No load stores while one is:
    /// a load that starts during one may read an entry it has not removed
    /// yet (from disk, after its memory copy is gone) and would put it back
    /// in memory for good.
    invalidating: AtomicU64,
    /// Makes "check the epoch, then store" atomic with respect to "bump the
    /// epoch": stores share it, invalidations take it alone.
    store_gate: RwLock<()>,
    shared: Arc<Shared>,
    disk: Option<Disk>,
    namespace: Arc<str>,
    /// The namespace, hashed once for all keys.
    namespace_key: NamespaceKey,
    /// The first subscriber gets this receiver, which has seen every event
    /// since the cache was built (start-up failures of the disk tier included).
    first_events: Mutex<Option<broadcast::Receiver<CacheEvent>>>,
    tier: tier::Attached,
}

/// How a leader's turn ended.
enum Led<E> {
    /// An outcome for every caller of the flight: a value, or the loader's
    /// own failure.
    Shared(Result<Fetched, Arc<E>>),
    /// An end that belongs to the leader alone: its deadline passed. The
    /// flight is handed over; the leader's caller gets the loader's error if
    /// there is one, else [`LoadError::DeadlineExceeded`].
    GaveUp(Option<LoadError<E>>),
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("namespace", &self.inner.namespace)
            .field("l1_capacity", &self.inner.l1_capacity)
            .field("l2_dir", &self.inner.disk.as_ref().map(Disk::dir))
            .field("l2", &self.inner.shared.l2_status())
            .finish_non_exhaustive()
    }
}

impl Cache {
    pub(crate) fn from_parts(
        l1: L1,
        l1_capacity: u64,
        shared: Arc<Shared>,
        disk: Option<Disk>,
        namespace: Arc<str>,
        tier: tier::Parts,
    ) -> Self {
        let first_events = Mutex::new(Some(shared.subscribe()));
        let cache = Cache {
            inner: Arc::new(Inner {
                tier: tier::attach(tier),
                l1,
                l1_capacity,
                flights: Flights::default(),
                epoch: AtomicU64::new(0),
                invalidating: AtomicU64::new(0),
                store_gate: RwLock::new(()),
                shared,
                disk,
                namespace_key: NamespaceKey::new(&namespace),
                namespace,
                first_events,
            }),
        };
        // Only once the cache exists: the applier holds it weakly, and a
        // weak reference taken while it is built does not upgrade yet.
        tier::start(&cache.inner);
        cache
    }

    /// A key in this cache's namespace (see [`CacheKey::new`]). The key
    /// keeps the method name: given as an `Arc<str>`, it is shared, not
    /// copied.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParams`](crate::Error::InvalidParams) if `params` is not JSON.
    pub fn key<M, P>(&self, method: M, params: &P) -> crate::Result<CacheKey>
    where
        M: Into<Arc<str>>,
        P: JsonText + ?Sized,
    {
        CacheKey::in_namespace(&self.inner.namespace_key, method.into(), params)
    }

    /// The namespace given to the builder.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// Returns the cached value for `key`, or runs `load` once for all
    /// concurrent callers of that key and caches its result under `policy`;
    /// returns by `deadline` in any case.
    ///
    /// The read path is memory, then disk (a disk hit is promoted to memory for
    /// the rest of its disk TTL, capped at the memory TTL), then the loader.
    /// The disk tier never makes a call fail: its errors are misses.
    ///
    /// Single-flight: the first caller to miss leads and runs its `load`;
    /// callers that miss while it runs wait for its outcome, each until its own
    /// `deadline`. Every caller that waited on one load gets its value or its
    /// error (the same `Arc`). An end that belongs to the leader alone is not
    /// shared: its deadline passing while it reads the disk or runs its
    /// loader, a loader error returned at or after that deadline, or its
    /// future being dropped. The cache tells these apart by itself, from the
    /// leader's deadline, never by reading the error. The waiters then start
    /// over, and one that still has time runs its own `load`.
    ///
    /// A memory hit is returned even when `deadline` has passed; no disk read
    /// or load starts after it. A value loaded after its leader's deadline is
    /// still returned, shared and stored.
    ///
    /// # Errors
    ///
    /// - [`LoadError::Loader`]: the loader's error, shared by every caller that
    ///   waited on it (a leader whose deadline had passed keeps its loader's
    ///   error to itself).
    /// - [`LoadError::DeadlineExceeded`]: `deadline` passed while this caller
    ///   waited on another caller's load, read the disk, or ran its own
    ///   loader (which is then dropped).
    pub async fn get_or_load<F, Fut, V, E>(
        &self,
        key: &CacheKey,
        policy: &CachePolicy,
        deadline: Instant,
        load: F,
    ) -> Result<Fetched, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        V: Into<Load>,
        E: Send + Sync + 'static,
    {
        self.get_or_load_at(key, policy, Instant::now(), deadline, load)
            .await
    }

    /// [`Cache::get_or_load`] for a caller that has just read the clock:
    /// `now` judges whether the memory entry has expired, so that a hit
    /// reads the clock no more (each reading costs tens of nanoseconds on a
    /// virtual machine, a few per cent of a hit). An entry is served for at
    /// most the time since `now` past its TTL; a caller that read the clock
    /// long before should call [`Cache::get_or_load`].
    ///
    /// # Errors
    ///
    /// As [`Cache::get_or_load`].
    pub async fn get_or_load_at<F, Fut, V, E>(
        &self,
        key: &CacheKey,
        policy: &CachePolicy,
        now: Instant,
        deadline: Instant,
        load: F,
    ) -> Result<Fetched, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        V: Into<Load>,
        E: Send + Sync + 'static,
    {
        // The slow paths are boxed: their futures (disk, shared tier, the
        // loader's own) are large, and a hit should not build or move them.
        if !policy.enabled {
            return Box::pin(self.inner.bypass(deadline, load)).await;
        }
        if policy.tiers.l1()
            && let Some(hit) = self.inner.l1_get(key.digest(), now).await
        {
            return Ok(hit);
        }
        Box::pin(self.inner.load_slow(key, policy, deadline, load)).await
    }

    /// Removes `key` from both tiers. When this returns, no caller gets the old
    /// value from this cache, and a load that was running is not stored.
    ///
    /// With a shared tier, the key is also deleted from Redis and the
    /// invalidation published to every other process (in the background).
    pub async fn invalidate(&self, key: &CacheKey) {
        self.inner
            .invalidate_local(&Target::Key(*key.digest()))
            .await;
        self.inner.tier.publish_key(key);
    }

    /// Removes every entry of `method` (in any namespace) from both tiers,
    /// and with a shared tier from Redis and every other process.
    pub async fn invalidate_method(&self, method: &str) {
        self.invalidate_methods([method]).await;
    }

    /// Removes every entry of each of `methods` as one invalidation: what a
    /// write made stale. Other processes receive it as one message, so one
    /// that has applied it has dropped the entries of all of them (several
    /// [`Cache::invalidate_method`] calls arrive, and are applied, one by
    /// one). Nothing happens when `methods` is empty.
    pub async fn invalidate_methods<I, S>(&self, methods: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut list: Vec<Arc<str>> = Vec::new();
        for method in methods {
            let method = method.as_ref();
            if !list.iter().any(|m| &**m == method) {
                list.push(Arc::from(method));
            }
        }
        if list.is_empty() {
            return;
        }
        let methods: Arc<[Arc<str>]> = list.into();
        self.inner
            .invalidate_local(&Target::Methods(Arc::clone(&methods)))
            .await;
        self.inner.tier.publish_methods(methods);
    }

    /// Removes everything from both tiers, and with a shared tier everything
    /// of this deployment from Redis and every other process.
    pub async fn invalidate_all(&self) {
        self.inner.invalidate_local(&Target::All).await;
        self.inner.tier.publish_all();
    }

    /// Counters and sizes so far.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        self.inner
            .shared
            .counters
            .snapshot(self.inner.l1.weighted_size(), self.inner.l1.entry_count())
    }

    /// The state of the disk tier.
    #[must_use]
    pub fn l2_status(&self) -> L2Status {
        self.inner.shared.l2_status()
    }

    /// Subscribes to cache events. The channel is bounded: a receiver that
    /// falls behind skips the oldest events. The first subscriber also gets
    /// the events published since the cache was built.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<CacheEvent> {
        let first = self
            .inner
            .first_events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        first.unwrap_or_else(|| self.inner.shared.subscribe())
    }

    /// Runs moka's pending maintenance now (evictions, expirations and the
    /// counts in [`Cache::stats`] are otherwise applied lazily).
    pub async fn run_pending_tasks(&self) {
        self.inner.l1.run_pending_tasks().await;
    }

    /// Waits until every disk write and invalidation queued so far is done.
    pub async fn flush(&self) {
        if let Some(disk) = &self.inner.disk {
            disk.flush().await;
        }
    }

    /// Finishes queued disk work and stops the disk task. The cache keeps
    /// working from memory; its disk tier reports [`L2Status::Closed`].
    pub async fn close(&self) {
        if let Some(disk) = &self.inner.disk {
            disk.close().await;
        }
        self.inner.tier.close();
    }
}

impl Inner {
    /// Applies an invalidation to this process's memory and disk tiers.
    async fn invalidate_local(&self, target: &Target) {
        let _applying = self.begin_invalidation().await;
        match target {
            Target::Key(digest) => self.l1.invalidate(digest).await,
            Target::Methods(methods) => {
                let tags: Vec<u64> = methods.iter().map(|m| method_tag(m)).collect();
                let doomed: Vec<Arc<KeyDigest>> = self
                    .l1
                    .iter()
                    .filter(|(_, entry)| tags.contains(&entry.method_tag))
                    .map(|(key, _)| key)
                    .collect();
                for key in doomed {
                    self.l1.invalidate(&*key).await;
                }
            }
            Target::All => self.l1.invalidate_all(),
        }
        if let Some(disk) = &self.disk {
            disk.invalidate(target.clone()).await;
        }
    }

    #[inline]
    async fn l1_get(&self, digest: &KeyDigest, now: Instant) -> Option<Fetched> {
        let entry = self.l1.get(digest).await?;
        if entry.expires_at <= now {
            return None;
        }
        self.shared.counters.incr(Stat::L1Hits);
        Some(Fetched::new(entry.value, Source::L1, entry.negative))
    }

    async fn bypass<F, Fut, V, E>(
        &self,
        deadline: Instant,
        load: F,
    ) -> Result<Fetched, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        V: Into<Load>,
    {
        let started = Instant::now();
        let counters = &self.shared.counters;
        counters.incr(Stat::Bypassed);
        if started >= deadline {
            return Err(self.out_of_time(started, false));
        }
        counters.incr(Stat::Loads);
        match tokio::time::timeout_at(deadline, load()).await {
            Ok(Ok(v)) => {
                let (value, negative) = v.into().into_parts();
                Ok(Fetched::new(value, Source::Loader, negative))
            }
            Ok(Err(e)) => {
                counters.incr(Stat::LoadErrors);
                Err(LoadError::Loader(Arc::new(e)))
            }
            Err(_elapsed) => Err(self.out_of_time(started, false)),
        }
    }

    /// The error of a caller whose deadline passed, counted.
    fn out_of_time<E>(&self, started: Instant, coalesced: bool) -> LoadError<E> {
        self.shared.counters.incr(Stat::DeadlineExceeded);
        LoadError::DeadlineExceeded {
            elapsed: started.elapsed(),
            coalesced,
        }
    }

    #[inline(never)]
    async fn load_slow<F, Fut, V, E>(
        &self,
        key: &CacheKey,
        policy: &CachePolicy,
        deadline: Instant,
        load: F,
    ) -> Result<Fetched, LoadError<E>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        V: Into<Load>,
        E: Send + Sync + 'static,
    {
        let started = Instant::now();
        let digest = *key.digest();
        loop {
            if Instant::now() >= deadline {
                return Err(self.out_of_time(started, false));
            }
            let epoch = self.epoch.load(Ordering::Acquire);
            match self.flights.join(digest, epoch) {
                Role::Leader(leader) => {
                    return match self.lead(key, policy, epoch, deadline, load).await {
                        Led::Shared(result) => {
                            leader.finish(match &result {
                                Ok(fetched) => Outcome::Done(fetched.clone()),
                                Err(e) => {
                                    Outcome::Failed(Arc::clone(e) as Arc<dyn Any + Send + Sync>)
                                }
                            });
                            result.map_err(LoadError::Loader)
                        }
                        Led::GaveUp(error) => {
                            leader.abandon();
                            tracing::debug!(
                                method = key.method(),
                                "cache load given up at the leader's deadline; a waiter takes over"
                            );
                            Err(error.unwrap_or_else(|| self.out_of_time(started, false)))
                        }
                    };
                }
                Role::Waiter(mut rx) => {
                    let outcome =
                        match tokio::time::timeout_at(deadline, rx.wait_for(Option::is_some)).await
                        {
                            Ok(seen) => seen.ok().and_then(|v| v.clone()),
                            // Only this caller leaves; the load goes on for the others.
                            Err(_elapsed) => return Err(self.out_of_time(started, true)),
                        };
                    match outcome {
                        Some(Outcome::Done(fetched)) => {
                            let counters = &self.shared.counters;
                            counters.incr(Stat::Coalesced);
                            match fetched.source {
                                Source::L1 => counters.incr(Stat::L1Hits),
                                Source::L2 => counters.incr(Stat::L2Hits),
                                Source::Shared => self.tier.count_hit(),
                                Source::Loader => counters.incr(Stat::Misses),
                            }
                            return Ok(Fetched {
                                coalesced: true,
                                ..fetched
                            });
                        }
                        Some(Outcome::Failed(error)) => {
                            if let Ok(error) = error.downcast::<E>() {
                                self.shared.counters.incr(Stat::Coalesced);
                                self.shared.counters.incr(Stat::Misses);
                                return Err(LoadError::Loader(error));
                            }
                            // The leader's loader failed with another error
                            // type; this caller loads for itself.
                        }
                        // The leader gave up (its deadline passed, or it was
                        // dropped) and left no outcome; start over.
                        None => {}
                    }
                    if policy.tiers.l1()
                        && let Some(hit) = self.l1_get(&digest, Instant::now()).await
                    {
                        return Ok(hit);
                    }
                }
            }
        }
    }

    /// The leader's part: memory again, disk, then the loader, each cut off at
    /// the leader's deadline.
    async fn lead<F, Fut, V, E>(
        &self,
        key: &CacheKey,
        policy: &CachePolicy,
        epoch: u64,
        deadline: Instant,
        load: F,
    ) -> Led<E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, E>>,
        V: Into<Load>,
    {
        let digest = *key.digest();
        // A flight for this key may have finished between our miss and our
        // taking the lead.
        if policy.tiers.l1()
            && let Some(hit) = self.l1_get(&digest, Instant::now()).await
        {
            return Led::Shared(Ok(hit));
        }
        if policy.tiers.l2()
            && let Some(disk) = &self.disk
        {
            let Ok(read) = tokio::time::timeout_at(deadline, disk.read(digest)).await else {
                return Led::GaveUp(None);
            };
            if let Some(hit) = read {
                self.shared.counters.incr(Stat::L2Hits);
                if policy.tiers.l1() {
                    let remaining =
                        Duration::from_millis(hit.expires_ms.saturating_sub(clock::wall_ms()));
                    let ttl = if hit.negative {
                        policy.negative_ttl.unwrap_or(policy.l1_ttl)
                    } else {
                        policy.l1_ttl
                    };
                    self.store_l1(key, epoch, &hit.value, hit.negative, ttl.min(remaining))
                        .await;
                }
                return Led::Shared(Ok(Fetched::new(hit.value, Source::L2, hit.negative)));
            }
        }
        // The shared tier's read waits at most its own timeout, cut to what
        // is left before the leader's deadline.
        let fence = match self.shared_read(key, policy, epoch, deadline).await {
            tier::SharedRead::Hit(hit) => return Led::Shared(Ok(hit)),
            tier::SharedRead::Miss(fence) => fence,
        };
        let counters = &self.shared.counters;
        counters.incr(Stat::Misses);
        counters.incr(Stat::Loads);
        // Only the loader is cut off at the deadline: a value it produced is
        // stored and shared even if the deadline passes while storing it.
        match tokio::time::timeout_at(deadline, load()).await {
            Ok(Ok(v)) => {
                let (value, negative) = v.into().into_parts();
                self.store(key, policy, (epoch, fence), &value, negative)
                    .await;
                tracing::trace!(
                    method = key.method(),
                    bytes = value.len(),
                    negative,
                    "cache loaded"
                );
                Led::Shared(Ok(Fetched::new(value, Source::Loader, negative)))
            }
            Ok(Err(e)) => {
                counters.incr(Stat::LoadErrors);
                let error = Arc::new(e);
                // A loader that bounds itself by the caller's deadline (the
                // bridge's does) fails at that deadline with an error of its
                // own. The cache does not read the error to tell: whatever
                // failed at or after the leader's deadline is the leader's.
                if Instant::now() >= deadline {
                    Led::GaveUp(Some(LoadError::Loader(error)))
                } else {
                    Led::Shared(Err(error))
                }
            }
            Err(_elapsed) => Led::GaveUp(None),
        }
    }

    /// Stores a loaded value, unless an invalidation ran since its load
    /// started: `epoch` is this process's at the start, `fence` what the
    /// shared tier's were (Redis refuses the write if another process
    /// invalidated meanwhile).
    async fn store(
        &self,
        key: &CacheKey,
        policy: &CachePolicy,
        (epoch, fence): (u64, tier::Fence),
        value: &Stored,
        negative: bool,
    ) {
        let (l1_ttl, l2_ttl) = match (negative, policy.negative_ttl) {
            (false, _) => (policy.l1_ttl, policy.l2_ttl),
            (true, Some(ttl)) => (ttl, ttl),
            (true, None) => return,
        };
        if value.len() > policy.max_entry_bytes {
            self.shared.counters.incr(Stat::Oversized);
            return;
        }
        let _gate = self.store_gate.read().await;
        if !self.may_store(epoch) {
            self.shared.counters.incr(Stat::InvalidatedDuringLoad);
            return;
        }
        if policy.tiers.l1() {
            self.insert_l1(key, value, negative, l1_ttl).await;
        }
        if policy.tiers.l2()
            && !l2_ttl.is_zero()
            && let Some(disk) = &self.disk
        {
            let ttl_ms = u64::try_from(l2_ttl.as_millis()).unwrap_or(u64::MAX);
            disk.write(WriteJob {
                digest: *key.digest(),
                method: Arc::clone(key.method_arc()),
                value: value.bytes.clone(),
                negative,
                expires_ms: clock::wall_ms().saturating_add(ttl_ms),
            });
        }
        let shared_ttl = if policy.tiers.l2() { l2_ttl } else { l1_ttl };
        self.tier
            .write(key, &value.bytes, negative, shared_ttl, fence);
    }

    async fn store_l1(
        &self,
        key: &CacheKey,
        epoch: u64,
        value: &Stored,
        negative: bool,
        ttl: Duration,
    ) {
        let _gate = self.store_gate.read().await;
        if self.may_store(epoch) {
            self.insert_l1(key, value, negative, ttl).await;
        }
    }

    async fn insert_l1(&self, key: &CacheKey, value: &Stored, negative: bool, ttl: Duration) {
        // An entry larger than the whole tier would only evict everything else.
        if ttl.is_zero() || L1Entry::weight(value.len()) > self.l1_capacity {
            return;
        }
        let Some(expires_at) = Instant::now().checked_add(ttl) else {
            return;
        };
        let entry = L1Entry {
            value: value.clone(),
            expires_at,
            ttl,
            negative,
            method_tag: key.method_tag(),
        };
        self.l1.insert(*key.digest(), entry).await;
    }

    /// Cancels the stores of loads running now (the memory-only flush).
    #[cfg(feature = "redis")]
    async fn bump_epoch(&self) {
        let _gate = self.store_gate.write().await;
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether a load that started at `epoch` may store: no invalidation
    /// started since, and none is being applied. Called under the store gate.
    fn may_store(&self, epoch: u64) -> bool {
        // `invalidating` first: an end seen here has bumped the epoch before.
        self.invalidating.load(Ordering::SeqCst) == 0 && self.epoch.load(Ordering::SeqCst) == epoch
    }

    /// Starts applying an invalidation; it ends when the guard is dropped
    /// (also if the caller is cancelled half-way).
    async fn begin_invalidation(&self) -> Invalidating<'_> {
        let _gate = self.store_gate.write().await;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.invalidating.fetch_add(1, Ordering::SeqCst);
        Invalidating(self)
    }
}

/// An invalidation being applied ([`Inner::begin_invalidation`]).
struct Invalidating<'a>(&'a Inner);

impl Drop for Invalidating<'_> {
    fn drop(&mut self) {
        // No gate needed: a store that checks before this sees the
        // invalidation in progress, one that checks after sees a new epoch.
        self.0.epoch.fetch_add(1, Ordering::SeqCst);
        self.0.invalidating.fetch_sub(1, Ordering::SeqCst);
    }
}
