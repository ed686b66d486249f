//! A JSON Schema compiled once, and the conversion of its errors into
//! [`Violation`]s.

use std::fmt;
use std::sync::Arc;

use jsonschema::{Draft, Validator};
use serde_json::Value;

use crate::Violation;

/// Longest rendering of an offending value that a message may quote; longer
/// values are described as "value" instead, so errors never echo payloads.
const MAX_QUOTED_VALUE: usize = 64;

/// A compiled schema and its source.
#[derive(Clone)]
pub(crate) struct CompiledSchema {
    source: Arc<Value>,
    validator: Arc<Validator>,
}

impl fmt::Debug for CompiledSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledSchema")
            .field("title", &self.source.get("title"))
            .finish_non_exhaustive()
    }
}

impl CompiledSchema {
    /// Compiles `source` as JSON Schema 2020-12 (unless it says otherwise in
    /// `$schema`), checking `format`s and rejecting unknown ones.
    ///
    /// # Errors
    /// The compiler's message when the schema is invalid.
    pub(crate) fn compile(source: Value) -> Result<Self, String> {
        if !source.is_object() && !source.is_boolean() {
            return Err("a schema must be an object or a boolean".into());
        }
        let validator = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .should_validate_formats(true)
            .should_ignore_unknown_formats(false)
            .build(&source)
            .map_err(|error| error.to_string())?;
        Ok(Self {
            source: Arc::new(source),
            validator: Arc::new(validator),
        })
    }

    pub(crate) fn source(&self) -> &Value {
        &self.source
    }

    pub(crate) fn is_valid(&self, instance: &Value) -> bool {
        self.validator.is_valid(instance)
    }

    /// Every violation of `instance`, in the validator's order.
    pub(crate) fn violations(&self, instance: &Value) -> Vec<Violation> {
        // `is_valid` stops at the first failure and builds no error; most
        // requests are valid, so check that first.
        if self.is_valid(instance) {
            return Vec::new();
        }
        self.validator
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
