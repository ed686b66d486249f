//! Helpers for remote-worker tests: a listening worker process, and a TCP
//! proxy on 127.0.0.1 that can cut or stall the connections through it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::task::AbortOnDropHandle;

use crate::support::{python, python_path};

pub(crate) const SECRET: &str = "correct horse battery staple";

/// Every worker of one pool announces the same manifest: remote listeners
/// and local processes alike run the demo worker with these flags.
pub(crate) const MANIFEST_FLAGS: [&str; 4] =
    ["--handshake", "notification", "--max-concurrency", "4"];

/// A local worker whose manifest matches the listeners'.
pub(crate) fn local_worker() -> pybridge_pool::WorkerSpec {
    crate::support::sdk_worker().args(MANIFEST_FLAGS)
}

/// The SDK's demo worker listening on a socket (`python3 -m pybridge_worker --listen URL`).
pub(crate) struct Listener {
    pub(crate) child: Child,
    /// The URL it listens on (with the real port when started on port 0).
    pub(crate) url: String,
    /// Everything it wrote to stderr so far.
    pub(crate) stderr: Arc<Mutex<Vec<String>>>,
    _drain: AbortOnDropHandle<()>,
}

impl Listener {
    /// Starts a listener on `url` with `secret` in its environment (none:
    /// no secret) and extra flags; waits until it listens.
    pub(crate) async fn start(url: &str, secret: Option<&str>, flags: &[&str]) -> Listener {
        let mut command = Command::new(python());
        command
            .args(["-m", "pybridge_worker", "--listen", url])
            .args(MANIFEST_FLAGS)
            .env("PYTHONPATH", python_path())
            .args(flags)
            .env_remove("PYBRIDGE_WORKER_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(secret) = secret {
            command.env("PYBRIDGE_WORKER_SECRET", secret);
        }
        let mut child = command.spawn().expect("python3 runs");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr piped")).lines();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let listening = tokio::time::timeout(Duration::from_secs(20), async {
            while let Ok(Some(line)) = lines.next_line().await {
                stderr.lock().unwrap().push(line.clone());
                if let Some(url) = line.split("listening on ").nth(1) {
                    return Some(url.trim().to_string());
                }
            }
            None
        })
        .await
        .expect("the listener starts in time");
        let url = listening
            .unwrap_or_else(|| panic!("the listener did not start: {:?}", stderr.lock().unwrap()));
        let sink = Arc::clone(&stderr);
        let drain = AbortOnDropHandle::new(tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        }));
        Listener {
            child,
            url,
            stderr,
            _drain: drain,
        }
    }

    pub(crate) fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a tcp url with a port")
    }

    pub(crate) fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    pub(crate) async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Runs a listener to its end (for listeners that must refuse to start).
pub(crate) async fn run_listener(url: &str, env: &[(&str, &str)], flags: &[&str]) -> (i32, String) {
    let mut command = Command::new(python());
    command
        .args(["-m", "pybridge_worker", "--listen", url])
        .env("PYTHONPATH", python_path())
        .args(flags)
        .env_remove("PYBRIDGE_WORKER_SECRET")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(20), command.output())
        .await
        .expect("the listener ends in time")
        .expect("python3 runs");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

pub(crate) fn secret_file(dir: &Path, secret: &str) -> std::path::PathBuf {
    let path = dir.join("secret");
    std::fs::write(&path, format!("{secret}\n")).unwrap();
    path
}

/// A TCP proxy on 127.0.0.1 in front of `target`: `cut()` closes every
/// connection through it, `stall(true)` stops forwarding bytes (both ways)
/// while the connections stay open.
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    stalled: watch::Sender<bool>,
    generation: watch::Sender<u64>,
    _accept: AbortOnDropHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stalled, _) = watch::channel(false);
        let (generation, _) = watch::channel(0u64);
        let (stall_rx, gen_rx) = (stalled.subscribe(), generation.subscribe());
        let accept = AbortOnDropHandle::new(tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                let (stall, mut cut) = (stall_rx.clone(), gen_rx.clone());
                cut.mark_unchanged();
                connections.spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (ir, iw) = inbound.into_split();
                    let (or, ow) = outbound.into_split();
                    tokio::select! {
                        () = pump(ir, ow, stall.clone()) => {}
                        () = pump(or, iw, stall) => {}
                        _ = cut.changed() => {}
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        }));
        Proxy {
            addr,
            stalled,
            generation,
            _accept: accept,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    pub(crate) fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    pub(crate) fn stall(&self, stalled: bool) {
        self.stalled.send_replace(stalled);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Bytes read while a stall began are held back until it ends.
        if stalled.wait_for(|s| !*s).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// A proxy on a Unix socket in front of a TCP `target` whose
/// `stop_reading()` shuts down the read side of the pool's connection: the
/// pool's next write fails (`EPIPE`) while the worker's answers still pass.
pub(crate) struct HalfOpen {
    pub(crate) url: String,
    stop: watch::Sender<bool>,
    /// Every byte sent on to the worker.
    forwarded: Arc<Mutex<Vec<u8>>>,
    _accept: AbortOnDropHandle<()>,
}

impl HalfOpen {
    pub(crate) async fn start(path: &Path, target: SocketAddr) -> HalfOpen {
        let listener = tokio::net::UnixListener::bind(path).unwrap();
        let (stop, stop_rx) = watch::channel(false);
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&forwarded);
        let accept = AbortOnDropHandle::new(tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((inbound, _)) = listener.accept().await {
                let mut stop = stop_rx.clone();
                let record = Arc::clone(&record);
                connections.spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut from_pool, mut to_pool) = inbound.into_split();
                    let (mut from_worker, mut to_worker) = outbound.into_split();
                    let requests = async {
                        let stopped = async {
                            let _ = stop.wait_for(|s| *s).await;
                        };
                        tokio::pin!(stopped);
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            tokio::select! {
                                read = from_pool.read(&mut buf) => match read {
                                    Ok(0) | Err(_) => return,
                                    Ok(n) => {
                                        if to_worker.write_all(&buf[..n]).await.is_err() {
                                            return;
                                        }
                                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                                    }
                                },
                                () = &mut stopped => break,
                            }
                        }
                        let _ = socket2::SockRef::from(from_pool.as_ref())
                            .shutdown(std::net::Shutdown::Read);
                        // The worker's side stays open: it answers what it
                        // has already read.
                        std::future::pending::<()>().await;
                    };
                    let answers = tokio::io::copy(&mut from_worker, &mut to_pool);
                    tokio::select! {
                        () = requests => {}
                        _ = answers => {}
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        }));
        HalfOpen {
            url: format!("unix:{}", path.display()),
            stop,
            forwarded,
            _accept: accept,
        }
    }

    /// Whether `needle` was sent on to the worker.
    pub(crate) fn forwarded(&self, needle: &[u8]) -> bool {
        self.forwarded
            .lock()
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
    }

    pub(crate) fn stop_reading(&self) {
        self.stop.send_replace(true);
    }
}
