//! One worker process: spawn, handshake, the three I/O tasks, and the end of
//! its life (crash, kill, or graceful stop), after which every call it held
//! is failed at once.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::BytesMut;
use pybridge_protocol::{Codec, ErrorCode, ErrorObject, Id, Message, Response, write_response};
use rustix::process::{Pid, Signal};
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, info, warn};

use crate::admission::Settled;
use crate::events::{ExitReason, PoolEvent};
use crate::handshake::{Ready, manifest_difference};
use crate::pipe::Pipe;
use crate::shared::{Shared, SupervisorMsg};
use crate::stats::WorkerState;
use crate::worker::{Outgoing, Worker, WorkerParts, lock};
use crate::{FailureReason, Handshake, WorkerFailure, WorkerId};

/// How much the reader asks the pipe for at a time.
const READ_CHUNK: usize = 64 * 1024;
/// The most frames one write system call carries.
const MAX_BATCH: usize = 64;
/// The longest stderr line kept or logged; longer lines are cut.
const MAX_STDERR_LINE: usize = 2048;
/// Frames that fail to decode are logged at warn level this many times per
/// worker, then at debug level: a worker spewing garbage must not flood logs.
const LOUD_BAD_FRAMES: u64 = 10;
/// How long to wait for a dead worker's last stderr lines. The group is
/// killed and reaped first, so the pipe ends at once and this only bounds a
/// process outside the group holding it open; as long as the stdout
/// reader's bound, so a busy runtime still reads the line that says why a
/// worker died (the reason a crash loop reports).
const STDERR_LINGER: Duration = READER_LINGER;
/// How long a dead worker's stdout is read for answers still in the pipe.
pub(crate) const READER_LINGER: Duration = Duration::from_millis(500);

/// Sends `signal` to the process group led by `pid`. Errors mean the group is
/// already gone, which is what the caller wants anyway.
pub(crate) fn signal_group(pid: u32, signal: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, signal);
    }
}

/// Kills the worker's process group if its owner is dropped before the group
/// was reaped, so no grandchild survives a cancelled task.
struct GroupGuard {
    pid: u32,
    armed: bool,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.armed {
            signal_group(self.pid, Signal::KILL);
        }
    }
}

/// How a serving worker's life ended.
enum End {
    Exited(Option<ExitStatus>),
    ReaderClosed,
    Killed,
    Stopped,
    PoolDropped,
}

/// Spawns a worker in `slot` and runs it until its process ends, then
/// reports to the supervisor. Owned by the pool's task tracker.
pub(crate) async fn run_worker(shared: Arc<Shared>, id: WorkerId, slot: usize, restarts: u64) {
    let spec = &shared.config.spec;
    let mut command = Command::new(&shared.program);
    command
        .args(&spec.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if spec.env_policy == crate::EnvPolicy::Clear {
        command.env_clear();
    }
    if !spec.env.iter().any(|(k, _)| k == "PYTHONUNBUFFERED") {
        command.env("PYTHONUNBUFFERED", "1");
    }
    command.envs(spec.env.iter().map(|(k, v)| (k, v)));
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            let reason = format!("cannot spawn {}: {err}", shared.program.display());
            start_failed(&shared, id, slot, reason).await;
            return;
        }
    };
    let pid = child.id().unwrap_or(0);
    let mut group = GroupGuard { pid, armed: true };
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        start_failed(
            &shared,
            id,
            slot,
            "the worker's pipes were not created".into(),
        )
        .await;
        return;
    };
    metrics::counter!(crate::metrics::WORKERS_SPAWNED).increment(1);
    shared.emit(PoolEvent::WorkerSpawned { worker: id, pid });
    debug!(worker = %id, pid, slot, "worker spawned");

    let cap = shared.config.max_in_flight.get();
    let (outbox, inbox) = mpsc::channel(cap * 2 + 64);
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    let recycle_after = shared
        .config
        .recycle
        .max_requests
        .map(|n| jittered(n, shared.config.recycle.jitter));
    let worker = Arc::new(Worker::new(WorkerParts {
        id,
        slot,
        pid,
        restarts,
        recycle_after,
        cap,
        outbox,
        stderr_tail: Arc::clone(&tail),
        endpoint: None,
    }));
    let writer_stop = CancellationToken::new();
    worker.pipe.put(Box::new(stdin));
    let mut writer = AbortOnDropHandle::new(tokio::spawn(write_loop(
        Arc::clone(&worker.pipe),
        inbox,
        writer_stop.clone(),
        Arc::downgrade(&worker),
    )));
    let mut stderr_task = AbortOnDropHandle::new(tokio::spawn(stderr_loop(
        stderr,
        tail,
        id,
        shared.config.stderr_tail_lines,
    )));
    let (ready_tx, ready_rx) = oneshot::channel();
    let junk = Arc::new(Mutex::new(None));
    let mut reader = AbortOnDropHandle::new(tokio::spawn(read_loop(
        stdout,
        BytesMut::new(),
        Arc::clone(&worker),
        Arc::clone(&shared),
        shared.codec.clone(),
        ready_tx,
        Arc::clone(&junk),
    )));
    shared.admission.join(Arc::clone(&worker));

    let handshake = async {
        let announced = match spec.handshake {
            Handshake::Announce => ready_rx
                .await
                .map_err(|_| "stdout closed before ready".to_string())??,
            Handshake::Ping => ping(&shared, &worker, spec.startup_timeout)
                .await
                .map(|_| Ready::default())?,
            Handshake::None => Ready::default(),
        };
        admit(&shared, &worker, announced)
    };
    let ready = tokio::select! {
        r = timeout(spec.startup_timeout, handshake) => match r {
            Ok(r) => r,
            Err(_) => Err(format!("not ready within {:?}", spec.startup_timeout)),
        },
        status = child.wait() => Err(match status {
            Ok(status) => format!("exited before ready ({status})"),
            Err(err) => format!("lost before ready: {err}"),
        }),
        () = shared.token.cancelled() => Err("the pool was dropped".to_string()),
        () = worker.kill.cancelled() => Err("killed before ready".to_string()),
        () = worker.stop.cancelled() => Err("stopped before ready".to_string()),
        () = shared.stop_all.cancelled() => Err("stopped before ready".to_string()),
    };
    if let Err(reason) = ready {
        worker.set_dead();
        signal_group(pid, Signal::KILL);
        let status = timeout(Duration::from_secs(2), child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        group.armed = false;
        let _ = timeout(STDERR_LINGER, &mut stderr_task).await;
        let tail = worker.stderr_tail();
        let mut reason = reason;
        if let Some(status) = status.filter(|_| !reason.contains("exited")) {
            reason.push_str(&format!(" ({status})"));
        }
        if let Some(junk) = lock(&junk).as_deref() {
            reason.push_str(&format!("; stdout before the handshake: {junk}"));
        }
        if let Some(last) = tail.last() {
            reason.push_str(&format!("; stderr: {last}"));
        }
        writer_stop.cancel();
        let failure = Arc::new(WorkerFailure {
            worker: id,
            pid: Some(pid),
            reason: FailureReason::Exited,
            status: status.map(|s| s.to_string()),
            stderr_tail: tail,
        });
        worker.lot.close(&failure, &[]);
        shared.admission.leave(id);
        start_failed(&shared, id, slot, reason).await;
        return;
    }
    worker.set_ready();
    let startup = worker.spawned_at.elapsed();
    info!(worker = %id, pid, ?startup, "worker ready");
    shared.emit(PoolEvent::WorkerReady {
        worker: id,
        pid,
        startup,
    });
    // The supervisor learns first, so a dispatch that follows sees a ready worker counted.
    let _ = shared
        .supervisor
        .send(SupervisorMsg::Ready { worker: id })
        .await;
    shared.admission.dispatch();

    let end = tokio::select! {
        status = child.wait() => End::Exited(status.ok()),
        _ = &mut reader => End::ReaderClosed,
        () = worker.kill.cancelled() => End::Killed,
        () = worker.stop.cancelled() => End::Stopped,
        () = shared.stop_all.cancelled() => {
            worker.stop_with(FailureReason::Shutdown);
            End::Stopped
        }
        () = shared.token.cancelled() => End::PoolDropped,
    };
    let reader_done = matches!(end, End::ReaderClosed);
    if matches!(end, End::Stopped) {
        // Still answering its calls while it drains; no new ones are routed here.
        worker.set_draining();
    } else {
        worker.set_dead();
    }
    let (status, exit_reason) = match end {
        End::Exited(status) => (status, ExitReason::Crashed(FailureReason::Exited)),
        End::ReaderClosed => {
            // stdout closed: the worker died, or broke the protocol and is
            // killed now; either way it cannot answer any more.
            match timeout(Duration::from_millis(200), child.wait()).await {
                Ok(Ok(status)) => (Some(status), ExitReason::Crashed(FailureReason::Exited)),
                _ => {
                    worker.kill_with(FailureReason::ProtocolBroken);
                    signal_group(pid, Signal::KILL);
                    let status = child.wait().await.ok();
                    (status, ExitReason::Crashed(FailureReason::ProtocolBroken))
                }
            }
        }
        End::Killed => {
            signal_group(pid, Signal::KILL);
            let reason = lock(&worker.end_reason)
                .clone()
                .unwrap_or(FailureReason::Hung);
            (child.wait().await.ok(), ExitReason::Crashed(reason))
        }
        End::Stopped => (
            stop_gracefully(&shared, &worker, &mut child, &writer_stop).await,
            ExitReason::Stopped,
        ),
        End::PoolDropped => {
            signal_group(pid, Signal::KILL);
            (child.wait().await.ok(), ExitReason::Stopped)
        }
    };
    worker.set_dead();
    // Stray grandchildren die with the group; the leader is reaped, so the
    // group id cannot have been reused while members remain.
    signal_group(pid, Signal::KILL);
    group.armed = false;
    if !reader_done {
        // Answers written just before the exit may still be in the pipe:
        // they are read to its end (bounded, in case a process outside the
        // group holds it open) before the worker's calls are failed, so an
        // answer the worker gave is never lost to its exit.
        let _ = timeout(READER_LINGER, &mut reader).await;
    }

    writer_stop.cancel();
    let unwritten = (&mut writer).await.unwrap_or_default();
    let _ = timeout(STDERR_LINGER, &mut stderr_task).await;
    let reason = lock(&worker.end_reason)
        .clone()
        .unwrap_or(match &exit_reason {
            ExitReason::Crashed(reason) => reason.clone(),
            _ => FailureReason::Shutdown,
        });
    let failure = Arc::new(WorkerFailure {
        worker: id,
        pid: Some(pid),
        reason,
        status: status.map(|s| s.to_string()),
        stderr_tail: worker.stderr_tail(),
    });
    let failed_calls = worker.lot.close(&failure, &unwritten);
    shared.admission.leave(id);
    shared
        .retired_served
        .fetch_add(worker.served.load(Ordering::Relaxed), Ordering::Relaxed);

    let reason_label = match &exit_reason {
        ExitReason::Crashed(_) => "crashed",
        ExitReason::Stopped => "stopped",
    };
    metrics::counter!(crate::metrics::WORKERS_EXITED, crate::metrics::LABEL_REASON => reason_label)
        .increment(1);
    if matches!(exit_reason, ExitReason::Crashed(_)) {
        warn!(worker = %id, pid, failed_calls, failure = %failure, "worker failed");
    } else {
        info!(worker = %id, pid, "worker stopped");
    }
    let crashed = matches!(exit_reason, ExitReason::Crashed(_));
    shared.emit(PoolEvent::WorkerExited {
        worker: id,
        pid,
        reason: exit_reason,
        status: failure.status.clone(),
        failed_calls,
    });
    let _ = shared
        .supervisor
        .send(SupervisorMsg::Exited {
            worker: id,
            crashed,
        })
        .await;
}

/// Decides whether the pool uses a worker that announced `ready`: its
/// protocol major must be the pool's and its manifest the pool's (the first
/// ready worker's). Lowers the worker's cap to its `max_concurrency`.
pub(crate) fn admit(shared: &Shared, worker: &Worker, ready: Ready) -> Result<(), String> {
    ready.check_version()?;
    let pool_manifest = shared.manifest.get_or_init(|| ready.manifest.clone());
    if let Some(difference) =
        manifest_difference(pool_manifest.as_deref(), ready.manifest.as_deref())
    {
        warn!(worker = %worker.id, pid = worker.pid, difference = %difference, "worker not used: its manifest differs from the pool's");
        shared.emit(PoolEvent::ManifestMismatch {
            worker: worker.id,
            pid: worker.pid,
        });
        return Err(difference);
    }
    if let Some(n) = ready.max_concurrency {
        worker.lot.limit(n);
    }
    if let Some(version) = ready.protocol_version {
        let _ = worker.protocol_version.set(version);
    }
    Ok(())
}

pub(crate) async fn start_failed(shared: &Shared, worker: WorkerId, slot: usize, reason: String) {
    metrics::counter!(crate::metrics::START_FAILURES).increment(1);
    warn!(slot, reason = %reason, "worker failed to start");
    let reason: Arc<str> = reason.into();
    shared.emit(PoolEvent::StartFailed {
        reason: Arc::clone(&reason),
    });
    let _ = shared
        .supervisor
        .send(SupervisorMsg::StartFailed { worker, reason })
        .await;
}

/// Draws a worker's recycling threshold within ±`jitter` of `n`.
pub(crate) fn jittered(n: u64, jitter: f64) -> u64 {
    let spread = (n as f64 * jitter) as u64;
    if spread == 0 {
        return n;
    }
    let offset = rand::random_range(0..=2 * spread);
    (n - spread.min(n - 1) + offset).max(1)
}

/// Drain, close stdin, then SIGTERM and SIGKILL to the group, each after a grace period.
async fn stop_gracefully(
    shared: &Shared,
    worker: &Worker,
    child: &mut Child,
    writer_stop: &CancellationToken,
) -> Option<ExitStatus> {
    let drain = if shared.admission.is_closing() {
        shared.config.shutdown.drain_timeout
    } else {
        shared.config.recycle.drain_timeout
    };
    let drain_until = Instant::now() + drain;
    while worker.in_flight() > 0 && Instant::now() < drain_until {
        tokio::select! {
            status = child.wait() => return status.ok(),
            () = sleep(Duration::from_millis(10)) => {}
        }
    }
    // Closing stdin is the polite way to ask a worker to leave.
    writer_stop.cancel();
    let grace = shared.config.shutdown.exit_grace;
    if let Ok(status) = timeout(grace, child.wait()).await {
        return status.ok();
    }
    signal_group(worker.pid, Signal::TERM);
    if let Ok(status) = timeout(grace, child.wait()).await {
        return status.ok();
    }
    warn!(worker = %worker.id, pid = worker.pid, "worker ignored SIGTERM; killing it");
    signal_group(worker.pid, Signal::KILL);
    child.wait().await.ok()
}

#[derive(Deserialize)]
struct Pong {
    #[serde(default)]
    rss_bytes: Option<u64>,
}

/// Sends `$/ping` to one worker outside the slot accounting; returns its RSS if it said.
pub(crate) async fn ping(
    shared: &Shared,
    worker: &Worker,
    within: Duration,
) -> Result<Option<u64>, String> {
    let id = shared.next_request_id();
    let frame = shared
        .frame_with(|buf| pybridge_protocol::write_request(buf, &Id::Number(id), "$/ping", None))
        .map_err(|e| e.to_string())?;
    let mut ping = worker.lot.register_ping(id).map_err(|e| e.to_string())?;
    let sent = Instant::now();
    worker
        .outbox
        .send(Outgoing {
            id: Some(id),
            frame,
        })
        .await
        .map_err(|_| "the worker's stdin is closed".to_string())?;
    let answer = timeout(within, &mut ping.pending).await;
    ping.settled = answer.is_ok();
    match answer {
        Ok(Ok(response)) => {
            let rtt = sent.elapsed();
            worker.set_rtt(rtt);
            if let Some(place) = worker.endpoint.and_then(|i| shared.endpoints.get(i)) {
                place.set_rtt(rtt);
            }
            match response.result {
                Ok(raw) => Ok(serde_json::from_str::<Pong>(raw.get())
                    .ok()
                    .and_then(|p| p.rss_bytes)),
                Err(error) => Err(format!("ping answered with an error: {error}")),
            }
        }
        Ok(Err(_)) => Err("the worker failed during the ping".to_string()),
        Err(_) => Err(format!("no answer to ping within {within:?}")),
    }
}

/// Writes frames to the worker (a process's stdin, or a connection, parked
/// in `pipe`), as many per system call as are queued; `busy` is the worker,
/// whose calls in flight decide whether a write waits for the frames of
/// callers about to run. The pipe is closed when this ends, however it ends.
/// Returns the ids of requests that were never written.
pub(crate) async fn write_loop(
    pipe: Arc<Pipe>,
    mut inbox: mpsc::Receiver<Outgoing>,
    stop: CancellationToken,
    busy: Weak<Worker>,
) -> Vec<i64> {
    /// Closes the pipe when the loop ends, or is aborted while the write
    /// half is parked (a write half the loop holds dies with it).
    struct CloseOnDrop(Arc<Pipe>);
    impl Drop for CloseOnDrop {
        fn drop(&mut self) {
            self.0.close();
        }
    }
    let pipe = CloseOnDrop(pipe);
    let mut batch: Vec<Outgoing> = Vec::with_capacity(MAX_BATCH);
    let mut unwritten = Vec::new();
    loop {
        let first = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            message = inbox.recv() => match message {
                Some(message) => message,
                None => break,
            },
        };
        batch.push(first);
        drain(&mut inbox, &mut batch);
        // With calls already at the worker, the frames of callers that are
        // runnable now join this write: one system call (and one wake-up of
        // the worker) for many frames, where writing at once would send
        // them one by one. A lone call is written without the detour.
        if batch.len() < MAX_BATCH && busy.upgrade().is_some_and(|w| w.in_flight() > batch.len()) {
            tokio::task::yield_now().await;
            drain(&mut inbox, &mut batch);
        }
        let Some((mut writer, rest)) = pipe.0.take() else {
            unwritten.extend(batch.iter().filter_map(|m| m.id));
            break;
        };
        // The end of a frame a caller began goes before any other.
        let written = match rest {
            Some(rest) => writer.write_all(&rest).await.map_err(|_| 0),
            None => Ok(()),
        };
        let written = match written {
            Ok(()) => write_batch(&mut writer, &batch).await,
            Err(none) => Err(none),
        };
        pipe.0.put(writer);
        if let Err(written) = written {
            unwritten.extend(batch[written..].iter().filter_map(|m| m.id));
            break;
        }
        batch.clear();
    }
    // No caller may write once the loop is over, and the worker sees the end
    // of its input.
    drop(pipe);
    // No sender may slip a frame in after the final drain.
    inbox.close();
    while let Ok(message) = inbox.try_recv() {
        unwritten.extend(message.id);
    }
    unwritten
}

fn drain(inbox: &mut mpsc::Receiver<Outgoing>, batch: &mut Vec<Outgoing>) {
    while batch.len() < MAX_BATCH {
        match inbox.try_recv() {
            Ok(message) => batch.push(message),
            Err(_) => break,
        }
    }
}

/// Writes every frame of the batch; on failure returns how many frames may
/// have reached the worker (a partly written frame counts as written).
async fn write_batch<W: AsyncWrite + Unpin>(
    stdin: &mut W,
    batch: &[Outgoing],
) -> Result<(), usize> {
    if let [only] = batch {
        return stdin.write_all(&only.frame).await.map_err(|_| 1);
    }
    let (mut index, mut offset) = (0, 0);
    loop {
        // Frames with nothing left need no system call (a caller's wake-up
        // is empty): a write of nothing returns 0, which reads as a closed
        // pipe.
        while index < batch.len() && batch[index].frame.len() == offset {
            index += 1;
            offset = 0;
        }
        if index == batch.len() {
            return Ok(());
        }
        let slices: Vec<IoSlice<'_>> = std::iter::once(&batch[index].frame[offset..])
            .chain(batch[index + 1..].iter().map(|m| &m.frame[..]))
            .map(IoSlice::new)
            .collect();
        let mut written = match stdin.write_vectored(&slices).await {
            Ok(0) | Err(_) => return Err(index + usize::from(offset > 0)),
            Ok(n) => n,
        };
        while written > 0 && index < batch.len() {
            let left = batch[index].frame.len() - offset;
            if written >= left {
                written -= left;
                index += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
    }
}

/// Reads frames from the worker (a process's stdout, or a connection) and
/// routes them, starting with what `buf` already holds. Ends at EOF or on a
/// read error.
pub(crate) async fn read_loop<R: AsyncRead + Unpin>(
    mut stdout: R,
    mut buf: BytesMut,
    worker: Arc<Worker>,
    shared: Arc<Shared>,
    mut codec: Codec,
    ready: oneshot::Sender<Result<Ready, String>>,
    junk: Arc<Mutex<Option<String>>>,
) {
    use tokio_util::codec::Decoder;
    let mut router = Router {
        worker,
        shared,
        ready: Some(ready),
        bad_frames: 0,
        junk,
    };
    buf.reserve(READ_CHUNK);
    // Bytes that arrived with the connection's authentication come first.
    while let Ok(Some(item)) = codec.decode(&mut buf) {
        router.frame(item, codec.take_rejected_head());
    }
    loop {
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        match stdout.read_buf(&mut buf).await {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) => {
                debug!(worker = %router.worker.id, error = %err, "stdout read failed");
                return;
            }
        }
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(item)) => router.frame(item, codec.take_rejected_head()),
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
    while let Ok(Some(item)) = codec.decode_eof(&mut buf) {
        router.frame(item, codec.take_rejected_head());
    }
}

/// Reads the top-level `"id"` of a JSON object from its first bytes, if it is
/// an integer and appears there. Strings and nested values are skipped, so an
/// `"id"` inside a result is never mistaken for the response's own.
pub(crate) fn id_in_head(head: &[u8]) -> Option<i64> {
    let (mut depth, mut i) = (0usize, 0usize);
    let mut key_start = None;
    while i < head.len() {
        match head[i] {
            b'"' => {
                let start = i + 1;
                i += 1;
                while i < head.len() && head[i] != b'"' {
                    i += if head[i] == b'\\' { 2 } else { 1 };
                }
                if depth == 1 {
                    key_start = Some((start, i));
                }
            }
            b'{' | b'[' => {
                depth += 1;
                key_start = None;
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b':' if depth == 1 => {
                if key_start.and_then(|(s, e)| head.get(s..e)) == Some(b"id".as_slice()) {
                    let rest = head.get(i + 1..)?.trim_ascii_start();
                    let end = rest
                        .iter()
                        .position(|b| !(b.is_ascii_digit() || *b == b'-'))?;
                    return std::str::from_utf8(&rest[..end]).ok()?.parse().ok();
                }
                key_start = None;
            }
            b',' => key_start = None,
            _ => {}
        }
        i += 1;
    }
    None
}

struct Router {
    worker: Arc<Worker>,
    shared: Arc<Shared>,
    ready: Option<oneshot::Sender<Result<Ready, String>>>,
    bad_frames: u64,
    /// The last junk line seen before the handshake, for the start failure.
    junk: Arc<Mutex<Option<String>>>,
}

/// The most bytes of a junk line quoted in logs and errors.
const JUNK_QUOTED: usize = 80;

/// The first bytes of a line, escaped so that any byte prints as text.
pub(crate) fn quote_head(line: &[u8]) -> String {
    let head = &line[..line.len().min(JUNK_QUOTED)];
    let mut quoted = head.escape_ascii().to_string();
    if line.len() > JUNK_QUOTED {
        quoted.push_str("...");
    }
    quoted
}

#[derive(Deserialize)]
struct LogParams {
    #[serde(default)]
    level: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    fields: Option<Box<serde_json::value::RawValue>>,
}

impl Router {
    fn frame(
        &mut self,
        item: Result<bytes::Bytes, pybridge_protocol::Error>,
        head: Option<bytes::Bytes>,
    ) {
        let frame = match item {
            Ok(frame) => frame,
            Err(err) => {
                if let Some(id) = head.as_deref().and_then(id_in_head) {
                    self.too_large(id);
                }
                let kind = match err {
                    pybridge_protocol::Error::FrameTooLarge { .. } => "too_large",
                    pybridge_protocol::Error::InvalidUtf8 { .. } => "invalid_utf8",
                    _ => "bad_header",
                };
                self.bad_frame(kind, &err);
                return;
            }
        };
        if frame.trim_ascii() == b"READY" {
            if let Some(ready) = self.ready.take() {
                let _ = ready.send(Ok(Ready::default()));
            }
            return;
        }
        match Message::from_frame(&frame) {
            Ok(message) => self.message(message),
            Err(err) => {
                let kind = match err {
                    pybridge_protocol::Error::Parse { .. } => "invalid_json",
                    pybridge_protocol::Error::InvalidUtf8 { .. } => "invalid_utf8",
                    _ => "invalid_message",
                };
                if self.worker.state() == WorkerState::Starting {
                    self.junk_before_handshake(kind, &frame);
                } else {
                    self.bad_line(kind, &err, &frame);
                }
            }
        }
    }

    /// Fails the call whose answer was too large to read, instead of leaving
    /// it to its deadline.
    fn too_large(&mut self, id: i64) {
        let limit = self.shared.config.spec.max_frame;
        let held = crate::worker::HeldFailure::too_large(self.worker.id, limit);
        // A call already given up on is settled too: its answer came, too
        // large or not, and its slot is free.
        self.worker.lot.fail_one(id, held);
    }

    /// A line on stdout before the handshake that is no message: a `print()`
    /// at import time, say. Reported with its first bytes, loudly, because
    /// it usually explains why the worker never became ready.
    fn junk_before_handshake(&mut self, kind: &'static str, line: &[u8]) {
        metrics::counter!(crate::metrics::BAD_FRAMES, crate::metrics::LABEL_KIND => kind)
            .increment(1);
        self.bad_frames += 1;
        let first_bytes = quote_head(line);
        if self.bad_frames <= LOUD_BAD_FRAMES {
            warn!(worker = %self.worker.id, kind, first_bytes = %first_bytes, "worker wrote junk on stdout before its handshake; skipped");
        } else {
            debug!(worker = %self.worker.id, kind, first_bytes = %first_bytes, "worker wrote junk on stdout before its handshake; skipped");
        }
        *lock(&self.junk) = Some(first_bytes);
    }

    fn bad_frame(&mut self, kind: &'static str, err: &pybridge_protocol::Error) {
        metrics::counter!(crate::metrics::BAD_FRAMES, crate::metrics::LABEL_KIND => kind)
            .increment(1);
        self.bad_frames += 1;
        if self.bad_frames <= LOUD_BAD_FRAMES {
            warn!(worker = %self.worker.id, kind, error = %err, "worker sent a bad frame; skipped");
        } else {
            debug!(worker = %self.worker.id, kind, error = %err, "worker sent a bad frame; skipped");
        }
    }

    /// A line that is no message after the handshake (a stray `print()`, say):
    /// logged like any bad frame, with its first bytes.
    fn bad_line(&mut self, kind: &'static str, err: &pybridge_protocol::Error, line: &[u8]) {
        metrics::counter!(crate::metrics::BAD_FRAMES, crate::metrics::LABEL_KIND => kind)
            .increment(1);
        self.bad_frames += 1;
        let first_bytes = quote_head(line);
        if self.bad_frames <= LOUD_BAD_FRAMES {
            warn!(worker = %self.worker.id, kind, error = %err, first_bytes = %first_bytes, "worker sent a bad frame; skipped");
        } else {
            debug!(worker = %self.worker.id, kind, error = %err, first_bytes = %first_bytes, "worker sent a bad frame; skipped");
        }
    }

    fn message(&mut self, message: Message) {
        match message {
            Message::Response(response) => self.response(response),
            Message::Notification(n) => match n.method.as_str() {
                "$/ready" => {
                    if let Some(ready) = self.ready.take() {
                        let _ = ready.send(Ready::from_params(n.params.as_deref()));
                    }
                }
                "$/log" => self.log(n.params.as_deref()),
                other => {
                    debug!(worker = %self.worker.id, method = other, "notification from worker ignored")
                }
            },
            Message::Request(request) => {
                // Workers do not call the host; say so instead of leaving them waiting.
                let error =
                    ErrorObject::new(ErrorCode::METHOD_NOT_FOUND, "the host serves no methods");
                let frame = self
                    .shared
                    .frame_with(|b| write_response(b, &request.id, Err(&error)));
                if let Ok(frame) = frame {
                    let _ = self.worker.outbox.try_send(Outgoing { id: None, frame });
                }
            }
            Message::Batch(entries) => {
                for entry in entries {
                    match entry {
                        Ok(message) => self.message(message),
                        Err(err) => self.bad_frame("invalid_message", &err),
                    }
                }
            }
        }
    }

    fn response(&mut self, mut response: Response) {
        // Some peers echo numeric ids as strings; they are the same call.
        if let Id::String(s) = &response.id
            && let Ok(n) = s.parse::<i64>()
        {
            response.id = Id::Number(n);
        }
        // Settled under the lot's lock: an answer that misses the pending
        // table finds its call parked, whoever (sweep or departing caller)
        // took it out.
        let response = match self.worker.lot.settle_answer(response) {
            Settled::Delivered => return,
            Settled::Late => {
                metrics::counter!(crate::metrics::LATE_RESPONSES).increment(1);
                debug!(worker = %self.worker.id, "late response to an abandoned call");
                return;
            }
            Settled::LatePing => {
                debug!(worker = %self.worker.id, "late answer to a ping given up on");
                return;
            }
            Settled::Unknown(response) => response,
        };
        metrics::counter!(crate::metrics::UNROUTABLE).increment(1);
        warn!(worker = %self.worker.id, id = %response.id, "response matches no call; dropped");
        self.shared.emit(PoolEvent::UnroutableResponse {
            worker: self.worker.id,
        });
    }

    fn log(&self, params: Option<&serde_json::value::RawValue>) {
        let Some(params) = params.and_then(|p| serde_json::from_str::<LogParams>(p.get()).ok())
        else {
            return;
        };
        let worker = self.worker.id.to_string();
        let fields = params.fields.as_ref().map_or("{}", |f| f.get());
        let message = params.message.as_str();
        match params.level.as_str() {
            "error" | "critical" => tracing::error!(worker, fields, message, "worker log"),
            "warn" | "warning" => warn!(worker, fields, message, "worker log"),
            "debug" => debug!(worker, fields, message, "worker log"),
            "trace" => tracing::trace!(worker, fields, message, "worker log"),
            _ => info!(worker, fields, message, "worker log"),
        }
    }
}

/// Forwards stderr lines to tracing and keeps the last ones for crash reports.
async fn stderr_loop(
    mut stderr: ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
    worker: WorkerId,
    keep: usize,
) {
    let mut buf = BytesMut::with_capacity(8 * 1024);
    loop {
        // A read error ends the stream just like EOF.
        let n: usize = stderr.read_buf(&mut buf).await.unwrap_or_default();
        let eof = n == 0;
        loop {
            let line = match memchr::memchr(b'\n', &buf) {
                Some(end) => {
                    let line = buf.split_to(end + 1);
                    line.freeze().slice(..end)
                }
                None if eof && !buf.is_empty() || buf.len() >= MAX_STDERR_LINE => {
                    buf.split().freeze()
                }
                None => break,
            };
            let cut = &line[..line.len().min(MAX_STDERR_LINE)];
            let text = String::from_utf8_lossy(cut).trim_end().to_string();
            if text.is_empty() {
                continue;
            }
            info!(target: "pybridge_pool::worker_stderr", worker = %worker, line = %text);
            let mut tail = lock(&tail);
            if tail.len() == keep {
                tail.pop_front();
            }
            if keep > 0 {
                tail.push_back(text);
            }
        }
        if eof {
            return;
        }
    }
}
