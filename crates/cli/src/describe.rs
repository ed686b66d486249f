//! `pybridge describe METHOD [-- WORKER...]`: one method's schemas, policy
//! and an example params object generated from its schema.

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use serde_json::{Map, Value, json};

use crate::options::GlobalArgs;

/// `pybridge describe`.
#[derive(Debug, Args)]
pub(crate) struct DescribeArgs {
    /// The method: a public name, an alias, or a name the worker declares.
    method: String,
    /// The worker program and its arguments (default: the embedded framework).
    #[arg(last = true, value_name = "WORKER")]
    worker: Vec<String>,
}

pub(crate) async fn run(global: &GlobalArgs, args: DescribeArgs) -> Result<ExitCode> {
    let catalog = crate::methods::registry(global, &args.worker).await?;
    let Some(spec) = catalog.get(&args.method) else {
        let close = catalog.suggest(&args.method);
        if close.is_empty() {
            bail!("unknown method `{}`", args.method);
        }
        bail!(
            "unknown method `{}`; did you mean {}?",
            args.method,
            close.join(" or ")
        );
    };
    let mut value = crate::methods::describe(spec);
    if let Some(map) = value.as_object_mut() {
        let example = spec
            .params_schema()
            .map(|schema| example(schema, schema, 0));
        map.insert("example_params".into(), example.into());
    }
    crate::out::print(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
    Ok(ExitCode::SUCCESS)
}

/// A value that `schema` accepts, built from its examples, defaults,
/// constants, enums and types; objects get their required properties (or
/// every property when none is required). `root` resolves local `$ref`s.
pub(crate) fn example(root: &Value, schema: &Value, depth: u8) -> Value {
    if depth > 16 {
        return Value::Null;
    }
    let Some(map) = schema.as_object() else {
        return json!({});
    };
    if let Some(target) = map
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer))
    {
        return example(root, target, depth + 1);
    }
    // `if`/`then`: the example follows `then`, which refines the rest (a
    // string that must then be one of an enum, say).
    if let Some(Value::Object(then)) = map.get("then") {
        let mut merged = map.clone();
        for key in ["if", "then", "else"] {
            merged.remove(key);
        }
        merged.extend(then.clone());
        return example(root, &Value::Object(merged), depth + 1);
    }
    if let Some(first) = map
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["const", "default"] {
        if let Some(value) = map.get(key) {
            return value.clone();
        }
    }
    if let Some(first) = map
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(first) = map
            .get(key)
            .and_then(Value::as_array)
            .and_then(|b| b.first())
        {
            return example(root, first, depth + 1);
        }
    }
    let kind = match map.get("type") {
        Some(Value::String(kind)) => kind.as_str(),
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ if map.contains_key("properties") => "object",
        _ if map.contains_key("items") => "array",
        _ => "object",
    };
    match kind {
        "string" => string(map),
        "integer" => number(map, true),
        "number" => number(map, false),
        "boolean" => Value::Bool(false),
        "null" => Value::Null,
        "array" => {
            let count = map.get("minItems").and_then(Value::as_u64).unwrap_or(1);
            let item = map
                .get("items")
                .map_or(json!("item"), |items| example(root, items, depth + 1));
            Value::Array((0..count.max(1)).map(|_| item.clone()).collect())
        }
        _ => object(root, map, depth),
    }
}

fn object(root: &Value, map: &Map<String, Value>, depth: u8) -> Value {
    let properties = map.get("properties").and_then(Value::as_object);
    let required: Vec<&str> = map
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = Map::new();
    if let Some(properties) = properties {
        for (name, property) in properties {
            if required.is_empty() || required.contains(&name.as_str()) {
                out.insert(name.clone(), example(root, property, depth + 1));
            }
        }
    }
    for name in required {
        out.entry(name.to_owned()).or_insert(json!("value"));
    }
    // A map keyed by data (`additionalProperties` with a schema) that must
    // not be empty gets one entry.
    let min = map
        .get("minProperties")
        .and_then(Value::as_u64)
        .unwrap_or(0) as usize;
    if let Some(extra @ Value::Object(_)) = map.get("additionalProperties") {
        let mut n = 0;
        while out.len() < min {
            n += 1;
            out.insert(format!("name{n}"), example(root, extra, depth + 1));
        }
    }
    Value::Object(out)
}

fn string(map: &Map<String, Value>) -> Value {
    let text = match map.get("format").and_then(Value::as_str) {
        Some("date-time") => "2026-01-01T00:00:00Z".to_owned(),
        Some("date") => "2026-01-01".to_owned(),
        Some("email") => "user@example.com".to_owned(),
        Some("uri") => "https://example.com/".to_owned(),
        Some("uuid") => "00000000-0000-4000-8000-000000000000".to_owned(),
        _ => "text".to_owned(),
    };
    let min = map.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let max = map
        .get("maxLength")
        .and_then(Value::as_u64)
        .map(|m| m as usize);
    let mut text = text;
    while text.chars().count() < min {
        text.push('x');
    }
    if let Some(max) = max {
        text = text.chars().take(max).collect();
    }
    Value::String(text)
}

fn number(map: &Map<String, Value>, integer: bool) -> Value {
    let low = map.get("minimum").and_then(Value::as_f64).or_else(|| {
        map.get("exclusiveMinimum")
            .and_then(Value::as_f64)
            .map(|m| m + 1.0)
    });
    let high = map.get("maximum").and_then(Value::as_f64).or_else(|| {
        map.get("exclusiveMaximum")
            .and_then(Value::as_f64)
            .map(|m| m - 1.0)
    });
    let mut value = match (low, high) {
        (Some(low), _) => low,
        (None, Some(high)) if high < 1.0 => high,
        _ => 1.0,
    };
    if integer {
        value = value.ceil();
        return json!(value as i64);
    }
    json!(value)
}

#[cfg(test)]
mod tests {
    use super::example;

    /// The example of every schema of the framework's catalog is valid
    /// against that schema.
    #[test]
    fn examples_satisfy_their_schemas() {
        let catalog = pybridge::framework::catalog().expect("catalog");
        let mut checked = 0;
        for spec in catalog.methods() {
            if let Some(schema) = spec.params_schema() {
                let value = example(schema, schema, 0);
                if let Err(violations) = spec.validate_params(&value) {
                    panic!("{}: {value} breaks {violations:?}", spec.name());
                }
                checked += 1;
            }
        }
        assert!(checked >= 16, "{checked}");
    }
}
