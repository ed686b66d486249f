//! The raw baseline: the least code that can pipeline JSON-RPC calls to Python
//! over pipes, the limit every pybridge throughput and latency figure is a
//! ratio to (measured in the same run).
//!
//! The Python side is a minimal echo loop that reads what is available and
//! answers it with one write. The Rust side does no per-call work beyond the
//! frame itself: under load ([`RawPool::drive`]) each worker has one writer
//! task that writes frames through a `BufWriter` and flushes only when its
//! window is full, one reader task that reads answers with `read_until` into a
//! reused buffer and parses them without allocating, and a semaphore for the
//! window; no task, channel or allocation per call. One call at a time
//! ([`RawWorker::call`]) writes and reads in the caller's own task.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Mutex, Semaphore};
use tokio_util::sync::CancellationToken;

/// The minimal batched-flush echo worker (`benches/python/echo_loop.py`), to
/// run as `python3 -c ECHO_WORKER`: the fastest JSON Python has (the C
/// scanner and encoder, called directly), no validation, no dispatch.
pub const ECHO_WORKER: &str = include_str!("../python/echo_loop.py");

/// The arguments that run [`ECHO_WORKER`] spinning `burn_ns` of CPU after each
/// read, before it answers: how much a worker's own CPU per call costs a
/// caller waiting on it.
pub fn burning_echo_args(burn_ns: u64) -> [String; 3] {
    ["-c".into(), ECHO_WORKER.into(), burn_ns.to_string()]
}

/// The buffers' size on both sides of the pipes: what one read or write of
/// the echo loop moves.
const BUFFER: usize = 64 * 1024;

/// One raw worker process and its pipes.
#[derive(Debug)]
pub struct RawWorker {
    child: Child,
    /// The pipes; `None` only while [`RawPool::drive`] runs on them.
    io: Mutex<Option<Io>>,
    next_id: AtomicU64,
    method: &'static str,
}

#[derive(Debug)]
struct Io {
    stdin: BufWriter<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    /// The last answer read, reused from one call to the next.
    line: Vec<u8>,
}

#[derive(Deserialize)]
struct Reply<'a> {
    id: u64,
    #[serde(borrow)]
    result: &'a RawValue,
}

impl RawWorker {
    /// Starts the echo worker and waits for its READY line.
    pub async fn spawn(python: &str) -> Result<RawWorker> {
        RawWorker::spawn_program(python, &["-c", ECHO_WORKER], "echo").await
    }

    /// Starts `program args` as the worker, which must print a READY line and
    /// answer `method` by echoing its params (the worker SDK's demo worker
    /// does, as `test.echo`), and waits for the READY line.
    pub async fn spawn_program<I, S>(
        program: &str,
        args: I,
        method: &'static str,
    ) -> Result<RawWorker>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut child = Command::new(program)
            .args(args)
            .env("PYTHONPATH", crate::python_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("spawning the raw echo worker")?;
        let stdin = BufWriter::with_capacity(BUFFER, child.stdin.take().context("stdin")?);
        let mut stdout = BufReader::with_capacity(BUFFER, child.stdout.take().context("stdout")?);
        let mut ready = String::new();
        stdout.read_line(&mut ready).await?;
        anyhow::ensure!(ready.trim() == "READY", "raw worker said {ready:?}");
        Ok(RawWorker {
            child,
            io: Mutex::new(Some(Io {
                stdin,
                stdout,
                line: Vec::with_capacity(BUFFER),
            })),
            next_id: AtomicU64::new(1),
            method,
        })
    }

    /// Echoes `params` through the worker, one call at a time: the frame is
    /// written and the answer read in the caller's task.
    pub async fn call(&self, params: &RawValue) -> Result<Box<RawValue>> {
        let mut io = self.io.lock().await;
        let Io {
            stdin,
            stdout,
            line,
        } = io.as_mut().context("a previous run lost the pipes")?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        write_frame(stdin, id, self.method, params).await?;
        stdin.flush().await?;
        line.clear();
        anyhow::ensure!(
            stdout.read_until(b'\n', line).await? > 0,
            "the raw worker closed its stdout"
        );
        let reply: Reply<'_> = serde_json::from_slice(line).context("the raw worker's answer")?;
        anyhow::ensure!(reply.id == id, "answer {} to request {id}", reply.id);
        Ok(reply.result.to_owned())
    }
}

/// Several raw workers.
#[derive(Debug)]
pub struct RawPool {
    workers: Vec<Arc<RawWorker>>,
}

impl RawPool {
    /// Starts `n` raw workers.
    pub async fn spawn(python: &str, n: usize) -> Result<RawPool> {
        let mut workers = Vec::with_capacity(n);
        for _ in 0..n {
            workers.push(Arc::new(RawWorker::spawn(python).await?));
        }
        Ok(RawPool { workers })
    }

    /// The workers' process ids.
    pub fn pids(&self) -> Vec<u32> {
        self.workers.iter().filter_map(|w| w.child.id()).collect()
    }

    /// Echoes `params` through the first worker, one call at a time.
    pub async fn call(&self, params: &RawValue) -> Result<Box<RawValue>> {
        self.workers
            .first()
            .context("a pool without workers")?
            .call(params)
            .await
    }

    /// Makes `total` calls echoing `params`, with up to `window` in flight on
    /// each worker; returns the wall time taken. The workers draw calls from
    /// one shared count, so a faster worker takes more of them.
    ///
    /// # Errors
    /// When a worker's pipe fails or an answer is not the echo of a request.
    pub async fn drive(&self, total: u64, window: usize, params: &RawValue) -> Result<Duration> {
        if total == 0 {
            return Ok(Duration::ZERO);
        }
        let run = Arc::new(Run {
            params: params.to_owned(),
            total,
            claimed: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            done: CancellationToken::new(),
        });
        // The pipes stay locked for the whole run: their two halves move
        // into the run's two tasks per worker and are put back afterwards.
        let mut locked = Vec::with_capacity(self.workers.len());
        for worker in &self.workers {
            locked.push(worker.io.lock().await);
        }
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (index, io) in locked.iter_mut().enumerate() {
            let Io { stdin, stdout, .. } = io.take().context("a previous run lost the pipes")?;
            let window_free = Arc::new(Semaphore::new(window.max(1)));
            let method = self.workers[index].method;
            let (run_w, free_w) = (Arc::clone(&run), Arc::clone(&window_free));
            tasks.spawn(async move {
                let stdin = write_calls(stdin, method, &run_w, &free_w).await;
                (index, Half::Writer(stdin))
            });
            let run_r = Arc::clone(&run);
            tasks.spawn(async move {
                let stdout = read_answers(stdout, &run_r, &window_free).await;
                (index, Half::Reader(stdout))
            });
        }
        let mut halves: Vec<Halves> = (0..locked.len()).map(|_| (None, None)).collect();
        let mut failure = None;
        while let Some(joined) = tasks.join_next().await {
            let (index, half) = joined.context("a raw client task panicked")?;
            match half {
                Half::Writer(Ok(stdin)) => halves[index].0 = Some(stdin),
                Half::Reader(Ok(stdout)) => halves[index].1 = Some(stdout),
                Half::Writer(Err(err)) | Half::Reader(Err(err)) => {
                    run.done.cancel();
                    failure.get_or_insert(err);
                }
            }
        }
        let elapsed = started.elapsed();
        for (io, halves) in locked.iter_mut().zip(halves) {
            if let (Some(stdin), Some(stdout)) = halves {
                **io = Some(Io {
                    stdin,
                    stdout,
                    line: Vec::with_capacity(BUFFER),
                });
            }
        }
        if let Some(err) = failure {
            return Err(err);
        }
        let answered = run.answered.load(Ordering::Relaxed);
        anyhow::ensure!(answered >= total, "{answered} of {total} calls answered");
        Ok(elapsed)
    }
}

impl Drop for RawWorker {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// What the tasks of one [`RawPool::drive`] share.
struct Run {
    params: Box<RawValue>,
    total: u64,
    /// Calls taken by a writer (it may overshoot `total` by one per writer).
    claimed: AtomicU64,
    answered: AtomicU64,
    /// Cancelled when every call is answered (or a task failed): wakes the
    /// readers still waiting for answers that will never come.
    done: CancellationToken,
}

/// A worker's two pipe halves as the tasks of [`RawPool::drive`] hand them back.
type Halves = (
    Option<BufWriter<ChildStdin>>,
    Option<BufReader<ChildStdout>>,
);

/// A pipe half handed back by a task of [`RawPool::drive`].
enum Half {
    Writer(Result<BufWriter<ChildStdin>>),
    Reader(Result<BufReader<ChildStdout>>),
}

/// Writes calls while the window has room, flushing only when it is full
/// (or the calls are all claimed).
async fn write_calls(
    mut stdin: BufWriter<ChildStdin>,
    method: &str,
    run: &Run,
    window_free: &Semaphore,
) -> Result<BufWriter<ChildStdin>> {
    let mut id = 0u64;
    loop {
        let permit = match window_free.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                stdin.flush().await?;
                tokio::select! {
                    permit = window_free.acquire() => permit?,
                    () = run.done.cancelled() => return Ok(stdin),
                }
            }
        };
        permit.forget();
        if run.claimed.fetch_add(1, Ordering::Relaxed) >= run.total {
            stdin.flush().await?;
            return Ok(stdin);
        }
        id += 1;
        write_frame(&mut stdin, id, method, &run.params).await?;
    }
}

/// Reads answers, each freeing a place in the window, until every call of
/// the run is answered.
async fn read_answers(
    mut stdout: BufReader<ChildStdout>,
    run: &Run,
    window_free: &Semaphore,
) -> Result<BufReader<ChildStdout>> {
    // Cancelling the read loses nothing: when every call is answered, no
    // answer is partly read.
    tokio::select! {
        failed = read_loop(&mut stdout, run, window_free) => match failed? {},
        () = run.done.cancelled() => {}
    }
    Ok(stdout)
}

async fn read_loop(
    stdout: &mut BufReader<ChildStdout>,
    run: &Run,
    window_free: &Semaphore,
) -> Result<std::convert::Infallible> {
    let mut line = Vec::with_capacity(BUFFER);
    loop {
        line.clear();
        anyhow::ensure!(
            stdout.read_until(b'\n', &mut line).await? > 0,
            "the raw worker closed its stdout"
        );
        let reply: Reply<'_> = serde_json::from_slice(&line).context("the raw worker's answer")?;
        anyhow::ensure!(
            reply.id > 0 && reply.result.get().len() == run.params.get().len(),
            "answer {} is not an echo",
            reply.id
        );
        window_free.add_permits(1);
        if run.answered.fetch_add(1, Ordering::Relaxed) + 1 == run.total {
            run.done.cancel();
        }
    }
}

async fn write_frame(
    stdin: &mut BufWriter<ChildStdin>,
    id: u64,
    method: &str,
    params: &RawValue,
) -> std::io::Result<()> {
    stdin.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":").await?;
    stdin
        .write_all(itoa::Buffer::new().format(id).as_bytes())
        .await?;
    stdin.write_all(b",\"method\":\"").await?;
    stdin.write_all(method.as_bytes()).await?;
    stdin.write_all(b"\",\"params\":").await?;
    stdin.write_all(params.get().as_bytes()).await?;
    stdin.write_all(b"}\n").await
}
