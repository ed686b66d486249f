//! The typed structs and the JSON Schemas agree: requests generated from
//! each struct validate; full requests use exactly the schema's properties;
//! invalid samples derived from the schema are rejected; canned results
//! validate, decode into the typed results, and validate again after a round
//! trip.

use std::collections::BTreeMap;

use proptest::prelude::*;
use pybridge_framework::api::*;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::typed_api::wire_result;

mod strategies;
use crate::{raw, service};
use strategies::*;

/// Validates a serialized request against the method's schema, and runs it
/// through `prepare`.
fn assert_valid<T: Serialize>(method: &str, request: &T) -> Result<(), TestCaseError> {
    let value = serde_json::to_value(request).expect("serializable");
    let service = service();
    let spec = service.catalog().get(method).expect("in catalog");
    if let Err(violations) = spec.validate_params(&value) {
        return Err(TestCaseError::fail(format!(
            "{method} {value}: {violations:?}"
        )));
    }
    let params = raw(&value.to_string());
    prop_assert!(service.prepare(method, Some(&params)).is_ok());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn generated_pattern_learning_requests_validate(
        a in get_recommendations(), b in find_similar(), c in get_statistics(), d in record_pattern(),
    ) {
        assert_valid(methods::pattern_learning::GET_RECOMMENDATIONS, &a)?;
        assert_valid(methods::pattern_learning::FIND_SIMILAR, &b)?;
        assert_valid(methods::pattern_learning::GET_STATISTICS, &c)?;
        assert_valid(methods::pattern_learning::RECORD_PATTERN, &d)?;
    }

    #[test]
    fn generated_extension_generator_requests_validate(
        a in analyze_requirements(), b in recommend_path(), c in generate(), d in quick_generate(),
    ) {
        assert_valid(methods::extension_generator::ANALYZE_REQUIREMENTS, &a)?;
        assert_valid(methods::extension_generator::RECOMMEND_PATH, &b)?;
        assert_valid(methods::extension_generator::GENERATE, &c)?;
        assert_valid(methods::extension_generator::QUICK_GENERATE, &d)?;
    }

    #[test]
    fn generated_agent_amplification_requests_validate(
        a in create_tool(), b in record_decision(), c in consult_peers(), d in track_evolution(),
    ) {
        assert_valid(methods::agent_amplification::CREATE_TOOL, &a)?;
        assert_valid(methods::agent_amplification::RECORD_DECISION, &b)?;
        assert_valid(methods::agent_amplification::CONSULT_PEERS, &c)?;
        assert_valid(methods::agent_amplification::TRACK_EVOLUTION, &d)?;
    }

    #[test]
    fn generated_agent_context_requests_validate(
        a in detect_type(), b in get_capabilities(), c in get_token_budget(), d in format_for_agent(),
    ) {
        assert_valid(methods::agent_context::DETECT_TYPE, &a)?;
        assert_valid(methods::agent_context::GET_CAPABILITIES, &b)?;
        assert_valid(methods::agent_context::GET_TOKEN_BUDGET, &c)?;
        assert_valid(methods::agent_context::FORMAT_FOR_AGENT, &d)?;
    }
}

/// A request of each method with every optional field set.
fn full_samples() -> Vec<(&'static str, Value)> {
    let m = || Map::from_iter([("someKey".to_owned(), json!({"HTTPServer": 1}))]);
    let samples: Vec<(&str, Value)> = vec![
        (
            methods::pattern_learning::GET_RECOMMENDATIONS,
            to(&GetRecommendationsRequest {
                domain: Some(Domain::Text),
                description: Some("d".into()),
                min_confidence: Some(0.5),
                max_results: Some(10),
            }),
        ),
        (
            methods::pattern_learning::FIND_SIMILAR,
            to(&FindSimilarRequest {
                description: "ten chars!".into(),
                threshold: Some(0.7),
                max_results: Some(10),
                domain: Some(Domain::Ml),
            }),
        ),
        (
            methods::pattern_learning::GET_STATISTICS,
            to(&GetStatisticsRequest {
                domain: Some(Domain::Finance),
                time_range: Some(TimeRange::Range {
                    start: Some("2024-01-01T00:00:00Z".into()),
                    end: Some("2024-02-01T00:00:00Z".into()),
                }),
                sort_by: Some(SortBy::Usage),
            }),
        ),
        (
            methods::pattern_learning::RECORD_PATTERN,
            to(&RecordPatternRequest {
                pattern_name: "p".into(),
                domain: Domain::Ml,
                success_rate: 0.5,
                performance: Some(3.0),
                description: Some("d".into()),
                metadata: Some(m()),
            }),
        ),
        (
            methods::extension_generator::ANALYZE_REQUIREMENTS,
            to(&AnalyzeRequirementsRequest {
                description: "ten chars!".into(),
                domain: Some(Domain::Analytics),
                performance_requirements: Some(PerformanceRequirements {
                    min_ops_per_sec: Some(1.0),
                    max_latency: Some(1.0),
                    max_memory: Some(1.0),
                }),
            }),
        ),
        (
            methods::extension_generator::RECOMMEND_PATH,
            to(&RecommendPathRequest {
                requirements: PathRequirements {
                    domain: "ml".into(),
                    complexity: Complexity::Simple,
                    backend: Some(Backend::C),
                    description: Some("d".into()),
                },
                constraints: Some(PathConstraints {
                    time_limit: Some(60.0),
                    resource_limit: Some("1 GiB".into()),
                }),
            }),
        ),
        (
            methods::extension_generator::GENERATE,
            to(&GenerateRequest {
                description: "ten chars!".into(),
                backend: Some(Backend::Mojo),
                performance_level: Some(PerformanceLevel::Speed),
                include_tests: Some(true),
                include_documentation: Some(false),
                include_benchmarks: Some(true),
                metadata: Some(m()),
            }),
        ),
        (
            methods::extension_generator::QUICK_GENERATE,
            to(&QuickGenerateRequest {
                description: "ten chars!".into(),
                backend: Some(Backend::Python),
            }),
        ),
        (
            methods::agent_amplification::CREATE_TOOL,
            to(&CreateToolRequest {
                name: "tool".into(),
                description: "d".into(),
                capability_request: Some("c".into()),
                parameters: Some(m()),
                implementation: Some("code".into()),
                context: Some(m()),
                priority: Some(Priority::High),
                metadata: Some(m()),
            }),
        ),
        (
            methods::agent_amplification::RECORD_DECISION,
            to(&RecordDecisionRequest {
                decision_id: Some("id".into()),
                decision: "d".into(),
                outcome: DecisionOutcome::Partial,
                confidence: Some(0.5),
                context: Some(m()),
                metadata: Some(m()),
            }),
        ),
        (
            methods::agent_amplification::CONSULT_PEERS,
            to(&ConsultPeersRequest {
                question: "q".into(),
                expertise_area: Some("e".into()),
                context: Some(m()),
                max_peers: Some(3),
                min_confidence: Some(0.5),
            }),
        ),
        (
            methods::agent_amplification::TRACK_EVOLUTION,
            to(&TrackEvolutionRequest {
                capability_id: "c".into(),
                metrics: BTreeMap::from([("x".to_owned(), 1.0)]),
                timestamp: Some("2024-01-01T00:00:00Z".into()),
                metadata: Some(m()),
            }),
        ),
        (
            methods::agent_context::DETECT_TYPE,
            to(&DetectTypeRequest { hints: Some(m()) }),
        ),
        (
            methods::agent_context::GET_CAPABILITIES,
            to(&GetCapabilitiesRequest {
                agent_type: Some("a".into()),
                include_details: Some(true),
            }),
        ),
        (
            methods::agent_context::GET_TOKEN_BUDGET,
            to(&GetTokenBudgetRequest {
                agent_type: Some("a".into()),
                tier: Some("t".into()),
                conversation: Some(vec![ConversationMessage {
                    role: "user".into(),
                    content: "hi".into(),
                }]),
                system_prompt: Some("s".into()),
                include_breakdown: Some(true),
            }),
        ),
        (
            methods::agent_context::FORMAT_FOR_AGENT,
            to(&FormatForAgentRequest {
                content: "c".into(),
                agent_type: Some("a".into()),
                format: Some(OutputFormat::Json),
            }),
        ),
    ];
    assert_eq!(
        samples.iter().map(|(m, _)| *m).collect::<Vec<_>>(),
        methods::ALL
    );
    samples
}

fn to<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializable")
}

/// Asserts that a full sample uses exactly the schema's properties, at every
/// object the schema describes with `properties`.
fn assert_same_keys(method: &str, schema: &Value, value: &Value, path: &str) {
    let (Some(properties), Some(object)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) else {
        return;
    };
    let declared: Vec<_> = properties.keys().collect();
    let used: Vec<_> = object.keys().collect();
    assert_eq!(
        used, declared,
        "{method} at `{path}`: struct fields and schema properties differ"
    );
    for (key, inner) in object {
        let sub = &properties[key];
        assert_same_keys(method, sub, inner, &format!("{path}/{key}"));
        if let (Some(items), Some(array)) = (sub.get("items"), inner.as_array()) {
            for item in array {
                assert_same_keys(method, items, item, &format!("{path}/{key}/0"));
            }
        }
    }
}

#[test]
fn full_requests_use_exactly_the_schema_properties() {
    let service = service();
    for (method, sample) in full_samples() {
        let spec = service.catalog().get(method).expect("in catalog");
        let schema = spec.params_schema().expect("schema");
        assert_same_keys(method, schema, &sample, "");
        assert!(
            spec.validate_params(&sample).is_ok(),
            "{method}: {:?}",
            spec.validate_params(&sample)
        );
    }
}

/// A value of a JSON type the schema does not allow.
fn wrong_type(schema: &Value) -> Option<Value> {
    let allowed: Vec<&str> = match schema.get("type")? {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    [
        json!(12345),
        json!("text"),
        json!(true),
        json!([1]),
        json!({"a": 1}),
    ]
    .into_iter()
    .find(|candidate| {
        let kind = match candidate {
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Bool(_) => "boolean",
            Value::Array(_) => "array",
            _ => "object",
        };
        let integer_allowed = kind == "number" && allowed.contains(&"integer");
        !(allowed.contains(&kind) || integer_allowed)
    })
}

/// Values that break a bound of the schema.
fn out_of_bounds(schema: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    if let Some(min) = number("minimum") {
        out.push(json!(min - 1.0));
    }
    if let Some(max) = number("maximum") {
        out.push(json!(max + 1.0));
    }
    if let Some(min) = schema
        .get("minLength")
        .and_then(Value::as_u64)
        .filter(|&n| n > 0)
    {
        out.push(json!("x".repeat(min as usize - 1)));
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
        out.push(json!("x".repeat(max as usize + 1)));
    }
    if schema.get("enum").is_some() {
        out.push(json!("not-a-member"));
    }
    if schema.get("pattern").is_some() {
        out.push(json!("9 not a name"));
    }
    if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
        out.push(Value::Array(vec![
            json!({"role": "user", "content": ""});
            max as usize + 1
        ]));
    }
    if schema.get("minProperties").is_some() {
        out.push(json!({}));
    }
    out
}

#[track_caller]
fn assert_rejected(method: &str, params: &Value, at: &str, what: &str) {
    let service = service();
    let spec = service.catalog().get(method).expect("in catalog");
    match spec.validate_params(params) {
        Ok(()) => panic!("{method}: {what} at `{at}` was accepted"),
        Err(violations) => assert!(
            violations
                .iter()
                .any(|v| v.instance_path == at || v.instance_path.starts_with(&format!("{at}/"))),
            "{method}: {what}: no violation at `{at}`: {violations:?}"
        ),
    }
    // And `prepare` rejects it too, so it never reaches a worker.
    assert!(
        service
            .prepare(method, Some(&raw(&params.to_string())))
            .is_err(),
        "{method}: {what}"
    );
}

/// Mutates the object at `path` of the sample with every violation its
/// schema allows: wrong types, broken bounds, missing and null required
/// fields, unknown fields.
fn mutate_everything(method: &str, sample: &Value, schema: &Value, path: &str) -> usize {
    let mut checked = 0;
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return 0;
    };
    let object = sample
        .pointer(path)
        .and_then(Value::as_object)
        .expect("sample object")
        .clone();
    let with = |key: &str, value: Option<Value>| {
        let mut changed = sample.clone();
        let target = changed
            .pointer_mut(path)
            .and_then(Value::as_object_mut)
            .expect("object");
        match value {
            Some(value) => target.insert(key.to_owned(), value),
            None => target.remove(key),
        };
        changed
    };
    for (key, sub) in properties {
        let at = format!("{path}/{key}");
        if let Some(bad) = wrong_type(sub) {
            assert_rejected(method, &with(key, Some(bad)), &at, "a wrong type");
            checked += 1;
        }
        for bad in out_of_bounds(sub) {
            assert_rejected(method, &with(key, Some(bad)), &at, "an out-of-bounds value");
            checked += 1;
        }
        if object.contains_key(key) {
            checked += mutate_everything(method, sample, sub, &at);
        }
    }
    for key in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        assert_rejected(method, &with(key, None), path, "a missing required field");
        assert_rejected(
            method,
            &with(key, Some(Value::Null)),
            &format!("{path}/{key}"),
            "a null required field",
        );
        checked += 2;
    }
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        assert_rejected(
            method,
            &with("zz_unknown", Some(json!(1))),
            path,
            "an unknown field",
        );
        checked += 1;
    }
    checked
}

#[test]
fn schema_invalid_samples_are_rejected() {
    let service = service();
    let mut total = 0;
    for (method, sample) in full_samples() {
        let schema = service
            .catalog()
            .get(method)
            .expect("in catalog")
            .params_schema()
            .expect("schema")
            .clone();
        let checked = mutate_everything(method, &sample, &schema, "");
        assert!(checked >= 2, "{method}: only {checked} invalid samples");
        total += checked;
    }
    assert!(total > 150, "{total} invalid samples checked");
}

fn round_trip<T: DeserializeOwned + Serialize>(method: &str) {
    let service = service();
    let spec = service.catalog().get(method).expect("in catalog");
    let wire = wire_result(method);
    assert!(
        spec.validate_result(&wire).is_ok(),
        "{method}: canned result: {:?}",
        spec.validate_result(&wire)
    );
    let typed: T = serde_json::from_value(wire).unwrap_or_else(|e| panic!("{method}: {e}"));
    let again = serde_json::to_value(&typed).expect("serializable");
    assert!(
        spec.validate_result(&again).is_ok(),
        "{method}: typed result: {:?}",
        spec.validate_result(&again)
    );
}

#[test]
fn results_validate_decode_and_round_trip() {
    round_trip::<GetRecommendationsResult>(methods::pattern_learning::GET_RECOMMENDATIONS);
    round_trip::<FindSimilarResult>(methods::pattern_learning::FIND_SIMILAR);
    round_trip::<GetStatisticsResult>(methods::pattern_learning::GET_STATISTICS);
    round_trip::<RecordPatternResult>(methods::pattern_learning::RECORD_PATTERN);
    round_trip::<AnalyzeRequirementsResult>(methods::extension_generator::ANALYZE_REQUIREMENTS);
    round_trip::<RecommendPathResult>(methods::extension_generator::RECOMMEND_PATH);
    round_trip::<GenerateResult>(methods::extension_generator::GENERATE);
    round_trip::<GenerateResult>(methods::extension_generator::QUICK_GENERATE);
    round_trip::<CreateToolResult>(methods::agent_amplification::CREATE_TOOL);
    round_trip::<RecordDecisionResult>(methods::agent_amplification::RECORD_DECISION);
    round_trip::<ConsultPeersResult>(methods::agent_amplification::CONSULT_PEERS);
    round_trip::<TrackEvolutionResult>(methods::agent_amplification::TRACK_EVOLUTION);
    round_trip::<DetectTypeResult>(methods::agent_context::DETECT_TYPE);
    round_trip::<GetCapabilitiesResult>(methods::agent_context::GET_CAPABILITIES);
    round_trip::<GetTokenBudgetResult>(methods::agent_context::GET_TOKEN_BUDGET);
    round_trip::<FormatForAgentResult>(methods::agent_context::FORMAT_FOR_AGENT);
}
