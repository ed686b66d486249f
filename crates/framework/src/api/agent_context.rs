//! Agent context: requests, results and the family handle.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::family;
use super::methods::agent_context as names;

family! {
    /// Agent context: what agent is calling, what it can do, and how to talk to it.
    AgentContext {
        /// Detects the calling agent's type, tier and features (cached).
        fn detect_type(DetectTypeRequest) -> DetectTypeResult = names::DETECT_TYPE;
        /// Describes an agent's capabilities and limits (cached).
        fn get_capabilities(GetCapabilitiesRequest) -> GetCapabilitiesResult = names::GET_CAPABILITIES;
        /// Computes an agent's token budget for a conversation (cached).
        fn get_token_budget(GetTokenBudgetRequest) -> GetTokenBudgetResult = names::GET_TOKEN_BUDGET;
        /// Formats content for an agent.
        fn format_for_agent(FormatForAgentRequest) -> FormatForAgentResult = names::FORMAT_FOR_AGENT;
    }
}

/// Params of `agent_context.detect_type`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectTypeRequest {
    /// Hints for the detection (environment, user agent, ...); the original
    /// dropped them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hints: Option<Map<String, Value>>,
}

/// Result of `agent_context.detect_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DetectTypeResult {
    /// The agent type (`claude_code`, ...).
    pub agent_type: String,
    /// What it can do.
    pub capabilities: Vec<String>,
    /// Its token budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_budget: Option<u64>,
    /// Its tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// Feature flags.
    #[serde(default)]
    pub features: Map<String, Value>,
    /// Confidence of the detection, 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f64>,
}

/// Params of `agent_context.get_capabilities`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetCapabilitiesRequest {
    /// The agent (1 to 100 characters); the detected one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_type: Option<String>,
    /// Include the details object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_details: Option<bool>,
}

/// Result of `agent_context.get_capabilities`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GetCapabilitiesResult {
    /// The agent type.
    pub agent_type: String,
    /// What it can do.
    pub capabilities: Vec<String>,
    /// Context window, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Longest answer, in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u64>,
    /// Whether it can call tools.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports_tools: Option<bool>,
    /// Whether it can read images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports_vision: Option<bool>,
    /// Whether it can stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supports_streaming: Option<bool>,
    /// What it cannot do.
    #[serde(default)]
    pub limitations: Vec<String>,
    /// How to work with it.
    #[serde(default)]
    pub recommended_practices: Vec<String>,
    /// Details, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Map<String, Value>>,
}

/// Params of `agent_context.get_token_budget`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetTokenBudgetRequest {
    /// The agent (1 to 100 characters); the detected one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_type: Option<String>,
    /// The tier (1 to 50 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The conversation so far (at most 10 000 messages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Vec<ConversationMessage>>,
    /// The system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Include a breakdown by part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_breakdown: Option<bool>,
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationMessage {
    /// Who said it (`user`, `assistant`, ...; 1 to 50 characters).
    pub role: String,
    /// What was said.
    pub content: String,
}

/// Result of `agent_context.get_token_budget`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GetTokenBudgetResult {
    /// The agent type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_type: Option<String>,
    /// The tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The budget, in tokens.
    pub max_tokens: u64,
    /// Tokens used by the conversation and system prompt.
    pub used_tokens: u64,
    /// Tokens left (negative when over budget).
    pub remaining_tokens: i64,
    /// Share of the budget used, in percent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage_used: Option<f64>,
    /// What to do, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<String>,
    /// Tokens by part, when asked for.
    #[serde(default)]
    pub breakdown: BTreeMap<String, u64>,
}

/// Params of `agent_context.format_for_agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatForAgentRequest {
    /// The text to format (up to 1 000 000 characters).
    pub content: String,
    /// The agent (1 to 100 characters); the detected one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_type: Option<String>,
    /// The output format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<OutputFormat>,
}

impl FormatForAgentRequest {
    /// A request with only the content.
    pub fn new(content: impl Into<String>) -> Self {
        Self {
            content: content.into(),
            agent_type: None,
            format: None,
        }
    }
}

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// Markdown.
    Markdown,
    /// Plain text.
    Plain,
    /// JSON.
    Json,
    /// XML.
    Xml,
}

/// Result of `agent_context.format_for_agent`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FormatForAgentResult {
    /// The formatted content.
    pub formatted: String,
    /// The format used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// The agent it was formatted for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_type: Option<String>,
    /// Details of the formatting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}
