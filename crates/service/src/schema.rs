//! A JSON Schema, compiled once (at load, or on first use for schemas known
//! to be good), and the conversion of its errors into [`Violation`]s.

use std::fmt;
use std::sync::{Arc, OnceLock};

use jsonschema::{Draft, Validator};
use serde_json::Value;

use crate::Violation;

/// Longest rendering of an offending value that a message may quote; longer
/// values are described as "value" instead, so errors never echo payloads.
const MAX_QUOTED_VALUE: usize = 64;

/// A schema's source and its validator, compiled at most once. Clones share
/// both.
#[derive(Clone)]
pub(crate) struct CompiledSchema {
    inner: Arc<Inner>,
}

/// Where a schema was declared: a catalog file or `manifest:<worker>`, and
/// the key (`methods[2].params_schema`), for errors found after load.
#[derive(Debug, Clone)]
pub(crate) struct SchemaOrigin {
    pub(crate) file: Box<str>,
    pub(crate) key: Box<str>,
}

struct Inner {
    source: Value,
    origin: SchemaOrigin,
    /// The validator, or the compiler's message. Set at load for
    /// [`CompiledSchema::compile`], on first use for [`CompiledSchema::deferred`].
    validator: OnceLock<Result<Validator, String>>,
}

impl fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledSchema")
            .field("title", &self.inner.source.get("title"))
            .field("compiled", &self.inner.validator.get().is_some())
            .finish_non_exhaustive()
    }
}

impl CompiledSchema {
    /// Compiles `source` now, as JSON Schema 2020-12 (unless it says
    /// otherwise in `$schema`), checking `format`s and rejecting unknown ones.
    ///
    /// # Errors
    /// The compiler's message when the schema is invalid.
    pub(crate) fn compile(source: Value, origin: SchemaOrigin) -> Result<Self, String> {
        let schema = Self::deferred(source, origin)?;
        schema.ready()?;
        Ok(schema)
    }

    /// Keeps `source` and compiles it on first use. Only the cheap check
    /// (an object or a boolean) runs now: this is for schemas compiled into
    /// the program, whose tests compile every one of them (see
    /// [`Catalog::compile_schemas`](crate::Catalog::compile_schemas)), and
    /// the worker's manifest's, so that a process that calls one method
    /// compiles one method's schemas.
    ///
    /// # Errors
    /// When `source` is neither an object nor a boolean.
    pub(crate) fn deferred(source: Value, origin: SchemaOrigin) -> Result<Self, String> {
        if !source.is_object() && !source.is_boolean() {
            return Err("a schema must be an object or a boolean".into());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                source,
                origin,
                validator: OnceLock::new(),
            }),
        })
    }

    pub(crate) fn source(&self) -> &Value {
        &self.inner.source
    }

    pub(crate) fn origin(&self) -> &SchemaOrigin {
        &self.inner.origin
    }

    /// Compiles the schema unless that was done already.
    ///
    /// A caller that finds another thread compiling waits for it (the
    /// compilation is CPU work of a millisecond or so, done once per schema).
    ///
    /// # Errors
    /// The compiler's message when the schema is invalid.
    pub(crate) fn ready(&self) -> Result<(), String> {
        self.validator().map(|_| ()).map_err(str::to_owned)
    }

    fn validator(&self) -> Result<&Validator, &str> {
        self.inner
            .validator
            .get_or_init(|| {
                jsonschema::options()
                    .with_draft(Draft::Draft202012)
                    .should_validate_formats(true)
                    .should_ignore_unknown_formats(false)
                    .build(&self.inner.source)
                    .map_err(|error| error.to_string())
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// Every violation of `instance`, in the validator's order. A schema
    /// that does not compile (callers check [`Self::ready`] first where they
    /// can say so with a typed error) yields one violation saying so.
    pub(crate) fn violations(&self, instance: &Value) -> Vec<Violation> {
        let validator = match self.validator() {
            Ok(validator) => validator,
            Err(reason) => {
                return vec![Violation::new(
                    "",
                    "$schema",
                    format!("the method's schema does not compile: {reason}"),
                )];
            }
        };
        // `is_valid` stops at the first failure and builds no error; most
        // requests are valid, so check that first.
        if validator.is_valid(instance) {
            return Vec::new();
        }
        validator
            .iter_errors(instance)
            .map(|error| {
                let short = error.instance().as_ref();
                let message = if quotable(short) {
                    error.to_string()
                } else {
                    error.masked().to_string()
                };
                Violation::new(
                    error.instance_path().as_str(),
                    error.kind().keyword(),
                    message,
                )
                .with_schema_path(error.schema_path().as_str())
            })
            .collect()
    }
}

fn quotable(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) | Value::Number(_) => true,
        Value::String(text) => text.len() <= MAX_QUOTED_VALUE,
        Value::Array(_) | Value::Object(_) => false,
    }
}
