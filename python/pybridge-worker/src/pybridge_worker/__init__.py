"""pybridge worker SDK: serve Python functions over JSON-RPC 2.0 on stdin/stdout.

Standard library only (Python 3.9+). A worker registers methods with a
decorator and calls ``run()`` (or ``main()`` to take the command-line flags)::

    from pybridge_worker import Worker, InvalidParams

    worker = Worker("my-worker", "1.0.0")

    @worker.method("math.add", idempotent=True, cache="10m")
    def add(a: int, b: int = 0) -> int:   # {"a": 1, "b": 2} or [1, 2]
        "Add two numbers."
        return a + b

    @worker.method("data.store", raw=True)
    def store(params):              # the params object as sent (or None)
        ...

    @worker.method("jobs.run", context=True)
    def run_job(ctx, steps=10):     # ctx: Context (id, cancelled, wait, log)
        for _ in range(steps):
            if ctx.wait(0.1):       # cooperative sleep; True once cancelled
                raise RequestCancelled()
        return "done"

    @worker.method("jobs.fetch", context=True)
    async def fetch(ctx, url: str):  # async methods run on one event loop
        await ctx.sleep(0.1)        # cancelled by $/cancelRequest or stdin EOF
        return url

    if __name__ == "__main__":
        raise SystemExit(worker.main())

The wire contract this package implements is ``docs/protocol.md`` in the
pybridge repository. In short:

* Framing: NDJSON by default (one compact JSON value per line, blank lines
  skipped, ``\\r\\n`` tolerated) or ``Content-Length`` headers as in LSP. A
  frame above ``max_frame`` bytes is never buffered whole: it is skipped and
  answered once with ``-32600`` and id ``null``. Responses above ``max_frame``
  are replaced by a ``-32603`` error so the bridge never has to drop a frame
  it cannot route.
* Readiness: the notification ``$/ready`` carrying the manifest (default:
  ``{pid, protocol_version, max_concurrency, name, version, methods}``, each
  method with its params schema built from its signature and type hints),
  the line ``READY`` (``handshake="ready-line"``), or nothing (``none``).
* Errors: ``-32700`` unparsable frame, ``-32600`` invalid request, ``-32601``
  unknown method, ``-32602`` invalid params (arguments that do not bind to the
  function, or ``InvalidParams``), ``-32603`` exception (or an ``RpcError``'s
  own code), ``-32800`` cancelled, ``-32005`` sent after ``$/shutdown``. An
  exception's ``error.data`` is ``{type, message, traceback}`` plus
  ``recoverable``/``retry_after_ms`` when the exception carries them.
* Reserved methods: ``$/ping`` -> ``{pid, rss_bytes}``; ``$/cancelRequest``
  ``{id}``; ``$/shutdown`` (finish in-flight work, answer it, exit 0). The
  worker sends ``$/log`` notifications through ``log()``.
* I/O: one ``os.read`` of up to 64 KiB, every complete frame in it handled,
  every response of that read written with one write (one flush per drained
  read). stdin EOF: in-flight work is cancelled (its answers would go
  nowhere), then the worker exits 0 within ``EOF_GRACE`` (1 s).
* Stdio isolation: the protocol runs on private duplicates of fds 0 and 1;
  fd 1 and ``sys.stdout`` point at stderr and fd 0 at /dev/null, so
  ``print()`` and child processes can never corrupt or steal the channel.
* Concurrency: see ``Worker``. By default sync methods run on a pool of
  threads and ``async def`` methods on one event loop, so slow calls do not
  block fast ones; ``threads=0`` runs sync methods inline in the I/O loop
  (fastest for cheap methods, one at a time). Reserved methods are answered
  by the loop, and responses may come out of request order (ids correlate).

``python -m pybridge_worker`` runs the demo worker that pybridge's tests and
benchmarks use: ``test.echo``, ``test.sleep``, ``test.error``, ``test.pid``
(plus ``test.print`` and ``test.log``). See ``--help``.
"""

from ._version import __version__
from .cli import build_arg_parser
from .context import Context, current_context, log
from .demo import demo_worker
from .errors import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    REQUEST_CANCELLED,
    SERVER_ERROR,
    SHUTTING_DOWN,
    InvalidParams,
    MethodNotFound,
    RequestCancelled,
    RetryableError,
    RpcError,
)
from .framing import DEFAULT_MAX_FRAME
from .stdio import isolate_stdio
from .worker import Worker

__all__ = [
    "Worker",
    "Context",
    "RpcError",
    "InvalidParams",
    "MethodNotFound",
    "RequestCancelled",
    "RetryableError",
    "current_context",
    "log",
    "isolate_stdio",
    "build_arg_parser",
    "demo_worker",
    "PARSE_ERROR",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "INVALID_PARAMS",
    "INTERNAL_ERROR",
    "SERVER_ERROR",
    "SHUTTING_DOWN",
    "REQUEST_CANCELLED",
    "DEFAULT_MAX_FRAME",
    "__version__",
]
