"""JSON in and out: the C encoder and scanner called directly, skipping the
per-call set-up that json.dumps/json.loads do (about half the cost for small
messages), plus the response bodies the SDK itself builds."""

import json
import os
import sys

from .errors import REQUEST_CANCELLED

#: The longest traceback sent in ``error.data`` (its tail is kept).
MAX_TRACEBACK = 32 * 1024

_NO_ID = object()  # marks a notification (no "id" member at all)
_ID_TYPES = (int, str, float, type(None))

#: Code objects of the SDK's dispatch functions: tracebacks start below them.
#: The serving loop adds its own when it is defined.
DISPATCH_CODES = set()

def _reject_constant(name):
    raise ValueError("%s is not valid JSON" % name)


_decoder = json.JSONDecoder(parse_constant=_reject_constant)
_decode_full = _decoder.decode
try:
    from json.scanner import c_make_scanner as _c_make_scanner
except ImportError:  # pragma: no cover - CPython always has it
    _c_make_scanner = None
_scan = _c_make_scanner(_decoder) if _c_make_scanner is not None else None

_encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
_lenient_encoder = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=repr)
try:
    from json.encoder import c_make_encoder as _c_make_encoder
    from json.encoder import encode_basestring_ascii as _ascii_str
except ImportError:  # pragma: no cover
    _c_make_encoder = None

if _c_make_encoder is not None:
    # markers=None skips the circular-reference bookkeeping; a cycle ends in
    # RecursionError, which the callers catch like any other encoding error.
    def _not_serializable(obj):
        raise TypeError("Object of type %s is not JSON serializable" % type(obj).__name__)

    _c_encode = _c_make_encoder(None, _not_serializable, _ascii_str, None, ":", ",", False, False, False)

    def _encode(obj, _c=_c_encode, _join="".join):
        return _join(_c(obj, 0))

    #: ``_encode`` as its parts: ``"".join(_encode_parts(obj, 0))``, for the
    #: hot path, which saves the call of ``_encode`` itself per response.
    _encode_parts = _c_encode

else:  # pragma: no cover
    _encode = _encoder.encode

    def _encode_parts(obj, _indent):
        return (_encoder.encode(obj),)

_ENCODE_ERRORS = (TypeError, ValueError, RecursionError, OverflowError)


def _error_body(rid, code, message, data=None):
    """A complete error response, as a compact JSON string (no framing)."""
    error = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    response = {"jsonrpc": "2.0", "id": None if rid is _NO_ID else rid, "error": error}
    try:
        return _encode(response)
    except _ENCODE_ERRORS:
        # User-supplied error data that JSON cannot hold: fall back to repr().
        try:
            return _lenient_encoder.encode(response)
        except _ENCODE_ERRORS:
            error["data"] = {"type": "EncodeError", "message": "error data is not JSON-serializable"}
            return _encode(response)


def _cancelled_body(rid, started):
    message = "request cancelled" if started else "request cancelled before it started"
    return _error_body(
        rid, REQUEST_CANCELLED, "request cancelled",
        {"type": "RequestCancelled", "message": message, "started": started},
    )


def _same_id(a, b):
    return type(a) is type(b) and a == b


def _rss_bytes():
    try:
        with open("/proc/self/statm", "rb") as f:
            fields = f.read().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def _format_traceback(exc):
    import traceback

    # Drop the SDK's own dispatch frames: the user's code starts below them.
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None and tb.tb_frame.f_code in DISPATCH_CODES:
        tb = tb.tb_next
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    if len(text) > MAX_TRACEBACK:
        text = "...(truncated)...\n" + text[-MAX_TRACEBACK:]
    return text


def _stderr(message):
    try:
        sys.stderr.write("pybridge_worker: %s\n" % message)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass

