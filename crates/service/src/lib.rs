//! The pybridge service layer: the method registry, limits and JSON Schema
//! validation of params, request and response adapters, and the names of
//! pybridge's per-call telemetry. It is generic: it knows no particular
//! worker. The SQLite Extensions Framework's catalog, typed API and FixiPlug
//! shapes live in `pybridge-framework`, which plugs into it.
//!
//! In the layers (see `ARCHITECTURE.md`) it sits between the bridge, which
//! calls it on every request and response, and the cache; it depends only on
//! `pybridge-protocol`. It knows nothing of workers or caches: the bridge
//! composes them.
//!
//! - [`Catalog`]: every method, as data, merged from compiled-in catalogs
//!   ([`BuiltinCatalog`], such as the framework's), catalog files
//!   ([`CatalogBuilder::file`]), the worker's own [`Manifest`] and
//!   per-deployment overrides ([`MethodOverride`]), in that order of
//!   precedence, with the source of every field kept ([`FieldSource`]).
//!   Each [`MethodSpec`] has a public name, aliases, the wire name sent to
//!   the worker, params and result schemas, a [`CachePolicy`], a timeout,
//!   an idempotent flag, declared renames and an envelope flag.
//! - [`Service::prepare`]: looks a method up, checks the params against the
//!   [`Limits`] (size, depth, string and array lengths, `__proto__`-style
//!   keys) and the compiled schema (every [`Violation`] with its JSON
//!   pointer), applies [`Coercion`] and [`Defaults`] when configured, and
//!   renames declared fields for the worker. When nothing changes, the
//!   caller's params text is passed on as is, without a copy.
//! - [`Service::adapt_result`]: unwraps the `{data, metadata}` envelope,
//!   reverses declared renames, optionally checks the result schema, and in
//!   [`ResultShape::Reshaped`] mode applies a [`Reshape`].
//! - [`Call`]: the seam a typed API calls through (the bridge implements it).
//! - [`telemetry`]: metric names (`pybridge_service_*`), labels, histogram
//!   buckets and span fields.
//!
//! The crate has no optional features.
//!
//! # Example
//!
//! ```
//! use pybridge_service::{Catalog, Service, ServiceConfig};
//! use serde_json::value::RawValue;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let catalog = Catalog::builder()
//!     .source(
//!         "weather.json",
//!         r#"{"family":"weather","methods":[{"name":"weather.forecast",
//!             "aliases":["getForecast"],"wire_name":"forecast","idempotent":true,
//!             "params_schema":{"type":"object","properties":{"days":{"type":"integer","maximum":7}},
//!                              "required":["days"]},
//!             "param_renames":{"/days":"num_days"}}]}"#,
//!     )
//!     .build()?;
//! let service = Service::new(catalog, ServiceConfig::default());
//!
//! let params = RawValue::from_string(r#"{"days":3}"#.into())?;
//! let prepared = service.prepare("getForecast", Some(&params))?;
//! assert_eq!(prepared.wire_name(), "forecast");
//! assert_eq!(prepared.params().map(|p| p.get()), Some(r#"{"num_days":3}"#));
//!
//! // Bad params never reach a worker; every violation is reported.
//! let bad = RawValue::from_string(r#"{"days":9,"x":1}"#.into())?;
//! let error = service.prepare("weather.forecast", Some(&bad)).unwrap_err();
//! assert_eq!(error.violations().len(), 1); // `days` > 7
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod call;
mod catalog;
mod coerce;
mod config;
mod envelope;
mod error;
mod limits;
mod manifest;
mod rename;
mod schema;
mod service;
mod spec;
pub mod telemetry;
mod violation;

#[cfg(test)]
mod tests;

pub use call::Call;
pub use catalog::{BuiltinCatalog, Catalog, CatalogBuilder, MethodOverride, Resolution};
pub use coerce::{Coercion, Defaults};
pub use config::{
    Mode, ParamsValidation, ResultShape, ResultValidation, ServiceConfig, ServiceConfigBuilder,
};
pub use error::{CatalogProblem, Error, Result};
pub use limits::{FORBIDDEN_KEYS, Limits, ProtoKeys};
pub use manifest::{Manifest, ManifestMethod};
pub use service::{Adapted, Hooks, Invalidation, Prepared, Reshape, Service};
pub use spec::{CachePolicy, FieldSource, FieldSources, MethodSpec};
pub use violation::Violation;
