//! [`BridgeBuilder`]: a configuration and, optionally, a worker of one's
//! own, built into the layers and started.

use pybridge_pool::WorkerSpec;

use crate::assemble::Parts;
use crate::bridge::Bridge;
use crate::{Config, Error, Result};

/// Builds a [`Bridge`]: a [`Config`], and optionally a [`WorkerSpec`] of
/// one's own instead of `worker.command`.
///
/// ```
/// use pybridge::{Bridge, Config, Framing, WorkerSpec};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sdk = concat!(env!("CARGO_MANIFEST_DIR"), "/../../python/pybridge-worker/src");
/// let worker = WorkerSpec::new("python3")
///     .args(["-m", "pybridge_worker"])
///     .env("PYTHONPATH", sdk)
///     .framing(Framing::Ndjson);
/// let mut config = Config::default();
/// config.pool.min_workers = 1;
/// config.cache.enabled = false;
/// let bridge = Bridge::builder().config(config).worker(worker).build().await?;
///
/// let pid: u32 = bridge.call_as("test.pid", &()).await?;
/// assert_eq!(bridge.health().pool.workers[0].pid, pid);
/// bridge.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct BridgeBuilder {
    config: Config,
    worker: Option<WorkerSpec>,
}

impl BridgeBuilder {
    /// Uses this configuration (default: [`Config::default`]).
    pub fn config(mut self, config: Config) -> BridgeBuilder {
        self.config = config;
        self
    }

    /// Runs this worker instead of `worker.command` from the configuration.
    /// Its framing, handshake, startup timeout and frame limit are taken from
    /// the spec, not the configuration.
    pub fn worker(mut self, spec: WorkerSpec) -> BridgeBuilder {
        self.worker = Some(spec);
        self
    }

    /// Validates the configuration, builds every layer and starts the workers.
    ///
    /// # Errors
    /// [`Error::Config`] for an invalid configuration, [`Error::NoWorker`]
    /// without a worker command, [`Error::Build`] when the catalog, cache or
    /// policies cannot be built, and [`Error::Start`] when no worker starts.
    pub async fn build(self) -> Result<Bridge> {
        // Checking the configuration may read files (the worker's secret);
        // keep it off the runtime's threads. Catalogs are read in `start`,
        // while the workers start.
        let (config, worker) = (self.config, self.worker);
        let parts = tokio::task::spawn_blocking(move || Parts::new(config, worker))
            .await
            .map_err(|err| Error::Build {
                part: "bridge parts (the builder task failed)",
                source: Box::new(err),
            })??;
        Ok(Bridge::new(parts.start().await?))
    }
}

impl Bridge {
    /// A builder.
    pub fn builder() -> BridgeBuilder {
        BridgeBuilder::default()
    }

    /// Builds and starts a bridge from a configuration whose `worker.command`
    /// names the worker.
    ///
    /// # Errors
    /// As [`BridgeBuilder::build`].
    pub async fn from_config(config: Config) -> Result<Bridge> {
        Bridge::builder().config(config).build().await
    }
}
