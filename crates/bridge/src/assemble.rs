//! Building every layer from the configuration, once: [`Parts`] checks and
//! builds what needs no worker, [`Parts::start`] starts the pool (first, so
//! the workers' start overlaps the rest), builds the registry and the cache,
//! and returns the [`Layers`] a bridge owns. Nothing here knows the call path.

use std::num::{NonZeroU32, NonZeroUsize};
use std::sync::Arc;

use pybridge_pool::{
    EnvPolicy, Handshake, HealthPolicy, Pool, PoolConfig, RecyclePolicy, RestartPolicy,
    ScalePolicy, ShutdownPolicy, WorkerSpec,
};
use pybridge_protocol::Framing;
use pybridge_resilience::{
    Backoff, BreakerConfig, BreakerRegistry, Jitter, RetryBudget, RetryPolicy,
};
use pybridge_service::{
    Catalog, Coercion, Defaults, Manifest, MethodOverride, Mode, ParamsValidation, ResultShape,
    ResultValidation, Service, ServiceConfig,
};
use tokio::sync::broadcast;
use tokio_util::task::AbortOnDropHandle;

use crate::config::{
    BackoffSetting, BreakerMode, Config, FramingSetting, HandshakeSetting, JitterSetting,
    ResultCheck,
};
use crate::events::{self, BridgeEvent};
use crate::{Error, Result};

/// The layers, built once from the configuration, and the stream of their
/// events. The bridge owns one and reads it; nothing changes it after
/// [`Parts::start`].
#[derive(Debug)]
pub(crate) struct Layers {
    config: Config,
    service: Service,
    pool: Pool,
    #[cfg(feature = "cache")]
    cache: Option<pybridge_cache::Cache>,
    breakers: Option<BreakerRegistry>,
    retry: Option<RetryPolicy>,
    events: Arc<broadcast::Sender<BridgeEvent>>,
    /// Forward each layer's events into `events`; aborted with the layers.
    _forwarders: Vec<AbortOnDropHandle<()>>,
}

impl Layers {
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The registry, limits, validation and adapters.
    pub(crate) fn service(&self) -> &Service {
        &self.service
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    #[cfg(feature = "cache")]
    pub(crate) fn cache(&self) -> Option<&pybridge_cache::Cache> {
        self.cache.as_ref()
    }

    /// The cache policy of a method whose spec enables caching: a few
    /// fields of its spec and of the configuration, cheaper to copy on each
    /// call than a lookup by the method's name would be.
    #[cfg(feature = "cache")]
    pub(crate) fn cache_policy(
        &self,
        spec: &pybridge_service::MethodSpec,
    ) -> pybridge_cache::CachePolicy {
        cache_policy(spec, &self.config)
    }

    pub(crate) fn breakers(&self) -> Option<&BreakerRegistry> {
        self.breakers.as_ref()
    }

    pub(crate) fn retry(&self) -> Option<&RetryPolicy> {
        self.retry.as_ref()
    }

    pub(crate) fn events(&self) -> &broadcast::Sender<BridgeEvent> {
        &self.events
    }
}

/// Everything the workers' start needs, checked, and the policies that need
/// no worker. The registry is built in [`Parts::start`], while the workers
/// start.
pub(crate) struct Parts {
    config: Config,
    worker: WorkerSpec,
    breakers: Option<BreakerRegistry>,
    retry: Option<RetryPolicy>,
    pool: PoolConfig,
}

fn build_error(
    part: &'static str,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> Error {
    move |source| Error::Build { part, source }
}

fn boxed<E: std::error::Error + Send + Sync + 'static>(
    e: E,
) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(e)
}

impl Parts {
    pub(crate) fn new(config: Config, worker: Option<WorkerSpec>) -> Result<Parts> {
        if let Err((key, problem)) = config.validate() {
            return Err(Error::Config(crate::config::ConfigError {
                key: Some(key),
                origin: None,
                problem,
            }));
        }
        let worker = match worker {
            Some(spec) => spec,
            None => worker_spec(&config)?,
        };
        let breakers = breakers(&config)?;
        let retry = retry_policy(&config)?;
        let pool = pool_config(&config, worker.clone())?;
        Ok(Parts {
            config,
            worker,
            breakers,
            retry,
            pool,
        })
    }

    /// Starts the workers, builds the registry over the catalogs while they
    /// start, then what needs their manifest.
    ///
    /// The workers are spawned first: a worker's interpreter takes tens of
    /// milliseconds to start, and everything else here overlaps that rather
    /// than delaying it. The registry over the catalogs alone (built on a
    /// blocking thread: it may read catalog files) still checks the
    /// configuration as before; when it fails, its error wins over the
    /// pool's and the workers just started are stopped.
    pub(crate) async fn start(self) -> Result<Layers> {
        let Parts {
            config,
            worker,
            breakers,
            retry,
            pool,
        } = self;
        let catalogs = async {
            let config = config.clone();
            tokio::task::spawn_blocking(move || service(&config, None, false))
                .await
                .map_err(|err| Error::Build {
                    part: "method registry (the builder task failed)",
                    source: Box::new(err),
                })
                .and_then(|built| built)
        };
        // `join!` polls the pool's start first, so the spawn is under way
        // before the catalogs are read.
        let (pool, service) = tokio::join!(Pool::start(pool), catalogs);
        let (pool, service) = match (pool, service) {
            (Ok(pool), Ok(service)) => (pool, service),
            (pool, Err(err)) => {
                if let Ok(pool) = pool {
                    pool.shutdown().await;
                }
                return Err(err);
            }
            (Err(err), Ok(_)) => return Err(Error::Start(err)),
        };
        // The registry takes the worker's manifest, known once a worker is
        // ready; building it reads files and compiles schemas, so it runs on
        // a blocking thread. A failure stops the workers just started.
        let manifest = pool.manifest();
        if manifest.is_none() && config.pool.min_workers == 0 {
            // Nothing started, so nothing declared: the registry holds the
            // catalogs alone, and a worker's own methods pass through.
            tracing::warn!(
                "pool.min_workers = 0: no worker started, so the method registry has no worker manifest"
            );
        }
        let rebuilt = {
            let config = config.clone();
            tokio::task::spawn_blocking(move || registry(&config, manifest.as_deref()))
                .await
                .map_err(|err| Error::Build {
                    part: "method registry (the builder task failed)",
                    source: Box::new(err),
                })
                .and_then(|built| built)
        };
        let service = match rebuilt {
            Ok(Some(service)) => service,
            Ok(None) => service,
            Err(err) => {
                pool.shutdown().await;
                return Err(err);
            }
        };
        #[cfg(feature = "cache")]
        let cache = match cache(&config, &service, &worker) {
            Ok(cache) => cache,
            Err(err) => {
                pool.shutdown().await;
                return Err(err);
            }
        };
        #[cfg(not(feature = "cache"))]
        let _ = worker;
        let (events, _) = broadcast::channel(1024);
        let events = Arc::new(events);
        let mut forwarders = vec![events::forward(
            pool.subscribe(),
            Arc::clone(&events),
            BridgeEvent::Pool,
        )];
        if let Some(registry) = &breakers {
            forwarders.push(events::forward(
                registry.subscribe(),
                Arc::clone(&events),
                BridgeEvent::Resilience,
            ));
        }
        if let Some(policy) = &retry {
            forwarders.push(events::forward(
                policy.subscribe(),
                Arc::clone(&events),
                BridgeEvent::Resilience,
            ));
        }
        #[cfg(feature = "cache")]
        if let Some(cache) = &cache {
            forwarders.push(events::forward(
                cache.subscribe(),
                Arc::clone(&events),
                BridgeEvent::Cache,
            ));
        }
        pybridge_service::telemetry::describe();
        pybridge_resilience::metrics::describe();
        Ok(Layers {
            config,
            service,
            pool,
            #[cfg(feature = "cache")]
            cache,
            breakers,
            retry,
            events,
            _forwarders: forwarders,
        })
    }
}

/// The worker from `worker.command` and the rest of `[worker]`.
fn worker_spec(config: &Config) -> Result<WorkerSpec> {
    let w = &config.worker;
    let (program, args) = w.command.split_first().ok_or(Error::NoWorker)?;
    let mut spec = WorkerSpec::new(program)
        .args(args)
        .framing(match w.framing {
            FramingSetting::ContentLength => Framing::ContentLength,
            FramingSetting::Ndjson => Framing::Ndjson,
        })
        .handshake(match w.handshake {
            HandshakeSetting::Ping => Handshake::Ping,
            HandshakeSetting::None => Handshake::None,
            HandshakeSetting::Announce => Handshake::Announce,
        })
        .startup_timeout(w.startup_timeout)
        .max_frame(usize::try_from(w.max_frame.as_u64()).unwrap_or(usize::MAX))
        .env_policy(if w.inherit_env {
            EnvPolicy::Inherit
        } else {
            EnvPolicy::Clear
        });
    for (key, value) in &w.env {
        spec = spec.env(key, value);
    }
    if let Some(cwd) = &w.cwd {
        spec = spec.cwd(cwd);
    }
    Ok(spec)
}

/// The full registry: catalogs, the worker's manifest (`None` when it sent
/// none) and the overrides. `Ok(None)` when there is nothing to add to the
/// service built before the workers started.
fn registry(config: &Config, manifest: Option<&serde_json::Value>) -> Result<Option<Service>> {
    let manifest = manifest
        .map(Manifest::from_value)
        .transpose()
        .map_err(|e| build_error("worker manifest")(boxed(e)))?;
    if manifest.is_none() && config.methods.is_empty() {
        return Ok(None);
    }
    let catalog = catalog(config, manifest, true).map_err(|err| {
        // An override of a method nobody declares: name the key as the
        // configuration file spells it, and the file.
        if let Error::Build { source, .. } = &err
            && let Some(pybridge_service::Error::Config { key, reason }) =
                source.downcast_ref::<pybridge_service::Error>()
            && let Some(name) = key.strip_prefix("methods.")
            && let Some(method) = config.methods.get(name)
        {
            return Error::Config(crate::config::ConfigError {
                key: Some(format!("methods.\"{name}\"")),
                origin: method.origin.clone(),
                problem: reason.clone(),
            });
        }
        err
    })?;
    finish_service(config, catalog).map(Some)
}

fn catalog(config: &Config, manifest: Option<Manifest>, overrides: bool) -> Result<Catalog> {
    #[cfg(feature = "framework")]
    let mut builder = pybridge_framework::catalog_builder();
    #[cfg(not(feature = "framework"))]
    let mut builder = Catalog::builder();
    for file in &config.service.catalog_files {
        builder = builder.file(file);
    }
    if let Some(manifest) = manifest {
        builder = builder.manifest(manifest);
    }
    // Overrides may name methods only the worker declares: they are applied
    // once its manifest is known.
    let methods = config.methods.iter().filter(|_| overrides);
    for (name, m) in methods {
        let mut changes = MethodOverride::new();
        if let Some(wire) = &m.wire_name {
            changes = changes.wire_name(wire);
        }
        if let Some(timeout) = m.timeout {
            changes = changes.timeout(timeout);
        }
        if let Some(idempotent) = m.idempotent {
            changes = changes.idempotent(idempotent);
        }
        let ttls = (m.cache_ttl, m.disk_ttl);
        match m.cache {
            Some(false) => changes = changes.cache(pybridge_service::CachePolicy::disabled()),
            Some(true) => {
                changes = changes.cache(pybridge_service::CachePolicy::enabled(ttls.0, ttls.1))
            }
            None if ttls != (None, None) => {
                changes = changes.cache(pybridge_service::CachePolicy::enabled(ttls.0, ttls.1));
            }
            None => {}
        }
        builder = builder.override_method(name, changes);
    }
    builder
        .build()
        .map_err(|e| build_error("catalog")(boxed(e)))
}

fn service(config: &Config, manifest: Option<Manifest>, overrides: bool) -> Result<Service> {
    finish_service(config, catalog(config, manifest, overrides)?)
}

fn finish_service(config: &Config, catalog: Catalog) -> Result<Service> {
    let service_config = service_config(config)?;
    #[cfg(feature = "framework")]
    return Ok(Service::with_hooks(
        catalog,
        service_config,
        pybridge_framework::hooks(config.service.fixiplug_results),
    ));
    #[cfg(not(feature = "framework"))]
    if !config.service.fixiplug_results {
        return Ok(Service::new(catalog, service_config));
    }
    #[cfg(not(feature = "framework"))]
    Err(Error::Config(crate::config::ConfigError {
        key: Some("service.fixiplug_results".into()),
        origin: None,
        problem: "FixiPlug shapes need the `framework` feature of pybridge".into(),
    }))
}

fn service_config(config: &Config) -> Result<ServiceConfig> {
    let s = &config.service;
    let max_params =
        NonZeroUsize::new(usize::try_from(s.max_params.as_u64()).unwrap_or(usize::MAX));
    let mut builder = ServiceConfig::builder()
        .mode(if s.strict {
            Mode::Strict
        } else {
            Mode::PassThrough
        })
        .coercion(if s.coerce {
            Coercion::Scalars
        } else {
            Coercion::Off
        })
        .defaults(if s.apply_defaults {
            Defaults::Apply
        } else {
            Defaults::Off
        })
        .result_shape(if s.fixiplug_results {
            ResultShape::Reshaped
        } else {
            ResultShape::Public
        })
        .result_validation(match s.validate_results {
            ResultCheck::Warn => ResultValidation::Warn,
            ResultCheck::Enforce => ResultValidation::Enforce,
            ResultCheck::Off => ResultValidation::Off,
        })
        .params_validation(if cfg!(feature = "validation") {
            ParamsValidation::Schema
        } else {
            ParamsValidation::Off
        });
    if let Some(max) = max_params {
        builder = builder.max_params_bytes(max);
    }
    if let Some(depth) = NonZeroUsize::new(s.max_depth) {
        builder = builder.max_depth(depth);
    }
    builder
        .build()
        .map_err(|e| build_error("service")(boxed(e)))
}

fn breakers(config: &Config) -> Result<Option<BreakerRegistry>> {
    let b = &config.breaker;
    if !b.enabled {
        return Ok(None);
    }
    let one = NonZeroU32::MIN;
    let builder = match b.mode {
        BreakerMode::Consecutive => BreakerConfig::builder()
            .consecutive_failures(NonZeroU32::new(b.failure_threshold).unwrap_or(one)),
        BreakerMode::FailureRate => BreakerConfig::builder().failure_rate_over_time(
            b.failure_rate,
            b.window,
            NonZeroU32::new(b.min_calls).unwrap_or(one),
        ),
    };
    let template = builder
        .break_duration(b.break_duration)
        .half_open_max_probes(NonZeroU32::new(b.half_open_probes).unwrap_or(one))
        .half_open_successes(NonZeroU32::new(b.half_open_successes).unwrap_or(one))
        .build()
        .map_err(|e| build_error("circuit breakers")(boxed(e)))?;
    let capacity = NonZeroUsize::new(b.max_breakers).unwrap_or(NonZeroUsize::MIN);
    Ok(Some(BreakerRegistry::new(template, capacity)))
}

fn retry_policy(config: &Config) -> Result<Option<RetryPolicy>> {
    let r = &config.retry;
    if !r.enabled || r.max_retries == 0 {
        return Ok(None);
    }
    let backoff = match r.backoff {
        BackoffSetting::Constant => Backoff::constant(r.initial_delay),
        BackoffSetting::Linear => Backoff::linear(r.initial_delay, r.initial_delay),
        BackoffSetting::Exponential => Backoff::exponential(r.initial_delay, 2.0),
    };
    let jitter = match r.jitter {
        JitterSetting::None => Jitter::None,
        JitterSetting::Full => Jitter::Full,
        JitterSetting::Equal => Jitter::Equal,
        JitterSetting::Decorrelated => Jitter::Decorrelated,
    };
    let budget = RetryBudget::builder()
        .retry_ratio(r.budget_ratio)
        .min_retries_per_sec(r.budget_min_per_second)
        .build()
        .map_err(|e| build_error("retry budget")(boxed(e)))?;
    RetryPolicy::builder()
        .max_retries(r.max_retries)
        .backoff(backoff)
        .jitter(jitter)
        .max_delay(r.max_delay)
        .budget(budget)
        .build()
        .map(Some)
        .map_err(|e| build_error("retry policy")(boxed(e)))
}

fn pool_config(config: &Config, worker: WorkerSpec) -> Result<PoolConfig> {
    let p = &config.pool;
    let in_flight = NonZeroUsize::new(p.max_in_flight).unwrap_or(NonZeroUsize::MIN);
    let restart = RestartPolicy::default()
        .initial_backoff(p.restart_backoff)
        .max_backoff(p.restart_backoff.max(RestartPolicy::default().max_backoff))
        .crash_loop_starts(p.crash_loop_starts)
        .cooldown(p.crash_loop_cooldown)
        .max_cooldown(
            p.crash_loop_cooldown
                .max(RestartPolicy::default().max_cooldown),
        );
    let ping = (!p.ping_interval.is_zero()).then_some(p.ping_interval);
    let mut builder = PoolConfig::builder(worker);
    for url in &config.worker.connect {
        let endpoint = pybridge_pool::Endpoint::parse(url)
            .map_err(|e| build_error("worker.connect")(boxed(e)))?;
        builder = builder.connect(endpoint);
    }
    if let Some(secret) = worker_secret(config)? {
        builder = builder.secret(secret);
    }
    builder
        .min_workers(p.min_workers)
        .max_workers(config.max_workers())
        .max_in_flight(in_flight)
        .queue_capacity(p.queue_capacity)
        .default_timeout(config.call.timeout)
        .recycle(
            RecyclePolicy::default()
                .max_requests(p.recycle_after_requests)
                .max_age(p.max_age)
                .max_rss_bytes(p.max_rss.map(|b| b.as_u64())),
        )
        .health(
            HealthPolicy::default()
                .ping_interval(ping)
                .ping_timeout(p.ping_timeout)
                .cancel_grace(p.cancel_grace),
        )
        .restart(restart)
        .scale(
            ScalePolicy::default()
                .grow_after(p.grow_after)
                .idle_timeout(p.idle_timeout),
        )
        .shutdown(
            ShutdownPolicy::default()
                .drain_timeout(p.drain_timeout)
                .exit_grace(p.exit_grace),
        )
        .build()
        .map_err(|e| build_error("pool")(boxed(e)))
}

/// The remote workers' secret: `worker.secret_file`, else the
/// `PYBRIDGE_WORKER_SECRET` variable, else none.
fn worker_secret(config: &Config) -> Result<Option<pybridge_pool::Secret>> {
    let secret = match &config.worker.secret_file {
        Some(path) => pybridge_pool::Secret::from_file(path).map(Some),
        None => match std::env::var_os("PYBRIDGE_WORKER_SECRET") {
            Some(value) if !value.is_empty() => {
                use std::os::unix::ffi::OsStringExt;
                pybridge_pool::Secret::new(value.into_vec()).map(Some)
            }
            _ => Ok(None),
        },
    };
    secret.map_err(|e| build_error("worker.secret_file")(boxed(e)))
}

#[cfg(feature = "cache")]
fn cache(
    config: &Config,
    service: &Service,
    worker: &WorkerSpec,
) -> Result<Option<pybridge_cache::Cache>> {
    let c = &config.cache;
    if !c.enabled {
        return Ok(None);
    }
    // The catalog's version is part of every key: a changed catalog or
    // override can never be answered from entries cached under the old one.
    // So is the producer: the worker's manifest, or its command without one,
    // so that two different workers never share an entry.
    let producer = match service.catalog().manifest() {
        Some(manifest) => pybridge_cache::ProducerId::from_manifest(manifest.identity()),
        None => {
            let command: Vec<&[u8]> = std::iter::once(worker.program.as_os_str())
                .chain(worker.args.iter().map(|a| a.as_os_str()))
                .map(|part| part.as_encoded_bytes())
                .collect();
            pybridge_cache::ProducerId::from_command(&command)
        }
    };
    let namespace = producer.namespace(&format!("{}|{}", c.namespace, service.catalog().version()));
    // Results are JSON: those read back from disk or Redis are checked once,
    // on their way into memory, and a hit is handed out without another read.
    let mut builder = pybridge_cache::CacheBuilder::new()
        .namespace(namespace)
        .json_values(true);
    if let Some(bytes) = std::num::NonZeroU64::new(c.memory.as_u64()) {
        builder = builder.l1_max_bytes(bytes);
    }
    if c.disk {
        if let Some(dir) = &c.dir {
            builder = builder.l2_dir(dir);
        }
        if let Some(bytes) = std::num::NonZeroU64::new(c.disk_size.as_u64()) {
            builder = builder.l2_max_bytes(bytes);
        }
    } else {
        builder = builder.memory_only();
    }
    if let Some(url) = &c.redis_url {
        // The deployment's namespace is the configured one, without the
        // catalog version: keys carry that already, and an invalidation of a
        // method must reach processes on another catalog version too.
        let deployment = if c.namespace.is_empty() {
            "default"
        } else {
            c.namespace.as_str()
        };
        builder = builder.shared_tier(
            pybridge_cache::SharedTierConfig::new(url.as_str())
                .deployment(deployment)
                .max_read_timeout(c.redis_read_timeout),
        );
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| build_error("cache")(boxed(e)))
}

/// A method's cache policy from its registry entry and `[cache]`.
#[cfg(feature = "cache")]
fn cache_policy(
    spec: &pybridge_service::MethodSpec,
    config: &Config,
) -> pybridge_cache::CachePolicy {
    let declared = spec.cache();
    let mut policy = pybridge_cache::CachePolicy::default();
    if let Some(ttl) = declared.l1_ttl {
        policy.l1_ttl = ttl;
    }
    if let Some(ttl) = declared.l2_ttl {
        policy.l2_ttl = ttl;
    }
    if !config.cache.disk {
        policy.tiers = pybridge_cache::Tiers::L1Only;
    }
    policy
}
