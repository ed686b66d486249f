"""``--listen``: the demo worker on TCP (127.0.0.1) and Unix sockets, the HMAC challenge, --once."""

import json
import os
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

from pybridge_worker import listen
from worker_support import TIMEOUT, WORKER

SECRET = b"listen test secret"


class Listener:
    """``python -m pybridge_worker --listen URL`` as a process; ``url`` is where it listens."""

    def __init__(self, url, *flags, secret=None, command=WORKER):
        env = dict(os.environ)
        env.pop(listen.SECRET_ENV, None)
        if secret is not None:
            env[listen.SECRET_ENV] = secret.decode()
        self.p = subprocess.Popen(command + ["--listen", url] + list(flags), env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        self.lines = []
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            line = self.p.stderr.readline().decode()
            if not line:
                break
            self.lines.append(line)
            if "listening on " in line:
                self.url = line.split("listening on ", 1)[1].strip()
                return
        self.close()
        raise AssertionError("the listener did not start: %r" % self.lines)

    def connect(self):
        family, address = listen.parse_listen(self.url)
        sock = socket.socket(socket.AF_UNIX if family == "unix" else socket.AF_INET, socket.SOCK_STREAM)
        sock.settimeout(TIMEOUT)
        sock.connect(address)
        return Conn(sock)

    def close(self, grace=0.0):
        """Kills the listener (after ``grace`` seconds for it to end on its own)."""
        try:
            self.p.wait(grace)
        except subprocess.TimeoutExpired:
            self.p.kill()
        self.p.wait(TIMEOUT)
        if not self.p.stderr.closed:
            self.rest = self.p.stderr.read()
            self.p.stderr.close()

    def lines_after(self):
        """What the listener wrote on stderr after it started listening
        (once closed)."""
        return [getattr(self, "rest", b"")]


class Conn:
    """The bridge's side of one connection, written from docs/protocol.md."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def send(self, message):
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def recv(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def authenticate(self, secret):
        """Runs the challenge; returns the worker's last auth message."""
        hello = self.recv()
        assert hello["method"] == "$/hello", hello
        if hello["params"]["auth"] == "none":
            return hello
        worker_nonce = bytes.fromhex(hello["params"]["nonce"])
        bridge_nonce = os.urandom(32)
        mine = listen.proof(secret, listen.BRIDGE_LABEL, worker_nonce, bridge_nonce)
        self.send({"jsonrpc": "2.0", "method": "$/auth",
                   "params": {"nonce": bridge_nonce.hex(), "proof": mine.hex()}})
        answer = self.recv()
        if answer and answer["method"] == "$/auth":
            expected = listen.proof(secret, listen.WORKER_LABEL, worker_nonce, bridge_nonce)
            assert bytes.fromhex(answer["params"]["proof"]) == expected, "the worker's proof is wrong"
        return answer

    def call(self, rid, method, params=None):
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params})
        while True:
            message = self.recv()
            if message is None or message.get("id") == rid:
                return message

    def close(self):
        self.sock.close()

    def abort(self):
        """Closes at once, with a reset on TCP (SO_LINGER 0), as a bridge
        that gives up on a connection does."""
        if self.sock.family != socket.AF_UNIX:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class TestParsingAndSecrets(unittest.TestCase):
    def test_urls_parse(self):
        self.assertEqual(listen.parse_listen("tcp://127.0.0.1:7001"), ("tcp", ("127.0.0.1", 7001)))
        self.assertEqual(listen.parse_listen("tcp://[::1]:7001"), ("tcp", ("::1", 7001)))
        self.assertEqual(listen.parse_listen("unix:/run/w.sock"), ("unix", "/run/w.sock"))
        self.assertEqual(listen.parse_listen("unix:///run/w.sock"), ("unix", "/run/w.sock"))
        for bad in ("127.0.0.1:1", "tcp://h", "tcp://:1", "tcp://h:x", "unix:", "http://h:1"):
            with self.assertRaises(listen.ListenError, msg=bad):
                listen.parse_listen(bad)

    def test_the_secret_comes_from_the_file_without_its_newline_or_the_environment(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "secret")
            with open(path, "wb") as f:
                f.write(b"from file\n")
            self.assertEqual(listen.load_secret(path, environ={}), b"from file")
            with open(path, "wb") as f:
                f.write(b"\n")
            with self.assertRaises(listen.ListenError):
                listen.load_secret(path, environ={})
        self.assertEqual(listen.load_secret(None, environ={listen.SECRET_ENV: "env"}), b"env")
        self.assertIsNone(listen.load_secret(None, environ={}))

    def test_the_proof_matches_the_known_answer_the_rust_side_checks_too(self):
        # The same vector is in crates/pool/src/auth/tests.rs: both sides agree.
        proof = listen.proof(b"secret", listen.BRIDGE_LABEL, bytes(range(32)), bytes(range(32, 64)))
        self.assertEqual(proof.hex(), KNOWN_BRIDGE_PROOF)


    def test_a_bridge_that_never_answers_the_challenge_is_given_up_on(self):
        worker_end, bridge_end = socket.socketpair()
        saved, listen.AUTH_TIMEOUT = listen.AUTH_TIMEOUT, 0.3
        try:
            started = time.monotonic()
            with self.assertRaises(listen.AuthError):
                listen.server_handshake(worker_end, SECRET)
            self.assertLess(time.monotonic() - started, 5)
            hello = json.loads(bridge_end.recv(4096).split(b"\n")[0])
            self.assertEqual(hello["params"]["auth"], "hmac-sha256")
        finally:
            listen.AUTH_TIMEOUT = saved
            worker_end.close()
            bridge_end.close()


KNOWN_BRIDGE_PROOF = "d034cba148025b244c0570d72a33741549542339059ab0b771a9b96ad0edf154"


class TestListening(unittest.TestCase):
    def test_a_tcp_listener_without_a_secret_refuses_to_start(self):
        env = dict(os.environ)
        env.pop(listen.SECRET_ENV, None)
        p = subprocess.run(WORKER + ["--listen", "tcp://127.0.0.1:0"], env=env, capture_output=True,
                           timeout=TIMEOUT)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"without a secret", p.stderr)

    def test_listen_flags_need_listen(self):
        p = subprocess.run(WORKER + ["--once"], capture_output=True, timeout=TIMEOUT)
        self.assertEqual(p.returncode, 2)
        self.assertIn(b"--once needs --listen", p.stderr)

    def test_tcp_with_the_secret_serves_calls_and_each_connection_in_turn(self):
        w = Listener("tcp://127.0.0.1:0", secret=SECRET)
        try:
            for round_ in range(2):
                c = w.connect()
                self.assertEqual(c.authenticate(SECRET)["method"], "$/auth")
                ready = c.recv()
                self.assertEqual(ready["method"], "$/ready")
                self.assertEqual(ready["params"]["pid"], w.p.pid)
                self.assertEqual(c.call(1, "test.echo", {"round": round_})["result"], {"round": round_})
                c.close()
        finally:
            w.close()

    def test_a_wrong_secret_is_refused_and_both_sides_say_so(self):
        w = Listener("tcp://127.0.0.1:0", secret=SECRET)
        try:
            c = w.connect()
            answer = c.authenticate(b"not the secret")
            self.assertEqual(answer["method"], "$/authFailed")
            self.assertIn("wrong secret", answer["params"]["message"])
            self.assertIsNone(c.recv(), "the worker closes the connection")
            c.close()
            line = w.p.stderr.readline().decode()
            self.assertIn("wrong secret", line)
            # And it still serves the next, rightful bridge.
            c = w.connect()
            self.assertEqual(c.authenticate(SECRET)["method"], "$/auth")
            c.close()
        finally:
            w.close()

    def test_a_unix_socket_is_private_and_once_exits_after_the_connection(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "w.sock")
            w = Listener("unix:%s" % path, "--once")
            try:
                self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
                c = w.connect()
                self.assertEqual(c.authenticate(None)["params"]["auth"], "none")
                self.assertEqual(c.recv()["method"], "$/ready")
                self.assertEqual(c.call(7, "test.echo", [1])["result"], [1])
                c.close()
                self.assertEqual(w.p.wait(TIMEOUT), 0)
                self.assertFalse(os.path.exists(path), "the socket file is removed")
            finally:
                w.close()

    def test_a_closed_connection_cancels_work_in_flight_like_stdin_eof(self):
        w = Listener("tcp://127.0.0.1:0", "--insecure")
        try:
            c = w.connect()
            self.assertEqual(c.authenticate(None)["params"]["auth"], "none")
            c.recv()
            c.send({"jsonrpc": "2.0", "id": 1, "method": "test.sleep", "params": {"seconds": 60}})
            time.sleep(0.2)
            started = time.monotonic()
            c.close()
            c = w.connect()  # served only once the first connection's run has ended
            self.assertEqual(c.authenticate(None)["params"]["auth"], "none")
            self.assertEqual(c.recv()["method"], "$/ready")
            self.assertLess(time.monotonic() - started, 10)
            c.close()
        finally:
            w.close()


class TestConnectionsInARow(unittest.TestCase):
    """A listener serves one connection after another, whatever the last one
    did. A bridge may close a connection the moment the challenge is done,
    before the worker announced itself (``pybridge conform --connect`` does,
    check after check): the worker's ``$/ready`` then meets a closed socket,
    which a Unix socket reports at once (EPIPE) and TCP after a reset. That
    ends the connection's run, never the listener."""

    ROUNDS = 8

    def check(self, url, *flags, secret=None):
        w = Listener(url, *flags, secret=secret)
        try:
            for round_ in range(self.ROUNDS):
                for leaves_early in (True, False):
                    try:
                        c = w.connect()
                        auth = c.authenticate(secret)
                    except (OSError, TypeError) as exc:  # refused, reset, or closed (None)
                        w.close(grace=2.0)
                        self.fail("round %d: the listener no longer serves (%r); it said: %s"
                                  % (round_, exc, b"".join(w.lines_after()).decode(errors="replace")))
                    self.assertEqual(auth["method"], "$/hello" if secret is None else "$/auth", auth)
                    if leaves_early:
                        c.abort()
                        continue
                    ready = c.recv()
                    self.assertEqual(ready["method"], "$/ready", ready)
                    self.assertEqual(ready["params"]["pid"], w.p.pid)
                    self.assertEqual(c.call(1, "test.echo", {"round": round_})["result"], {"round": round_})
                    c.close()
            self.assertIsNone(w.p.poll(), "the listener keeps running")
        finally:
            w.close()

    def test_a_unix_socket_with_a_secret(self):
        with tempfile.TemporaryDirectory() as d:
            self.check("unix:%s" % os.path.join(d, "w.sock"), secret=SECRET)

    def test_a_unix_socket_without_a_secret(self):
        with tempfile.TemporaryDirectory() as d:
            self.check("unix:%s" % os.path.join(d, "w.sock"))

    def test_tcp_with_a_secret(self):
        self.check("tcp://127.0.0.1:0", secret=SECRET)

    def test_tcp_without_a_secret(self):
        self.check("tcp://127.0.0.1:0", "--insecure")

    def test_a_call_that_outlives_its_connection_never_answers_on_the_next(self):
        # The call ignores cancellation and runs past the end-of-input grace,
        # so its thread is still busy when the next connection is served.
        # Its answer has nobody to go to: request ids start again on each
        # connection, so it would pass for the answer to the next bridge's
        # id 1; and the next run's threads must still take every call.
        with tempfile.TemporaryDirectory() as d:
            w = Listener("unix:%s" % os.path.join(d, "w.sock"), command=STUBBORN)
            try:
                c = w.connect()
                c.authenticate(None)
                self.assertEqual(c.recv()["method"], "$/ready")
                c.send({"jsonrpc": "2.0", "id": 1, "method": "stubborn", "params": [STUBBORN_SECONDS]})
                time.sleep(0.2)
                c.close()
                c = w.connect()
                c.authenticate(None)
                self.assertEqual(c.recv()["method"], "$/ready")
                time.sleep(STUBBORN_SECONDS)  # the stubborn call is done by now
                for rid in range(1, 4):
                    c.send({"jsonrpc": "2.0", "id": rid, "method": "echo", "params": [rid]})
                answers = sorted((c.recv() for _ in range(3)), key=lambda m: m["id"])
                self.assertEqual([m.get("result") for m in answers], [1, 2, 3], answers)
                c.close()
            finally:
                w.close()


#: A worker with a sync method that ignores cancellation, on two threads.
STUBBORN = [sys.executable, "-c", textwrap.dedent("""
    import time
    from pybridge_worker import Worker

    worker = Worker("stubborn", threads=2)

    @worker.method
    def stubborn(seconds):
        time.sleep(seconds)
        return "late"

    @worker.method
    def echo(value):
        return value

    raise SystemExit(worker.main())
""")]
STUBBORN_SECONDS = 2.0


if __name__ == "__main__":
    unittest.main()
