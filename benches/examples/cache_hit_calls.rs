//! Cache hits through the full bridge, in a loop, for instruction counts:
//! the set-up of the `bridge-cache-hit` benchmark (test.echo made cacheable,
//! memory tier only, 100 B params), then `N` calls to warm up (the first
//! loads the value) and `N` hits timed. Run it under callgrind with two values of `N`; the difference of
//! the two counts divided by `2 × ΔN` is one hit's instructions, without the
//! start-up.
//!
//! ```text
//! cargo build --release -p pybridge-benches --example cache_hit_calls
//! valgrind --tool=callgrind target/release/examples/cache_hit_calls 20000
//! valgrind --tool=callgrind target/release/examples/cache_hit_calls 40000
//! ```

// A diagnostic's report is its output.
#![allow(clippy::print_stdout)]

use anyhow::{Context, Result};
use pybridge::{Bridge, CallOptions, ResultSource};
use pybridge_benches::{payload, sdk_bridge_config};

fn main() -> Result<()> {
    let n: usize = match std::env::args().nth(1) {
        Some(text) => text
            .parse()
            .with_context(|| format!("{text:?} is not a number of hits"))?,
        None => 100_000,
    };
    let rt = pybridge_benches::runtime()?;
    let mut config = sdk_bridge_config(1);
    let mut echo = pybridge::config::MethodSettings::default();
    echo.cache = Some(true);
    config.methods.insert("test.echo".into(), echo);
    let bridge = rt
        .block_on(Bridge::from_config(config))
        .map_err(|e| anyhow::anyhow!(e.report()))?;
    let params = payload(100);
    let options = CallOptions::new();
    let hits = |count: usize| -> Result<std::time::Duration> {
        let started = std::time::Instant::now();
        rt.block_on(async {
            for _ in 0..count {
                let reply = bridge
                    .call_with("test.echo", Some(&params), &options)
                    .await?;
                std::hint::black_box(&reply);
            }
            Ok::<_, pybridge::Error>(())
        })?;
        Ok(started.elapsed())
    };
    hits(n)?;
    let check = rt.block_on(bridge.call_with("test.echo", Some(&params), &options))?;
    anyhow::ensure!(
        check.source == ResultSource::CacheMemory,
        "the calls were not memory hits: {:?}",
        check.source
    );
    let elapsed = hits(n)?;
    println!(
        "{:.3} µs per hit over {n} hits",
        elapsed.as_secs_f64() * 1e6 / n as f64
    );
    rt.block_on(bridge.shutdown());
    Ok(())
}
