//! Pattern learning: requests, results and the family handle.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::methods::pattern_learning as names;
use super::{Domain, family};

family! {
    /// Pattern learning: recommendations, similarity search, statistics and
    /// recording of extension patterns.
    PatternLearning {
        /// Recommends proven patterns for a domain or a description (cached).
        fn get_recommendations(GetRecommendationsRequest) -> GetRecommendationsResult = names::GET_RECOMMENDATIONS;
        /// Finds recorded patterns similar to a description (cached).
        fn find_similar(FindSimilarRequest) -> FindSimilarResult = names::FIND_SIMILAR;
        /// Counts and ranks recorded patterns (cached).
        fn get_statistics(GetStatisticsRequest) -> GetStatisticsResult = names::GET_STATISTICS;
        /// Records a pattern that worked.
        fn record_pattern(RecordPatternRequest) -> RecordPatternResult = names::RECORD_PATTERN;
    }
}

/// Params of `pattern_learning.get_recommendations`; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetRecommendationsRequest {
    /// Only patterns of this domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Domain>,
    /// What the extension should do (1 to 5000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Smallest confidence score, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_confidence: Option<f64>,
    /// Most recommendations, 1 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u32>,
}

/// Result of `pattern_learning.get_recommendations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GetRecommendationsResult {
    /// The recommendations, best first.
    pub recommendations: Vec<Recommendation>,
    /// Patterns considered.
    pub total_patterns: u64,
    /// Time the framework spent, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_time_ms: Option<f64>,
}

/// One recommended pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Recommendation {
    /// The pattern's name.
    pub pattern_name: String,
    /// Confidence, 0 to 1.
    pub confidence_score: f64,
    /// Its domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Observed success rate, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<f64>,
    /// Average execution time in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_performance_ms: Option<f64>,
    /// Times the pattern was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_count: Option<u64>,
    /// What the pattern is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Things to avoid with it.
    #[serde(default)]
    pub anti_patterns: Vec<String>,
}

/// Params of `pattern_learning.find_similar`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindSimilarRequest {
    /// The description to compare with (10 to 5000 characters).
    pub description: String,
    /// Smallest similarity, 0 to 1 (schema default 0.7). Sent as
    /// `similarity_threshold`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Most patterns, 1 to 50 (schema default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u32>,
    /// Only patterns of this domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Domain>,
}

impl FindSimilarRequest {
    /// A request with only the description.
    pub fn new(description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            threshold: None,
            max_results: None,
            domain: None,
        }
    }
}

/// Result of `pattern_learning.find_similar`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FindSimilarResult {
    /// The similar patterns, most similar first.
    pub similar_patterns: Vec<SimilarPattern>,
    /// How many were found.
    pub total_found: u64,
}

/// One similar pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SimilarPattern {
    /// The pattern's name.
    pub pattern_name: String,
    /// Similarity, 0 to 1.
    pub similarity_score: f64,
    /// What the pattern is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Observed success rate, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<f64>,
}

/// Params of `pattern_learning.get_statistics`; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetStatisticsRequest {
    /// Only patterns of this domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<Domain>,
    /// Only patterns used in this window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_range: Option<TimeRange>,
    /// Order of `top_patterns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort_by: Option<SortBy>,
}

/// A time window: named, or explicit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum TimeRange {
    /// `"day"`, `"week"`, `"month"` or `"all"`.
    Named(NamedWindow),
    /// RFC 3339 date-times; at least one bound.
    Range {
        /// Start of the range.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start: Option<String>,
        /// End of the range.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end: Option<String>,
    },
}

/// A named time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamedWindow {
    /// The last day.
    Day,
    /// The last week.
    Week,
    /// The last month.
    Month,
    /// All time.
    All,
}

/// Order of the top patterns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// Most used first.
    Usage,
    /// Highest success rate first.
    SuccessRate,
    /// Fastest first.
    Performance,
    /// Most recently used first.
    Recent,
}

/// Result of `pattern_learning.get_statistics`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GetStatisticsResult {
    /// Patterns counted.
    pub total_patterns: u64,
    /// Pattern count per domain.
    pub domains: BTreeMap<String, u64>,
    /// Average success rate, 0 to 1; `None` when there is no pattern.
    pub avg_success_rate: Option<f64>,
    /// Total uses of all patterns.
    pub total_usage: u64,
    /// The top patterns, in the requested order.
    #[serde(default)]
    pub top_patterns: Vec<TopPattern>,
}

/// One of the top patterns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TopPattern {
    /// The pattern's name.
    pub pattern_name: String,
    /// Times it was used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_count: Option<u64>,
    /// Observed success rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_rate: Option<f64>,
}

/// Params of `pattern_learning.record_pattern`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordPatternRequest {
    /// Name of the pattern (1 to 200 characters).
    pub pattern_name: String,
    /// Its domain.
    pub domain: Domain,
    /// Observed success rate, 0 to 1.
    pub success_rate: f64,
    /// Average execution time in milliseconds (sent as `avg_performance_ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance: Option<f64>,
    /// What the pattern is (up to 2000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The caller's data, stored as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl RecordPatternRequest {
    /// A request with the required fields.
    pub fn new(pattern_name: impl Into<String>, domain: Domain, success_rate: f64) -> Self {
        Self {
            pattern_name: pattern_name.into(),
            domain,
            success_rate,
            performance: None,
            description: None,
            metadata: None,
        }
    }
}

/// Result of `pattern_learning.record_pattern`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecordPatternResult {
    /// Whether the pattern was recorded.
    pub success: bool,
    /// The pattern's id in the library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern_id: Option<PatternId>,
    /// True when an existing pattern was updated rather than created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<bool>,
}

/// A pattern id: the framework may use numbers or strings.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PatternId {
    /// A numeric id.
    Number(i64),
    /// A string id.
    Text(String),
}
