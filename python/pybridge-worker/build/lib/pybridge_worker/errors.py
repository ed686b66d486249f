"""The exceptions a method raises to choose its error response, and the
JSON-RPC error codes the SDK sends."""

__all__ = [
    "RpcError",
    "InvalidParams",
    "MethodNotFound",
    "RequestCancelled",
    "RetryableError",
    "PARSE_ERROR",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "INVALID_PARAMS",
    "INTERNAL_ERROR",
    "SERVER_ERROR",
    "SHUTTING_DOWN",
    "REQUEST_CANCELLED",
]

# Standard JSON-RPC codes, and the pybridge codes the SDK itself sends.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_ERROR = -32000
SHUTTING_DOWN = -32005
REQUEST_CANCELLED = -32800


class RpcError(Exception):
    """An error with its own JSON-RPC code.

    ``data`` (a dict) is merged into the standard ``error.data`` object
    ``{type, message, traceback}``; any other non-None value is sent as
    ``data.details``. ``recoverable`` and ``retry_after_ms`` tell the bridge
    whether and when a retry may succeed.
    """

    code = INTERNAL_ERROR

    def __init__(self, message="", code=None, data=None, *, recoverable=None, retry_after_ms=None):
        super().__init__(message)
        self.message = str(message)
        if code is not None:
            if type(code) is not int:
                raise TypeError("RpcError code must be an int, got %r" % (code,))
            self.code = code
        self.data = data
        if recoverable is not None:
            self.recoverable = bool(recoverable)
        if retry_after_ms is not None:
            self.retry_after_ms = retry_after_ms


class InvalidParams(RpcError):
    """The params are wrong (``-32602``). Raise it after your own checks."""

    code = INVALID_PARAMS


class MethodNotFound(RpcError):
    """The method is not available (``-32601``)."""

    code = METHOD_NOT_FOUND


class RequestCancelled(RpcError):
    """The request was cancelled (``-32800``); see ``Context.check_cancelled``."""

    code = REQUEST_CANCELLED

    def __init__(self, message="request cancelled", data=None):
        super().__init__(message, data=data)


class RetryableError(RpcError):
    """A transient failure: ``data.recoverable`` is true, so the bridge may retry
    (after ``retry_after_ms`` when given). The code defaults to ``-32603``."""

    def __init__(self, message="", retry_after_ms=None, code=None, data=None):
        super().__init__(message, code, data, recoverable=True, retry_after_ms=retry_after_ms)
