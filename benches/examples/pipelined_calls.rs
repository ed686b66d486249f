//! Pipelined calls through the full bridge, for instruction counts: the set-up
//! of the 2-worker throughput case on a runtime of one thread, cache
//! consulted (test.echo is not cacheable), 128 calls in flight from as many
//! tasks (the loop `throughput_ab` times), params of `BYTES`
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

use anyhow::{Context, Result};
use pybridge::Bridge;
use pybridge_benches::{bridge_echo_loop, payload, sdk_bridge_config};

/// Calls in flight: 64 for each of the two workers.
const IN_FLIGHT: usize = 128;

fn main() -> Result<()> {
    let number = |index: usize, what: &str, default: u64| -> Result<u64> {
        match std::env::args().nth(index) {
            Some(text) => text
                .parse()
                .with_context(|| format!("{text:?} is not a number of {what}")),
            None => Ok(default),
        }
    };
    let n = number(1, "calls", 100_000)?;
    let bytes = usize::try_from(number(2, "bytes", 100)?)?;
    let rt = pybridge_benches::runtime_with(1)?;
    let bridge = rt
        .block_on(Bridge::from_config(sdk_bridge_config(2)))
        .map_err(|e| anyhow::anyhow!(e.report()))?;
    let params: Arc<serde_json::value::RawValue> = Arc::from(payload(bytes));
    // The loop `throughput_ab` times, once to warm up and once measured.
    rt.block_on(bridge_echo_loop(&bridge, n, IN_FLIGHT, &params));
    let elapsed = rt.block_on(bridge_echo_loop(&bridge, n, IN_FLIGHT, &params));
    println!(
        "{:.3} µs per call over {n} calls ({:.0} calls/s)",
        elapsed.as_secs_f64() * 1e6 / n as f64,
        n as f64 / elapsed.as_secs_f64()
    );
    rt.block_on(bridge.shutdown());
    Ok(())
}
