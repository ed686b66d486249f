//! The SQLite Extensions Framework for pybridge: its method catalog and
//! schemas, the typed Rust API of its 16 main methods, and the FixiPlug
//! result shapes of its original adapter.
//!
//! In the layers (see `ARCHITECTURE.md`) it sits beside `pybridge-service`,
//! which stays generic: this crate only supplies data and adapters that plug
//! into it. The `pybridge` facade composes both when its `framework` feature
//! is on; a program that calls only its own worker does not compile this crate.
//!
//! - [`builtin`]: the catalog (one JSON file per family: pattern learning,
//!   extension generator, agent amplification, agent context, research,
//!   innovation, prompt lab, experiment, test) and its schemas, compiled in.
//!   Each method has a public snake_case name
//!   (`pattern_learning.get_recommendations`), aliases (the original camelCase
//!   service name and plugin hook name) and the wire name the reference
//!   worker serves. [`UNAVAILABLE_FAMILIES`] lists the families the reference
//!   framework does not implement.
//! - [`api`]: request and result structs over any [`Call`](pybridge_service::Call).
//! - [`Fixiplug`]: the original adapter's camelCase result shapes, as a
//!   [`Reshape`](pybridge_service::Reshape).
//!
//! # Example
//!
//! ```
//! use pybridge_service::{Service, ServiceConfig};
//! use serde_json::value::RawValue;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let service = Service::new(pybridge_framework::catalog()?, ServiceConfig::default());
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
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod api;
mod builtin;
mod fixiplug;

use std::sync::Arc;

use pybridge_service::{
    BuiltinCatalog, Catalog, CatalogBuilder, FieldSource, Hooks, Invalidation, MethodSpec,
};

pub use api::Framework;
pub use fixiplug::{Fixiplug, FixiplugShape};

/// The framework's catalog files and schemas, to add to any
/// [`CatalogBuilder`] with [`CatalogBuilder::builtin`].
pub fn builtin() -> BuiltinCatalog {
    BuiltinCatalog {
        files: builtin::CATALOG_FILES,
        schemas: builtin::SCHEMA_FILES,
        unavailable_families: UNAVAILABLE_FAMILIES,
    }
}

/// A catalog builder that starts from the framework's catalog.
pub fn catalog_builder() -> CatalogBuilder {
    Catalog::builder().builtin(builtin())
}

/// The framework's catalog alone, with no user files and no overrides.
///
/// # Errors
/// Only if a built-in file is broken, which the crate's tests rule out.
pub fn catalog() -> pybridge_service::Result<Catalog> {
    catalog_builder().build()
}

/// The framework's rule for stale reads: a successful write (a method that
/// is not idempotent) of one of its families makes every cacheable method of
/// that family stale, since they read what the write changed. It applies to
/// the framework's built-in methods only, never to a user's.
#[derive(Debug, Clone, Copy, Default)]
pub struct FamilyInvalidation;

impl Invalidation for FamilyInvalidation {
    fn stale_after(&self, catalog: &Catalog, write: &MethodSpec) -> Vec<Arc<MethodSpec>> {
        if write.sources().method != FieldSource::Builtin {
            return Vec::new();
        }
        catalog
            .methods()
            .filter(|m| {
                m.sources().method == FieldSource::Builtin
                    && m.family() == write.family()
                    && m.cache().enabled
            })
            .cloned()
            .collect()
    }
}

/// The framework's hooks for a service: its invalidation rules, and the
/// FixiPlug shapes when `fixiplug` is true.
pub fn hooks(fixiplug: bool) -> Hooks {
    let hooks = Hooks::new().invalidation(Arc::new(FamilyInvalidation));
    if fixiplug {
        hooks.reshape(Arc::new(Fixiplug))
    } else {
        hooks
    }
}

/// Method families of the catalog that the reference framework does not
/// implement: their methods are listed as unavailable and a call fails with
/// `method_not_found` naming the public name.
pub const UNAVAILABLE_FAMILIES: &[&str] = &["research", "innovation", "experiment", "prompt_lab"];
