//! The worker's manifest: what a worker says it serves, read from the params
//! of its `$/ready` notification (wire protocol version 1, see
//! `docs/protocol.md`), minus `pid`.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// A worker's manifest: its name, version, protocol version, concurrency hint
/// and the methods it declares. Cheap to read; built once per bridge.
///
/// Parsing is strict about types (a `timeout_ms` that is not a positive
/// integer is an error naming the key) and lenient about presence: in a
/// method only `name` is required, and unknown keys are ignored so that a
/// newer worker can add fields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Manifest {
    /// The worker's name (`my-worker`), when it gives one.
    pub name: Option<String>,
    /// The worker's own version, when it gives one.
    pub version: Option<String>,
    /// The protocol version it speaks (`"1.0"` when absent).
    pub protocol_version: String,
    /// The most requests it wants outstanding at once.
    pub max_concurrency: Option<u64>,
    /// The methods, in the worker's order.
    pub methods: Vec<ManifestMethod>,
    canonical: String,
    identity: String,
}

/// One method a worker declares.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ManifestMethod {
    /// The name the worker serves (the wire name).
    pub name: String,
    /// A description (the docstring's first paragraph, for the SDK).
    pub description: Option<String>,
    /// A JSON Schema (2020-12) for the by-name (object) form of params.
    pub params_schema: Option<Value>,
    /// Parameter names in order: the method also accepts an array of params,
    /// validated by mapping element i to name i.
    pub positional: Option<Vec<String>>,
    /// A JSON Schema for the result.
    pub result_schema: Option<Value>,
    /// Whether running it twice has the effect of once (`None`: not said).
    pub idempotent: Option<bool>,
    /// Present: the method is cacheable with this time to live.
    pub cache_ttl: Option<Duration>,
    /// The method's own deadline.
    pub timeout: Option<Duration>,
}

impl Manifest {
    /// Reads a manifest from the `$/ready` params (with or without `pid`).
    ///
    /// # Errors
    /// [`Error::Manifest`] naming the key at fault (`methods[2].timeout_ms`).
    pub fn from_value(value: &Value) -> Result<Manifest> {
        let map = value
            .as_object()
            .ok_or_else(|| invalid("", "the manifest must be an object"))?;
        let string = |key: &str| -> Result<Option<String>> {
            match map.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(invalid(key, "expected a string")),
            }
        };
        let name = string("name")?;
        let version = string("version")?;
        let protocol_version = string("protocol_version")?.unwrap_or_else(|| "1.0".to_owned());
        let max_concurrency = match map.get("max_concurrency") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| invalid("max_concurrency", "expected a positive integer"))?,
            ),
        };
        let methods = match map.get("methods") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| method(item, &format!("methods[{i}]")))
                .collect::<Result<_>>()?,
            Some(_) => return Err(invalid("methods", "expected an array")),
        };
        let mut without_pid = map.clone();
        without_pid.remove("pid");
        // serde_json's map is sorted by key (the workspace never enables
        // `preserve_order`), so this text is canonical: equal manifests give
        // equal text whatever order the worker wrote its keys in.
        let canonical = Value::Object(without_pid.clone()).to_string();
        // What produces values: a concurrency knob does not change them.
        without_pid.remove("max_concurrency");
        let identity = Value::Object(without_pid).to_string();
        Ok(Manifest {
            name,
            version,
            protocol_version,
            max_concurrency,
            methods,
            canonical,
            identity,
        })
    }

    /// The manifest as canonical JSON (sorted keys, no `pid`).
    pub fn canonical(&self) -> &str {
        &self.canonical
    }

    /// The canonical JSON of what decides the worker's answers: name,
    /// version, protocol version and methods (without `pid` and
    /// `max_concurrency`). A cache key hashes it to name the producer, so the
    /// same worker run with another concurrency keeps its entries.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The declared method with this (wire) name.
    pub fn method(&self, name: &str) -> Option<&ManifestMethod> {
        self.methods.iter().find(|m| m.name == name)
    }
}

fn method(item: &Value, key: &str) -> Result<ManifestMethod> {
    let map: &Map<String, Value> = match item {
        // Legacy: names only.
        Value::String(name) => {
            return Ok(ManifestMethod {
                name: name.clone(),
                ..ManifestMethod::default()
            });
        }
        Value::Object(map) => map,
        _ => return Err(invalid(key, "expected a method name or an object")),
    };
    let at = |field: &str| format!("{key}.{field}");
    let name = match map.get("name") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(invalid(&at("name"), "expected a non-empty string")),
    };
    let description = match map.get("description") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid(&at("description"), "expected a string")),
    };
    let schema = |field: &str| -> Result<Option<Value>> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v @ (Value::Object(_) | Value::Bool(_))) => Ok(Some(v.clone())),
            Some(_) => Err(invalid(
                &at(field),
                "expected a JSON Schema (object or boolean)",
            )),
        }
    };
    let positional = match map.get("positional") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) => Some(
            names
                .iter()
                .map(|n| n.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid(&at("positional"), "expected an array of names"))?,
        ),
        Some(_) => return Err(invalid(&at("positional"), "expected an array of names")),
    };
    let idempotent = match map.get("idempotent") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(invalid(&at("idempotent"), "expected a boolean")),
    };
    let millis = |field: &str| -> Result<Option<Duration>> {
        match map.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n > 0)
                .map(|n| Some(Duration::from_millis(n)))
                .ok_or_else(|| invalid(&at(field), "expected a positive integer of milliseconds")),
        }
    };
    Ok(ManifestMethod {
        name,
        description,
        params_schema: schema("params_schema")?,
        positional,
        result_schema: schema("result_schema")?,
        idempotent,
        cache_ttl: millis("cache_ttl_ms")?,
        timeout: millis("timeout_ms")?,
    })
}

fn invalid(key: &str, reason: &str) -> Error {
    Error::Manifest {
        key: key.to_owned(),
        reason: reason.to_owned(),
    }
}
