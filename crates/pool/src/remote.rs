//! One remote worker: a connection the pool dials to a worker listening on
//! TCP or a Unix socket, instead of a child process it spawns. After the
//! dial and the mutual authentication (`auth.rs`) it is a worker like any
//! other: the same lot, slots, deadlines, `$/cancelRequest`, pings and
//! handshake checks, on the same reader and writer tasks as a process's
//! pipes. What differs is its end: the pool cannot kill another host's
//! process, so a hung or unresponsive remote worker is disconnected, its
//! endpoint marked unhealthy, and the supervisor dials it again later.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tracing::{info, warn};

use crate::auth::{self, ConnectError};
use crate::events::{ExitReason, PoolEvent};
use crate::handshake::Ready;
use crate::process::{READER_LINGER, admit, ping, read_loop, start_failed, write_loop};
use crate::shared::{Shared, SupervisorMsg};
use crate::stats::{EndpointState, EndpointStats};
use crate::worker::{Worker, WorkerParts, lock};
use crate::{Endpoint, FailureReason, Handshake, RemotePolicy, Secret, WorkerFailure, WorkerId};

/// The reading half of a connection, whatever its transport.
pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The writing half of a connection, whatever its transport.
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// An authenticated connection to a remote worker, ready for the protocol:
/// the worker's `$/ready` comes next (it may already be in `buffered`).
pub struct Connection {
    /// Bytes from the worker.
    pub reader: Box<dyn AsyncRead + Send + Unpin>,
    /// Bytes to the worker.
    pub writer: Box<dyn AsyncWrite + Send + Unpin>,
    /// What the worker sent after its last authentication line.
    pub buffered: BytesMut,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("buffered", &self.buffered.len())
            .finish_non_exhaustive()
    }
}

/// Dials `endpoint` with the socket options of `policy` (TCP_NODELAY,
/// keepalive, `TCP_USER_TIMEOUT`) and runs the bridge's side of the mutual
/// authentication with `secret`. It sets no overall time limit beyond the
/// dial's: wrap it in one.
///
/// # Errors
/// A [`ConnectError`] saying what failed: the dial, the greeting, or either
/// side's proof (a wrong secret says so).
pub async fn connect(
    endpoint: &Endpoint,
    secret: Option<&Secret>,
    policy: &RemotePolicy,
) -> Result<Connection, ConnectError> {
    let (mut reader, mut writer) = dial(endpoint, policy).await?;
    let mut buffered = BytesMut::with_capacity(4096);
    auth::client(
        &mut reader,
        &mut writer,
        &mut buffered,
        secret,
        endpoint.is_tcp(),
    )
    .await?;
    Ok(Connection {
        reader,
        writer,
        buffered,
    })
}

async fn dial(
    endpoint: &Endpoint,
    policy: &RemotePolicy,
) -> Result<(BoxRead, BoxWrite), ConnectError> {
    let dial_error = |err: std::io::Error| ConnectError::Dial(err.to_string());
    let timed_out =
        || ConnectError::Dial(format!("no connection within {:?}", policy.connect_timeout));
    match endpoint {
        Endpoint::Tcp { host, port } => {
            let stream = timeout(
                policy.connect_timeout,
                TcpStream::connect((host.as_str(), *port)),
            )
            .await
            .map_err(|_| timed_out())?
            .map_err(dial_error)?;
            configure(&stream, policy).map_err(dial_error)?;
            let (read, write) = stream.into_split();
            Ok((Box::new(read), Box::new(write)))
        }
        Endpoint::Unix(path) => {
            let stream = timeout(policy.connect_timeout, UnixStream::connect(path))
                .await
                .map_err(|_| timed_out())?
                .map_err(dial_error)?;
            let (read, write) = stream.into_split();
            Ok((Box::new(read), Box::new(write)))
        }
    }
}

/// Small frames leave at once (no Nagle delay); an idle connection is
/// probed; data the peer never acknowledges fails the socket after
/// `user_timeout` instead of the kernel's default of about 15 minutes.
fn configure(stream: &TcpStream, policy: &RemotePolicy) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let socket = socket2::SockRef::from(stream);
    let interval = (policy.keepalive / 3).max(Duration::from_secs(1));
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(policy.keepalive)
        .with_interval(interval)
        .with_retries(3);
    socket.set_tcp_keepalive(&keepalive)?;
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    socket.set_tcp_user_timeout(Some(policy.user_timeout))?;
    Ok(())
}

/// One configured remote endpoint and what the pool knows of it now.
#[derive(Debug)]
pub(crate) struct EndpointSlot {
    pub(crate) endpoint: Endpoint,
    pub(crate) address: Arc<str>,
    status: Mutex<Status>,
}

#[derive(Debug)]
struct Status {
    state: EndpointState,
    worker: Option<WorkerId>,
    rtt: Option<Duration>,
    last_error: Option<Arc<str>>,
    connects: u64,
    failures: u64,
}

impl EndpointSlot {
    pub(crate) fn new(endpoint: Endpoint) -> EndpointSlot {
        EndpointSlot {
            address: endpoint.to_string().into(),
            endpoint,
            status: Mutex::new(Status {
                state: EndpointState::Connecting,
                worker: None,
                rtt: None,
                last_error: None,
                connects: 0,
                failures: 0,
            }),
        }
    }

    fn connecting(&self, worker: WorkerId) {
        let mut status = lock(&self.status);
        status.state = EndpointState::Connecting;
        status.worker = Some(worker);
    }

    fn ready(&self) {
        let mut status = lock(&self.status);
        status.state = EndpointState::Ready;
        status.connects += 1;
    }

    /// The connection failed, was lost, or was cut as hung: unhealthy until
    /// the next dial succeeds.
    fn failed(&self, reason: &str) {
        let mut status = lock(&self.status);
        status.state = EndpointState::Unhealthy;
        status.worker = None;
        status.failures += 1;
        status.last_error = Some(reason.into());
    }

    /// Stopped on purpose (shutdown): not a failure.
    fn stopped(&self) {
        let mut status = lock(&self.status);
        status.state = EndpointState::Stopped;
        status.worker = None;
    }

    pub(crate) fn set_rtt(&self, rtt: Duration) {
        lock(&self.status).rtt = Some(rtt);
    }

    pub(crate) fn is_ready(&self) -> bool {
        lock(&self.status).state == EndpointState::Ready
    }

    pub(crate) fn stats(&self) -> EndpointStats {
        let status = lock(&self.status);
        EndpointStats {
            address: Arc::clone(&self.address),
            state: status.state,
            worker: status.worker,
            rtt: status.rtt,
            last_error: status.last_error.clone(),
            connects: status.connects,
            failures: status.failures,
        }
    }
}

/// How a serving connection ended.
enum End {
    Lost,
    Killed,
    Stopped,
    PoolDropped,
}

/// Dials the endpoint at `index`, authenticates, and serves on the
/// connection until it ends, then reports to the supervisor. Owned by the
/// pool's task tracker.
pub(crate) async fn run_remote(
    shared: Arc<Shared>,
    id: WorkerId,
    index: usize,
    slot: usize,
    restarts: u64,
) {
    let place = &shared.endpoints[index];
    let spec = &shared.config.spec;
    place.connecting(id);
    let connected = tokio::select! {
        r = timeout(spec.startup_timeout, connect(&place.endpoint, shared.config.secret.as_ref(), &shared.config.remote)) => match r {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("no handshake within {:?}", spec.startup_timeout)),
        },
        () = shared.token.cancelled() => Err("the pool was dropped".to_string()),
        () = shared.stop_all.cancelled() => Err("stopped before ready".to_string()),
    };
    let connection = match connected {
        Ok(connection) => connection,
        Err(reason) => {
            let reason = format!("{}: {reason}", place.address);
            place.failed(&reason);
            start_failed(&shared, id, slot, reason).await;
            return;
        }
    };
    info!(worker = %id, endpoint = %place.address, "connected to remote worker");
    shared.emit(PoolEvent::Connected {
        worker: id,
        address: Arc::clone(&place.address),
    });

    let cap = shared.config.max_in_flight.get();
    let (outbox, inbox) = mpsc::channel(cap * 2 + 64);
    let worker = Arc::new(Worker::new(WorkerParts {
        id,
        slot,
        pid: 0,
        restarts,
        recycle_after: None,
        cap,
        outbox,
        stderr_tail: Arc::default(),
        endpoint: Some(index),
    }));
    let writer_stop = CancellationToken::new();
    worker.pipe.put(connection.writer);
    let mut writer = AbortOnDropHandle::new(tokio::spawn(write_loop(
        Arc::clone(&worker.pipe),
        inbox,
        writer_stop.clone(),
        Arc::downgrade(&worker),
    )));
    let (ready_tx, ready_rx) = oneshot::channel();
    let mut reader = AbortOnDropHandle::new(tokio::spawn(read_loop(
        connection.reader,
        connection.buffered,
        Arc::clone(&worker),
        Arc::clone(&shared),
        shared.codec.clone(),
        ready_tx,
        Arc::new(Mutex::new(None)),
    )));
    shared.admission.join(Arc::clone(&worker));

    let handshake = async {
        let announced = match spec.handshake {
            Handshake::Announce => ready_rx
                .await
                .map_err(|_| "the connection closed before ready".to_string())??,
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
        () = shared.token.cancelled() => Err("the pool was dropped".to_string()),
        () = worker.kill.cancelled() => Err("disconnected before ready".to_string()),
        () = worker.stop.cancelled() => Err("stopped before ready".to_string()),
        () = shared.stop_all.cancelled() => Err("stopped before ready".to_string()),
    };
    if let Err(reason) = ready {
        worker.set_dead();
        writer_stop.cancel();
        let failure = Arc::new(failure(
            &worker,
            &place.address,
            FailureReason::Disconnected,
        ));
        worker.lot.close(&failure, &[]);
        shared.admission.leave(id);
        let reason = format!("{}: {reason}", place.address);
        place.failed(&reason);
        start_failed(&shared, id, slot, reason).await;
        return;
    }
    worker.set_ready();
    place.ready();
    let startup = worker.spawned_at.elapsed();
    info!(worker = %id, endpoint = %place.address, ?startup, "remote worker ready");
    shared.emit(PoolEvent::WorkerReady {
        worker: id,
        pid: 0,
        startup,
    });
    let _ = shared
        .supervisor
        .send(SupervisorMsg::Ready { worker: id })
        .await;
    shared.admission.dispatch();

    let mut written_early = None;
    let end = tokio::select! {
        _ = &mut reader => End::Lost,
        unwritten = &mut writer => {
            written_early = Some(unwritten.unwrap_or_default());
            // No call may be routed here any more, as for a dead process.
            worker.set_dead();
            // The connection no longer takes requests, but answers the
            // worker sent before (or after) that may still be on their way
            // in: read them (bounded, as a dead process's stdout is) before
            // its calls are failed, so that no answer it gave is lost.
            let _ = timeout(READER_LINGER, &mut reader).await;
            End::Lost
        }
        () = worker.kill.cancelled() => End::Killed,
        () = worker.stop.cancelled() => End::Stopped,
        () = shared.stop_all.cancelled() => {
            worker.stop_with(FailureReason::Shutdown);
            End::Stopped
        }
        () = shared.token.cancelled() => End::PoolDropped,
    };
    if matches!(end, End::Stopped) {
        worker.set_draining();
        drain(&shared, &worker, &mut reader).await;
    }
    worker.set_dead();
    // Closing the write half is the worker's stdin EOF: it cancels what it
    // still runs and waits for the next connection.
    writer_stop.cancel();
    let unwritten = match written_early {
        Some(unwritten) => unwritten,
        None => timeout(Duration::from_secs(1), &mut writer)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default(),
    };
    drop(reader);
    let reason = lock(&worker.end_reason).clone().unwrap_or(match end {
        End::Lost => FailureReason::Disconnected,
        End::Killed => FailureReason::Hung,
        End::Stopped | End::PoolDropped => FailureReason::Shutdown,
    });
    let failure = Arc::new(failure(&worker, &place.address, reason.clone()));
    let failed_calls = worker.lot.close(&failure, &unwritten);
    shared.admission.leave(id);
    shared
        .retired_served
        .fetch_add(worker.served.load(Ordering::Relaxed), Ordering::Relaxed);
    let crashed = matches!(end, End::Lost | End::Killed);
    let exit_reason = if crashed {
        place.failed(&format!("{}: {reason}", place.address));
        warn!(worker = %id, endpoint = %place.address, failed_calls, failure = %failure, "remote worker lost");
        ExitReason::Crashed(reason)
    } else {
        place.stopped();
        info!(worker = %id, endpoint = %place.address, "remote worker disconnected");
        ExitReason::Stopped
    };
    metrics::counter!(crate::metrics::WORKERS_EXITED, crate::metrics::LABEL_REASON => if crashed { "crashed" } else { "stopped" })
        .increment(1);
    shared.emit(PoolEvent::WorkerExited {
        worker: id,
        pid: 0,
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

/// Lets the calls in flight finish (up to the drain timeout) before the
/// connection closes.
async fn drain(shared: &Shared, worker: &Worker, reader: &mut AbortOnDropHandle<()>) {
    let drain = if shared.admission.is_closing() {
        shared.config.shutdown.drain_timeout
    } else {
        shared.config.recycle.drain_timeout
    };
    let until = Instant::now() + drain;
    while worker.in_flight() > 0 && Instant::now() < until {
        tokio::select! {
            _ = &mut *reader => return,
            () = sleep(Duration::from_millis(10)) => {}
        }
    }
}

fn failure(worker: &Worker, address: &str, reason: FailureReason) -> WorkerFailure {
    WorkerFailure {
        worker: worker.id,
        pid: None,
        reason,
        status: Some(format!("remote worker at {address}")),
        stderr_tail: Vec::new(),
    }
}
