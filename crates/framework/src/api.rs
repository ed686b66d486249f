//! The typed Rust API of the SQLite Extensions Framework: request and result
//! structs for the 16 methods of its four main families, called through any
//! [`Call`] implementation (the bridge supplies one).
//!
//! ```text
//! framework.pattern_learning().get_recommendations(&request).await
//! ```
//!
//! The structs use the public snake_case names, which the method schemas
//! describe; the service renames them for the worker. Results are decoded
//! after envelope unwrapping and result renames.

mod agent_amplification;
mod agent_context;
mod common;
mod extension_generator;
mod pattern_learning;

use serde::Serialize;
use serde::de::DeserializeOwned;

use pybridge_service::{Call, Error};

pub use agent_amplification::{
    AgentAmplification, ConsultPeersRequest, ConsultPeersResult, CreateToolRequest,
    CreateToolResult, DecisionOutcome, PeerResponse, Priority, RecordDecisionRequest,
    RecordDecisionResult, TrackEvolutionRequest, TrackEvolutionResult,
};
pub use agent_context::{
    AgentContext, ConversationMessage, DetectTypeRequest, DetectTypeResult, FormatForAgentRequest,
    FormatForAgentResult, GetCapabilitiesRequest, GetCapabilitiesResult, GetTokenBudgetRequest,
    GetTokenBudgetResult, OutputFormat,
};
pub use common::{Backend, Domain};
pub use extension_generator::{
    AnalyzeRequirementsRequest, AnalyzeRequirementsResult, AnalyzedRequirements, Complexity,
    ExtensionGenerator, ExtensionPerformance, GenerateRequest, GenerateResult, PathConstraints,
    PathRequirements, PerformanceLevel, PerformanceRequirements, QuickGenerateRequest,
    RecommendPathRequest, RecommendPathResult,
};
pub use pattern_learning::{
    FindSimilarRequest, FindSimilarResult, GetRecommendationsRequest, GetRecommendationsResult,
    GetStatisticsRequest, GetStatisticsResult, NamedWindow, PatternId, PatternLearning,
    Recommendation, RecordPatternRequest, RecordPatternResult, SimilarPattern, SortBy, TimeRange,
    TopPattern,
};

/// The SQLite Extensions Framework over a [`Call`] implementation, grouped
/// by family. Cheap to clone when `C` is.
#[derive(Debug, Clone)]
pub struct Framework<C> {
    call: C,
}

impl<C: Call> Framework<C> {
    /// The framework over `call`.
    pub fn new(call: C) -> Self {
        Self { call }
    }

    /// The [`Call`] implementation.
    pub fn caller(&self) -> &C {
        &self.call
    }

    /// Pattern learning: recommendations, similarity, statistics, recording.
    pub fn pattern_learning(&self) -> PatternLearning<'_, C> {
        PatternLearning { call: &self.call }
    }

    /// Extension generator: analysis, path recommendation, generation.
    pub fn extension_generator(&self) -> ExtensionGenerator<'_, C> {
        ExtensionGenerator { call: &self.call }
    }

    /// Agent amplification: dynamic tools, decisions, peers, evolution.
    pub fn agent_amplification(&self) -> AgentAmplification<'_, C> {
        AgentAmplification { call: &self.call }
    }

    /// Agent context: detection, capabilities, token budget, formatting.
    pub fn agent_context(&self) -> AgentContext<'_, C> {
        AgentContext { call: &self.call }
    }
}

/// The public names of the 16 typed methods, as the catalog has them.
pub mod methods {
    /// Pattern learning.
    pub mod pattern_learning {
        /// Recommend proven patterns.
        pub const GET_RECOMMENDATIONS: &str = "pattern_learning.get_recommendations";
        /// Find similar patterns.
        pub const FIND_SIMILAR: &str = "pattern_learning.find_similar";
        /// Pattern statistics.
        pub const GET_STATISTICS: &str = "pattern_learning.get_statistics";
        /// Record a successful pattern.
        pub const RECORD_PATTERN: &str = "pattern_learning.record_pattern";
    }
    /// Extension generator.
    pub mod extension_generator {
        /// Analyse requirements.
        pub const ANALYZE_REQUIREMENTS: &str = "extension_generator.analyze_requirements";
        /// Recommend a generation path.
        pub const RECOMMEND_PATH: &str = "extension_generator.recommend_path";
        /// Generate an extension.
        pub const GENERATE: &str = "extension_generator.generate";
        /// Generate an extension from a description alone.
        pub const QUICK_GENERATE: &str = "extension_generator.quick_generate";
    }
    /// Agent amplification.
    pub mod agent_amplification {
        /// Create a dynamic tool.
        pub const CREATE_TOOL: &str = "agent_amplification.create_tool";
        /// Record a decision outcome.
        pub const RECORD_DECISION: &str = "agent_amplification.record_decision";
        /// Consult peer agents.
        pub const CONSULT_PEERS: &str = "agent_amplification.consult_peers";
        /// Track a capability's evolution.
        pub const TRACK_EVOLUTION: &str = "agent_amplification.track_evolution";
    }
    /// Agent context.
    pub mod agent_context {
        /// Detect the agent type.
        pub const DETECT_TYPE: &str = "agent_context.detect_type";
        /// An agent's capabilities.
        pub const GET_CAPABILITIES: &str = "agent_context.get_capabilities";
        /// An agent's token budget.
        pub const GET_TOKEN_BUDGET: &str = "agent_context.get_token_budget";
        /// Format content for an agent.
        pub const FORMAT_FOR_AGENT: &str = "agent_context.format_for_agent";
    }

    /// All 16, in catalog order.
    pub const ALL: [&str; 16] = [
        pattern_learning::GET_RECOMMENDATIONS,
        pattern_learning::FIND_SIMILAR,
        pattern_learning::GET_STATISTICS,
        pattern_learning::RECORD_PATTERN,
        extension_generator::ANALYZE_REQUIREMENTS,
        extension_generator::RECOMMEND_PATH,
        extension_generator::GENERATE,
        extension_generator::QUICK_GENERATE,
        agent_amplification::CREATE_TOOL,
        agent_amplification::RECORD_DECISION,
        agent_amplification::CONSULT_PEERS,
        agent_amplification::TRACK_EVOLUTION,
        agent_context::DETECT_TYPE,
        agent_context::GET_CAPABILITIES,
        agent_context::GET_TOKEN_BUDGET,
        agent_context::FORMAT_FOR_AGENT,
    ];
}

/// Encodes the request, calls, decodes the result.
async fn invoke<C, Req, Res>(call: &C, method: &'static str, request: &Req) -> Result<Res, C::Error>
where
    C: Call + ?Sized,
    Req: Serialize + Sync + ?Sized,
    Res: DeserializeOwned,
{
    let params = serde_json::value::to_raw_value(request)
        .map_err(|source| Error::EncodeParams { method, source })?;
    let raw = call.call(method, params).await?;
    serde_json::from_str(raw.get()).map_err(|source| Error::DecodeResult { method, source }.into())
}

/// Defines a family handle and its typed methods.
macro_rules! family {
    (
        $(#[$doc:meta])*
        $handle:ident {
            $( $(#[$mdoc:meta])* fn $fn_name:ident($req:ty) -> $res:ty = $name:path; )*
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $handle<'f, C> {
            pub(super) call: &'f C,
        }

        impl<C> Clone for $handle<'_, C> {
            fn clone(&self) -> Self {
                *self
            }
        }

        impl<C> Copy for $handle<'_, C> {}

        impl<C: pybridge_service::Call> $handle<'_, C> {
            $(
                $(#[$mdoc])*
                ///
                /// # Errors
                /// The [`Call`](pybridge_service::Call)'s error: invalid params (the
                /// service's `InvalidParams`), a failed call, or a result
                /// that does not decode.
                pub async fn $fn_name(&self, request: &$req) -> Result<$res, C::Error> {
                    super::invoke(self.call, $name, request).await
                }
            )*
        }
    };
}
pub(crate) use family;
