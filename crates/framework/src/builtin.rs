//! The catalog files and schemas shipped with the crate, compiled in.

/// Built-in catalog files: (source name, text).
pub(crate) const CATALOG_FILES: &[(&str, &str)] = &[
    (
        "builtin:pattern_learning.json",
        include_str!("../catalog/pattern_learning.json"),
    ),
    (
        "builtin:extension_generator.json",
        include_str!("../catalog/extension_generator.json"),
    ),
    (
        "builtin:agent_amplification.json",
        include_str!("../catalog/agent_amplification.json"),
    ),
    (
        "builtin:agent_context.json",
        include_str!("../catalog/agent_context.json"),
    ),
    (
        "builtin:research.json",
        include_str!("../catalog/research.json"),
    ),
    (
        "builtin:innovation.json",
        include_str!("../catalog/innovation.json"),
    ),
    (
        "builtin:prompt_lab.json",
        include_str!("../catalog/prompt_lab.json"),
    ),
    (
        "builtin:experiment.json",
        include_str!("../catalog/experiment.json"),
    ),
    ("builtin:test.json", include_str!("../catalog/test.json")),
];

macro_rules! schemas {
    ($($family:literal / $method:literal),* $(,)?) => {
        &[$(
            (
                concat!($family, "/", $method, ".params.json"),
                include_str!(concat!("../schemas/", $family, "/", $method, ".params.json")),
            ),
            (
                concat!($family, "/", $method, ".result.json"),
                include_str!(concat!("../schemas/", $family, "/", $method, ".result.json")),
            ),
        )*]
    };
}

/// Built-in schema files, by the path the catalog files use: (path, text).
pub(crate) const SCHEMA_FILES: &[(&str, &str)] = schemas![
    "pattern_learning" / "get_recommendations",
    "pattern_learning" / "find_similar",
    "pattern_learning" / "get_statistics",
    "pattern_learning" / "record_pattern",
    "extension_generator" / "analyze_requirements",
    "extension_generator" / "recommend_path",
    "extension_generator" / "generate",
    "extension_generator" / "quick_generate",
    "agent_amplification" / "create_tool",
    "agent_amplification" / "record_decision",
    "agent_amplification" / "consult_peers",
    "agent_amplification" / "track_evolution",
    "agent_context" / "detect_type",
    "agent_context" / "get_capabilities",
    "agent_context" / "get_token_budget",
    "agent_context" / "format_for_agent",
];
