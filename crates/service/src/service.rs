//! The service: the entry points the bridge calls on every request
//! ([`Service::prepare`]) and every response ([`Service::adapt_result`]).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use pybridge_protocol::MethodKind;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::catalog::{Catalog, Resolution, check_method_name};
use crate::coerce::{apply_defaults, coerce};
use crate::config::{Mode, ParamsValidation, ResultShape, ResultValidation, ServiceConfig};
use crate::error::{Error, Result};
use crate::spec::MethodSpec;
use crate::{Coercion, Defaults, Violation, envelope, limits, telemetry};

/// The service layer: looks methods up, checks and adapts params, adapts
/// results. Cheap to clone (an `Arc` inside).
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

struct Inner {
    catalog: Catalog,
    config: ServiceConfig,
    hooks: Hooks,
    /// Shared by every pass-through call's spec (they are built per call
    /// and share one label), so their handles are registered once.
    pass_through_metrics: Arc<telemetry::MethodMetrics>,
}

/// Worker-specific adapters a service can carry (the framework crate
/// supplies both for its worker); without them the service is generic.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Hooks {
    /// Reshapes results in [`ResultShape::Reshaped`] mode.
    pub reshape: Option<Arc<dyn Reshape>>,
    /// Says which cached reads a successful write makes stale.
    pub invalidation: Option<Arc<dyn Invalidation>>,
}

impl Hooks {
    /// No hooks.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the result reshape.
    pub fn reshape(mut self, reshape: Arc<dyn Reshape>) -> Self {
        self.reshape = Some(reshape);
        self
    }

    /// Sets the invalidation rules.
    pub fn invalidation(mut self, invalidation: Arc<dyn Invalidation>) -> Self {
        self.invalidation = Some(invalidation);
        self
    }
}

/// Which cached results a successful call of a method that is not
/// idempotent makes stale (a recorded pattern must show in the next
/// recommendations). Without rules, a write invalidates nothing.
pub trait Invalidation: Send + Sync + fmt::Debug {
    /// The methods whose cached results `write` makes stale.
    fn stale_after(&self, catalog: &Catalog, write: &MethodSpec) -> Vec<Arc<MethodSpec>>;
}

/// Gives adapted results another shape in [`ResultShape::Reshaped`] mode,
/// for callers of an older API. The framework crate implements it for the
/// FixiPlug shapes; the service only calls it.
pub trait Reshape: Send + Sync + fmt::Debug {
    /// Reshapes `value`, the result of `spec` after envelope unwrapping and
    /// renames; `metadata` is the envelope's metadata, when there was one.
    fn reshape(&self, spec: &MethodSpec, value: Value, metadata: Option<&Value>) -> Value;
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("catalog", &self.inner.catalog)
            .field("config", &self.inner.config)
            .finish()
    }
}

/// A call ready to be sent: the method's spec and the wire params.
#[derive(Debug, Clone)]
pub struct Prepared<'a> {
    spec: Arc<MethodSpec>,
    params: Option<Cow<'a, RawValue>>,
    resolution: Resolution,
}

impl<'a> Prepared<'a> {
    /// The method's spec: wire name, timeout, idempotence, cache policy.
    pub fn spec(&self) -> &Arc<MethodSpec> {
        &self.spec
    }

    /// The method name to send.
    pub fn wire_name(&self) -> &str {
        self.spec.wire_name()
    }

    /// The params to send, in wire names; `None` when the caller sent none
    /// (or `null`) and nothing had to be added.
    pub fn params(&self) -> Option<&RawValue> {
        self.params.as_deref()
    }

    /// Whether the params were rewritten (legacy names, coercion, defaults
    /// or renames). When false, [`params`](Self::params) is the caller's
    /// text itself, not a copy.
    pub fn is_rewritten(&self) -> bool {
        matches!(self.params, Some(Cow::Owned(_)))
    }

    /// How the method name was resolved.
    pub fn resolution(&self) -> Resolution {
        self.resolution
    }

    /// The spec and the params.
    pub fn into_parts(self) -> (Arc<MethodSpec>, Option<Cow<'a, RawValue>>) {
        (self.spec, self.params)
    }

    /// Detaches from the caller's params, copying them if they were borrowed.
    pub fn into_owned(self) -> Prepared<'static> {
        Prepared {
            spec: self.spec,
            params: self.params.map(|p| Cow::Owned(p.into_owned())),
            resolution: self.resolution,
        }
    }
}

/// A worker's result, adapted for the caller.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Adapted {
    /// The result: unwrapped from its envelope, with the declared result
    /// renames applied (and in FixiPlug shape in compatibility mode).
    pub result: Box<RawValue>,
    /// The envelope's metadata, when the result came in one with metadata.
    pub metadata: Option<Box<RawValue>>,
}

impl Service {
    /// A service over `catalog` with `config`.
    pub fn new(catalog: Catalog, config: ServiceConfig) -> Self {
        Self::with_hooks(catalog, config, Hooks::default())
    }

    /// A service whose results are reshaped by `reshape` when the config's
    /// result shape is [`ResultShape::Reshaped`].
    pub fn with_reshape(
        catalog: Catalog,
        config: ServiceConfig,
        reshape: Arc<dyn Reshape>,
    ) -> Self {
        Self::with_hooks(catalog, config, Hooks::new().reshape(reshape))
    }

    /// A service with worker-specific [`Hooks`].
    pub fn with_hooks(catalog: Catalog, config: ServiceConfig, hooks: Hooks) -> Self {
        Self {
            inner: Arc::new(Inner {
                catalog,
                config,
                hooks,
                pass_through_metrics: Arc::new(telemetry::MethodMetrics::new(
                    telemetry::PASS_THROUGH_LABEL,
                )),
            }),
        }
    }

    /// The methods whose cached results a successful call of `write` makes
    /// stale, by the service's [`Invalidation`] rules (none without them).
    pub fn stale_after(&self, write: &MethodSpec) -> Vec<Arc<MethodSpec>> {
        match &self.inner.hooks.invalidation {
            Some(rules) => rules.stale_after(&self.inner.catalog, write),
            None => Vec::new(),
        }
    }

    /// The catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }

    /// The configuration.
    pub fn config(&self) -> &ServiceConfig {
        &self.inner.config
    }

    /// Looks `method` up (public name or alias), checks the params against
    /// the limits and the method's schema, and turns them into wire params.
    ///
    /// In order: the limits (size, depth, string and array lengths,
    /// forbidden keys); legacy names, when the method was called by an
    /// alias; coercion and defaults, when configured; schema validation,
    /// which reports every violation; the declared renames. When none of
    /// these changes anything, the wire params are the caller's text itself.
    ///
    /// Absent or `null` params are validated as `{}` and stay absent unless
    /// defaults were added.
    ///
    /// # Errors
    /// [`Error::ReservedMethod`], [`Error::UnknownMethod`] (strict mode),
    /// [`Error::InvalidParams`] with the violations, or [`Error::Catalog`]
    /// when a params schema compiled on first use (a built-in catalog's or the
    /// worker manifest's) does not compile.
    pub fn prepare<'a>(&self, method: &str, params: Option<&'a RawValue>) -> Result<Prepared<'a>> {
        // Every name the catalog holds was checked as it loaded (a snake_case
        // name, or an alias or manifest name that passed `check_method_name`)
        // except for the reserved prefixes, which a family named `rpc` would
        // give: a name it resolves needs only that cheap check, and the scan
        // of every character runs for the others.
        let reserved = MethodKind::of(method) != MethodKind::Application;
        let resolved = if reserved {
            None
        } else {
            self.inner.catalog.resolve(method)
        };
        if resolved.is_none() && check_method_name(method).is_err() {
            telemetry::count_rejection(
                telemetry::UNKNOWN_LABEL,
                telemetry::Rejection::UnknownMethod,
            );
            return Err(Error::ReservedMethod {
                method: method.to_owned(),
            });
        }
        let (spec, resolution) = match resolved {
            Some((spec, how)) => (Arc::clone(spec), how),
            None if self.inner.config.mode == Mode::Strict => {
                telemetry::count_rejection(
                    telemetry::UNKNOWN_LABEL,
                    telemetry::Rejection::UnknownMethod,
                );
                return Err(Error::UnknownMethod {
                    method: method.to_owned(),
                    suggestions: self.inner.catalog.suggest(method),
                    unavailable: false,
                });
            }
            None => (
                Arc::new(MethodSpec::pass_through(
                    method,
                    Arc::clone(&self.inner.pass_through_metrics),
                )),
                Resolution::PassThrough,
            ),
        };
        if !spec.available() {
            telemetry::count_rejection(spec.metric_label(), telemetry::Rejection::UnknownMethod);
            return Err(Error::UnknownMethod {
                method: spec.name().to_owned(),
                suggestions: Vec::new(),
                unavailable: true,
            });
        }
        if self.inner.config.params_validation == ParamsValidation::Schema {
            // Built-in and manifest schemas are compiled on their method's
            // first call.
            spec.params_schema_ready()?;
        }
        let params = params.filter(|raw| raw.get().trim() != "null");
        match self.wire_params(&spec, resolution, params) {
            Ok(params) => {
                tracing::trace!(
                    method = spec.name(),
                    wire = spec.wire_name(),
                    rewritten = matches!(params, Some(Cow::Owned(_))),
                    "params prepared"
                );
                Ok(Prepared {
                    spec,
                    params,
                    resolution,
                })
            }
            Err((rejection, violations)) => {
                telemetry::count_rejection(spec.metric_label(), rejection);
                tracing::debug!(
                    method = spec.name(),
                    violations = violations.len(),
                    first = %violations[0],
                    "params rejected"
                );
                Err(Error::InvalidParams {
                    method: spec.name().to_owned(),
                    violations,
                })
            }
        }
    }

    fn wire_params<'a>(
        &self,
        spec: &MethodSpec,
        resolution: Resolution,
        params: Option<&'a RawValue>,
    ) -> Result<Option<Cow<'a, RawValue>>, (telemetry::Rejection, Vec<Violation>)> {
        let config = &self.inner.config;
        let legacy = resolution == Resolution::Alias && !spec.legacy_params.is_empty();
        let schema = spec
            .params_schema
            .as_ref()
            .filter(|_| config.params_validation == ParamsValidation::Schema);
        let needs_tree = schema.is_some() || legacy || !spec.param_renames.is_empty();

        let mut tree = match params {
            Some(raw) if !needs_tree => {
                return match limits::parse::<false>(raw, &config.limits) {
                    Ok(_) => Ok(Some(Cow::Borrowed(raw))),
                    Err(violation) => Err((telemetry::Rejection::Limit, vec![violation])),
                };
            }
            Some(raw) => limits::parse::<true>(raw, &config.limits)
                .map_err(|violation| (telemetry::Rejection::Limit, vec![violation]))?,
            None if schema.is_some() => Value::Object(serde_json::Map::new()),
            None => return Ok(None),
        };

        if let (Value::Array(items), Some(names), Some(schema)) =
            (&tree, spec.positional.as_ref(), schema)
        {
            // By position: element i is the param named names[i]. The mapped
            // object is validated; the worker still gets the array.
            let mut violations = Vec::new();
            if items.len() > names.len() {
                violations.push(Violation::new(
                    "",
                    "maxItems",
                    format!(
                        "{} params given by position; the method takes at most {}",
                        items.len(),
                        names.len()
                    ),
                ));
            }
            let object: serde_json::Map<String, Value> = names
                .iter()
                .zip(items)
                .map(|(name, value)| (name.to_string(), value.clone()))
                .collect();
            violations.extend(schema.violations(&Value::Object(object)));
            if !violations.is_empty() {
                return Err((telemetry::Rejection::Schema, violations));
            }
            return Ok(params.map(Cow::Borrowed));
        }
        let mut changed = false;
        if legacy {
            changed |= spec
                .legacy_params
                .to_public(&mut tree)
                .map_err(|conflict| {
                    (
                        telemetry::Rejection::Schema,
                        vec![conflict.into_violation("legacyName")],
                    )
                })?;
        }
        if let Some(schema) = schema {
            let root = schema.source();
            if config.coercion == Coercion::Scalars {
                changed |= coerce(root, root, &mut tree);
            }
            if config.defaults == Defaults::Apply && spec.params_have_defaults {
                changed |= apply_defaults(root, root, &mut tree);
            }
            let violations = schema.violations(&tree);
            if !violations.is_empty() {
                return Err((telemetry::Rejection::Schema, violations));
            }
        }
        changed |= spec.param_renames.to_other(&mut tree);

        match (params, changed) {
            (Some(raw), false) => Ok(Some(Cow::Borrowed(raw))),
            (None, false) => Ok(None),
            (_, true) => {
                // Serializing a `Value` cannot fail: its keys are strings and
                // its numbers finite.
                let raw = serde_json::value::to_raw_value(&tree).map_err(|e| {
                    (
                        telemetry::Rejection::Schema,
                        vec![Violation::new("", "json", e.to_string())],
                    )
                })?;
                Ok(Some(Cow::Owned(raw)))
            }
        }
    }

    /// Adapts a worker's raw result for the caller: unwraps the envelope
    /// (when the method declares one and the result is one), applies the
    /// declared result renames, checks the result schema (when configured),
    /// and gives the FixiPlug shape (in compatibility mode). When none of
    /// that applies, the result is passed on without being parsed.
    ///
    /// # Errors
    /// [`Error::InvalidResult`] when result validation is
    /// [`ResultValidation::Enforce`] and the result breaks its schema, or a
    /// declared result rename would overwrite a field the worker also sent;
    /// [`Error::Catalog`] when, in that mode, a built-in or manifest result schema,
    /// compiled on first use, does not compile.
    pub fn adapt_result(&self, spec: &MethodSpec, raw: Box<RawValue>) -> Result<Adapted> {
        let config = &self.inner.config;
        let (unwrapped, metadata) = match spec.envelope.then(|| envelope::split(&raw)).flatten() {
            Some(split) => (
                Some(split.data.to_owned()),
                split.metadata.map(ToOwned::to_owned),
            ),
            None => (None, None),
        };
        let data = unwrapped.unwrap_or(raw);

        let validate =
            config.result_validation != ResultValidation::Off && spec.result_schema.is_some();
        let reshape = self
            .inner
            .hooks
            .reshape
            .as_ref()
            .filter(|_| config.result_shape == ResultShape::Reshaped);
        if spec.result_renames.is_empty() && !validate && reshape.is_none() {
            return Ok(Adapted {
                result: data,
                metadata,
            });
        }

        if validate && config.result_validation == ResultValidation::Enforce {
            // Built-in and manifest schemas are compiled on their method's
            // first result.
            spec.result_schema_ready()?;
        }
        let invalid = |violations: Vec<Violation>| Error::InvalidResult {
            method: spec.name().to_owned(),
            violations,
        };
        let mut value: Value = serde_json::from_str(data.get())
            .map_err(|e| invalid(vec![Violation::new("", "json", e.to_string())]))?;
        spec.result_renames
            .to_public(&mut value)
            .map_err(|conflict| invalid(vec![conflict.into_violation("renameConflict")]))?;
        if validate && let Err(violations) = spec.validate_result(&value) {
            telemetry::count_invalid_result(spec.metric_label());
            if config.result_validation == ResultValidation::Enforce {
                return Err(invalid(violations));
            }
            tracing::warn!(
                method = spec.name(),
                violations = violations.len(),
                first = %violations[0],
                "result does not match its schema"
            );
        }
        if let Some(reshape) = reshape {
            let meta: Option<Value> = metadata
                .as_ref()
                .and_then(|m| serde_json::from_str(m.get()).ok());
            value = reshape.reshape(spec, value, meta.as_ref());
        }
        let result = serde_json::value::to_raw_value(&value)
            .map_err(|e| invalid(vec![Violation::new("", "json", e.to_string())]))?;
        Ok(Adapted { result, metadata })
    }
}
