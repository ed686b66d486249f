//! Remote workers: listening worker processes on 127.0.0.1 and Unix
//! sockets, dialled by the pool, some through a proxy that cuts or stalls
//! their connections.

use std::net::SocketAddr;
use std::time::Duration;

use pybridge_pool::{
    EndpointState, Error, FailureReason, HealthPolicy, Pool, PoolConfigBuilder, RemotePolicy,
    RestartPolicy, Secret,
};
use tokio::time::Instant;

use crate::remote_support::{
    HalfOpen, Listener, Proxy, SECRET, local_worker, run_listener, secret_file,
};
use crate::support::{eventually, raw, start, value};

fn endpoint(url: &str) -> pybridge_pool::Endpoint {
    url.parse().expect("a valid endpoint url")
}

fn secret() -> Secret {
    Secret::new(SECRET).unwrap()
}

/// Fast pings, quick re-dials: failures show within a second or two.
fn remote_tuning(b: PoolConfigBuilder) -> PoolConfigBuilder {
    b.health(
        HealthPolicy::default()
            .ping_interval(Some(Duration::from_millis(200)))
            .ping_timeout(Duration::from_millis(500))
            .max_missed_pings(2)
            .cancel_grace(Duration::from_millis(800)),
    )
    .restart(
        RestartPolicy::default()
            .initial_backoff(Duration::from_millis(50))
            .max_backoff(Duration::from_millis(400)),
    )
    .remote(RemotePolicy::default().connect_timeout(Duration::from_secs(2)))
}

fn endpoint_state(pool: &Pool, address: &str) -> Option<EndpointState> {
    pool.stats()
        .endpoints
        .iter()
        .find(|e| &*e.address == address)
        .map(|e| e.state)
}

fn remote_served(pool: &Pool) -> u64 {
    pool.stats()
        .workers
        .iter()
        .filter(|w| w.remote)
        .map(|w| w.served)
        .sum()
}

/// Calls test.echo; a call that fails because its worker failed is sent
/// again, as the bridge does for idempotent methods. Returns how many
/// attempts failed that way.
async fn echo_retrying(pool: &Pool, i: u32) -> u32 {
    let mut failed = 0;
    loop {
        let params = raw(&format!(r#"{{"i":{i}}}"#));
        match pool.call("test.echo", Some(&params)).await {
            Ok(result) => {
                assert_eq!(
                    value(&result)["i"],
                    i,
                    "call {i} answered with another's result"
                );
                return failed;
            }
            Err(Error::WorkerFailed { .. }) if failed < 20 => failed += 1,
            Err(err) => panic!("call {i} lost: {err}"),
        }
    }
}

/// `n` concurrent echo calls (so that every worker takes some); returns how
/// many attempts were resent.
async fn echo_concurrently(pool: &Pool, n: u32) -> u32 {
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..n {
        let pool = pool.clone();
        calls.spawn(async move { echo_retrying(&pool, i).await });
    }
    let mut resent = 0;
    while let Some(r) = calls.join_next().await {
        resent += r.unwrap();
    }
    resent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_unix_workers_serve_calls_with_their_state_and_round_trip_time() {
    let dir = tempfile::tempdir().unwrap();
    let tcp = Listener::start("tcp://127.0.0.1:0", Some(SECRET), &[]).await;
    let sock = dir.path().join("w.sock");
    let unix = Listener::start(&format!("unix:{}", sock.display()), Some(SECRET), &[]).await;
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the Unix socket is private to its owner");

    let pool = start(local_worker(), |b| {
        remote_tuning(b.workers(0))
            .connect(endpoint(&tcp.url))
            .connect(endpoint(&unix.url))
            .secret(secret())
    })
    .await;
    // Concurrent calls, so that both workers take some.
    assert_eq!(echo_concurrently(&pool, 64).await, 0);
    let stats = pool.stats();
    assert_eq!(stats.ready_workers, 2, "{stats:?}");
    assert!(
        stats.workers.iter().all(|w| w.remote && w.served > 0),
        "both serve: {stats:?}"
    );
    eventually(
        Duration::from_secs(10),
        "both endpoints ready with a round-trip time",
        || {
            let stats = pool.stats();
            stats.endpoints.len() == 2
                && stats
                    .endpoints
                    .iter()
                    .all(|e| e.state == EndpointState::Ready && e.rtt.is_some())
        },
    )
    .await;
    assert_eq!(pool.stats().status, pybridge_pool::HealthStatus::Healthy);
    let addresses: Vec<_> = pool
        .stats()
        .endpoints
        .iter()
        .map(|e| e.address.to_string())
        .collect();
    assert_eq!(addresses, [tcp.url.clone(), unix.url.clone()]);

    // A closed connection is stdin EOF for the worker: it waits for the next one.
    pool.shutdown().await;
    let again = start(local_worker(), |b| {
        b.workers(0).connect(endpoint(&tcp.url)).secret(secret())
    })
    .await;
    assert_eq!(echo_retrying(&again, 7).await, 0);
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_on_both_sides() {
    let listener = Listener::start("tcp://127.0.0.1:0", Some(SECRET), &[]).await;
    let config = pybridge_pool::PoolConfig::builder(local_worker())
        .workers(0)
        .connect(endpoint(&listener.url))
        .secret(Secret::new("not the secret").unwrap())
        .build()
        .unwrap();
    let err = Pool::start(config)
        .await
        .expect_err("a wrong secret fails the start");
    let text = err.to_string();
    assert!(text.contains("wrong secret"), "the bridge says why: {text}");
    assert!(text.contains(&listener.url), "and where: {text}");
    eventually(
        Duration::from_secs(5),
        "the worker logs the wrong secret",
        || listener.stderr_text().contains("wrong secret"),
    )
    .await;

    // No secret at all against a worker that requires one.
    let config = pybridge_pool::PoolConfig::builder(local_worker())
        .workers(0)
        .connect(endpoint(&listener.url))
        .build()
        .unwrap();
    let err = Pool::start(config)
        .await
        .expect_err("no secret fails the start");
    assert!(err.to_string().contains("requires a secret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_listener_without_a_secret_refuses_to_start_unless_insecure() {
    let (code, stderr) = run_listener("tcp://127.0.0.1:0", &[], &["--once"]).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("without a secret"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let empty = secret_file(dir.path(), "");
    let (code, stderr) = run_listener(
        "tcp://127.0.0.1:0",
        &[],
        &["--secret-file", empty.to_str().unwrap()],
    )
    .await;
    assert_eq!(code, 2, "an empty secret file is refused too: {stderr}");

    // --insecure: no secret on either side works; a bridge that has one
    // refuses such a worker over TCP.
    let open = Listener::start("tcp://127.0.0.1:0", None, &["--insecure"]).await;
    let pool = start(local_worker(), |b| {
        b.workers(0).connect(endpoint(&open.url))
    })
    .await;
    assert_eq!(echo_retrying(&pool, 1).await, 0);
    pool.shutdown().await;
    let config = pybridge_pool::PoolConfig::builder(local_worker())
        .workers(0)
        .connect(endpoint(&open.url))
        .secret(secret())
        .build()
        .unwrap();
    let err = Pool::start(config).await.expect_err("refused");
    assert!(err.to_string().contains("without a secret"), "{err}");

    // The secret file works like the environment variable.
    let file = secret_file(dir.path(), SECRET);
    let from_file = Listener::start(
        "tcp://127.0.0.1:0",
        None,
        &["--secret-file", file.to_str().unwrap()],
    )
    .await;
    let pool = start(local_worker(), |b| {
        b.workers(0)
            .connect(endpoint(&from_file.url))
            .secret(Secret::from_file(&file).unwrap())
    })
    .await;
    assert_eq!(echo_retrying(&pool, 2).await, 0);
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_worker_killed_under_load_loses_no_call_and_is_dialled_again() {
    let listener = Listener::start("tcp://127.0.0.1:0", Some(SECRET), &[]).await;
    let (url, port) = (listener.url.clone(), listener.port());
    let pool = start(local_worker(), |b| {
        remote_tuning(b.workers(1))
            .connect(endpoint(&url))
            .secret(secret())
    })
    .await;
    let mut events = pool.subscribe();
    let load: Vec<_> = (0..6u32)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut failed = 0;
                for i in 0..150u32 {
                    failed += echo_retrying(&pool, task * 1000 + i).await;
                }
                failed
            })
        })
        .collect();
    eventually(Duration::from_secs(20), "the remote worker serves", || {
        remote_served(&pool) > 10
    })
    .await;
    listener.kill().await;
    let lost = crate::support::next_event(&mut events, Duration::from_secs(10), |e| match e {
        pybridge_pool::PoolEvent::WorkerExited { reason, .. } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        lost,
        pybridge_pool::ExitReason::Crashed(FailureReason::Disconnected)
    );
    eventually(Duration::from_secs(5), "the endpoint is unhealthy", || {
        endpoint_state(&pool, &url) == Some(EndpointState::Unhealthy)
    })
    .await;
    assert_eq!(
        pool.stats().status,
        pybridge_pool::HealthStatus::Degraded,
        "{:?}",
        pool.stats()
    );
    let mut failed = 0;
    for task in load {
        failed += tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the load finishes")
            .unwrap();
    }
    println!("calls resent after the remote worker died: {failed}");

    // Back on the same port: dialled again and used again.
    let back = Listener::start(&format!("tcp://127.0.0.1:{port}"), Some(SECRET), &[]).await;
    eventually(
        Duration::from_secs(20),
        "the endpoint is ready again",
        || endpoint_state(&pool, &url) == Some(EndpointState::Ready),
    )
    .await;
    let before = remote_served(&pool);
    echo_concurrently(&pool, 64).await;
    assert!(
        remote_served(&pool) > before,
        "the new connection takes calls"
    );
    let stats = pool.stats();
    let remote = stats.endpoints.iter().find(|e| *e.address == *url).unwrap();
    assert!(remote.connects >= 2 && remote.failures >= 1, "{remote:?}");
    pool.shutdown().await;
    back.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_connection_ends_calls_by_their_deadlines_and_recovers() {
    let listener = Listener::start("tcp://127.0.0.1:0", Some(SECRET), &[]).await;
    let target: SocketAddr = format!("127.0.0.1:{}", listener.port()).parse().unwrap();
    let proxy = Proxy::start(target).await;
    let url = proxy.url();
    let pool = start(local_worker(), |b| {
        remote_tuning(b.workers(0))
            .default_timeout(Duration::from_millis(700))
            .connect(endpoint(&url))
            .secret(secret())
    })
    .await;
    assert_eq!(echo_retrying(&pool, 1).await, 0);

    proxy.stall(true);
    let started = Instant::now();
    let calls: Vec<_> = (0..4)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let params = raw(&format!(r#"{{"i":{i}}}"#));
                pool.call("test.echo", Some(&params)).await
            })
        })
        .collect();
    for call in calls {
        let outcome = call.await.unwrap();
        assert!(
            matches!(
                outcome,
                Err(Error::Timeout { .. } | Error::WorkerFailed { .. })
            ),
            "a stalled call ends with an error: {outcome:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the calls ended by their deadlines, not much later"
    );
    eventually(
        Duration::from_secs(10),
        "the stalled endpoint is unhealthy",
        || endpoint_state(&pool, &url) == Some(EndpointState::Unhealthy),
    )
    .await;
    let err = pool.stats().endpoints[0]
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(!err.is_empty(), "the endpoint says why it is unhealthy");

    proxy.stall(false);
    eventually(Duration::from_secs(20), "the endpoint recovers", || {
        endpoint_state(&pool, &url) == Some(EndpointState::Ready)
    })
    .await;
    assert_eq!(echo_retrying(&pool, 2).await, 0);
    pool.shutdown().await;
    listener.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_remote_workers_cut_repeatedly_beside_local_ones_lose_no_call() {
    let a = Listener::start("tcp://127.0.0.1:0", Some(SECRET), &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let b_sock = dir.path().join("b.sock");
    let b = Listener::start(&format!("unix:{}", b_sock.display()), Some(SECRET), &[]).await;
    let proxy = Proxy::start(format!("127.0.0.1:{}", a.port()).parse().unwrap()).await;
    let pool = start(local_worker(), |builder| {
        remote_tuning(builder.workers(1))
            .connect(endpoint(&proxy.url()))
            .connect(endpoint(&b.url))
            .secret(secret())
    })
    .await;
    let load: Vec<_> = (0..4u32)
        .map(|task| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut failed = 0;
                for i in 0..150u32 {
                    failed += echo_retrying(&pool, task * 1000 + i).await;
                }
                failed
            })
        })
        .collect();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.cut();
    }
    let mut resent = 0;
    for task in load {
        resent += tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the load finishes")
            .unwrap();
    }
    println!("calls resent during the chaos: {resent}");
    eventually(
        Duration::from_secs(20),
        "every endpoint ready again",
        || {
            pool.stats()
                .endpoints
                .iter()
                .all(|e| e.state == EndpointState::Ready)
        },
    )
    .await;
    assert!(
        pool.stats().endpoints[0].failures >= 1,
        "the cuts were seen"
    );
    pool.shutdown().await;
}

#[test]
fn endpoint_urls_parse_and_print_back() {
    for url in [
        "tcp://127.0.0.1:7001",
        "tcp://[::1]:7001",
        "unix:/run/w.sock",
    ] {
        assert_eq!(endpoint(url).to_string(), url);
    }
    assert_eq!(
        endpoint("unix:///run/w.sock").to_string(),
        "unix:/run/w.sock"
    );
    for bad in [
        "127.0.0.1:7001",
        "tcp://127.0.0.1",
        "tcp://:80",
        "tcp://h:0",
        "tcp://h:x",
        "unix:",
        "http://h:1",
    ] {
        let err = bad.parse::<pybridge_pool::Endpoint>().expect_err(bad);
        assert!(err.to_string().contains(bad), "{err}");
    }
    assert_eq!(format!("{:?}", secret()), "Secret(..)");
    assert!(Secret::new("").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_sent_after_the_connection_stopped_taking_requests_is_delivered() {
    let listener = Listener::start("tcp://127.0.0.1:0", Some(SECRET), &[]).await;
    let target: SocketAddr = format!("127.0.0.1:{}", listener.port()).parse().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let proxy = HalfOpen::start(&dir.path().join("half.sock"), target).await;
    let pool = start(local_worker(), |b| {
        remote_tuning(b.workers(0))
            .default_timeout(Duration::from_secs(10))
            .connect(endpoint(&proxy.url))
            .secret(secret())
    })
    .await;
    assert_eq!(echo_retrying(&pool, 1).await, 0);

    // In flight on the worker for 200 ms.
    let slow = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let params = raw(r#"{"ms":200}"#);
            pool.call("test.sleep", Some(&params)).await
        })
    };
    eventually(
        Duration::from_secs(5),
        "the worker has the slow call",
        || proxy.forwarded(b"test.sleep"),
    )
    .await;
    proxy.stop_reading();
    // The next request fails to be written: the pool's writer ends first.
    let params = raw(r#"{"i":2}"#);
    let refused = pool.call("test.echo", Some(&params)).await;
    assert!(
        matches!(refused, Err(Error::WorkerFailed { .. })),
        "a request that could not be sent fails as its worker's: {refused:?}"
    );
    // The answer the worker sends afterwards still reaches its caller.
    let answered = slow.await.unwrap();
    assert!(answered.is_ok(), "the slow call is answered: {answered:?}");
    pool.shutdown().await;
    listener.kill().await;
}
