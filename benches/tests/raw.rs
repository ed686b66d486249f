//! The raw baseline's workers answer what they are sent, and the burning
//! variant really spends its CPU before it answers.

use std::time::{Duration, Instant};

use pybridge_benches::raw::{RawPool, RawWorker, burning_echo_args};
use pybridge_benches::{payload, python, raw_sdk_args};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_raw_worker_echoes_its_params() -> anyhow::Result<()> {
    let params = payload(100);
    let workers = [
        RawWorker::spawn(&python()).await?,
        RawWorker::spawn_program(&python(), burning_echo_args(1000), "echo").await?,
        RawWorker::spawn_program(&python(), raw_sdk_args(), "test.echo").await?,
    ];
    for worker in &workers {
        for _ in 0..3 {
            assert_eq!(worker.call(&params).await?.get(), params.get());
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_burning_worker_spins_before_it_answers() -> anyhow::Result<()> {
    // 50 ms of spinning per read: a lower bound no scheduler can shorten.
    let worker = RawWorker::spawn_program(&python(), burning_echo_args(50_000_000), "echo").await?;
    let params = payload(10);
    let started = Instant::now();
    assert_eq!(worker.call(&params).await?.get(), params.get());
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driven_run_answers_every_call_and_gives_the_pipes_back() -> anyhow::Result<()> {
    let pool = RawPool::spawn(&python(), 2).await?;
    let params = payload(100);
    for (total, window) in [(1000, 64), (10, 1), (1, 64), (0, 8)] {
        pool.drive(total, window, &params).await?;
    }
    // The pipes are back in place: a single call still works.
    assert_eq!(pool.call(&params).await?.get(), params.get());
    Ok(())
}
