//! A worker's `$/log` lines, routed to the MCP tool call they belong to.
//!
//! The pool re-emits each `$/log` as a `tracing` event with the worker's
//! fields (a method's `ctx.log` adds `request_id`, the id of the request on
//! the wire). A tool call that asked for log messages runs its bridge call
//! inside an `mcp.tool_call` span carrying a route; the bridge opens its
//! `pybridge.call` span, with the correlation id (the first request's id on
//! the wire), inside it. This layer joins the two: a line whose
//! `request_id` is the correlation id of a routed call goes to that call's
//! bounded channel (a full channel drops the line; logs never slow a call).
//! Lines from a retried attempt carry another id and are not routed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use serde_json::Value;
use tokio::sync::mpsc;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Filter, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The span a routed tool call runs in.
pub(crate) const CALL_SPAN: &str = "mcp.tool_call";
/// The bridge's span of one call (`pybridge_service::telemetry::call_span`).
const BRIDGE_SPAN: &str = "pybridge.call";
/// Where the pool emits a worker's `$/log` lines.
const LOG_TARGET: &str = "pybridge_pool::process";
/// The lines a call may have waiting before more are dropped.
const CAPACITY: usize = 64;

/// One `$/log` line.
#[derive(Debug)]
pub(crate) struct Line {
    pub(crate) level: Level,
    pub(crate) message: String,
    pub(crate) fields: Option<Value>,
}

/// A tool call's route: lines arrive on `lines` while it lives.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) key: u64,
    pub(crate) lines: mpsc::Receiver<Line>,
}

impl Drop for Route {
    fn drop(&mut self) {
        let mut routes = routes();
        routes.calls.remove(&self.key);
        let key = self.key;
        routes.wire.retain(|_, k| *k != key);
        if routes.calls.is_empty() {
            ROUTED.store(false, Ordering::Relaxed);
            tracing::callsite::rebuild_interest_cache();
        }
    }
}

/// Whether any route is open: the bridge's span is of interest only then.
///
/// A per-layer filter that answers "sometimes" for a span's callsite makes
/// the registry build that span on every call even when the filter then
/// turns it down (tracing-subscriber 0.3 disables a span only when all 64
/// filter slots do). So the bridge's span is "never" while no tool call
/// asked for logs, and the callsites' interest is rebuilt when the first
/// route opens and the last one closes, under the routes' lock, so the two
/// cannot pass each other.
static ROUTED: AtomicBool = AtomicBool::new(false);

/// Opens a route for one tool call.
pub(crate) fn route() -> Route {
    let (tx, lines) = mpsc::channel(CAPACITY);
    let mut routes = routes();
    routes.next += 1;
    let key = routes.next;
    routes.calls.insert(key, tx);
    if !ROUTED.swap(true, Ordering::Relaxed) {
        tracing::callsite::rebuild_interest_cache();
    }
    Route { key, lines }
}

#[derive(Debug, Default)]
struct Routes {
    next: u64,
    calls: HashMap<u64, mpsc::Sender<Line>>,
    /// Correlation id on the wire → route.
    wire: HashMap<i64, u64>,
}

/// One table for the process: the subscriber, like the routes, is global.
fn routes() -> MutexGuard<'static, Routes> {
    static ROUTES: OnceLock<Mutex<Routes>> = OnceLock::new();
    let lock = ROUTES.get_or_init(Mutex::default).lock();
    // A panic while holding the lock leaves plain maps behind; keep using them.
    lock.unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The layer, with its own filter: only the two spans and the log events.
pub(crate) fn layer<S>() -> impl Layer<S> + Send + Sync
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    LogRouter.with_filter(Only)
}

#[derive(Debug)]
struct Only;

impl<S> Filter<S> for Only
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    /// Fixed for every callsite but the bridge's span: the default,
    /// "sometimes", would have the registry build every span of the
    /// process, the gateway's included, for nobody.
    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_span() {
            match meta.name() {
                CALL_SPAN => Interest::always(),
                BRIDGE_SPAN if ROUTED.load(Ordering::Relaxed) => Interest::sometimes(),
                _ => Interest::never(),
            }
        } else if is_log_line(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if meta.is_span() {
            match meta.name() {
                CALL_SPAN => true,
                // The bridge opens this span for every call, the gateway's
                // `/rpc` calls too; a span this filter enables is built in
                // the registry and entered on every poll of the call. Only
                // one inside a routed tool call has lines to route.
                BRIDGE_SPAN => cx
                    .lookup_current()
                    .is_some_and(|span| span.scope().any(|s| s.name() == CALL_SPAN)),
                _ => false,
            }
        } else {
            is_log_line(meta)
        }
    }
}

/// A worker's `$/log` line, as the pool emits it.
fn is_log_line(meta: &Metadata<'_>) -> bool {
    meta.target() == LOG_TARGET && meta.fields().field("fields").is_some()
}

#[derive(Debug)]
struct LogRouter;

/// The route of an `mcp.tool_call` span, kept in its extensions.
#[derive(Debug, Clone, Copy)]
struct RouteKey(u64);
/// The correlation id of a routed `pybridge.call` span.
#[derive(Debug, Clone, Copy)]
struct Wire(i64);

impl<S> Layer<S> for LogRouter
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        let Some(span) = cx.span(id) else { return };
        let mut numbers = Numbers::default();
        attrs.record(&mut numbers);
        if attrs.metadata().name() == CALL_SPAN {
            if let Some(key) = numbers.route {
                span.extensions_mut().insert(RouteKey(key));
            }
            return;
        }
        let Some(correlation) = numbers.correlation_id else {
            return;
        };
        let key = span
            .scope()
            .skip(1)
            .find_map(|parent| parent.extensions().get::<RouteKey>().copied());
        if let Some(RouteKey(key)) = key {
            routes().wire.insert(correlation, key);
            span.extensions_mut().insert(Wire(correlation));
        }
    }

    fn on_close(&self, id: Id, cx: Context<'_, S>) {
        let wire = cx
            .span(&id)
            .and_then(|span| span.extensions().get::<Wire>().copied());
        if let Some(Wire(correlation)) = wire {
            routes().wire.remove(&correlation);
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, _cx: Context<'_, S>) {
        let mut fields = LogFields::default();
        event.record(&mut fields);
        let parsed = fields
            .fields
            .as_deref()
            .and_then(|f| serde_json::from_str::<Value>(f).ok());
        let Some(request_id) = parsed
            .as_ref()
            .and_then(|f| f.get("request_id"))
            .and_then(Value::as_i64)
        else {
            return;
        };
        let routes = routes();
        let Some(sender) = routes
            .wire
            .get(&request_id)
            .and_then(|key| routes.calls.get(key))
        else {
            return;
        };
        let line = Line {
            level: *event.metadata().level(),
            message: fields.message.unwrap_or_default(),
            fields: parsed,
        };
        let _ = sender.try_send(line);
    }
}

#[derive(Debug, Default)]
struct Numbers {
    route: Option<u64>,
    correlation_id: Option<i64>,
}

impl Visit for Numbers {
    fn record_u64(&mut self, field: &Field, value: u64) {
        match field.name() {
            "route" => self.route = Some(value),
            "correlation_id" => self.correlation_id = i64::try_from(value).ok(),
            _ => {}
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        match field.name() {
            "route" => self.route = u64::try_from(value).ok(),
            "correlation_id" => self.correlation_id = Some(value),
            _ => {}
        }
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn std::fmt::Debug) {}
}

/// The `fields` and `message` of a `$/log` event; the event's own format
/// text ("worker log") is also named `message`, and is not the line.
#[derive(Debug, Default)]
struct LogFields {
    fields: Option<String>,
    message: Option<String>,
}

impl Visit for LogFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "fields" => self.fields = Some(value.to_owned()),
            "message" if self.message.is_none() => self.message = Some(value.to_owned()),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" && self.message.is_none() && text != "worker log" {
            self.message = Some(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::Registry;
    use tracing_subscriber::layer::SubscriberExt;

    use super::{BRIDGE_SPAN, CALL_SPAN, layer, route, routes};

    fn bridge_span() -> tracing::Span {
        tracing::debug_span!(target: "pybridge::call", "pybridge.call", correlation_id = 7_i64)
    }

    #[test]
    fn the_bridges_span_is_built_inside_a_routed_tool_call_only() {
        assert_eq!(BRIDGE_SPAN, "pybridge.call");
        assert_eq!(CALL_SPAN, "mcp.tool_call");
        let subscriber = Registry::default().with(layer());
        tracing::subscriber::with_default(subscriber, || {
            // A gateway's call, or a tool call nobody asked logs of.
            assert!(bridge_span().is_disabled());
            let other = tracing::info_span!("http.request");
            assert!(other.is_disabled());
            // A tool call that asked for logs.
            let open = route();
            let tool = tracing::info_span!("mcp.tool_call", route = open.key);
            assert!(!tool.is_disabled());
            tool.in_scope(|| {
                let span = bridge_span();
                assert!(!span.is_disabled());
                assert_eq!(routes().wire.get(&7), Some(&open.key));
                // Deeper in the tool call, too.
                span.in_scope(|| assert!(!bridge_span().is_disabled()));
            });
            assert!(routes().wire.is_empty(), "the span's close unroutes it");
            // Beside it, a gateway's call is not routed (the registry may
            // build its span while a route is open).
            let beside = bridge_span();
            assert!(routes().wire.is_empty());
            drop(beside);
            let second = route();
            drop(open);
            // One route is still open: its call's span is built.
            let tool = tracing::info_span!("mcp.tool_call", route = second.key);
            tool.in_scope(|| assert!(!bridge_span().is_disabled()));
            drop(second);
            tool.in_scope(|| assert!(bridge_span().is_disabled()));
        });
    }
}
