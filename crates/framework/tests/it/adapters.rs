//! Adapters: declared renames only, legacy names through aliases, user
//! payloads untouched, zero-copy pass-through, envelopes.

use pybridge_service::{Error, ResultValidation, Service, ServiceConfig};
use serde_json::{Value, json};

use crate::{raw, service, service_with, v, violations, wire};

#[test]
fn unchanged_params_are_the_callers_text_itself() {
    let service = service();
    // Odd spacing and key order would not survive a re-serialization.
    let text = r#"{ "max_results" : 5,  "domain":"finance" }"#;
    let params = raw(text);
    let prepared = service
        .prepare("pattern_learning.get_recommendations", Some(&params))
        .expect("valid");
    assert!(!prepared.is_rewritten());
    let sent = prepared.params().expect("params");
    assert!(
        std::ptr::eq(sent, &*params),
        "the same allocation, not a copy"
    );
    assert_eq!(sent.get(), text);
}

#[test]
fn declared_renames_give_the_wire_names_of_the_original() {
    let service = service();
    let (wire_name, params) = wire(
        &service,
        "pattern_learning.find_similar",
        r#"{"description":"vector search over text","threshold":0.8,"max_results":5}"#,
    );
    assert_eq!(
        wire_name,
        ".claude_code.extension_pattern_learning.find_similar_patterns"
    );
    assert_eq!(
        params,
        Some(
            json!({"description": "vector search over text", "similarity_threshold": 0.8, "max_results": 5})
        )
    );
    let (_, params) = wire(
        &service,
        "pattern_learning.record_pattern",
        r#"{"pattern_name":"p","domain":"ml","success_rate":0.9,"performance":12.5}"#,
    );
    assert_eq!(
        params,
        Some(
            json!({"pattern_name": "p", "domain": "ml", "success_rate": 0.9, "avg_performance_ms": 12.5})
        )
    );
    for method in [
        "extension_generator.generate",
        "extension_generator.quick_generate",
    ] {
        let (_, params) = wire(
            &service,
            method,
            r#"{"description":"a long description","backend":"rust"}"#,
        );
        assert_eq!(
            params,
            Some(json!({"description": "a long description", "backend_language": "rust"})),
            "{method}"
        );
    }
    // The wire name is not a public param.
    assert_eq!(
        violations(
            &service,
            "pattern_learning.find_similar",
            r#"{"description":"vector search over text","similarity_threshold":0.8}"#
        ),
        v(&[("", "additionalProperties")])
    );
}

#[test]
fn legacy_camel_case_params_are_accepted_through_aliases_only() {
    let service = service();
    let (_, params) = wire(
        &service,
        "getRecommendations",
        r#"{"domain":"finance","minConfidence":0.7,"maxResults":5}"#,
    );
    assert_eq!(
        params,
        Some(json!({"domain": "finance", "min_confidence": 0.7, "max_results": 5}))
    );
    // Nested declared paths.
    let (_, params) = wire(
        &service,
        "analyzeRequirements",
        r#"{"description":"a long description","performanceRequirements":{"minOpsPerSec":1000,"maxLatency":5}}"#,
    );
    assert_eq!(
        params,
        Some(
            json!({"description": "a long description", "performance_requirements": {"min_ops_per_sec": 1000, "max_latency": 5}})
        )
    );
    // Legacy names and a rename together: performance -> avg_performance_ms.
    let (_, params) = wire(
        &service,
        "recordPattern",
        r#"{"patternName":"p","domain":"ml","successRate":0.9,"performance":3}"#,
    );
    assert_eq!(
        params,
        Some(
            json!({"pattern_name": "p", "domain": "ml", "success_rate": 0.9, "avg_performance_ms": 3})
        )
    );
    // Through the public name, camelCase is simply unknown.
    assert_eq!(
        violations(
            &service,
            "pattern_learning.get_recommendations",
            r#"{"minConfidence":0.7}"#
        ),
        v(&[("", "additionalProperties")])
    );
    // Undeclared camelCase keys are not converted behind the caller's back.
    assert_eq!(
        violations(&service, "getRecommendations", r#"{"someKey":1}"#),
        v(&[("", "additionalProperties")])
    );
}

#[test]
fn the_plugins_param_sets_now_work() {
    let service = service();
    // consult_peers: the plugin sent domain, maxPeers and minConfidence.
    let (_, params) = wire(
        &service,
        "sqlite.agent.consult_peers",
        r#"{"question":"which index?","domain":"databases","context":{"tableName":"t"},"maxPeers":3,"minConfidence":0.7}"#,
    );
    assert_eq!(
        params,
        Some(
            json!({"question": "which index?", "expertise_area": "databases", "context": {"tableName": "t"}, "max_peers": 3, "min_confidence": 0.7})
        )
    );
    // track_evolution: the plugin sent `capability`.
    let (_, params) = wire(
        &service,
        "sqlite.agent.track_evolution",
        r#"{"capability":"sql","metrics":{"accuracy":0.9},"timestamp":"2024-01-01T00:00:00Z"}"#,
    );
    assert_eq!(
        params,
        Some(
            json!({"capability_id": "sql", "metrics": {"accuracy": 0.9}, "timestamp": "2024-01-01T00:00:00Z"})
        )
    );
    // find_similar with a domain (it always failed validation in the original).
    wire(
        &service,
        "sqlite.patterns.find_similar",
        r#"{"description":"vector search over text","threshold":0.7,"maxResults":10,"domain":"ml"}"#,
    );
    // detect with hints (the original dropped them).
    let (_, params) = wire(
        &service,
        "sqlite.context.detect",
        r#"{"hints":{"userAgent":"claude-code/1.0"}}"#,
    );
    assert_eq!(
        params,
        Some(json!({"hints": {"userAgent": "claude-code/1.0"}}))
    );
    // capabilities with includeDetails, token budget with its extra keys.
    let (_, params) = wire(
        &service,
        "sqlite.context.capabilities",
        r#"{"agentType":"claude_code","includeDetails":true}"#,
    );
    assert_eq!(
        params,
        Some(json!({"agent_type": "claude_code", "include_details": true}))
    );
    let (_, params) = wire(
        &service,
        "sqlite.context.token_budget",
        r#"{"agentType":"claude_code","conversation":[{"role":"user","content":"hi"}],"systemPrompt":"be brief","includeBreakdown":false}"#,
    );
    assert_eq!(
        params,
        Some(
            json!({"agent_type": "claude_code", "conversation": [{"role": "user", "content": "hi"}], "system_prompt": "be brief", "include_breakdown": false})
        )
    );
}

#[test]
fn a_field_given_under_two_names_is_a_violation() {
    let service = service();
    assert_eq!(
        violations(
            &service,
            "getRecommendations",
            r#"{"maxResults":5,"max_results":6}"#
        ),
        v(&[("/max_results", "legacyName")])
    );
    assert_eq!(
        violations(
            &service,
            "consultPeers",
            r#"{"question":"q","expertiseArea":"a","domain":"b"}"#
        ),
        v(&[("/domain", "legacyName")])
    );
}

#[test]
fn user_payloads_are_never_rewritten() {
    let service = service();
    // The original renamed `currentHoldings` inside the tool's JSON Schema but
    // not in its `required` list, producing an inconsistent schema.
    let payload = json!({
        "type": "object",
        "properties": {"currentHoldings": {"type": "array"}, "HTTPServer": {"type": "string"}, "user_id": {"type": "string"}},
        "required": ["currentHoldings"]
    });
    let metadata = json!({"createdBy": "agent", "nestedObject": {"someKey": [{"innerKey": 1}]}});
    let params = json!({
        "name": "rebalance",
        "description": "rebalance a portfolio",
        "capabilityRequest": "rebalance",
        "parameters": payload,
        "metadata": metadata,
        "context": {"userID": 7}
    });
    let (_, sent) = wire(&service, "createDynamicTool", &params.to_string());
    let sent = sent.expect("params");
    assert_eq!(sent["capability_request"], "rebalance");
    assert_eq!(sent["parameters"], payload);
    assert_eq!(sent["metadata"], metadata);
    assert_eq!(sent["context"], json!({"userID": 7}));

    // Through the public name nothing changes, so the text goes through as is.
    let text = r#"{"name":"rebalance","description":"d","parameters":{"properties":{"currentHoldings":{}}}}"#;
    let params = raw(text);
    let prepared = service
        .prepare("agent_amplification.create_tool", Some(&params))
        .expect("valid");
    assert_eq!(prepared.params().map(|p| p.get()), Some(text));

    // Schema-less methods: declared legacy names only. Their family has no
    // implementation in the reference framework, so the catalog is taken with
    // every family available, as a deployment whose worker has them would.
    let every_family = pybridge_service::BuiltinCatalog {
        unavailable_families: &[],
        ..pybridge_framework::builtin()
    };
    let service = Service::new(
        pybridge_service::Catalog::builder()
            .builtin(every_family)
            .build()
            .expect("catalog"),
        ServiceConfig::default(),
    );
    let (_, sent) = wire(
        &service,
        "designExperiment",
        r#"{"hypothesis":"h","sampleSize":30,"controlGroup":{"sizeHint":1}}"#,
    );
    assert_eq!(
        sent,
        Some(json!({"hypothesis": "h", "sample_size": 30, "controlGroup": {"sizeHint": 1}}))
    );
}

/// A service whose catalog has a user method with nested and array renames.
fn renaming_service(config: ServiceConfig) -> Service {
    let catalog = pybridge_framework::catalog_builder()
        .source(
            "inventory.json",
            r#"{
              "family": "inventory",
              "methods": [{
                "name": "inventory.list",
                "aliases": ["listItems"],
                "wire_name": "inv.list_items",
                "idempotent": true,
                "envelope": true,
                "params_schema": {
                  "type": "object",
                  "properties": {
                    "filter": {"type": "object", "properties": {"name": {"type": "string"}}},
                    "items": {"type": "array", "items": {"properties": {"name": {"type": "string"}}}}
                  }
                },
                "result_schema": {
                  "type": "object",
                  "required": ["total"],
                  "properties": {
                    "total": {"type": "integer"},
                    "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
                  }
                },
                "param_renames": {"/filter/name": "name_contains", "/items/*/name": "item_name"},
                "legacy_params": {"/filter/name": ["nameLike"]},
                "result_renames": {"/total": "count", "/items/*/name": "item_name"}
              }]
            }"#,
        )
        .build()
        .expect("valid catalog");
    Service::new(catalog, config)
}

#[test]
fn renames_at_declared_nested_and_array_paths_in_both_directions() {
    let service = renaming_service(ServiceConfig::default());
    let (_, params) = wire(
        &service,
        "inventory.list",
        r#"{"filter":{"name":"bolt","other":1},"items":[{"name":"a"},{"name":"b","qty":2},"x"]}"#,
    );
    assert_eq!(
        params,
        Some(
            json!({"filter": {"name_contains": "bolt", "other": 1}, "items": [{"item_name": "a"}, {"item_name": "b", "qty": 2}, "x"]})
        )
    );
    let (_, params) = wire(&service, "listItems", r#"{"filter":{"nameLike":"bolt"}}"#);
    assert_eq!(params, Some(json!({"filter": {"name_contains": "bolt"}})));

    let spec = service
        .catalog()
        .get("inventory.list")
        .expect("in catalog")
        .clone();
    let adapted = service
        .adapt_result(&spec, raw(r#"{"data":{"count":2,"items":[{"item_name":"a"},{"item_name":"b","name_note":"x"}]},"metadata":{"cached":false}}"#))
        .expect("adapts");
    let result: Value = serde_json::from_str(adapted.result.get()).expect("json");
    assert_eq!(
        result,
        json!({"total": 2, "items": [{"name": "a"}, {"name": "b", "name_note": "x"}]})
    );
    assert_eq!(
        adapted.metadata.map(|m| m.get().to_owned()).as_deref(),
        Some(r#"{"cached":false}"#)
    );

    // A rename that would overwrite a field the worker also sent is an error.
    match service.adapt_result(&spec, raw(r#"{"data":{"count":2,"total":3}}"#)) {
        Err(Error::InvalidResult { violations, .. }) => {
            assert_eq!(violations[0].keyword, "renameConflict")
        }
        other => panic!("expected an invalid result, got {other:?}"),
    }
}

#[test]
fn result_validation_off_warn_and_enforce() {
    let bad = r#"{"data":{"count":"two"}}"#;
    for (mode, passes) in [
        (ResultValidation::Off, true),
        (ResultValidation::Warn, true),
        (ResultValidation::Enforce, false),
    ] {
        let config = ServiceConfig::builder()
            .result_validation(mode)
            .build()
            .expect("config");
        let service = renaming_service(config);
        let spec = service
            .catalog()
            .get("inventory.list")
            .expect("in catalog")
            .clone();
        let adapted = service.adapt_result(&spec, raw(bad));
        assert_eq!(adapted.is_ok(), passes, "{mode:?}");
        if let Err(Error::InvalidResult { violations, method }) = adapted {
            assert_eq!(method, "inventory.list");
            assert_eq!(
                (
                    violations[0].instance_path.as_str(),
                    violations[0].keyword.as_str()
                ),
                ("/total", "type")
            );
        }
    }
    let enforce = service_with(|b| b.result_validation(ResultValidation::Enforce));
    let spec = enforce
        .catalog()
        .get("extension_generator.generate")
        .expect("in catalog")
        .clone();
    assert!(
        enforce
            .adapt_result(
                &spec,
                raw(r#"{"data":{"success":false,"error":"no compiler"}}"#)
            )
            .is_ok()
    );
    assert!(
        enforce
            .adapt_result(&spec, raw(r#"{"data":{"success":"yes"}}"#))
            .is_err()
    );
}

/// Adapts `result` for `method` with the default service; returns result and metadata texts.
fn adapt(method: &str, result: &str) -> (String, Option<String>) {
    let service = service();
    let spec = service.catalog().get(method).expect("in catalog").clone();
    let adapted = service.adapt_result(&spec, raw(result)).expect("adapts");
    (
        adapted.result.get().to_owned(),
        adapted.metadata.map(|m| m.get().to_owned()),
    )
}

#[test]
fn envelopes_are_unwrapped_with_metadata_kept() {
    let method = "pattern_learning.get_recommendations";
    assert_eq!(
        adapt(
            method,
            r#"{"data": {"recommendations": [], "total_patterns": 0}, "metadata": {"executionTime": 50, "cached": false}}"#
        ),
        (
            r#"{"recommendations": [], "total_patterns": 0}"#.to_owned(),
            Some(r#"{"executionTime": 50, "cached": false}"#.to_owned())
        )
    );
    // Falsy data is data (the original returned the whole envelope instead).
    for data in ["0", "\"\"", "false", "null", "[]"] {
        assert_eq!(
            adapt(
                method,
                &format!(r#"{{"data":{data},"metadata":{{"v":1}}}}"#)
            )
            .0,
            data
        );
    }
    // No metadata, or null metadata.
    assert_eq!(
        adapt(method, r#"{"data":{"a":1}}"#),
        (r#"{"a":1}"#.to_owned(), None)
    );
    assert_eq!(
        adapt(method, r#"{"metadata":null,"data":{"a":1}}"#),
        (r#"{"a":1}"#.to_owned(), None)
    );
    // Not an envelope: passed on whole, untouched.
    for whole in [
        r#"{"data":1,"other":2}"#,
        r#"{"recommendations":[],"total_patterns":0}"#,
        r#"{"metadata":{}}"#,
        "[1]",
        "7",
    ] {
        assert_eq!(adapt(method, whole), (whole.to_owned(), None));
    }
    // A method without an envelope never unwraps.
    let echo = r#"{"data":{"message":"hello"},"metadata":{}}"#;
    assert_eq!(adapt("test.echo", echo), (echo.to_owned(), None));
}

#[test]
fn results_without_renames_are_not_reserialized() {
    let text = r#"{ "data" : 1 , "other": [ 1,2 ] }"#;
    let service = service();
    let spec = service.catalog().get("test.echo").expect("echo").clone();
    let raw = raw(text);
    let pointer: *const str = raw.get();
    let adapted = service.adapt_result(&spec, raw).expect("adapts");
    assert!(
        std::ptr::eq(adapted.result.get(), pointer),
        "the same allocation"
    );
}
