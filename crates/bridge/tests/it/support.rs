//! Helpers shared by the bridge's integration tests.

use std::path::PathBuf;
use std::time::Duration;

use pybridge::{Bridge, Config};

pub(crate) fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

pub(crate) fn python() -> String {
    std::env::var("PYBRIDGE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A configuration running the SDK's demo worker (test.echo, test.sleep,
/// test.error), one worker, no disk cache, fast failure detection.
pub(crate) fn sdk_config() -> Config {
    let mut config = Config::default();
    config.worker.command = vec![
        python(),
        fixtures()
            .join("worker/pybridge_worker.py")
            .display()
            .to_string(),
    ];
    config.pool.min_workers = 1;
    config.cache.disk = false;
    config.retry.initial_delay = Duration::from_millis(5);
    config.retry.max_delay = Duration::from_millis(50);
    config
}

pub(crate) async fn bridge(config: Config) -> Bridge {
    Bridge::from_config(config)
        .await
        .unwrap_or_else(|e| panic!("bridge starts: {}", e.report()))
}

/// Waits until `cond` holds, polling; panics with `what` after `within`.
pub(crate) async fn eventually(within: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn raw(json: &str) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(json.to_string()).expect("valid JSON")
}

pub(crate) fn served(bridge: &Bridge) -> u64 {
    bridge.health().pool.served
}
