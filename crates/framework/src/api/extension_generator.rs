//! Extension generator: requests, results and the family handle.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::methods::extension_generator as names;
use super::{Backend, Domain, family};

family! {
    /// Extension generator: requirement analysis, path recommendation and
    /// generation of SQLite extensions.
    ExtensionGenerator {
        /// Analyses a description into requirements and a recommended path.
        fn analyze_requirements(AnalyzeRequirementsRequest) -> AnalyzeRequirementsResult = names::ANALYZE_REQUIREMENTS;
        /// Recommends a generation path for given requirements.
        fn recommend_path(RecommendPathRequest) -> RecommendPathResult = names::RECOMMEND_PATH;
        /// Generates an extension with its tests and documentation (120 s deadline).
        fn generate(GenerateRequest) -> GenerateResult = names::GENERATE;
        /// Generates an extension from a description alone (120 s deadline).
        fn quick_generate(QuickGenerateRequest) -> GenerateResult = names::QUICK_GENERATE;
    }
}

/// Params of `extension_generator.analyze_requirements`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalyzeRequirementsRequest {
    /// What the extension must do (10 to 10 000 characters).
    pub description: String,
    /// Its domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Domain>,
    /// Performance targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_requirements: Option<PerformanceRequirements>,
}

impl AnalyzeRequirementsRequest {
    /// A request with only the description.
    pub fn new(description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            domain: None,
            performance_requirements: None,
        }
    }
}

/// Performance targets of an extension; all non-negative.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerformanceRequirements {
    /// Operations per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ops_per_sec: Option<f64>,
    /// Milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency: Option<f64>,
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<f64>,
}

/// Result of `extension_generator.analyze_requirements`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AnalyzeRequirementsResult {
    /// What the analysis found.
    pub requirements: AnalyzedRequirements,
    /// The generation path to take.
    pub recommended_path: String,
    /// Confidence, 0 to 1.
    pub confidence: f64,
    /// Other paths worth considering.
    #[serde(default)]
    pub alternatives: Vec<Value>,
}

/// Requirements found by the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AnalyzedRequirements {
    /// The domain.
    pub domain: String,
    /// The suggested backend.
    pub backend: String,
    /// `simple`, `medium` or `complex`.
    pub complexity: String,
    /// How long generation should take, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_time: Option<String>,
}

/// Params of `extension_generator.recommend_path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendPathRequest {
    /// What is needed.
    pub requirements: PathRequirements,
    /// Limits on the generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<PathConstraints>,
}

/// Requirements for a path recommendation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathRequirements {
    /// The domain (1 to 100 characters; any domain, not only the library's).
    pub domain: String,
    /// How complex the extension is.
    pub complexity: Complexity,
    /// The backend, if already chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// What the extension must do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// How complex an extension is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Complexity {
    /// Simple.
    Simple,
    /// Medium.
    Medium,
    /// Complex.
    Complex,
}

/// Limits on a generation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathConstraints {
    /// Seconds available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<f64>,
    /// A resource limit, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_limit: Option<String>,
}

/// Result of `extension_generator.recommend_path`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecommendPathResult {
    /// The generation path to take.
    pub recommended_path: String,
    /// The backend to use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Confidence, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rationale: Option<String>,
    /// How long generation should take, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_time: Option<String>,
    /// Other paths worth considering.
    #[serde(default)]
    pub alternatives: Vec<Value>,
}

/// Params of `extension_generator.generate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateRequest {
    /// What the extension must do (10 to 10 000 characters).
    pub description: String,
    /// Implementation language (schema default python); sent as `backend_language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    /// What to optimise for (schema default balanced).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_level: Option<PerformanceLevel>,
    /// Generate tests (schema default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_tests: Option<bool>,
    /// Generate documentation (schema default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_documentation: Option<bool>,
    /// Generate benchmarks (schema default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_benchmarks: Option<bool>,
    /// The caller's data, passed to the generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl GenerateRequest {
    /// A request with only the description.
    pub fn new(description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            backend: None,
            performance_level: None,
            include_tests: None,
            include_documentation: None,
            include_benchmarks: None,
            metadata: None,
        }
    }
}

/// What a generated extension is optimised for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerformanceLevel {
    /// A balance (the schema's default).
    Balanced,
    /// Speed.
    Speed,
    /// Memory.
    Memory,
    /// Speed of development.
    Development,
}

/// Params of `extension_generator.quick_generate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuickGenerateRequest {
    /// What the extension must do (10 to 10 000 characters).
    pub description: String,
    /// Implementation language (schema default python); sent as `backend_language`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
}

impl QuickGenerateRequest {
    /// A request with only the description.
    pub fn new(description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            backend: None,
        }
    }
}

/// Result of `extension_generator.generate` and `quick_generate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GenerateResult {
    /// Whether generation succeeded.
    pub success: bool,
    /// Where the extension was written (on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_path: Option<String>,
    /// The backend used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// The files written.
    #[serde(default)]
    pub generated_files: Vec<String>,
    /// The test suite's file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_suite: Option<String>,
    /// Whether the generated tests passed (absent when none ran).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests_passed: Option<bool>,
    /// How many generated tests ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tests_run: Option<u64>,
    /// Expected performance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance: Option<ExtensionPerformance>,
    /// What went wrong (on failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Expected performance of a generated extension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ExtensionPerformance {
    /// Operations per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimated_ops_per_sec: Option<f64>,
    /// Memory use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_usage: Option<f64>,
}
