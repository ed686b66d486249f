//! `pybridge bench`: closed-loop load through the bridge, in process. The
//! exit status is 1 when any call failed, unless `--allow-errors`.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use pybridge::CallOptions;
use serde_json::value::RawValue;

use crate::options::{self, GlobalArgs};

/// `pybridge bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    /// The method to call.
    #[arg(long, default_value = "test.echo")]
    method: String,
    /// The params, as JSON (default: a 100-byte object).
    #[arg(long)]
    params: Option<String>,
    /// How many calls to make (default 100,000, unless --duration is given).
    #[arg(long)]
    requests: Option<u64>,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Run for this long instead of a number of calls.
    #[arg(long, value_parser = humantime::parse_duration, value_name = "DURATION")]
    duration: Option<Duration>,
    /// Bypass the cache.
    #[arg(long)]
    no_cache: bool,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    json: bool,
    /// Exit 0 even when calls failed (by default failed calls make the exit status 1).
    #[arg(long)]
    allow_errors: bool,
    /// The worker program and its arguments (default: the embedded framework).
    #[arg(last = true, value_name = "WORKER")]
    worker: Vec<String>,
}

/// How many calls of one task the progress bar counts at a time.
const PROGRESS_STEP: usize = 64;

struct Tally {
    latencies_us: std::sync::Mutex<Vec<u32>>,
    errors: std::sync::Mutex<BTreeMap<&'static str, u64>>,
    /// Calls answered by a cache tier rather than a worker: a benchmark of
    /// a cacheable method with repeated params measures the cache.
    cache_hits: AtomicU64,
}

fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

pub(crate) async fn run(global: &GlobalArgs, args: BenchArgs) -> Result<ExitCode> {
    let config = options::load(global, &[], &args.worker)?;
    let telemetry = crate::telemetry::start(&config.telemetry)?;
    crate::logging::init(&config.log, &telemetry);
    let bridge = options::start(config).await?;
    let params_text = args
        .params
        .clone()
        .unwrap_or_else(|| format!("{{\"data\":\"{}\"}}", "x".repeat(89)));
    let params: Arc<RawValue> =
        Arc::from(RawValue::from_string(params_text).context("--params is not valid JSON")?);
    let total = match (args.requests, args.duration) {
        (Some(n), _) => n,
        (None, Some(_)) => u64::MAX,
        (None, None) => 100_000,
    };
    let stop_at = args.duration.map(|d| Instant::now() + d);
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        progress(total, args.duration)
    };
    let tally = Arc::new(Tally {
        latencies_us: std::sync::Mutex::new(Vec::new()),
        errors: std::sync::Mutex::new(BTreeMap::new()),
        cache_hits: AtomicU64::new(0),
    });
    let issued = Arc::new(AtomicU64::new(0));
    let options = if args.no_cache {
        CallOptions::new().no_cache()
    } else {
        CallOptions::new()
    };
    let cpu_before = cpu_time();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (bridge, params, tally, issued, bar, options, method) = (
            bridge.clone(),
            Arc::clone(&params),
            Arc::clone(&tally),
            Arc::clone(&issued),
            bar.clone(),
            options.clone(),
            args.method.clone(),
        );
        tasks.spawn(async move {
            let mut local = Vec::new();
            while issued.fetch_add(1, Ordering::Relaxed) < total
                && stop_at.is_none_or(|t| Instant::now() < t)
            {
                let t0 = Instant::now();
                let outcome = bridge.call_with(&method, Some(&params), &options).await;
                local.push(u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX));
                match outcome {
                    Ok(response) => {
                        if response.source != pybridge::ResultSource::Worker {
                            tally.cache_hits.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(err) => {
                        *tally
                            .errors
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(err.kind().as_str())
                            .or_default() += 1;
                    }
                }
                // The bar moves in steps: reading the clock and touching a
                // shared counter on every call would be measured as the
                // bridge's own cost.
                if local.len() % PROGRESS_STEP == 0 {
                    bar.inc(PROGRESS_STEP as u64);
                }
            }
            bar.inc((local.len() % PROGRESS_STEP) as u64);
            tally
                .latencies_us
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend(local);
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let cpu = cpu_time().saturating_sub(cpu_before);
    bar.finish_and_clear();
    bridge.shutdown().await;
    crate::telemetry::shutdown(telemetry).await;

    let mut latencies =
        std::mem::take(&mut *tally.latencies_us.lock().unwrap_or_else(|e| e.into_inner()));
    latencies.sort_unstable();
    let requests = latencies.len() as u64;
    let errors = tally
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let failed: u64 = errors.values().sum();
    let pct = |p: f64| -> u32 {
        if latencies.is_empty() {
            return 0;
        }
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1]
    };
    let rps = requests as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let cpu_per_call_us = cpu.as_secs_f64() * 1e6 / requests.max(1) as f64;
    let cache_hits = tally.cache_hits.load(Ordering::Relaxed);
    let cache_hit_ratio = cache_hits as f64 / (requests - failed).max(1) as f64;
    let runtime_threads = tokio::runtime::Handle::current().metrics().num_workers();
    if args.json {
        let report = serde_json::json!({
            "method": args.method,
            "requests": requests,
            "ok": requests - failed,
            "errors": failed,
            "errors_by_kind": errors,
            "concurrency": args.concurrency,
            "elapsed_s": elapsed.as_secs_f64(),
            "rps": rps,
            "p50_us": pct(0.50),
            "p90_us": pct(0.90),
            "p99_us": pct(0.99),
            "max_us": latencies.last().copied().unwrap_or(0),
            "cpu_per_call_us": cpu_per_call_us,
            "runtime_threads": runtime_threads,
            "cache_hits": cache_hits,
            "cache_hit_ratio": cache_hit_ratio,
            "rss_peak_bytes": rss_peak_bytes(),
        });
        crate::out::print(&format!("{report}\n"))?;
    } else {
        use std::fmt::Write as _;
        let mut text = String::new();
        writeln!(text, "method       {}", args.method)?;
        writeln!(
            text,
            "requests     {requests} in {elapsed:.2?} with {} in flight",
            args.concurrency
        )?;
        writeln!(text, "ok           {}", requests - failed)?;
        writeln!(text, "errors       {failed}")?;
        for (kind, n) in &errors {
            writeln!(text, "  {kind:<12} {n}")?;
        }
        writeln!(
            text,
            "cache        {cache_hits} of {} answered by the cache ({:.1} %){}",
            requests - failed,
            cache_hit_ratio * 100.0,
            if cache_hits > 0 {
                ": this measures the cache, not the worker (--no-cache for the worker)"
            } else {
                ""
            }
        )?;
        writeln!(text, "throughput   {rps:.0} calls/s")?;
        writeln!(
            text,
            "latency      p50 {} µs   p90 {} µs   p99 {} µs   max {} µs",
            pct(0.50),
            pct(0.90),
            pct(0.99),
            latencies.last().copied().unwrap_or(0)
        )?;
        writeln!(
            text,
            "cpu          {cpu_per_call_us:.2} µs per call (this process, all threads; \
             {runtime_threads} runtime {})",
            if runtime_threads == 1 {
                "thread"
            } else {
                "threads"
            }
        )?;
        if let Some(rss) = rss_peak_bytes() {
            writeln!(
                text,
                "memory       {:.1} MiB peak resident (this process, workers excluded)",
                rss as f64 / 1048576.0
            )?;
        }
        crate::out::print(&text)?;
    }
    Ok(if failed == 0 || args.allow_errors {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The peak resident memory of this process (the bridge, not its workers).
fn rss_peak_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn progress(total: u64, duration: Option<Duration>) -> ProgressBar {
    if duration.is_some() {
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {pos} calls, {per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        return bar;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} calls, {per_sec}, eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
