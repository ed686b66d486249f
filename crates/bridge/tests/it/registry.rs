//! A user's own worker (`fixtures/registry/calc_worker.py`, no SDK) declares
//! its methods in its `$/ready` manifest; the registry turns that into
//! validation, retries, timeouts, caching and errors, with no catalog file.

use std::path::Path;
use std::time::{Duration, Instant};

use pybridge::{Bridge, CallOptions, ResultSource};
use serde_json::json;

use crate::support::{bridge, calc_config, eventually, fixtures, python, raw};

fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_params_of_a_declared_method_never_reach_the_worker() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    let bridge = bridge(calc_config(&["--log", log.to_str().unwrap()])).await;
    for params in [
        json!({"a": "one"}),
        json!({"a": 1, "c": 2}),
        json!({}),
        json!(["one"]),
        json!([1, 2, 3]),
    ] {
        let err = bridge.call("calc.add", params.clone()).await.unwrap_err();
        assert_eq!(
            err.kind(),
            pybridge::ErrorKind::InvalidParams,
            "{params}: {}",
            err.report()
        );
    }
    assert!(calls(&log).is_empty(), "the worker saw {:?}", calls(&log));
    assert_eq!(
        bridge
            .call("calc.add", json!({"a": 1, "b": 2}))
            .await
            .unwrap(),
        json!(3)
    );
    assert_eq!(
        bridge.call("calc.add", json!([4, 5])).await.unwrap(),
        json!(9)
    );
    assert_eq!(calls(&log), ["calc.add", "calc.add"]);
    let spec = bridge.catalog().get("calc.add").unwrap().clone();
    assert_eq!(spec.source(), "manifest:calc-worker");
    assert_eq!(spec.metric_label(), "calc.add");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_timeout_and_cache_ttl_apply() {
    let bridge = bridge(calc_config(&[])).await;
    let started = Instant::now();
    let err = bridge
        .call("calc.sleep", json!({"seconds": 5}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pybridge::ErrorKind::Timeout, "{}", err.report());
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    let first = bridge
        .call_with("calc.counter", None, &CallOptions::new())
        .await
        .unwrap();
    let second = bridge
        .call_with("calc.counter", None, &CallOptions::new())
        .await
        .unwrap();
    assert_eq!(first.source, ResultSource::Worker);
    assert_eq!(second.source, ResultSource::CacheMemory);
    assert_eq!(first.result.get(), second.result.get());
    bridge.shutdown().await;
}

/// Starts `method` (which hangs on the first worker), kills that worker once
/// the call is in flight, and returns the call's outcome.
async fn kill_during(
    bridge: &Bridge,
    method: &'static str,
    marker: &Path,
) -> pybridge::Result<serde_json::Value> {
    let pid = bridge.health().pool.workers[0].pid;
    let call = {
        let bridge = bridge.clone();
        tokio::spawn(async move { bridge.call(method, json!({})).await })
    };
    eventually(Duration::from_secs(5), "the call is in flight", || {
        bridge
            .health()
            .pool
            .workers
            .first()
            .is_some_and(|w| w.in_flight == 1)
    })
    .await;
    // The worker has the call, not just its frame: it made the marker.
    eventually(Duration::from_secs(5), "the worker runs the call", || {
        marker.exists()
    })
    .await;
    let pid = rustix::process::Pid::from_raw(pid as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::KILL).unwrap();
    call.await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_idempotent_method_is_retried_after_its_worker_dies() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("marker");
    let bridge = bridge(calc_config(&["--marker", marker.to_str().unwrap()])).await;
    let answer = kill_during(&bridge, "calc.slow_once", &marker)
        .await
        .unwrap();
    assert!(
        answer.as_str().unwrap().starts_with("answered by"),
        "{answer}"
    );
    assert!(bridge.stats().retries >= 1);
    bridge.shutdown().await;

    // The same hang in a method that does not say it is idempotent: no retry.
    std::fs::remove_file(&marker).unwrap();
    let bridge = bridge_again(&marker).await;
    let err = kill_during(&bridge, "calc.slow_once_unsafe", &marker)
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        pybridge::ErrorKind::WorkerFailed,
        "{}",
        err.report()
    );
    assert_eq!(bridge.stats().retries, 0);
    bridge.shutdown().await;
}

async fn bridge_again(marker: &Path) -> Bridge {
    bridge(calc_config(&["--marker", marker.to_str().unwrap()])).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_overrides_apply_to_worker_methods_and_unknown_names_are_refused() {
    let mut config = calc_config(&[]);
    let mut slow = pybridge::config::MethodSettings::default();
    slow.timeout = Some(Duration::from_millis(200));
    config.methods.insert("calc.slow".into(), slow);
    let bridge = bridge(config).await;
    let spec = bridge.catalog().get("calc.slow").unwrap().clone();
    assert_eq!(spec.timeout(), Some(Duration::from_millis(200)));
    assert_eq!(spec.sources().timeout, pybridge::FieldSource::Config);
    let err = bridge
        .call("calc.slow", json!({"seconds": 5}))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pybridge::ErrorKind::Timeout, "{}", err.report());
    bridge.shutdown().await;

    let mut config = calc_config(&[]);
    config.methods.insert(
        "calc.slwo".into(),
        pybridge::config::MethodSettings::default(),
    );
    let err = Bridge::from_config(config).await.unwrap_err();
    let report = err.report();
    assert!(report.contains("methods.\"calc.slwo\""), "{report}");
    assert!(report.contains("did you mean calc.slow"), "{report}");
}

// Relies on the framework's catalog (its policies or methods).
#[cfg(feature = "framework")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_unavailable_methods_are_method_not_found_with_close_names() {
    let bridge = bridge(calc_config(&[])).await;
    // Passed through to the worker, whose -32601 keeps its message and data.
    let err = bridge.call("calc.ad", json!({"a": 1})).await.unwrap_err();
    assert_eq!(err.kind(), pybridge::ErrorKind::MethodNotFound);
    let text = err.to_string();
    assert!(text.contains("Method not found: calc.ad"), "{text}");
    assert!(text.contains("did you mean calc.add?"), "{text}");
    let object = err.to_error_object();
    assert_eq!(object.code, pybridge::ErrorCode::METHOD_NOT_FOUND);
    let data: serde_json::Value = object.data_as().unwrap().unwrap();
    assert_eq!(
        data,
        json!({"worker": "calc-worker", "suggestions": ["calc.add"]})
    );

    // The worker's -32602 is invalid_params, with its message in Display.
    let err = bridge
        .call("calc.slow", json!({"seconds": "x"}))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        pybridge::ErrorKind::InvalidParams,
        "{}",
        err.report()
    );
    assert!(err.to_string().contains("bad params"), "{err}");

    // A framework catalog method this worker does not declare: unavailable,
    // named by its public name, never reaching the worker.
    let err = bridge
        .call_raw("getRecommendations", Some(&raw("{}")))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), pybridge::ErrorKind::MethodNotFound);
    let report = err.report();
    assert!(
        report.contains("pattern_learning.get_recommendations"),
        "{report}"
    );
    assert!(!report.contains(".claude_code"), "{report}");
    bridge.shutdown().await;
}

/// Two different workers behind one shared disk cache never answer for each
/// other; the same worker across bridges finds its own entry.
// Relies on the framework's catalog (its policies or methods).
#[cfg(feature = "framework")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_values_are_keyed_by_the_worker_that_produced_them() {
    let dir = tempfile::tempdir().unwrap();
    let with_cache = |extra: &[&str]| {
        let mut config = calc_config(extra);
        config.cache.disk = true;
        config.cache.dir = Some(dir.path().to_path_buf());
        config
    };
    let stats = |bridge: Bridge| async move {
        let value = bridge
            .call("pattern_learning.get_statistics", json!({}))
            .await
            .unwrap();
        bridge.shutdown().await;
        value["total_patterns"].clone()
    };
    // Manifest-less workers are told apart by their command.
    assert_eq!(
        stats(bridge(with_cache(&["--no-manifest", "--statistics", "1"])).await).await,
        json!(1)
    );
    assert_eq!(
        stats(bridge(with_cache(&["--no-manifest", "--statistics", "2"])).await).await,
        json!(2)
    );
    // Workers with manifests, by their manifest.
    assert_eq!(
        stats(bridge(with_cache(&["--statistics", "3"])).await).await,
        json!(3)
    );
    assert_eq!(
        stats(bridge(with_cache(&["--name", "other", "--statistics", "4"])).await).await,
        json!(4)
    );
    // The same worker again, in a new bridge: the disk tier answers.
    assert_eq!(
        stats(bridge(with_cache(&["--statistics", "3"])).await).await,
        json!(3)
    );
    let again = bridge(with_cache(&["--no-manifest", "--statistics", "1"])).await;
    let reply = again
        .call_with(
            "pattern_learning.get_statistics",
            Some(&raw("{}")),
            &CallOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(reply.source, ResultSource::CacheDisk);
    again.shutdown().await;
}

/// A worker on the SDK: the manifest comes from type hints and the
/// decorator's policy, and the bridge enforces both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_workers_type_hints_become_the_registrys_schema_and_policy() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("calls.log");
    let mut config = crate::support::sdk_config();
    config.worker.command = vec![
        python(),
        fixtures()
            .join("registry/typed_worker.py")
            .display()
            .to_string(),
        "--log".into(),
        log.display().to_string(),
    ];
    let bridge = bridge(config).await;
    let spec = bridge.catalog().get("geo.scale").unwrap().clone();
    assert_eq!(spec.source(), "manifest:typed-worker");
    assert!(spec.idempotent());
    assert_eq!(spec.timeout(), Some(Duration::from_secs(5)));
    assert_eq!(spec.cache().l1_ttl, Some(Duration::from_secs(600)));
    assert_eq!(
        spec.description(),
        Some("Scale a length by an integer factor.")
    );
    for params in [
        json!({}),
        json!({"x": "far"}),
        json!({"x": 1.5, "factor": 1.5}),
        json!({"x": 1, "unit": "mile"}),
        json!({"x": 1, "mode": "sideways"}),
        json!({"x": 1, "extra": true}),
    ] {
        let err = bridge.call("geo.scale", params.clone()).await.unwrap_err();
        assert_eq!(
            err.kind(),
            pybridge::ErrorKind::InvalidParams,
            "{params}: {}",
            err.report()
        );
    }
    assert!(calls(&log).is_empty(), "the worker saw {:?}", calls(&log));
    let value = bridge
        .call("geo.scale", json!({"x": 1.5, "unit": "ft", "note": null}))
        .await
        .unwrap();
    assert_eq!(value, json!(3.0));
    assert_eq!(calls(&log), ["geo.scale"]);
    bridge.shutdown().await;
}

/// An answer too large for either side's frame limit says which two
/// settings bound it, whichever side refused it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_too_large_names_both_frame_settings() {
    // The bridge's limit: the pool drops the frame.
    let mut config = calc_config(&[]);
    // Above the manifest (one frame too), below the answer.
    config.worker.max_frame = bytesize::ByteSize::kib(4);
    let first = bridge(config).await;
    let err = first
        .call("calc.big", json!({"n": 10000}))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        pybridge::ErrorKind::ResponseTooLarge,
        "{}",
        err.report()
    );
    let text = err.to_string();
    assert!(
        text.contains("`worker.max_frame`") && text.contains("`max_frame`"),
        "{text}"
    );
    first.shutdown().await;

    // The SDK's limit: the worker answers with an error instead.
    let mut config = crate::support::sdk_config();
    config.worker.command = vec![
        python(),
        fixtures()
            .join("registry/typed_worker.py")
            .display()
            .to_string(),
        "--max-frame".into(),
        "4096".into(),
    ];
    let bridge = bridge(config).await;
    let err = bridge
        .call("geo.big", json!({"n": 10000}))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        pybridge::ErrorKind::ResponseTooLarge,
        "{}",
        err.report()
    );
    let text = err.to_string();
    assert!(text.contains("response too large"), "{text}");
    assert!(
        text.contains("`worker.max_frame`") && text.contains("Worker(max_frame"),
        "{text}"
    );
    bridge.shutdown().await;
}
