//! The facade's promises: a cheap shareable handle, serializable snapshots,
//! the registry without the layers, and the test hooks of `test-util`.

use std::time::Duration;

use pybridge::{Bridge, HealthStatus};
use serde_json::json;

use crate::support::{bridge, eventually, sdk_config};

#[test]
fn the_handles_are_cheap_to_share_between_tasks() {
    fn shareable<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    shareable::<Bridge>();
    fn error<T: std::error::Error + Send + Sync + 'static>() {}
    error::<pybridge::Error>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_stats_serialize_to_what_the_gateway_serves() {
    let bridge = bridge(sdk_config()).await;
    bridge.call("test.echo", json!([1])).await.unwrap();
    let health = serde_json::to_value(bridge.health()).unwrap();
    assert_eq!(health["status"], "healthy", "{health}");
    assert_eq!(
        health["workers"].as_array().map(Vec::len),
        Some(1),
        "{health}"
    );
    assert_eq!(health["workers"][0]["state"], "ready", "{health}");
    assert_eq!(
        health["cache_shared"]["state"], "not_configured",
        "{health}"
    );
    let stats = serde_json::to_value(bridge.stats()).unwrap();
    assert_eq!(stats["calls"], 1, "{stats}");
    assert_eq!(stats["succeeded"], 1, "{stats}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_lists_the_worker_s_methods_and_their_openrpc_document() {
    let bridge = bridge(sdk_config()).await;
    let echo = bridge
        .catalog()
        .get("test.echo")
        .expect("declared by the worker");
    assert!(echo.available());
    let manifest = bridge.manifest().expect("the demo worker sends one");
    assert_eq!(manifest["name"], "pybridge-demo", "{manifest}");
    let document = pybridge::openrpc::document(bridge.catalog());
    let names: Vec<&str> = document["methods"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(names.contains(&"test.sleep"), "{names:?}");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_is_replaced_and_calls_go_on() {
    let bridge = bridge(sdk_config()).await;
    let before: i64 = bridge.call_as("test.pid", &()).await.unwrap();
    assert!(bridge.kill_worker(0), "there is a worker 0");
    assert!(!bridge.kill_worker(5), "there is no worker 5");
    eventually(Duration::from_secs(20), "the worker restarts", || {
        let health = bridge.health();
        health.pool.restarts >= 1 && health.status == HealthStatus::Healthy
    })
    .await;
    let after: i64 = bridge.call_as("test.pid", &()).await.unwrap();
    assert_ne!(before, after, "a new process answers");
    bridge.shutdown().await;
}
