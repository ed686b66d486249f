"""What a running method knows about its call (``Context``), cancellation,
and the module-level helpers that find the running request and worker."""

import contextvars
import threading

from .codec import _NO_ID, _stderr
from .errors import RequestCancelled

__all__ = ["Context", "current_context", "log"]

# A request's state on the thread pool or the event loop.
_QUEUED, _RUNNING, _DONE = 0, 1, 2

class Context:
    """What a running method knows about its call.

    ``id`` (None for a notification), ``method``, ``cancelled`` (bool),
    ``cancel_event`` (a ``threading.Event`` set on cancellation),
    ``check_cancelled()``, ``wait(seconds)``, ``await sleep(seconds)`` (in
    ``async def`` methods), ``log(...)`` and ``trace_context`` (the caller's
    W3C trace context, or None).

    On the thread pool and the event loop the flag is set as soon as
    ``$/cancelRequest`` arrives (and an async method's task is cancelled).
    Inline (``threads=0``) the loop is busy running the method, so
    ``cancelled`` and ``wait()`` look at stdin themselves: a method that checks
    either is cancellable inline too (and ``$/ping`` is answered meanwhile).
    """

    __slots__ = ("id", "method", "worker", "_rid", "_cancelled", "_event", "_inline",
                 "_state", "_spec", "_params", "_batch", "_task", "_run_id")

    def __init__(self, worker, method, rid, inline):
        self.worker = worker
        self._run_id = worker._run_id
        self.method = method
        self.id = None if rid is _NO_ID else rid
        self._rid = rid
        self._inline = inline
        self._cancelled = False
        self._event = None
        self._state = _QUEUED
        self._spec = None
        self._params = None
        self._batch = None
        self._task = None  # the asyncio task running an async method

    def __repr__(self):
        return "Context(method=%r, id=%r, cancelled=%r)" % (self.method, self.id, self._cancelled)

    @property
    def trace_context(self):
        """The caller's W3C trace context from the request's ``_meta``: a dict
        with ``traceparent`` and, when not empty, ``tracestate``; None when
        the request carried none."""
        spec = self._spec
        if spec is None and self._inline:
            spec = self.worker._cur_spec
        return None if spec is None else spec.trace_context

    @property
    def is_notification(self):
        """True when no response is expected (the message had no id)."""
        return self._rid is _NO_ID

    @property
    def cancelled(self):
        """True once ``$/cancelRequest`` named this request, or stdin closed."""
        if not self._cancelled and self._inline:
            self.worker._poll_input(0.0, throttle=True)
            if self.worker._eof:
                self._cancel()
        return self._cancelled

    @property
    def cancel_event(self):
        """A ``threading.Event`` set when the request is cancelled (inline, it is
        only updated by ``cancelled``/``wait()``, since nothing else runs)."""
        if self._event is None:
            with self.worker._state_lock:
                if self._event is None:
                    event = threading.Event()
                    if self._cancelled:
                        event.set()
                    self._event = event
        return self._event

    def check_cancelled(self):
        """Raise ``RequestCancelled`` if the request was cancelled."""
        if self.cancelled:
            raise RequestCancelled()

    def wait(self, seconds):
        """Sleep up to ``seconds``; return True early as soon as cancelled."""
        seconds = max(0.0, float(seconds))
        if self._inline:
            return self.worker._inline_wait(self, seconds)
        return self.cancel_event.wait(seconds)

    async def sleep(self, seconds):
        """In an ``async def`` method: sleep ``seconds`` on the event loop.
        Cancellation interrupts it with ``asyncio.CancelledError`` (let it
        propagate: the worker answers -32800). ``wait()`` would block the
        loop, and every async method with it."""
        import asyncio  # loaded only by workers with async methods

        if self._cancelled:
            raise asyncio.CancelledError()
        await asyncio.sleep(max(0.0, float(seconds)))

    def log(self, level, message, **fields):
        """``Worker.log`` with this request's id added as ``request_id``."""
        if self.id is not None:
            fields.setdefault("request_id", self.id)
        self.worker.log(level, message, **fields)

    def _cancel(self):
        # Called by the loop thread; with the pool or the event loop, under
        # _state_lock.
        self._cancelled = True
        if self._event is not None:
            self._event.set()
        task = self._task
        if task is not None:
            try:
                self.worker._loop.call_soon_threadsafe(task.cancel)
            except RuntimeError:  # the event loop is closed: the process is exiting
                pass


_tls = threading.local()
# The request an asyncio task runs (each task has its own copy).
_async_ctx = contextvars.ContextVar("pybridge_worker_context", default=None)
_active_worker = None


def current_context():
    """The Context of the request running on this thread (or in this asyncio
    task), or None."""
    ctx = _async_ctx.get()
    if ctx is not None:
        return ctx
    ctx = getattr(_tls, "ctx", None)
    if ctx is not None:
        return ctx
    worker = _active_worker
    if worker is not None and threading.get_ident() == worker._loop_ident:
        return worker._inline_context()
    return None


def log(level, message, **fields):
    """Send a ``$/log`` notification through the running worker (stderr before
    any worker runs)."""
    worker = _active_worker
    if worker is None:
        _stderr("%s: %s %s" % (level, message, fields if fields else ""))
        return
    worker.log(level, message, **fields)

