//! Remote workers through the whole call path: configured by
//! `worker.connect` and `worker.secret_file`, beside a local worker; a
//! remote worker that dies under load costs no idempotent call.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::support::{bridge, eventually, python, python_env, sdk_config};

/// Starts the SDK's demo worker listening on `url` with the secret in
/// `secret_file`; returns it and the URL it listens on.
async fn listen(url: &str, secret_file: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(python())
        .args([
            "-m",
            "pybridge_worker",
            "--listen",
            url,
            "--max-concurrency",
            "4",
            "--secret-file",
        ])
        .arg(secret_file)
        .env_remove("PYBRIDGE_WORKER_SECRET")
        .envs(python_env())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(url) = line.split("listening on ").nth(1) {
                return url.trim().to_string();
            }
        }
        panic!("the listener ended before listening");
    })
    .await
    .expect("the listener starts in time");
    // Keep draining stderr so the listener never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, url)
}

fn remote_state(bridge: &pybridge::Bridge) -> Option<pybridge::pool::EndpointState> {
    bridge.health().pool.endpoints.first().map(|e| e.state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_worker_beside_a_local_one_dies_under_load_and_no_idempotent_call_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret for the tests\n").unwrap();
    let (listener, url) = listen("tcp://127.0.0.1:0", &secret).await;
    let port = url.rsplit(':').next().unwrap().to_string();

    let mut config = sdk_config();
    config
        .worker
        .command
        .extend(["--max-concurrency".into(), "4".into()]);
    config.worker.connect = vec![url.clone()];
    config.worker.secret_file = Some(secret.clone());
    config.pool.ping_interval = Duration::from_millis(200);
    config.pool.restart_backoff = Duration::from_millis(50);
    config.retry.max_retries = 5;
    config.retry.budget_ratio = 1.0;
    config.retry.budget_min_per_second = 100;
    let bridge = bridge(config).await;
    assert_eq!(bridge.health().pool.ready_workers, 2);

    let load: Vec<_> = (0..6)
        .map(|task| {
            let bridge = bridge.clone();
            tokio::spawn(async move {
                for i in 0..60 {
                    let params = json!({"ms": 5 + (task + i) % 3});
                    let result = bridge.call("test.sleep", params).await;
                    if let Err(err) = result {
                        panic!("an idempotent call was lost: {}", err.report());
                    }
                }
            })
        })
        .collect();
    eventually(Duration::from_secs(20), "the remote worker serves", || {
        bridge
            .health()
            .pool
            .workers
            .iter()
            .any(|w| w.remote && w.served > 5)
    })
    .await;
    drop(listener);
    eventually(Duration::from_secs(10), "the endpoint is unhealthy", || {
        remote_state(&bridge) == Some(pybridge::pool::EndpointState::Unhealthy)
    })
    .await;
    for task in load {
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the load finishes")
            .unwrap();
    }
    assert_eq!(
        bridge.health().status,
        pybridge::HealthStatus::Degraded,
        "a lost endpoint degrades the bridge"
    );

    let (_back, _) = listen(&format!("tcp://127.0.0.1:{port}"), &secret).await;
    eventually(
        Duration::from_secs(20),
        "the endpoint is dialled again",
        || remote_state(&bridge) == Some(pybridge::pool::EndpointState::Ready),
    )
    .await;
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_remote_worker_url_is_a_config_error_naming_the_key() {
    let mut config = sdk_config();
    config.worker.connect = vec!["http://127.0.0.1:1".into()];
    let err = config.validate().unwrap_err();
    assert_eq!(err.0, "worker.connect");
    assert!(err.1.contains("tcp://"), "{}", err.1);
}
