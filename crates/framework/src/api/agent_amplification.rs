//! Agent amplification: requests, results and the family handle.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::family;
use super::methods::agent_amplification as names;

family! {
    /// Agent amplification: dynamic tools, decision learning, peer
    /// consultation and capability evolution.
    AgentAmplification {
        /// Creates a tool the agent can call later.
        fn create_tool(CreateToolRequest) -> CreateToolResult = names::CREATE_TOOL;
        /// Records a decision and its outcome.
        fn record_decision(RecordDecisionRequest) -> RecordDecisionResult = names::RECORD_DECISION;
        /// Asks peer agents with the right expertise.
        fn consult_peers(ConsultPeersRequest) -> ConsultPeersResult = names::CONSULT_PEERS;
        /// Records metrics of a capability over time.
        fn track_evolution(TrackEvolutionRequest) -> TrackEvolutionResult = names::TRACK_EVOLUTION;
    }
}

/// Params of `agent_amplification.create_tool`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToolRequest {
    /// Tool name: a letter or `_`, then letters, digits, `_`, `.` or `-`; at
    /// most 100 characters.
    pub name: String,
    /// What the tool does (1 to 5000 characters).
    pub description: String,
    /// The capability the agent asks for, in its own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capability_request: Option<String>,
    /// JSON Schema of the tool's input; sent exactly as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Map<String, Value>>,
    /// Source code of the tool, if the caller supplies it (up to 1 000 000 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    /// Context for the generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
    /// Priority of the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// The caller's data, stored as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl CreateToolRequest {
    /// A request with the required fields.
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
            capability_request: None,
            parameters: None,
            implementation: None,
            context: None,
            priority: None,
            metadata: None,
        }
    }
}

/// Priority of a tool request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Low.
    Low,
    /// Normal.
    Normal,
    /// High.
    High,
}

/// Result of `agent_amplification.create_tool`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CreateToolResult {
    /// Whether the tool was created.
    pub success: bool,
    /// The tool's id (on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_id: Option<String>,
    /// The tool's name (on success).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_name: Option<String>,
    /// The hook name under which the tool can be called, when the framework
    /// registers one (the original dropped this field).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_name: Option<String>,
    /// The tool's source code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    /// Generated tests.
    #[serde(default)]
    pub tests: Vec<Value>,
    /// Generated documentation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation: Option<String>,
    /// Performance figures of the tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub performance_metadata: Option<Map<String, Value>>,
    /// What went wrong (on failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Params of `agent_amplification.record_decision`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordDecisionRequest {
    /// The caller's id for the decision (1 to 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    /// The decision taken (1 to 10 000 characters).
    pub decision: String,
    /// How it turned out.
    pub outcome: DecisionOutcome,
    /// Confidence in the decision, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// The caller's context, stored as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
    /// The caller's data, stored as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl RecordDecisionRequest {
    /// A request with the required fields.
    pub fn new(decision: impl Into<String>, outcome: DecisionOutcome) -> Self {
        Self {
            decision_id: None,
            decision: decision.into(),
            outcome,
            confidence: None,
            context: None,
            metadata: None,
        }
    }
}

/// How a decision turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionOutcome {
    /// It worked.
    Success,
    /// It did not.
    Failure,
    /// In part.
    Partial,
}

/// Result of `agent_amplification.record_decision`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecordDecisionResult {
    /// Whether it was recorded.
    pub success: bool,
    /// The decision's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_id: Option<String>,
    /// When, as an RFC 3339 date-time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
}

/// Params of `agent_amplification.consult_peers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultPeersRequest {
    /// The question (1 to 5000 characters).
    pub question: String,
    /// The expertise wanted (1 to 200 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expertise_area: Option<String>,
    /// Context for the peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Map<String, Value>>,
    /// Most peers to ask, 1 to 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_peers: Option<u32>,
    /// Smallest confidence of an answer, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_confidence: Option<f64>,
}

impl ConsultPeersRequest {
    /// A request with only the question.
    pub fn new(question: impl Into<String>) -> Self {
        Self {
            question: question.into(),
            expertise_area: None,
            context: None,
            max_peers: None,
            min_confidence: None,
        }
    }
}

/// Result of `agent_amplification.consult_peers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ConsultPeersResult {
    /// The question asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<String>,
    /// The peers' answers.
    pub responses: Vec<PeerResponse>,
    /// The answer most peers agree on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus: Option<String>,
    /// Confidence in the consensus, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

/// One peer's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PeerResponse {
    /// The peer.
    pub agent_id: String,
    /// Its answer.
    pub answer: String,
    /// Its confidence, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
    /// Its expertise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expertise_area: Option<String>,
}

/// Params of `agent_amplification.track_evolution`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackEvolutionRequest {
    /// The capability (1 to 200 characters).
    pub capability_id: String,
    /// Measured values by name; at least one.
    pub metrics: BTreeMap<String, f64>,
    /// When they were measured, as an RFC 3339 date-time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The caller's data, stored as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl TrackEvolutionRequest {
    /// A request with the required fields.
    pub fn new(capability_id: impl Into<String>, metrics: BTreeMap<String, f64>) -> Self {
        Self {
            capability_id: capability_id.into(),
            metrics,
            timestamp: None,
            metadata: None,
        }
    }
}

/// Result of `agent_amplification.track_evolution`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TrackEvolutionResult {
    /// Whether the metrics were recorded.
    pub success: bool,
    /// The capability.
    pub capability_id: String,
    /// When, as an RFC 3339 date-time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recorded_at: Option<String>,
    /// Measurements recorded for the capability so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_points: Option<u64>,
    /// The trend, in words (`improving`, `stable`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend: Option<String>,
}
