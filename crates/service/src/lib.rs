//! The pybridge service layer: the method catalog, limits and JSON Schema
//! validation of params, request and response adapters, the names of
//! pybridge's per-call telemetry, and the typed API of the SQLite Extensions
//! Framework.
//!
//! In the layers (see `ARCHITECTURE.md`) it sits between the bridge, which
//! calls it on every request and response, and the cache; it depends only on
//! `pybridge-protocol`. It knows nothing of workers or caches: the bridge
//! composes them.
//!
//! - [`Catalog`]: every method, as data. One JSON file per method family is
//!   compiled in (pattern learning, extension generator, agent amplification,
//!   agent context, research, innovation, prompt lab, experiment, test), and
//!   users add files of their own at run time ([`CatalogBuilder::file`]).
//!   Each [`MethodSpec`] has a public snake_case name
//!   (`pattern_learning.get_recommendations`), aliases (the original
//!   camelCase service name `getRecommendations` and plugin hook name
//!   `sqlite.patterns.get`), the wire name sent to the worker, params and
//!   result schemas, a [`CachePolicy`], a timeout, an idempotent flag,
//!   declared renames and an envelope flag. Wire names, timeouts and cache
//!   policies can be overridden per deployment ([`MethodOverride`]).
//! - [`Service::prepare`]: looks a method up, checks the params against the
//!   [`Limits`] (size, depth, string and array lengths, `__proto__`-style
//!   keys) and the compiled schema (every [`Violation`] with its JSON
//!   pointer), applies [`Coercion`] and [`Defaults`] when configured, and
//!   renames declared fields for the worker. When nothing changes, the
//!   caller's params text is passed on as is, without a copy.
//! - [`Service::adapt_result`]: unwraps the `{data, metadata}` envelope,
//!   reverses declared renames, optionally checks the result schema, and in
//!   [`ResultShape::Fixiplug`] mode gives the original's camelCase shapes.
//! - [`framework`]: request and result structs for the 16 methods of the four
//!   main families, over any [`Call`] implementation.
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
//! let service = Service::new(Catalog::builtin()?, ServiceConfig::default());
//!
//! // A caller of the original API: a camelCase alias and camelCase params.
//! let params = RawValue::from_string(
//!     r#"{"description":"similarity search over embeddings","threshold":0.8,"maxResults":5}"#.into(),
//! )?;
//! let prepared = service.prepare("findSimilarPatterns", Some(&params))?;
//! assert_eq!(
//!     prepared.wire_name(),
//!     ".claude_code.extension_pattern_learning.find_similar_patterns"
//! );
//! assert_eq!(
//!     prepared.params().map(|p| p.get()),
//!     Some(r#"{"description":"similarity search over embeddings","max_results":5,"similarity_threshold":0.8}"#)
//! );
//! assert!(prepared.spec().cache().enabled);
//!
//! // Bad params never reach a worker; every violation is reported.
//! let bad = RawValue::from_string(r#"{"threshold":2}"#.into())?;
//! let error = service
//!     .prepare("pattern_learning.find_similar", Some(&bad))
//!     .unwrap_err();
//! assert_eq!(error.violations().len(), 2); // `description` missing, `threshold` > 1
//!
//! // The worker's answer, in its envelope.
//! let raw = RawValue::from_string(
//!     r#"{"data":{"similar_patterns":[],"total_found":0},"metadata":{"execution_time":3}}"#.into(),
//! )?;
//! let adapted = service.adapt_result(prepared.spec(), raw)?;
//! assert_eq!(adapted.result.get(), r#"{"similar_patterns":[],"total_found":0}"#);
//! assert_eq!(adapted.metadata.map(|m| m.get().to_owned()).as_deref(), Some(r#"{"execution_time":3}"#));
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod catalog;
mod coerce;
mod config;
mod envelope;
mod error;
mod fixiplug;
pub mod framework;
mod limits;
mod rename;
mod schema;
mod service;
mod spec;
pub mod telemetry;
mod violation;

#[cfg(test)]
mod tests;

pub use catalog::{Catalog, CatalogBuilder, MethodOverride, Resolution};
pub use coerce::{Coercion, Defaults};
pub use config::{
    Mode, ParamsValidation, ResultShape, ResultValidation, ServiceConfig, ServiceConfigBuilder,
};
pub use error::{CatalogProblem, Error, Result};
pub use fixiplug::FixiplugShape;
pub use framework::{Call, Framework};
pub use limits::{FORBIDDEN_KEYS, Limits, ProtoKeys};
pub use service::{Adapted, Prepared, Service};
pub use spec::{CachePolicy, MethodSpec};
pub use violation::Violation;
