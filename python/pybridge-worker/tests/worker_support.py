"""Helpers for the SDK's tests: a worker process spoken to over pipes.

The package must be importable: ``cargo xtask python`` sets PYTHONPATH to
``python/pybridge-worker/src`` (or install it into a virtual environment).
"""

import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import unittest

#: The demo worker's command line: ``python -m pybridge_worker``.
WORKER = [sys.executable, "-m", "pybridge_worker"]

TIMEOUT = 10.0  # generous: only reached when something is broken

class Proc:
    """A worker process with a reader thread that splits stdout into messages."""

    def __init__(self, args=(), script=None, framing="ndjson", ready=True):
        if script is not None:
            cmd = [sys.executable, "-c", textwrap.dedent(script)] + list(args)
        else:
            cmd = WORKER + list(args)
        self.framing = framing
        self.p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.messages = queue.Queue()
        self.stderr_chunks = []
        self.raw_stdout = bytearray()
        self._next_id = 1000
        self._out_thread = threading.Thread(target=self._read_stdout, daemon=True)
        self._err_thread = threading.Thread(target=self._read_stderr, daemon=True)
        self._out_thread.start()
        self._err_thread.start()
        self.ready = None  # the $/ready notification's params, when one came
        if ready:
            first = self.recv_raw()
            if first != b"READY":
                note = json.loads(first)
                if note.get("method") != "$/ready":
                    raise AssertionError("expected READY or $/ready, got %r" % first)
                self.ready = note["params"]

    def _read_stdout(self):
        buf = b""
        fd = self.p.stdout.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self.raw_stdout += chunk
            buf += chunk
            while True:
                if self.framing == "ndjson":
                    line, sep, rest = buf.partition(b"\n")
                    if not sep:
                        break
                    self.messages.put(line)
                    buf = rest
                else:
                    head, sep, rest = buf.partition(b"\r\n\r\n")
                    if not sep:
                        break
                    length = int(head.split(b":")[1])
                    if len(rest) < length:
                        break
                    self.messages.put(rest[:length])
                    buf = rest[length:]
        self.messages.put(None)

    def _read_stderr(self):
        fd = self.p.stderr.fileno()
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self.stderr_chunks.append(chunk)

    @property
    def stderr(self):
        return b"".join(self.stderr_chunks).decode("utf-8", "replace")

    def wait_stderr(self, text, count=1):
        """Wait until stderr holds ``text`` ``count`` times (it is read by a thread)."""
        for _ in range(int(TIMEOUT / 0.02)):
            if self.stderr.count(text) >= count or not self._err_thread.is_alive():
                break
            threading.Event().wait(0.02)
        return self.stderr.count(text)

    def send_raw(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def frame(self, obj):
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        if self.framing == "ndjson":
            return body + b"\n"
        return b"Content-Length: %d\r\n\r\n" % len(body) + body

    def send(self, *objs):
        self.send_raw(b"".join(self.frame(o) for o in objs))

    def req(self, method, params=None, rid=None):
        """A request object with a fresh id (or the given one)."""
        if rid is None:
            self._next_id += 1
            rid = self._next_id
        msg = {"jsonrpc": "2.0", "id": rid, "method": method}
        if params is not None:
            msg["params"] = params
        return msg

    def recv_raw(self, timeout=TIMEOUT):
        try:
            msg = self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no message within %ss; stderr: %s" % (timeout, self.stderr)) from None
        if msg is None:
            raise AssertionError("worker closed stdout; stderr: %s" % self.stderr)
        return msg

    def recv(self, timeout=TIMEOUT):
        return json.loads(self.recv_raw(timeout))

    def call(self, method, params=None):
        msg = self.req(method, params)
        self.send(msg)
        resp = self.recv()
        assert resp.get("id") == msg["id"], (resp, msg)
        return resp

    def barrier(self, testcase):
        """Ping and check the very next message is its answer: proves nothing
        else was sent before it (responses of an inline worker keep order)."""
        msg = self.req("$/ping")
        self.send(msg)
        resp = self.recv()
        testcase.assertEqual(resp.get("id"), msg["id"], resp)
        return resp

    def wait(self, timeout=TIMEOUT):
        return self.p.wait(timeout=timeout)

    def close(self):
        if self.p.poll() is None:
            try:
                self.p.stdin.close()
            except OSError:
                pass
            try:
                self.p.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            try:
                f.close()
            except OSError:
                pass
        self._out_thread.join(timeout=TIMEOUT)
        self._err_thread.join(timeout=TIMEOUT)


def result(testcase, resp):
    testcase.assertNotIn("error", resp, resp)
    testcase.assertEqual(resp["jsonrpc"], "2.0")
    return resp["result"]


def error(testcase, resp, code):
    testcase.assertNotIn("result", resp, resp)
    testcase.assertEqual(resp["jsonrpc"], "2.0")
    testcase.assertEqual(resp["error"]["code"], code, resp)
    testcase.assertIsInstance(resp["error"]["message"], str)
    return resp["error"]


class SharedWorkerCase(unittest.TestCase):
    """One demo worker for the whole class; tests must leave it serving."""

    ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.w = Proc(cls.ARGS)

    @classmethod
    def tearDownClass(cls):
        cls.w.close()

