//! A loopback TCP proxy in front of a `redis-server` that can hold what its
//! clients send (what the server sends back always passes): it puts a
//! command of one cache "in flight" for as long as a test needs, to line up
//! races with other caches deterministically.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// The proxy; its listener and connections stop when it is dropped.
#[derive(Debug)]
pub(crate) struct RedisProxy {
    port: u16,
    open: watch::Sender<bool>,
    held: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for RedisProxy {
    fn drop(&mut self) {
        // The connections live in the task's JoinSet and end with it.
        self.task.abort();
    }
}

impl RedisProxy {
    /// Listens on a free loopback port and forwards to `target_port`.
    pub(crate) async fn start(target_port: u16) -> Self {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("a free loopback port");
        let port = listener.local_addr().expect("bound").port();
        let (open, gate) = watch::channel(true);
        let held = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&held);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(forward(
                    client,
                    target_port,
                    gate.clone(),
                    Arc::clone(&counted),
                ));
            }
        });
        RedisProxy {
            port,
            open,
            held,
            task,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// From now on, what clients send waits in the proxy.
    pub(crate) fn hold(&self) {
        self.held.store(0, Ordering::SeqCst);
        self.open.send_replace(false);
    }

    /// Lets everything held (and everything after) through.
    pub(crate) fn release(&self) {
        self.open.send_replace(true);
    }

    /// Waits (bounded) until something a client sent is held.
    pub(crate) async fn wait_held(&self) {
        let started = Instant::now();
        while self.held.load(Ordering::SeqCst) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nothing was sent while held"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

async fn forward(
    client: TcpStream,
    target_port: u16,
    mut gate: watch::Receiver<bool>,
    held: Arc<AtomicUsize>,
) {
    let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, target_port)).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let up = async move {
        let mut buf = vec![0_u8; 64 * 1024];
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if !*gate.borrow() {
                held.fetch_add(1, Ordering::SeqCst);
            }
            if gate.wait_for(|open| *open).await.is_err()
                || to_server.write_all(&buf[..n]).await.is_err()
            {
                break;
            }
        }
        let _ = to_server.shutdown().await;
    };
    let down = async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::join!(up, down);
}
