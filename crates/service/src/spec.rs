//! What the catalog knows about one method.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::Violation;
use crate::error::{CatalogProblem, Error, Result};
use crate::rename::RenameTree;
use crate::schema::CompiledSchema;

/// Whether and how long a method's results may be cached. The cache layer
/// reads it; this crate only declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CachePolicy {
    /// Whether results may be cached at all.
    pub enabled: bool,
    /// Time to live in memory; `None` means the cache's configured default.
    pub l1_ttl: Option<Duration>,
    /// Time to live on disk; `None` means the cache's configured default.
    pub l2_ttl: Option<Duration>,
}

impl CachePolicy {
    /// Results are never cached (the default).
    pub const fn disabled() -> Self {
        Self {
            enabled: false,
            l1_ttl: None,
            l2_ttl: None,
        }
    }

    /// Results are cached with the given times to live (`None`: the cache's default).
    pub const fn enabled(l1_ttl: Option<Duration>, l2_ttl: Option<Duration>) -> Self {
        Self {
            enabled: true,
            l1_ttl,
            l2_ttl,
        }
    }
}

/// Where a method or one of its fields came from. The registry merges the
/// layers in this order, each overriding the ones before it: compiled-in
/// catalogs, catalog files, the worker's manifest, `[methods."name"]` in the
/// configuration. Schemas are the exception: a curated catalog schema is
/// never replaced by a manifest's (see [`CatalogBuilder::manifest`](crate::CatalogBuilder::manifest)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FieldSource {
    /// Nobody set it: the default.
    Default,
    /// A catalog compiled into a crate (the framework's).
    Builtin,
    /// A catalog file given at run time.
    CatalogFile,
    /// The worker's manifest.
    Manifest,
    /// `[methods."name"]` in the configuration.
    Config,
}

impl FieldSource {
    /// A short lowercase name: `default`, `builtin`, `catalog`, `manifest`, `config`.
    pub fn as_str(self) -> &'static str {
        match self {
            FieldSource::Default => "default",
            FieldSource::Builtin => "builtin",
            FieldSource::CatalogFile => "catalog",
            FieldSource::Manifest => "manifest",
            FieldSource::Config => "config",
        }
    }
}

/// The source of each field of a [`MethodSpec`] that a layer may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FieldSources {
    /// The method itself: who declared it first.
    pub method: FieldSource,
    /// The wire name.
    pub wire_name: FieldSource,
    /// The description.
    pub description: FieldSource,
    /// The params schema.
    pub params_schema: FieldSource,
    /// The result schema.
    pub result_schema: FieldSource,
    /// Idempotence.
    pub idempotent: FieldSource,
    /// The cache policy.
    pub cache: FieldSource,
    /// The timeout.
    pub timeout: FieldSource,
}

impl FieldSources {
    pub(crate) fn all(source: FieldSource) -> Self {
        Self {
            method: source,
            wire_name: source,
            description: source,
            params_schema: source,
            result_schema: source,
            idempotent: source,
            cache: source,
            timeout: source,
        }
    }
}

/// One method of the catalog: its names, what is sent to the worker, and how
/// the call is checked, cached, timed and adapted.
///
/// Specs are shared (`Arc<MethodSpec>`) between the catalog and every call in
/// flight. A method that is not in the catalog (pass-through mode) gets a
/// spec of its own with no schema, no renames, no cache and no envelope.
#[derive(Debug)]
pub struct MethodSpec {
    pub(crate) name: Box<str>,
    pub(crate) family: Box<str>,
    pub(crate) aliases: Vec<Box<str>>,
    pub(crate) wire_name: Arc<str>,
    pub(crate) description: Option<Box<str>>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) idempotent: bool,
    pub(crate) cache: CachePolicy,
    pub(crate) envelope: bool,
    pub(crate) params_schema: Option<CompiledSchema>,
    pub(crate) params_have_defaults: bool,
    pub(crate) result_schema: Option<CompiledSchema>,
    pub(crate) param_renames: RenameTree,
    pub(crate) legacy_params: RenameTree,
    pub(crate) result_renames: RenameTree,
    pub(crate) fixiplug_shape: Option<Box<str>>,
    pub(crate) source: Box<str>,
    pub(crate) in_catalog: bool,
    pub(crate) positional: Option<Vec<Box<str>>>,
    pub(crate) sources: FieldSources,
    pub(crate) available: bool,
    /// Registered once, used by every call ([`Self::metrics`]).
    pub(crate) metrics: Arc<crate::telemetry::MethodMetrics>,
}

impl MethodSpec {
    /// A spec for a method that is not in the catalog: sent under the name
    /// the caller used, unvalidated (the limits still apply), uncached, not
    /// idempotent.
    pub(crate) fn pass_through(name: &str, metrics: Arc<crate::telemetry::MethodMetrics>) -> Self {
        Self {
            name: name.into(),
            family: "".into(),
            aliases: Vec::new(),
            wire_name: name.into(),
            description: None,
            timeout: None,
            idempotent: false,
            cache: CachePolicy::disabled(),
            envelope: false,
            params_schema: None,
            params_have_defaults: false,
            result_schema: None,
            param_renames: RenameTree::default(),
            legacy_params: RenameTree::default(),
            result_renames: RenameTree::default(),
            fixiplug_shape: None,
            source: "".into(),
            in_catalog: false,
            positional: None,
            sources: FieldSources::all(FieldSource::Default),
            available: true,
            metrics,
        }
    }

    /// The public name (`pattern_learning.get_recommendations`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The family (`pattern_learning`); empty for pass-through methods.
    pub fn family(&self) -> &str {
        &self.family
    }

    /// Other names callers may use: the original camelCase service name and
    /// the plugin hook name.
    pub fn aliases(&self) -> impl Iterator<Item = &str> {
        self.aliases.iter().map(|a| &**a)
    }

    /// The method name sent to the worker.
    pub fn wire_name(&self) -> &str {
        &self.wire_name
    }

    /// [`wire_name`](Self::wire_name), shared: what a cache key keeps of
    /// every call, without a copy.
    pub fn wire_name_shared(&self) -> &Arc<str> {
        &self.wire_name
    }

    /// A one-line description, if the catalog gives one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The call's deadline; `None` means the bridge's default.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Whether running the method twice has the same effect as once, so a
    /// failed attempt may be retried even after a worker saw it.
    pub fn idempotent(&self) -> bool {
        self.idempotent
    }

    /// The cache policy.
    pub fn cache(&self) -> CachePolicy {
        self.cache
    }

    /// Whether results arrive in a `{data, metadata}` envelope to unwrap.
    pub fn envelope(&self) -> bool {
        self.envelope
    }

    /// The catalog's `fixiplug_shape` tag: which shape a [`Reshape`](crate::Reshape)
    /// gives the result in compatibility mode.
    pub fn fixiplug_shape(&self) -> Option<&str> {
        self.fixiplug_shape.as_deref()
    }

    /// Whether the method is in the catalog (false for pass-through methods).
    pub fn in_catalog(&self) -> bool {
        self.in_catalog
    }

    /// The catalog file that declared the method (`builtin:pattern_learning.json`,
    /// a path), or `manifest:<worker name>` for a method only the worker declares.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Where each field came from.
    pub fn sources(&self) -> &FieldSources {
        &self.sources
    }

    /// Parameter names in order, when the method also takes an array of
    /// params (validated by mapping element i to name i).
    pub fn positional(&self) -> Option<impl ExactSizeIterator<Item = &str>> {
        self.positional
            .as_ref()
            .map(|names| names.iter().map(|n| &**n))
    }

    /// Whether a worker implements the method. A catalog method is
    /// unavailable when its family is marked so by its catalog, or when the
    /// worker sent a manifest that does not declare it; a call fails with
    /// [`Error::UnknownMethod`](crate::Error::UnknownMethod).
    pub fn available(&self) -> bool {
        self.available
    }

    /// The value for a `method` metric label: the public name for catalog
    /// methods, and [`PASS_THROUGH_LABEL`](crate::telemetry::PASS_THROUGH_LABEL)
    /// for the rest, so that arbitrary names cannot blow up label cardinality.
    pub fn metric_label(&self) -> &str {
        if self.in_catalog {
            &self.name
        } else {
            crate::telemetry::PASS_THROUGH_LABEL
        }
    }

    /// The method's call metrics, labelled [`Self::metric_label`].
    pub fn metrics(&self) -> &crate::telemetry::MethodMetrics {
        &self.metrics
    }

    /// The params schema (it describes the public params), if the method has one.
    pub fn params_schema(&self) -> Option<&Value> {
        self.params_schema.as_ref().map(CompiledSchema::source)
    }

    /// The result schema (it describes the result after envelope unwrapping
    /// and result renames), if the method has one.
    pub fn result_schema(&self) -> Option<&Value> {
        self.result_schema.as_ref().map(CompiledSchema::source)
    }

    /// Compiles the method's schemas, unless that was done already. Schemas
    /// of built-in catalogs and of the worker's manifest are compiled on
    /// first use; this compiles them now (tests do, and a long-running
    /// process may, off its callers' path). Schemas from catalog files were
    /// compiled at load.
    ///
    /// # Errors
    /// [`Error::Catalog`] with [`CatalogProblem::InvalidSchema`], naming the
    /// catalog file or manifest (`manifest:<worker>`) and the key, when a
    /// schema does not compile.
    pub fn compile_schemas(&self) -> Result<()> {
        self.params_schema_ready()?;
        self.result_schema_ready()
    }

    pub(crate) fn params_schema_ready(&self) -> Result<()> {
        self.ready(self.params_schema.as_ref())
    }

    pub(crate) fn result_schema_ready(&self) -> Result<()> {
        self.ready(self.result_schema.as_ref())
    }

    fn ready(&self, schema: Option<&CompiledSchema>) -> Result<()> {
        let Some(schema) = schema else {
            return Ok(());
        };
        schema.ready().map_err(|reason| {
            let origin = schema.origin();
            Error::Catalog {
                file: origin.file.to_string(),
                key: origin.key.to_string(),
                problem: CatalogProblem::InvalidSchema { reason },
            }
        })
    }

    /// Validates public params against the params schema (no limits, no
    /// renames); every violation is returned. A method without a schema
    /// accepts anything.
    ///
    /// # Errors
    /// The violations, when there are any.
    pub fn validate_params(&self, params: &Value) -> Result<(), Vec<Violation>> {
        check(self.params_schema.as_ref(), params)
    }

    /// Validates an adapted result against the result schema; every
    /// violation is returned. A method without a result schema accepts anything.
    ///
    /// # Errors
    /// The violations, when there are any.
    pub fn validate_result(&self, result: &Value) -> Result<(), Vec<Violation>> {
        check(self.result_schema.as_ref(), result)
    }
}

fn check(schema: Option<&CompiledSchema>, value: &Value) -> Result<(), Vec<Violation>> {
    match schema {
        Some(schema) => {
            let violations = schema.violations(value);
            if violations.is_empty() {
                Ok(())
            } else {
                Err(violations)
            }
        }
        None => Ok(()),
    }
}
