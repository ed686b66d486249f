//! The typed API against a fake `Call` that runs the service's real
//! prepare and adapt steps around canned worker results.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use pybridge_framework::Framework;
use pybridge_framework::api::{
    AnalyzeRequirementsRequest, Backend, Complexity, ConsultPeersRequest, CreateToolRequest,
    DecisionOutcome, DetectTypeRequest, Domain, FindSimilarRequest, FormatForAgentRequest,
    GenerateRequest, GetCapabilitiesRequest, GetRecommendationsRequest, GetStatisticsRequest,
    GetTokenBudgetRequest, NamedWindow, PathRequirements, QuickGenerateRequest,
    RecommendPathRequest, RecordDecisionRequest, RecordPatternRequest, TimeRange,
    TrackEvolutionRequest, methods,
};
use pybridge_service::{Call, Error, Service};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::{raw, service};

/// What the Python framework answers for each method (wire names, in an envelope).
pub(crate) fn wire_result(method: &str) -> Value {
    match method {
        methods::pattern_learning::GET_RECOMMENDATIONS => json!({
            "recommendations": [
                {"pattern_name": "finance_pattern_1", "confidence_score": 0.95, "domain": "finance", "success_rate": 0.92,
                 "avg_performance_ms": 150.0, "usage_count": 42, "description": "d", "anti_patterns": []},
                {"pattern_name": "finance_pattern_2", "confidence_score": 0.87, "anti_patterns": ["avoid_blocking_io"]}
            ],
            "total_patterns": 2,
            "execution_time_ms": 15.0
        }),
        methods::pattern_learning::FIND_SIMILAR => json!({
            "similar_patterns": [{"pattern_name": "similar_pattern_1", "similarity_score": 0.89, "description": "Pattern similar to: x"}],
            "total_found": 1
        }),
        methods::pattern_learning::GET_STATISTICS => json!({
            "total_patterns": 156, "domains": {"finance": 42, "ml": 35}, "avg_success_rate": 0.91, "total_usage": 1243,
            "top_patterns": [{"pattern_name": "p", "usage_count": 12, "success_rate": 0.9}]
        }),
        methods::pattern_learning::RECORD_PATTERN => {
            json!({"success": true, "pattern_id": 17, "updated": false})
        }
        methods::extension_generator::ANALYZE_REQUIREMENTS => json!({
            "requirements": {"domain": "analytics", "backend": "python", "complexity": "medium", "estimated_time": "2-5 minutes"},
            "recommended_path": "advanced_yaml", "confidence": 0.88, "alternatives": ["simple_python"]
        }),
        methods::extension_generator::RECOMMEND_PATH => json!({
            "recommended_path": "rust_extension", "backend": "rust", "confidence": 0.8, "rationale": "speed", "alternatives": []
        }),
        methods::extension_generator::GENERATE | methods::extension_generator::QUICK_GENERATE => {
            json!({
                "success": true, "extension_path": "/tmp/ext_python", "backend": "python",
                "generated_files": ["extension_python.py", "tests.py", "README.md"], "test_suite": "tests_python.py",
                "performance": {"estimated_ops_per_sec": 10000.0, "memory_usage": 1024.0}, "error": null
            })
        }
        methods::agent_amplification::CREATE_TOOL => json!({
            "success": true, "tool_id": "tool-1", "tool_name": "rebalance", "hook_name": "agent.tools.rebalance",
            "implementation": "def rebalance(): ...", "tests": [{"name": "t"}], "documentation": "doc",
            "performance_metadata": {"avg_ms": 3}
        }),
        methods::agent_amplification::RECORD_DECISION => {
            json!({"success": true, "decision_id": "d-1", "recorded_at": "2024-03-07T10:00:00Z"})
        }
        methods::agent_amplification::CONSULT_PEERS => json!({
            "question": "which index?", "responses": [{"agent_id": "a1", "answer": "btree", "confidence": 0.9, "expertise_area": "databases"}],
            "consensus": "btree", "confidence": 0.9
        }),
        methods::agent_amplification::TRACK_EVOLUTION => json!({
            "success": true, "capability_id": "sql", "recorded_at": "2024-03-07T10:00:00Z", "data_points": 3, "trend": "improving"
        }),
        methods::agent_context::DETECT_TYPE => json!({
            "agent_type": "claude_code", "capabilities": ["rich_feedback", "code_generation"], "token_budget": 5000,
            "tier": "development", "features": {"tools": true}, "confidence": 0.7
        }),
        methods::agent_context::GET_CAPABILITIES => json!({
            "agent_type": "claude_code", "capabilities": ["code_generation"], "max_tokens": 200000, "max_output_tokens": 8192,
            "supports_tools": true, "supports_vision": true, "supports_streaming": true,
            "limitations": [], "recommended_practices": ["be specific"]
        }),
        methods::agent_context::GET_TOKEN_BUDGET => json!({
            "agent_type": "claude_code", "tier": "development", "max_tokens": 200000, "used_tokens": 1200,
            "remaining_tokens": 198800, "percentage_used": 0.6, "recommendation": "plenty left",
            "breakdown": {"conversation": 1000, "system_prompt": 200}
        }),
        methods::agent_context::FORMAT_FOR_AGENT => {
            json!({"formatted": "**hi**", "format": "markdown", "agent_type": "claude_code"})
        }
        other => panic!("no canned result for {other}"),
    }
}

/// One call as the worker saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    wire_name: String,
    wire_params: Option<Value>,
}

/// A fake bridge: the service's real prepare and adapt, canned results.
#[derive(Clone)]
struct FakeBridge {
    service: Service,
    seen: Arc<Mutex<Vec<Seen>>>,
    result_override: Option<Value>,
}

impl FakeBridge {
    fn new() -> Self {
        Self {
            service: service(),
            seen: Arc::default(),
            result_override: None,
        }
    }

    fn last(&self) -> Seen {
        self.seen
            .lock()
            .expect("not poisoned")
            .last()
            .cloned()
            .expect("a call was made")
    }
}

impl Call for FakeBridge {
    type Error = Error;

    async fn call(&self, method: &str, params: Box<RawValue>) -> Result<Box<RawValue>, Error> {
        let prepared = self.service.prepare(method, Some(&params))?;
        self.seen.lock().expect("not poisoned").push(Seen {
            method: method.to_owned(),
            wire_name: prepared.wire_name().to_owned(),
            wire_params: prepared
                .params()
                .map(|p| serde_json::from_str(p.get()).expect("json")),
        });
        // Yield once, as a real call would.
        tokio::task::yield_now().await;
        let data = self
            .result_override
            .clone()
            .unwrap_or_else(|| wire_result(method));
        let envelope = json!({"data": data, "metadata": {"execution_time": 1}});
        let adapted = self
            .service
            .adapt_result(prepared.spec(), raw(&envelope.to_string()))?;
        Ok(adapted.result)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

#[test]
fn every_typed_method_round_trips_through_the_service() {
    let bridge = FakeBridge::new();
    let framework = Framework::new(bridge.clone());
    runtime().block_on(async {
        let pl = framework.pattern_learning();
        let result = pl
            .get_recommendations(&GetRecommendationsRequest {
                domain: Some(Domain::Finance),
                min_confidence: Some(0.7),
                max_results: Some(5),
                ..Default::default()
            })
            .await
            .expect("get_recommendations");
        assert_eq!(result.recommendations.len(), 2);
        assert_eq!(
            result.recommendations[1].anti_patterns,
            ["avoid_blocking_io"]
        );
        assert_eq!(result.total_patterns, 2);
        let seen = bridge.last();
        assert_eq!(seen.method, "pattern_learning.get_recommendations");
        assert_eq!(
            seen.wire_name,
            ".claude_code.extension_pattern_learning.get_recommendations"
        );
        assert_eq!(
            seen.wire_params,
            Some(json!({"domain": "finance", "min_confidence": 0.7, "max_results": 5}))
        );

        let mut similar = FindSimilarRequest::new("vector search over text");
        similar.threshold = Some(0.8);
        let result = pl.find_similar(&similar).await.expect("find_similar");
        assert_eq!(result.similar_patterns[0].similarity_score, 0.89);
        assert_eq!(
            bridge.last().wire_params,
            Some(json!({"description": "vector search over text", "similarity_threshold": 0.8}))
        );

        let stats = pl
            .get_statistics(&GetStatisticsRequest {
                time_range: Some(TimeRange::Named(NamedWindow::Week)),
                ..Default::default()
            })
            .await
            .expect("get_statistics");
        assert_eq!(stats.domains["finance"], 42);
        assert_eq!(
            bridge.last().wire_params,
            Some(json!({"time_range": "week"}))
        );

        let mut record = RecordPatternRequest::new("p", Domain::Ml, 0.9);
        record.performance = Some(12.0);
        let recorded = pl.record_pattern(&record).await.expect("record_pattern");
        assert!(recorded.success);
        assert_eq!(
            bridge.last().wire_params.expect("params")["avg_performance_ms"],
            12.0
        );

        let eg = framework.extension_generator();
        let analysis = eg
            .analyze_requirements(&AnalyzeRequirementsRequest::new("fast vector similarity"))
            .await
            .expect("analyze_requirements");
        assert_eq!(
            analysis.requirements.estimated_time.as_deref(),
            Some("2-5 minutes")
        );
        let path = eg
            .recommend_path(&RecommendPathRequest {
                requirements: PathRequirements {
                    domain: "ml".into(),
                    complexity: Complexity::Medium,
                    backend: None,
                    description: None,
                },
                constraints: None,
            })
            .await
            .expect("recommend_path");
        assert_eq!(path.recommended_path, "rust_extension");
        let mut generate = GenerateRequest::new("fast vector similarity");
        generate.backend = Some(Backend::Rust);
        let generated = eg.generate(&generate).await.expect("generate");
        assert_eq!(generated.generated_files.len(), 3);
        assert_eq!(
            bridge.last().wire_params.expect("params")["backend_language"],
            "rust"
        );
        assert!(
            eg.quick_generate(&QuickGenerateRequest::new("fast vector similarity"))
                .await
                .expect("quick")
                .success
        );

        let aa = framework.agent_amplification();
        let tool = aa
            .create_tool(&CreateToolRequest::new(
                "rebalance",
                "rebalance a portfolio",
            ))
            .await
            .expect("create_tool");
        assert_eq!(tool.hook_name.as_deref(), Some("agent.tools.rebalance"));
        let decision = aa
            .record_decision(&RecordDecisionRequest::new(
                "use btree",
                DecisionOutcome::Success,
            ))
            .await
            .expect("record_decision");
        assert_eq!(decision.decision_id.as_deref(), Some("d-1"));
        let peers = aa
            .consult_peers(&ConsultPeersRequest::new("which index?"))
            .await
            .expect("consult_peers");
        assert_eq!(peers.responses[0].agent_id, "a1");
        let evolution = aa
            .track_evolution(&TrackEvolutionRequest::new(
                "sql",
                BTreeMap::from([("accuracy".to_owned(), 0.9)]),
            ))
            .await
            .expect("track_evolution");
        assert_eq!(evolution.data_points, Some(3));

        let ac = framework.agent_context();
        assert_eq!(
            ac.detect_type(&DetectTypeRequest::default())
                .await
                .expect("detect")
                .agent_type,
            "claude_code"
        );
        assert_eq!(bridge.last().wire_params, Some(json!({})), "sent as given");
        assert_eq!(
            ac.get_capabilities(&GetCapabilitiesRequest::default())
                .await
                .expect("caps")
                .max_tokens,
            Some(200000)
        );
        assert_eq!(
            ac.get_token_budget(&GetTokenBudgetRequest::default())
                .await
                .expect("budget")
                .remaining_tokens,
            198800
        );
        assert_eq!(
            ac.format_for_agent(&FormatForAgentRequest::new("hi"))
                .await
                .expect("format")
                .formatted,
            "**hi**"
        );
    });
    let names: Vec<_> = bridge
        .seen
        .lock()
        .expect("not poisoned")
        .iter()
        .map(|s| s.method.clone())
        .collect();
    assert_eq!(
        names,
        methods::ALL,
        "each typed method calls its catalog name, once"
    );
}

#[test]
fn invalid_typed_requests_are_rejected_before_the_worker() {
    let bridge = FakeBridge::new();
    let framework = Framework::new(bridge.clone());
    let error =
        runtime()
            .block_on(framework.pattern_learning().get_recommendations(
                &GetRecommendationsRequest {
                    min_confidence: Some(1.5),
                    ..Default::default()
                },
            ))
            .expect_err("out of range");
    assert!(
        matches!(&error, Error::InvalidParams { method, .. } if method == "pattern_learning.get_recommendations"),
        "{error}"
    );
    assert!(bridge.seen.lock().expect("not poisoned").is_empty());
}

#[test]
fn results_that_do_not_decode_name_the_method_and_field() {
    let mut bridge = FakeBridge::new();
    bridge.result_override =
        Some(json!({"recommendations": [{"pattern_name": 5}], "total_patterns": 1}));
    let error = runtime()
        .block_on(
            Framework::new(bridge)
                .pattern_learning()
                .get_recommendations(&GetRecommendationsRequest::default()),
        )
        .expect_err("bad result");
    match error {
        Error::DecodeResult { method, source } => {
            assert_eq!(method, "pattern_learning.get_recommendations");
            assert!(source.to_string().contains("invalid type"), "{source}");
        }
        other => panic!("expected a decode error, got {other}"),
    }
}

#[test]
fn typed_calls_are_send_and_work_through_references_and_arcs() {
    fn assert_send<T: Send>(value: T) -> T {
        value
    }
    let bridge = Arc::new(FakeBridge::new());
    let framework = Framework::new(Arc::clone(&bridge));
    let by_ref = Framework::new(&*bridge);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .expect("runtime");
    let request = DetectTypeRequest::default();
    let detected = runtime.block_on(async {
        // Spawning needs a Send future.
        let owned = framework.clone();
        let task = tokio::spawn(async move {
            owned
                .agent_context()
                .detect_type(&DetectTypeRequest::default())
                .await
        });
        let first = task.await.expect("task").expect("detect");
        let second = assert_send(by_ref.agent_context().detect_type(&request))
            .await
            .expect("detect");
        (first, second)
    });
    assert_eq!(detected.0, detected.1);
    fn assert_handle<T: Clone + Send + Sync>() {}
    assert_handle::<Framework<Arc<FakeBridge>>>();
}
