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

/// The `PYTHONPATH` under which the repository's Python packages (the
/// worker SDK and the reference framework) import without being installed.
pub(crate) fn python_path() -> String {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../python");
    std::env::join_paths([
        python.join("pybridge-worker/src"),
        python.join("sqlite-framework/src"),
    ])
    .expect("no separator in the package paths")
    .to_string_lossy()
    .into_owned()
}

/// Environment variables for Python workers: the packages on `PYTHONPATH`, and
/// bytecode cached under the target directory even where the environment
/// sets `PYTHONDONTWRITEBYTECODE` (recompiling the SDK at every start would
/// slow the replacement of killed workers, which the chaos tests time).
pub(crate) fn python_env() -> [(String, String); 3] {
    [
        ("PYTHONPATH".into(), python_path()),
        ("PYTHONDONTWRITEBYTECODE".into(), String::new()),
        (
            "PYTHONPYCACHEPREFIX".into(),
            concat!(env!("CARGO_TARGET_TMPDIR"), "/pycache").into(),
        ),
    ]
}

/// The SDK's demo worker: `python3 -m pybridge_worker`.
pub(crate) fn sdk_command() -> Vec<String> {
    vec![python(), "-m".into(), "pybridge_worker".into()]
}

/// The reference framework worker: `python3 -m sqlite_framework`.
pub(crate) fn framework_command() -> Vec<String> {
    vec![python(), "-m".into(), "sqlite_framework".into()]
}

/// A configuration running the SDK's demo worker (test.echo, test.sleep,
/// test.error), one worker, no disk cache, fast failure detection. Workers
/// get `PYTHONPATH` = [`python_path`], so a test may swap in any command
/// that imports the packages (fault workers, the framework).
pub(crate) fn sdk_config() -> Config {
    let mut config = Config::default();
    config.worker.command = sdk_command();
    config.worker.env.extend(python_env());
    config.pool.min_workers = 1;
    config.cache.disk = false;
    config.retry.initial_delay = Duration::from_millis(5);
    config.retry.max_delay = Duration::from_millis(50);
    config
}

/// A bridge on `fixtures/registry/calc_worker.py` (a worker of the user's
/// own, without the SDK), with `extra` arguments after the script.
pub(crate) fn calc_config(extra: &[&str]) -> Config {
    let mut config = Config::default();
    config.worker.command = vec![
        python(),
        fixtures()
            .join("registry/calc_worker.py")
            .display()
            .to_string(),
    ];
    config
        .worker
        .command
        .extend(extra.iter().map(|s| (*s).to_string()));
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
