//! Shared helpers for pybridge's criterion benchmarks: the raw baseline, the
//! fixtures' paths, payloads of a given size, and closed-loop load with a
//! fixed number of calls in flight.

pub mod args;
pub mod raw;
pub use pybridge_test_support::redis_server;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The repository's `fixtures/` folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// The `PYTHONPATH` under which the worker SDK (`python/pybridge-worker`)
/// imports without being installed; every benchmark worker runs with it.
pub fn python_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../python/pybridge-worker/src")
}

/// The SDK's demo worker, as the arguments after the interpreter. The
/// benchmarks keep the SDK's pipelined inline mode (methods run in the I/O
/// loop, one flush per read) and advertise a deep window, so the pool keeps
/// as many calls in flight as the benchmark asks for; the SDK's default
/// (threads, 16 advertised) is for slow methods, not for echo throughput.
pub const SDK_WORKER_ARGS: &[&str] = &[
    "-m",
    "pybridge_worker",
    "--threads",
    "0",
    "--max-concurrency",
    "64",
];

/// The demo worker's arguments for the raw client, which reads a `READY`
/// line rather than the `$/ready` notification.
pub fn raw_sdk_args() -> Vec<&'static str> {
    let mut args = SDK_WORKER_ARGS.to_vec();
    args.extend(["--handshake", "ready-line"]);
    args
}

/// The Python interpreter to run workers with (`PYBRIDGE_PYTHON`, else `python3`).
pub fn python() -> String {
    std::env::var("PYBRIDGE_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The runtime every benchmark that talks to workers uses (two worker
/// threads, as many as this machine's cores), so pybridge and the raw
/// baseline are measured on the same one.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    runtime_with(2)
}

/// A runtime of `threads` worker threads, for a benchmark that compares
/// runtime sizes.
pub fn runtime_with(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
}

/// The full bridge as every benchmark runs it: `workers` of the SDK's demo
/// worker ([`SDK_WORKER_ARGS`] under [`python`]), and a cache in memory only,
/// so that nothing a benchmark caches is written to disk.
pub fn sdk_bridge_config(workers: usize) -> pybridge::Config {
    let mut config = pybridge::Config::default();
    config.worker.command = std::iter::once(python())
        .chain(SDK_WORKER_ARGS.iter().map(|a| (*a).to_owned()))
        .collect();
    config
        .worker
        .env
        .insert("PYTHONPATH".into(), python_path().display().to_string());
    config.pool.min_workers = workers;
    config.cache.disk = false;
    config
}

/// A JSON object of about `bytes` bytes: `{"data":"xxxx…"}`.
pub fn payload(bytes: usize) -> Box<serde_json::value::RawValue> {
    let filler = "x".repeat(bytes.saturating_sub(11));
    serde_json::value::to_raw_value(&serde_json::json!({ "data": filler }))
        .expect("a string always serializes")
}

/// CPU time used by this process so far, all threads, user and system.
pub fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// CPU time used so far by the process `pid` (all its threads, user and
/// system), to nanoseconds where the kernel keeps the scheduler's account
/// (`/proc/PID/task/*/sched`), else to its clock ticks (`/proc/PID/stat`).
/// `None` when the process is gone or `/proc` says nothing readable. The
/// scheduler's account is per live thread: a thread that exits between two
/// readings takes its time with it, so compare readings of processes whose
/// threads outlive the measurement (as the benchmarks' workers do).
pub fn process_cpu_time(pid: u32) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = Duration::ZERO;
    for task in tasks {
        let sched = std::fs::read_to_string(task.ok()?.path().join("sched")).ok();
        // "se.sum_exec_runtime   :   1234.567890" (milliseconds).
        let ms = sched.as_deref().and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("se.sum_exec_runtime"))
                .and_then(|rest| {
                    rest.trim_start_matches([' ', ':'])
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        });
        match ms {
            Some(ms) => total += Duration::from_secs_f64(ms / 1e3),
            None => return stat_cpu_time(pid),
        }
    }
    Some(total)
}

/// `utime + stime` of `/proc/PID/stat`, in the kernel's clock ticks.
fn stat_cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: count fields after
    // its closing one (the state is field 3, utime 14 and stime 15).
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_second = rustix::param::clock_ticks_per_second().max(1);
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// The summed CPU time of the processes `pids` (see [`process_cpu_time`]);
/// `None` if any cannot be read.
pub fn processes_cpu_time(pids: &[u32]) -> Option<Duration> {
    pids.iter().map(|&pid| process_cpu_time(pid)).sum()
}

/// Runs `total` calls of `call` with `in_flight` of them outstanding at all
/// times; returns the wall time taken. Panics on the first failed call: a
/// benchmark that loses calls measures nothing.
///
/// Each of the `in_flight` tasks clones `state` once and moves it through
/// its calls (`call` hands it back with the outcome): a harness that cloned
/// a shared `Arc` per call would add two contended atomic operations to
/// every call it measures, which the raw baseline does not pay.
pub async fn closed_loop<S, F, Fut, E>(total: u64, in_flight: usize, state: S, call: F) -> Duration
where
    S: Clone + Send + 'static,
    F: Fn(S) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = (S, Result<(), E>)> + Send,
    E: std::fmt::Debug,
{
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..in_flight {
        let (issued, call, mut state) = (Arc::clone(&issued), call.clone(), state.clone());
        tasks.spawn(async move {
            while issued.fetch_add(1, Ordering::Relaxed) < total {
                let (back, outcome) = call(state).await;
                if let Err(err) = outcome {
                    panic!("a benchmark call failed: {err:?}");
                }
                state = back;
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(err) = joined {
            std::panic::resume_unwind(err.into_panic());
        }
    }
    started.elapsed()
}

/// `total` calls of `test.echo` with `params` through the full bridge, with
/// `in_flight` of them outstanding ([`closed_loop`]); returns the wall time.
pub async fn bridge_echo_loop(
    bridge: &pybridge::Bridge,
    total: u64,
    in_flight: usize,
    params: &Arc<serde_json::value::RawValue>,
) -> Duration {
    let state = (bridge.clone(), Arc::clone(params));
    closed_loop(total, in_flight, state, |(bridge, params)| async move {
        let outcome = bridge.call_raw("test.echo", Some(&params)).await;
        ((bridge, params), outcome.map(drop))
    })
    .await
}

/// The same through the pool alone.
pub async fn pool_echo_loop(
    pool: &pybridge_pool::Pool,
    total: u64,
    in_flight: usize,
    params: &Arc<serde_json::value::RawValue>,
) -> Duration {
    let state = (pool.clone(), Arc::clone(params));
    closed_loop(total, in_flight, state, |(pool, params)| async move {
        let outcome = pool.call("test.echo", Some(&params)).await;
        ((pool, params), outcome.map(drop))
    })
    .await
}

/// The median: the middle value, or the mean of the two middle ones.
///
/// # Panics
/// When `values` is empty.
pub fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{process_cpu_time, processes_cpu_time, stat_cpu_time};

    /// Spins this thread for `wall` of CPU.
    fn burn(wall: Duration) {
        let started = Instant::now();
        let mut x = 0u64;
        while started.elapsed() < wall {
            x = std::hint::black_box(x.wrapping_add(1));
        }
    }

    #[test]
    fn a_process_cpu_reading_counts_the_cpu_it_spent() {
        let me = std::process::id();
        let before = process_cpu_time(me).expect("this process's /proc entry");
        let ticks_before = stat_cpu_time(me).expect("this process's stat");
        burn(Duration::from_millis(200));
        let spent = process_cpu_time(me).expect("this process's /proc entry") - before;
        let ticks = stat_cpu_time(me).expect("this process's stat") - ticks_before;
        // Both accounts saw the spin (the test harness's other threads may
        // add a little); the tick count to its resolution.
        assert!(
            spent >= Duration::from_millis(150) && spent < Duration::from_secs(2),
            "{spent:?}"
        );
        assert!(
            ticks >= Duration::from_millis(100) && ticks < Duration::from_secs(2),
            "{ticks:?}"
        );
        assert_eq!(
            processes_cpu_time(&[me, me]).map(|t| t >= before * 2),
            Some(true)
        );
    }

    #[test]
    fn a_process_that_is_gone_has_no_reading() {
        let mut child = std::process::Command::new("true")
            .spawn()
            .expect("spawning true");
        let pid = child.id();
        child.wait().expect("waiting for true");
        assert_eq!(process_cpu_time(pid), None);
        assert_eq!(processes_cpu_time(&[std::process::id(), pid]), None);
    }
}
