//! Schema-guided rewriting of params before validation: scalar coercion and
//! defaults, each off unless the configuration asks for it.
//!
//! Both follow `properties`, `additionalProperties` (when it is a schema),
//! `items` and local `$ref`s (`#/...`); they never look inside `anyOf`,
//! `oneOf` or `if`, where which branch applies is not known before
//! validation.

use serde_json::{Number, Value};

/// Whether strings are converted to the scalar type the schema expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Coercion {
    /// No conversion (the default): `"0.8"` where a number is expected is a
    /// violation.
    #[default]
    Off,
    /// A string that is entirely a JSON number (`"0.8"`, `"-3"`, `"1e3"`)
    /// becomes that number where the schema expects a number or an integer
    /// (an integer only from integer syntax), and `"true"`/`"false"` become
    /// booleans where it expects a boolean. Nothing else changes: `""`,
    /// `"12abc"`, `" 1"` and `"yes"` stay strings and fail validation, and a
    /// string or an array never becomes an object (the original turned
    /// `"week"` into `{"0":"w","1":"e",...}`). A field whose schema also
    /// allows strings is left alone.
    Scalars,
}

/// Whether `default` values of the schema are filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Defaults {
    /// Send only what the caller sent (the default); the worker applies its
    /// own defaults.
    #[default]
    Off,
    /// Fill in absent properties that have a `default` in the schema, at any
    /// depth the caller's params reach. A property present as `null` is not
    /// absent: it is kept, and fails validation if `null` is not allowed (the
    /// original silently replaced it with the default).
    Apply,
}

/// Applies scalar coercion to `value` under `schema`; returns whether
/// anything changed.
pub(crate) fn coerce(root: &Value, schema: &Value, value: &mut Value) -> bool {
    let schema = resolve(root, schema, 0);
    match value {
        Value::String(text) => match convert(schema, text) {
            Some(converted) => {
                *value = converted;
                true
            }
            None => false,
        },
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|s| s.is_object());
            let mut changed = false;
            for (key, inner) in map.iter_mut() {
                let sub = properties.and_then(|p| p.get(key)).or(additional);
                if let Some(sub) = sub {
                    changed |= coerce(root, sub, inner);
                }
            }
            changed
        }
        Value::Array(items) => match schema.get("items").filter(|s| s.is_object()) {
            Some(sub) => {
                let mut changed = false;
                for item in items {
                    changed |= coerce(root, sub, item);
                }
                changed
            }
            None => false,
        },
        _ => false,
    }
}

/// Fills in defaults for absent properties of `value` under `schema`;
/// returns whether anything changed.
pub(crate) fn apply_defaults(root: &Value, schema: &Value, value: &mut Value) -> bool {
    let schema = resolve(root, schema, 0);
    let mut changed = false;
    match value {
        Value::Object(map) => {
            let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
                return false;
            };
            for (key, sub) in properties {
                let sub = resolve(root, sub, 0);
                match map.get_mut(key) {
                    Some(inner) => changed |= apply_defaults(root, sub, inner),
                    None => {
                        if let Some(default) = sub.get("default") {
                            map.insert(key.clone(), default.clone());
                            changed = true;
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(sub) = schema.get("items").filter(|s| s.is_object()) {
                for item in items {
                    changed |= apply_defaults(root, sub, item);
                }
            }
        }
        _ => {}
    }
    changed
}

/// Whether `schema` (a params schema) declares any `default`, so that the
/// defaults pass can be skipped for schemas without one.
pub(crate) fn has_defaults(schema: &Value) -> bool {
    match schema {
        Value::Object(map) => map.contains_key("default") || map.values().any(has_defaults),
        Value::Array(items) => items.iter().any(has_defaults),
        _ => false,
    }
}

/// Follows a local `$ref` (`#/$defs/x`); anything else is returned as is.
/// The depth bound stops reference cycles.
fn resolve<'a>(root: &'a Value, schema: &'a Value, depth: u8) -> &'a Value {
    if depth > 16 {
        return schema;
    }
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => match reference.strip_prefix('#') {
            Some(pointer) => match root.pointer(pointer) {
                Some(target) => resolve(root, target, depth + 1),
                None => schema,
            },
            None => schema,
        },
        None => schema,
    }
}

fn convert(schema: &Value, text: &str) -> Option<Value> {
    let types: Vec<&str> = match schema.get("type")? {
        Value::String(single) => vec![single.as_str()],
        Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    if types.contains(&"string") {
        return None;
    }
    if types.contains(&"boolean") {
        match text {
            "true" => return Some(Value::Bool(true)),
            "false" => return Some(Value::Bool(false)),
            _ => {}
        }
    }
    let integer = types.contains(&"integer");
    if integer || types.contains(&"number") {
        return parse_number(text, !types.contains(&"number"));
    }
    None
}

/// Parses `text` if it is, entirely, a JSON number (no sign `+`, no
/// surrounding spaces, no `NaN`), and an integer when `integer_only`.
fn parse_number(text: &str, integer_only: bool) -> Option<Value> {
    let first = *text.as_bytes().first()?;
    let last = *text.as_bytes().last()?;
    if !(first == b'-' || first.is_ascii_digit()) || !last.is_ascii_digit() {
        return None;
    }
    let number: Number = serde_json::from_str(text).ok()?;
    if integer_only && !(number.is_i64() || number.is_u64()) {
        return None;
    }
    Some(Value::Number(number))
}
