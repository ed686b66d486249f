//! Tool arguments into params, and results and failures into tool results.

use serde_json::{Value, json};

use super::*;
use crate::mcp::tools::ArgsShape;

fn args(value: Value) -> Option<rmcp::model::JsonObject> {
    match value {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

fn check(shape: ArgsShape, arguments: Value, expected: Result<Option<&str>, &str>) {
    let got = params_of(shape, args(arguments.clone()));
    match (got, expected) {
        (Ok(params), Ok(want)) => {
            assert_eq!(params.as_deref().map(|p| p.get()), want, "{arguments}")
        }
        (Err(message), Err(want)) => assert!(message.contains(want), "{message}"),
        (got, want) => panic!("{arguments}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn arguments_become_params_by_name_or_by_position() {
    check(ArgsShape::Object, json!({"x": 1}), Ok(Some(r#"{"x":1}"#)));
    check(ArgsShape::Object, Value::Null, Ok(None));
    check(
        ArgsShape::Positional,
        json!({"args": [1, "a"]}),
        Ok(Some(r#"[1,"a"]"#)),
    );
    check(ArgsShape::Positional, json!({}), Ok(None));
    check(
        ArgsShape::Positional,
        json!({"args": 1}),
        Err("must be an array"),
    );
    check(
        ArgsShape::Positional,
        json!({"args": [1], "x": 2}),
        Err("only `args` is expected, not `x`"),
    );
}

#[test]
fn a_tool_error_carries_its_message_as_text_and_structured_content() {
    let result = tool_error(
        "boom".into(),
        json!({"code": "remote_error", "retryable": false}),
    );
    assert_eq!(result.is_error, Some(true));
    assert_eq!(
        result.structured_content,
        Some(json!({"error": {"code": "remote_error", "retryable": false, "message": "boom"}}))
    );
    let text = serde_json::to_value(&result.content).unwrap();
    assert_eq!(text[0]["text"], "boom");
}
