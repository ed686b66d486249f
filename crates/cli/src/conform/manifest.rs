//! The shape of a `$/ready` manifest, field by field, as docs/protocol.md
//! defines it, and params that a method's own schema rejects.

use serde_json::{Map, Value, json};

/// The protocol major version this checker speaks.
pub(crate) const PROTOCOL_MAJOR: u64 = 1;

/// One method of a well-formed manifest.
#[derive(Debug, Clone)]
pub(crate) struct MethodEntry {
    pub(crate) name: String,
    pub(crate) params_schema: Option<Value>,
}

/// Checks the `$/ready` params; returns the methods, or every problem found.
pub(crate) fn check(params: &Map<String, Value>) -> Result<Vec<MethodEntry>, Vec<String>> {
    let mut problems = Vec::new();
    match params.get("pid") {
        Some(pid) if pid.as_u64().is_some_and(|p| p > 0) => {}
        Some(other) => problems.push(format!("pid must be a positive integer, got {other}")),
        None => problems.push("pid is missing".into()),
    }
    if let Some(version) = params.get("protocol_version") {
        match version.as_str().and_then(parse_version) {
            Some((major, _)) if major == PROTOCOL_MAJOR => {}
            Some((major, minor)) => problems.push(format!(
                "protocol_version {major}.{minor} has major {major}; this checker speaks {PROTOCOL_MAJOR}.x"
            )),
            None => problems.push(format!(
                "protocol_version must be a \"MAJOR.MINOR\" string, got {version}"
            )),
        }
    }
    if let Some(n) = params.get("max_concurrency")
        && n.as_u64().is_none_or(|n| n == 0)
    {
        problems.push(format!(
            "max_concurrency must be a positive integer, got {n}"
        ));
    }
    for key in ["name", "version"] {
        if let Some(value) = params.get(key)
            && !value.is_string()
        {
            problems.push(format!("{key} must be a string, got {value}"));
        }
    }
    let mut methods = Vec::new();
    match params.get("methods") {
        None => {}
        Some(Value::Array(entries)) => {
            let mut names = std::collections::HashSet::new();
            for (i, entry) in entries.iter().enumerate() {
                if let Some(method) = check_method(i, entry, &mut problems) {
                    if !names.insert(method.name.clone()) {
                        problems.push(format!("methods[{i}]: {:?} is listed twice", method.name));
                    }
                    methods.push(method);
                }
            }
        }
        Some(other) => problems.push(format!("methods must be an array, got {}", kind(other))),
    }
    if problems.is_empty() {
        Ok(methods)
    } else {
        Err(problems)
    }
}

fn parse_version(text: &str) -> Option<(u64, u64)> {
    let (major, minor) = text.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    Some((major.parse().ok()?, minor.parse().ok()?))
}

fn check_method(i: usize, entry: &Value, problems: &mut Vec<String>) -> Option<MethodEntry> {
    let at = format!("methods[{i}]");
    let (name, object) = match entry {
        Value::String(name) => (name.clone(), None),
        Value::Object(object) => match object.get("name") {
            Some(Value::String(name)) => (name.clone(), Some(object)),
            Some(other) => {
                problems.push(format!("{at}.name must be a string, got {other}"));
                return None;
            }
            None => {
                problems.push(format!("{at}: an object entry needs a name"));
                return None;
            }
        },
        other => {
            problems.push(format!(
                "{at} must be a string or an object, got {}",
                kind(other)
            ));
            return None;
        }
    };
    let at = format!("{at} ({name:?})");
    if name.is_empty() {
        problems.push(format!("{at}: the name is empty"));
    }
    if name.starts_with("$/") || name.starts_with("rpc.") {
        problems.push(format!("{at}: names starting with $/ or rpc. are reserved"));
    }
    let Some(object) = object else {
        return Some(MethodEntry {
            name,
            params_schema: None,
        });
    };
    let before = problems.len();
    let string = |key: &str, problems: &mut Vec<String>| {
        if let Some(v) = object.get(key)
            && !v.is_string()
        {
            problems.push(format!("{at}.{key} must be a string, got {v}"));
        }
    };
    string("description", problems);
    if let Some(v) = object.get("idempotent")
        && !v.is_boolean()
    {
        problems.push(format!("{at}.idempotent must be a boolean, got {v}"));
    }
    if let Some(v) = object.get("cache_ttl_ms")
        && v.as_u64().is_none()
    {
        problems.push(format!(
            "{at}.cache_ttl_ms must be a non-negative integer, got {v}"
        ));
    }
    if let Some(v) = object.get("timeout_ms")
        && v.as_u64().is_none_or(|n| n == 0)
    {
        problems.push(format!(
            "{at}.timeout_ms must be a positive integer, got {v}"
        ));
    }
    let params_schema = object.get("params_schema");
    if let Some(schema) = params_schema {
        if !schema.is_object() {
            problems.push(format!(
                "{at}.params_schema must be a JSON Schema object, got {}",
                kind(schema)
            ));
        } else if let Err(err) = jsonschema::meta::validate(schema) {
            problems.push(format!(
                "{at}.params_schema is not a valid JSON Schema: {err}"
            ));
        }
    }
    if let Some(schema) = object.get("result_schema") {
        if !(schema.is_object() || schema.is_boolean()) {
            problems.push(format!(
                "{at}.result_schema must be a JSON Schema, got {}",
                kind(schema)
            ));
        } else if let Err(err) = jsonschema::meta::validate(schema) {
            problems.push(format!(
                "{at}.result_schema is not a valid JSON Schema: {err}"
            ));
        }
    }
    if let Some(positional) = object.get("positional") {
        match positional.as_array() {
            Some(names) if names.iter().all(Value::is_string) => {
                let properties = params_schema
                    .and_then(|s| s.get("properties"))
                    .and_then(Value::as_object);
                if let Some(properties) = properties {
                    for name in names.iter().filter_map(Value::as_str) {
                        if !properties.contains_key(name) {
                            problems.push(format!(
                                "{at}.positional names {name:?}, which params_schema.properties lacks"
                            ));
                        }
                    }
                }
            }
            _ => problems.push(format!(
                "{at}.positional must be an array of strings, got {positional}"
            )),
        }
    }
    (problems.len() == before).then(|| MethodEntry {
        name,
        params_schema: params_schema.cloned(),
    })
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// By-name params that `schema` rejects, if one of a few simple candidates
/// is rejected by it: a missing required member, an undeclared member, or a
/// declared member of the wrong type.
pub(crate) fn invalid_params(schema: &Value) -> Option<Value> {
    let validator = jsonschema::validator_for(schema).ok()?;
    let mut candidates = vec![json!({}), json!({"conform_undeclared_member": true})];
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        for (name, property) in properties {
            let wrong = match property.get("type").and_then(Value::as_str) {
                Some("integer" | "number" | "boolean" | "array" | "object" | "null") => {
                    json!("conform: a string where another type is declared")
                }
                Some("string") => json!(12345),
                _ => continue,
            };
            let mut params = Map::new();
            params.insert(name.clone(), wrong);
            candidates.push(Value::Object(params));
        }
    }
    candidates
        .into_iter()
        .find(|params| !validator.is_valid(params))
}
