"""Framing: split the byte stream from stdin into frames (NDJSON lines or
``Content-Length`` bodies as in LSP), never buffering more than ``max_frame``
bytes of one frame."""

from .codec import _stderr
from .errors import INVALID_REQUEST, PARSE_ERROR

#: The largest frame read or written unless the worker says otherwise.
DEFAULT_MAX_FRAME = 16 * 1024 * 1024
# The longest Content-Length header block accepted.
MAX_HEADER = 1024

class _Bad:
    """A frame that could not become a message; answered with id null."""

    __slots__ = ("code", "message", "data")

    def __init__(self, code, message, data=None):
        self.code = code
        self.message = message
        self.data = data


class _NdjsonFramer:
    """Splits a byte stream into lines, never holding more than max_frame of one."""

    def __init__(self, max_frame):
        self.max_frame = max_frame
        self._partial = bytearray()
        self._skipping = False  # inside an oversized line: drop up to its "\n"

    def _oversized(self):
        _stderr("dropped a frame larger than %d bytes" % self.max_frame)
        return _Bad(
            INVALID_REQUEST,
            "Invalid Request: frame larger than %d bytes" % self.max_frame,
            {"type": "FrameTooLarge", "limit": self.max_frame},
        )

    def feed(self, chunk):
        frames = []
        start = 0
        if self._skipping:
            nl = chunk.find(b"\n")
            if nl < 0:
                return frames
            start = nl + 1
            self._skipping = False
        partial = self._partial
        if partial:
            nl = chunk.find(b"\n", start)
            end = len(chunk) if nl < 0 else nl
            if len(partial) + end - start > self.max_frame:
                self._partial = bytearray()
                frames.append(self._oversized())
                if nl < 0:
                    self._skipping = True
                    return frames
            else:
                partial += chunk[start:end]
                if nl < 0:
                    return frames
                frames.append(bytes(partial))
                self._partial = bytearray()
            start = nl + 1
        if start:
            chunk = chunk[start:]
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if len(chunk) > self.max_frame:
            for i, line in enumerate(lines):
                if len(line) > self.max_frame:
                    lines[i] = self._oversized()
        frames += lines
        if rest:
            if len(rest) > self.max_frame:
                frames.append(self._oversized())
                self._skipping = True
            else:
                self._partial = bytearray(rest)
        return frames

    @staticmethod
    def frame(body):
        return (body + "\n").encode()


class _ContentLengthFramer:
    """``Content-Length: N\\r\\n`` (other headers ignored) ``\\r\\n`` then N bytes."""

    _HEADER, _BODY, _SKIP_BODY, _SKIP_HEADER = range(4)

    def __init__(self, max_frame):
        self.max_frame = max_frame
        self._buf = bytearray()
        self._state = self._HEADER
        self._need = 0

    def _parse_header(self, block):
        length = None
        for line in bytes(block).split(b"\n"):
            line = line.rstrip(b"\r")
            if not line:
                continue
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError("header line without a colon")
            if name.strip().lower() != b"content-length":
                continue
            value = value.strip()
            if not value.isdigit():
                raise ValueError("bad Content-Length value")
            if length is not None:
                raise ValueError("duplicate Content-Length")
            length = int(value)
        if length is None:
            raise ValueError("missing Content-Length")
        return length

    def feed(self, chunk):
        frames = []
        buf = self._buf
        buf += chunk
        while True:
            state = self._state
            if state == self._HEADER:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEADER:
                        del buf[: len(buf) - 3]
                        self._state = self._SKIP_HEADER
                        frames.append(_Bad(PARSE_ERROR, "Parse error: header block too long"))
                    break
                block = buf[:end]
                del buf[: end + 4]
                if end > MAX_HEADER:
                    frames.append(_Bad(PARSE_ERROR, "Parse error: header block too long"))
                    continue
                try:
                    length = self._parse_header(block)
                except ValueError as exc:
                    frames.append(_Bad(PARSE_ERROR, "Parse error: %s" % exc))
                    continue
                if length > self.max_frame:
                    _stderr("dropped a frame of %d bytes (limit %d)" % (length, self.max_frame))
                    frames.append(_Bad(
                        INVALID_REQUEST,
                        "Invalid Request: frame larger than %d bytes" % self.max_frame,
                        {"type": "FrameTooLarge", "limit": self.max_frame, "declared": length},
                    ))
                    self._state = self._SKIP_BODY
                else:
                    self._state = self._BODY
                self._need = length
            elif state == self._BODY:
                if len(buf) < self._need:
                    break
                frames.append(bytes(buf[: self._need]))
                del buf[: self._need]
                self._state = self._HEADER
            elif state == self._SKIP_BODY:
                n = min(self._need, len(buf))
                del buf[:n]
                self._need -= n
                if self._need:
                    break
                self._state = self._HEADER
            else:  # _SKIP_HEADER
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    del buf[: max(0, len(buf) - 3)]
                    break
                del buf[: end + 4]
                self._state = self._HEADER
        return frames

    @staticmethod
    def frame(body):
        data = body.encode()
        return b"Content-Length: %d\r\n\r\n%s" % (len(data), data)


