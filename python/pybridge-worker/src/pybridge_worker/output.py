"""Output: frames from any thread leave through one writer at a time, in few
writes; batches whose elements run on threads are answered as one array;
``$/log`` notifications."""

import os

from .cli import LOG_LEVELS
from .codec import _ENCODE_ERRORS, _encode, _lenient_encoder, _stderr
from .context import _tls


class _Batch:
    """Collects the responses of one batch whose elements run on the pool."""

    __slots__ = ("worker", "bodies", "outstanding", "sealed", "run_id")

    def __init__(self, worker):
        self.worker = worker
        self.run_id = worker._run_id
        self.bodies = []
        self.outstanding = 0
        self.sealed = False

    def complete(self, body):
        with self.worker._state_lock:
            if body is not None:
                self.bodies.append(body)
            self.outstanding -= 1
            done = self.sealed and self.outstanding == 0
        if done:
            self._emit()

    def _emit(self):
        if self.bodies:
            self.worker._send([self.worker._frame("[" + ",".join(self.bodies) + "]")], self.run_id)


class _OutputMixin:
    """The output part of ``Worker`` (state set up in ``Worker.__init__``:
    ``_out_lock``, ``_out_idle``, ``_outbox``, ``_writing``, ``_idle_waiters``,
    ``_broken``, ``_pending``)."""

    def _deliver(self, ctx, body):
        if ctx._batch is not None:
            ctx._batch.complete(body)
        elif body is not None:
            self._send([self._frame(body)], ctx._run_id)

    def _flush_pending(self):
        pending = self._pending
        if pending:
            self._pending = []
            self._send(pending)

    def _send(self, frames, run_id=None):
        """Queue frames for stdout from any thread. The first thread to find no
        writer active becomes the writer and drains the queue, so frames from
        many threads leave in few writes and no thread waits on another.
        Frames of a run other than ``run_id`` (None: the current one) are
        dropped: that run's reader is gone."""
        lock = self._out_lock
        with lock:
            if run_id is not None and run_id != self._run_id:
                return
            if self._writing:
                self._outbox += frames
                return
            self._writing = True
        # This thread is the writer. It runs once per read: in the common
        # case (one thread, nothing queued meanwhile) it costs one write and
        # two uncontended lock acquisitions, with no notify nobody waits for.
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        while True:
            try:
                self._write_all(data)
            except OSError as exc:
                self._on_broken_output(exc)
            with lock:
                box = self._outbox
                if not box:
                    self._writing = False
                    if self._idle_waiters:
                        self._out_idle.notify_all()
                    return
                self._outbox = []
            data = box[0] if len(box) == 1 else b"".join(box)

    def _write_all(self, data):
        if self._broken:
            return
        fd = self._out_fd
        n = os.write(fd, data)
        if n == len(data):
            return
        view = memoryview(data)[n:]
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def _on_broken_output(self, exc):
        if not self._broken:
            self._broken = True
            self._stopping = True
            _stderr("stdout closed (%s); stopping" % exc)
            if self._wake_w is not None:
                try:
                    os.write(self._wake_w, b"!")  # the I/O loop may be waiting on stdin
                except OSError:
                    pass

    def _wait_output_idle(self):
        with self._out_lock:
            self._idle_waiters += 1
            try:
                while self._writing:
                    self._out_idle.wait()
            finally:
                self._idle_waiters -= 1

    def log(self, level, message, **fields):
        """Send the notification ``$/log`` ``{level, message, fields?}`` (any
        thread). Before ``run()`` it goes to stderr."""
        level = str(level).lower()
        if level not in LOG_LEVELS:
            level = "info"
        params = {"level": level, "message": str(message)}
        if fields:
            params["fields"] = fields
        if self._out_fd is None:
            _stderr("%s: %s %s" % (level, message, fields if fields else ""))
            return
        try:
            body = _encode({"jsonrpc": "2.0", "method": "$/log", "params": params})
        except _ENCODE_ERRORS:
            body = _lenient_encoder.encode({"jsonrpc": "2.0", "method": "$/log", "params": params})
        ctx = getattr(_tls, "ctx", None)
        self._send([self._frame(body)], None if ctx is None else ctx._run_id)
