"""The framers in process, and the public API's rules."""

import contextlib
import io
import unittest

import pybridge_worker as pw
from pybridge_worker import framing


class TestFramersInProcess(unittest.TestCase):
    """The framers on their own, byte by byte where it matters."""

    def setUp(self):
        # The framers note dropped frames on stderr; keep them for assertions.
        self.notes = io.StringIO()
        redirect = contextlib.redirect_stderr(self.notes)
        redirect.__enter__()
        self.addCleanup(redirect.__exit__, None, None, None)

    def test_ndjson_split_anywhere(self):
        data = b'{"a":1}\n\n{"b":2}\r\n{"c":3}\n'
        for size in (1, 2, 3, 5, 7, len(data)):
            f = framing._NdjsonFramer(1024)
            frames = []
            for i in range(0, len(data), size):
                frames += f.feed(data[i:i + size])
            self.assertEqual([x for x in frames if x.strip()], [b'{"a":1}', b'{"b":2}\r', b'{"c":3}'])

    def test_ndjson_never_holds_more_than_max_frame(self):
        f = framing._NdjsonFramer(100)
        out = f.feed(b"x" * 60)
        self.assertEqual(out, [])
        out = f.feed(b"x" * 60)  # 120 > 100: rejected now, not at the newline
        self.assertEqual(len(out), 1)
        self.assertIsInstance(out[0], framing._Bad)
        self.assertEqual(len(f._partial), 0)
        self.assertEqual(f.feed(b"x" * 1000), [])  # still skipping, nothing kept
        self.assertEqual(len(f._partial), 0)
        self.assertEqual(f.feed(b'tail\n{"ok":1}\n'), [b'{"ok":1}'])
        self.assertIn("larger than 100 bytes", self.notes.getvalue())

    def test_content_length_split_anywhere_and_skips_oversized_bodies(self):
        a, b = b'{"a":1}', b'{"b":"' + b"z" * 200 + b'"}'
        data = (b"Content-Length: %d\r\n\r\n%s" % (len(a), a)) + (b"Content-Length: %d\r\n\r\n%s" % (len(b), b)) \
            + (b"Content-Length: %d\r\n\r\n%s" % (len(a), a))
        for size in (1, 4, 9, len(data)):
            f = framing._ContentLengthFramer(100)
            frames = []
            for i in range(0, len(data), size):
                frames += f.feed(data[i:i + size])
            self.assertEqual(len(frames), 3)
            self.assertEqual(frames[0], a)
            self.assertIsInstance(frames[1], framing._Bad)
            self.assertEqual(frames[1].data["declared"], len(b))
            self.assertEqual(frames[2], a)
            self.assertLessEqual(len(f._buf), 100)

    def test_content_length_bad_headers(self):
        f = framing._ContentLengthFramer(100)
        frames = f.feed(b"Content-Length: x\r\n\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"
                        b"no colon\r\n\r\nContent-Length: 2\r\n\r\n[]")
        self.assertEqual([type(x) for x in frames], [framing._Bad, framing._Bad, framing._Bad, bytes])
        f = framing._ContentLengthFramer(100)
        frames = f.feed(b"X" * 2000)
        self.assertEqual(len(frames), 1)
        self.assertLessEqual(len(f._buf), 3)
        self.assertEqual(f.feed(b"\r\n\r\nContent-Length: 2\r\n\r\n{}"), [b"{}"])


class TestApi(unittest.TestCase):
    def test_option_validation(self):
        for kwargs in ({"max_concurrency": 0}, {"handshake": "bogus"}, {"framing": "xml"}, {"max_frame": 10},
                       {"max_pending": 0}, {"max_concurrency": 1.5}):
            with self.assertRaises(ValueError, msg=kwargs):
                pw.Worker("x", **kwargs)

    def test_registration_rules(self):
        w = pw.Worker("x")

        @w.method("a.b")
        def ab():
            return 1

        @w.method
        def plain():
            return 2

        self.assertEqual(w.methods, ["a.b", "plain"])
        for name in ("$/ping", "rpc.discover", "a.b", ""):
            with self.assertRaises(ValueError):
                w.add_method(name, ab)
        with self.assertRaises(TypeError):
            w.add_method("not.callable", 5)

    def test_exception_classes(self):
        self.assertEqual(pw.InvalidParams("x").code, pw.INVALID_PARAMS)
        self.assertEqual(pw.RequestCancelled().code, pw.REQUEST_CANCELLED)
        e = pw.RetryableError("later", retry_after_ms=10)
        self.assertEqual((e.code, e.recoverable, e.retry_after_ms), (pw.INTERNAL_ERROR, True, 10))
        self.assertEqual(pw.RpcError("m", -32001).code, -32001)
        with self.assertRaises(TypeError):
            pw.RpcError("m", "not-a-code")

if __name__ == "__main__":
    unittest.main()
