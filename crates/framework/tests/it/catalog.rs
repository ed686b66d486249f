//! Catalog loading: built-in files, user files, errors naming file and key,
//! aliases, overrides.

use std::time::Duration;

use pybridge_service::{
    CachePolicy, Catalog, CatalogProblem, Error, MethodOverride, Mode, Resolution, Service,
    ServiceConfig,
};

use crate::{raw, service, service_with};

/// The 32 methods of the original (reference §10.3): camelCase name, public
/// name, wire name.
const ORIGINAL: [(&str, &str, &str); 32] = [
    (
        "getRecommendations",
        "pattern_learning.get_recommendations",
        ".claude_code.extension_pattern_learning.get_recommendations",
    ),
    (
        "findSimilarPatterns",
        "pattern_learning.find_similar",
        ".claude_code.extension_pattern_learning.find_similar_patterns",
    ),
    (
        "getPatternStatistics",
        "pattern_learning.get_statistics",
        ".claude_code.extension_pattern_learning.get_pattern_statistics",
    ),
    (
        "recordPattern",
        "pattern_learning.record_pattern",
        ".claude_code.extension_pattern_learning.record_successful_pattern",
    ),
    (
        "analyzeRequirements",
        "extension_generator.analyze_requirements",
        "src.generator.llm_agent_interface.analyze_requirements",
    ),
    (
        "recommendPath",
        "extension_generator.recommend_path",
        "src.generator.llm_agent_interface.recommend_path",
    ),
    (
        "generateExtension",
        "extension_generator.generate",
        "src.generator.llm_agent_interface.generate_extension",
    ),
    (
        "quickExtensionFromDescription",
        "extension_generator.quick_generate",
        "src.generator.llm_agent_interface.quick_extension_from_description",
    ),
    (
        "createDynamicTool",
        "agent_amplification.create_tool",
        "src.agent_amplification.dynamic_tool_creation.generate_new_tool_capability",
    ),
    (
        "recordDecision",
        "agent_amplification.record_decision",
        "src.agent_amplification.agent_learning_protocols.record_decision_outcome",
    ),
    (
        "consultPeers",
        "agent_amplification.consult_peers",
        "src.agent_amplification.collaborative_knowledge_base.consult_peer_agents",
    ),
    (
        "trackEvolution",
        "agent_amplification.track_evolution",
        "src.agent_amplification.evolution_tracker.track_capability_evolution",
    ),
    (
        "designExperiment",
        "research.design_experiment",
        "code_research_tools.core.experiment_designer.design_experiment",
    ),
    (
        "analyzeCodeStatistics",
        "research.analyze_code_statistics",
        "code_research_tools.analysis.statistical_engine.analyze_codebase",
    ),
    (
        "runResearchProtocol",
        "research.run_protocol",
        "code_research_tools.core.research_orchestrator.run_protocol",
    ),
    (
        "generateResearchReport",
        "research.generate_report",
        "code_research_tools.core.research_orchestrator.generate_report",
    ),
    (
        "ideateSolutions",
        "innovation.ideate_solutions",
        "innovation_engine.core.ideation_engine.generate_solutions",
    ),
    (
        "createSessionTemplate",
        "innovation.create_session_template",
        "innovation_engine.builders.template_builder.create_template",
    ),
    (
        "analyzeCollaboration",
        "innovation.analyze_collaboration",
        "innovation_engine.agents.analytics.analyze_collaboration_patterns",
    ),
    (
        "transferKnowledge",
        "innovation.transfer_knowledge",
        "innovation_engine.core.knowledge_transfer.transfer_session_knowledge",
    ),
    (
        "testPromptVariants",
        "prompt_lab.test_variants",
        "prompt_laboratory.core.experiment_builder.test_variants",
    ),
    (
        "analyzePromptPerformance",
        "prompt_lab.analyze_performance",
        "prompt_laboratory.core.statistical_engine.analyze_performance",
    ),
    (
        "getOptimalPrompt",
        "prompt_lab.get_optimal_prompt",
        "prompt_laboratory.core.optimization.get_optimal_prompt",
    ),
    (
        "storePromptPattern",
        "prompt_lab.store_pattern",
        "prompt_laboratory.core.pattern_repository.store_pattern",
    ),
    (
        "runMemoryExperiment",
        "experiment.run_memory_experiment",
        "experiments.memory_experiment.run_experiment",
    ),
    (
        "trackCapabilityImprovement",
        "experiment.track_capability_improvement",
        "experiments.capability_experiment.track_improvement",
    ),
    (
        "detectFailurePatterns",
        "experiment.detect_failure_patterns",
        "experiments.failure_pattern_detector.detect_patterns",
    ),
    (
        "loadTestCapability",
        "experiment.load_test_capability",
        "experiments.load_testing.load_test_capability",
    ),
    (
        "detectAgentType",
        "agent_context.detect_type",
        "src.infrastructure.llm_agents.detector.detect_agent_type",
    ),
    (
        "getAgentCapabilities",
        "agent_context.get_capabilities",
        "src.infrastructure.llm_agents.capabilities.get_capabilities",
    ),
    (
        "getTokenBudget",
        "agent_context.get_token_budget",
        "src.infrastructure.llm_agents.capabilities.get_token_budget",
    ),
    (
        "formatForAgent",
        "agent_context.format_for_agent",
        "src.infrastructure.llm_agents.context.format_for_agent",
    ),
];

/// Plugin hook names (reference §10.1) and the public names they alias.
const HOOKS: [(&str, &str); 16] = [
    (
        "sqlite.patterns.get",
        "pattern_learning.get_recommendations",
    ),
    (
        "sqlite.patterns.find_similar",
        "pattern_learning.find_similar",
    ),
    (
        "sqlite.patterns.statistics",
        "pattern_learning.get_statistics",
    ),
    ("sqlite.patterns.record", "pattern_learning.record_pattern"),
    (
        "sqlite.extension.analyze",
        "extension_generator.analyze_requirements",
    ),
    (
        "sqlite.extension.recommend_path",
        "extension_generator.recommend_path",
    ),
    ("sqlite.extension.generate", "extension_generator.generate"),
    (
        "sqlite.extension.quick_generate",
        "extension_generator.quick_generate",
    ),
    (
        "sqlite.agent.create_tool",
        "agent_amplification.create_tool",
    ),
    (
        "sqlite.agent.record_decision",
        "agent_amplification.record_decision",
    ),
    (
        "sqlite.agent.consult_peers",
        "agent_amplification.consult_peers",
    ),
    (
        "sqlite.agent.track_evolution",
        "agent_amplification.track_evolution",
    ),
    ("sqlite.context.detect", "agent_context.detect_type"),
    (
        "sqlite.context.capabilities",
        "agent_context.get_capabilities",
    ),
    (
        "sqlite.context.token_budget",
        "agent_context.get_token_budget",
    ),
    // The original hook called a service method that did not exist.
    (
        "sqlite.context.format_response",
        "agent_context.format_for_agent",
    ),
];

fn catalog() -> Catalog {
    crate::builtin()
}

#[test]
fn builtin_catalog_has_every_method_of_the_original_with_its_wire_name() {
    let catalog = catalog();
    assert_eq!(
        catalog.len(),
        32 + 3,
        "32 framework methods and 3 test methods"
    );
    for (camel, public, wire) in ORIGINAL {
        let (spec, how) = catalog
            .resolve(public)
            .unwrap_or_else(|| panic!("{public} missing"));
        assert_eq!(how, Resolution::Name);
        assert_eq!(spec.wire_name(), wire, "{public}");
        let (by_alias, how) = catalog
            .resolve(camel)
            .unwrap_or_else(|| panic!("{camel} missing"));
        assert_eq!(how, Resolution::Alias);
        assert_eq!(by_alias.name(), public);
        assert!(spec.aliases().any(|a| a == camel));
        assert_eq!(spec.family(), public.split('.').next().expect("namespaced"));
    }
    for (hook, public) in HOOKS {
        let (spec, how) = catalog
            .resolve(hook)
            .unwrap_or_else(|| panic!("{hook} missing"));
        assert_eq!((spec.name(), how), (public, Resolution::Alias));
    }
    for test in ["test.echo", "test.sleep", "test.error"] {
        assert_eq!(catalog.get(test).map(|s| s.wire_name()), Some(test));
    }
    assert!(catalog.get("no.such_method").is_none());
}

#[test]
fn cache_policy_timeouts_idempotence_and_envelopes_follow_the_original() {
    let catalog = catalog();
    let cached = [
        "pattern_learning.get_recommendations",
        "pattern_learning.find_similar",
        "pattern_learning.get_statistics",
        "agent_context.detect_type",
        "agent_context.get_capabilities",
        "agent_context.get_token_budget",
    ];
    for spec in catalog.methods() {
        let expected = cached.contains(&spec.name());
        assert_eq!(spec.cache().enabled, expected, "cache of {}", spec.name());
        if expected {
            assert_eq!(spec.cache().l1_ttl, Some(Duration::from_secs(60)));
            assert_eq!(spec.cache().l2_ttl, Some(Duration::from_secs(3600)));
            assert!(
                spec.idempotent(),
                "a cached method is a read: {}",
                spec.name()
            );
        }
        let generation = [
            "extension_generator.generate",
            "extension_generator.quick_generate",
        ];
        let timeout = generation
            .contains(&spec.name())
            .then(|| Duration::from_secs(120));
        assert_eq!(spec.timeout(), timeout, "timeout of {}", spec.name());
        assert_eq!(
            spec.envelope(),
            spec.family() != "test",
            "envelope of {}",
            spec.name()
        );
    }
    let idempotent = |name: &str| catalog.get(name).expect("in catalog").idempotent();
    assert!(idempotent("test.echo"));
    assert!(idempotent("test.sleep"));
    assert!(!idempotent("test.error"));
    for writer in [
        "pattern_learning.record_pattern",
        "extension_generator.generate",
        "extension_generator.quick_generate",
        "agent_amplification.create_tool",
        "agent_amplification.record_decision",
        "agent_amplification.track_evolution",
    ] {
        assert!(!idempotent(writer), "{writer} writes");
    }
}

#[test]
fn the_sixteen_main_methods_have_params_and_result_schemas() {
    let catalog = catalog();
    for spec in catalog.methods() {
        let main = [
            "pattern_learning",
            "extension_generator",
            "agent_amplification",
            "agent_context",
        ]
        .contains(&spec.family());
        assert_eq!(
            spec.params_schema().is_some(),
            main || spec.name() == "test.sleep",
            "{}",
            spec.name()
        );
        assert_eq!(spec.result_schema().is_some(), main, "{}", spec.name());
        if let Some(schema) = spec.params_schema().filter(|_| main) {
            assert_eq!(
                schema["$schema"],
                "https://json-schema.org/draft/2020-12/schema"
            );
            assert_eq!(
                schema["additionalProperties"],
                false,
                "{} params are a closed set",
                spec.name()
            );
        }
    }
}

/// Built-in schemas are compiled on their method's first call, not at load:
/// this is what keeps a broken one from ever reaching a caller.
#[test]
fn every_builtin_schema_compiles() {
    let catalog = catalog();
    let with_schemas = catalog
        .methods()
        .filter(|spec| spec.params_schema().is_some() || spec.result_schema().is_some())
        .count();
    assert!(with_schemas >= 16, "{with_schemas} methods with schemas");
    catalog
        .compile_schemas()
        .expect("every built-in schema compiles");
}

#[test]
fn version_is_stable_and_changes_with_inputs() {
    let a = catalog();
    let b = pybridge_framework::catalog().expect("built-in catalog");
    assert_eq!(a.version(), b.version());
    assert_eq!(a.version().len(), 16);
    let overridden = pybridge_framework::catalog_builder()
        .override_method("test.echo", MethodOverride::new().wire_name("echo"))
        .build()
        .expect("valid override");
    assert_ne!(a.version(), overridden.version());
    let extended = pybridge_framework::catalog_builder()
        .source("extra", r#"{"family":"extra","methods":[{"name":"extra.one","wire_name":"x","idempotent":true}]}"#)
        .build()
        .expect("valid source");
    assert_ne!(a.version(), extended.version());
}

#[test]
fn user_file_adds_methods_with_schemas_relative_to_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("schemas")).expect("mkdir");
    std::fs::write(
        dir.path().join("schemas/forecast.json"),
        r#"{"type":"object","properties":{"days":{"type":"integer","minimum":1,"maximum":14}},"required":["days"],"additionalProperties":false}"#,
    )
    .expect("write schema");
    let file = dir.path().join("weather.json");
    std::fs::write(
        &file,
        r#"{
          "family": "weather",
          "methods": [{
            "name": "weather.forecast",
            "aliases": ["getForecast"],
            "wire_name": "weather_service.forecast",
            "params_schema": "schemas/forecast.json",
            "idempotent": true,
            "cache": {"enabled": true, "l1_ttl_ms": 5000},
            "timeout_ms": 2500,
            "param_renames": {"/days": "num_days"},
            "legacy_params": {"/days": ["numberOfDays"]}
          }]
        }"#,
    )
    .expect("write catalog");
    let catalog = pybridge_framework::catalog_builder()
        .file(&file)
        .build()
        .expect("user catalog");
    assert_eq!(catalog.len(), 36);
    let spec = catalog.get("getForecast").expect("alias");
    assert_eq!(spec.name(), "weather.forecast");
    assert_eq!(spec.timeout(), Some(Duration::from_millis(2500)));
    assert_eq!(
        spec.cache(),
        CachePolicy::enabled(Some(Duration::from_secs(5)), None)
    );
    assert_eq!(spec.source(), file.display().to_string());

    let service = Service::new(catalog, ServiceConfig::default());
    let (wire, params) = crate::wire(&service, "getForecast", r#"{"numberOfDays":3}"#);
    assert_eq!(wire, "weather_service.forecast");
    assert_eq!(params, Some(serde_json::json!({"num_days": 3})));
    assert_eq!(
        crate::violations(&service, "weather.forecast", r#"{"days":30}"#),
        crate::v(&[("/days", "maximum")])
    );
}

/// Builds a catalog from one user source; returns the error.
fn catalog_error(text: &str) -> Error {
    pybridge_framework::catalog_builder()
        .source("user.json", text)
        .build()
        .expect_err("the catalog is invalid")
}

#[track_caller]
fn check_catalog_error(text: &str, key: &str, problem: CatalogProblem) {
    match catalog_error(text) {
        Error::Catalog {
            file,
            key: found_key,
            problem: found,
        } => {
            assert_eq!(file, "user.json");
            assert_eq!(found_key, key);
            assert_eq!(found, problem);
        }
        other => panic!("expected a catalog error, got {other}"),
    }
}

fn invalid(reason: &str) -> CatalogProblem {
    CatalogProblem::InvalidValue {
        reason: reason.to_owned(),
    }
}

#[test]
fn unknown_fields_are_errors_naming_file_and_key() {
    check_catalog_error(
        r#"{"family":"u","methods":[],"extra":1}"#,
        "extra",
        CatalogProblem::UnknownField,
    );
    check_catalog_error(
        r#"{"family":"u","methods":[{"name":"u.a","wire_name":"a","idempotent":true,"timeout":5}]}"#,
        "methods[0].timeout",
        CatalogProblem::UnknownField,
    );
    check_catalog_error(
        r#"{"family":"u","methods":[
            {"name":"u.a","wire_name":"a","idempotent":true},
            {"name":"u.b","wire_name":"b","idempotent":true,"cache":{"enabled":true,"l1_tll_ms":5}}]}"#,
        "methods[1].cache.l1_tll_ms",
        CatalogProblem::UnknownField,
    );
}

#[test]
fn missing_fields_wrong_types_and_syntax_errors_name_the_key() {
    check_catalog_error(
        r#"{"family":"u","methods":[{"name":"u.a","idempotent":true}]}"#,
        "methods[0].wire_name",
        CatalogProblem::MissingField,
    );
    check_catalog_error(
        r#"{"family":"u","methods":[{"name":"u.a","wire_name":"a"}]}"#,
        "methods[0].idempotent",
        CatalogProblem::MissingField,
    );
    check_catalog_error(
        r#"{"family":"u","methods":[{"name":"u.a","wire_name":"a","idempotent":"yes"}]}"#,
        "methods[0].idempotent",
        CatalogProblem::WrongType {
            expected: "a boolean",
        },
    );
    check_catalog_error(
        r#"{"family":"u","methods":[{"name":"u.a","wire_name":"a","idempotent":true,"timeout_ms":-5}]}"#,
        "methods[0].timeout_ms",
        CatalogProblem::WrongType {
            expected: "a whole number of milliseconds",
        },
    );
    check_catalog_error(
        r#"{"family":"u","methods":[{"name":"u.a","wire_name":"a","idempotent":true,"timeout_ms":0}]}"#,
        "methods[0].timeout_ms",
        invalid("must be at least 1 millisecond"),
    );
    match catalog_error("{\"family\": \"u\",\n \"methods\": [,]}") {
        Error::Catalog {
            problem: CatalogProblem::Syntax { line, column, .. },
            ..
        } => assert_eq!((line, column), (2, 14)),
        other => panic!("expected a syntax error, got {other}"),
    }
}

#[test]
fn duplicate_names_and_aliases_are_errors_naming_both_files() {
    // Against the built-in catalog.
    check_catalog_error(
        r#"{"family":"test","methods":[{"name":"test.echo","wire_name":"x","idempotent":true}]}"#,
        "methods[0].name",
        CatalogProblem::DuplicateName {
            name: "test.echo".into(),
            first_file: "builtin:test.json".into(),
        },
    );
    // An alias that is another method's alias.
    check_catalog_error(
        r#"{"family":"u","methods":[{"name":"u.a","aliases":["x","getRecommendations"],"wire_name":"a","idempotent":true}]}"#,
        "methods[0].aliases[1]",
        CatalogProblem::DuplicateName {
            name: "getRecommendations".into(),
            first_file: "builtin:pattern_learning.json".into(),
        },
    );
    // Within one file.
    check_catalog_error(
        r#"{"family":"u","methods":[
            {"name":"u.a","wire_name":"a","idempotent":true},
            {"name":"u.b","aliases":["u.a"],"wire_name":"b","idempotent":true}]}"#,
        "methods[1].aliases[0]",
        CatalogProblem::DuplicateName {
            name: "u.a".into(),
            first_file: "user.json".into(),
        },
    );
    // Between two user files.
    let error = Catalog::builder()
        .source(
            "one.json",
            r#"{"family":"u","methods":[{"name":"u.a","wire_name":"a","idempotent":true}]}"#,
        )
        .source(
            "two.json",
            r#"{"family":"u","methods":[{"name":"u.a","wire_name":"b","idempotent":true}]}"#,
        )
        .build()
        .expect_err("duplicate");
    assert_eq!(
        error.to_string(),
        "catalog two.json: methods[0].name: name `u.a` is already used in one.json"
    );
}

#[test]
fn names_must_be_namespaced_and_wire_names_not_reserved() {
    check_catalog_error(
        r#"{"family":"u","methods":[{"name":"other.a","wire_name":"a","idempotent":true}]}"#,
        "methods[0].name",
        invalid("`other.a` is not a namespaced snake_case name of family `u` (`u.some_method`)"),
    );
    check_catalog_error(
        r#"{"family":"u","methods":[{"name":"u.getThing","wire_name":"a","idempotent":true}]}"#,
        "methods[0].name",
        invalid("`u.getThing` is not a namespaced snake_case name of family `u` (`u.some_method`)"),
    );
    check_catalog_error(
        r#"{"family":"u","methods":[{"name":"u.a","wire_name":"$/ping","idempotent":true}]}"#,
        "methods[0].wire_name",
        invalid("`$/ping` uses a prefix reserved for the protocol"),
    );
    check_catalog_error(
        r#"{"family":"u","methods":[{"name":"u.a","aliases":["rpc.x"],"wire_name":"a","idempotent":true}]}"#,
        "methods[0].aliases[0]",
        invalid("`rpc.x` uses a prefix reserved for the protocol"),
    );
    check_catalog_error(
        r#"{"family":"Bad","methods":[]}"#,
        "family",
        invalid(
            "a family is snake_case: lowercase letters, digits and `_`, starting with a letter",
        ),
    );
}

#[test]
fn schemas_renames_and_shapes_are_checked_at_load() {
    match catalog_error(
        r#"{"family":"u","methods":[{"name":"u.a","wire_name":"a","idempotent":true,"params_schema":{"type":"strng"}}]}"#,
    ) {
        Error::Catalog {
            key,
            problem: CatalogProblem::InvalidSchema { .. },
            ..
        } => assert_eq!(key, "methods[0].params_schema"),
        other => panic!("expected an invalid schema, got {other}"),
    }
    match catalog_error(
        r#"{"family":"u","methods":[{"name":"u.a","wire_name":"a","idempotent":true,"params_schema":{"type":"string","format":"no-such-format"}}]}"#,
    ) {
        Error::Catalog {
            problem: CatalogProblem::InvalidSchema { .. },
            ..
        } => {}
        other => panic!("an unknown format must not compile, got {other}"),
    }
    check_catalog_error(
        r#"{"family":"u","methods":[{"name":"u.a","wire_name":"a","idempotent":true,
            "params_schema":{"type":"object","properties":{"days":{"type":"integer"}}},
            "param_renames":{"/dayz":"num_days"}}]}"#,
        "methods[0].param_renames",
        invalid("the schema has no field at `/dayz`"),
    );
    check_catalog_error(
        r#"{"family":"u","methods":[{"name":"u.a","wire_name":"a","idempotent":true,"param_renames":{"days":"n"}}]}"#,
        "methods[0].param_renames.days",
        invalid("`days` is not a JSON pointer (it must start with `/`)"),
    );
    check_catalog_error(
        r#"{"family":"u","methods":[{"name":"u.a","wire_name":"a","idempotent":true,"params_schema":"a.json"}]}"#,
        "methods[0].params_schema",
        invalid("a catalog given as text must inline its schemas"),
    );
}

#[test]
fn unreadable_files_are_io_errors_naming_the_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.json");
    match pybridge_framework::catalog_builder().file(&missing).build() {
        Err(Error::CatalogIo { path, .. }) => assert_eq!(path, missing),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    let file = dir.path().join("c.json");
    std::fs::write(
        &file,
        r#"{"family":"u","methods":[{"name":"u.a","wire_name":"a","idempotent":true,"params_schema":"nope.json"}]}"#,
    )
    .expect("write");
    match pybridge_framework::catalog_builder().file(&file).build() {
        Err(Error::CatalogIo { path, .. }) => assert_eq!(path, dir.path().join("nope.json")),
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn overrides_change_wire_name_timeout_cache_and_idempotence() {
    let catalog = pybridge_framework::catalog_builder()
        .override_method(
            "pattern_learning.get_recommendations",
            MethodOverride::new()
                .wire_name("framework.patterns.recommend")
                .timeout(Duration::from_secs(5))
                .cache(CachePolicy::disabled())
                .idempotent(false)
                .envelope(false),
        )
        .build()
        .expect("valid override");
    let spec = catalog
        .get("getRecommendations")
        .expect("alias still resolves");
    assert_eq!(spec.wire_name(), "framework.patterns.recommend");
    assert_eq!(spec.timeout(), Some(Duration::from_secs(5)));
    assert!(!spec.cache().enabled);
    assert!(!spec.idempotent());
    assert!(!spec.envelope());

    let service = Service::new(catalog, ServiceConfig::default());
    let (wire, _) = crate::wire(&service, "sqlite.patterns.get", "{}");
    assert_eq!(wire, "framework.patterns.recommend");

    for (name, changes, key) in [
        ("no.such", MethodOverride::new(), "methods.no.such"),
        (
            "getRecommendations",
            MethodOverride::new(),
            "methods.getRecommendations",
        ),
        (
            "test.echo",
            MethodOverride::new().wire_name("$/x"),
            "methods.test.echo.wire_name",
        ),
        (
            "test.echo",
            MethodOverride::new().timeout(Duration::ZERO),
            "methods.test.echo.timeout",
        ),
        (
            "test.echo",
            MethodOverride::new().cache(CachePolicy::enabled(Some(Duration::ZERO), None)),
            "methods.test.echo.cache",
        ),
    ] {
        match pybridge_framework::catalog_builder()
            .override_method(name, changes)
            .build()
        {
            Err(Error::Config { key: found, .. }) => assert_eq!(found, key),
            other => panic!("expected a config error for {key}, got {other:?}"),
        }
    }
}

#[test]
fn unknown_methods_pass_through_or_are_rejected_in_strict_mode() {
    let service = service();
    let params = raw(r#"{"anyKey": {"nested": [1, 2]}}"#);
    let prepared = service
        .prepare("src.module.method", Some(&params))
        .expect("pass-through");
    assert_eq!(prepared.resolution(), Resolution::PassThrough);
    assert_eq!(prepared.wire_name(), "src.module.method");
    assert!(
        std::ptr::eq(prepared.params().expect("params"), &*params),
        "not copied"
    );
    let spec = prepared.spec();
    assert!(!spec.in_catalog());
    assert!(!spec.cache().enabled);
    assert!(!spec.idempotent());
    assert!(!spec.envelope());
    assert_eq!(
        spec.metric_label(),
        pybridge_service::telemetry::PASS_THROUGH_LABEL
    );

    let strict = service_with(|b| b.mode(Mode::Strict));
    match strict.prepare("unknownMethod", Some(&params)) {
        Err(error @ Error::UnknownMethod { .. }) => {
            assert_eq!(error.code(), pybridge_protocol::ErrorCode::METHOD_NOT_FOUND);
            assert!(!error.is_retryable());
            assert_eq!(error.to_string(), "unknown method `unknownMethod`");
        }
        other => panic!("expected unknown method, got {other:?}"),
    }
    // Catalog methods work in strict mode, by name and by alias.
    assert!(strict.prepare("test.echo", Some(&params)).is_ok());
    assert!(strict.prepare("getPatternStatistics", None).is_ok());
}

#[test]
fn reserved_and_empty_method_names_are_rejected() {
    let service = service();
    for name in ["", "rpc.discover", "$/ping", "$/cancelRequest", "bad name"] {
        match service.prepare(name, None) {
            Err(error @ Error::ReservedMethod { .. }) => {
                assert_eq!(error.code(), pybridge_protocol::ErrorCode::METHOD_NOT_FOUND);
            }
            other => panic!("{name:?}: expected a reserved-name error, got {other:?}"),
        }
    }
}

#[test]
fn handles_are_cheap_clone_send_sync() {
    fn assert_handle<T: Clone + Send + Sync + std::fmt::Debug + 'static>() {}
    assert_handle::<Catalog>();
    assert_handle::<Service>();
    assert_handle::<pybridge_service::Prepared<'static>>();
    assert_handle::<std::sync::Arc<pybridge_service::MethodSpec>>();
    fn assert_error<T: std::error::Error + Send + Sync + 'static>() {}
    assert_error::<Error>();
    let service = service();
    let clone = service.clone();
    assert!(std::ptr::eq(
        service.catalog().get("test.echo").expect("echo").as_ref(),
        clone.catalog().get("test.echo").expect("echo").as_ref()
    ));
}

#[test]
fn families_without_an_implementation_are_listed_but_unavailable() {
    let service = Service::new(crate::builtin(), ServiceConfig::default());
    for family in pybridge_framework::UNAVAILABLE_FAMILIES {
        let methods: Vec<_> = service
            .catalog()
            .methods()
            .filter(|m| m.family() == *family)
            .collect();
        assert!(!methods.is_empty(), "{family}");
        for spec in methods {
            assert!(!spec.available(), "{}", spec.name());
            // By alias too: the error names the public name, never the wire name.
            let alias = spec.aliases().next().unwrap_or(spec.name());
            match service.prepare(alias, None) {
                Err(
                    error @ Error::UnknownMethod {
                        unavailable: true, ..
                    },
                ) => {
                    let text = error.to_string();
                    assert!(text.contains(spec.name()), "{text}");
                    assert!(!text.contains(spec.wire_name()), "{text}");
                }
                other => panic!("{}: {other:?}", spec.name()),
            }
        }
    }
    assert!(
        service
            .catalog()
            .get("pattern_learning.get_statistics")
            .is_some_and(|m| m.available())
    );
}

#[test]
fn a_framework_write_makes_its_familys_cached_reads_stale_and_nothing_else() {
    let service = Service::with_hooks(
        crate::builtin(),
        ServiceConfig::default(),
        pybridge_framework::hooks(false),
    );
    let write = service
        .catalog()
        .get("pattern_learning.record_pattern")
        .unwrap()
        .clone();
    let mut stale: Vec<&str> = Vec::new();
    let found = service.stale_after(&write);
    stale.extend(found.iter().map(|m| m.name()));
    stale.sort_unstable();
    assert_eq!(
        stale,
        [
            "pattern_learning.find_similar",
            "pattern_learning.get_recommendations",
            "pattern_learning.get_statistics"
        ]
    );
    // A user's method (not built in) has no such rule.
    let user = pybridge_framework::catalog_builder()
        .source(
            "mine.json",
            r#"{"family":"pattern_learning","methods":[{"name":"pattern_learning.mine","wire_name":"m","idempotent":false}]}"#,
        )
        .build()
        .unwrap();
    let service = Service::with_hooks(
        user,
        ServiceConfig::default(),
        pybridge_framework::hooks(false),
    );
    let mine = service
        .catalog()
        .get("pattern_learning.mine")
        .unwrap()
        .clone();
    assert!(service.stale_after(&mine).is_empty());
    // Without the framework's hooks, nothing is stale.
    assert!(crate::service().stale_after(&write).is_empty());
}
