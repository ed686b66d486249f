//! The four families of the SQLite Extensions Framework as MCP prompts (how
//! an agent uses pattern learning, extension generation, agent
//! amplification and agent context through this server's tools), and the
//! method catalog as resources.
//!
//! A family's prompt is listed only while at least one of its methods is a
//! tool: with a worker of one's own, the framework's families are not served.

use pybridge::Catalog;
use rmcp::ErrorData;
use rmcp::model::{
    GetPromptRequestParams, GetPromptResult, Prompt, PromptArgument, PromptMessage,
    ReadResourceResult, Resource, ResourceContents, Role,
};
use serde_json::Value;

use super::tools::Tools;

/// The catalog: every method with its policy and schemas, as `methods --json`.
pub(crate) const METHODS_URI: &str = "pybridge://methods";
/// The same registry as an OpenRPC 1.3.2 document.
pub(crate) const OPENRPC_URI: &str = "pybridge://openrpc";

/// One family's prompt.
struct FamilyPrompt {
    /// The family, which is also the prompt's name.
    family: &'static str,
    title: &'static str,
    description: &'static str,
    /// The one argument: what the agent is working on.
    argument: (&'static str, &'static str),
    /// The guidance; `{goal}` is replaced by the argument.
    text: &'static str,
}

const FAMILIES: [FamilyPrompt; 4] = [
    FamilyPrompt {
        family: "pattern_learning",
        title: "Reuse what worked before (pattern learning)",
        description: "Find proven patterns for a task before designing one, and record the outcome afterwards.",
        argument: (
            "task",
            "What you are about to build or solve, in a sentence or two.",
        ),
        text: "Goal: {goal}\n\n\
Before designing a solution, consult the pattern library:\n\
1. Call `pattern_learning.get_recommendations` with a `description` of the goal (and a `domain` \
such as finance, web or data when one fits). Each recommendation carries a success rate and \
measured performance: prefer patterns with a high success rate and many uses.\n\
2. If nothing fits, call `pattern_learning.find_similar` with the same description to widen the \
search; `pattern_learning.get_statistics` shows which domains the library knows well.\n\
3. Build on the best pattern, saying which one you used and why.\n\
4. When the work is done and its outcome is known, call `pattern_learning.record_pattern` with \
a `pattern_name`, the `domain`, the `success_rate` you observed (0 to 1), a `description` and \
the `performance` you measured, so the next agent starts from your result. Record failures too: a low success rate is useful knowledge.\n\n\
Reads are cached for a minute and safe to repeat; recording a pattern is a write and clears them.",
    },
    FamilyPrompt {
        family: "extension_generator",
        title: "Generate a SQLite extension (extension generation)",
        description: "Turn a description into requirements, a generation path and a tested extension.",
        argument: ("description", "What the extension must do, in plain words."),
        text: "Goal: generate an extension that does this: {goal}\n\n\
Work in steps and show the result of each:\n\
1. Call `extension_generator.analyze_requirements` with the description. Read the requirements \
and the recommended path back to the user and resolve anything ambiguous before generating.\n\
2. Call `extension_generator.recommend_path` with those `requirements` (and any \
`constraints`) when you need to compare paths: performance, portability, effort.\n\
3. Call `extension_generator.generate` with the `description` and the chosen `backend` and \
`performance_level`. It writes the extension, its tests and documentation and runs the tests; \
it may take a minute or two. \
`extension_generator.quick_generate` does all of this from the description alone when the \
user wants a draft quickly.\n\
4. Report the files written and the test results. If tests failed, explain why and propose a \
change to the requirements rather than calling generate again unchanged.\n\n\
Generation is not idempotent: each call writes new files, so do not repeat a call that failed \
with a timeout before checking what it produced.",
    },
    FamilyPrompt {
        family: "agent_amplification",
        title: "Learn from decisions and peers (agent amplification)",
        description: "Record decisions and outcomes, consult peer agents, and track a capability over time.",
        argument: (
            "decision",
            "The decision in front of you, or the capability you want to improve.",
        ),
        text: "Situation: {goal}\n\n\
Use the amplification tools to make this decision better than a single attempt would:\n\
1. Call `agent_amplification.consult_peers` with the `question` and the `expertise_area` it \
needs; weigh their answers by their stated confidence.\n\
2. Decide, and call `agent_amplification.record_decision` with the `decision`, its `outcome` \
once known, your `confidence`, and the `context` (the options you rejected and why). Decisions \
recorded with outcomes are how later agents learn.\n\
3. When you find yourself repeating a procedure, call `agent_amplification.create_tool` to \
save it as a tool for later.\n\
4. To show progress on a capability, call `agent_amplification.track_evolution` with its \
`capability_id` and the `metrics` you measured.\n\n\
Consulting peers is safe to repeat; the other calls record something each time.",
    },
    FamilyPrompt {
        family: "agent_context",
        title: "Fit the answer to the agent (agent context)",
        description: "Detect the calling agent, respect its token budget, and format content for it.",
        argument: (
            "content",
            "The content you are going to hand to another agent or model.",
        ),
        text: "Content to deliver: {goal}\n\n\
Before handing content to another agent or model:\n\
1. Call `agent_context.detect_type` with `hints` about the agent (its name, user agent, \
environment) to learn its type, tier and features.\n\
2. Call `agent_context.get_capabilities` with its `agent_type` for its limits, and \
`agent_context.get_token_budget` with the `conversation` so far to learn how much room is left.\n\
3. Call `agent_context.format_for_agent` with the `content` and the `agent_type`, and deliver \
what it returns: it trims and restructures the content to fit the budget and the agent's features.\n\n\
These calls only read and are cached briefly; repeat them whenever the agent or the \
conversation changes.",
    },
];

/// The prompts of the families that have tools.
pub(crate) fn list(tools: &Tools) -> Vec<Prompt> {
    FAMILIES
        .iter()
        .filter(|f| tools.has_family(f.family))
        .map(|f| {
            let argument = PromptArgument::new(f.argument.0)
                .with_description(f.argument.1)
                .with_required(true);
            Prompt::new(f.family, Some(f.description), Some(vec![argument])).with_title(f.title)
        })
        .collect()
}

/// One prompt, its argument filled in.
pub(crate) fn get(
    tools: &Tools,
    request: &GetPromptRequestParams,
) -> Result<GetPromptResult, ErrorData> {
    let Some(family) = FAMILIES
        .iter()
        .find(|f| f.family == request.name && tools.has_family(f.family))
    else {
        return Err(ErrorData::invalid_params(
            format!("unknown prompt `{}`", request.name),
            None,
        ));
    };
    let goal = request
        .arguments
        .as_ref()
        .and_then(|args| args.get(family.argument.0))
        .map(|value| match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .filter(|goal| !goal.trim().is_empty())
        .ok_or_else(|| {
            ErrorData::invalid_params(
                format!(
                    "the prompt `{}` needs the argument `{}`",
                    family.family, family.argument.0
                ),
                None,
            )
        })?;
    let text = family.text.replace("{goal}", goal.trim());
    Ok(
        GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
            .with_description(family.description),
    )
}

/// The catalog resources.
pub(crate) fn resources() -> Vec<Resource> {
    vec![
        Resource::new(METHODS_URI, "methods")
            .with_title("The method catalog")
            .with_description(
                "Every method of the registry: its source, policy (idempotent, cache, timeout), \
                 whether a worker serves it, and its params and result schemas.",
            )
            .with_mime_type("application/json"),
        Resource::new(OPENRPC_URI, "openrpc")
            .with_title("The methods as OpenRPC")
            .with_description("The registry as an OpenRPC 1.3.2 document.")
            .with_mime_type("application/json"),
    ]
}

/// The text of a resource.
pub(crate) fn read(catalog: &Catalog, uri: &str) -> Result<ReadResourceResult, ErrorData> {
    let document = match uri {
        METHODS_URI => Value::Array(
            catalog
                .methods()
                .map(|s| crate::methods::describe(s))
                .collect(),
        ),
        OPENRPC_URI => pybridge::openrpc::document(catalog),
        _ => {
            return Err(ErrorData::resource_not_found(
                format!("no resource `{uri}`"),
                None,
            ));
        }
    };
    let text = serde_json::to_string_pretty(&document).expect("a JSON value always serializes");
    Ok(ReadResourceResult::new(vec![
        ResourceContents::text(text, uri).with_mime_type("application/json"),
    ]))
}
