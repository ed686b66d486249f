//! Schema validation: every keyword the schemas use, null-required, every
//! violation reported, defaults, and the JSON-RPC mapping.

use pybridge_protocol::ErrorCode;
use pybridge_service::{Defaults, Error};
use serde_json::json;

use crate::{raw, service, service_with, v, violations, wire};

#[track_caller]
fn check(method: &str, params: &str, expected: &[(&str, &str)]) {
    assert_eq!(
        violations(&service(), method, params),
        v(expected),
        "{method} {params}"
    );
}

#[track_caller]
fn ok(method: &str, params: &str) {
    wire(&service(), method, params);
}

#[test]
fn type_enum_and_integer() {
    check(
        "pattern_learning.get_recommendations",
        r#"{"max_results":"5"}"#,
        &[("/max_results", "type")],
    );
    check(
        "pattern_learning.get_recommendations",
        r#"{"max_results":1.5}"#,
        &[("/max_results", "type")],
    );
    check(
        "pattern_learning.get_recommendations",
        r#"{"domain":"ecommerce"}"#,
        &[("/domain", "enum")],
    );
    // The original checked enums only for strings.
    check(
        "pattern_learning.get_recommendations",
        r#"{"domain":7}"#,
        &[("/domain", "enum"), ("/domain", "type")],
    );
    check(
        "pattern_learning.get_recommendations",
        r#"[1,2]"#,
        &[("", "type")],
    );
    ok(
        "pattern_learning.get_recommendations",
        r#"{"domain":"ml","description":"x","min_confidence":0.5,"max_results":100}"#,
    );
}

#[test]
fn lengths_and_ranges() {
    check(
        "pattern_learning.find_similar",
        r#"{"description":"short"}"#,
        &[("/description", "minLength")],
    );
    let long = "x".repeat(10_001);
    check(
        "extension_generator.analyze_requirements",
        &format!(r#"{{"description":"{long}"}}"#),
        &[("/description", "maxLength")],
    );
    ok(
        "extension_generator.analyze_requirements",
        &format!(r#"{{"description":"{}"}}"#, "x".repeat(10_000)),
    );
    // Lengths count characters, not bytes.
    ok(
        "pattern_learning.find_similar",
        r#"{"description":"éééééééééé"}"#,
    );
    check(
        "pattern_learning.get_recommendations",
        r#"{"min_confidence":-0.1}"#,
        &[("/min_confidence", "minimum")],
    );
    check(
        "pattern_learning.get_recommendations",
        r#"{"min_confidence":1.5}"#,
        &[("/min_confidence", "maximum")],
    );
    check(
        "pattern_learning.get_recommendations",
        r#"{"max_results":0}"#,
        &[("/max_results", "minimum")],
    );
    check(
        "agent_context.get_token_budget",
        &format!(
            r#"{{"conversation":[{}]}}"#,
            vec![r#"{"role":"user","content":""}"#; 10_001].join(",")
        ),
        &[("/conversation", "maxItems")],
    );
}

#[test]
fn required_and_closed_sets() {
    check("pattern_learning.find_similar", "{}", &[("", "required")]);
    check(
        "pattern_learning.get_recommendations",
        r#"{"foo":1}"#,
        &[("", "additionalProperties")],
    );
    // Nested closed sets (the original checked only the top level).
    check(
        "extension_generator.analyze_requirements",
        r#"{"description":"a long enough description","performance_requirements":{"throughput":5}}"#,
        &[("/performance_requirements", "additionalProperties")],
    );
    check(
        "extension_generator.recommend_path",
        r#"{"requirements":{"domain":"x"}}"#,
        &[("/requirements", "required")],
    );
    check(
        "agent_context.get_token_budget",
        r#"{"conversation":[{"role":"user"}]}"#,
        &[("/conversation/0", "required")],
    );
    // The plugins' extra keys are rejected, with the key named.
    let error = service()
        .prepare("sqlite.extension.generate", Some(&raw(r#"{"description":"a long enough description","includeBenchmarks":true,"colour":"red"}"#)))
        .expect_err("colour is not a param");
    assert!(error.to_string().contains("colour"), "{error}");
}

#[test]
fn a_required_field_present_as_null_is_a_violation() {
    // The original accepted this (`key in obj`).
    check(
        "pattern_learning.record_pattern",
        r#"{"pattern_name":null,"domain":null,"success_rate":null}"#,
        &[
            ("/domain", "enum"),
            ("/domain", "type"),
            ("/pattern_name", "type"),
            ("/success_rate", "type"),
        ],
    );
    check(
        "pattern_learning.find_similar",
        r#"{"description":null}"#,
        &[("/description", "type")],
    );
    // Optional fields are not nullable either.
    check(
        "pattern_learning.find_similar",
        r#"{"description":"a long description","threshold":null}"#,
        &[("/threshold", "type")],
    );
}

#[test]
fn additional_properties_schema_min_properties_pattern_and_format() {
    check(
        "agent_amplification.track_evolution",
        r#"{"capability_id":"c","metrics":{"latency":"fast"}}"#,
        &[("/metrics/latency", "type")],
    );
    check(
        "agent_amplification.track_evolution",
        r#"{"capability_id":"c","metrics":{}}"#,
        &[("/metrics", "minProperties")],
    );
    check(
        "agent_amplification.create_tool",
        r#"{"name":"9 bad","description":"d"}"#,
        &[("/name", "pattern")],
    );
    check(
        "agent_amplification.create_tool",
        &format!(r#"{{"name":"a{}","description":"d"}}"#, "b".repeat(100)),
        &[("/name", "pattern")],
    );
    ok(
        "agent_amplification.create_tool",
        r#"{"name":"portfolio.rebalance-v2","description":"d"}"#,
    );
    // date-time is RFC 3339, not whatever Date.parse accepts.
    for bad in ["2024", "March 7, 2024", "2024-03-07", "2024-03-07 10:00:00"] {
        check(
            "agent_amplification.track_evolution",
            &format!(r#"{{"capability_id":"c","metrics":{{"x":1}},"timestamp":"{bad}"}}"#),
            &[("/timestamp", "format")],
        );
    }
    ok(
        "agent_amplification.track_evolution",
        r#"{"capability_id":"c","metrics":{"x":1},"timestamp":"2024-03-07T10:00:00.5+01:00"}"#,
    );
}

#[test]
fn conditional_time_range_accepts_a_named_window_or_a_range() {
    let method = "pattern_learning.get_statistics";
    ok(method, r#"{"time_range":"week"}"#);
    ok(
        method,
        r#"{"time_range":{"start":"2024-01-01T00:00:00Z","end":"2024-02-01T00:00:00Z"}}"#,
    );
    check(
        method,
        r#"{"time_range":"fortnight"}"#,
        &[("/time_range", "enum")],
    );
    check(
        method,
        r#"{"time_range":{"start":"2024"}}"#,
        &[("/time_range/start", "format")],
    );
    check(
        method,
        r#"{"time_range":{"from":"2024-01-01T00:00:00Z"}}"#,
        &[("/time_range", "additionalProperties")],
    );
    check(
        method,
        r#"{"time_range":{}}"#,
        &[("/time_range", "minProperties")],
    );
    // Both the property's `type` and the object branch's `type` fail.
    check(
        method,
        r#"{"time_range":5}"#,
        &[("/time_range", "type"), ("/time_range", "type")],
    );
    // The plugin's `sortBy: "usage"` is accepted (it made the hook always fail).
    ok(
        "sqlite.patterns.statistics",
        r#"{"timeRange":"week","sortBy":"usage"}"#,
    );
    check(method, r#"{"sort_by":"name"}"#, &[("/sort_by", "enum")]);
}

#[test]
fn every_violation_is_reported_at_once() {
    check(
        "pattern_learning.find_similar",
        r#"{"threshold":2,"max_results":0,"extra":true,"domain":"space"}"#,
        &[
            ("", "additionalProperties"),
            ("", "required"),
            ("/domain", "enum"),
            ("/max_results", "minimum"),
            ("/threshold", "maximum"),
        ],
    );
}

#[test]
fn invalid_params_map_to_json_rpc_invalid_params_with_the_violations() {
    let error = service()
        .prepare(
            "pattern_learning.get_recommendations",
            Some(&raw(r#"{"min_confidence":1.5}"#)),
        )
        .expect_err("out of range");
    assert_eq!(error.code(), ErrorCode::INVALID_PARAMS);
    assert!(!error.is_retryable());
    assert_eq!(
        error.to_string(),
        "invalid params for `pattern_learning.get_recommendations`: /min_confidence: 1.5 is greater than the maximum of 1 (maximum)"
    );
    let object = error.to_error_object();
    assert_eq!(object.code, ErrorCode(-32602));
    let data: serde_json::Value =
        serde_json::from_str(object.data.expect("data").get()).expect("json");
    assert_eq!(
        data,
        json!({
            "method": "pattern_learning.get_recommendations",
            "violations": [{
                "instance_path": "/min_confidence",
                "schema_path": "/properties/min_confidence/maximum",
                "keyword": "maximum",
                "message": "1.5 is greater than the maximum of 1"
            }]
        })
    );
}

#[test]
fn messages_never_echo_large_values() {
    let big = "y".repeat(20_000);
    let error = service()
        .prepare(
            "pattern_learning.get_recommendations",
            Some(&raw(&format!(r#"{{"description":"{big}"}}"#))),
        )
        .expect_err("too long");
    let [violation] = error.violations() else {
        panic!("one violation")
    };
    assert_eq!(violation.keyword, "maxLength");
    assert!(!violation.message.contains("yyyy"), "{}", violation.message);
    assert!(violation.message.len() < 300);
}

#[test]
fn defaults_are_applied_only_when_asked_and_never_over_null() {
    let method = "pattern_learning.find_similar";
    let params = r#"{"description":"vector search over text"}"#;
    let (_, plain) = wire(&service(), method, params);
    assert_eq!(
        plain,
        Some(json!({"description": "vector search over text"}))
    );

    let with_defaults = service_with(|b| b.defaults(Defaults::Apply));
    let (_, filled) = wire(&with_defaults, method, params);
    assert_eq!(
        filled,
        Some(
            json!({"description": "vector search over text", "similarity_threshold": 0.7, "max_results": 10})
        )
    );
    let (_, generate) = wire(
        &with_defaults,
        "extension_generator.generate",
        r#"{"description":"a columnar scan"}"#,
    );
    assert_eq!(
        generate,
        Some(json!({
            "description": "a columnar scan",
            "backend_language": "python",
            "performance_level": "balanced",
            "include_tests": true,
            "include_documentation": true,
            "include_benchmarks": false
        }))
    );
    // null is not absent: the original turned `backend: undefined/null` into 'python'.
    assert_eq!(
        violations(
            &with_defaults,
            "extension_generator.generate",
            r#"{"description":"a columnar scan","backend":null}"#
        ),
        v(&[("/backend", "enum"), ("/backend", "type")])
    );
    // Absent params get the defaults too.
    let prepared = with_defaults.prepare("extension_generator.quick_generate", None);
    assert!(
        matches!(prepared, Err(Error::InvalidParams { .. })),
        "description is still required"
    );
    let prepared = with_defaults
        .prepare("pattern_learning.get_recommendations", None)
        .expect("no defaults, no params");
    assert!(prepared.params().is_none());
}

#[test]
fn absent_and_null_params_are_validated_as_an_empty_object() {
    let service = service();
    for params in [None, Some(raw("null")), Some(raw(" null "))] {
        let prepared = service
            .prepare("pattern_learning.get_statistics", params.as_deref())
            .expect("all optional");
        assert!(prepared.params().is_none(), "stays absent");
        match service.prepare("pattern_learning.find_similar", params.as_deref()) {
            Err(Error::InvalidParams { violations, .. }) => {
                assert_eq!(violations[0].keyword, "required")
            }
            other => panic!("expected a missing description, got {other:?}"),
        }
    }
    assert!(
        service
            .prepare("test.echo", None)
            .expect("no schema")
            .params()
            .is_none()
    );
}

#[test]
fn result_schemas_accept_good_results_and_reject_bad_ones() {
    let service = service();
    let spec = |name: &str| service.catalog().get(name).expect("in catalog").clone();
    let generate = spec("extension_generator.generate");
    assert!(generate.validate_result(&json!({"success": true, "extension_path": "/x", "backend": "python", "generated_files": ["a.py"]})).is_ok());
    assert!(
        generate
            .validate_result(&json!({"success": false, "error": "boom"}))
            .is_ok()
    );
    let missing: Vec<_> = generate
        .validate_result(&json!({"success": true}))
        .expect_err("a success names its files")
        .into_iter()
        .map(|v| v.keyword)
        .collect();
    assert!(
        missing.iter().all(|k| k == "required") && !missing.is_empty(),
        "{missing:?}"
    );
    assert!(
        generate
            .validate_result(&json!({"success": false}))
            .is_err(),
        "a failure says why"
    );

    let recommendations = spec("pattern_learning.get_recommendations");
    assert!(recommendations
        .validate_result(&json!({"recommendations": [{"pattern_name": "p", "confidence_score": 0.9, "extra": 1}], "total_patterns": 1, "new_field": true}))
        .is_ok(), "extra fields are allowed");
    let bad = recommendations
        .validate_result(&json!({"recommendations": [{"pattern_name": "p", "confidence_score": 1.9}], "total_patterns": -1}))
        .expect_err("out of range");
    let mut paths: Vec<_> = bad
        .into_iter()
        .map(|v| (v.instance_path, v.keyword))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        v(&[
            ("/recommendations/0/confidence_score", "maximum"),
            ("/total_patterns", "minimum")
        ])
    );
    // A method without a result schema accepts anything.
    assert!(spec("test.echo").validate_result(&json!([1, "x"])).is_ok());
}

#[test]
fn params_validation_off_skips_schemas_but_keeps_limits_and_renames() {
    let lenient = service_with(|b| b.params_validation(pybridge_service::ParamsValidation::Off));
    // Breaks the schema (a string where an integer is wanted), yet passes.
    let (_, params) = wire(
        &lenient,
        "pattern_learning.find_similar",
        r#"{"description":"short","threshold":0.5,"max_results":"9"}"#,
    );
    let params = params.expect("params are sent");
    assert_eq!(params["max_results"], json!("9"));
    // The declared rename still applies.
    assert_eq!(params["similarity_threshold"], json!(0.5));
    // The limits still apply.
    let err = lenient
        .prepare("test.echo", Some(&raw(r#"{"__proto__":1}"#)))
        .expect_err("forbidden key");
    assert!(matches!(err, Error::InvalidParams { .. }), "{err:?}");
    // The default still validates.
    assert!(
        !violations(
            &service(),
            "pattern_learning.find_similar",
            r#"{"description":"short","max_results":"9"}"#
        )
        .is_empty()
    );
}
