//! FixiPlug compatibility: results in the camelCase shapes the original
//! response adapter produced, for callers migrating from it.
//!
//! The original dropped every field its shape did not list and replaced a
//! falsy `data` by the whole envelope. Here the listed fields get the
//! original's names and defaults, and every other field is kept under its
//! camelCase name. Maps keyed by data (pattern counts per domain) keep their
//! keys.

use pybridge_service::{MethodSpec, Reshape};
use serde_json::{Map, Value};

/// A result shape of the original response adapter, named by the catalog's
/// `fixiplug_shape`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FixiplugShape {
    /// `getRecommendations`: `{recommendations: [{pattern, confidence, domain,
    /// successRate, avgPerformance, usageCount, description, antiPatterns}],
    /// totalPatterns, executionTime}`.
    Recommendations,
    /// `findSimilarPatterns`: `{patterns: [{pattern, similarity, description,
    /// domain, successRate}], totalFound}`.
    SimilarPatterns,
    /// `getPatternStatistics`: `{totalPatterns, domains, avgSuccessRate,
    /// totalUsage, topPatterns}`.
    PatternStatistics,
    /// `analyzeRequirements`: `{requirements: {domain, backend, complexity,
    /// estimatedTime}, recommendedPath, confidence, alternatives}`.
    Requirements,
    /// `generateExtension`, `quickExtensionFromDescription`: `{success,
    /// extensionPath, backend, generatedFiles, testSuite, performance:
    /// {estimatedOpsPerSec, memoryUsage} | null, error}`.
    Extension,
    /// `createDynamicTool`: `{success, toolId, toolName, implementation,
    /// tests, documentation, performance}` (and `hookName`, which the
    /// original dropped, so its dynamic hooks could never register).
    DynamicTool,
    /// `detectAgentType`: `{agentType, capabilities, tokenBudget, tier, features}`.
    AgentDetection,
}

impl FixiplugShape {
    /// The shape's name in catalog files.
    pub fn as_str(self) -> &'static str {
        match self {
            FixiplugShape::Recommendations => "recommendations",
            FixiplugShape::SimilarPatterns => "similar_patterns",
            FixiplugShape::PatternStatistics => "pattern_statistics",
            FixiplugShape::Requirements => "requirements",
            FixiplugShape::Extension => "extension",
            FixiplugShape::DynamicTool => "dynamic_tool",
            FixiplugShape::AgentDetection => "agent_detection",
        }
    }

    /// Every shape.
    pub const ALL: [FixiplugShape; 7] = [
        FixiplugShape::Recommendations,
        FixiplugShape::SimilarPatterns,
        FixiplugShape::PatternStatistics,
        FixiplugShape::Requirements,
        FixiplugShape::Extension,
        FixiplugShape::DynamicTool,
        FixiplugShape::AgentDetection,
    ];

    /// The shape with this catalog name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|shape| shape.as_str() == name)
    }
}

/// A field of a shape: source name, FixiPlug name, default when absent, and
/// how to treat the value.
struct Field {
    from: &'static str,
    to: &'static str,
    default: Option<fn() -> Value>,
    inner: Inner,
}

enum Inner {
    /// camelCase keys of nested objects, as the original's generic transform.
    Camel,
    /// Keep the value as it is (maps keyed by data, or lists the original
    /// passed through).
    Keep,
    /// Each item of an array is an object of this shape.
    Items(&'static [Field]),
    /// An object of this shape (or null).
    Object(&'static [Field]),
}

const fn f(from: &'static str, to: &'static str) -> Field {
    Field {
        from,
        to,
        default: None,
        inner: Inner::Camel,
    }
}

fn empty_array() -> Value {
    Value::Array(Vec::new())
}

fn empty_object() -> Value {
    Value::Object(Map::new())
}

const RECOMMENDATION: &[Field] = &[
    f("pattern_name", "pattern"),
    f("confidence_score", "confidence"),
    f("domain", "domain"),
    f("success_rate", "successRate"),
    f("avg_performance_ms", "avgPerformance"),
    f("usage_count", "usageCount"),
    f("description", "description"),
    Field {
        from: "anti_patterns",
        to: "antiPatterns",
        default: Some(empty_array),
        inner: Inner::Keep,
    },
];

const RECOMMENDATIONS: &[Field] = &[
    Field {
        from: "recommendations",
        to: "recommendations",
        default: Some(empty_array),
        inner: Inner::Items(RECOMMENDATION),
    },
    f("total_patterns", "totalPatterns"),
    f("execution_time_ms", "executionTime"),
];

const SIMILAR: &[Field] = &[
    f("pattern_name", "pattern"),
    f("similarity_score", "similarity"),
    f("description", "description"),
    f("domain", "domain"),
    f("success_rate", "successRate"),
];

const SIMILAR_PATTERNS: &[Field] = &[
    Field {
        from: "similar_patterns",
        to: "patterns",
        default: Some(empty_array),
        inner: Inner::Items(SIMILAR),
    },
    // `totalFound` falls back to the number of patterns; see `reshape`.
    f("total_found", "totalFound"),
];

const PATTERN_STATISTICS: &[Field] = &[
    f("total_patterns", "totalPatterns"),
    Field {
        from: "domains",
        to: "domains",
        default: Some(empty_object),
        inner: Inner::Keep,
    },
    f("avg_success_rate", "avgSuccessRate"),
    f("total_usage", "totalUsage"),
    Field {
        from: "top_patterns",
        to: "topPatterns",
        default: Some(empty_array),
        inner: Inner::Keep,
    },
];

const REQUIREMENTS_INNER: &[Field] = &[
    f("domain", "domain"),
    f("backend", "backend"),
    f("complexity", "complexity"),
    f("estimated_time", "estimatedTime"),
];

const REQUIREMENTS: &[Field] = &[
    Field {
        from: "requirements",
        to: "requirements",
        default: None,
        inner: Inner::Object(REQUIREMENTS_INNER),
    },
    f("recommended_path", "recommendedPath"),
    f("confidence", "confidence"),
    Field {
        from: "alternatives",
        to: "alternatives",
        default: Some(empty_array),
        inner: Inner::Camel,
    },
];

const EXTENSION_PERFORMANCE: &[Field] = &[
    f("estimated_ops_per_sec", "estimatedOpsPerSec"),
    f("memory_usage", "memoryUsage"),
];

const EXTENSION: &[Field] = &[
    f("success", "success"),
    f("extension_path", "extensionPath"),
    f("backend", "backend"),
    Field {
        from: "generated_files",
        to: "generatedFiles",
        default: Some(empty_array),
        inner: Inner::Keep,
    },
    f("test_suite", "testSuite"),
    Field {
        from: "performance",
        to: "performance",
        default: Some(|| Value::Null),
        inner: Inner::Object(EXTENSION_PERFORMANCE),
    },
    f("error", "error"),
];

const DYNAMIC_TOOL: &[Field] = &[
    f("success", "success"),
    f("tool_id", "toolId"),
    f("tool_name", "toolName"),
    f("hook_name", "hookName"),
    f("implementation", "implementation"),
    Field {
        from: "tests",
        to: "tests",
        default: Some(empty_array),
        inner: Inner::Camel,
    },
    f("documentation", "documentation"),
    Field {
        from: "performance_metadata",
        to: "performance",
        default: None,
        inner: Inner::Camel,
    },
];

const AGENT_DETECTION: &[Field] = &[
    f("agent_type", "agentType"),
    Field {
        from: "capabilities",
        to: "capabilities",
        default: Some(empty_array),
        inner: Inner::Keep,
    },
    f("token_budget", "tokenBudget"),
    f("tier", "tier"),
    Field {
        from: "features",
        to: "features",
        default: Some(empty_object),
        inner: Inner::Camel,
    },
];

fn fields(shape: FixiplugShape) -> &'static [Field] {
    match shape {
        FixiplugShape::Recommendations => RECOMMENDATIONS,
        FixiplugShape::SimilarPatterns => SIMILAR_PATTERNS,
        FixiplugShape::PatternStatistics => PATTERN_STATISTICS,
        FixiplugShape::Requirements => REQUIREMENTS,
        FixiplugShape::Extension => EXTENSION,
        FixiplugShape::DynamicTool => DYNAMIC_TOOL,
        FixiplugShape::AgentDetection => AGENT_DETECTION,
    }
}

/// The FixiPlug shapes as the service's [`Reshape`]: give it to
/// [`Service::with_reshape`](pybridge_service::Service::with_reshape) with
/// [`ResultShape::Reshaped`](pybridge_service::ResultShape::Reshaped).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fixiplug;

impl Reshape for Fixiplug {
    fn reshape(&self, spec: &MethodSpec, value: Value, metadata: Option<&Value>) -> Value {
        reshape(
            spec.fixiplug_shape().and_then(FixiplugShape::from_name),
            value,
            metadata,
        )
    }
}

/// Reshapes a result for FixiPlug callers: the declared shape when the
/// method has one and the result is an object, otherwise camelCase keys
/// throughout (the original's generic transform). Adds `_metadata` when the
/// envelope carried non-empty metadata, as the original did.
pub(crate) fn reshape(
    shape: Option<FixiplugShape>,
    result: Value,
    metadata: Option<&Value>,
) -> Value {
    let mut out = match (shape, result) {
        (Some(shape), Value::Object(map)) => {
            let mut out = apply(fields(shape), map);
            if shape == FixiplugShape::SimilarPatterns && !out.contains_key("totalFound") {
                let found = out
                    .get("patterns")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                out.insert("totalFound".into(), Value::from(found));
            }
            Value::Object(out)
        }
        (_, other) => camelize(other),
    };
    if let (Value::Object(map), Some(Value::Object(meta))) = (&mut out, metadata)
        && !meta.is_empty()
    {
        map.insert("_metadata".into(), Value::Object(metadata_shape(meta)));
    }
    out
}

fn apply(fields: &'static [Field], mut map: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for field in fields {
        let value = match map.remove(field.from) {
            Some(value) => convert(&field.inner, value),
            None => match field.default {
                Some(default) => default(),
                None => continue,
            },
        };
        out.insert(field.to.into(), value);
    }
    // Fields the shape does not list: kept, camelCased (the original dropped them).
    for (key, value) in map {
        out.entry(camel_case(&key))
            .or_insert_with(|| camelize(value));
    }
    out
}

fn convert(inner: &Inner, value: Value) -> Value {
    match (inner, value) {
        (Inner::Keep, value) => value,
        (Inner::Camel, value) => camelize(value),
        (Inner::Items(fields), Value::Array(items)) => Value::Array(
            items
                .into_iter()
                .map(|item| match item {
                    Value::Object(map) => Value::Object(apply(fields, map)),
                    other => camelize(other),
                })
                .collect(),
        ),
        (Inner::Object(fields), Value::Object(map)) => Value::Object(apply(fields, map)),
        (_, other) => camelize(other),
    }
}

fn metadata_shape(meta: &Map<String, Value>) -> Map<String, Value> {
    let pick = |snake: &str, camel: &str| meta.get(snake).or_else(|| meta.get(camel)).cloned();
    let mut out = Map::new();
    if let Some(v) = pick("execution_time", "executionTime") {
        out.insert("executionTime".into(), v);
    }
    out.insert(
        "cached".into(),
        meta.get("cached").cloned().unwrap_or(Value::Bool(false)),
    );
    if let Some(v) = meta.get("version").cloned() {
        out.insert("version".into(), v);
    }
    if let Some(v) = pick("response_time", "responseTime") {
        out.insert("responseTime".into(), v);
    }
    if let Some(v) = pick("request_id", "requestId") {
        out.insert("requestId".into(), v);
    }
    out
}

/// camelCase keys of every object, recursively.
pub(crate) fn camelize(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, value)| (camel_case(&key), camelize(value)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(camelize).collect()),
        other => other,
    }
}

/// `snake_case` to `camelCase`: an underscore followed by a lowercase ASCII
/// letter becomes that letter in upper case (the original's `_([a-z])`
/// rule); everything else, leading underscores included, is kept.
pub(crate) fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut chars = key.chars().peekable();
    let mut at_start = true;
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('_', Some(next)) if next.is_ascii_lowercase() && !at_start => {
                out.push(next.to_ascii_uppercase());
                chars.next();
            }
            _ => out.push(c),
        }
        at_start = at_start && c == '_';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::camel_case;

    #[test]
    fn camel_case_converts_snake_case_only() {
        for (snake, camel) in [
            ("total_patterns", "totalPatterns"),
            ("avg_performance_ms", "avgPerformanceMs"),
            ("already", "already"),
            ("_metadata", "_metadata"),
            ("__dunder__", "__dunder__"),
            ("HTTPServer", "HTTPServer"),
            ("user_ID", "user_ID"),
            ("a_1", "a_1"),
            ("trailing_", "trailing_"),
            ("double__under", "double_Under"),
        ] {
            assert_eq!(camel_case(snake), camel, "{snake}");
        }
    }
}
