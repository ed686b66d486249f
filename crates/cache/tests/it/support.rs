//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use pybridge_cache::{
    Cache, CacheBuilder, CacheEvent, CacheKey, CachePolicy, Fetched, Load, SweepReport, Tiers,
};
use tokio::sync::broadcast;
use tokio::time::Instant;

/// A loader error type; compared by pointer to prove it was shared.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Boom(pub &'static str);

/// A cache on `dir` with settings that keep tests quiet: no sweep unless the
/// test advances time by an hour.
pub(crate) fn cache_on(dir: &Path) -> Cache {
    builder_on(dir).build().expect("valid settings")
}

/// A cache on `dir` that sweeps every minute (its first sweep a second
/// after the start, when one is due), for the sweep's tests.
pub(crate) fn sweeping_cache_on(dir: &Path) -> Cache {
    builder_on(dir)
        .sweep_interval(Duration::from_secs(60))
        .build()
        .expect("valid settings")
}

pub(crate) fn builder_on(dir: &Path) -> CacheBuilder {
    CacheBuilder::new()
        .namespace("test")
        .l2_dir(dir)
        .sweep_interval(Duration::from_secs(3600))
}

pub(crate) fn memory_cache() -> Cache {
    CacheBuilder::new()
        .namespace("test")
        .memory_only()
        .build()
        .expect("valid settings")
}

pub(crate) fn key(method: &str, params: &str) -> CacheKey {
    CacheKey::new("test", method, params).expect("valid JSON")
}

pub(crate) fn policy(tiers: Tiers) -> CachePolicy {
    let mut policy = CachePolicy::with_ttl(Duration::from_secs(600));
    policy.tiers = tiers;
    policy
}

/// A deadline no test reaches: for calls whose deadline does not matter.
pub(crate) fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

/// Counts loader runs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Runs(Arc<AtomicUsize>);

impl Runs {
    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    pub(crate) fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs `get_or_load` with a loader that returns `value` and counts its runs.
pub(crate) async fn get(
    cache: &Cache,
    key: &CacheKey,
    policy: &CachePolicy,
    runs: &Runs,
    value: &'static str,
) -> Fetched {
    let runs = runs.clone();
    cache
        .get_or_load(key, policy, far(), || async move {
            runs.hit();
            Ok::<_, Boom>(Load::Value(Bytes::from_static(value.as_bytes())))
        })
        .await
        .expect("the loader does not fail")
}

/// Every regular file under `dir`, recursively, with its size.
pub(crate) fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    tree(dir).0
}

/// Every folder under `dir`, recursively.
pub(crate) fn folders(dir: &Path) -> Vec<PathBuf> {
    tree(dir).1
}

/// The regular files (with their sizes) and the folders under `dir`.
fn tree(dir: &Path) -> (Vec<(PathBuf, u64)>, Vec<PathBuf>) {
    let (mut files, mut folders) = (Vec::new(), Vec::new());
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(read) = std::fs::read_dir(&d) else {
            continue;
        };
        for item in read.flatten() {
            let meta = item.metadata().expect("metadata");
            if meta.is_dir() {
                stack.push(item.path());
                folders.push(item.path());
            } else {
                files.push((item.path(), meta.len()));
            }
        }
    }
    (files, folders)
}

/// The content files (cacache's `content-v2`) under `dir`.
pub(crate) fn content_files(dir: &Path) -> Vec<PathBuf> {
    files(&dir.join("content-v2"))
        .into_iter()
        .map(|(p, _)| p)
        .collect()
}

/// Waits (bounded) for the report of the first sweep that `accept` takes.
pub(crate) async fn next_sweep(
    events: &mut broadcast::Receiver<CacheEvent>,
    accept: impl Fn(&SweepReport) -> bool,
) -> SweepReport {
    next_event(events, |e| match e {
        CacheEvent::Swept(report) if accept(report) => Some(*report),
        _ => None,
    })
    .await
}

/// Waits (bounded) for the first event that `pick` accepts.
pub(crate) async fn next_event<T>(
    events: &mut broadcast::Receiver<CacheEvent>,
    mut pick: impl FnMut(&CacheEvent) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(t) = pick(&event) {
                        return t;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("event channel closed"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("event within 30 s")
}
