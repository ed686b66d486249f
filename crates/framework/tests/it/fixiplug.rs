//! FixiPlug compatibility mode: the original's camelCase result shapes,
//! without its dropped fields.

use std::sync::Arc;

use pybridge_framework::Fixiplug;
use pybridge_service::{ResultShape, Service, ServiceConfig};
use serde_json::{Value, json};

use crate::{builtin, raw};

/// Adapts `result` (wrapped in an envelope with `metadata`) for `method` in
/// FixiPlug mode.
fn fixiplug(method: &str, data: Value, metadata: Value) -> Value {
    let config = ServiceConfig::builder()
        .result_shape(ResultShape::Reshaped)
        .build()
        .expect("valid config");
    let service = Service::with_reshape(builtin(), config, Arc::new(Fixiplug));
    let spec = service.catalog().get(method).expect("in catalog").clone();
    let envelope = json!({"data": data, "metadata": metadata});
    let adapted = service
        .adapt_result(&spec, raw(&envelope.to_string()))
        .expect("adapts");
    serde_json::from_str(adapted.result.get()).expect("json")
}

#[test]
fn recommendations() {
    let data = json!({
        "recommendations": [
            {"pattern_name": "finance_pattern_1", "confidence_score": 0.95, "domain": "finance", "success_rate": 0.92,
             "avg_performance_ms": 150, "usage_count": 42, "description": "d"},
            {"pattern_name": "finance_pattern_2", "confidence_score": 0.87, "anti_patterns": ["avoid_blocking_io"], "last_used": "2024"}
        ],
        "total_patterns": 2,
        "execution_time_ms": 15
    });
    assert_eq!(
        fixiplug("getRecommendations", data, json!({})),
        json!({
            "recommendations": [
                {"pattern": "finance_pattern_1", "confidence": 0.95, "domain": "finance", "successRate": 0.92,
                 "avgPerformance": 150, "usageCount": 42, "description": "d", "antiPatterns": []},
                // Unlisted fields are kept (the original dropped them), camelCased.
                {"pattern": "finance_pattern_2", "confidence": 0.87, "antiPatterns": ["avoid_blocking_io"], "lastUsed": "2024"}
            ],
            "totalPatterns": 2,
            "executionTime": 15
        })
    );
}

#[test]
fn similar_patterns_with_total_found_fallback() {
    let data = json!({"similar_patterns": [{"pattern_name": "p", "similarity_score": 0.89, "description": "d", "success_rate": 0.5}]});
    assert_eq!(
        fixiplug("pattern_learning.find_similar", data, json!({})),
        json!({"patterns": [{"pattern": "p", "similarity": 0.89, "description": "d", "successRate": 0.5}], "totalFound": 1})
    );
    let data = json!({"similar_patterns": [], "total_found": 7});
    assert_eq!(
        fixiplug("pattern_learning.find_similar", data, json!({})),
        json!({"patterns": [], "totalFound": 7})
    );
}

#[test]
fn statistics_keep_data_keys() {
    let data = json!({
        "total_patterns": 156,
        "domains": {"finance": 42, "geo_spatial": 25},
        "avg_success_rate": 0.91,
        "total_usage": 1243,
        "top_patterns": [{"pattern_name": "p", "usage_count": 3}]
    });
    assert_eq!(
        fixiplug("pattern_learning.get_statistics", data, json!({})),
        json!({
            "totalPatterns": 156,
            "domains": {"finance": 42, "geo_spatial": 25},
            "avgSuccessRate": 0.91,
            "totalUsage": 1243,
            "topPatterns": [{"pattern_name": "p", "usage_count": 3}]
        })
    );
    assert_eq!(
        fixiplug(
            "pattern_learning.get_statistics",
            json!({"total_patterns": 0}),
            json!({})
        ),
        json!({"totalPatterns": 0, "domains": {}, "topPatterns": []})
    );
}

#[test]
fn requirements_extension_tool_and_detection() {
    let data = json!({
        "requirements": {"domain": "analytics", "backend": "python", "complexity": "medium", "estimated_time": "2-5 minutes"},
        "recommended_path": "advanced_yaml",
        "confidence": 0.88
    });
    assert_eq!(
        fixiplug("extension_generator.analyze_requirements", data, json!({})),
        json!({
            "requirements": {"domain": "analytics", "backend": "python", "complexity": "medium", "estimatedTime": "2-5 minutes"},
            "recommendedPath": "advanced_yaml",
            "confidence": 0.88,
            "alternatives": []
        })
    );
    let data = json!({
        "success": true, "extension_path": "/x/ext_mojo", "backend": "mojo",
        "generated_files": ["ext.mojo", "tests.py"], "test_suite": "tests_mojo.py",
        "performance": {"estimated_ops_per_sec": 100000, "memory_usage": 1024}
    });
    assert_eq!(
        fixiplug("generateExtension", data, json!({})),
        json!({
            "success": true, "extensionPath": "/x/ext_mojo", "backend": "mojo",
            "generatedFiles": ["ext.mojo", "tests.py"], "testSuite": "tests_mojo.py",
            "performance": {"estimatedOpsPerSec": 100000, "memoryUsage": 1024}
        })
    );
    assert_eq!(
        fixiplug(
            "extension_generator.quick_generate",
            json!({"success": false, "error": "no compiler"}),
            json!({})
        ),
        json!({"success": false, "generatedFiles": [], "performance": null, "error": "no compiler"})
    );
    let data = json!({
        "success": true, "tool_id": "t1", "tool_name": "rebalance", "hook_name": "agent.tools.rebalance",
        "implementation": "def f(): ...", "tests": [], "documentation": "doc", "performance_metadata": {"avg_ms": 3}
    });
    assert_eq!(
        fixiplug("createDynamicTool", data, json!({})),
        json!({
            "success": true, "toolId": "t1", "toolName": "rebalance", "hookName": "agent.tools.rebalance",
            "implementation": "def f(): ...", "tests": [], "documentation": "doc", "performance": {"avgMs": 3}
        })
    );
    let data = json!({"agent_type": "claude_code", "capabilities": ["rich_feedback", "code_generation"], "token_budget": 5000, "tier": "development"});
    assert_eq!(
        fixiplug("detectAgentType", data, json!({})),
        json!({"agentType": "claude_code", "capabilities": ["rich_feedback", "code_generation"], "tokenBudget": 5000, "tier": "development", "features": {}})
    );
}

#[test]
fn other_methods_are_camel_cased_throughout() {
    assert_eq!(
        fixiplug(
            "pattern_learning.record_pattern",
            json!({"success": true, "pattern_id": 4, "details": {"was_new": true, "_private": 1}}),
            json!({})
        ),
        json!({"success": true, "patternId": 4, "details": {"wasNew": true, "_private": 1}})
    );
}

#[test]
fn metadata_goes_into_the_result_as_the_original_did() {
    let metadata = json!({"execution_time": 150, "cached": true, "version": "1.0.0", "responseTime": 3, "request_id": "r1"});
    let result = fixiplug(
        "detectAgentType",
        json!({"agent_type": "x", "capabilities": []}),
        metadata,
    );
    assert_eq!(
        result["_metadata"],
        json!({"executionTime": 150, "cached": true, "version": "1.0.0", "responseTime": 3, "requestId": "r1"})
    );
    let result = fixiplug(
        "detectAgentType",
        json!({"agent_type": "x"}),
        json!({"version": "2"}),
    );
    assert_eq!(
        result["_metadata"],
        json!({"cached": false, "version": "2"})
    );
    let result = fixiplug("detectAgentType", json!({"agent_type": "x"}), json!({}));
    assert!(
        result.get("_metadata").is_none(),
        "no metadata, no _metadata"
    );
}
