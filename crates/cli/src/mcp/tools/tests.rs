//! Tool names, schemas and the allow and deny lists.

use pybridge::config::McpConfig;
use serde_json::{Value, json};

use super::*;

fn names(methods: &[&str]) -> Vec<String> {
    tool_names(methods.iter().copied())
}

#[test]
fn names_that_fit_are_kept_and_others_are_mapped_to_valid_distinct_names() {
    let long = "x".repeat(200);
    let methods = [
        "geo.scale",
        "geo/scale",
        "geo:scale",
        "géo.scale",
        long.as_str(),
        "a b",
    ];
    let tools = names(&methods);
    assert_eq!(tools[0], "geo.scale");
    for (method, tool) in methods.iter().zip(&tools) {
        assert!(valid_name(tool), "{tool:?} for {method:?}");
    }
    let distinct: HashSet<&String> = tools.iter().collect();
    assert_eq!(distinct.len(), methods.len(), "{tools:?}");
    assert!(tools[1].starts_with("geo_scale-"), "{}", tools[1]);
    assert!(tools[4].len() <= MAX_NAME);
    // The same registry maps the same way every time.
    assert_eq!(names(&methods), tools);
}

#[test]
fn a_mapped_name_never_takes_a_name_a_method_already_has() {
    // The mapped form of `a/b` with the hash's first 8 digits, taken by a real method.
    let taken = format!("a_b-{}", &blake3::hash(b"a/b").to_hex()[..8]);
    let tools = names(&["a/b", &taken]);
    assert_eq!(tools[1], taken);
    assert_ne!(tools[0], taken);
    assert!(valid_name(&tools[0]));
}

#[test]
fn object_schemas_are_kept_and_array_schemas_are_wrapped_as_args() {
    let object =
        json!({"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]});
    let (schema, shape) = input_schema(Some(&object));
    assert_eq!(Value::Object(schema), object);
    assert_eq!(shape, ArgsShape::Object);

    let untyped = json!({"properties": {"x": {}}});
    let (schema, shape) = input_schema(Some(&untyped));
    assert_eq!(schema["type"], "object");
    assert_eq!(shape, ArgsShape::Object);

    let (schema, shape) = input_schema(None);
    assert_eq!(Value::Object(schema), json!({"type": "object"}));
    assert_eq!(shape, ArgsShape::Object);

    let array = json!({
        "type": "array",
        "prefixItems": [{"$ref": "#/$defs/n"}],
        "$defs": {"n": {"type": "number"}}
    });
    let (schema, shape) = input_schema(Some(&array));
    assert_eq!(shape, ArgsShape::Positional);
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["required"], json!([ARGS]));
    assert_eq!(schema["properties"][ARGS]["type"], "array");
    // The definitions move to the root, where `#/$defs/n` points.
    assert_eq!(schema["$defs"]["n"]["type"], "number");
    assert!(schema["properties"][ARGS].get("$defs").is_none());
}

#[test]
fn results_become_objects_that_match_the_output_schema() {
    let (schema, shape) = output_schema(Some(&json!({"type": "number"})));
    assert_eq!(shape, OutputShape::Wrapped);
    let schema = schema.unwrap();
    assert_eq!(schema["properties"][RESULT]["type"], "number");
    assert_eq!(structured(json!(3), shape), Some(json!({RESULT: 3})));

    let (schema, shape) = output_schema(Some(&json!({"type": "object"})));
    assert_eq!(shape, OutputShape::Direct);
    assert!(schema.is_some());
    assert_eq!(structured(json!({"a": 1}), shape), Some(json!({"a": 1})));
    assert_eq!(structured(json!([1]), shape), None);

    let (schema, shape) = output_schema(None);
    assert!(schema.is_none());
    assert_eq!(structured(json!({"a": 1}), shape), Some(json!({"a": 1})));
    assert_eq!(structured(json!("s"), shape), Some(json!({RESULT: "s"})));
}

#[test]
fn the_allow_and_deny_lists_take_globs() {
    let config = |allow: &[&str], deny: &[&str]| {
        let mut config = McpConfig::default();
        config.allow = allow.iter().map(|s| (*s).to_owned()).collect();
        config.deny = deny.iter().map(|s| (*s).to_owned()).collect();
        config
    };
    let everything = config(&[], &[]);
    assert!(exposed("pattern_learning.find_similar", &everything));
    let family = config(&["pattern_learning.*"], &["*.record_*"]);
    assert!(exposed("pattern_learning.find_similar", &family));
    assert!(!exposed("pattern_learning.record_pattern", &family));
    assert!(!exposed("agent_context.detect_type", &family));
    let exact = config(&["test.echo", "*.get_*s"], &[]);
    assert!(exposed("test.echo", &exact));
    assert!(!exposed("test.echo2", &exact));
    assert!(exposed("agent_context.get_capabilities", &exact));
    assert!(!exposed("agent_context.get_token_budget", &exact));
    assert!(glob("*", ""));
    assert!(glob("a*a", "aa"));
    assert!(!glob("a*a", "a"));
}
