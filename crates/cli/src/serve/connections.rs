//! The gateway's accept loop and its connections: a cap on open connections,
//! a header read timeout, an idle timeout, an accept loop that survives
//! running out of file descriptors, and a shutdown that finishes accepted
//! requests without waiting for clients that never sent one.
//!
//! `axum::serve` offers none of these knobs, so each connection is driven
//! by hyper's HTTP/1 connection directly. Every connection is registered
//! with the number of requests it is serving and the last time a byte moved
//! on it; that is what the idle timeout, the shutdown and the eviction of
//! the idlest connection (when the cap or the descriptor limit is reached)
//! look at.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tower::Service;
use tracing::Instrument;

/// The limits the accept loop and the connections enforce.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// hyper's timer for a request head, from when the connection is ready for one.
    pub(crate) header_read_timeout: Duration,
    /// A connection with no request in progress that receives nothing for
    /// this long is closed.
    pub(crate) idle_timeout: Duration,
    /// The most connections open at once.
    pub(crate) max_connections: usize,
    /// How long shutdown waits for accepted requests before closing what is left.
    pub(crate) drain_timeout: Duration,
}

/// During shutdown, a connection with no request in progress that has been
/// quiet this long is closed: its last response is written, and a client in
/// the middle of a head would be sending bytes.
const DRAIN_QUIET: Duration = Duration::from_millis(250);

/// The longest the accept loop waits for a connection slot after closing
/// the idlest connection; a connection that gets none is closed.
const SLOT_WAIT: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting, lets every connection finish the requests it has (bounded by
/// `limits.drain_timeout`), and returns.
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let registry = Registry::default();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopped) = watch::channel(());
    let mut connections = JoinSet::new();
    let mut exhausted = Backoff::default();
    let mut at_cap = false;
    tokio::pin!(shutdown);
    loop {
        // Reap finished connections so the set stays as small as the cap.
        while connections.try_join_next().is_some() {}
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => {
                exhausted.reset();
                accepted
            }
            Err(err) if out_of_descriptors(&err) => {
                let delay = exhausted.next();
                if exhausted.first() {
                    tracing::warn!(
                        error = %err,
                        open = registry.len(),
                        "out of file descriptors: closing the idlest connection and backing off"
                    );
                }
                registry.evict_idlest();
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(delay) => continue,
                }
            }
            // Errors that belong to one connection (reset before accept, say).
            Err(err) => {
                tracing::debug!(error = %err, "accept failed");
                continue;
            }
        };
        let permit = match Arc::clone(&slots).try_acquire_owned() {
            Ok(permit) => {
                at_cap = false;
                permit
            }
            Err(_) => {
                if !at_cap {
                    tracing::warn!(
                        max_connections = limits.max_connections,
                        "connection cap reached: closing the idlest connections to make room"
                    );
                    at_cap = true;
                }
                registry.evict_idlest();
                let waited = tokio::select! {
                    () = &mut shutdown => break,
                    waited = tokio::time::timeout(SLOT_WAIT, Arc::clone(&slots).acquire_owned()) => waited,
                };
                match waited {
                    Ok(Ok(permit)) => permit,
                    // Every connection is busy serving a request: this one waits no longer.
                    _ => {
                        tracing::debug!("no connection slot came free; closing the new connection");
                        continue;
                    }
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let registration = registry.register();
        let (router, stopped) = (router.clone(), stopped.clone());
        let span = tracing::debug_span!("connection", %peer);
        connections.spawn(
            async move {
                connection(stream, registration, router, limits, stopped).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
    drop(listener);
    tracing::info!(
        open = registry.len(),
        "stopped accepting; finishing accepted requests"
    );
    drop(stop);
    let drained = tokio::time::timeout(limits.drain_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open at the drain timeout; closing them"
        );
        connections.shutdown().await;
    }
}

/// Drives one connection until it ends, is evicted, goes idle, or (after
/// shutdown) has nothing left to answer.
async fn connection(
    stream: TcpStream,
    registration: Registration,
    router: Router,
    limits: Limits,
    mut stopped: watch::Receiver<()>,
) {
    let state = Arc::clone(&registration.state);
    let io = TokioIo::new(Tracked {
        stream,
        state: Arc::clone(&state),
    });
    let service = {
        let state = Arc::clone(&state);
        hyper::service::service_fn(move |request: Request<Incoming>| {
            let active = Active::begin(Arc::clone(&state));
            let mut router = router.clone();
            let response = router.call(request);
            async move {
                let response = response.await?;
                // The request is in progress until its body is sent: a
                // streamed answer is neither idle nor cut short by shutdown.
                Ok::<_, Infallible>(response.map(|body| {
                    Body::new(body.map_frame(move |frame| {
                        let _in_progress: &Active = &active;
                        frame
                    }))
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining = false;
    loop {
        let quiet_for = if draining {
            DRAIN_QUIET
        } else {
            limits.idle_timeout
        };
        let busy = state.active.load(Ordering::Acquire) > 0;
        let changed = state.changed.notified();
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(err) = served {
                    tracing::debug!(error = %err, "connection ended");
                }
                return;
            }
            () = state.evict.notified() => {
                tracing::debug!("closing an idle connection to make room");
                return;
            }
            _ = stopped.changed(), if !draining => {
                // Keep-alive off: a request in progress is answered, then the connection closes.
                connection.as_mut().graceful_shutdown();
                draining = true;
            }
            () = changed, if busy => {}
            () = tokio::time::sleep_until(state.last_activity() + quiet_for), if !busy => {
                if state.active.load(Ordering::Acquire) == 0
                    && state.last_activity() + quiet_for <= Instant::now()
                {
                    if !draining {
                        tracing::debug!("closing an idle connection");
                    }
                    return;
                }
            }
        }
    }
}

/// The open connections, for eviction and logs.
#[derive(Debug)]
struct Registry {
    next: AtomicU64,
    open: Arc<Mutex<HashMap<u64, Arc<ConnState>>>>,
    /// One clock for every connection, so their last activities compare.
    base: Instant,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry {
            next: AtomicU64::new(0),
            open: Arc::default(),
            base: Instant::now(),
        }
    }
}

impl Registry {
    fn register(&self) -> Registration {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let state = Arc::new(ConnState::new(self.base));
        self.lock().insert(id, Arc::clone(&state));
        Registration {
            id,
            state,
            open: Arc::clone(&self.open),
        }
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    /// Asks the connection that has been idle the longest, among those with
    /// no request in progress, to close. Returns whether there was one.
    fn evict_idlest(&self) -> bool {
        let open = self.lock();
        let idlest = open
            .values()
            .filter(|c| c.active.load(Ordering::Acquire) == 0 && !c.evicted.load(Ordering::Acquire))
            .min_by_key(|c| c.last_activity.load(Ordering::Acquire));
        match idlest {
            Some(conn) => {
                conn.evicted.store(true, Ordering::Release);
                conn.evict.notify_one();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<ConnState>>> {
        // The map stays consistent whatever a panicking holder did.
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection's entry in the registry, removed when the connection ends.
#[derive(Debug)]
struct Registration {
    id: u64,
    state: Arc<ConnState>,
    open: Arc<Mutex<HashMap<u64, Arc<ConnState>>>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// What the accept loop and the connection's own task know of a connection.
#[derive(Debug)]
struct ConnState {
    /// Requests being served.
    active: AtomicUsize,
    /// Milliseconds after `base` (the registry's) when the connection was
    /// accepted, a byte last moved, or a request began or ended.
    last_activity: AtomicU64,
    base: Instant,
    /// Signalled when `active` changes.
    changed: Notify,
    /// Signalled to close the connection to make room.
    evict: Notify,
    evicted: AtomicBool,
}

impl ConnState {
    fn new(base: Instant) -> ConnState {
        let state = ConnState {
            active: AtomicUsize::new(0),
            last_activity: AtomicU64::new(0),
            base,
            changed: Notify::new(),
            evict: Notify::new(),
            evicted: AtomicBool::new(false),
        };
        state.touch();
        state
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity.store(ms, Ordering::Release);
    }

    fn last_activity(&self) -> Instant {
        self.base + Duration::from_millis(self.last_activity.load(Ordering::Acquire))
    }
}

/// A request in progress on a connection, from its head to the end of its response body.
struct Active(Arc<ConnState>);

impl Active {
    fn begin(state: Arc<ConnState>) -> Active {
        state.active.fetch_add(1, Ordering::AcqRel);
        state.touch();
        state.changed.notify_one();
        Active(state)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.touch();
        self.0.changed.notify_one();
    }
}

/// The socket, noting when bytes move.
struct Tracked {
    stream: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.state.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Whether an accept error means the process or the system ran out of
/// descriptors or memory, rather than one connection failing.
fn out_of_descriptors(err: &io::Error) -> bool {
    use rustix::io::Errno;
    Errno::from_io_error(err).is_some_and(|errno| {
        [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM].contains(&errno)
    })
}

/// The accept loop's backoff while descriptors are exhausted: 10 ms,
/// doubling to one second, reset by the next successful accept.
#[derive(Debug, Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let exponent = self.failures.saturating_sub(1).min(7);
        Duration::from_millis(10 << exponent).min(Duration::from_secs(1))
    }

    /// Whether the last failure began an episode (it is logged once).
    fn first(&self) -> bool {
        self.failures == 1
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests;
