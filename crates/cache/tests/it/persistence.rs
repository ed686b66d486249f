//! Entries on disk outlive the cache instance that wrote them, and two
//! instances can share one directory.

use std::time::Duration;

use bytes::Bytes;
use pybridge_cache::{CachePolicy, Load, Source, Tiers};

use crate::support::{Boom, Runs, cache_on, far, get, key, policy};

#[tokio::test]
async fn a_new_instance_serves_what_an_old_one_wrote() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (k, runs) = (key("m", r#"{"q":"persist"}"#), Runs::default());
    {
        let first = cache_on(dir.path());
        get(&first, &k, &policy(Tiers::Both), &runs, "persisted").await;
        first.close().await;
    }
    let second = cache_on(dir.path());
    let fetched = get(&second, &k, &policy(Tiers::Both), &runs, "reloaded").await;
    assert_eq!(
        (fetched.source, &fetched.value[..]),
        (Source::L2, &b"persisted"[..])
    );
    assert_eq!(runs.count(), 1);
    let stats = second.stats();
    assert_eq!((stats.l2_hits, stats.loads), (1, 0));
}

#[tokio::test]
async fn two_live_instances_share_one_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (one, two) = (cache_on(dir.path()), cache_on(dir.path()));
    let runs = Runs::default();
    let (k1, k2) = (key("m", "1"), key("m", "2"));
    get(&one, &k1, &policy(Tiers::Both), &runs, "from one").await;
    get(&two, &k2, &policy(Tiers::Both), &runs, "from two").await;
    one.flush().await;
    two.flush().await;

    let seen_by_two = get(&two, &k1, &policy(Tiers::Both), &runs, "x").await;
    let seen_by_one = get(&one, &k2, &policy(Tiers::Both), &runs, "x").await;
    assert_eq!(
        (seen_by_two.source, &seen_by_two.value[..]),
        (Source::L2, &b"from one"[..])
    );
    assert_eq!(
        (seen_by_one.source, &seen_by_one.value[..]),
        (Source::L2, &b"from two"[..])
    );

    // An invalidation in one reaches the shared disk tier.
    one.invalidate(&k2).await;
    let after = get(
        &cache_on(dir.path()),
        &k2,
        &policy(Tiers::L2Only),
        &runs,
        "reloaded",
    )
    .await;
    assert_eq!(after.source, Source::Loader);
    assert_eq!(runs.count(), 3);
}

#[tokio::test]
async fn negative_results_persist_with_their_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut negative = CachePolicy::default();
    negative.negative_ttl = Some(Duration::from_secs(60));
    let k = key("m", "1");
    {
        let first = cache_on(dir.path());
        let fetched = first
            .get_or_load(&k, &negative, far(), || async {
                Ok::<_, Boom>(Load::Negative(Bytes::from_static(b"not found")))
            })
            .await
            .expect("no error");
        assert!(fetched.negative);
        first.close().await;
    }
    let second = cache_on(dir.path());
    let runs = Runs::default();
    let fetched = get(&second, &k, &negative, &runs, "x").await;
    assert_eq!(
        (fetched.source, fetched.negative, &fetched.value[..]),
        (Source::L2, true, &b"not found"[..])
    );
    assert_eq!(runs.count(), 0);
}
