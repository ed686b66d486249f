"""A worker written for the test: binding, raw params, context, logging, threads."""

import unittest

import pybridge_worker as pw
from worker_support import Proc, SharedWorkerCase, error, result


CUSTOM = """
import os, sys, threading, time
from pybridge_worker import *

w = Worker("custom", "9.9.9", max_frame=4096)

@w.method("add")
def add(a, b=10):
    return a + b

@w.method
def bare():
    return "bare"

@w.method("raw", raw=True)
def raw(params):
    return {"type": type(params).__name__, "params": params}

@w.method("ctx", context=True)
def ctx_method(ctx, x=None):
    return {"id": ctx.id, "method": ctx.method, "cancelled": ctx.cancelled, "same": current_context() is ctx,
            "notification": ctx.is_notification}

@w.method("lazy-ctx")
def lazy_ctx():
    ctx = current_context()
    return {"id": ctx.id, "method": ctx.method}

@w.method("inner-typeerror")
def inner_typeerror(x):
    return len(x)

@w.method("unserializable")
def unserializable():
    return {"s": {1, 2}}

@w.method("nan")
def nan():
    return float("nan")

@w.method("big")
def big(n):
    return "x" * n

@w.method("exit")
def exit_():
    sys.exit(3)

@w.method("rpc-data")
def rpc_data():
    raise RpcError("custom", -32010, {"hint": "check input", "type": "Overridden"}, recoverable=False)

@w.method("log-from-thread")
def log_from_thread():
    t = threading.Thread(target=lambda: log("error", "from a thread", n=1))
    t.start()
    t.join()
    return "logged"

@w.method("chatty", context=True)
def chatty(ctx, n, size):
    for i in range(n):
        ctx.log("info", "x" * size, i=i)
    return n

@w.method("ctx-log", context=True)
def ctx_log(ctx):
    ctx.log("info", "hi", k=1)
    return "ok"

@w.method("where-inline", inline=True)
def where_inline():
    return threading.current_thread() is threading.main_thread()

@w.method("where")
def where():
    return threading.current_thread() is threading.main_thread()

@w.method("poll-cancel", context=True)
def poll_cancel(ctx):
    ctx.log("info", "started")  # tells the test the method is running
    # Busy work that checks the flag, not ctx.wait().
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if ctx.cancelled:
            raise RequestCancelled("stopped early")
        time.sleep(0.001)
    return "finished"

for bad in ("$/x", "rpc.x", "add"):
    try:
        w.add_method(bad, add)
    except ValueError:
        pass
    else:
        raise SystemExit("registering %r should fail" % bad)

raise SystemExit(w.main())
"""


class TestCustomWorker(SharedWorkerCase):
    @classmethod
    def setUpClass(cls):
        cls.w = Proc(script=CUSTOM)

    def test_dict_params_are_keywords_and_list_params_positional(self):
        self.assertEqual(result(self, self.w.call("add", {"a": 1, "b": 2})), 3)
        self.assertEqual(result(self, self.w.call("add", {"a": 1})), 11)
        self.assertEqual(result(self, self.w.call("add", [5, 6])), 11)
        self.assertEqual(result(self, self.w.call("bare")), "bare")

    def test_missing_and_unknown_arguments_are_invalid_params(self):
        err = error(self, self.w.call("add", {"b": 2}), pw.INVALID_PARAMS)
        self.assertIn("a", err["data"]["message"])
        error(self, self.w.call("add", {"a": 1, "c": 2}), pw.INVALID_PARAMS)
        error(self, self.w.call("add", [1, 2, 3]), pw.INVALID_PARAMS)
        error(self, self.w.call("add"), pw.INVALID_PARAMS)

    def test_type_error_inside_the_method_is_an_internal_error(self):
        err = error(self, self.w.call("inner-typeerror", [5]), pw.INTERNAL_ERROR)
        self.assertEqual(err["data"]["type"], "TypeError")
        self.assertIn("len", err["data"]["traceback"])

    def test_raw_params(self):
        self.assertEqual(result(self, self.w.call("raw", {"a": 1})), {"type": "dict", "params": {"a": 1}})
        self.assertEqual(result(self, self.w.call("raw", [1])), {"type": "list", "params": [1]})
        self.assertEqual(result(self, self.w.call("raw")), {"type": "NoneType", "params": None})

    def test_context(self):
        msg = self.w.req("ctx", {"x": 1}, rid="ctx-id")
        self.w.send(msg)
        self.assertEqual(result(self, self.w.recv()), {"id": "ctx-id", "method": "ctx", "cancelled": False,
                                                       "same": True, "notification": False})
        self.assertEqual(result(self, self.w.call("lazy-ctx")), {"id": self.w._next_id, "method": "lazy-ctx"})

    def test_unserializable_results_are_internal_errors(self):
        err = error(self, self.w.call("unserializable"), pw.INTERNAL_ERROR)
        self.assertEqual(err["data"]["type"], "TypeError")
        self.assertIn("type set is not JSON serializable", err["data"]["message"])
        error(self, self.w.call("nan"), pw.INTERNAL_ERROR)
        self.assertEqual(result(self, self.w.call("bare")), "bare")

    def test_response_larger_than_max_frame_becomes_an_error(self):
        self.assertEqual(len(result(self, self.w.call("big", [3000]))), 3000)
        err = error(self, self.w.call("big", [5000]), pw.INTERNAL_ERROR)
        self.assertEqual(err["data"]["type"], "ResponseTooLarge")
        self.assertEqual(err["data"]["limit"], 4096)

    def test_sys_exit_in_a_method_is_an_error_not_an_exit(self):
        err = error(self, self.w.call("exit"), pw.INTERNAL_ERROR)
        self.assertEqual(err["data"]["type"], "SystemExit")
        self.assertEqual(result(self, self.w.call("bare")), "bare")

    def test_rpc_error_data_is_merged(self):
        err = error(self, self.w.call("rpc-data"), -32010)
        self.assertEqual(err["message"], "custom")
        self.assertEqual(err["data"]["hint"], "check input")
        self.assertEqual(err["data"]["type"], "Overridden")
        self.assertIs(err["data"]["recoverable"], False)
        self.assertIn("traceback", err["data"])

    def test_module_log_from_another_thread(self):
        msg = self.w.req("log-from-thread")
        self.w.send(msg)
        note = self.w.recv()
        self.assertEqual(note["method"], "$/log")
        self.assertEqual(note["params"], {"level": "error", "message": "from a thread", "fields": {"n": 1}})
        self.assertEqual(result(self, self.w.recv()), "logged")

    def test_checking_the_cancelled_flag_inline(self):
        msg = self.w.req("poll-cancel")
        self.w.send(msg)
        self.assertEqual(self.w.recv()["params"]["fields"], {"request_id": msg["id"]})  # started
        self.w.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": msg["id"]}})
        err = error(self, self.w.recv(), pw.REQUEST_CANCELLED)
        self.assertEqual(err["message"], "stopped early")
        self.assertIs(err["data"]["started"], True)


class TestCustomPool(SharedWorkerCase):
    @classmethod
    def setUpClass(cls):
        cls.w = Proc(["--max-concurrency", "2"], script=CUSTOM)

    def test_inline_methods_run_on_the_loop_thread(self):
        self.assertIs(result(self, self.w.call("where-inline")), True)
        self.assertIs(result(self, self.w.call("where")), False)

    def test_context_on_a_pool_thread(self):
        msg = self.w.req("ctx", [1], rid="pool-ctx")
        self.w.send(msg)
        self.assertEqual(result(self, self.w.recv()), {"id": "pool-ctx", "method": "ctx", "cancelled": False,
                                                       "same": True, "notification": False})
        error(self, self.w.call("add", {"b": 1}), pw.INVALID_PARAMS)

    def test_ctx_log_adds_the_request_id(self):
        msg = self.w.req("ctx-log")
        self.w.send(msg)
        note = self.w.recv()
        self.assertEqual(note["params"], {"level": "info", "message": "hi",
                                          "fields": {"k": 1, "request_id": msg["id"]}})
        self.assertEqual(result(self, self.w.recv()), "ok")

    def test_output_from_every_thread_arrives_whole_and_in_order(self):
        # Two pool threads and the loop thread (pings) write at once: every
        # frame must arrive whole, and each thread's own frames in order.
        calls = [self.w.req("chatty", {"n": 30, "size": 1500}) for _ in range(20)]
        pings = [self.w.req("$/ping") for _ in range(20)]
        self.w.send(*[m for pair in zip(calls, pings) for m in pair])
        seen = {m["id"]: [] for m in calls}
        results, pongs = set(), set()
        for _ in range(len(calls) * 31 + len(pings)):
            msg = self.w.recv()  # a torn frame fails to parse here
            if msg.get("method") == "$/log":
                self.assertEqual(len(msg["params"]["message"]), 1500)
                seen[msg["params"]["fields"]["request_id"]].append(msg["params"]["fields"]["i"])
            elif msg["id"] in seen:
                self.assertEqual(seen[msg["id"]], list(range(30)), "every log precedes the result")
                self.assertEqual(msg["result"], 30)
                results.add(msg["id"])
            else:
                pongs.add(msg["id"])
        self.assertEqual(results, set(seen))
        self.assertEqual(pongs, {m["id"] for m in pings})

    def test_checking_the_cancelled_flag_on_the_pool(self):
        msg = self.w.req("poll-cancel")
        self.w.send(msg)
        self.assertEqual(self.w.recv()["params"]["fields"], {"request_id": msg["id"]})  # started
        self.w.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": msg["id"]}})
        err = error(self, self.w.recv(), pw.REQUEST_CANCELLED)
        self.assertEqual(err["message"], "stopped early")
        self.assertIs(err["data"]["started"], True)



if __name__ == "__main__":
    unittest.main()
