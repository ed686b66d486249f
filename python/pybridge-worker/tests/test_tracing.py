"""The caller's trace context (``_meta``) on ``ctx.trace_context``, inline,
on the thread pool and on the event loop; never part of the params."""

import unittest

import pybridge_worker as pw
from pybridge_worker import tracing_support
from worker_support import Proc, error, result

TRACED = """
from pybridge_worker import *

w = Worker("traced")

@w.method("seen", context=True)
def seen(ctx, **params):
    return {"trace": ctx.trace_context, "params": params}

@w.method("seen-inline", context=True, inline=True)
def seen_inline(ctx, **params):
    return {"trace": ctx.trace_context, "params": params}

@w.method("seen-async", context=True)
async def seen_async(ctx, **params):
    return {"trace": ctx.trace_context, "params": params}

@w.method("lazy")
def lazy():
    return current_context().trace_context

@w.method("add")
def add(a, b):
    return a + b

raise SystemExit(w.main())
"""

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class TestTraceContext(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.w = Proc(script=TRACED)

    @classmethod
    def tearDownClass(cls):
        cls.w.close()

    def call_with_meta(self, method, params, meta):
        msg = self.w.req(method, params)
        msg["_meta"] = meta
        self.w.send(msg)
        resp = self.w.recv()
        self.assertEqual(resp["id"], msg["id"])
        self.assertNotIn("_meta", resp, "a worker never echoes _meta")
        return resp

    def test_every_dispatch_mode_sees_the_trace_context_and_not_in_its_params(self):
        meta = {"traceparent": PARENT, "tracestate": "vendor=value"}
        for method in ("seen", "seen-inline", "seen-async"):
            got = result(self, self.call_with_meta(method, {"x": 1}, meta))
            self.assertEqual(got, {"trace": meta, "params": {"x": 1}}, method)

    def test_without_meta_there_is_no_trace_context(self):
        for method in ("seen", "seen-inline", "seen-async"):
            self.assertEqual(result(self, self.w.call(method, {"x": 2})),
                             {"trace": None, "params": {"x": 2}}, method)
        self.assertIsNone(result(self, self.w.call("lazy")))

    def test_an_empty_tracestate_and_unknown_members_are_left_out(self):
        meta = {"traceparent": PARENT, "tracestate": "", "future": {"x": 1}}
        got = result(self, self.call_with_meta("seen", {}, meta))
        self.assertEqual(got["trace"], {"traceparent": PARENT})
        self.assertEqual(result(self, self.call_with_meta("lazy", None, meta)), {"traceparent": PARENT})

    def test_a_meta_without_a_traceparent_or_of_the_wrong_shape_is_ignored(self):
        for meta in ({}, {"tracestate": "a=b"}, {"traceparent": 7}, "text", [1]):
            got = result(self, self.call_with_meta("seen", {}, meta))
            self.assertIsNone(got["trace"], meta)

    def test_params_that_do_not_bind_are_still_invalid_params_when_traced(self):
        meta = {"traceparent": PARENT}
        self.assertEqual(result(self, self.call_with_meta("add", {"a": 1, "b": 2}, meta)), 3)
        error(self, self.call_with_meta("add", {"a": 1}, meta), pw.INVALID_PARAMS)


class TestTraceContextParsing(unittest.TestCase):
    def test_only_string_members_are_kept(self):
        self.assertEqual(tracing_support.trace_context({"traceparent": PARENT, "tracestate": "a=b"}),
                         {"traceparent": PARENT, "tracestate": "a=b"})
        self.assertEqual(tracing_support.trace_context({"traceparent": PARENT, "tracestate": 3}),
                         {"traceparent": PARENT})
        self.assertIsNone(tracing_support.trace_context({"traceparent": ""}))
        self.assertIsNone(tracing_support.trace_context(None))


if __name__ == "__main__":
    unittest.main()
