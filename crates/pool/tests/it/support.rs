//! Helpers shared by the pool's integration tests.

use std::path::PathBuf;
use std::time::Duration;

use pybridge_pool::{Pool, PoolConfig, PoolConfigBuilder, PoolEvent, WorkerSpec};
use serde_json::value::RawValue;
use tokio::sync::broadcast;

pub(crate) fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

pub(crate) fn python() -> String {
    std::env::var("PYBRIDGE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The `PYTHONPATH` under which the worker SDK (`python/pybridge-worker`)
/// imports without being installed.
pub(crate) fn python_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../python/pybridge-worker/src")
}

/// Environment for Python workers: the packages on `PYTHONPATH`, and
/// bytecode cached under the target directory even where the environment
/// sets `PYTHONDONTWRITEBYTECODE` (recompiling the SDK at every start would
/// slow the replacement of killed workers, which the chaos tests time).
pub(crate) fn python_env(spec: WorkerSpec) -> WorkerSpec {
    spec.env("PYTHONPATH", python_path())
        .env("PYTHONDONTWRITEBYTECODE", "")
        .env(
            "PYTHONPYCACHEPREFIX",
            concat!(env!("CARGO_TARGET_TMPDIR"), "/pycache"),
        )
}

/// The SDK's demo worker (`python3 -m pybridge_worker`): test.echo,
/// test.sleep, test.error, test.pid.
pub(crate) fn sdk_worker() -> WorkerSpec {
    python_env(WorkerSpec::new(python()).args(["-m", "pybridge_worker"]))
}

/// A misbehaving worker from fixtures/faults.
pub(crate) fn fault_worker(mode: &str, flags: &[&str]) -> WorkerSpec {
    python_env(WorkerSpec::new(python()))
        .arg(fixtures().join("faults/fault_worker.py"))
        .args(["--mode", mode])
        .args(flags.iter().copied())
}

pub(crate) async fn start(
    spec: WorkerSpec,
    tune: impl FnOnce(PoolConfigBuilder) -> PoolConfigBuilder,
) -> Pool {
    let config: PoolConfig = tune(PoolConfig::builder(spec))
        .build()
        .expect("valid config");
    Pool::start(config).await.expect("pool starts")
}

pub(crate) fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_string()).expect("valid JSON")
}

pub(crate) fn value(raw: &RawValue) -> serde_json::Value {
    serde_json::from_str(raw.get()).expect("result is JSON")
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

/// Waits for the first event matching `pick`.
pub(crate) async fn next_event<T>(
    events: &mut broadcast::Receiver<PoolEvent>,
    within: Duration,
    mut pick: impl FnMut(&PoolEvent) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .expect("event arrives in time")
            .expect("event channel open");
        if let Some(found) = pick(&event) {
            return found;
        }
    }
}

/// Whether a process is still running (a zombie counts as gone).
pub(crate) fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next());
            state != Some("Z") && state != Some("X")
        }
        Err(_) => false,
    }
}

/// Whether any process is left in the process group led by `pid`.
pub(crate) fn group_alive(pid: u32) -> bool {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .any(|p| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
                return false;
            };
            let Some(rest) = stat.rsplit(')').next() else {
                return false;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // fields: state ppid pgrp ...
            fields.len() > 2 && fields[2] == pid.to_string() && fields[0] != "Z" && fields[0] != "X"
        })
}

pub(crate) fn worker_pids(pool: &Pool) -> Vec<u32> {
    pool.stats().workers.iter().map(|w| w.pid).collect()
}
