//! The MCP server: a hand-written `ServerHandler` whose tools come from the
//! registry at run time, whose calls go through the bridge, and whose
//! prompts and resource describe the methods.

// MCP logging is deprecated (SEP-2577) but still what clients show.
#![allow(deprecated)]

use std::sync::{Arc, Mutex};

use pybridge::{Bridge, CallOptions, Error, ErrorKind};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, Implementation, ListPromptsResult, ListResourcesResult, ListToolsResult,
    LoggingLevel, LoggingMessageNotificationParam, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ServerCapabilities, ServerConfig,
    SetLevelRequestParams, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use tracing::Instrument;

use super::logs;
use super::prompts;
use super::tools::{ARGS, ArgsShape, Entry, OutputShape, Tools, structured};

const INSTRUCTIONS: &str = "Each tool is a method of the Python worker behind pybridge. \
Arguments are checked against the tool's input schema before the worker sees them; an invalid \
call comes back as a tool error that names every problem, so fix the arguments and call again. \
Tools marked idempotent are safe to repeat and their results may come from a cache. \
The resource pybridge://methods lists every method with its policy and schemas.";

/// The server one MCP session talks to; cheap to clone (the streamable HTTP
/// service makes one per session).
#[derive(Debug, Clone)]
pub(crate) struct Server {
    inner: Arc<Inner>,
    /// The session's `logging/setLevel` (2025-11-25 and earlier); a
    /// 2026-07-28 request carries its own in `_meta`.
    log_level: Arc<Mutex<Option<LoggingLevel>>>,
}

#[derive(Debug)]
struct Inner {
    bridge: Bridge,
    tools: Tools,
    /// The largest result a call may return (`gateway.max_response`).
    max_result: usize,
    expose_error_details: bool,
    /// Cancelled when the server stops: calls still running are dropped.
    closing: CancellationToken,
}

impl Server {
    pub(crate) fn new(
        bridge: Bridge,
        config: &pybridge::Config,
        closing: CancellationToken,
    ) -> Server {
        let tools = Tools::build(bridge.catalog(), &config.mcp);
        Server {
            inner: Arc::new(Inner {
                bridge,
                tools,
                max_result: usize::try_from(config.gateway.max_response.as_u64())
                    .unwrap_or(usize::MAX),
                expose_error_details: config.gateway.expose_error_details,
                closing,
            }),
            log_level: Arc::default(),
        }
    }

    /// A handler for another session: the same tools, its own log level.
    pub(crate) fn session(&self) -> Server {
        Server {
            inner: Arc::clone(&self.inner),
            log_level: Arc::default(),
        }
    }

    /// The level a call's `$/log` lines are sent from, if any.
    fn log_threshold(&self, cx: &RequestContext<RoleServer>) -> Option<LoggingLevel> {
        cx.meta.log_level().or_else(|| {
            *self
                .log_level
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }

    pub(crate) fn tool_count(&self) -> usize {
        self.inner.tools.len()
    }

    /// One tool call: a tool error for anything the model should see, a
    /// protocol error only for an unknown tool.
    async fn call(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let inner = &self.inner;
        let Some(entry) = inner.tools.get(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{}`", request.name),
                None,
            ));
        };
        let params = match params_of(entry.args, request.arguments) {
            Ok(params) => params,
            Err(message) => return Ok(tool_error(message, json!({"code": "invalid_params"}))),
        };
        let options = CallOptions::new();
        let threshold = self.log_threshold(&cx);
        let mut route = threshold.map(|_| logs::route());
        let span = match &route {
            Some(route) => tracing::info_span!("mcp.tool_call", route = route.key),
            None => tracing::Span::none(),
        };
        let call = inner
            .bridge
            .call_with(&entry.method, params.as_deref(), &options)
            .instrument(span);
        tokio::pin!(call);
        // Dropping the call future is the cancellation: the pool sends the
        // worker `$/cancelRequest` for a request dropped before its answer.
        let outcome = loop {
            tokio::select! {
                outcome = &mut call => break outcome,
                Some(line) = next_line(&mut route) => {
                    send_log(&cx, threshold, line).await;
                }
                () = cx.ct.cancelled() => {
                    tracing::debug!(method = %entry.method, id = %cx.id, "call cancelled by the client");
                    return Ok(tool_error("the call was cancelled".into(), json!({"code": "cancelled"})));
                }
                () = inner.closing.cancelled() => {
                    return Ok(tool_error("the server is shutting down".into(), json!({"code": "shutting_down"})));
                }
            }
        };
        // Lines the worker wrote just before its answer.
        if let Some(route) = &mut route {
            while let Ok(line) = route.lines.try_recv() {
                send_log(&cx, threshold, line).await;
            }
        }
        match outcome {
            Ok(reply) if reply.result.get().len() > inner.max_result => Ok(tool_error(
                format!(
                    "the result is over the limit of {} bytes (gateway.max_response)",
                    inner.max_result
                ),
                json!({"code": "response_too_large", "retryable": false}),
            )),
            Ok(reply) => Ok(success(entry, reply.result.get())),
            Err(err) => Ok(self.failure(entry, &err, &cx.id.to_string())),
        }
    }

    /// A failed call as a tool error: the gateway's safe message (no
    /// traceback, no worker stderr) unless details are exposed.
    fn failure(&self, entry: &Entry, err: &Error, request_id: &str) -> CallToolResult {
        let object = if self.inner.expose_error_details {
            err.to_error_object()
        } else {
            err.to_safe_error_object()
        };
        let level_is_warn = matches!(
            err.kind(),
            ErrorKind::RemoteError
                | ErrorKind::WorkerFailed
                | ErrorKind::InvalidResult
                | ErrorKind::DecodeError
        );
        if level_is_warn {
            tracing::warn!(request_id, method = %entry.method, code = err.kind().as_str(), error = %err.report(), "tool call failed");
        } else {
            tracing::debug!(request_id, method = %entry.method, code = err.kind().as_str(), error = %err.report(), "tool call failed");
        }
        let mut data = object
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d.get()).ok())
            .unwrap_or_else(|| json!({"code": err.kind().as_str()}));
        if !self.inner.expose_error_details
            && let Value::Object(map) = &mut data
        {
            map.insert("request_id".into(), json!(request_id));
        }
        // Invalid params: the model needs every violation to fix its call.
        if let Error::Rejected { method, source } = err
            && !source.violations().is_empty()
        {
            let lines: Vec<String> = source.violations().iter().map(|v| v.to_string()).collect();
            if let Value::Object(map) = &mut data {
                map.insert("violations".into(), json!(lines));
            }
            let message = format!("invalid params for `{method}`:\n- {}", lines.join("\n- "));
            return tool_error(message, data);
        }
        tool_error(object.message.clone(), data)
    }
}

/// The next `$/log` line of a routed call; never, without a route.
async fn next_line(route: &mut Option<logs::Route>) -> Option<logs::Line> {
    match route {
        Some(route) => route.lines.recv().await,
        None => std::future::pending().await,
    }
}

/// Sends a `$/log` line as an MCP log message when it is at or above the
/// threshold; a client that went away just misses it.
async fn send_log(
    cx: &RequestContext<RoleServer>,
    threshold: Option<LoggingLevel>,
    line: logs::Line,
) {
    let level = match line.level {
        tracing::Level::ERROR => LoggingLevel::Error,
        tracing::Level::WARN => LoggingLevel::Warning,
        tracing::Level::INFO => LoggingLevel::Info,
        _ => LoggingLevel::Debug,
    };
    if threshold.is_none_or(|t| rank(level) < rank(t)) {
        return;
    }
    let mut data = json!({"message": line.message});
    if let Some(fields) = line.fields {
        data["fields"] = fields;
    }
    let param = LoggingMessageNotificationParam::new(level, data).with_logger("worker");
    if let Err(err) = cx.peer.notify_logging_message(param).await {
        tracing::debug!(error = %err, "log message not delivered");
    }
}

/// Severity order (`LoggingLevel` has none of its own).
fn rank(level: LoggingLevel) -> u8 {
    match level {
        LoggingLevel::Debug => 0,
        LoggingLevel::Info => 1,
        LoggingLevel::Notice => 2,
        LoggingLevel::Warning => 3,
        LoggingLevel::Error => 4,
        LoggingLevel::Critical => 5,
        LoggingLevel::Alert => 6,
        LoggingLevel::Emergency => 7,
    }
}

/// The tool's arguments as the method's params.
fn params_of(
    shape: ArgsShape,
    arguments: Option<rmcp::model::JsonObject>,
) -> Result<Option<Box<serde_json::value::RawValue>>, String> {
    let value = match (shape, arguments) {
        (_, None) => return Ok(None),
        (ArgsShape::Object, Some(arguments)) => Value::Object(arguments),
        (ArgsShape::Positional, Some(mut arguments)) => match arguments.remove(ARGS) {
            None => return Ok(None),
            Some(value @ Value::Array(_)) if arguments.is_empty() => value,
            Some(_) if !arguments.is_empty() => {
                return Err(format!(
                    "invalid params: only `{ARGS}` is expected, not {}",
                    arguments
                        .keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            Some(_) => return Err(format!("invalid params: `{ARGS}` must be an array")),
        },
    };
    Ok(Some(
        serde_json::value::to_raw_value(&value).expect("a JSON value always serializes"),
    ))
}

/// A result as structured content plus its text: the JSON text, or the
/// string itself for a string result.
fn success(entry: &Entry, result: &str) -> CallToolResult {
    let value: Value = match serde_json::from_str(result) {
        Ok(value) => value,
        Err(err) => {
            return tool_error(
                format!("the result is not valid JSON: {err}"),
                json!({"code": "invalid_result"}),
            );
        }
    };
    if entry.output == OutputShape::Direct && entry.spec.validate_result(&value).is_err() {
        return tool_error(
            "the method's result does not match its result schema".into(),
            json!({"code": "invalid_result", "retryable": false}),
        );
    }
    let text = match &value {
        Value::String(s) => s.clone(),
        _ => result.to_owned(),
    };
    let Some(content) = structured(value, entry.output) else {
        return tool_error(
            "the method's result does not match its result schema".into(),
            json!({"code": "invalid_result", "retryable": false}),
        );
    };
    let mut out = CallToolResult::structured(content);
    out.content = vec![ContentBlock::text(text)];
    out
}

/// A tool error: the message as text, and `{"error": {message, ...data}}`
/// as structured content.
fn tool_error(message: String, data: Value) -> CallToolResult {
    let mut error = match data {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    error.insert("message".into(), message.clone().into());
    let mut out = CallToolResult::structured_error(json!({ "error": error }));
    out.content = vec![ContentBlock::text(message)];
    out
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_prompts()
            .enable_resources()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("pybridge", env!("CARGO_PKG_VERSION"))
                    .with_title("pybridge: Python methods as tools"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        *self
            .log_level
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(request.level);
        Ok(())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.inner.tools.list().to_vec(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.inner.tools.tool(name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        cx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.call(request, cx).await.map(CallToolResponse::from)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(prompts::list(
            &self.inner.tools,
        )))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        prompts::get(&self.inner.tools, &request).map(GetPromptResponse::from)
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        Ok(ListResourcesResult::with_all_items(prompts::resources()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _cx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        prompts::read(self.inner.bridge.catalog(), &request.uri).map(ReadResourceResponse::from)
    }
}

#[cfg(test)]
mod tests;
