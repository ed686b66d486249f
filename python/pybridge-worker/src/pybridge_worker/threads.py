"""The thread pool that runs sync methods (``threads`` > 0), and
cancellation of the calls on it and on the event loop."""

import threading

from .codec import _NO_ID, _cancelled_body
from .context import _DONE, _QUEUED, _RUNNING, Context, _tls


class _ThreadsMixin:
    """The thread pool part of ``Worker`` (state set up in ``Worker.__init__``:
    ``_jobs``, ``_threads``, ``_slots``, ``_active``, guarded by
    ``_state_lock``)."""

    def _cancel_request(self, rid):
        # Requests earlier in the stream that were already answered -32800 at
        # their turn are done; forget the id so the set stays small.
        self._cancel_ahead.discard(rid)
        if self._slots is None:
            return
        with self._state_lock:
            ctx = self._active.get(rid)
            if ctx is None:
                return
            if ctx._state == _QUEUED:
                ctx._state = _DONE  # the pool thread will skip it
                del self._active[rid]
                answer = True
            else:
                ctx._cancel()
                answer = False
        if answer:
            self._deliver(ctx, _cancelled_body(ctx.id, False))

    def _start_pool(self, threads):
        try:
            from _queue import SimpleQueue  # what queue.SimpleQueue is, without queue's imports
        except ImportError:  # pragma: no cover - an interpreter without the C module
            from queue import SimpleQueue

        self._jobs = SimpleQueue()
        self._max_threads = threads
        # Threads start on demand: a worker is ready without waiting for
        # all of them to be scheduled (Thread.start() waits for each), which
        # matters when a loaded machine replaces crashed workers.
        self._waiting = 0  # threads free to take a job (or starting to)
        self._queued_jobs = 0  # jobs put and not taken yet

    def _pool_put(self, ctx):
        """Queue a job; start a thread when none is free, up to ``threads``."""
        with self._state_lock:
            self._queued_jobs += 1
            grow = self._queued_jobs > self._waiting and len(self._threads) < self._max_threads
            if grow:
                self._waiting += 1
        self._jobs.put(ctx)
        if grow:
            # Only the I/O loop thread touches _threads.
            t = threading.Thread(target=self._pool_thread, name="pybridge-worker-%d" % len(self._threads),
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def _submit(self, spec, rid, params, batch, put):
        if not self._slots.acquire(blocking=False):
            # Full: send what we have, then stop reading until a job finishes.
            self._flush_pending()
            self._slots.acquire()
        ctx = Context(self, spec.name, rid, False)
        ctx._spec = spec
        ctx._params = params
        ctx._batch = batch
        if batch is not None:
            with self._state_lock:
                batch.outstanding += 1
        if rid is not _NO_ID:
            with self._state_lock:
                self._active[rid] = ctx
        put(ctx)

    def _pool_thread(self):
        jobs, slots, run_id = self._jobs, self._slots, self._run_id
        while True:
            ctx = jobs.get()
            if ctx is None:
                return
            try:
                with self._state_lock:
                    if self._run_id != run_id:
                        # Left behind by a run that has ended: its jobs were
                        # cancelled, and the counters are the next run's.
                        return
                    self._waiting -= 1
                    self._queued_jobs -= 1
                    skip = ctx._state != _QUEUED
                    ctx._state = _RUNNING
                if skip:
                    continue  # cancelled while queued: already answered
                spec, rid = ctx._spec, ctx._rid
                _tls.ctx = ctx
                try:
                    result = self._invoke(spec, ctx._params, ctx if spec.context else None)
                except BaseException as exc:  # noqa: B036 - every failure becomes a response
                    body = self._exception_body(rid, exc, spec, ctx._params, ctx)
                else:
                    body = None if rid is _NO_ID else self._result_body(rid, result)
                finally:
                    _tls.ctx = None
                with self._state_lock:
                    ctx._state = _DONE
                    if rid is not _NO_ID and self._active.get(rid) is ctx:
                        del self._active[rid]
                self._deliver(ctx, body)
            finally:
                slots.release()
                with self._state_lock:
                    current = self._run_id == run_id
                    if current:
                        self._waiting += 1
            if not current:
                return

    def _cancel_all(self):
        """stdin closed: the host is gone, so no answer will be read. Running
        work is told it is cancelled (async tasks are cancelled), queued work
        is dropped."""
        if self._slots is None:
            return
        with self._state_lock:
            for rid, ctx in list(self._active.items()):
                if ctx._state == _QUEUED:
                    ctx._state = _DONE
                    del self._active[rid]
                else:
                    ctx._cancel()
