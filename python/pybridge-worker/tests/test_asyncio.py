"""async def methods: one event loop beside the thread pool, cancellation by
$/cancelRequest and by stdin EOF, the context's async helpers, and the
default concurrency that keeps slow sync calls from blocking fast ones."""

import os
import time
import unittest

import pybridge_worker as pw
from worker_support import Proc, SharedWorkerCase, error, result

ASYNC = """
import asyncio, os, sys, threading, time
from pybridge_worker import *

w = Worker("async-demo", "1.0.0")
marker = sys.argv[1] if len(sys.argv) > 1 else None

@w.method("async.sleep", context=True)
async def sleep(ctx, seconds: float):
    ctx.log("info", "started")
    try:
        await ctx.sleep(seconds)
    except asyncio.CancelledError:
        if marker:
            with open(marker, "a") as f:
                f.write("cancelled %s\\n" % ctx.id)
        raise
    return {"slept": seconds, "cancelled": ctx.cancelled}

@w.method("async.echo")
async def echo(value=None):
    await asyncio.sleep(0)
    return {"value": value, "thread": threading.current_thread().name,
            "same": current_context() is not None and current_context().method == "async.echo"}

@w.method("async.fail")
async def fail():
    await asyncio.sleep(0)
    raise ValueError("async boom")

@w.method("async.own_cancel")
async def own_cancel():
    raise RequestCancelled("gave up")

@w.method("sync.sleep", context=True)
def sync_sleep(ctx, seconds: float):
    if ctx.wait(seconds):
        raise RequestCancelled()
    return {"slept": seconds, "thread": threading.current_thread().name}

@w.method("sync.threads")
def pool_threads():
    return sum(1 for t in threading.enumerate() if t.name.startswith("pybridge-worker-"))

async def _helper():
    return 1

@w.method("sync.returns_coroutine")
def returns_coroutine():
    return _helper()

raise SystemExit(w.main(sys.argv[2:]))
"""


def start(args=(), marker=""):
    return Proc([marker] + list(args), script=ASYNC)


class TestAsyncMethods(SharedWorkerCase):
    @classmethod
    def setUpClass(cls):
        cls.w = start()

    def cancel(self, rid):
        self.w.send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": rid}})

    def started(self, rid):
        note = self.w.recv()
        self.assertEqual(note["method"], "$/log", note)
        self.assertEqual(note["params"]["fields"]["request_id"], rid)

    def test_async_results_run_on_the_event_loop_thread(self):
        res = result(self, self.w.call("async.echo", {"value": [1, 2]}))
        self.assertEqual(res, {"value": [1, 2], "thread": "pybridge-asyncio", "same": True})

    def test_async_exceptions_become_errors(self):
        err = error(self, self.w.call("async.fail"), pw.INTERNAL_ERROR)
        self.assertEqual(err["data"]["type"], "ValueError")
        self.assertIn("async boom", err["message"])
        err = error(self, self.w.call("async.own_cancel"), pw.REQUEST_CANCELLED)
        self.assertEqual(err["message"], "gave up")

    def test_bad_arguments_to_an_async_method_are_invalid_params(self):
        error(self, self.w.call("async.sleep", {"bogus": 1}), pw.INVALID_PARAMS)

    def test_many_async_calls_run_at_once(self):
        # Twenty 0.3 s sleeps finish together, not one after another (6 s).
        msgs = [self.w.req("async.sleep", {"seconds": 0.3}) for _ in range(20)]
        started = time.monotonic()
        self.w.send(*msgs)
        done = set()
        while len(done) < len(msgs):
            msg = self.w.recv()
            if "id" in msg:
                self.assertEqual(result(self, msg)["slept"], 0.3)
                done.add(msg["id"])
        self.assertLess(time.monotonic() - started, 3.0)

    def test_sync_and_async_mix_and_a_fast_call_passes_slow_ones(self):
        slow = [self.w.req("sync.sleep", {"seconds": 30}) for _ in range(4)]
        slow_async = self.w.req("async.sleep", {"seconds": 30})
        fast = self.w.req("async.echo", {"value": "fast"})
        fast_sync = self.w.req("sync.sleep", {"seconds": 0})
        self.w.send(*(slow + [slow_async, fast, fast_sync]))
        answered = {}
        while len(answered) < 2:
            msg = self.w.recv()
            if "id" in msg:
                answered[msg["id"]] = msg
        self.assertEqual(set(answered), {fast["id"], fast_sync["id"]})
        for m in slow + [slow_async]:
            self.cancel(m["id"])
        got = set()
        while len(got) < 5:
            msg = self.w.recv()
            if "id" in msg:
                error(self, msg, pw.REQUEST_CANCELLED)
                got.add(msg["id"])
        self.assertEqual(got, {m["id"] for m in slow + [slow_async]})

    def test_cancel_request_cancels_the_task(self):
        msg = self.w.req("async.sleep", {"seconds": 30})
        self.w.send(msg)
        self.started(msg["id"])
        took = time.monotonic()
        self.cancel(msg["id"])
        err = error(self, self.w.recv(), pw.REQUEST_CANCELLED)
        self.assertIs(err["data"]["started"], True)
        self.assertLess(time.monotonic() - took, 5.0)
        self.assertEqual(result(self, self.w.call("async.echo", {"value": 1}))["value"], 1)

    def test_a_sync_method_that_returns_a_coroutine_is_told_so(self):
        err = error(self, self.w.call("sync.returns_coroutine"), pw.INTERNAL_ERROR)
        self.assertEqual(err["data"]["type"], "CoroutineResult")
        self.assertIn("async def", err["data"]["message"])
        self.assertNotIn("never awaited", self.w.stderr)

    def test_the_manifest_describes_async_methods_and_advertises_the_default(self):
        names = {m["name"]: m for m in self.w.ready["methods"]}
        self.assertEqual(names["async.sleep"]["params_schema"],
                         {"type": "object", "properties": {"seconds": {"type": "number"}},
                          "required": ["seconds"], "additionalProperties": False})
        self.assertEqual(self.w.ready["max_concurrency"], 16)


class TestAsyncLifecycle(unittest.TestCase):
    def test_stdin_eof_cancels_running_tasks_and_exits_at_once(self):
        marker = os.path.join(os.environ.get("TMPDIR", "/tmp"), "pybridge-async-eof-%d" % os.getpid())
        self.addCleanup(lambda: os.path.exists(marker) and os.remove(marker))
        w = start(marker=marker)
        try:
            msgs = [w.req("async.sleep", {"seconds": 30}) for _ in range(3)]
            w.send(*msgs)
            for _ in msgs:
                self.assertEqual(w.recv()["method"], "$/log")  # all three started
            took = time.monotonic()
            w.p.stdin.close()
            self.assertEqual(w.wait(), 0)
            self.assertLess(time.monotonic() - took, 5.0)
            with open(marker) as f:
                self.assertEqual(len(f.read().splitlines()), 3, "every task saw CancelledError")
        finally:
            w.close()

    def test_shutdown_waits_for_async_work(self):
        w = start()
        try:
            busy = w.req("async.sleep", {"seconds": 0.2})
            stop = w.req("$/shutdown")
            w.send(busy, stop)
            self.assertEqual(w.recv()["method"], "$/log")
            self.assertEqual(result(self, w.recv())["slept"], 0.2)
            self.assertEqual(w.recv(), {"jsonrpc": "2.0", "id": stop["id"], "result": None})
            self.assertEqual(w.wait(), 0)
        finally:
            w.close()


class TestDefaultConcurrency(unittest.TestCase):
    def test_a_fast_call_behind_eight_slow_ones_answers_at_once(self):
        # The README's worker with default settings: sync methods on threads.
        w = Proc()
        try:
            self.assertEqual(w.ready["max_concurrency"], pw.Worker("x").concurrency()[1])
            self.assertGreater(w.ready["max_concurrency"], 8)
            # Slow enough that a fast call queued behind them shows, even
            # on a loaded machine where answering at once takes a while.
            slow = [w.req("test.sleep", {"seconds": 3.0}) for _ in range(8)]
            fast = w.req("test.echo", ["fast"])
            w.send(*slow)
            sent = time.monotonic()
            w.send(fast)
            first = w.recv()
            took = time.monotonic() - sent
            self.assertEqual(first["id"], fast["id"])
            self.assertLess(took, 2.0, "the fast call waited for slow ones")
            self.assertEqual({w.recv()["id"] for _ in slow}, {m["id"] for m in slow})
        finally:
            w.close()

    def test_threads_start_on_demand(self):
        w = start()
        try:
            self.assertEqual(result(self, w.call("sync.threads")), 1, "one call, one thread")
            slow = [w.req("sync.sleep", {"seconds": 0.3}) for _ in range(5)]
            w.send(*slow)
            self.assertEqual({w.recv()["id"] for _ in slow}, {m["id"] for m in slow})
            self.assertGreaterEqual(result(self, w.call("sync.threads")), 5)
        finally:
            w.close()

    def test_the_concurrency_knobs(self):
        self.assertEqual(pw.Worker("x").concurrency(), (16, 16))
        self.assertEqual(pw.Worker("x", max_concurrency=1).concurrency(), (0, 1))
        self.assertEqual(pw.Worker("x", max_concurrency=4).concurrency(), (4, 4))
        self.assertEqual(pw.Worker("x", threads=0, max_concurrency=64).concurrency(), (0, 64))
        self.assertEqual(pw.Worker("x", threads=0).concurrency(), (0, 1))
        self.assertEqual(pw.Worker("x", threads=2).concurrency(), (2, 2))
        w = pw.Worker("x", threads=0)

        @w.method
        async def a():
            return 1

        self.assertEqual(w.concurrency(), (0, 16), "async methods need no threads to run at once")

    def test_the_benchmark_mode_advertises_its_window(self):
        w = Proc(["--threads", "0", "--max-concurrency", "64"])
        try:
            self.assertEqual(w.ready["max_concurrency"], 64)
            msgs = [w.req("test.echo", [i]) for i in range(200)]
            w.send(*msgs)
            self.assertEqual([w.recv()["id"] for _ in msgs], [m["id"] for m in msgs], "inline keeps order")
        finally:
            w.close()


if __name__ == "__main__":
    unittest.main()
