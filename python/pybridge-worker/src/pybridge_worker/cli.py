"""The standard worker flags, as an ``argparse`` parser others can extend."""

from .framing import DEFAULT_MAX_FRAME

__all__ = ["build_arg_parser", "default_args"]

HANDSHAKES = ("ready-line", "notification", "none")
FRAMINGS = ("ndjson", "content-length")
LOG_LEVELS = ("trace", "debug", "info", "warn", "warning", "error")
#: Default bound on requests queued or running on the thread pool. The loop
#: stops reading stdin while it is reached, which pushes back on the bridge.
DEFAULT_MAX_PENDING = 1024


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise ValueError("must be >= 1")
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise ValueError("must be >= 0")
    return value


def default_args():
    """What ``build_arg_parser().parse_args([])`` returns, without importing
    ``argparse`` (and ``gettext`` and ``locale`` with it): a worker started
    with no flags is ready a few milliseconds sooner."""
    import types

    return types.SimpleNamespace(handshake=None, framing=None, max_concurrency=None, threads=None,
                                 max_frame=None, max_pending=None, flush_per_message=False,
                                 listen=None, once=False, secret_file=None, insecure=False)


def build_arg_parser(description=None):
    """The standard worker flags, as an ``argparse`` parser others can extend."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--handshake", choices=HANDSHAKES, default=None,
                        help="how to announce readiness (default: notification, $/ready with the manifest)")
    parser.add_argument("--framing", choices=FRAMINGS, default=None,
                        help="message framing on stdin/stdout (default: ndjson)")
    parser.add_argument("--max-concurrency", type=_positive_int, default=None, metavar="N",
                        help="calls the worker takes at once, advertised to the pool; alone it also sets "
                             "--threads (1 means inline) (default: 16)")
    parser.add_argument("--threads", type=_non_negative_int, default=None, metavar="N",
                        help="threads running sync methods; 0 runs them inline in the I/O loop "
                             "(default: --max-concurrency)")
    parser.add_argument("--max-frame", type=_positive_int, default=None, metavar="BYTES",
                        help="largest frame read or written (default: %d)" % DEFAULT_MAX_FRAME)
    parser.add_argument("--max-pending", type=_positive_int, default=None, metavar="N",
                        help="requests queued on the thread pool before reading pauses (default: %d)"
                        % DEFAULT_MAX_PENDING)
    parser.add_argument("--flush-per-message", action="store_true",
                        help="write each response on its own instead of once per read (slower; for "
                             "measurements and fault workers)")
    listen = parser.add_argument_group("listening on a socket instead of stdin/stdout")
    listen.add_argument("--listen", default=None, metavar="URL",
                        help="serve bridge connections, one at a time, on tcp://HOST:PORT or "
                             "unix:/path/to.sock")
    listen.add_argument("--once", action="store_true",
                        help="exit after the first connection ends")
    listen.add_argument("--secret-file", default=None, metavar="PATH",
                        help="the secret shared with the bridge (default: $PYBRIDGE_WORKER_SECRET)")
    listen.add_argument("--insecure", action="store_true",
                        help="let a TCP listener run without a secret")
    return parser

