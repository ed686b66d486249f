"""The caller's W3C trace context, and OpenTelemetry spans around methods.

The bridge sends its trace context in each request's top-level ``_meta``
member (docs/protocol.md, section 9). A method sees it as
``ctx.trace_context``. When the ``opentelemetry`` API is importable in the
worker's environment, each such request's method runs inside a span (kind
SERVER, named after the method) whose parent is the bridge's span, so the
worker's spans join the caller's trace; the worker's own tracer provider,
set up as usual, exports them. Nothing here is imported by a worker that
receives no trace context, and the SDK keeps no dependency on OpenTelemetry.
"""

import functools

__all__ = ["trace_context", "traced"]

#: (trace module, propagator) once imported; False when not importable.
_api = None


def _otel():
    global _api
    if _api is None:
        try:
            from opentelemetry import trace
            from opentelemetry.trace.propagation.tracecontext import (
                TraceContextTextMapPropagator,
            )
        except ImportError:
            _api = False
        else:
            _api = (trace, TraceContextTextMapPropagator())
    return _api


def trace_context(meta):
    """The ``traceparent`` and ``tracestate`` strings of a ``_meta`` member,
    as a dict (``tracestate`` left out when absent or empty), or None when it
    carries no ``traceparent``."""
    if type(meta) is not dict:
        return None
    traceparent = meta.get("traceparent")
    if type(traceparent) is not str or not traceparent:
        return None
    context = {"traceparent": traceparent}
    tracestate = meta.get("tracestate")
    if type(tracestate) is str and tracestate:
        context["tracestate"] = tracestate
    return context


def traced(spec, rid, meta):
    """``spec`` for one request that carried ``meta``: a copy that holds the
    trace context and, when OpenTelemetry is importable, runs the method in a
    span continuing it. ``spec`` itself when ``meta`` holds no context."""
    context = trace_context(meta)
    if context is None:
        return spec
    fn = spec.fn
    api = _otel()
    if api:
        fn = _in_span(fn, spec.name, rid, context, spec.is_async, api)
    copy = type(spec)(spec.name, fn, spec.raw, spec.context, spec.inline, spec.is_async,
                      spec.manifest)
    copy._signature = spec._signature
    copy.trace_context = context
    return copy


def _in_span(fn, name, rid, context, is_async, api):
    trace, propagator = api
    attributes = {
        "rpc.system.name": "jsonrpc",
        "rpc.method": name,
        "jsonrpc.request.id": str(rid),
    }

    def start():
        parent = propagator.extract(context)
        tracer = trace.get_tracer("pybridge_worker")
        return tracer.start_as_current_span(name, context=parent, kind=trace.SpanKind.SERVER,
                                            attributes=attributes)

    # functools.wraps keeps the method's signature visible (``__wrapped__``),
    # so params that do not bind are still told apart from a TypeError inside.
    if is_async:
        @functools.wraps(fn)
        async def run_async(*args, **kwargs):
            with start():
                return await fn(*args, **kwargs)

        return run_async

    @functools.wraps(fn)
    def run(*args, **kwargs):
        with start():
            return fn(*args, **kwargs)

    return run
