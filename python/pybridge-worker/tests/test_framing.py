"""The framers in process, and the public API's rules."""

import contextlib
import io
import json
import socket
import tempfile
import threading
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


def _sized(rid, size):
    """A test.echo request line of exactly ``size`` bytes before its newline."""
    head = b'{"jsonrpc":"2.0","id":%d,"method":"test.echo","params":{"p":"' % rid
    tail = b'"}}'
    return head + b"p" * (size - len(head) - len(tail)) + tail + b"\n"


#: The largest frame of the workers these tests start.
MAX_FRAME = 4096


@unittest.skipUnless(hasattr(socket, "SOCK_SEQPACKET"), "needs SOCK_SEQPACKET (Linux) for one line per read")
class TestOneLinePerRead(unittest.TestCase):
    """A read that holds one whole line takes a shorter way from the read to
    the write; every answer must be the one the general way gives."""

    # Each a frame of its own; together, every case the short way must hand
    # to the general one, next to those it takes itself.
    LINES = [
        b'{"jsonrpc":"2.0","id":1,"method":"test.echo","params":{"a":1}}\n',
        b'{"jsonrpc":"2.0","id":"s","method":"test.echo","params":[1,2]}\n',
        b'{"jsonrpc":"2.0","id":3,"method":"test.echo","params":{"cost":"$5"}}\n',
        '{"jsonrpc":"2.0","id":4,"method":"test.echo","params":{"w":"\u00e9\u4e2d"}}\n'.encode(),
        b'{"jsonrpc":"2.0","id":5,"method":"test.echo","params":{}} \n',
        b'{"jsonrpc":"2.0","id":6,"method":"test.echo","params":{}}\r\n',
        b'[{"jsonrpc":"2.0","id":7,"method":"test.echo"},{"jsonrpc":"2.0","id":8,"method":"test.echo"}]\n',
        b'{"jsonrpc":"2.0","method":"test.echo","params":{}}\n',
        b'{"jsonrpc":"2.0","id":9,"method":"test.echo"\n',
        b'{"jsonrpc":"2.0","id":10,"method":"test.echo"}x\n',
        b'7\n',
        b'\n',
        b'{"jsonrpc":"2.0","id":11,"method":"no.such"}\n',
        b'{"jsonrpc":"1.0","id":12,"method":"test.echo"}\n',
        b'{"jsonrpc":"2.0","id":13,"method":"test.echo","params":"text"}\n',
        b'{"jsonrpc":"2.0","id":14,"method":"test.echo","params":{"n":NaN}}\n',
        b'{"jsonrpc":"2.0","id":15,"method":"test.echo","params":{"big":"' + b"b" * 5000 + b'"}}\n',
        b'\xff\xfe{"jsonrpc":"2.0","id":16,"method":"test.echo"}\n',
        # Too deep for the C scanner of some Pythons (3.11's), not others.
        b'{"jsonrpc":"2.0","id":17,"method":"test.echo","params":' + b"[" * 1500 + b"]" * 1500 + b'}\n',
        # One byte under, at and over the largest frame, newline aside.
        _sized(19, MAX_FRAME - 1),
        _sized(20, MAX_FRAME),
        _sized(21, MAX_FRAME + 1),
        b'{"jsonrpc":"2.0","id":18,"method":"test.echo","params":{"last":true}}\n',
    ]

    def serve(self, packets, spy=None, **options):
        """The demo worker's output for ``packets``, each one read of its own."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.addCleanup(ours.close)

        def feed():
            try:
                for packet in packets:
                    theirs.sendall(packet)
                theirs.shutdown(socket.SHUT_WR)
            finally:
                theirs.close()

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        options.setdefault("threads", 0)
        worker = pw.demo_worker(handshake="ready-line", max_frame=MAX_FRAME, **options)
        if spy is not None:
            general = worker._ingest

            def counted(chunk, polling):
                spy.append(chunk)
                return general(chunk, polling)

            worker._ingest = counted
        with tempfile.TemporaryFile() as out, contextlib.redirect_stderr(io.StringIO()):
            self.assertEqual(worker.run(in_fd=ours.fileno(), out_fd=out.fileno()), 0)
            feeder.join(10)
            out.seek(0)
            data = out.read()
        self.assertTrue(data.startswith(b"READY\n"), data[:40])
        return data[len(b"READY\n"):]

    def test_one_line_per_read_answers_as_one_read_of_all(self):
        one_by_one = self.serve(self.LINES)
        all_at_once = self.serve([b"".join(self.LINES)])
        self.assertEqual(one_by_one, all_at_once)
        answers = [json.loads(line) for line in one_by_one.splitlines()]
        by_id = {a.get("id"): a for a in answers if type(a) is dict}
        self.assertEqual(by_id[1]["result"], {"a": 1})
        self.assertEqual(by_id["s"]["result"], [1, 2])
        self.assertEqual(by_id[3]["result"], {"cost": "$5"})
        self.assertEqual(by_id[4]["result"], {"w": "\u00e9\u4e2d"})
        self.assertEqual((by_id[5]["result"], by_id[6]["result"]), ({}, {}))
        self.assertEqual(by_id[11]["error"]["code"], pw.METHOD_NOT_FOUND)
        self.assertEqual(by_id[12]["error"]["code"], pw.INVALID_REQUEST)
        self.assertEqual(by_id[13]["error"]["code"], pw.INVALID_REQUEST)
        self.assertEqual(by_id[18]["result"], {"last": True})
        # Read whole, each answered (with an error: its echo would not fit).
        self.assertEqual(by_id[19]["error"]["data"]["type"], "ResponseTooLarge")
        self.assertEqual(by_id[20]["error"]["data"]["type"], "ResponseTooLarge")
        self.assertEqual(sorted(a["id"] for a in answers if type(a) is list for a in a), [7, 8])
        null_id = [a["error"]["code"] for a in answers if type(a) is dict and a.get("id") is None]
        # The unterminated object, the trailing "x", the bare number, NaN,
        # the oversized line, the bytes that are not UTF-8, the nesting where
        # it is too deep, and the line one byte over the largest frame: each
        # an error with id null, in order.
        deep = [] if 17 in by_id else [pw.PARSE_ERROR]
        self.assertEqual(null_id, [pw.PARSE_ERROR, pw.PARSE_ERROR, pw.INVALID_REQUEST, pw.PARSE_ERROR,
                                   pw.INVALID_REQUEST, pw.PARSE_ERROR] + deep + [pw.INVALID_REQUEST])
        for rid in (9, 10, 14, 15, 16, 21):
            self.assertNotIn(rid, by_id)

    def test_the_same_with_threads_and_with_a_flush_per_message(self):
        # On the pool's threads answers leave as they finish: compare them as
        # sets. A $/shutdown at the end waits for them all (the end of input
        # alone would cancel those still running).
        shutdown = b'{"jsonrpc":"2.0","id":"bye","method":"$/shutdown"}\n'
        lines = [line for line in self.LINES if b'"id":17' not in line] + [shutdown]
        threaded = self.serve(lines, threads=2)
        self.assertEqual(sorted(threaded.splitlines()), sorted(self.serve([b"".join(lines)], threads=2).splitlines()))
        self.assertIn(b'"id":18,"result":{"last":true}', threaded)
        self.assertTrue(threaded.endswith(b'"id":"bye","result":null}\n'), threaded[-80:])
        # Flushed one by one, they leave in order.
        flushed = self.serve(self.LINES, flush_per_message=True)
        self.assertEqual(flushed, self.serve([b"".join(self.LINES)], flush_per_message=True))

    def test_lines_read_while_an_inline_method_runs_keep_their_order(self):
        # test.sleep looks at stdin while it waits: what it reads waits in
        # the backlog (a partial line in the framer), ahead of later reads.
        request = b'{"jsonrpc":"2.0","id":%d,"method":"test.echo","params":{"n":%d}}\n'
        packets = [b'{"jsonrpc":"2.0","id":1,"method":"test.sleep","params":{"ms":50}}\n',
                   request % (2, 2), (request % (3, 3))[:20], (request % (3, 3))[20:], request % (4, 4)]
        for reads in (packets, [b"".join(packets)]):
            answers = [json.loads(line) for line in self.serve(reads).splitlines()]
            # The sleep's own answer depends on when the end of input is
            # seen (it cancels the sleep); the order and the echoes do not.
            self.assertEqual([a["id"] for a in answers], [1, 2, 3, 4])
            self.assertEqual([a["result"] for a in answers[1:]], [{"n": 2}, {"n": 3}, {"n": 4}])

    def test_a_plain_request_alone_in_its_read_skips_the_framer(self):
        spy = []
        plain = [b'{"jsonrpc":"2.0","id":%d,"method":"test.echo","params":{"n":%d}}\n' % (i, i) for i in range(5)]
        dollar = b'{"jsonrpc":"2.0","id":9,"method":"test.echo","params":{"p":"$"}}\n'
        two = plain[0] + plain[1]
        out = self.serve(plain + [dollar, two, plain[2]], spy=spy)
        self.assertEqual(spy, [dollar, two])
        self.assertEqual([json.loads(line)["id"] for line in out.splitlines()], [0, 1, 2, 3, 4, 9, 0, 1, 2])

    def test_a_line_split_across_reads_is_never_taken_for_a_whole_one(self):
        request = b'{"jsonrpc":"2.0","id":2,"method":"test.echo","params":{"k":"v"}}\n'
        # The second read holds one newline, at its end, and a request whole
        # on its own; but it ends the first read's line, which is not JSON.
        packets = [b'{"junk":', request, request]
        out = self.serve(packets)
        self.assertEqual(out, self.serve([b"".join(packets)]))
        answers = [json.loads(line) for line in out.splitlines()]
        self.assertEqual(answers[0]["id"], None)
        self.assertEqual(answers[0]["error"]["code"], pw.PARSE_ERROR)
        self.assertEqual(answers[1:], [{"jsonrpc": "2.0", "id": 2, "result": {"k": "v"}}])
        # The same after a line longer than max_frame, dropped up to its end.
        packets = [b"x" * 5000, request, request]
        out = self.serve(packets)
        self.assertEqual(out, self.serve([b"".join(packets)]))
        answers = [json.loads(line) for line in out.splitlines()]
        self.assertEqual(answers[0]["error"]["data"]["type"], "FrameTooLarge")
        self.assertEqual(answers[1:], [{"jsonrpc": "2.0", "id": 2, "result": {"k": "v"}}])

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
