//! The disk tier stays within its byte budget, evicting the least recently
//! used entries, and its sweeper removes orphaned files and empty folders.

use std::num::{NonZeroU64, NonZeroUsize};
use std::time::Duration;

use bytes::Bytes;
use pybridge_cache::{CacheEvent, Source, Tiers};

use crate::support::{
    Boom, Runs, builder_on, far, files, folders, get, key, next_sweep, policy, sweeping_cache_on,
};

const BUDGET: u64 = 256 * 1024;
const WRITES: usize = 10_000;

/// A temporary directory in memory where the platform has one: ten thousand
/// real file writes take minutes on a busy disk and seconds in tmpfs, and the
/// budget's accounting does not depend on the file system.
fn fast_tempdir() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::tempdir_in(shm)
    {
        return dir;
    }
    tempfile::tempdir().expect("tempdir")
}

#[tokio::test]
async fn the_byte_budget_holds_under_ten_thousand_writes() {
    let dir = fast_tempdir();
    let cache = builder_on(dir.path())
        .l2_max_bytes(NonZeroU64::new(BUDGET).expect("nonzero"))
        .write_queue_capacity(NonZeroUsize::new(WRITES).expect("nonzero"))
        .build()
        .expect("valid");
    let value = Bytes::from(vec![b'x'; 1000]);
    let both = policy(Tiers::Both);
    for i in 0..WRITES {
        let k = key("m", &i.to_string());
        let value = value.clone();
        cache
            .get_or_load(&k, &both, far(), || async move { Ok::<_, Boom>(value) })
            .await
            .expect("value");
        if i % 1000 == 999 {
            cache.flush().await;
            let used: u64 = files(dir.path()).iter().map(|(_, len)| len).sum();
            assert!(
                used <= BUDGET,
                "{used} bytes on disk after {} writes",
                i + 1
            );
        }
    }
    cache.flush().await;
    let used: u64 = files(dir.path()).iter().map(|(_, len)| len).sum();
    assert!(used <= BUDGET, "{used} bytes on disk, budget {BUDGET}");
    let stats = cache.stats();
    assert_eq!(stats.l2_writes, WRITES as u64, "no write was dropped");
    assert!(
        stats.l2_evictions >= (WRITES as u64) - BUDGET / 1000,
        "{stats:?}"
    );
    assert!(
        stats.l2_bytes <= BUDGET && stats.l2_bytes > BUDGET / 2,
        "{stats:?}"
    );

    // The newest entries survived, the oldest were evicted.
    let disk_only = policy(Tiers::L2Only);
    let newest = get(
        &cache,
        &key("m", &(WRITES - 1).to_string()),
        &disk_only,
        &Runs::default(),
        "x",
    )
    .await;
    assert_eq!(newest.source, Source::L2);
    let oldest = get(&cache, &key("m", "0"), &disk_only, &Runs::default(), "x").await;
    assert_eq!(oldest.source, Source::Loader);
}

#[tokio::test(start_paused = true)]
async fn eviction_spares_recently_read_entries() {
    let dir = fast_tempdir();
    let cache = builder_on(dir.path())
        .l2_max_bytes(NonZeroU64::new(64 * 1024).expect("nonzero"))
        .build()
        .expect("valid");
    let disk_only = policy(Tiers::L2Only);
    let value = Bytes::from(vec![b'y'; 1000]);
    let (hot, cold) = (key("m", "\"hot\""), key("m", "\"cold\""));
    for k in [&hot, &cold] {
        let value = value.clone();
        cache
            .get_or_load(k, &disk_only, far(), || async move { Ok::<_, Boom>(value) })
            .await
            .expect("value");
    }
    // Four times the budget in other entries, reading the hot one as we go.
    for i in 0..256 {
        tokio::time::advance(Duration::from_millis(10)).await;
        let value = value.clone();
        cache
            .get_or_load(
                &key("m", &i.to_string()),
                &disk_only,
                far(),
                || async move { Ok::<_, Boom>(value) },
            )
            .await
            .expect("value");
        cache.flush().await;
        let runs = Runs::default();
        let read = get(&cache, &hot, &disk_only, &runs, "reloaded").await;
        assert_eq!(
            read.source,
            Source::L2,
            "the hot entry was evicted after {i} writes"
        );
    }
    let runs = Runs::default();
    assert_eq!(
        get(&cache, &cold, &disk_only, &runs, "reloaded")
            .await
            .source,
        Source::Loader
    );
    assert!(cache.stats().l2_evictions > 0);
}

#[tokio::test(start_paused = true)]
async fn the_sweeper_removes_orphaned_files_and_keeps_live_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = sweeping_cache_on(dir.path());
    let mut events = cache.subscribe();
    let long = pybridge_cache::CachePolicy::with_ttl(Duration::from_secs(24 * 3600));
    let live = key("m", "1");
    get(&cache, &live, &long, &Runs::default(), "live").await;
    cache.flush().await;
    // The first sweep runs a second after the start; the stamp it leaves is
    // a file of the directory too.
    tokio::time::advance(Duration::from_secs(2)).await;
    next_sweep(&mut events, |_| true).await;
    let before = files(dir.path()).len();

    // Content no index entry points to; a temporary file left by a crash; a
    // dead index bucket (its only entry deleted) and its content; an entry
    // that is not the cache's.
    cacache::write_hash_sync(dir.path(), b"orphan content").expect("write");
    std::fs::write(dir.path().join("tmp").join("abandoned"), b"partial").expect("write");
    cacache::write_sync(dir.path(), "deleted-key", b"deleted content").expect("write");
    cacache::remove_sync(dir.path(), "deleted-key").expect("remove");
    cacache::write_sync(dir.path(), "foreign-key", b"foreign content").expect("write");
    assert_eq!(files(dir.path()).len(), before + 6);

    // Young files are left alone: they may be another process's write in progress.
    tokio::time::advance(Duration::from_secs(61)).await;
    let young = next_sweep(&mut events, |report| report.entries > 0).await;
    assert_eq!(young.orphans, 0);
    assert_eq!(files(dir.path()).len(), before + 6);

    tokio::time::advance(Duration::from_secs(11 * 60)).await;
    let report = next_sweep(&mut events, |report| report.orphans > 0).await;
    assert_eq!(
        (
            report.orphans,
            report.expired,
            report.evicted,
            report.entries
        ),
        (5, 0, 0, 1),
        "{report:?}"
    );
    assert_eq!(files(dir.path()).len(), before);
    assert_eq!(cache.stats().l2_orphans_removed, 5);
    let again = get(
        &cache,
        &live,
        &policy(Tiers::L2Only),
        &Runs::default(),
        "reloaded",
    )
    .await;
    assert_eq!((again.source, &again.value[..]), (Source::L2, &b"live"[..]));
}

/// The hash folders of the index and content trees: every folder below
/// `index-v5` and below `content-v2/<algorithm>`.
fn hash_folders(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut all = folders(&dir.join("index-v5"));
    for algorithm in folders(&dir.join("content-v2")) {
        if algorithm.parent() == Some(&dir.join("content-v2")) {
            all.extend(folders(&algorithm));
        }
    }
    all
}

#[tokio::test(start_paused = true)]
async fn the_sweep_removes_the_folders_removed_entries_leave_once_they_are_old() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = sweeping_cache_on(dir.path());
    let mut events = cache.subscribe();
    let long = pybridge_cache::CachePolicy::with_ttl(Duration::from_secs(24 * 3600));
    for i in 0..20 {
        get(
            &cache,
            &key("m", &i.to_string()),
            &long,
            &Runs::default(),
            "v",
        )
        .await;
    }
    cache.flush().await;
    // Each key has its own two hash folders in each tree (two keys share
    // one with a chance of 1 in 256 per pair).
    let written = hash_folders(dir.path()).len();
    assert!(written >= 40, "{:?}", hash_folders(dir.path()));
    cache.invalidate_all().await;
    cache.flush().await;
    assert!(files(&dir.path().join("index-v5")).is_empty());
    // Folders left by another version or a crash.
    for folder in ["index-v5/ab/cd", "content-v2/xxh3/ef/01", "index-v5/12"] {
        std::fs::create_dir_all(dir.path().join(folder)).expect("mkdir");
    }
    let left = hash_folders(dir.path()).len();
    assert!(left >= written, "{left} folders left, {written} written");

    // Young empty folders may be another process's write in progress: they stay.
    tokio::time::advance(Duration::from_secs(2)).await;
    let young = next_sweep(&mut events, |_| true).await;
    assert_eq!(young.folders, 0, "{young:?}");
    assert_eq!(hash_folders(dir.path()).len(), left);

    // Old ones go, innermost first, with the algorithm's folder, empty now.
    tokio::time::advance(Duration::from_secs(11 * 60)).await;
    let report = next_sweep(&mut events, |report| report.folders > 0).await;
    assert_eq!(report.folders, left as u64 + 1, "{report:?}");
    assert_eq!(hash_folders(dir.path()), Vec::<std::path::PathBuf>::new());
    assert_eq!(
        folders(&dir.path().join("content-v2")),
        Vec::<std::path::PathBuf>::new()
    );
    // The tier still works: cacache makes the folders again as it writes.
    get(&cache, &key("m", "99"), &long, &Runs::default(), "v").await;
    cache.flush().await;
    let read = get(
        &cache,
        &key("m", "99"),
        &policy(Tiers::L2Only),
        &Runs::default(),
        "reloaded",
    )
    .await;
    assert_eq!(read.source, Source::L2);
}

fn swept(events: &mut tokio::sync::broadcast::Receiver<CacheEvent>) -> usize {
    std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, CacheEvent::Swept(_)))
        .count()
}

#[tokio::test(start_paused = true)]
async fn the_first_sweep_is_deferred_and_done_once_per_interval_across_caches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let long = pybridge_cache::CachePolicy::with_ttl(Duration::from_secs(24 * 3600));
    let cache_on = || sweeping_cache_on(dir.path());

    // Nobody swept this directory: a cache that closes before its deferred
    // first sweep sweeps as it closes, and says when.
    let first = cache_on();
    let mut events = first.subscribe();
    get(&first, &key("m", "1"), &long, &Runs::default(), "v").await;
    first.flush().await;
    assert_eq!(swept(&mut events), 0, "no sweep before the first call");
    first.close().await;
    assert_eq!(swept(&mut events), 1, "a sweep on close");
    assert!(dir.path().join("last-sweep").is_file());

    // Within the interval, another cache on the directory sweeps neither
    // after its start nor on close; its reads work at once.
    let second = cache_on();
    let mut events = second.subscribe();
    let read = get(
        &second,
        &key("m", "1"),
        &policy(Tiers::L2Only),
        &Runs::default(),
        "reloaded",
    )
    .await;
    assert_eq!(read.source, Source::L2);
    tokio::time::advance(Duration::from_secs(2)).await;
    second.flush().await;
    second.close().await;
    assert_eq!(swept(&mut events), 0, "swept within the interval already");

    // Past the interval, a new cache's first sweep runs a second after its start.
    tokio::time::advance(Duration::from_secs(60)).await;
    let third = cache_on();
    let mut events = third.subscribe();
    third.flush().await;
    assert_eq!(swept(&mut events), 0);
    tokio::time::advance(Duration::from_secs(2)).await;
    let report = next_sweep(&mut events, |_| true).await;
    assert_eq!(report.entries, 1, "{report:?}");
    third.close().await;
}

#[tokio::test(start_paused = true)]
async fn the_sweep_stamp_replaces_a_link_and_never_writes_through_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().join("precious");
    std::fs::write(&target, "keep me").expect("write");
    std::os::unix::fs::symlink(&target, dir.path().join("last-sweep")).expect("symlink");

    // A link is no stamp: the sweep is due, and runs on close.
    let cache = sweeping_cache_on(dir.path());
    let mut events = cache.subscribe();
    cache.close().await;
    assert_eq!(swept(&mut events), 1, "the link did not count as a stamp");
    assert_eq!(
        std::fs::read_to_string(&target).expect("read"),
        "keep me",
        "nothing was written through the link"
    );
    let stamp = std::fs::symlink_metadata(dir.path().join("last-sweep")).expect("stamp");
    assert!(stamp.is_file(), "the stamp is a file of its own now");
}
