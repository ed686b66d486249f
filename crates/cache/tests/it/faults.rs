//! Disk faults: corrupt entries are never served, and an unusable directory
//! turns the disk tier off (once, with an event) without failing any call.
//!
//! The unusable-directory tests do not rely on file permissions, which do not
//! stop root (CI containers often run as root): they use a cache directory
//! whose parent is a regular file (nothing can be created under it), and a
//! directory whose `tmp/` subdirectory (where cacache stages every write) has
//! been replaced by a regular file, which makes every write fail for any user,
//! as a read-only or full disk would.

use std::path::Path;
use std::time::Duration;

use pybridge_cache::{CacheEvent, Corruption, DiskOperation, L2Status, Source, Tiers};

use crate::support::{
    Runs, builder_on, cache_on, content_files, get, key, memory_cache, next_event, policy,
    sweeping_cache_on,
};

/// Writes one entry through a first cache, starts a second cache on the same
/// directory (so the entry is only in its disk tier), then damages the
/// entry's content file with `damage`, and reads it through the second cache.
async fn corrupt_entry_is_a_miss(damage: impl FnOnce(&Path), expected: Corruption) {
    let dir = tempfile::tempdir().expect("tempdir");
    let writer = cache_on(dir.path());
    get(
        &writer,
        &key("m", "1"),
        &policy(Tiers::Both),
        &Runs::default(),
        "the original value",
    )
    .await;
    writer.close().await;
    let cache = cache_on(dir.path());
    let mut events = cache.subscribe();
    // Past its start-up sweep, which would otherwise find some damage first.
    cache.flush().await;
    let contents = content_files(dir.path());
    assert_eq!(contents.len(), 1);
    let old_content = contents[0].clone();
    damage(&old_content);
    let runs = Runs::default();
    let fetched = get(&cache, &key("m", "1"), &policy(Tiers::Both), &runs, "fresh").await;
    assert_eq!(
        (fetched.source, &fetched.value[..]),
        (Source::Loader, &b"fresh"[..])
    );
    assert_eq!(cache.stats().l2_corrupt, 1);
    let kind = next_event(&mut events, |e| match e {
        CacheEvent::CorruptEntryRemoved { key: k, kind } if k == key("m", "1").digest() => {
            Some(*kind)
        }
        _ => None,
    })
    .await;
    assert_eq!(kind, expected);
    cache.flush().await;
    assert!(!old_content.exists(), "the damaged content was removed");
    assert!(
        cache.l2_status().is_active(),
        "corruption does not disable the tier"
    );

    // The fresh value replaced it on disk.
    let again = get(
        &cache_on(dir.path()),
        &key("m", "1"),
        &policy(Tiers::L2Only),
        &runs,
        "x",
    )
    .await;
    assert_eq!(
        (again.source, &again.value[..]),
        (Source::L2, &b"fresh"[..])
    );
}

#[tokio::test]
async fn flipped_bytes_are_never_served() {
    corrupt_entry_is_a_miss(
        |path| {
            let mut bytes = std::fs::read(path).expect("read");
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x01;
            std::fs::write(path, bytes).expect("write");
        },
        Corruption::IntegrityMismatch,
    )
    .await;
}

#[tokio::test]
async fn a_truncated_entry_is_never_served() {
    corrupt_entry_is_a_miss(
        |path| {
            let bytes = std::fs::read(path).expect("read");
            std::fs::write(path, &bytes[..bytes.len() - 3]).expect("write");
        },
        Corruption::IntegrityMismatch,
    )
    .await;
}

#[tokio::test]
async fn an_entry_whose_content_is_gone_is_a_miss() {
    corrupt_entry_is_a_miss(
        |path| std::fs::remove_file(path).expect("remove"),
        Corruption::MissingContent,
    )
    .await;
}

#[tokio::test]
async fn a_directory_that_cannot_be_created_leaves_the_cache_in_memory() {
    let parent = tempfile::NamedTempFile::new().expect("a regular file");
    let cache = builder_on(&parent.path().join("cache"))
        .build()
        .expect("building never fails on the disk");
    let mut events = cache.subscribe();
    let fault = next_event(&mut events, |e| match e {
        CacheEvent::DiskTierDisabled { fault } => Some(fault.clone()),
        _ => None,
    })
    .await;
    assert_eq!(fault.operation, DiskOperation::Open);
    assert!(matches!(cache.l2_status(), L2Status::Disabled(f) if f == fault));

    let (k, runs) = (key("m", "1"), Runs::default());
    assert_eq!(
        get(&cache, &k, &policy(Tiers::Both), &runs, "v")
            .await
            .source,
        Source::Loader
    );
    assert_eq!(
        get(&cache, &k, &policy(Tiers::Both), &runs, "v")
            .await
            .source,
        Source::L1
    );
    let disk_only = get(&cache, &key("m", "2"), &policy(Tiers::L2Only), &runs, "v").await;
    assert_eq!(
        disk_only.source,
        Source::Loader,
        "a disk-only method still works"
    );
    cache.flush().await;
    assert!(events.try_recv().is_err(), "one event only");
}

#[tokio::test(start_paused = true)]
async fn a_directory_that_stops_taking_writes_degrades_then_recovers_without_stale_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = sweeping_cache_on(dir.path());
    let mut events = cache.subscribe();
    let (a, b) = (key("m", "\"a\""), key("m", "\"b\""));
    get(&cache, &a, &policy(Tiers::Both), &Runs::default(), "old a").await;
    cache.flush().await;
    assert!(cache.l2_status().is_active());

    // Every write now fails, for any user.
    let tmp = dir.path().join("tmp");
    std::fs::remove_dir_all(&tmp).expect("remove tmp");
    std::fs::write(&tmp, b"not a directory").expect("write");

    let runs = Runs::default();
    let loaded = get(&cache, &b, &policy(Tiers::Both), &runs, "b").await;
    assert_eq!(loaded.source, Source::Loader);
    cache.flush().await;
    let fault = next_event(&mut events, |e| match e {
        CacheEvent::DiskTierDisabled { fault } => Some(fault.clone()),
        _ => None,
    })
    .await;
    assert_eq!(fault.operation, DiskOperation::Write);
    assert!(!cache.l2_status().is_active());

    // Calls keep working from memory; no further warnings.
    assert_eq!(
        get(&cache, &b, &policy(Tiers::Both), &runs, "b")
            .await
            .source,
        Source::L1
    );
    assert_eq!(
        get(&cache, &a, &policy(Tiers::L2Only), &runs, "new a")
            .await
            .source,
        Source::Loader
    );
    get(&cache, &key("m", "\"c\""), &policy(Tiers::Both), &runs, "c").await;
    cache.flush().await;
    assert!(cache.stats().l2_errors >= 1);

    // Invalidated while the disk is off: must not come back from disk later.
    cache.invalidate(&a).await;
    std::fs::remove_file(&tmp).expect("repair");
    tokio::time::advance(Duration::from_secs(61)).await;
    next_event(&mut events, |e| {
        matches!(e, CacheEvent::DiskTierRestored).then_some(())
    })
    .await;
    assert!(cache.l2_status().is_active());
    let a_again = get(&cache, &a, &policy(Tiers::L2Only), &runs, "newest a").await;
    assert_eq!(
        (a_again.source, &a_again.value[..]),
        (Source::Loader, &b"newest a"[..])
    );
    let disabled_events = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| matches!(e, CacheEvent::DiskTierDisabled { .. }))
        .count();
    assert_eq!(disabled_events, 0, "one warning per failure");
}

#[tokio::test]
async fn a_memory_only_cache_reports_no_disk_tier() {
    let cache = memory_cache();
    assert_eq!(cache.l2_status(), L2Status::NotConfigured);
    cache.flush().await;
    cache.close().await;
    assert_eq!(cache.l2_status(), L2Status::NotConfigured);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_caches_on_one_directory_write_and_remove_the_same_keys() {
    // As two processes would: each cache's disk task writes the same keys
    // (cacache makes an entry's two hash folders if they are missing, then
    // writes into them) and removes them, so each removes what the other
    // has just written and reads what the other has just removed. Neither
    // turns its disk tier off or drops a write for it.
    let dir = tempfile::tempdir().expect("tempdir");
    const ROUNDS: u64 = 300;
    let run = |cache: pybridge_cache::Cache| async move {
        let mut events = cache.subscribe();
        let disk = policy(Tiers::L2Only);
        for i in 0..ROUNDS {
            let k = key("m", &(i % 4).to_string());
            get(&cache, &k, &disk, &Runs::default(), "v").await;
            cache.flush().await;
            cache.invalidate(&k).await;
        }
        cache.flush().await;
        let disabled: Vec<CacheEvent> = std::iter::from_fn(|| events.try_recv().ok())
            .filter(|e| matches!(e, CacheEvent::DiskTierDisabled { .. }))
            .collect();
        (disabled, cache.stats().l2_writes_dropped, cache.l2_status())
    };
    let (a, b) = tokio::join!(
        tokio::spawn(run(cache_on(dir.path()))),
        tokio::spawn(run(cache_on(dir.path())))
    );
    for side in [a.expect("first cache"), b.expect("second cache")] {
        assert_eq!(side, (Vec::new(), 0, L2Status::Active));
    }
}
