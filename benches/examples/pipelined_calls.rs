//! Pipelined calls through the full bridge, for instruction counts: the set-up
//! of the 2-worker throughput case on a runtime of one thread, cache
//! bypassed, 128 calls in flight from as many tasks, params of `BYTES`
//! (default 100); `N` calls to warm up, then `N` timed. Run it under
//! callgrind with two values of `N`: the difference of the two counts
//! divided by `2 × ΔN` is one call's instructions in this process (the
//! workers are not counted), without the start-up. Unlike a time, the count
//! does not move with the load of a shared machine.
//!
//! ```text
//! cargo build --release -p pybridge-benches --example pipelined_calls
//! valgrind --tool=callgrind target/release/examples/pipelined_calls 20000
//! valgrind --tool=callgrind target/release/examples/pipelined_calls 40000
//! valgrind --tool=callgrind target/release/examples/pipelined_calls 40000 4096
//! ```

// A diagnostic's report is its output.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use pybridge::{Bridge, CallOptions};
use pybridge_benches::{payload, sdk_bridge_config};

/// Calls in flight: 64 for each of the two workers.
const IN_FLIGHT: usize = 128;

fn main() -> Result<()> {
    let number = |index: usize, what: &str, default: usize| -> Result<usize> {
        match std::env::args().nth(index) {
            Some(text) => text
                .parse()
                .with_context(|| format!("{text:?} is not a number of {what}")),
            None => Ok(default),
        }
    };
    let n = number(1, "calls", 100_000)?;
    let bytes = number(2, "bytes", 100)?;
    let rt = pybridge_benches::runtime_with(1)?;
    let bridge = Arc::new(
        rt.block_on(Bridge::from_config(sdk_bridge_config(2)))
            .map_err(|e| anyhow::anyhow!(e.report()))?,
    );
    let params: Arc<serde_json::value::RawValue> = Arc::from(payload(bytes));
    let calls = |count: usize| -> Result<std::time::Duration> {
        let started = std::time::Instant::now();
        let left = Arc::new(AtomicUsize::new(count));
        rt.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..IN_FLIGHT {
                let (bridge, params, left) = (bridge.clone(), params.clone(), left.clone());
                tasks.spawn(async move {
                    let options = CallOptions::new().no_cache();
                    while left
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                        .is_ok()
                    {
                        let reply = bridge
                            .call_with("test.echo", Some(&params), &options)
                            .await?;
                        std::hint::black_box(&reply);
                    }
                    Ok::<_, pybridge::Error>(())
                });
            }
            while let Some(done) = tasks.join_next().await {
                done.context("a calling task")??;
            }
            Ok::<_, anyhow::Error>(())
        })?;
        Ok(started.elapsed())
    };
    calls(n)?;
    let elapsed = calls(n)?;
    println!(
        "{:.3} µs per call over {n} calls ({:.0} calls/s)",
        elapsed.as_secs_f64() * 1e6 / n as f64,
        n as f64 / elapsed.as_secs_f64()
    );
    rt.block_on(bridge.shutdown());
    Ok(())
}
