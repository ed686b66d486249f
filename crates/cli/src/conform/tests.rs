//! The manifest rules and the invalid params chosen from a schema.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};

use super::manifest;

/// Checks a `$/ready` params object: `Ok(method names)` or the problems,
/// each of which must contain the expected text.
fn check(params: Value, expected: Result<&[&str], &[&str]>) {
    let params = params.as_object().unwrap().clone();
    match (manifest::check(&params), expected) {
        (Ok(methods), Ok(names)) => {
            let got: Vec<&str> = methods.iter().map(|m| m.name.as_str()).collect();
            assert_eq!(got, names);
        }
        (Err(problems), Err(texts)) => {
            assert_eq!(problems.len(), texts.len(), "{problems:#?}");
            for (problem, text) in problems.iter().zip(texts) {
                assert!(problem.contains(text), "{problem:?} lacks {text:?}");
            }
        }
        (got, expected) => panic!("got {got:?}, expected {expected:?}"),
    }
}

#[test]
fn the_contracts_example_and_legacy_name_lists_are_well_formed() {
    check(
        json!({"pid": 4242, "protocol_version": "1.0", "max_concurrency": 16, "name": "w", "version": "1.0.0",
               "methods": [{"name": "calc.add", "description": "Add.",
                            "params_schema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a"]},
                            "positional": ["a", "b"], "result_schema": {"type": "integer"},
                            "idempotent": true, "cache_ttl_ms": 600000, "timeout_ms": 5000}]}),
        Ok(&["calc.add"]),
    );
    check(json!({"pid": 1, "methods": ["a", "b"]}), Ok(&["a", "b"]));
    check(json!({"pid": 1, "protocol_version": "1.7"}), Ok(&[]));
}

#[test]
fn each_broken_member_is_named() {
    check(
        json!({"pid": "1", "protocol_version": "2.0", "max_concurrency": 0, "name": 3, "methods": {}}),
        Err(&[
            "pid must be a positive integer",
            "has major 2",
            "max_concurrency must be a positive integer",
            "name must be a string",
            "methods must be an array",
        ]),
    );
    check(
        json!({"protocol_version": "1"}),
        Err(&["pid is missing", "\"MAJOR.MINOR\""]),
    );
    check(
        json!({"pid": 1, "methods": [
            {"name": "a", "params_schema": true},
            {"name": "b", "params_schema": {"type": "no-such-type"}},
            {"name": "c", "positional": ["x"], "params_schema": {"type": "object", "properties": {"y": {}}}},
            {"name": "d", "idempotent": "yes", "cache_ttl_ms": -1, "timeout_ms": 0},
            {"description": "no name"},
            "$/ping",
            "e", "e"
        ]}),
        Err(&[
            "params_schema must be a JSON Schema object",
            "params_schema is not a valid JSON Schema",
            "positional names \"x\"",
            "idempotent must be a boolean",
            "cache_ttl_ms must be a non-negative integer",
            "timeout_ms must be a positive integer",
            "needs a name",
            "reserved",
            "listed twice",
        ]),
    );
}

#[test]
fn invalid_params_are_ones_the_schema_itself_rejects() {
    let required =
        json!({"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]});
    assert_eq!(manifest::invalid_params(&required), Some(json!({})));
    let closed = json!({"type": "object", "additionalProperties": false});
    assert_eq!(
        manifest::invalid_params(&closed),
        Some(json!({"conform_undeclared_member": true}))
    );
    let typed = json!({"type": "object", "properties": {"n": {"type": "number"}}});
    let params = manifest::invalid_params(&typed).unwrap();
    assert!(params["n"].is_string(), "{params}");
    assert_eq!(manifest::invalid_params(&json!({"type": "object"})), None);
}
