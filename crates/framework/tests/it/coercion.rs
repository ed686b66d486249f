//! Coercion: off by default; when on, only strings that are entirely a
//! number or a boolean convert, and nothing ever becomes an object.

use pybridge_service::Coercion;
use serde_json::json;

use crate::{raw, service, service_with, v, violations, wire};

fn coercing() -> pybridge_service::Service {
    service_with(|b| b.coercion(Coercion::Scalars))
}

#[test]
fn off_by_default() {
    assert_eq!(
        violations(
            &service(),
            "pattern_learning.get_recommendations",
            r#"{"min_confidence":"0.8"}"#
        ),
        v(&[("/min_confidence", "type")])
    );
}

#[test]
fn whole_numbers_and_booleans_convert() {
    let service = coercing();
    let (_, params) = wire(
        &service,
        "pattern_learning.get_recommendations",
        r#"{"min_confidence":"0.8","max_results":"10"}"#,
    );
    assert_eq!(
        params,
        Some(json!({"min_confidence": 0.8, "max_results": 10}))
    );
    let (_, params) = wire(
        &service,
        "extension_generator.generate",
        r#"{"description":"a long description","include_tests":"false"}"#,
    );
    assert_eq!(
        params,
        Some(json!({"description": "a long description", "include_tests": false}))
    );
    let (_, params) = wire(
        &service,
        "pattern_learning.record_pattern",
        r#"{"pattern_name":"p","domain":"ml","success_rate":"1","performance":"1e3"}"#,
    );
    assert_eq!(
        params,
        Some(
            json!({"pattern_name": "p", "domain": "ml", "success_rate": 1, "avg_performance_ms": 1000.0})
        )
    );
    let (_, params) = wire(
        &service,
        "pattern_learning.get_recommendations",
        r#"{"min_confidence":"0"}"#,
    );
    assert_eq!(params, Some(json!({"min_confidence": 0})));
}

#[test]
fn partial_or_loose_strings_do_not_convert() {
    let service = coercing();
    // The original: "" -> 0, "12abc" -> 12, "yes" -> false.
    for bad in [
        "", "12abc", " 1", "1 ", "+1", "0x10", "NaN", "Infinity", "1.", ".5",
    ] {
        assert_eq!(
            violations(
                &service,
                "pattern_learning.get_recommendations",
                &format!(r#"{{"min_confidence":"{bad}"}}"#)
            ),
            v(&[("/min_confidence", "type")]),
            "{bad:?}"
        );
    }
    // An integer field needs integer syntax.
    for bad in ["1.5", "1.0", "1e1"] {
        assert_eq!(
            violations(
                &service,
                "pattern_learning.get_recommendations",
                &format!(r#"{{"max_results":"{bad}"}}"#)
            ),
            v(&[("/max_results", "type")]),
            "{bad:?}"
        );
    }
    for bad in ["yes", "True", "1", ""] {
        assert_eq!(
            violations(
                &service,
                "extension_generator.generate",
                &format!(r#"{{"description":"a long description","include_tests":"{bad}"}}"#)
            ),
            v(&[("/include_tests", "type")]),
            "{bad:?}"
        );
    }
}

#[test]
fn nothing_ever_becomes_an_object_or_an_array() {
    let service = coercing();
    // The original spread "week" into {"0":"w",...} and [1,2] into {"0":1,"1":2}.
    assert_eq!(
        violations(
            &service,
            "extension_generator.analyze_requirements",
            r#"{"description":"a long description","performance_requirements":"fast"}"#
        ),
        v(&[("/performance_requirements", "type")])
    );
    assert_eq!(
        violations(
            &service,
            "extension_generator.analyze_requirements",
            r#"{"description":"a long description","performance_requirements":[1,2]}"#
        ),
        v(&[("/performance_requirements", "type")])
    );
    assert_eq!(
        violations(
            &service,
            "agent_context.get_token_budget",
            r#"{"conversation":"hello"}"#
        ),
        v(&[("/conversation", "type")])
    );
    // A field that also takes strings keeps its string.
    let (_, params) = wire(
        &service,
        "pattern_learning.get_statistics",
        r#"{"time_range":"week"}"#,
    );
    assert_eq!(params, Some(json!({"time_range": "week"})));
    // Strings stay strings where strings are expected.
    let (_, params) = wire(
        &service,
        "pattern_learning.get_recommendations",
        r#"{"description":"42"}"#,
    );
    assert_eq!(params, Some(json!({"description": "42"})));
    // null is not coerced.
    assert_eq!(
        violations(
            &service,
            "pattern_learning.get_recommendations",
            r#"{"max_results":null}"#
        ),
        v(&[("/max_results", "type")])
    );
}

#[test]
fn nested_values_and_maps_convert() {
    let service = coercing();
    let (_, params) = wire(
        &service,
        "extension_generator.analyze_requirements",
        r#"{"description":"a long description","performance_requirements":{"min_ops_per_sec":"1000","max_latency":"2.5"}}"#,
    );
    assert_eq!(
        params,
        Some(
            json!({"description": "a long description", "performance_requirements": {"min_ops_per_sec": 1000, "max_latency": 2.5}})
        )
    );
    let (_, params) = wire(
        &service,
        "agent_amplification.track_evolution",
        r#"{"capability_id":"c","metrics":{"accuracy":"0.93"}}"#,
    );
    assert_eq!(
        params,
        Some(json!({"capability_id": "c", "metrics": {"accuracy": 0.93}}))
    );
}

#[test]
fn params_are_rewritten_only_when_something_converted() {
    let service = coercing();
    let params = raw(r#"{"min_confidence":0.8}"#);
    let prepared = service
        .prepare("pattern_learning.get_recommendations", Some(&params))
        .expect("valid");
    assert!(!prepared.is_rewritten());
    let params = raw(r#"{"min_confidence":"0.8"}"#);
    let prepared = service
        .prepare("pattern_learning.get_recommendations", Some(&params))
        .expect("valid");
    assert!(prepared.is_rewritten());
}
