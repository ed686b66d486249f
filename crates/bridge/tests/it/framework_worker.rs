//! The reference framework worker (`python -m sqlite_framework`) against
//! the catalog: every method of the four main families, prepared by the
//! service, called through the pool, adapted, and checked against its result
//! schema, in the plain and the `{data, metadata}` envelope form.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use pybridge_pool::{Error as PoolError, Pool, PoolConfig, WorkerSpec};
use pybridge_protocol::{ErrorCode, ErrorObject};
use pybridge_service::{Service, ServiceConfig};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::support::{python, python_env};

const MAIN_FAMILIES: [&str; 4] = [
    "pattern_learning",
    "extension_generator",
    "agent_amplification",
    "agent_context",
];
const UNIMPLEMENTED_FAMILIES: [&str; 4] = ["research", "innovation", "prompt_lab", "experiment"];

const VAR: &str = "Compute portfolio value at risk and expected shortfall from daily returns";

/// One call: a public method name, public params, and what its adapted
/// result must show beyond its schema.
struct Case {
    method: &'static str,
    params: Value,
    check: fn(&Value),
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            method: "pattern_learning.record_pattern",
            params: json!({
                "pattern_name": "ledger_reconciliation",
                "domain": "finance",
                "success_rate": 0.9,
                "performance": 12.5,
                "description": "Reconcile ledger entries against bank deposit lines",
                "metadata": {"tags": ["ledger", "reconciliation"]}
            }),
            check: |r| {
                assert_eq!(r["success"], true);
                assert_eq!(r["updated"], false);
                assert!(r["pattern_id"].is_i64(), "{r}");
                // `performance` was renamed to `avg_performance_ms` on the way in.
                assert_eq!(r["avg_performance_ms"], 12.5, "{r}");
                assert_eq!(r["usage_count"], 1);
            },
        },
        Case {
            method: "pattern_learning.get_recommendations",
            params: json!({"description": "portfolio value at risk", "max_results": 5, "min_confidence": 0.1}),
            check: |r| {
                let recs = r["recommendations"].as_array().unwrap();
                assert!(recs.len() >= 3, "{r}");
                for rec in &recs[..3] {
                    assert_eq!(rec["domain"], "finance", "{r}");
                    let name = rec["pattern_name"].as_str().unwrap();
                    assert!(name.contains("var") || name.contains("shortfall"), "{name}");
                }
                let scores: Vec<f64> = recs
                    .iter()
                    .map(|x| x["confidence_score"].as_f64().unwrap())
                    .collect();
                assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
                assert!(scores.iter().all(|s| *s >= 0.1), "{scores:?}");
                // 65 starter patterns plus the one recorded above.
                assert_eq!(r["total_patterns"], 66, "{r}");
            },
        },
        Case {
            method: "pattern_learning.find_similar",
            params: json!({
                "description": "Reconcile ledger entries against bank deposit lines",
                "threshold": 0.5,
                "max_results": 5
            }),
            check: |r| {
                let first = &r["similar_patterns"][0];
                assert_eq!(first["pattern_name"], "ledger_reconciliation", "{r}");
                assert!(first["similarity_score"].as_f64().unwrap() >= 0.95, "{r}");
                // `threshold` reached the worker as `similarity_threshold`.
                assert_eq!(r["threshold"], 0.5, "{r}");
            },
        },
        Case {
            method: "pattern_learning.get_statistics",
            params: json!({"domain": "finance", "time_range": "day", "sort_by": "usage"}),
            check: |r| {
                assert_eq!(r["total_usage"], 1, "{r}");
                assert_eq!(r["total_patterns"], 1, "{r}");
                assert_eq!(r["domains"], json!({"finance": 1}));
                assert_eq!(
                    r["top_patterns"][0]["pattern_name"],
                    "ledger_reconciliation"
                );
            },
        },
        Case {
            method: "extension_generator.analyze_requirements",
            params: json!({
                "description": VAR,
                "domain": "finance",
                "performance_requirements": {"min_ops_per_sec": 1000, "max_latency": 5}
            }),
            check: |r| {
                assert_eq!(r["requirements"]["domain"], "finance");
                assert_eq!(r["requirements"]["backend"], "python");
                let path = r["recommended_path"].as_str().unwrap();
                assert!(path.starts_with("python_"), "{r}");
                let functions = r["requirements"]["functions"].as_array().unwrap();
                assert!(functions.contains(&json!("var_historical")), "{r}");
            },
        },
        Case {
            method: "extension_generator.recommend_path",
            params: json!({
                "requirements": {"domain": "finance", "complexity": "complex", "backend": "python"},
                "constraints": {"time_limit": 120}
            }),
            check: |r| {
                // Complex work would be optimised, but two minutes rule that out.
                assert_eq!(r["recommended_path"], "python_template", "{r}");
                assert_eq!(r["backend"], "python");
                assert!(
                    r["rationale"].as_str().unwrap().contains("time limit"),
                    "{r}"
                );
            },
        },
        Case {
            method: "extension_generator.generate",
            params: json!({
                "description": VAR,
                "backend": "python",
                "performance_level": "development",
                "include_tests": true,
                "include_documentation": true,
                "include_benchmarks": true,
                "metadata": {"requested_by": "framework_worker test"}
            }),
            check: |r| {
                assert_eq!(r["success"], true, "{r}");
                assert_eq!(r["tests_passed"], true, "{r}");
                assert_eq!(r["backend"], "python");
                let files = r["generated_files"].as_array().unwrap();
                assert_eq!(files.len(), 4, "module, tests, benchmark, README: {r}");
                for file in files {
                    assert!(Path::new(file.as_str().unwrap()).is_file(), "{file}");
                }
                let functions: Vec<&str> = r["functions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| f["name"].as_str().unwrap())
                    .collect();
                assert!(functions.contains(&"var_historical"), "{functions:?}");
                assert!(
                    r["performance"]["estimated_ops_per_sec"].as_f64().unwrap() > 0.0,
                    "{r}"
                );
            },
        },
        Case {
            method: "extension_generator.quick_generate",
            params: json!({"description": "levenshtein distance for fuzzy name matching"}),
            check: |r| {
                assert_eq!(r["success"], true, "{r}");
                assert_eq!(r["tests_passed"], true, "{r}");
                assert_eq!(r["functions"][0]["name"], "levenshtein", "{r}");
                let module = r["generated_files"][0].as_str().unwrap();
                let source = std::fs::read_to_string(module).unwrap();
                assert!(source.contains("create_function"), "{source}");
            },
        },
        Case {
            method: "agent_amplification.create_tool",
            params: json!({
                "name": "portfolio_var",
                "description": "Value at risk of the current holdings",
                "capability_request": "compute VaR for my portfolio",
                "parameters": {
                    "type": "object",
                    "properties": {"currentHoldings": {"type": "array"}},
                    "required": ["currentHoldings"]
                },
                "priority": "high"
            }),
            check: |r| {
                assert_eq!(r["success"], true);
                assert!(r["tool_id"].as_str().unwrap().starts_with("tool_"), "{r}");
                assert_eq!(r["tool_name"], "portfolio_var");
                // The user's schema arrives untouched (the original snake_cased it).
                assert_eq!(
                    r["parameters"]["required"],
                    json!(["currentHoldings"]),
                    "{r}"
                );
                assert!(r["parameters"]["properties"]["currentHoldings"].is_object());
            },
        },
        Case {
            method: "agent_amplification.record_decision",
            params: json!({
                "decision": "use historical simulation for portfolio value at risk",
                "outcome": "success",
                "confidence": 0.9,
                "context": {"agent_id": "risk-bot", "expertise_area": "finance"}
            }),
            check: |r| {
                assert_eq!(r["success"], true);
                assert!(
                    r["decision_id"].as_str().unwrap().starts_with("dec_"),
                    "{r}"
                );
                assert!(r["recorded_at"].as_str().unwrap().ends_with('Z'), "{r}");
            },
        },
        Case {
            method: "agent_amplification.consult_peers",
            params: json!({
                "question": "How should I compute portfolio value at risk?",
                "expertise_area": "finance",
                "max_peers": 4
            }),
            check: |r| {
                let responses = r["responses"].as_array().unwrap();
                assert_eq!(responses.len(), 4, "{r}");
                assert_eq!(responses[0]["agent_id"], "risk-bot", "{r}");
                assert!(
                    r["consensus"]
                        .as_str()
                        .unwrap()
                        .contains("historical simulation"),
                    "{r}"
                );
                assert!(
                    responses.iter().any(|x| x["agent_id"]
                        .as_str()
                        .unwrap()
                        .starts_with("tool-registry:")),
                    "the tool created above is a peer: {r}"
                );
            },
        },
        Case {
            method: "agent_amplification.track_evolution",
            params: json!({
                "capability_id": "var-calc",
                "metrics": {"accuracy": 0.8, "latency_ms": 20.0},
                "timestamp": "2024-01-01T00:00:00Z"
            }),
            check: |r| {
                assert_eq!(r["capability_id"], "var-calc");
                assert_eq!(r["data_points"], 1);
                assert_eq!(r["trend"], "baseline");
                assert_eq!(r["recorded_at"], "2024-01-01T00:00:00.000000Z");
            },
        },
        Case {
            method: "agent_amplification.track_evolution",
            params: json!({
                "capability_id": "var-calc",
                "metrics": {"accuracy": 0.9, "latency_ms": 12.0},
                "timestamp": "2024-01-08T00:00:00+01:00"
            }),
            check: |r| {
                assert_eq!(r["data_points"], 2);
                // Accuracy up and latency down are both improvements.
                assert_eq!(r["trend"], "improving", "{r}");
            },
        },
        Case {
            method: "agent_context.detect_type",
            params: json!({"hints": {"user_agent": "claude-code/1.0.3"}}),
            check: |r| {
                assert_eq!(r["agent_type"], "claude_code");
                assert_eq!(r["confidence"], 0.9);
                assert!(
                    r["capabilities"]
                        .as_array()
                        .unwrap()
                        .contains(&json!("tool_use"))
                );
                assert_eq!(r["token_budget"], 200_000);
            },
        },
        Case {
            method: "agent_context.get_capabilities",
            params: json!({"agent_type": "cursor", "include_details": true}),
            check: |r| {
                assert_eq!(r["agent_type"], "cursor");
                assert_eq!(r["max_tokens"], 128_000);
                assert_eq!(r["supports_tools"], true);
                assert!(r["details"]["tiers"].is_object(), "{r}");
            },
        },
        Case {
            method: "agent_context.get_token_budget",
            params: json!({
                "agent_type": "generic",
                "conversation": [{"role": "user", "content": "hello world, how are you today?"}],
                "system_prompt": "Be brief.",
                "include_breakdown": true
            }),
            check: |r| {
                assert_eq!(r["max_tokens"], 8192);
                let used = r["used_tokens"].as_i64().unwrap();
                let breakdown: i64 = r["breakdown"]
                    .as_object()
                    .unwrap()
                    .values()
                    .map(|v| v.as_i64().unwrap())
                    .sum();
                assert_eq!(used, breakdown, "{r}");
                assert!(used > 7, "{r}");
                assert_eq!(r["remaining_tokens"], 8192 - used);
            },
        },
        Case {
            method: "agent_context.format_for_agent",
            params: json!({
                "content": "# Title\n\nSome **bold** text",
                "agent_type": "claude_code",
                "format": "plain"
            }),
            check: |r| {
                assert_eq!(r["formatted"], "Title\n\nSome bold text");
                assert_eq!(r["format"], "plain");
                assert_eq!(r["agent_type"], "claude_code");
            },
        },
    ]
}

/// A pool of framework workers; `extra` are server flags.
async fn start(workers: usize, extra: &[&std::ffi::OsStr]) -> Pool {
    let spec = python_env()
        .into_iter()
        .fold(WorkerSpec::new(python()), |spec, (k, v)| spec.env(k, v))
        .args(["-m", "sqlite_framework"])
        .args(extra.iter().copied())
        .startup_timeout(Duration::from_secs(30));
    let config = PoolConfig::builder(spec)
        .workers(workers)
        .default_timeout(Duration::from_secs(60))
        .build()
        .expect("valid pool config");
    Pool::start(config).await.expect("framework workers start")
}

fn service() -> Service {
    Service::new(
        pybridge_framework::catalog().expect("built-in catalog"),
        ServiceConfig::default(),
    )
}

fn raw(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("JSON")
}

/// Runs every case through prepare → pool → adapt_result → result schema.
async fn run_every_method(pool: &Pool, envelope: bool) {
    let service = service();
    let mut covered = BTreeSet::new();
    for case in cases() {
        let params = raw(&case.params);
        let prepared = service
            .prepare(case.method, Some(&params))
            .unwrap_or_else(|e| panic!("{}: params rejected: {e:?}", case.method));
        let spec = prepared.spec().clone();
        assert!(MAIN_FAMILIES.contains(&spec.family()), "{}", case.method);
        covered.insert(spec.name().to_owned());
        let deadline = Instant::now() + spec.timeout().unwrap_or(Duration::from_secs(30));
        let answer = pool
            .call_with_deadline(prepared.wire_name(), prepared.params(), deadline)
            .await
            .unwrap_or_else(|e| panic!("{}: call failed: {e}", case.method));
        let adapted = service
            .adapt_result(&spec, answer)
            .unwrap_or_else(|e| panic!("{}: adapt_result: {e:?}", case.method));
        let result: Value = serde_json::from_str(adapted.result.get()).unwrap();
        if let Err(violations) = spec.validate_result(&result) {
            panic!(
                "{}: result breaks its schema: {violations:#?}\n{result:#}",
                case.method
            );
        }
        (case.check)(&result);
        match (&adapted.metadata, envelope) {
            (Some(meta), true) => {
                let meta: Value = serde_json::from_str(meta.get()).unwrap();
                assert_eq!(meta["cached"], false, "{meta}");
                assert!(meta["request_id"].is_i64(), "{meta}");
                assert!(meta["execution_time_ms"].as_f64().unwrap() >= 0.0);
                assert!(meta["version"].is_string());
            }
            (None, false) => {}
            (meta, _) => panic!(
                "{}: metadata {meta:?} with envelope={envelope}",
                case.method
            ),
        }
    }
    let expected: BTreeSet<String> = service
        .catalog()
        .methods()
        .filter(|spec| MAIN_FAMILIES.contains(&spec.family()))
        .map(|spec| spec.name().to_owned())
        .collect();
    assert_eq!(expected.len(), 16);
    assert_eq!(covered, expected, "every main-family method has a case");
}

fn remote_error(outcome: Result<Box<RawValue>, PoolError>) -> ErrorObject {
    match outcome {
        Err(PoolError::Remote { error, .. }) => error,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

/// The families the reference framework does not implement answer
/// method-not-found, and unsupported backends are refused, not faked.
async fn check_refusals(pool: &Pool) {
    let service = service();
    let empty = raw(&json!({}));
    let mut others = 0;
    for spec in service.catalog().methods() {
        if !UNIMPLEMENTED_FAMILIES.contains(&spec.family()) {
            continue;
        }
        others += 1;
        // The registry refuses them by public name; the worker, asked
        // directly, says the same.
        assert!(!spec.available(), "{}", spec.name());
        let error = remote_error(pool.call(spec.wire_name(), Some(&empty)).await);
        assert_eq!(error.code, ErrorCode::METHOD_NOT_FOUND, "{}", spec.name());
    }
    assert_eq!(others, 16);

    for backend in ["rust", "c", "mojo"] {
        let params = raw(&json!({"description": VAR, "backend": backend}));
        let prepared = service
            .prepare("extension_generator.generate", Some(&params))
            .unwrap();
        let error = remote_error(pool.call(prepared.wire_name(), prepared.params()).await);
        assert_eq!(error.code, ErrorCode::INVALID_PARAMS);
        assert!(
            error
                .message
                .contains("not supported by the reference framework"),
            "{}",
            error.message
        );
        let data: Value = serde_json::from_str(error.data.unwrap().get()).unwrap();
        assert_eq!(data["type"], "UnsupportedBackend");
        assert_eq!(data["field"], "backend_language");
    }

    // The worker checks its own input too, for callers that skip the service.
    let bad = raw(&json!({"max_results": "ten"}));
    let error = remote_error(
        pool.call(
            ".claude_code.extension_pattern_learning.get_recommendations",
            Some(&bad),
        )
        .await,
    );
    assert_eq!(error.code, ErrorCode::INVALID_PARAMS);
    assert!(
        error.message.starts_with("max_results:"),
        "{}",
        error.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_main_family_method_through_the_pool_plain() {
    let out = tempfile::tempdir().unwrap();
    // One worker: the in-memory database is per process.
    let pool = start(
        1,
        &[
            "--memory".as_ref(),
            "--output-dir".as_ref(),
            out.path().as_os_str(),
        ],
    )
    .await;
    run_every_method(&pool, false).await;
    check_refusals(&pool).await;
    pool.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_main_family_method_through_the_pool_in_the_envelope() {
    let data = tempfile::tempdir().unwrap();
    // Two workers that start together on one fresh database file: the
    // starter set is seeded once, and each sees the other's writes.
    let pool = start(
        2,
        &[
            "--envelope".as_ref(),
            "--data-dir".as_ref(),
            data.path().as_os_str(),
        ],
    )
    .await;
    run_every_method(&pool, true).await;
    check_refusals(&pool).await;
    pool.shutdown().await;
    assert!(data.path().join("framework.sqlite3").is_file());
    assert!(data.path().join("extensions").is_dir());
}
