//! One stream of typed events from every layer.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio_util::task::AbortOnDropHandle;

/// Something that happened in one of the bridge's layers.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BridgeEvent {
    /// A worker started, exited, was recycled or restarted; the pool grew,
    /// shrank or entered a crash loop.
    Pool(pybridge_pool::PoolEvent),
    /// A retry, or a circuit breaker changed state.
    Resilience(pybridge_resilience::Event),
    /// The cache's disk tier failed or recovered, or an entry was corrupt.
    #[cfg(feature = "cache")]
    Cache(pybridge_cache::CacheEvent),
    /// A subscriber fell behind and this many events were lost for it.
    Lagged(u64),
    /// The bridge is shutting down.
    ShuttingDown,
}

/// Forwards a layer's events into the bridge's stream until either side goes away.
pub(crate) fn forward<T: Clone + Send + 'static>(
    mut from: broadcast::Receiver<T>,
    to: Arc<broadcast::Sender<BridgeEvent>>,
    wrap: fn(T) -> BridgeEvent,
) -> AbortOnDropHandle<()> {
    AbortOnDropHandle::new(tokio::spawn(async move {
        loop {
            match from.recv().await {
                Ok(event) => {
                    // Nobody listening is not an error.
                    let _ = to.send(wrap(event));
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let _ = to.send(BridgeEvent::Lagged(n));
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }))
}
