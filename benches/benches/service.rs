//! Service benchmarks: `Service::prepare` (limits, schema validation,
//! renames) of a typical `pattern_learning.get_recommendations` request and
//! of a 64 KiB `agent_amplification.create_tool` request, and
//! `Service::adapt_result` of an enveloped result, each next to serde_json
//! parsing the same bytes into a `serde_json::Value`, the baseline the
//! ratios are taken against. Goal: the typical request under 2 µs.
//!
//! Run with `cargo bench -p pybridge-benches --bench service`.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pybridge_service::{Service, ServiceConfig};
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// What an agent typically sends: a domain, a short description, two knobs.
const TYPICAL: &str = r#"{"domain":"finance","description":"Aggregate portfolio risk over daily returns with rolling windows","min_confidence":0.7,"max_results":5}"#;

/// The same request from a caller of the original API: camelCase alias and
/// params, which the service rewrites.
const TYPICAL_LEGACY: &str = r#"{"domain":"finance","description":"Aggregate portfolio risk over daily returns with rolling windows","minConfidence":0.7,"maxResults":5}"#;

/// A typical result in its envelope.
const RESULT: &str = r#"{"data":{"recommendations":[{"pattern_name":"finance_pattern_1","confidence_score":0.95,"domain":"finance","success_rate":0.92,"avg_performance_ms":150.0,"usage_count":42,"description":"Windowed aggregation","anti_patterns":[]},{"pattern_name":"finance_pattern_2","confidence_score":0.87,"domain":"finance","success_rate":0.85,"avg_performance_ms":200.0,"usage_count":28,"description":"Incremental risk","anti_patterns":["avoid_blocking_io"]}],"total_patterns":2,"execution_time_ms":15.0},"metadata":{"execution_time":15,"cached":false,"version":"1.0.0"}}"#;

/// A `create_tool` request of about `target` bytes: half a JSON Schema for
/// the tool's input, half Python source with newlines and quotes.
fn create_tool(target: usize) -> Box<RawValue> {
    let mut properties = serde_json::Map::new();
    let mut i = 0;
    while serde_json::to_string(&properties).expect("JSON").len() < target / 2 {
        properties.insert(
            format!("field_{i}"),
            json!({"type": "string", "description": format!("Input field number {i} of the tool"), "maxLength": 100}),
        );
        i += 1;
    }
    let mut code = String::from("def tool(params):\n");
    let mut line = 0;
    while code.len() < target / 2 - 600 {
        writeln!(
            code,
            "    total_{line} = params.get(\"field_{line}\", \"\").strip()  # step {line}"
        )
        .expect("String");
        line += 1;
    }
    let request = json!({
        "name": "portfolio.rebalance",
        "description": "Rebalance a portfolio to its target weights",
        "capability_request": "rebalance holdings to target weights with minimal trades",
        "parameters": {"type": "object", "properties": properties, "required": ["field_0"]},
        "implementation": code,
        "priority": "normal",
        "metadata": {"requestedBy": "agent-7"}
    });
    serde_json::value::to_raw_value(&request).expect("JSON")
}

fn raw(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_owned()).expect("JSON")
}

fn prepare(c: &mut Criterion) {
    let service = Service::new(
        pybridge_framework::catalog().expect("catalog"),
        ServiceConfig::default(),
    );
    let cases = [
        (
            "get_recommendations",
            "pattern_learning.get_recommendations",
            raw(TYPICAL),
        ),
        (
            "get_recommendations_legacy_alias",
            "getRecommendations",
            raw(TYPICAL_LEGACY),
        ),
        (
            "create_tool_64KiB",
            "agent_amplification.create_tool",
            create_tool(64 * 1024),
        ),
    ];
    let mut group = c.benchmark_group("service_prepare");
    for (name, method, params) in &cases {
        let bytes = params.get().as_bytes();
        group.throughput(Throughput::ElementsAndBytes {
            elements: 1,
            bytes: bytes.len() as u64,
        });
        let prepared = service.prepare(method, Some(params)).expect("valid params");
        assert_eq!(prepared.is_rewritten(), name.contains("legacy"), "{name}");
        group.bench_with_input(BenchmarkId::new("prepare", name), params, |b, params| {
            b.iter(|| {
                let prepared = service
                    .prepare(black_box(method), Some(black_box(params)))
                    .expect("valid");
                black_box(prepared.params().map(|p| p.get().len()))
            });
        });
        group.bench_with_input(
            BenchmarkId::new("baseline_value_parse", name),
            bytes,
            |b, bytes| {
                b.iter(|| serde_json::from_slice::<Value>(black_box(bytes)).expect("JSON"));
            },
        );
    }
    group.finish();
}

fn adapt(c: &mut Criterion) {
    let service = Service::new(
        pybridge_framework::catalog().expect("catalog"),
        ServiceConfig::default(),
    );
    let spec = service
        .catalog()
        .get("pattern_learning.get_recommendations")
        .expect("in catalog")
        .clone();
    let mut group = c.benchmark_group("service_adapt_result");
    group.throughput(Throughput::ElementsAndBytes {
        elements: 1,
        bytes: RESULT.len() as u64,
    });
    let envelope = raw(RESULT);
    group.bench_function(
        BenchmarkId::new("adapt_result", "get_recommendations"),
        |b| {
            b.iter_batched(
                || envelope.clone(),
                |raw| black_box(service.adapt_result(&spec, raw).expect("adapts")),
                criterion::BatchSize::SmallInput,
            );
        },
    );
    group.bench_function(
        BenchmarkId::new("baseline_value_parse", "get_recommendations"),
        |b| {
            b.iter(|| serde_json::from_slice::<Value>(black_box(RESULT.as_bytes())).expect("JSON"));
        },
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = prepare, adapt
}
criterion_main!(benches);
