"""Serving on a socket instead of stdin/stdout: ``--listen``.

    python -m pybridge_worker --listen tcp://127.0.0.1:7001 --secret-file /run/secret
    python my_worker.py --listen unix:/run/pybridge/w.sock --once

The worker serves one bridge connection at a time with the same wire
protocol as on its pipes. A closed connection means what stdin EOF means:
work in flight is cancelled; the listener then waits for the next
connection (``--once``: it exits instead).

Before any method, both sides prove they know a shared secret
(``PYBRIDGE_WORKER_SECRET`` or ``--secret-file``) without sending it: an
HMAC-SHA256 over a nonce from each side (docs/protocol.md, "Sockets and
authentication"). A TCP listener refuses to start without a secret unless
``--insecure`` is given; a Unix socket is created with mode 0600. For TLS,
run the worker behind a TLS-terminating sidecar (docs/deployment.md).
"""

import errno
import hmac
import hashlib
import json
import os
import socket
import stat
import time

from .codec import _stderr

__all__ = ["AuthError", "ListenError", "parse_listen", "load_secret", "proof", "server_handshake",
           "bind", "local_url", "serve", "main"]

BRIDGE_LABEL = b"pybridge-auth-v1 bridge"
WORKER_LABEL = b"pybridge-auth-v1 worker"
NONCE_BYTES = 32
MAX_AUTH_LINE = 4096
AUTH_TIMEOUT = 10.0
SECRET_ENV = "PYBRIDGE_WORKER_SECRET"
#: How long the listener waits before accepting again when the process is
#: out of file descriptors or memory.
ACCEPT_PAUSE = 0.5

# accept() failures that concern one client only (it reset the connection
# before it was accepted), and those that are the process's own shortage.
_ACCEPT_RETRY = frozenset(getattr(errno, n) for n in ("ECONNABORTED", "EPROTO") if hasattr(errno, n))
_ACCEPT_PAUSE = frozenset(getattr(errno, n) for n in ("EMFILE", "ENFILE", "ENOBUFS", "ENOMEM")
                          if hasattr(errno, n))


class AuthError(Exception):
    """The bridge on a connection failed the challenge, or left it."""


class ListenError(Exception):
    """The listener cannot start (bad URL, no secret for TCP, bind failure)."""


def parse_listen(url):
    """``tcp://HOST:PORT`` -> ("tcp", (host, port)); ``unix:/path`` -> ("unix", path)."""
    if url.startswith("tcp://"):
        rest = url[len("tcp://"):].rstrip("/")
        if rest.startswith("["):
            host, sep, port = rest[1:].partition("]:")
            if not sep:
                raise ListenError("%r: expected tcp://[HOST]:PORT" % url)
        else:
            host, sep, port = rest.rpartition(":")
            if not sep:
                raise ListenError("%r: expected tcp://HOST:PORT" % url)
        if not host:
            raise ListenError("%r: the host is missing" % url)
        try:
            port = int(port)
        except ValueError:
            raise ListenError("%r: the port is not a number" % url) from None
        if not 0 <= port <= 65535:
            raise ListenError("%r: the port is out of range" % url)
        return "tcp", (host, port)
    if url.startswith("unix:"):
        path = url[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise ListenError("%r: the socket path is missing" % url)
        return "unix", path
    raise ListenError("%r: the URL must start with tcp:// or unix:" % url)


def load_secret(secret_file=None, environ=None):
    """The secret from ``--secret-file`` (trailing whitespace dropped) or the
    environment; None when neither is set."""
    if secret_file is not None:
        with open(secret_file, "rb") as f:
            secret = f.read().rstrip()
        if not secret:
            raise ListenError("the secret file %s is empty" % secret_file)
        return secret
    value = (os.environ if environ is None else environ).get(SECRET_ENV)
    if value:
        return value.encode("utf-8")
    return None


def proof(secret, label, worker_nonce, bridge_nonce):
    """HMAC-SHA256(secret, label || 0x00 || worker nonce || bridge nonce)."""
    return hmac.new(secret, label + b"\x00" + worker_nonce + bridge_nonce, hashlib.sha256).digest()


def _send_line(conn, message):
    conn.sendall(json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n")


def _read_line(conn, deadline):
    # Byte by byte: nothing after the line may be consumed here, because the
    # protocol loop reads the socket from where this stops. The lines are short.
    # The deadline bounds the whole line, so a peer trickling bytes cannot
    # hold the listener (which serves one connection at a time) for long.
    data = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AuthError("the bridge did not authenticate within %.1f s" % AUTH_TIMEOUT)
        conn.settimeout(left)
        try:
            b = conn.recv(1)
        except socket.timeout:
            raise AuthError("the bridge did not authenticate within %.1f s" % AUTH_TIMEOUT) from None
        if not b:
            raise AuthError("the bridge closed the connection during authentication")
        if b == b"\n":
            break
        data += b
        if len(data) > MAX_AUTH_LINE:
            raise AuthError("the bridge sent an authentication line over %d bytes" % MAX_AUTH_LINE)
    try:
        message = json.loads(data.decode("utf-8"))
    except ValueError:
        raise AuthError("the bridge sent something that is not JSON during authentication") from None
    if not isinstance(message, dict):
        raise AuthError("the bridge sent something that is not a message during authentication")
    return message


def server_handshake(conn, secret):
    """The worker's side of the challenge on a new connection. Returns when
    the bridge proved it knows ``secret`` (or at once without a secret);
    raises AuthError, after telling the bridge, when it did not."""
    if secret is None:
        _send_line(conn, {"jsonrpc": "2.0", "method": "$/hello", "params": {"auth": "none"}})
        return
    deadline = time.monotonic() + AUTH_TIMEOUT
    worker_nonce = os.urandom(NONCE_BYTES)
    _send_line(conn, {"jsonrpc": "2.0", "method": "$/hello",
                      "params": {"auth": "hmac-sha256", "nonce": worker_nonce.hex()}})
    message = _read_line(conn, deadline)
    params = message.get("params") if isinstance(message.get("params"), dict) else {}
    if message.get("method") == "$/authFailed":
        raise AuthError("the bridge refused this worker: %s" % params.get("message", "no reason given"))
    if message.get("method") != "$/auth":
        _fail(conn, "expected $/auth")
    try:
        bridge_nonce = bytes.fromhex(params.get("nonce", ""))
        claimed = bytes.fromhex(params.get("proof", ""))
    except (TypeError, ValueError):
        _fail(conn, "the $/auth nonce or proof is not hex")
    if len(bridge_nonce) < 16:
        _fail(conn, "the $/auth nonce is shorter than 16 bytes")
    expected = proof(secret, BRIDGE_LABEL, worker_nonce, bridge_nonce)
    if not hmac.compare_digest(expected, claimed):
        _fail(conn, "wrong secret: the bridge's proof does not match the worker's secret")
    ours = proof(secret, WORKER_LABEL, worker_nonce, bridge_nonce)
    _send_line(conn, {"jsonrpc": "2.0", "method": "$/auth", "params": {"proof": ours.hex()}})


def _fail(conn, message):
    try:
        _send_line(conn, {"jsonrpc": "2.0", "method": "$/authFailed", "params": {"message": message}})
    except OSError:
        pass
    raise AuthError(message)


def bind(url, secret, insecure=False):
    """A listening socket for ``url``; refuses TCP without a secret unless
    ``insecure``. A Unix socket is created with mode 0600 (a stale socket
    file at the path is replaced; any other file is not)."""
    family, address = parse_listen(url)
    if family == "tcp":
        if secret is None and not insecure:
            raise ListenError(
                "refusing to listen on %s without a secret: set %s or --secret-file "
                "(or pass --insecure to accept unauthenticated connections)" % (url, SECRET_ENV))
        infos = socket.getaddrinfo(address[0], address[1], type=socket.SOCK_STREAM)
        af, _, _, _, sockaddr = infos[0]
        sock = socket.socket(af, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
    else:
        try:
            if stat.S_ISSOCK(os.lstat(address).st_mode):
                os.unlink(address)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)
        try:
            sock.bind(address)
        finally:
            os.umask(old)
        os.chmod(address, 0o600)
    sock.listen(8)
    return sock


def local_url(sock):
    """The URL a bound socket listens on (with the real port for port 0)."""
    if sock.family == socket.AF_UNIX:
        return "unix:%s" % sock.getsockname()
    host, port = sock.getsockname()[:2]
    if ":" in host:
        return "tcp://[%s]:%d" % (host, port)
    return "tcp://%s:%d" % (host, port)


def serve(worker, url, secret=None, insecure=False, once=False, on_listening=None):
    """Listen on ``url`` and serve one connection at a time with ``worker``
    (its ``run()`` once per connection). Returns the worker's exit code after
    the first authenticated connection with ``once``; otherwise serves until
    killed."""
    sock = bind(url, secret, insecure)
    unix_path = sock.getsockname() if sock.family == socket.AF_UNIX else None
    try:
        where = local_url(sock)
        _stderr("pybridge worker listening on %s" % where)
        if on_listening is not None:
            on_listening(where)
        while True:
            try:
                conn, peer = sock.accept()
            except OSError as exc:
                if exc.errno in _ACCEPT_RETRY:
                    continue  # that client is gone; the listener is fine
                if exc.errno in _ACCEPT_PAUSE:
                    # Out of descriptors or memory: the listener stays, and
                    # tries again once connections or calls have given some back.
                    _stderr("accepting a connection failed: %s; trying again" % exc)
                    time.sleep(ACCEPT_PAUSE)
                    continue
                raise
            try:
                served = _serve_connection(worker, conn, secret)
            finally:
                try:
                    conn.close()
                except OSError:
                    pass
            if once and served is not None:
                return served
    finally:
        sock.close()
        if unix_path:
            try:
                os.unlink(unix_path)
            except OSError:
                pass


def _serve_connection(worker, conn, secret):
    """Serves one connection; returns the worker's exit code, or None when
    the bridge failed authentication."""
    try:
        if conn.family != socket.AF_UNIX:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.settimeout(AUTH_TIMEOUT)
        server_handshake(conn, secret)
    except (AuthError, OSError) as exc:
        _stderr("authentication failed: %s" % exc)
        return None
    conn.settimeout(None)
    # The connection replaces stdin/stdout: the process's own stdio stays as
    # is. A call the last connection left running past the end-of-input
    # grace may still finish on its thread; its answer is dropped (run()
    # sends nothing for a run that has ended), never sent on this connection.
    try:
        return worker.run(in_fd=conn.fileno(), out_fd=conn.fileno())
    except OSError as exc:
        # What one connection does (a peer that resets it at any moment)
        # must never end the listener: the next bridge is served as usual.
        _stderr("the connection failed: %s" % exc)
        return 1


def main(worker, ns):
    """``--listen``: serve ``worker`` with the parsed flags ``ns``; returns
    the exit code (2 when the listener cannot start)."""
    try:
        secret = load_secret(ns.secret_file)
        return serve(worker, ns.listen, secret, insecure=ns.insecure, once=ns.once)
    except (ListenError, OSError) as exc:
        _stderr("cannot listen: %s" % exc)
        return 2
