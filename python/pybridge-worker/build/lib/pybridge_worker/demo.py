"""The demo worker that pybridge's tests and benchmarks run
(``python -m pybridge_worker``): ``test.echo``, ``test.sleep``,
``test.error``, ``test.pid``, ``test.print`` and ``test.log``."""

import os
import sys
import time
from typing import Optional

from .errors import InvalidParams, RequestCancelled, RetryableError, RpcError
from . import _version
from .worker import Worker

__all__ = ["demo_worker"]

_BUILTIN_ERRORS = {
    "RpcError": RpcError,
    "InvalidParams": InvalidParams,
    "RetryableError": RetryableError,
    "RequestCancelled": RequestCancelled,
}


def demo_worker(**options):
    """The demo worker the pool's tests and benchmarks run (this file as a script)."""
    import builtins

    worker = Worker("pybridge-demo", _version.__version__, **options)

    @worker.method("test.echo", raw=True)
    def echo(params):
        """Return the params unchanged."""
        return params

    @worker.method("test.sleep", context=True)
    def sleep(ctx, seconds: Optional[float] = None, ms: Optional[float] = None):
        """Sleep ``seconds`` (or ``ms``), cancellable; return how long."""
        if seconds is None and ms is None:
            raise InvalidParams("give seconds or ms")
        secs = seconds if seconds is not None else ms / 1000.0
        if type(secs) not in (int, float) or not 0 <= secs <= 86400:
            raise InvalidParams("the duration must be a number of seconds in [0, 86400]")
        started = time.monotonic()
        if ctx.wait(secs):
            raise RequestCancelled(data={"slept": round(time.monotonic() - started, 6)})
        return {"slept": secs}

    @worker.method("test.error")
    def error(type: str = "RuntimeError", message: str = "test error", code: Optional[int] = None,
              recoverable: Optional[bool] = None, retry_after_ms: Optional[float] = None):
        """Raise an exception of ``type`` (a builtin or an SDK error), or an
        ``RpcError`` with ``code``."""
        if code is not None:
            raise RpcError(message, code, recoverable=recoverable, retry_after_ms=retry_after_ms)
        cls = _BUILTIN_ERRORS.get(type)
        if cls is RetryableError:
            raise RetryableError(message, retry_after_ms=retry_after_ms)
        if cls is not None:
            raise cls(message)
        cls = getattr(builtins, str(type), None)
        if not (isinstance(cls, builtins.type) and issubclass(cls, Exception)):
            cls = RuntimeError
        try:
            exc = cls(message)
        except Exception:  # types whose constructor wants other arguments
            exc = RuntimeError(message)
        raise exc

    @worker.method("test.pid")
    def pid() -> int:
        """The worker's process id."""
        return os.getpid()

    @worker.method("test.print")
    def print_(text: str = "hello from print()", child: bool = False):
        """``print()`` ``text`` (and from a child process with ``child``):
        it goes to stderr, never into the protocol stream."""
        print(text)
        sys.stdout.flush()
        if child:
            import subprocess

            subprocess.run(["/bin/sh", "-c", 'echo "$0"; cat', text], check=True)
        return {"printed": text}

    @worker.method("test.log")
    def log_(level: str = "info", message: str = "hello", fields: Optional[dict] = None):
        """Send a ``$/log`` notification."""
        worker.log(level, message, **(fields or {}))
        return None

    return worker
