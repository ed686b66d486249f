//! The bridge as a `tower::Service` of calls, composed with tower middleware.

use std::time::Duration;

use pybridge::{CallOptions, CallRequest, ErrorKind};
use serde_json::json;
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::support::{bridge, sdk_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_request_runs_through_the_bridge_as_a_tower_service() {
    let bridge = bridge(sdk_config()).await;
    let request = CallRequest::json("test.echo", &json!({"via": "tower"})).unwrap();
    let reply = bridge.clone().oneshot(request).await.unwrap();
    assert_eq!(reply.result.get(), r#"{"via":"tower"}"#);

    // Validation and typed errors are the same as through `Bridge::call`.
    let bad = CallRequest::json("test.sleep", &json!({"seconds": "soon"})).unwrap();
    let err = bridge.clone().oneshot(bad).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidParams, "{}", err.report());
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrency_limit_layer_holds_a_second_call_until_the_first_returns() {
    let bridge = bridge(sdk_config()).await;
    let limited = ServiceBuilder::new()
        .concurrency_limit(1)
        .service(bridge.clone());

    let mut first = limited.clone();
    let sleep = CallRequest::json("test.sleep", &json!({"ms": 400}))
        .unwrap()
        .options(CallOptions::new().timeout(Duration::from_secs(30)));
    let running = first.ready().await.unwrap().call(sleep);
    let running = tokio::spawn(running);

    // While the first call holds the only permit, the second is not admitted.
    let mut second = limited.clone();
    let admitted = tokio::time::timeout(Duration::from_millis(100), second.ready()).await;
    assert!(
        admitted.is_err(),
        "a second call was admitted beside the first"
    );

    let reply = running.await.unwrap().unwrap();
    assert_eq!(reply.result.get(), r#"{"slept":0.4}"#);
    let echo = CallRequest::json("test.echo", &json!([2])).unwrap();
    let reply = second.ready().await.unwrap().call(echo).await.unwrap();
    assert_eq!(reply.result.get(), "[2]");
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_shedding_over_a_concurrency_limit_refuses_calls_beyond_it_at_once() {
    let bridge = bridge(sdk_config()).await;
    let shedding = ServiceBuilder::new()
        .load_shed()
        .concurrency_limit(1)
        .service(bridge.clone());
    // Holds the permit well past the shed call, however slow the machine.
    let sleep = CallRequest::json("test.sleep", &json!({"ms": 3000})).unwrap();
    let running = tokio::spawn(shedding.clone().oneshot(sleep));
    // Until the sleeping call holds the permit, a second call may still get it.
    crate::support::eventually(
        Duration::from_secs(10),
        "the first call is in flight",
        || bridge.health().pool.workers[0].in_flight == 1,
    )
    .await;
    let echo = CallRequest::json("test.echo", &json!([3])).unwrap();
    let shed = shedding.clone().oneshot(echo.clone()).await.unwrap_err();
    assert!(
        shed.is::<tower::load_shed::error::Overloaded>(),
        "refused by the shedder, not the bridge: {shed}"
    );
    running.await.unwrap().unwrap();
    let reply = shedding.oneshot(echo).await.unwrap();
    assert_eq!(reply.result.get(), "[3]");
    bridge.shutdown().await;
}
