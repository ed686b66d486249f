//! The raw baseline: the least code that can pipeline JSON-RPC calls to Python
//! over pipes. A minimal Python echo loop that reads what is available and
//! answers it with one write, and a minimal tokio client with one writer task
//! that batches frames and one reader task that routes answers by id. No
//! pybridge code: every pybridge figure is reported as a ratio to this one,
//! measured in the same run.

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use bytes::{Buf, Bytes, BytesMut};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

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

type Waiters = Arc<Mutex<HashMap<u64, oneshot::Sender<Box<RawValue>>>>>;

/// One raw worker process and its client.
#[derive(Debug)]
pub struct RawWorker {
    child: Child,
    frames: mpsc::Sender<Bytes>,
    waiters: Waiters,
    next_id: AtomicU64,
    method: &'static str,
    tasks: [JoinHandle<()>; 2],
}

#[derive(Deserialize)]
struct Reply {
    id: u64,
    result: Box<RawValue>,
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
        let mut stdin = child.stdin.take().context("stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let mut ready = String::new();
        stdout.read_line(&mut ready).await?;
        anyhow::ensure!(ready.trim() == "READY", "raw worker said {ready:?}");
        let waiters: Waiters = Arc::default();
        let (frames, mut inbox) = mpsc::channel::<Bytes>(1024);
        let writer = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(64 * 1024);
            while let Some(first) = inbox.recv().await {
                batch.extend_from_slice(&first);
                while let Ok(more) = inbox.try_recv() {
                    batch.extend_from_slice(&more);
                }
                if stdin.write_all(&batch).await.is_err() {
                    return;
                }
                batch.clear();
            }
        });
        let routes = Arc::clone(&waiters);
        let reader = tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            loop {
                if buf.capacity() - buf.len() < 16 * 1024 {
                    buf.reserve(64 * 1024);
                }
                match stdout.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                while let Some(end) = buf.iter().position(|&b| b == b'\n') {
                    if let Ok(reply) = serde_json::from_slice::<Reply>(&buf[..end]) {
                        let waiter = routes.lock().ok().and_then(|mut w| w.remove(&reply.id));
                        if let Some(waiter) = waiter {
                            let _ = waiter.send(reply.result);
                        }
                    }
                    buf.advance(end + 1);
                }
            }
        });
        Ok(RawWorker {
            child,
            frames,
            waiters,
            next_id: AtomicU64::new(1),
            method,
            tasks: [writer, reader],
        })
    }

    /// Echoes `params` through the worker.
    pub async fn call(&self, params: &RawValue) -> Result<Box<RawValue>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .insert(id, tx);
        let mut frame = Vec::with_capacity(params.get().len() + 64);
        frame.extend_from_slice(b"{\"jsonrpc\":\"2.0\",\"id\":");
        frame.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        frame.extend_from_slice(b",\"method\":\"");
        frame.extend_from_slice(self.method.as_bytes());
        frame.extend_from_slice(b"\",\"params\":");
        frame.extend_from_slice(params.get().as_bytes());
        frame.extend_from_slice(b"}\n");
        self.frames
            .send(Bytes::from(frame))
            .await
            .context("writer gone")?;
        rx.await.context("reader gone")
    }
}

impl Drop for RawWorker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        let _ = self.child.start_kill();
    }
}

/// Several raw workers, called round-robin.
#[derive(Debug)]
pub struct RawPool {
    workers: Vec<RawWorker>,
    next: AtomicUsize,
}

impl RawPool {
    /// Starts `n` raw workers.
    pub async fn spawn(python: &str, n: usize) -> Result<RawPool> {
        let mut workers = Vec::with_capacity(n);
        for _ in 0..n {
            workers.push(RawWorker::spawn(python).await?);
        }
        Ok(RawPool {
            workers,
            next: AtomicUsize::new(0),
        })
    }

    /// Echoes `params` through the next worker.
    pub async fn call(&self, params: &RawValue) -> Result<Box<RawValue>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        self.workers[i].call(params).await
    }
}
