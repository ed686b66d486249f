"""``async def`` methods: one event loop in its own thread runs them all.

The I/O loop hands each call to the event loop as a task; ``$/cancelRequest``
and stdin EOF cancel the task, and ``asyncio.CancelledError`` becomes the
cancelled error (-32800). Sync and async methods mix in one worker: the
thread pool (or the I/O loop) runs the sync ones.
"""

import threading
import time

from . import context as _context
from .codec import _NO_ID, _cancelled_body, _stderr
from .context import _DONE, _QUEUED, _RUNNING


class _AsyncMixin:
    """The event loop part of ``Worker`` (its state is set up in
    ``Worker.__init__``: ``_loop``, ``_loop_thread``, ``_async_running``,
    ``_async_idle``, all guarded by ``_state_lock``)."""

    def _start_loop(self):
        # asyncio is imported here, not at the top: it costs tens of
        # milliseconds of start-up that workers without async methods skip.
        import asyncio

        loop = asyncio.new_event_loop()
        started = threading.Event()

        def run():
            asyncio.set_event_loop(loop)
            loop.call_soon(started.set)
            try:
                loop.run_forever()
            finally:
                loop.close()

        thread = threading.Thread(target=run, name="pybridge-asyncio", daemon=True)
        thread.start()
        started.wait()
        self._loop, self._loop_thread = loop, thread

    def _loop_submit(self, ctx):
        """Called by the I/O loop: schedule ``ctx`` as a task on the event loop."""
        with self._state_lock:
            self._async_running += 1
        try:
            self._loop.call_soon_threadsafe(self._start_task, ctx)
        except RuntimeError:  # the loop is closed: only while the process exits
            self._async_done(ctx)

    def _start_task(self, ctx):
        # On the event loop thread.
        with self._state_lock:
            start = ctx._state == _QUEUED
            if start:
                ctx._state = _RUNNING
                ctx._task = self._loop.create_task(self._run_async(ctx))
        if not start:
            # Cancelled while queued: already answered.
            self._async_done(ctx)

    async def _run_async(self, ctx):
        import asyncio  # already loaded by _start_loop

        spec, rid, params = ctx._spec, ctx._rid, ctx._params
        _context._async_ctx.set(ctx)  # the task's own copy of the context
        try:
            result = await self._invoke(spec, params, ctx if spec.context else None)
        except asyncio.CancelledError:
            body = None if rid is _NO_ID else _cancelled_body(rid, True)
        except BaseException as exc:  # noqa: B036 - every failure becomes a response
            body = self._exception_body(rid, exc, spec, params, ctx)
        else:
            body = None if rid is _NO_ID else self._result_body(rid, result)
        with self._state_lock:
            ctx._state = _DONE
            ctx._task = None
            if rid is not _NO_ID and self._active.get(rid) is ctx:
                del self._active[rid]
        self._deliver(ctx, body)
        self._async_done(ctx)

    def _async_done(self, ctx):
        with self._state_lock:
            if ctx._run_id != self._run_id:
                return  # a task of a run that has ended: the counters are the next run's
            self._slots.release()
            self._async_running -= 1
            if self._async_running == 0:
                self._async_idle.notify_all()

    def _stop_loop(self, deadline):
        """Wait for the async calls (until ``deadline``, a ``time.monotonic()``
        value, or for ever when None), then stop the loop."""
        with self._state_lock:
            while self._async_running > 0:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    _stderr("%d async call(s) still running at exit" % self._async_running)
                    break
                self._async_idle.wait(remaining)
        loop = self._loop
        try:
            loop.call_soon_threadsafe(loop.stop)
        except RuntimeError:
            return
        remaining = 1.0 if deadline is None else max(0.0, deadline - time.monotonic())
        self._loop_thread.join(remaining)
