//! The registry as an OpenRPC 1.3.2 document: what `pybridge methods
//! --openrpc` prints and what `/rpc` answers to `rpc.discover`.

use pybridge_service::{Catalog, MethodSpec};
use serde_json::{Map, Value, json};

/// The OpenRPC document of every method in `catalog`. Params are by name,
/// one content descriptor per property of the params schema; a method
/// without a params schema lists none. pybridge's own facts (source,
/// policy, availability) are `x-pybridge` extensions.
pub fn document(catalog: &Catalog) -> Value {
    let manifest = catalog.manifest();
    let title = manifest
        .and_then(|m| m.name.clone())
        .unwrap_or_else(|| "pybridge".to_owned());
    let version = manifest
        .and_then(|m| m.version.clone())
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned());
    let methods: Vec<Value> = catalog.methods().map(|spec| method(spec)).collect();
    json!({
        "openrpc": "1.3.2",
        "info": {
            "title": title,
            "version": version,
            "description": "Methods served through pybridge, from its method registry (catalogs, the worker's manifest and configuration).",
            "x-pybridge-registry-version": catalog.version(),
        },
        "methods": methods,
    })
}

fn method(spec: &MethodSpec) -> Value {
    let mut object = Map::new();
    object.insert("name".into(), spec.name().into());
    if let Some(description) = spec.description() {
        object.insert("description".into(), description.into());
    }
    object.insert("params".into(), Value::Array(params(spec.params_schema())));
    // A method with positional names takes an array too (mapped onto them).
    let structure = if spec.positional().is_some() {
        "either"
    } else {
        "by-name"
    };
    object.insert("paramStructure".into(), structure.into());
    object.insert(
        "result".into(),
        json!({
            "name": "result",
            "schema": spec.result_schema().cloned().unwrap_or(Value::Bool(true)),
        }),
    );
    object.insert("x-pybridge".into(), policy(spec));
    Value::Object(object)
}

/// Policy and provenance, as `methods --json` and OpenRPC's `x-pybridge` give them.
pub fn policy(spec: &MethodSpec) -> Value {
    let sources = spec.sources();
    let cache = spec.cache();
    json!({
        "wire_name": spec.wire_name(),
        "aliases": spec.aliases().collect::<Vec<_>>(),
        "available": spec.available(),
        "idempotent": spec.idempotent(),
        "cache_ttl_ms": cache.enabled.then(|| cache.l1_ttl.map(|d| d.as_millis() as u64)).flatten(),
        "cacheable": cache.enabled,
        "timeout_ms": spec.timeout().map(|d| d.as_millis() as u64),
        "positional": spec.positional().map(|names| names.collect::<Vec<_>>()),
        "source": spec.source(),
        "sources": {
            "method": sources.method.as_str(),
            "wire_name": sources.wire_name.as_str(),
            "description": sources.description.as_str(),
            "params_schema": sources.params_schema.as_str(),
            "result_schema": sources.result_schema.as_str(),
            "idempotent": sources.idempotent.as_str(),
            "cache": sources.cache.as_str(),
            "timeout": sources.timeout.as_str(),
        },
    })
}

/// One content descriptor per property of an object schema, required ones
/// marked; nothing for other schemas.
fn params(schema: Option<&Value>) -> Vec<Value> {
    let Some(schema) = schema else {
        return Vec::new();
    };
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, property)| {
            let mut descriptor = Map::new();
            descriptor.insert("name".into(), name.as_str().into());
            if let Some(description) = property.get("description").and_then(Value::as_str) {
                descriptor.insert("description".into(), description.into());
            }
            descriptor.insert("schema".into(), property.clone());
            descriptor.insert("required".into(), required.contains(&name.as_str()).into());
            Value::Object(descriptor)
        })
        .collect()
}
