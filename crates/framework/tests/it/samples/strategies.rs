//! proptest strategies that generate valid requests of each typed struct,
//! within the bounds its schema sets.

use proptest::prelude::*;
use pybridge_framework::api::*;
use serde_json::{Map, Value};

pub(super) fn text(min: usize, max: usize) -> impl Strategy<Value = String> {
    // Keep samples small, but reach the bounds the schema sets.
    let max = max.min(min + 40);
    proptest::collection::vec(
        proptest::char::range('a', 'z').prop_union(proptest::char::range('À', 'ÿ')),
        min..=max,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

pub(super) fn unit() -> impl Strategy<Value = f64> {
    (0u32..=1000).prop_map(|n| f64::from(n) / 1000.0)
}

pub(super) fn non_negative() -> impl Strategy<Value = f64> {
    (0u32..=1_000_000).prop_map(f64::from)
}

pub(super) fn map() -> impl Strategy<Value = Map<String, Value>> {
    proptest::collection::btree_map("[a-zA-Z_]{1,8}", any::<i32>().prop_map(Value::from), 0..4)
        .prop_map(|m| m.into_iter().collect())
}

pub(super) fn domain() -> impl Strategy<Value = Domain> {
    prop_oneof![
        Just(Domain::Finance),
        Just(Domain::Analytics),
        Just(Domain::Ml),
        Just(Domain::Geospatial),
        Just(Domain::Text),
        Just(Domain::General)
    ]
}

pub(super) fn backend() -> impl Strategy<Value = Backend> {
    prop_oneof![
        Just(Backend::Python),
        Just(Backend::Mojo),
        Just(Backend::Rust),
        Just(Backend::C)
    ]
}

pub(super) fn date_time() -> impl Strategy<Value = String> {
    (2000u32..2100, 1u32..=12, 1u32..=28, 0u32..24, 0u32..60)
        .prop_map(|(y, mo, d, h, mi)| format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:00Z"))
}

pub(super) fn get_recommendations() -> impl Strategy<Value = GetRecommendationsRequest> {
    (
        proptest::option::of(domain()),
        proptest::option::of(text(1, 5000)),
        proptest::option::of(unit()),
        proptest::option::of(1u32..=100),
    )
        .prop_map(|(domain, description, min_confidence, max_results)| {
            GetRecommendationsRequest {
                domain,
                description,
                min_confidence,
                max_results,
            }
        })
}

pub(super) fn find_similar() -> impl Strategy<Value = FindSimilarRequest> {
    (
        text(10, 5000),
        proptest::option::of(unit()),
        proptest::option::of(1u32..=50),
        proptest::option::of(domain()),
    )
        .prop_map(
            |(description, threshold, max_results, domain)| FindSimilarRequest {
                description,
                threshold,
                max_results,
                domain,
            },
        )
}

pub(super) fn time_range() -> impl Strategy<Value = TimeRange> {
    prop_oneof![
        prop_oneof![
            Just(NamedWindow::Day),
            Just(NamedWindow::Week),
            Just(NamedWindow::Month),
            Just(NamedWindow::All)
        ]
        .prop_map(TimeRange::Named),
        (proptest::option::of(date_time()), date_time()).prop_map(|(start, end)| {
            TimeRange::Range {
                start,
                end: Some(end),
            }
        }),
    ]
}

pub(super) fn get_statistics() -> impl Strategy<Value = GetStatisticsRequest> {
    let sort = prop_oneof![
        Just(SortBy::Usage),
        Just(SortBy::SuccessRate),
        Just(SortBy::Performance),
        Just(SortBy::Recent)
    ];
    (
        proptest::option::of(domain()),
        proptest::option::of(time_range()),
        proptest::option::of(sort),
    )
        .prop_map(|(domain, time_range, sort_by)| GetStatisticsRequest {
            domain,
            time_range,
            sort_by,
        })
}

pub(super) fn record_pattern() -> impl Strategy<Value = RecordPatternRequest> {
    (
        text(1, 200),
        domain(),
        unit(),
        proptest::option::of(non_negative()),
        proptest::option::of(text(0, 2000)),
        proptest::option::of(map()),
    )
        .prop_map(
            |(pattern_name, domain, success_rate, performance, description, metadata)| {
                RecordPatternRequest {
                    pattern_name,
                    domain,
                    success_rate,
                    performance,
                    description,
                    metadata,
                }
            },
        )
}

pub(super) fn analyze_requirements() -> impl Strategy<Value = AnalyzeRequirementsRequest> {
    let perf = (
        proptest::option::of(non_negative()),
        proptest::option::of(non_negative()),
        proptest::option::of(non_negative()),
    )
        .prop_map(
            |(min_ops_per_sec, max_latency, max_memory)| PerformanceRequirements {
                min_ops_per_sec,
                max_latency,
                max_memory,
            },
        );
    (
        text(10, 10000),
        proptest::option::of(domain()),
        proptest::option::of(perf),
    )
        .prop_map(|(description, domain, performance_requirements)| {
            AnalyzeRequirementsRequest {
                description,
                domain,
                performance_requirements,
            }
        })
}

pub(super) fn recommend_path() -> impl Strategy<Value = RecommendPathRequest> {
    let complexity = prop_oneof![
        Just(Complexity::Simple),
        Just(Complexity::Medium),
        Just(Complexity::Complex)
    ];
    let requirements = (
        text(1, 100),
        complexity,
        proptest::option::of(backend()),
        proptest::option::of(text(0, 10000)),
    )
        .prop_map(
            |(domain, complexity, backend, description)| PathRequirements {
                domain,
                complexity,
                backend,
                description,
            },
        );
    let constraints = (
        proptest::option::of(non_negative()),
        proptest::option::of(text(1, 200)),
    )
        .prop_map(|(time_limit, resource_limit)| PathConstraints {
            time_limit,
            resource_limit,
        });
    (requirements, proptest::option::of(constraints)).prop_map(|(requirements, constraints)| {
        RecommendPathRequest {
            requirements,
            constraints,
        }
    })
}

pub(super) fn generate() -> impl Strategy<Value = GenerateRequest> {
    let level = prop_oneof![
        Just(PerformanceLevel::Balanced),
        Just(PerformanceLevel::Speed),
        Just(PerformanceLevel::Memory),
        Just(PerformanceLevel::Development)
    ];
    (
        text(10, 10000),
        proptest::option::of(backend()),
        proptest::option::of(level),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(map()),
    )
        .prop_map(
            |(
                description,
                backend,
                performance_level,
                include_tests,
                include_documentation,
                include_benchmarks,
                metadata,
            )| GenerateRequest {
                description,
                backend,
                performance_level,
                include_tests,
                include_documentation,
                include_benchmarks,
                metadata,
            },
        )
}

pub(super) fn quick_generate() -> impl Strategy<Value = QuickGenerateRequest> {
    (text(10, 10000), proptest::option::of(backend())).prop_map(|(description, backend)| {
        QuickGenerateRequest {
            description,
            backend,
        }
    })
}

pub(super) fn create_tool() -> impl Strategy<Value = CreateToolRequest> {
    let priority = prop_oneof![
        Just(Priority::Low),
        Just(Priority::Normal),
        Just(Priority::High)
    ];
    (
        "[A-Za-z_][A-Za-z0-9_.-]{0,99}",
        text(1, 5000),
        proptest::option::of(text(1, 10000)),
        proptest::option::of(map()),
        proptest::option::of(text(0, 1_000_000)),
        proptest::option::of(map()),
        proptest::option::of(priority),
        proptest::option::of(map()),
    )
        .prop_map(
            |(
                name,
                description,
                capability_request,
                parameters,
                implementation,
                context,
                priority,
                metadata,
            )| CreateToolRequest {
                name,
                description,
                capability_request,
                parameters,
                implementation,
                context,
                priority,
                metadata,
            },
        )
}

pub(super) fn record_decision() -> impl Strategy<Value = RecordDecisionRequest> {
    let outcome = prop_oneof![
        Just(DecisionOutcome::Success),
        Just(DecisionOutcome::Failure),
        Just(DecisionOutcome::Partial)
    ];
    (
        proptest::option::of(text(1, 200)),
        text(1, 10000),
        outcome,
        proptest::option::of(unit()),
        proptest::option::of(map()),
        proptest::option::of(map()),
    )
        .prop_map(
            |(decision_id, decision, outcome, confidence, context, metadata)| {
                RecordDecisionRequest {
                    decision_id,
                    decision,
                    outcome,
                    confidence,
                    context,
                    metadata,
                }
            },
        )
}

pub(super) fn consult_peers() -> impl Strategy<Value = ConsultPeersRequest> {
    (
        text(1, 5000),
        proptest::option::of(text(1, 200)),
        proptest::option::of(map()),
        proptest::option::of(1u32..=20),
        proptest::option::of(unit()),
    )
        .prop_map(
            |(question, expertise_area, context, max_peers, min_confidence)| ConsultPeersRequest {
                question,
                expertise_area,
                context,
                max_peers,
                min_confidence,
            },
        )
}

pub(super) fn track_evolution() -> impl Strategy<Value = TrackEvolutionRequest> {
    let metrics =
        proptest::collection::btree_map("[a-z_]{1,10}", (-1000i32..1000).prop_map(f64::from), 1..5);
    (
        text(1, 200),
        metrics,
        proptest::option::of(date_time()),
        proptest::option::of(map()),
    )
        .prop_map(
            |(capability_id, metrics, timestamp, metadata)| TrackEvolutionRequest {
                capability_id,
                metrics,
                timestamp,
                metadata,
            },
        )
}

pub(super) fn detect_type() -> impl Strategy<Value = DetectTypeRequest> {
    proptest::option::of(map()).prop_map(|hints| DetectTypeRequest { hints })
}

pub(super) fn get_capabilities() -> impl Strategy<Value = GetCapabilitiesRequest> {
    (
        proptest::option::of(text(1, 100)),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(|(agent_type, include_details)| GetCapabilitiesRequest {
            agent_type,
            include_details,
        })
}

pub(super) fn get_token_budget() -> impl Strategy<Value = GetTokenBudgetRequest> {
    let message = (text(1, 50), text(0, 200))
        .prop_map(|(role, content)| ConversationMessage { role, content });
    (
        proptest::option::of(text(1, 100)),
        proptest::option::of(text(1, 50)),
        proptest::option::of(proptest::collection::vec(message, 0..5)),
        proptest::option::of(text(0, 1_000_000)),
        proptest::option::of(any::<bool>()),
    )
        .prop_map(
            |(agent_type, tier, conversation, system_prompt, include_breakdown)| {
                GetTokenBudgetRequest {
                    agent_type,
                    tier,
                    conversation,
                    system_prompt,
                    include_breakdown,
                }
            },
        )
}

pub(super) fn format_for_agent() -> impl Strategy<Value = FormatForAgentRequest> {
    let format = prop_oneof![
        Just(OutputFormat::Markdown),
        Just(OutputFormat::Plain),
        Just(OutputFormat::Json),
        Just(OutputFormat::Xml)
    ];
    (
        text(0, 1_000_000),
        proptest::option::of(text(1, 100)),
        proptest::option::of(format),
    )
        .prop_map(|(content, agent_type, format)| FormatForAgentRequest {
            content,
            agent_type,
            format,
        })
}
