//! The registry's methods as MCP tools: which methods (available, allowed,
//! not denied), their tool names, input and output schemas and annotations,
//! and how a tool's arguments and a method's result cross between the two.
//!
//! MCP wants a tool name matching `^[A-Za-z0-9._-]{1,128}$`, an input
//! schema that is an object schema at the root, and structured content that
//! is an object. A method name that fits is the tool name; one that does not
//! becomes its characters with every other one replaced by `_`, cut to fit,
//! plus `-` and the start of the blake3 hash of the real name, lengthened
//! until it collides with no other tool. The table maps each tool name back
//! to its method, so the mapping is reversible by construction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use pybridge::config::McpConfig;
use pybridge::{Catalog, MethodSpec};
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde_json::{Value, json};

/// The longest tool name MCP allows.
const MAX_NAME: usize = 128;
/// The argument that carries the params of a method that takes them by position.
pub(crate) const ARGS: &str = "args";
/// The member that carries a result that is not an object.
pub(crate) const RESULT: &str = "result";

/// Every tool, built once from the registry.
#[derive(Debug, Default)]
pub(crate) struct Tools {
    by_name: HashMap<String, Arc<Entry>>,
    /// In registry order, as `tools/list` answers.
    list: Vec<Tool>,
}

/// What a tool call needs to become a method call and back.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The method's public name in the registry.
    pub(crate) method: String,
    pub(crate) args: ArgsShape,
    pub(crate) output: OutputShape,
    pub(crate) spec: Arc<MethodSpec>,
    /// The tool's place in the list.
    index: usize,
}

/// How tool arguments become params.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgsShape {
    /// The arguments object is the params object.
    Object,
    /// The method takes an array: the arguments carry it as `args`.
    Positional,
}

/// How a result becomes structured content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutputShape {
    /// The result schema is an object schema: the result is the content.
    Direct,
    /// The result schema describes something else: `{"result": value}`.
    Wrapped,
    /// No result schema: an object as it is, anything else wrapped.
    Auto,
}

impl Tools {
    /// The tools of `catalog` under `config`'s allow and deny lists.
    pub(crate) fn build(catalog: &Catalog, config: &McpConfig) -> Tools {
        let specs: Vec<&Arc<MethodSpec>> = catalog
            .methods()
            .filter(|spec| spec.available() && exposed(spec.name(), config))
            .collect();
        let names = tool_names(specs.iter().map(|s| s.name()));
        let mut tools = Tools::default();
        for (spec, name) in specs.into_iter().zip(names) {
            let (input_schema, args) = input_schema(spec.params_schema());
            let (output_schema, output) = output_schema(spec.result_schema());
            let mut description = spec.description().map_or_else(
                || format!("Calls the method `{}`.", spec.name()),
                str::to_owned,
            );
            if args == ArgsShape::Positional {
                description.push_str(
                    "\n\nThe method takes its params by position: pass them, in order, as the array `args`.",
                );
            }
            if name != spec.name() {
                description.push_str(&format!("\n\n(The method `{}`.)", spec.name()));
            }
            // The registry has no read-only flag of its own: its idempotent
            // methods are the ones safe to repeat, which the catalog gives
            // to reads only (writes invalidate cached reads instead).
            let annotations = ToolAnnotations::with_title(spec.name())
                .read_only(spec.idempotent())
                .idempotent(spec.idempotent());
            let mut tool = Tool::new(name.clone(), description, Arc::new(input_schema))
                .with_annotations(annotations);
            if let Some(schema) = output_schema {
                tool = tool.with_raw_output_schema(Arc::new(schema));
            }
            let entry = Entry {
                method: spec.name().to_owned(),
                args,
                output,
                spec: Arc::clone(spec),
                index: tools.list.len(),
            };
            tools.list.push(tool);
            tools.by_name.insert(name, Arc::new(entry));
        }
        tools
    }

    pub(crate) fn list(&self) -> &[Tool] {
        &self.list
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Entry>> {
        self.by_name.get(name)
    }

    pub(crate) fn tool(&self, name: &str) -> Option<&Tool> {
        self.by_name.get(name).and_then(|e| self.list.get(e.index))
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether any tool calls a method of `family` (`pattern_learning`).
    pub(crate) fn has_family(&self, family: &str) -> bool {
        self.by_name.values().any(|e| e.spec.family() == family)
    }
}

/// Whether `method` passes the allow list (empty: all) and not the deny list.
pub(crate) fn exposed(method: &str, config: &McpConfig) -> bool {
    let allowed = config.allow.is_empty() || config.allow.iter().any(|p| glob(p, method));
    allowed && !config.deny.iter().any(|p| glob(p, method))
}

/// `*` matches any run of characters; everything else matches itself.
fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether MCP accepts `name` as a tool name.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// One tool name per method name, in order, all distinct (see the module docs).
pub(crate) fn tool_names<'a>(methods: impl Iterator<Item = &'a str>) -> Vec<String> {
    let methods: Vec<&str> = methods.collect();
    // Valid names are claimed first, so a mapped name never takes one.
    let mut taken: HashSet<String> = methods
        .iter()
        .filter(|m| valid_name(m))
        .map(|m| (*m).to_owned())
        .collect();
    methods
        .iter()
        .map(|method| {
            if valid_name(method) {
                return (*method).to_owned();
            }
            let cleaned: String = method
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let hash = blake3::hash(method.as_bytes()).to_hex();
            let mut len = 8;
            loop {
                let keep = MAX_NAME - 1 - len;
                let base: String = cleaned.chars().take(keep).collect();
                let candidate = format!("{base}-{}", &hash[..len]);
                if !taken.contains(&candidate) || len == hash.len() {
                    taken.insert(candidate.clone());
                    return candidate;
                }
                len += 4;
            }
        })
        .collect()
}

/// The tool's input schema, an object schema at the root, and how its
/// arguments become params.
pub(crate) fn input_schema(params: Option<&Value>) -> (JsonObject, ArgsShape) {
    match params {
        None | Some(Value::Bool(true)) => (object(json!({"type": "object"})), ArgsShape::Object),
        Some(Value::Object(schema)) if object_rooted(schema) => {
            let mut schema = schema.clone();
            schema.insert("type".into(), "object".into());
            (schema, ArgsShape::Object)
        }
        Some(other) => {
            let description = "The params, in order.";
            (wrap(other, ARGS, description), ArgsShape::Positional)
        }
    }
}

/// The tool's output schema, when the method has a result schema, and how
/// its results become structured content.
pub(crate) fn output_schema(result: Option<&Value>) -> (Option<JsonObject>, OutputShape) {
    match result {
        None => (None, OutputShape::Auto),
        Some(Value::Object(schema)) if schema.get("type") == Some(&json!("object")) => {
            (Some(schema.clone()), OutputShape::Direct)
        }
        Some(other) => (
            Some(wrap(other, RESULT, "The method's result.")),
            OutputShape::Wrapped,
        ),
    }
}

/// `value` as structured content (an object), or `None` when a direct
/// result is not an object.
pub(crate) fn structured(value: Value, shape: OutputShape) -> Option<Value> {
    match (shape, value) {
        (OutputShape::Direct | OutputShape::Auto, value @ Value::Object(_)) => Some(value),
        (OutputShape::Direct, _) => None,
        (OutputShape::Wrapped | OutputShape::Auto, value) => Some(json!({ RESULT: value })),
    }
}

/// An object schema without `type`, or with `type: object`; an array schema
/// (`type: array`, `items`, `prefixItems`) or another type is not.
fn object_rooted(schema: &JsonObject) -> bool {
    match schema.get("type") {
        Some(Value::String(t)) => t == "object",
        Some(_) => false,
        None => !schema.contains_key("items") && !schema.contains_key("prefixItems"),
    }
}

/// `{"type": "object", "properties": {member: schema}, "required": [member]}`,
/// with the inner schema's `$defs` and `definitions` moved to the root, where
/// its `#/$defs/...` references point.
fn wrap(schema: &Value, member: &str, description: &str) -> JsonObject {
    let mut inner = schema.clone();
    let mut hoisted = BTreeMap::new();
    if let Value::Object(map) = &mut inner {
        for key in ["$defs", "definitions"] {
            if let Some(defs) = map.remove(key) {
                hoisted.insert(key, defs);
            }
        }
        map.entry("description")
            .or_insert_with(|| description.into());
    }
    let mut root = object(json!({
        "type": "object",
        "properties": { member: inner },
        "required": [member],
    }));
    for (key, defs) in hoisted {
        root.insert(key.into(), defs);
    }
    root
}

fn object(value: Value) -> JsonObject {
    match value {
        Value::Object(map) => map,
        _ => JsonObject::new(),
    }
}

#[cfg(test)]
mod tests;
