//! The `tracing` layer of trace export: each span the [`super::Sampling`]
//! filter lets through keeps its OpenTelemetry state in the registry's
//! extensions, one plain struct, and is handed to the export processor as
//! the SDK's `SpanData` when it closes.
//!
//! A general-purpose bridge (tracing-opentelemetry) builds each span twice,
//! a builder while it is open and the SDK's span when it closes, behind a
//! lock of its own per span: a call's three spans cost the bridge about
//! 11 µs of CPU that way. Here the sampling decision is made once, the
//! attributes go into a vector sized for the span's fields, and nothing of
//! a span the sampler drops is kept but its context.
//!
//! The decision is made the first time the span's context is needed (a
//! child opens, the context is read for a worker's `_meta`, or the span
//! closes), so that a caller's context set after the span opened
//! ([`super::set_parent_from`]) still decides it, and it follows the
//! OpenTelemetry SDK's parent-based sampler: a span with a parent follows
//! the parent's decision and carries its trace state; a call that starts a
//! trace was drawn by the bridge before its span opened and is kept; any
//! other root is drawn by trace id at the configured ratio.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use opentelemetry::trace::{
    Event, Link, SpanContext, SpanKind, Status, TraceContextExt, TraceFlags, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SamplingDecision, ShouldSample, SpanData, SpanEvents,
    SpanLinks, SpanProcessor,
};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use pybridge_service::telemetry::fields::CALL_SPAN;

/// The most events and links one span keeps (the SDK's default limits);
/// later ones are counted as dropped.
const MAX_EVENTS: usize = 128;
const MAX_LINKS: usize = 128;

/// Fields that set the span's name, kind and status instead of becoming
/// attributes (the conventions tracing-opentelemetry set, so spans written
/// for it keep their meaning).
const NAME_FIELD: &str = "otel.name";
const KIND_FIELD: &str = "otel.kind";
const STATUS_CODE_FIELD: &str = "otel.status_code";
const STATUS_DESCRIPTION_FIELD: &str = "otel.status_description";
const STATUS_MESSAGE_FIELD: &str = "otel.status_message";

/// Runs a closure on the state of span `id` in the subscriber behind a
/// dispatcher; a function of the subscriber's type, chosen when the layer
/// is built, so that code holding only a [`tracing::Span`] reaches it.
type WithState = fn(&Dispatch, &Id, &mut dyn FnMut(&mut SpanState));

/// The layer that [`super::Telemetry::layer`] returns (behind its filter).
pub struct TraceLayer {
    processor: Arc<dyn SpanProcessor>,
    /// Set once export has shut down: spans decided later get no context,
    /// so no worker is handed a trace that will never be exported.
    shut: Arc<AtomicBool>,
    scope: InstrumentationScope,
    /// How a root other than a call's span is sampled.
    roots: Sampler,
    ids: RandomIdGenerator,
    with_state: WithState,
}

impl fmt::Debug for TraceLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TraceLayer")
            .field("scope", &self.scope.name())
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

impl TraceLayer {
    /// A layer for subscribers of type `S`, sending finished spans to
    /// `processor` until `shut` is set, sampling roots other than a call's
    /// at `ratio`.
    pub(super) fn new<S>(
        processor: Arc<dyn SpanProcessor>,
        shut: Arc<AtomicBool>,
        scope: &'static str,
        ratio: f64,
    ) -> Self
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        TraceLayer {
            processor,
            shut,
            scope: InstrumentationScope::builder(scope).build(),
            roots: Sampler::TraceIdRatioBased(ratio),
            ids: RandomIdGenerator::default(),
            with_state: with_state::<S>,
        }
    }

    /// The span's context, deciding it now if it is not yet.
    fn decide(&self, state: &mut SpanState) -> SpanContext {
        if let Some(cx) = &state.context {
            return cx.clone();
        }
        let parent = &state.parent;
        let cx = if self.shut.load(Ordering::Acquire) {
            SpanContext::NONE
        } else if parent.is_valid() {
            let flags = if parent.is_sampled() {
                parent.trace_flags().with_sampled(true)
            } else {
                TraceFlags::default()
            };
            SpanContext::new(
                parent.trace_id(),
                self.ids.new_span_id(),
                flags,
                false,
                parent.trace_state().clone(),
            )
        } else {
            let trace_id = self.ids.new_trace_id();
            let sampled = state.is_call
                || self
                    .roots
                    .should_sample(None, trace_id, &state.name, &state.kind, &[], &[])
                    .decision
                    == SamplingDecision::RecordAndSample;
            let flags = if sampled {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            };
            SpanContext::new(
                trace_id,
                self.ids.new_span_id(),
                flags,
                false,
                TraceState::NONE,
            )
        };
        if !cx.is_sampled() {
            // Never exported: let go of what was recorded before the decision.
            state.attributes = Vec::new();
            state.events = Vec::new();
            state.links = Vec::new();
        }
        state.context = Some(cx.clone());
        cx
    }

    /// The decided context of the parent of a span being opened: its
    /// explicit parent, else the current span when it is contextual, as this
    /// layer's filter sees them (an explicit parent the filter left out
    /// makes a root); for a contextual span outside any, the current
    /// OpenTelemetry context's span (an application's own instrumentation).
    fn parent_of<S>(&self, attrs: &Attributes<'_>, ctx: &Context<'_, S>) -> Option<SpanContext>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        let parent = if let Some(id) = attrs.parent() {
            ctx.span(id)
        } else if attrs.is_contextual() {
            let current = ctx.lookup_current();
            if current.is_none() {
                return opentelemetry::Context::map_current(|cx| {
                    cx.has_active_span()
                        .then(|| cx.span().span_context().clone())
                })
                .filter(SpanContext::is_valid);
            }
            current
        } else {
            None
        }?;
        let mut extensions = parent.extensions_mut();
        let state = extensions.get_mut::<SpanState>()?;
        Some(self.decide(state))
    }

    /// The span data of a closed span, when it is sampled.
    fn finish(&self, mut state: SpanState) -> Option<SpanData> {
        let span_context = self.decide(&mut state);
        if !span_context.is_sampled() {
            return None;
        }
        // Both are marked non-exhaustive: built from their defaults.
        let mut events = SpanEvents::default();
        events.events = state.events;
        events.dropped_count = state.dropped_events;
        let mut links = SpanLinks::default();
        links.links = state.links;
        links.dropped_count = state.dropped_links;
        // A description marks an error, as it did with tracing-opentelemetry,
        // unless the span's status says it succeeded.
        let status = match (state.status, state.status_description) {
            (Status::Error { .. } | Status::Unset, Some(description)) => {
                Status::Error { description }
            }
            (status, _) => status,
        };
        Some(SpanData {
            span_context,
            parent_span_id: state.parent.span_id(),
            parent_span_is_remote: state.parent.is_remote(),
            span_kind: state.kind,
            name: state.name,
            start_time: state.start,
            end_time: SystemTime::now(),
            attributes: state.attributes,
            dropped_attributes_count: 0,
            events,
            links,
            status,
            instrumentation_scope: self.scope.clone(),
        })
    }
}

fn with_state<S>(dispatch: &Dispatch, id: &Id, f: &mut dyn FnMut(&mut SpanState))
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let Some(span) = dispatch.downcast_ref::<S>().and_then(|s| s.span(id)) else {
        return;
    };
    let mut extensions = span.extensions_mut();
    if let Some(state) = extensions.get_mut::<SpanState>() {
        f(state);
    }
}

/// Runs `f` on `span`'s state, when a [`TraceLayer`] keeps one for it.
pub(super) fn with_span<R>(
    span: &tracing::Span,
    f: impl FnOnce(&TraceLayer, &mut SpanState) -> R,
) -> Option<R> {
    let mut f = Some(f);
    let mut out = None;
    span.with_subscriber(|(id, dispatch)| {
        if let Some(layer) = dispatch.downcast_ref::<TraceLayer>() {
            (layer.with_state)(dispatch, id, &mut |state| {
                if let Some(f) = f.take() {
                    out = Some(f(layer, state));
                }
            });
        }
    });
    out
}

/// The context of `span`, decided now if it is not yet.
pub(super) fn context_of(span: &tracing::Span) -> Option<SpanContext> {
    with_span(span, |layer, state| layer.decide(state))
}

/// Makes `parent` the parent of `span`, unless its context was already
/// decided (a child opened or its context was read): then it stays.
pub(super) fn set_parent(span: &tracing::Span, parent: SpanContext) {
    with_span(span, |_, state| {
        if state.context.is_none() {
            state.parent = parent;
        }
    });
}

/// One span's OpenTelemetry state, in the registry's extensions.
pub(super) struct SpanState {
    /// Decided once ([`TraceLayer::decide`]).
    context: Option<SpanContext>,
    /// The parent's context; [`SpanContext::NONE`] for a root.
    parent: SpanContext,
    /// Whether this is a call's span: one that starts a trace was drawn by
    /// the bridge before it opened, so the sampler keeps it.
    is_call: bool,
    name: Cow<'static, str>,
    kind: SpanKind,
    start: SystemTime,
    attributes: Vec<KeyValue>,
    events: Vec<Event>,
    dropped_events: u32,
    links: Vec<Link>,
    dropped_links: u32,
    status: Status,
    status_description: Option<Cow<'static, str>>,
}

impl SpanState {
    /// Whether what happens to the span is still worth keeping: until the
    /// decision, and after it when the span is sampled.
    fn recording(&self) -> bool {
        self.context.as_ref().is_none_or(SpanContext::is_sampled)
    }

    /// Sets what a field says; `again` for a field recorded after the span
    /// opened, whose value replaces any it had (a new span's fields are
    /// distinct).
    fn set(&mut self, value: FieldValue, again: bool) {
        match value {
            FieldValue::Attribute(kv) => {
                match again
                    .then(|| self.attributes.iter_mut().find(|a| a.key == kv.key))
                    .flatten()
                {
                    Some(existing) => *existing = kv,
                    None => self.attributes.push(kv),
                }
            }
            FieldValue::Name(name) => self.name = name,
            FieldValue::Kind(Some(kind)) => self.kind = kind,
            // Not a kind: the span keeps the one it had.
            FieldValue::Kind(None) => {}
            FieldValue::Status(status) => self.status = status,
            FieldValue::StatusDescription(description) => {
                self.status_description = Some(description);
            }
        }
    }
}

/// What one field of a span sets.
enum FieldValue {
    Attribute(KeyValue),
    Name(Cow<'static, str>),
    Kind(Option<SpanKind>),
    Status(Status),
    StatusDescription(Cow<'static, str>),
}

impl FieldValue {
    fn of(field: &Field, value: Value) -> FieldValue {
        let name = field.name();
        if !name.starts_with("otel.") {
            return FieldValue::Attribute(KeyValue::new(name, value));
        }
        match name {
            NAME_FIELD => FieldValue::Name(text(value)),
            KIND_FIELD => FieldValue::Kind(kind(&text(value))),
            STATUS_CODE_FIELD => FieldValue::Status(status(&text(value))),
            STATUS_DESCRIPTION_FIELD | STATUS_MESSAGE_FIELD => {
                FieldValue::StatusDescription(text(value))
            }
            name => FieldValue::Attribute(KeyValue::new(name, value)),
        }
    }
}

fn kind(text: &str) -> Option<SpanKind> {
    match text.to_ascii_lowercase().as_str() {
        "server" => Some(SpanKind::Server),
        "client" => Some(SpanKind::Client),
        "producer" => Some(SpanKind::Producer),
        "consumer" => Some(SpanKind::Consumer),
        "internal" => Some(SpanKind::Internal),
        _ => None,
    }
}

fn status(text: &str) -> Status {
    match text.to_ascii_lowercase().as_str() {
        "ok" => Status::Ok,
        "error" => Status::error(""),
        _ => Status::Unset,
    }
}

/// Where a [`Fields`] visitor puts what it reads.
trait Sink {
    fn put(&mut self, field: &Field, value: Value);
}

/// A new span's fields, read into its state.
impl Sink for SpanState {
    fn put(&mut self, field: &Field, value: Value) {
        self.set(FieldValue::of(field, value), false);
    }
}

/// Fields recorded on an open span, read before its state is locked;
/// without an allocation for the usual one field.
#[derive(Default)]
struct Recorded {
    first: Option<FieldValue>,
    rest: Vec<FieldValue>,
}

impl Sink for Recorded {
    fn put(&mut self, field: &Field, value: Value) {
        let value = FieldValue::of(field, value);
        match self.first {
            None => self.first = Some(value),
            Some(_) => self.rest.push(value),
        }
    }
}

/// An event's fields: `message` names the event, the rest are its
/// attributes; an `error` field (what `#[instrument(err)]` records) is the
/// `exception.message` of an event named `exception` when nothing else
/// names it, and the span's error status.
struct EventFields {
    name: Option<Cow<'static, str>>,
    error: Option<Cow<'static, str>>,
    attributes: Vec<KeyValue>,
}

impl Sink for EventFields {
    fn put(&mut self, field: &Field, value: Value) {
        match field.name() {
            "message" => self.name = Some(text(value)),
            "error" => {
                let message = text(value);
                self.attributes
                    .push(KeyValue::new("exception.message", message.to_string()));
                self.error = Some(message);
            }
            name => self.attributes.push(KeyValue::new(name, value)),
        }
    }
}

fn text(value: Value) -> Cow<'static, str> {
    match value {
        Value::String(s) => Cow::Owned(s.into()),
        other => Cow::Owned(other.to_string()),
    }
}

/// Reads fields as OpenTelemetry values: integers as 64-bit integers when
/// they fit, anything else that is not a number, a boolean or a string as
/// its `Debug` text.
struct Fields<'a, T: Sink>(&'a mut T);

impl<T: Sink> Visit for Fields<'_, T> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.put(field, Value::Bool(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.put(field, Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.put(field, int_or_text(value));
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        self.0.put(field, int_or_text(value));
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        self.0.put(field, int_or_text(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.put(field, Value::F64(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.put(field, Value::from(value.to_owned()));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.put(field, Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.put(field, Value::from(format!("{value:?}")));
    }
}

/// An integer as an OpenTelemetry integer (64-bit signed) when it fits,
/// else as its decimal text.
fn int_or_text<T: Copy + fmt::Display + TryInto<i64>>(value: T) -> Value {
    match value.try_into() {
        Ok(v) => Value::I64(v),
        Err(_) => Value::from(value.to_string()),
    }
}

impl<S> Layer<S> for TraceLayer
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let parent = self.parent_of(attrs, &ctx);
        let meta = attrs.metadata();
        let mut state = SpanState {
            context: None,
            parent: parent.unwrap_or(SpanContext::NONE),
            is_call: meta.name() == CALL_SPAN,
            name: Cow::Borrowed(meta.name()),
            kind: SpanKind::Internal,
            start: SystemTime::now(),
            // Room for the fields recorded later too.
            attributes: Vec::with_capacity(attrs.fields().len()),
            events: Vec::new(),
            dropped_events: 0,
            links: Vec::new(),
            dropped_links: 0,
            status: Status::Unset,
            status_description: None,
        };
        // Read before the state is in the registry: a field's `Debug` may
        // itself log, and no lock may be held then.
        attrs.record(&mut Fields(&mut state));
        span.extensions_mut().insert(state);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut fields = Recorded::default();
        values.record(&mut Fields(&mut fields));
        let mut extensions = span.extensions_mut();
        if let Some(state) = extensions.get_mut::<SpanState>()
            && state.recording()
        {
            for value in fields.first.into_iter().chain(fields.rest) {
                state.set(value, true);
            }
        }
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        let (Some(span), Some(cause)) = (ctx.span(id), ctx.span(follows)) else {
            return;
        };
        let cause = {
            let mut extensions = cause.extensions_mut();
            let Some(state) = extensions.get_mut::<SpanState>() else {
                return;
            };
            self.decide(state)
        };
        let mut extensions = span.extensions_mut();
        if let Some(state) = extensions.get_mut::<SpanState>()
            && state.recording()
        {
            if state.links.len() < MAX_LINKS {
                state.links.push(Link::with_context(cause));
            } else {
                state.dropped_links = state.dropped_links.saturating_add(1);
            }
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let meta = event.metadata();
        let mut fields = EventFields {
            name: None,
            error: None,
            attributes: Vec::with_capacity(meta.fields().len() + 2),
        };
        fields
            .attributes
            .push(KeyValue::new("level", meta.level().as_str()));
        fields
            .attributes
            .push(KeyValue::new("target", meta.target()));
        event.record(&mut Fields(&mut fields));
        let name = match (fields.name, &fields.error) {
            (Some(name), _) => name,
            (None, Some(_)) => Cow::Borrowed("exception"),
            (None, None) => Cow::Borrowed(meta.name()),
        };
        let otel_event = Event::new(name, SystemTime::now(), fields.attributes, 0);
        let mut extensions = span.extensions_mut();
        let Some(state) = extensions.get_mut::<SpanState>() else {
            return;
        };
        if !state.recording() {
            return;
        }
        if state.status == Status::Unset {
            if let Some(error) = fields.error {
                state.status = Status::error(error);
            } else if *meta.level() == Level::ERROR {
                state.status = Status::error("");
            }
        }
        if state.events.len() < MAX_EVENTS {
            state.events.push(otel_event);
        } else {
            state.dropped_events = state.dropped_events.saturating_add(1);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let state = span.extensions_mut().remove::<SpanState>();
        // The processor is called with no lock of the registry held.
        if let Some(data) = state.and_then(|state| self.finish(state)) {
            self.processor.on_end(data);
        }
    }
}

#[cfg(test)]
pub(super) mod tests;
