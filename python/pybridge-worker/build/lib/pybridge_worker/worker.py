"""The serving loop: read stdin, dispatch requests inline, on the thread
pool or on the event loop, and write responses to stdout."""

import collections
import functools
import inspect
import os
import select
import sys
import threading
import time

from . import context as _context
from . import tracing_support as _tracing
from .cli import DEFAULT_MAX_PENDING, FRAMINGS, HANDSHAKES, build_arg_parser
from .codec import (
    _ENCODE_ERRORS,
    _ID_TYPES,
    _NO_ID,
    DISPATCH_CODES,
    _cancelled_body,
    _decode_full,
    _encode,
    _error_body,
    _format_traceback,
    _rss_bytes,
    _same_id,
    _scan,
    _stderr,
)
from .context import Context
from .errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    SHUTTING_DOWN,
    RequestCancelled,
    RpcError,
)
from .framing import DEFAULT_MAX_FRAME, _Bad, _ContentLengthFramer, _NdjsonFramer
from .schema import PROTOCOL_VERSION, describe_method
from .stdio import isolate_stdio
from .aio import _AsyncMixin
from .output import _Batch, _OutputMixin
from .threads import _ThreadsMixin

__all__ = ["Worker", "DEFAULT_CONCURRENCY"]

#: Calls a worker runs at once unless told otherwise: sync methods on this
#: many threads, and the window it advertises. Large enough that a handful
#: of slow calls never holds up a fast one.
DEFAULT_CONCURRENCY = 16

#: One read from stdin. Large enough to hold hundreds of pipelined requests.
READ_SIZE = 64 * 1024
#: After stdin EOF, how long cancelled work on the pool threads may take to
#: stop before the worker exits anyway (the host that would read it is gone).
EOF_GRACE = 1.0


class _Method:
    __slots__ = ("name", "fn", "raw", "context", "inline", "is_async", "manifest", "_signature",
                 "trace_context")

    def __init__(self, name, fn, raw, context, inline, is_async, manifest):
        self.name = name
        self.fn = fn
        self.raw = raw
        self.context = context
        self.inline = inline
        self.is_async = is_async
        self.manifest = manifest
        self._signature = None
        # Set on the per-request copy made for a request that carried `_meta`.
        self.trace_context = None

    def binding_error(self, args, kwargs):
        """Why these arguments do not bind to the function, or None if they do."""
        if self._signature is None:
            import inspect

            try:
                self._signature = inspect.signature(self.fn)
            except (TypeError, ValueError):
                self._signature = False
        if self._signature is False:
            return None
        try:
            self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            return str(exc)
        return None


class Worker(_ThreadsMixin, _AsyncMixin, _OutputMixin):
    """A JSON-RPC worker: register methods, then ``run()`` or ``main()``.

    Options (all keyword-only, each with a command-line flag in ``main()``):

    * ``max_concurrency`` (16, ``DEFAULT_CONCURRENCY``): the calls the worker
      wants outstanding at once, advertised in ``$/ready``; the pool never
      sends more. Given alone it also sets ``threads`` (1 means inline).
    * ``threads`` (= ``max_concurrency``): threads running sync methods; 0
      runs them inline in the I/O loop, one at a time, which is fastest for
      cheap methods: pair ``threads=0`` with a deep ``max_concurrency`` (for
      example 64) to have the pool pipeline calls. ``async def`` methods
      always run on one event loop thread, however many threads there are.
    * ``handshake`` ("notification"): "notification" sends ``$/ready`` with
      the manifest, "ready-line" prints ``READY``, "none" announces nothing.
    * ``framing`` ("ndjson"): or "content-length".
    * ``max_frame`` (16 MiB): the largest frame read or written.
    * ``max_pending`` (1024): requests queued or running on the pool before
      the loop stops reading stdin.
    * ``isolate_stdio`` (True): move the protocol to private fds and point fd 1
      / ``sys.stdout`` at stderr and fd 0 at /dev/null.
    * ``flush_per_message`` (False): write each response on its own instead of
      once per read: slower (see bench_worker.py), but each response leaves
      before the next request is handled (the fault workers rely on that).
    """

    def __init__(self, name="pybridge-worker", version="0.0.0", *, max_concurrency=None, threads=None,
                 handshake="notification", framing="ndjson", max_frame=DEFAULT_MAX_FRAME,
                 max_pending=DEFAULT_MAX_PENDING, isolate_stdio=True, flush_per_message=False):
        self.name = str(name)
        self.version = str(version)
        self.max_concurrency = max_concurrency
        self.threads = threads
        self.handshake = handshake
        self.framing = framing
        self.max_frame = max_frame
        self.max_pending = max_pending
        self.isolate_stdio = isolate_stdio
        self.flush_per_message = flush_per_message
        self._methods = {}
        self._validate()

        self._in_fd = None
        self._out_fd = None
        self._loop_ident = None
        self._framer = None
        self._poller = None
        # With threads or an event loop, output can break on another thread
        # while the I/O loop waits on stdin: a byte on this pipe wakes it.
        self._wake_r = None
        self._wake_w = None
        self._serve_poller = None
        self._last_poll = 0.0
        self._backlog = collections.deque()
        self._pending = []          # responses of the current read (loop thread)
        self._cancel_ahead = set()  # ids cancelled by a frame not processed yet
        self._backlog_has_ping = False
        self._eof = False
        self._stopping = False      # $/shutdown seen (or stdout broke)
        self._exit_code = 0
        self._shutdown_reply = _NO_ID
        self._cur_id = _NO_ID       # the request running inline
        self._cur_ctx = None
        self._cur_spec = None

        # Output: any thread appends; one thread at a time writes (see _send).
        self._out_lock = threading.Lock()
        self._out_idle = threading.Condition(self._out_lock)
        self._outbox = []
        self._writing = False
        self._idle_waiters = 0      # threads in _wait_output_idle()
        self._broken = False

        # Thread pool state.
        self._state_lock = threading.Lock()
        self._active = {}
        self._jobs = None
        self._threads = []
        self._slots = None
        self._max_threads = 0
        self._waiting = 0
        self._queued_jobs = 0

        # Event loop state (async methods).
        self._loop = None
        self._loop_thread = None
        self._async_running = 0
        self._async_idle = threading.Condition(self._state_lock)

    # -- configuration -----------------------------------------------------

    def _validate(self):
        if self.max_concurrency is not None and (type(self.max_concurrency) is not int or self.max_concurrency < 1):
            raise ValueError("max_concurrency must be an int >= 1, got %r" % (self.max_concurrency,))
        if self.threads is not None and (type(self.threads) is not int or self.threads < 0):
            raise ValueError("threads must be an int >= 0, got %r" % (self.threads,))
        if self.handshake not in HANDSHAKES:
            raise ValueError("handshake must be one of %s, got %r" % (", ".join(HANDSHAKES), self.handshake))
        if self.framing not in FRAMINGS:
            raise ValueError("framing must be one of %s, got %r" % (", ".join(FRAMINGS), self.framing))
        if type(self.max_frame) is not int or self.max_frame < 64:
            raise ValueError("max_frame must be an int >= 64, got %r" % (self.max_frame,))
        if type(self.max_pending) is not int or self.max_pending < 1:
            raise ValueError("max_pending must be an int >= 1, got %r" % (self.max_pending,))

    def concurrency(self):
        """``(threads, max_concurrency)`` as the worker will run: sync-method
        threads (0 = inline) and the advertised window."""
        threads, window = self.threads, self.max_concurrency
        if threads is None:
            threads = DEFAULT_CONCURRENCY if window is None else (0 if window == 1 else window)
        if window is None:
            has_async = any(m.is_async for m in self._methods.values())
            window = threads if threads > 0 else (DEFAULT_CONCURRENCY if has_async else 1)
        return threads, window

    def method(self, name=None, *, raw=False, context=False, inline=False, **policy):
        """Decorator registering a function as the method ``name``
        (default: the function's name).

        ``async def`` functions run on the worker's event loop (one thread):
        ``$/cancelRequest`` and stdin EOF cancel their task, and
        ``asyncio.CancelledError`` becomes the cancelled error (-32800).
        Sync functions run on the thread pool (or inline, see ``threads``).

        Policy and description for the manifest (all optional): ``idempotent``
        (bool: safe to retry), ``cache`` (a TTL such as ``"10m"``, or seconds:
        results may be cached that long), ``timeout`` (``"5s"``: the call's
        own deadline), ``schema`` (the params JSON Schema, replacing the one
        built from the signature and type hints), ``result_schema``,
        ``description`` (default: the docstring).

        * dict params are passed as keyword arguments, list params
          positionally, absent/null params as no arguments; arguments that do
          not bind to the function's signature answer ``-32602``.
        * ``raw=True`` passes the params object itself (dict, list or None) as
          one positional argument instead.
        * ``context=True`` passes a ``Context`` as the first argument.
        * ``inline=True`` runs the method in the I/O loop even when
          ``max_concurrency`` > 1 (for cheap methods that should not pay for
          a thread hand-off).
        """

        def register(fn):
            self.add_method(name if name is not None else fn.__name__, fn,
                            raw=raw, context=context, inline=inline, **policy)
            return fn

        if callable(name):  # used bare: @worker.method
            fn, name = name, None
            return register(fn)
        return register

    def add_method(self, name, fn, *, raw=False, context=False, inline=False, idempotent=None, cache=None,
                   timeout=None, schema=None, result_schema=None, description=None):
        """Register ``fn`` as ``name`` (the non-decorator form of ``method``)."""
        if type(name) is not str or not name:
            raise ValueError("method name must be a non-empty string, got %r" % (name,))
        if name.startswith("$/") or name.startswith("rpc."):
            raise ValueError("method names starting with '$/' or 'rpc.' are reserved: %r" % name)
        if name in self._methods:
            raise ValueError("method %r is already registered" % name)
        if not callable(fn):
            raise TypeError("method %r is not callable" % name)
        for what, value in (("schema", schema), ("result_schema", result_schema)):
            if value is not None and not isinstance(value, (dict, bool)):
                raise TypeError("%s of %r must be a JSON Schema (a dict), got %r" % (what, name, value))
        options = {"idempotent": idempotent, "cache": cache, "timeout": timeout, "schema": schema,
                   "result_schema": result_schema, "description": description}
        manifest = describe_method(name, fn, raw=bool(raw), context=bool(context), options=options)
        self._methods[name] = _Method(name, fn, bool(raw), bool(context), bool(inline),
                                      _is_async(fn), manifest)

    @property
    def methods(self):
        """The registered method names, sorted."""
        return sorted(self._methods)

    def manifest(self):
        """What the worker announces in ``$/ready`` (without ``pid``): protocol
        version, advertised concurrency, name, version and every method with
        its description, schemas and policy."""
        return {
            "protocol_version": PROTOCOL_VERSION,
            "max_concurrency": self.concurrency()[1],
            "name": self.name,
            "version": self.version,
            "methods": [self._methods[n].manifest for n in sorted(self._methods)],
        }

    # -- entry points -----------------------------------------------------

    def apply_args(self, ns):
        """Apply parsed ``build_arg_parser()`` flags over the constructor options."""
        for flag in ("handshake", "framing", "max_concurrency", "threads", "max_frame", "max_pending"):
            value = getattr(ns, flag, None)
            if value is not None:
                setattr(self, flag, value)
        if getattr(ns, "flush_per_message", False):
            self.flush_per_message = True
        self._validate()

    def main(self, argv=None):
        """Parse the standard flags (``--help`` lists them), run, return the
        exit code: ``raise SystemExit(worker.main())``."""
        parser = build_arg_parser("%s %s (pybridge worker)" % (self.name, self.version))
        try:
            self.apply_args(parser.parse_args(argv))
        except ValueError as exc:
            parser.error(str(exc))  # exits 2 with the usage line, like any bad flag
        return self.run()

    def run(self, in_fd=None, out_fd=None):
        """Serve until stdin EOF or ``$/shutdown``; return the exit code (0).

        With explicit ``in_fd``/``out_fd`` the process's stdio is left alone.
        """
        self._validate()
        if in_fd is None and out_fd is None and self.isolate_stdio:
            in_fd, out_fd = isolate_stdio()
        else:
            if in_fd is None:
                in_fd = 0
            if out_fd is None:
                try:
                    sys.stdout.flush()
                except (OSError, ValueError):
                    pass
                out_fd = 1
        self._in_fd, self._out_fd = in_fd, out_fd
        for fd in (in_fd, out_fd):
            # A parent may hand over non-blocking pipes; the loop relies on
            # blocking reads and writes (EAGAIN would look like a failure).
            try:
                os.set_blocking(fd, True)
            except OSError:
                pass
        self._loop_ident = threading.get_ident()
        self._framer = (_NdjsonFramer if self.framing == "ndjson" else _ContentLengthFramer)(self.max_frame)
        self._frame = self._framer.frame
        # Room for the envelope and a Content-Length header around a result.
        self._max_result = self.max_frame - 64
        if hasattr(select, "poll"):
            self._poller = select.poll()
            self._poller.register(in_fd, select.POLLIN)
        threads, _ = self.concurrency()
        if threads > 0:
            self._start_pool(threads)
        if any(m.is_async for m in self._methods.values()):
            self._start_loop()
        if self._slots is None and (self._jobs is not None or self._loop is not None):
            self._slots = threading.Semaphore(self.max_pending)
            if hasattr(select, "poll"):
                self._wake_r, self._wake_w = os.pipe()
                os.set_blocking(self._wake_w, False)
                self._serve_poller = select.poll()
                self._serve_poller.register(in_fd, select.POLLIN)
                self._serve_poller.register(self._wake_r, select.POLLIN)
        _context._active_worker = self
        try:
            self._announce()
            self._serve()
        except KeyboardInterrupt:
            self._exit_code = 130
        finally:
            self._finish()
            if _context._active_worker is self:
                _context._active_worker = None
        return self._exit_code

    def _announce(self):
        if self.handshake == "ready-line":
            # A frame like any other: "READY\n" in NDJSON, and a 5-byte body
            # under Content-Length, so the bridge's decoder never desyncs.
            self._write_all(self._frame("READY"))
        elif self.handshake == "notification":
            params = {"pid": os.getpid()}
            params.update(self.manifest())
            try:
                body = _encode({"jsonrpc": "2.0", "method": "$/ready", "params": params})
            except _ENCODE_ERRORS as exc:
                # A schema given to the decorator that JSON cannot hold.
                _stderr("warning: the manifest is not JSON (%s); announcing method names only" % exc)
                params["methods"] = self.methods
                body = _encode({"jsonrpc": "2.0", "method": "$/ready", "params": params})
            self._write_all(self._frame(body))

    # -- the loop ----------------------------------------------------------

    def _serve(self):
        backlog = self._backlog
        popleft = backlog.popleft
        process = self._process
        handle_one = self._handle_one
        frame = self._frame
        read = os.read
        fd = self._in_fd
        while True:
            if not backlog:
                self._flush_pending()
                if self._eof or self._stopping:
                    break
                if self._serve_poller is not None and not self._wait_readable():
                    continue  # woken: look at _stopping again
                try:
                    chunk = read(fd, READ_SIZE)
                except OSError as exc:
                    _stderr("reading stdin failed: %s" % exc)
                    self._eof = True
                    break
                if not chunk:
                    self._eof = True
                    self._cancel_all()
                    break
                self._ingest(chunk, False)
                continue
            msg = popleft()
            if type(msg) is dict:  # the common case, without one more call
                body = handle_one(msg, None)
                if body is not None:
                    self._pending.append(frame(body))
            else:
                process(msg)
            if self.flush_per_message:
                self._flush_pending()
            if self._stopping:
                self._refuse_backlog()
                self._flush_pending()
                break

    def _wait_readable(self):
        """Block until stdin is readable (True) or the wake pipe fires (False)."""
        while True:
            try:
                events = self._serve_poller.poll()
            except InterruptedError:  # pragma: no cover - retried by Python since 3.5
                continue
            woken = False
            for fd, _ in events:
                if fd == self._wake_r:
                    woken = True
                    try:
                        os.read(self._wake_r, 64)
                    except OSError:
                        pass
                else:
                    return True
            if woken:
                return False

    def _ingest(self, chunk, polling):
        """Frame and parse a chunk into the backlog. ``$/cancelRequest`` takes
        effect here, ahead of the requests queued before it; while a method
        runs inline (``polling``), ``$/ping`` is answered here too."""
        backlog = self._backlog
        append = backlog.append
        scan = _scan
        for frame in self._framer.feed(chunk):
            if type(frame) is not bytes:
                append(frame)
                continue
            try:
                # Parsing inlined: this runs once per message.
                text = frame.decode("utf-8")
                msg = None
                if scan is not None:
                    try:
                        msg, end = scan(text, 0)
                        if end != len(text):
                            msg = None
                    except StopIteration:
                        pass
                if msg is None:
                    msg = _decode_full(text)
            except (ValueError, RecursionError) as exc:
                if frame.strip():
                    backlog.append(_Bad(PARSE_ERROR, "Parse error", {"type": "ParseError", "message": str(exc)[:200]}))
                continue
            if b"$/" in frame and self._prescan(msg, polling):
                continue
            append(msg)

    def _prescan(self, msg, polling):
        items = (msg,) if type(msg) is dict else msg if type(msg) is list else ()
        for m in items:
            if type(m) is not dict:
                continue
            method = m.get("method")
            if method == "$/cancelRequest":
                params = m.get("params")
                if type(params) is dict and type(params.get("id")) in (int, str, float):
                    rid = params["id"]
                    self._cancel_ahead.add(rid)
                    if self._cur_ctx is not None and _same_id(self._cur_id, rid):
                        self._cur_ctx._cancel()
            elif method == "$/ping" and m is msg and "id" in m:
                if polling:
                    self._pending.append(self._frame(self._handle_one(m, None)))
                    self._flush_pending()
                    return True
                self._backlog_has_ping = True
        return False

    def _answer_backlog_pings(self):
        """A method is waiting inline: answer the pings queued behind it now,
        so health checks do not wait for a slow call."""
        self._backlog_has_ping = False
        keep = collections.deque()
        for msg in self._backlog:
            if type(msg) is dict and msg.get("method") == "$/ping" and "id" in msg:
                self._pending.append(self._frame(self._handle_one(msg, None)))
            else:
                keep.append(msg)
        self._backlog.clear()
        self._backlog.extend(keep)
        self._flush_pending()

    def _process(self, msg):
        kind = type(msg)
        if kind is dict:
            body = self._handle_one(msg, None)
            if body is not None:
                self._pending.append(self._frame(body))
        elif kind is list:
            self._handle_batch(msg)
        elif kind is _Bad:
            self._pending.append(self._frame(_error_body(_NO_ID, msg.code, msg.message, msg.data)))
        else:
            self._pending.append(self._frame(_error_body(
                _NO_ID, INVALID_REQUEST, "Invalid Request",
                {"type": "InvalidRequest", "message": "a request must be a JSON object or an array of them"})))

    def _handle_batch(self, msgs):
        if not msgs:
            self._pending.append(self._frame(_error_body(
                _NO_ID, INVALID_REQUEST, "Invalid Request",
                {"type": "InvalidRequest", "message": "empty batch"})))
            return
        batch = _Batch(self) if self._jobs is not None or self._loop is not None else None
        bodies = []
        for m in msgs:
            if type(m) is dict:
                body = self._handle_one(m, batch)
            else:
                body = _error_body(_NO_ID, INVALID_REQUEST, "Invalid Request",
                                   {"type": "InvalidRequest", "message": "a batch element must be a JSON object"})
            if body is not None:
                bodies.append(body)
        if batch is not None:
            # Runs on the loop thread: its output joins this read's responses
            # unless some element is still running on the pool.
            with self._state_lock:
                batch.bodies += bodies
                batch.sealed = True
                done = batch.outstanding == 0
            if done and batch.bodies:
                self._pending.append(self._frame("[" + ",".join(batch.bodies) + "]"))
        elif bodies:
            self._pending.append(self._frame("[" + ",".join(bodies) + "]"))

    def _invalid(self, rid, message):
        if rid is not _NO_ID and type(rid) not in _ID_TYPES:
            rid = None
        return _error_body(rid, INVALID_REQUEST, "Invalid Request",
                           {"type": "InvalidRequest", "message": message})

    def _handle_one(self, msg, batch):
        """Answer one request object: its response body, or None when there is
        none (a notification) or it comes later (a pool job)."""
        method = msg.get("method")
        rid = msg.get("id", _NO_ID)
        if msg.get("jsonrpc") != "2.0":
            return self._invalid(rid, 'jsonrpc must be "2.0"')
        if type(method) is not str:
            return self._invalid(rid, "method must be a string")
        if rid is not _NO_ID and (type(rid) not in _ID_TYPES):
            return self._invalid(rid, "id must be a string, a number or null")
        params = msg.get("params")
        if params is not None and type(params) is not dict and type(params) is not list:
            return self._invalid(rid, "params must be an object or an array")
        spec = self._methods.get(method)
        if spec is None:
            if method.startswith("$/"):
                return self._reserved(method, rid, params)
            if rid is _NO_ID:
                return None
            return _error_body(rid, METHOD_NOT_FOUND, "Method not found",
                               {"type": "MethodNotFound", "message": "no method named %r" % method, "method": method})
        if self._cancel_ahead and rid is not _NO_ID and rid in self._cancel_ahead:
            return _cancelled_body(rid, False)
        if self._stopping:
            return None if rid is _NO_ID else _error_body(
                rid, SHUTTING_DOWN, "worker is shutting down",
                {"type": "ShuttingDown", "message": "request arrived after $/shutdown"})
        meta = msg.get("_meta")
        if meta is not None:
            # The caller's trace context: on the context, and a span when
            # OpenTelemetry is importable (tracing_support.py).
            spec = _tracing.traced(spec, rid, meta)
        if spec.is_async:
            self._submit(spec, rid, params, batch, self._loop_submit)
            return None
        if self._jobs is None or spec.inline:
            return self._run_inline(spec, rid, params)
        self._submit(spec, rid, params, batch, self._pool_put)
        return None

    def _run_inline(self, spec, rid, params):
        self._cur_id = rid
        self._cur_spec = spec
        ctx = None
        try:
            if spec.context:
                ctx = self._cur_ctx = Context(self, spec.name, rid, True)
                result = self._invoke(spec, params, ctx)
            elif spec.raw:
                result = spec.fn(params)
            elif params is None:
                result = spec.fn()
            elif type(params) is dict:
                result = spec.fn(**params)
            else:
                result = spec.fn(*params)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: B036 - every failure becomes a response
            body = self._exception_body(rid, exc, spec, params, ctx)
        else:
            if rid is _NO_ID:
                body = None
            elif type(rid) is int:  # _result_body()'s fast path, inlined
                try:
                    encoded = _encode(result)
                except _ENCODE_ERRORS:
                    body = self._result_body(rid, result)
                else:
                    if len(encoded) > self._max_result:
                        body = self._too_large(rid, len(encoded))
                    else:
                        body = '{"jsonrpc":"2.0","id":%d,"result":%s}' % (rid, encoded)
            else:
                body = self._result_body(rid, result)
        finally:
            self._cur_id = _NO_ID
            self._cur_ctx = None
            self._cur_spec = None
        return body

    def _inline_context(self):
        if self._cur_id is _NO_ID and self._cur_spec is None:
            return None
        if self._cur_ctx is None:
            self._cur_ctx = Context(self, self._cur_spec.name, self._cur_id, True)
        return self._cur_ctx

    @staticmethod
    def _invoke(spec, params, ctx):
        fn = spec.fn
        if ctx is None:
            if spec.raw:
                return fn(params)
            if params is None:
                return fn()
            if type(params) is dict:
                return fn(**params)
            return fn(*params)
        if spec.raw:
            return fn(ctx, params)
        if params is None:
            return fn(ctx)
        if type(params) is dict:
            return fn(ctx, **params)
        return fn(ctx, *params)

    def _result_body(self, rid, result):
        try:
            encoded = _encode(result)
        except _ENCODE_ERRORS as exc:
            if inspect.isawaitable(result):
                if inspect.iscoroutine(result):
                    result.close()  # never awaited, on purpose: no RuntimeWarning
                return _error_body(rid, INTERNAL_ERROR, "method returned a coroutine", {
                    "type": "CoroutineResult",
                    "message": "the method returned a coroutine instead of a result: declare it with "
                               "`async def` so the worker awaits it on its event loop, or await it "
                               "inside the method",
                })
            return _error_body(rid, INTERNAL_ERROR, "result is not JSON-serializable", {
                "type": type(exc).__name__,
                "message": "result is not JSON-serializable: %s" % exc,
            })
        if len(encoded) > self._max_result:
            return self._too_large(rid, len(encoded))
        if type(rid) is int:
            return '{"jsonrpc":"2.0","id":%d,"result":%s}' % (rid, encoded)
        return '{"jsonrpc":"2.0","id":%s,"result":%s}' % (_encode(rid), encoded)

    def _too_large(self, rid, size):
        # The bridge would have to skip a frame this large without reading its
        # id, and the call would wait out its deadline: answer with an error.
        _stderr("response to id %r is %d bytes, above max_frame %d; sent an error instead"
                % (rid, size, self.max_frame))
        return _error_body(rid, INTERNAL_ERROR, "response too large", {
            "type": "ResponseTooLarge",
            "message": "the response is %d bytes, above the %d-byte frame limit" % (size, self.max_frame),
            "size": size,
            "limit": self.max_frame,
        })

    def _exception_body(self, rid, exc, spec, params, ctx):
        if isinstance(exc, TypeError) and not spec.raw:
            args = [ctx] if spec.context else []
            kwargs = {}
            if type(params) is dict:
                kwargs = params
            elif type(params) is list:
                args += params
            problem = spec.binding_error(args, kwargs)
            if problem is not None:
                if rid is _NO_ID:
                    _stderr("notification %s: invalid params: %s" % (spec.name, problem))
                    return None
                return _error_body(rid, INVALID_PARAMS, "Invalid params: %s" % problem,
                                   {"type": "TypeError", "message": problem})
        if rid is _NO_ID:
            _stderr("notification %s raised %s" % (spec.name, _format_traceback(exc)))
            return None
        return self._exception_response(rid, exc)

    def _exception_response(self, rid, exc):
        name = type(exc).__name__
        text = str(exc)
        data = {"type": name, "message": text, "traceback": _format_traceback(exc)}
        recoverable = getattr(exc, "recoverable", None)
        if type(recoverable) is bool:
            data["recoverable"] = recoverable
        retry = getattr(exc, "retry_after_ms", None)
        if type(retry) in (int, float) and retry == retry and retry >= 0:
            data["retry_after_ms"] = int(retry)
        if isinstance(exc, RpcError):
            code = exc.code
            message = exc.message or name
            if isinstance(exc, RequestCancelled):
                data["started"] = True
            if isinstance(exc.data, dict):
                data.update(exc.data)
            elif exc.data is not None:
                data["details"] = exc.data
        else:
            code = INTERNAL_ERROR
            message = "%s: %s" % (name, text) if text else name
        body = _error_body(rid, code, message, data)
        if len(body) > self._max_result:
            return self._too_large(rid, len(body))
        return body

    def _reserved(self, method, rid, params):
        if method == "$/ping":
            if rid is _NO_ID:
                return None
            result = {"pid": os.getpid()}
            rss = _rss_bytes()
            if rss is not None:
                result["rss_bytes"] = rss
            return self._result_body(rid, result)
        if method == "$/cancelRequest":
            if type(params) is dict and type(params.get("id")) in (int, str, float):
                self._cancel_request(params["id"])
            else:
                _stderr("ignored $/cancelRequest without a valid id: %r" % (params,))
            return None if rid is _NO_ID else self._result_body(rid, None)
        if method == "$/shutdown":
            self._stopping = True
            if rid is not _NO_ID:
                self._shutdown_reply = rid  # answered once in-flight work is done
            return None
        if rid is _NO_ID:
            return None
        return _error_body(rid, METHOD_NOT_FOUND, "Method not found",
                           {"type": "MethodNotFound", "message": "no reserved method %r" % method, "method": method})

    def _refuse_backlog(self):
        """After $/shutdown, answer what was sent after it instead of running it."""
        backlog = self._backlog
        while backlog:
            msg = backlog.popleft()
            items = [msg] if type(msg) is dict else msg if type(msg) is list else []
            bodies = []
            for m in items:
                if type(m) is dict and "id" in m and type(m["id"]) in _ID_TYPES:
                    bodies.append(_error_body(m["id"], SHUTTING_DOWN, "worker is shutting down",
                                              {"type": "ShuttingDown", "message": "request arrived after $/shutdown"}))
            if type(msg) is list:
                if bodies:
                    self._pending.append(self._frame("[" + ",".join(bodies) + "]"))
            else:
                for body in bodies:
                    self._pending.append(self._frame(body))

    # -- inline cancellation: looking at stdin while a method runs -----------

    def _poll_input(self, timeout, throttle=False):
        """Read what stdin holds now (waiting up to ``timeout``) into the backlog."""
        if threading.get_ident() != self._loop_ident:
            if timeout > 0:
                time.sleep(timeout)
            return
        if throttle:
            now = time.monotonic()
            if now - self._last_poll < 0.001:
                return
            self._last_poll = now
        if self._backlog_has_ping:
            self._answer_backlog_pings()
        if self._eof or self._stopping or len(self._backlog) >= self.max_pending:
            if timeout > 0:
                time.sleep(timeout)
            return
        try:
            if self._poller is not None:
                ready = self._poller.poll(int(timeout * 1000 + 0.999))
            else:  # pragma: no cover - platforms without poll()
                ready = select.select([self._in_fd], [], [], timeout)[0]
        except (OSError, ValueError):
            return
        if not ready:
            return
        chunk = os.read(self._in_fd, READ_SIZE)
        if not chunk:
            self._eof = True
            return
        self._ingest(chunk, True)

    def _inline_wait(self, ctx, seconds):
        # Responses computed before this slow method should not wait for it.
        if threading.get_ident() == self._loop_ident:
            self._flush_pending()
        deadline = time.monotonic() + seconds
        while not ctx._cancelled:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._poll_input(remaining)
            if self._eof:
                # The host is gone: nobody will read the answer.
                ctx._cancel()
        return True

    def _finish(self):
        """Let in-flight work finish, send everything, answer $/shutdown.

        After stdin EOF (and no ``$/shutdown``) the wait is bounded by
        ``EOF_GRACE`` seconds: cancelled work that does not stop is left to
        die with the process (the pool threads are daemons), so a worker whose
        host died never outlives it by more than that."""
        if self._jobs is not None:
            for _ in self._threads:
                self._jobs.put(None)
            bounded = self._eof and not self._stopping
            deadline = time.monotonic() + EOF_GRACE
            for t in self._threads:
                t.join(max(0.0, deadline - time.monotonic()) if bounded else None)
            self._threads = []
            self._jobs = None
        if self._loop is not None:
            bounded = self._eof and not self._stopping
            self._stop_loop(time.monotonic() + EOF_GRACE if bounded else None)
        self._flush_pending()
        if self._shutdown_reply is not _NO_ID:
            self._send([self._frame(self._result_body(self._shutdown_reply, None))])
            self._shutdown_reply = _NO_ID
        self._wait_output_idle()
        for fd in (self._wake_r, self._wake_w):
            if fd is not None:
                os.close(fd)
        self._wake_r = self._wake_w = self._serve_poller = None

def _is_async(fn):
    """Whether calling ``fn`` returns a coroutine to await (``async def``,
    also behind ``functools.partial`` or a bound method)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


DISPATCH_CODES.update(
    f.__code__ for f in (Worker._run_inline, Worker._invoke, Worker._pool_thread, Worker._run_async)
)

