//! One worker process under test: spawned in its own process group, its
//! stdout split into NDJSON frames and classified, its stderr drained.
//!
//! The conformance checks talk to the worker directly, not through the pool,
//! so that each check sees exactly the bytes the worker writes.

use std::collections::{HashSet, VecDeque};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pybridge_protocol::Message;
use rustix::process::{Pid, Signal};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};

/// The largest stdout frame the checker reads, as the pool's default.
pub(crate) const MAX_FRAME: usize = pybridge_protocol::DEFAULT_MAX_FRAME;
/// How many leading bytes of an offending frame a report quotes.
const HEAD: usize = 120;
/// How many stderr lines are kept for reports.
const STDERR_TAIL: usize = 5;
/// Frames buffered between the stdout reader and the check.
const FRAME_QUEUE: usize = 1024;

/// One frame the worker wrote on stdout.
#[derive(Debug, Clone)]
pub(crate) enum Frame {
    /// The line `READY`.
    Ready,
    /// A JSON-RPC 2.0 message (or batch), parsed.
    Message(Value),
    /// Anything else: not JSON, JSON but not JSON-RPC 2.0, or too large.
    Invalid { head: String, why: String },
}

/// What the stdout readers of every session saw, for the stdout isolation check.
#[derive(Debug, Default)]
pub(crate) struct Observations {
    inner: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    frames: u64,
    processes: u64,
    problems: Vec<String>,
}

impl Observations {
    fn lock(&self) -> MutexGuard<'_, Seen> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn problem(&self, text: String) {
        let mut seen = self.lock();
        if seen.problems.len() < 20 {
            seen.problems.push(text);
        }
    }

    /// Frames seen, processes started, and the problems found (at most 20).
    pub(crate) fn summary(&self) -> (u64, u64, Vec<String>) {
        let seen = self.lock();
        (seen.frames, seen.processes, seen.problems.clone())
    }
}

/// How the session ended up when a frame was awaited.
#[derive(Debug)]
pub(crate) enum Wait {
    /// Nothing arrived in time.
    Timeout,
    /// stdout closed (the worker exited or closed it).
    Closed,
}

/// A response awaited by id, and what else came before it.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) response: Value,
    /// Frames that arrived before the response, other than `$/log` notifications.
    pub(crate) before: Vec<Frame>,
}

/// One running worker: a process the checker spawned, or a connection to a
/// worker listening on a socket (`--connect`).
pub(crate) struct Session {
    /// The spawned process and its pid; `None` for a connection.
    child: Option<(Child, u32)>,
    /// The worker's stdin, or the connection's writing half.
    stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    frames: mpsc::Receiver<Frame>,
    sent: Arc<Mutex<HashSet<String>>>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    tasks: Vec<JoinHandle<()>>,
    next_id: i64,
    status: Option<ExitStatus>,
}

impl Session {
    /// Spawns `command` in its own process group with piped stdio.
    pub(crate) fn spawn(
        command: &[String],
        observations: &Arc<Observations>,
    ) -> Result<Session, String> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| "no worker command".to_string())?;
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("PYTHONUNBUFFERED", "1")
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| format!("cannot spawn {program}: {err}"))?;
        let pid = child.id().unwrap_or(0);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the worker's pipes were not created".into());
        };
        observations.lock().processes += 1;
        let (tx, frames) = mpsc::channel(FRAME_QUEUE);
        let sent = Arc::new(Mutex::new(HashSet::new()));
        let stderr_tail = Arc::new(Mutex::new(VecDeque::new()));
        let tasks = vec![
            tokio::spawn(read_stdout(
                stdout,
                tx,
                Arc::clone(observations),
                Arc::clone(&sent),
            )),
            tokio::spawn(drain_stderr(stderr, Arc::clone(&stderr_tail))),
        ];
        Ok(Session {
            child: Some((child, pid)),
            stdin: Some(Box::new(stdin)),
            frames,
            sent,
            stderr_tail,
            tasks,
            next_id: 1,
            status: None,
        })
    }

    /// Dials a listening worker and authenticates (the mutual HMAC
    /// challenge of docs/protocol.md); the protocol then runs on the
    /// connection as on a process's pipes.
    pub(crate) async fn connect(
        remote: &Remote,
        secret: Option<&pybridge_pool::Secret>,
        within: Duration,
        observations: &Arc<Observations>,
    ) -> Result<Session, String> {
        // One dial, not retried: a listener queues a connection that comes
        // while it still serves the previous one (its accept backlog), so a
        // dial that is refused, or a connection closed before the challenge,
        // means the listener is gone, and each check says so at once.
        let connection = timeout(
            within,
            pybridge_pool::connect(&remote.endpoint, secret, &remote.policy),
        )
        .await
        .map_err(|_| format!("{}: no handshake within {within:?}", remote.endpoint))?
        .map_err(|err| format!("{}: {err}", remote.endpoint))?;
        observations.lock().processes += 1;
        let (tx, frames) = mpsc::channel(FRAME_QUEUE);
        let sent = Arc::new(Mutex::new(HashSet::new()));
        // What arrived with the authentication lines is read first.
        let reader = std::io::Cursor::new(connection.buffered.to_vec()).chain(connection.reader);
        let tasks = vec![tokio::spawn(read_stdout(
            reader,
            tx,
            Arc::clone(observations),
            Arc::clone(&sent),
        ))];
        Ok(Session {
            child: None,
            stdin: Some(connection.writer),
            frames,
            sent,
            stderr_tail: Arc::default(),
            tasks,
            next_id: 1,
            status: None,
        })
    }

    /// The spawned process's pid; 0 for a connection.
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |(_, pid)| *pid)
    }

    /// Whether this is a connection rather than a spawned process.
    pub(crate) fn is_remote(&self) -> bool {
        self.child.is_none()
    }

    /// The next frame, waiting until `deadline`.
    pub(crate) async fn next_frame(&mut self, deadline: Instant) -> Result<Frame, Wait> {
        match timeout_at(deadline, self.frames.recv()).await {
            Ok(Some(frame)) => Ok(frame),
            Ok(None) => Err(Wait::Closed),
            Err(_) => Err(Wait::Timeout),
        }
    }

    /// Writes raw bytes to the worker's stdin within `within`.
    pub(crate) async fn write_raw(&mut self, bytes: &[u8], within: Duration) -> Result<(), String> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| "stdin is already closed".to_string())?;
        match timeout(within, async {
            stdin.write_all(bytes).await?;
            stdin.flush().await
        })
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(format!("writing to the worker's stdin failed: {err}")),
            Err(_) => Err(format!(
                "the worker did not read {} bytes from its stdin within {within:?}",
                bytes.len()
            )),
        }
    }

    /// Sends one message as an NDJSON line.
    pub(crate) async fn send(&mut self, message: &Value, within: Duration) -> Result<(), String> {
        let mut line = serde_json::to_vec(message).map_err(|e| e.to_string())?;
        line.push(b'\n');
        self.write_raw(&line, within).await
    }

    /// Reserves the next integer request id, known to the stdout reader as sent.
    pub(crate) fn next_id(&mut self) -> i64 {
        let id = self.next_id;
        self.next_id += 1;
        self.expect_id(&json!(id));
        id
    }

    /// Records an id as one a response may carry.
    pub(crate) fn expect_id(&self, id: &Value) {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string());
    }

    /// Sends a request with a fresh id; returns the id.
    pub(crate) async fn request(
        &mut self,
        method: &str,
        params: Option<Value>,
        within: Duration,
    ) -> Result<i64, String> {
        let id = self.next_id();
        let mut message = json!({"jsonrpc": "2.0", "id": id, "method": method});
        if let Some(params) = params {
            message["params"] = params;
        }
        self.send(&message, within).await?;
        Ok(id)
    }

    /// Sends a notification.
    pub(crate) async fn notify(
        &mut self,
        method: &str,
        params: Option<Value>,
        within: Duration,
    ) -> Result<(), String> {
        let mut message = json!({"jsonrpc": "2.0", "method": method});
        if let Some(params) = params {
            message["params"] = params;
        }
        self.send(&message, within).await
    }

    /// Reads frames until the response carrying `id`, until `deadline`.
    /// `$/log` notifications are skipped; everything else is kept in `before`.
    pub(crate) async fn answer(
        &mut self,
        id: i64,
        deadline: Instant,
    ) -> Result<Answer, (Wait, Vec<Frame>)> {
        let mut before = Vec::new();
        loop {
            let frame = match self.next_frame(deadline).await {
                Ok(frame) => frame,
                Err(wait) => return Err((wait, before)),
            };
            if let Frame::Message(message) = &frame {
                if message.get("id") == Some(&json!(id))
                    && (message.get("result").is_some() || message.get("error").is_some())
                {
                    return Ok(Answer {
                        response: message.clone(),
                        before,
                    });
                }
                if message.get("method") == Some(&json!("$/log")) {
                    continue;
                }
            }
            before.push(frame);
        }
    }

    /// Closes the worker's stdin (the exit signal of the protocol).
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for the worker's main process to exit, until `deadline`. For a
    /// connection, the worker closing it counts as exiting with status 0.
    pub(crate) async fn wait_exit(&mut self, deadline: Instant) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = match &mut self.child {
                Some((child, _)) => timeout_at(deadline, child.wait())
                    .await
                    .ok()
                    .and_then(Result::ok),
                None => loop {
                    match self.next_frame(deadline).await {
                        Ok(_) => {}
                        Err(Wait::Closed) => {
                            use std::os::unix::process::ExitStatusExt;
                            break Some(ExitStatus::from_raw(0));
                        }
                        Err(Wait::Timeout) => break None,
                    }
                },
            };
        }
        self.status
    }

    /// The exit status if the worker has already exited (never known at
    /// once for a connection).
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        if self.status.is_none()
            && let Some((child, _)) = &mut self.child
        {
            self.status = child.try_wait().ok().flatten();
        }
        self.status
    }

    /// The last stderr lines, joined, or an empty string.
    pub(crate) fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join(" | ")
    }

    /// Kills the worker's process group and reaps the process.
    pub(crate) async fn finish(mut self) {
        kill_group(self.pid());
        self.stdin = None;
        if self.status.is_none()
            && let Some((child, _)) = &mut self.child
        {
            let _ = timeout(Duration::from_secs(5), child.wait()).await;
        }
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("pid", &self.pid())
            .field("remote", &self.is_remote())
            .field("next_id", &self.next_id)
            .finish_non_exhaustive()
    }
}

/// A listening worker to check instead of spawning one (`--connect`).
#[derive(Debug, Clone)]
pub(crate) struct Remote {
    pub(crate) endpoint: pybridge_pool::Endpoint,
    pub(crate) secret: Option<pybridge_pool::Secret>,
    pub(crate) policy: pybridge_pool::RemotePolicy,
}

impl Drop for Session {
    fn drop(&mut self) {
        // Whatever happened to the check, nothing it started outlives it:
        // the group goes, grandchildren included.
        kill_group(self.pid());
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn kill_group(pid: u32) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, Signal::KILL);
    }
}

/// The first bytes of a frame, printable.
pub(crate) fn head_of(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(HEAD)];
    let text = String::from_utf8_lossy(cut);
    let mut text = format!("{text:?}");
    if bytes.len() > HEAD {
        text.push_str("...");
    }
    text
}

/// Splits stdout into lines (never buffering more than [`MAX_FRAME`] of one),
/// classifies each, records problems in `observations`, and queues the frames.
async fn read_stdout(
    mut stdout: impl AsyncRead + Unpin,
    frames: mpsc::Sender<Frame>,
    observations: Arc<Observations>,
    sent: Arc<Mutex<HashSet<String>>>,
) {
    let mut line: Vec<u8> = Vec::new();
    let mut oversized: Option<(Vec<u8>, usize)> = None;
    let mut first = true;
    // READY is valid once, before any other announcement (`$/log` may precede it).
    let mut announced = false;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match stdout.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut rest = &chunk[..n];
        while !rest.is_empty() {
            let (piece, complete) = match memchr(rest) {
                Some(end) => (&rest[..end], Some(end)),
                None => (rest, None),
            };
            if let Some((_, size)) = &mut oversized {
                *size += piece.len();
            } else if line.len() + piece.len() > MAX_FRAME {
                let size = line.len() + piece.len();
                let mut head = std::mem::take(&mut line);
                head.extend_from_slice(&piece[..piece.len().min(HEAD)]);
                oversized = Some((head, size));
            } else {
                line.extend_from_slice(piece);
            }
            let Some(end) = complete else { break };
            rest = &rest[end + 1..];
            let frame = match oversized.take() {
                Some((head, size)) => Frame::Invalid {
                    head: head_of(&head),
                    why: format!("a line of {size} bytes, above the {MAX_FRAME}-byte frame limit"),
                },
                None => {
                    let bytes = std::mem::take(&mut line);
                    if bytes.trim_ascii().is_empty() {
                        continue;
                    }
                    let frame = classify(&bytes, announced, &sent);
                    announced |= match &frame {
                        Frame::Ready => true,
                        Frame::Message(m) => m.get("method") == Some(&json!("$/ready")),
                        Frame::Invalid { .. } => false,
                    };
                    frame
                }
            };
            record(&observations, &frame, first);
            first = false;
            if frames.send(frame).await.is_err() {
                return;
            }
        }
    }
    if !line.trim_ascii().is_empty() {
        let frame = Frame::Invalid {
            head: head_of(&line),
            why: "an unterminated last line (no newline before stdout closed)".into(),
        };
        record(&observations, &frame, first);
        let _ = frames.send(frame).await;
    }
}

fn memchr(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|b| *b == b'\n')
}

fn classify(bytes: &[u8], announced: bool, sent: &Mutex<HashSet<String>>) -> Frame {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let invalid = |why: String| Frame::Invalid {
        head: head_of(bytes),
        why,
    };
    if bytes.trim_ascii() == b"READY" {
        return if announced {
            invalid("READY after the worker had already announced itself".into())
        } else {
            Frame::Ready
        };
    }
    match Message::from_slice(bytes) {
        Err(err) => return invalid(format!("not a JSON-RPC 2.0 message: {err}")),
        Ok(Message::Batch(entries)) => {
            if let Some(Err(err)) = entries.iter().find(|e| e.is_err()) {
                return invalid(format!(
                    "a batch entry is not a JSON-RPC 2.0 message: {err}"
                ));
            }
        }
        Ok(_) => {}
    }
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(err) => return invalid(format!("not JSON: {err}")),
    };
    let entries: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    for entry in entries {
        let is_response = entry.get("result").is_some() || entry.get("error").is_some();
        let id = entry.get("id").cloned().unwrap_or(Value::Null);
        if is_response && !id.is_null() {
            let known = sent
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&id.to_string());
            if !known {
                return invalid(format!("a response with id {id}, which no request carried"));
            }
        }
        if is_response && id.is_null() && entry.get("result").is_some() {
            return invalid("a successful response with id null".into());
        }
        if entry.get("method").is_some() && entry.get("id").is_some() {
            return invalid("a request from the worker (workers answer, they do not call)".into());
        }
    }
    Frame::Message(value)
}

fn record(observations: &Observations, frame: &Frame, first: bool) {
    observations.lock().frames += 1;
    if let Frame::Invalid { head, why } = frame {
        let at = if first { " (first frame)" } else { "" };
        observations.problem(format!("{why}{at}: {head}"));
    }
}

/// Keeps the last stderr lines for reports; the pipe is always drained so the
/// worker never blocks on it.
async fn drain_stderr(mut stderr: impl AsyncRead + Unpin, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut chunk = vec![0u8; 16 * 1024];
    let mut partial: Vec<u8> = Vec::new();
    loop {
        let n = match stderr.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut rest = &chunk[..n];
        while let Some(end) = memchr(rest) {
            partial.extend_from_slice(&rest[..end.min(300)]);
            push_line(&tail, &partial);
            partial.clear();
            rest = &rest[end + 1..];
        }
        // A line is kept to its first 300 bytes.
        let room = 300usize.saturating_sub(partial.len());
        partial.extend_from_slice(&rest[..rest.len().min(room)]);
    }
    push_line(&tail, &partial);
}

fn push_line(tail: &Mutex<VecDeque<String>>, line: &[u8]) {
    let text = String::from_utf8_lossy(line).trim_end().to_string();
    if text.is_empty() {
        return;
    }
    let mut tail = tail.lock().unwrap_or_else(|e| e.into_inner());
    if tail.len() == STDERR_TAIL {
        tail.pop_front();
    }
    tail.push_back(text);
}
