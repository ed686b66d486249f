//! Strict reading of one catalog file: every unknown key, missing key or
//! wrong type is an error that names the file and the key's path
//! (`methods[2].cache.l1_ttl_ms`).

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{CatalogProblem, Error, Result};
use crate::spec::CachePolicy;

/// One catalog file, read but not yet compiled.
#[derive(Debug)]
pub(super) struct FileDef {
    pub(super) methods: Vec<MethodDef>,
}

/// One method of a catalog file, read but not yet compiled.
#[derive(Debug)]
pub(super) struct MethodDef {
    /// Where the method is in its file (`methods[3]`).
    pub(super) key: String,
    pub(super) family: String,
    pub(super) name: String,
    pub(super) aliases: Vec<String>,
    pub(super) wire_name: String,
    pub(super) description: Option<String>,
    pub(super) params_schema: Option<SchemaRef>,
    pub(super) result_schema: Option<SchemaRef>,
    pub(super) idempotent: bool,
    pub(super) cache: CachePolicy,
    pub(super) timeout: Option<Duration>,
    pub(super) envelope: bool,
    pub(super) param_renames: Vec<(String, String)>,
    pub(super) legacy_params: Vec<(String, Vec<String>)>,
    pub(super) result_renames: Vec<(String, String)>,
    pub(super) fixiplug_shape: Option<String>,
}

/// A schema given by path (relative to the catalog file) or inline.
#[derive(Debug)]
pub(super) enum SchemaRef {
    Path(String),
    Inline(Value),
}

const FILE_FIELDS: &[&str] = &["$comment", "family", "description", "methods"];
const METHOD_FIELDS: &[&str] = &[
    "$comment",
    "name",
    "aliases",
    "wire_name",
    "description",
    "params_schema",
    "result_schema",
    "idempotent",
    "cache",
    "timeout_ms",
    "envelope",
    "param_renames",
    "legacy_params",
    "result_renames",
    "fixiplug_shape",
];
const CACHE_FIELDS: &[&str] = &["enabled", "l1_ttl_ms", "l2_ttl_ms"];

pub(super) struct Reader<'f> {
    pub(super) file: &'f str,
}

impl Reader<'_> {
    pub(super) fn error(&self, key: impl Into<String>, problem: CatalogProblem) -> Error {
        Error::Catalog {
            file: self.file.to_owned(),
            key: key.into(),
            problem,
        }
    }

    fn invalid(&self, key: impl Into<String>, reason: impl Into<String>) -> Error {
        self.error(
            key,
            CatalogProblem::InvalidValue {
                reason: reason.into(),
            },
        )
    }

    pub(super) fn parse(&self, text: &str) -> Result<FileDef> {
        let value: Value = serde_json::from_str(text).map_err(|e| {
            self.error(
                "",
                CatalogProblem::Syntax {
                    line: e.line(),
                    column: e.column(),
                    message: e.to_string(),
                },
            )
        })?;
        let root = self.object(&value, "(root)")?;
        self.fields(root, "", FILE_FIELDS)?;
        let family = self.string(self.required(root, "", "family")?, "family")?;
        if !is_identifier(family) {
            return Err(self.invalid(
                "family",
                "a family is snake_case: lowercase letters, digits and `_`, starting with a letter",
            ));
        }
        if let Some(description) = root.get("description") {
            self.string(description, "description")?;
        }
        let methods = self.array(self.required(root, "", "methods")?, "methods")?;
        let methods = methods
            .iter()
            .enumerate()
            .map(|(index, method)| self.method(family, method, format!("methods[{index}]")))
            .collect::<Result<Vec<_>>>()?;
        Ok(FileDef { methods })
    }

    fn method(&self, family: &str, value: &Value, key: String) -> Result<MethodDef> {
        let map = self.object(value, &key)?;
        self.fields(map, &key, METHOD_FIELDS)?;
        let at = |field: &str| format!("{key}.{field}");

        let name = self.string(self.required(map, &key, "name")?, &at("name"))?;
        let is_namespaced = name
            .strip_prefix(family)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|rest| rest.split('.').all(is_identifier));
        if !is_namespaced {
            return Err(self.invalid(
                at("name"),
                format!(
                    "`{name}` is not a namespaced snake_case name of family `{family}` (`{family}.some_method`)"
                ),
            ));
        }

        let mut aliases = Vec::new();
        if let Some(list) = map.get("aliases") {
            for (index, alias) in self.array(list, &at("aliases"))?.iter().enumerate() {
                let alias_key = format!("{key}.aliases[{index}]");
                let alias = self.string(alias, &alias_key)?;
                check_method_name(alias).map_err(|reason| self.invalid(&alias_key, reason))?;
                aliases.push(alias.to_owned());
            }
        }

        let wire_name = self.string(self.required(map, &key, "wire_name")?, &at("wire_name"))?;
        check_method_name(wire_name).map_err(|reason| self.invalid(at("wire_name"), reason))?;

        let description = match map.get("description") {
            Some(v) => Some(self.string(v, &at("description"))?.to_owned()),
            None => None,
        };
        let params_schema = self.schema_ref(map.get("params_schema"), &at("params_schema"))?;
        let result_schema = self.schema_ref(map.get("result_schema"), &at("result_schema"))?;
        let idempotent =
            self.boolean(self.required(map, &key, "idempotent")?, &at("idempotent"))?;
        let cache = match map.get("cache") {
            Some(v) => self.cache(v, &at("cache"))?,
            None => CachePolicy::disabled(),
        };
        let timeout = match map.get("timeout_ms") {
            Some(v) => Some(self.millis(v, &at("timeout_ms"))?),
            None => None,
        };
        let envelope = match map.get("envelope") {
            Some(v) => self.boolean(v, &at("envelope"))?,
            None => false,
        };
        let param_renames = self.renames(map.get("param_renames"), &at("param_renames"))?;
        let result_renames = self.renames(map.get("result_renames"), &at("result_renames"))?;
        let legacy_params = self.legacy(map.get("legacy_params"), &at("legacy_params"))?;
        // The shape's meaning belongs to whoever reshapes results (the
        // framework crate); the catalog only carries the tag.
        let fixiplug_shape = match map.get("fixiplug_shape") {
            Some(v) => Some(self.string(v, &at("fixiplug_shape"))?.to_owned()),
            None => None,
        };

        Ok(MethodDef {
            key,
            family: family.to_owned(),
            name: name.to_owned(),
            aliases,
            wire_name: wire_name.to_owned(),
            description,
            params_schema,
            result_schema,
            idempotent,
            cache,
            timeout,
            envelope,
            param_renames,
            legacy_params,
            result_renames,
            fixiplug_shape,
        })
    }

    fn cache(&self, value: &Value, key: &str) -> Result<CachePolicy> {
        let map = self.object(value, key)?;
        self.fields(map, key, CACHE_FIELDS)?;
        let enabled = self.boolean(
            self.required(map, key, "enabled")?,
            &format!("{key}.enabled"),
        )?;
        let ttl = |field: &str| -> Result<Option<Duration>> {
            match map.get(field) {
                Some(v) => Ok(Some(self.millis(v, &format!("{key}.{field}"))?)),
                None => Ok(None),
            }
        };
        Ok(CachePolicy {
            enabled,
            l1_ttl: ttl("l1_ttl_ms")?,
            l2_ttl: ttl("l2_ttl_ms")?,
        })
    }

    fn schema_ref(&self, value: Option<&Value>, key: &str) -> Result<Option<SchemaRef>> {
        match value {
            None => Ok(None),
            Some(Value::String(path)) if !path.is_empty() => {
                Ok(Some(SchemaRef::Path(path.clone())))
            }
            Some(schema @ (Value::Object(_) | Value::Bool(_))) => {
                Ok(Some(SchemaRef::Inline(schema.clone())))
            }
            Some(_) => Err(self.error(
                key,
                CatalogProblem::WrongType {
                    expected: "a schema file path or an inline schema object",
                },
            )),
        }
    }

    fn renames(&self, value: Option<&Value>, key: &str) -> Result<Vec<(String, String)>> {
        let Some(value) = value else {
            return Ok(Vec::new());
        };
        let map = self.object(value, key)?;
        map.iter()
            .map(|(pointer, other)| {
                let entry = format!("{key}.{pointer}");
                let other = self.string(other, &entry)?;
                check_field_name(other).map_err(|reason| self.invalid(&entry, reason))?;
                Ok((pointer.clone(), other.to_owned()))
            })
            .collect()
    }

    fn legacy(&self, value: Option<&Value>, key: &str) -> Result<Vec<(String, Vec<String>)>> {
        let Some(value) = value else {
            return Ok(Vec::new());
        };
        let map = self.object(value, key)?;
        map.iter()
            .map(|(pointer, names)| {
                let entry = format!("{key}.{pointer}");
                let names = self
                    .array(names, &entry)?
                    .iter()
                    .enumerate()
                    .map(|(index, name)| {
                        let name_key = format!("{entry}[{index}]");
                        let name = self.string(name, &name_key)?;
                        check_field_name(name).map_err(|reason| self.invalid(&name_key, reason))?;
                        Ok(name.to_owned())
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok((pointer.clone(), names))
            })
            .collect()
    }

    fn fields(&self, map: &Map<String, Value>, prefix: &str, allowed: &[&str]) -> Result<()> {
        match map.keys().find(|key| !allowed.contains(&key.as_str())) {
            Some(unknown) => Err(self.error(join(prefix, unknown), CatalogProblem::UnknownField)),
            None => Ok(()),
        }
    }

    fn required<'v>(
        &self,
        map: &'v Map<String, Value>,
        prefix: &str,
        field: &str,
    ) -> Result<&'v Value> {
        map.get(field)
            .ok_or_else(|| self.error(join(prefix, field), CatalogProblem::MissingField))
    }

    fn object<'v>(&self, value: &'v Value, key: &str) -> Result<&'v Map<String, Value>> {
        value.as_object().ok_or_else(|| {
            self.error(
                key,
                CatalogProblem::WrongType {
                    expected: "an object",
                },
            )
        })
    }

    fn array<'v>(&self, value: &'v Value, key: &str) -> Result<&'v Vec<Value>> {
        value.as_array().ok_or_else(|| {
            self.error(
                key,
                CatalogProblem::WrongType {
                    expected: "an array",
                },
            )
        })
    }

    fn string<'v>(&self, value: &'v Value, key: &str) -> Result<&'v str> {
        value.as_str().ok_or_else(|| {
            self.error(
                key,
                CatalogProblem::WrongType {
                    expected: "a string",
                },
            )
        })
    }

    fn boolean(&self, value: &Value, key: &str) -> Result<bool> {
        value.as_bool().ok_or_else(|| {
            self.error(
                key,
                CatalogProblem::WrongType {
                    expected: "a boolean",
                },
            )
        })
    }

    fn millis(&self, value: &Value, key: &str) -> Result<Duration> {
        match value.as_u64() {
            Some(0) => Err(self.invalid(key, "must be at least 1 millisecond")),
            Some(ms) => Ok(Duration::from_millis(ms)),
            None => Err(self.error(
                key,
                CatalogProblem::WrongType {
                    expected: "a whole number of milliseconds",
                },
            )),
        }
    }
}

fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_owned()
    } else {
        format!("{prefix}.{field}")
    }
}

/// snake_case: `[a-z][a-z0-9_]*`.
pub(super) fn is_identifier(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A method name a caller or a worker may use: not empty, no whitespace or
/// control characters, and not one of the prefixes the protocol reserves.
pub(crate) fn check_method_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a method name cannot be empty".into());
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "`{name}` contains whitespace or control characters"
        ));
    }
    if name.starts_with(pybridge_protocol::RPC_RESERVED_PREFIX)
        || name.starts_with(pybridge_protocol::BRIDGE_RESERVED_PREFIX)
    {
        return Err(format!("`{name}` uses a prefix reserved for the protocol"));
    }
    Ok(())
}

fn check_field_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("a field name cannot be empty".into())
    } else {
        Ok(())
    }
}
