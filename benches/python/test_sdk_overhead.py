"""sdk_overhead.py measures loops that really answer every request, in both
shapes, and reports what it measured."""

import json
import os
import subprocess
import sys
import tempfile
import unittest

import sdk_overhead

HERE = os.path.dirname(os.path.abspath(__file__))


class TestSdkOverhead(unittest.TestCase):
    def answers(self, measure, loop, method):
        frames = sdk_overhead.requests(300, method)
        with tempfile.TemporaryFile() as out:
            us = measure(loop, frames, out.fileno())
            out.seek(0)
            lines = out.read().splitlines()
        self.assertGreater(us, 0)
        self.assertEqual(lines[0], b"READY")
        replies = [json.loads(line) for line in lines[1:]]
        self.assertEqual([r["id"] for r in replies], list(range(1, 301)))
        self.assertTrue(all(r["result"] == {"data": "x" * 89} for r in replies))

    def test_both_loops_answer_every_request_in_both_shapes(self):
        for measure in (sdk_overhead.cpu_per_message_batched, sdk_overhead.cpu_per_message_one_per_read):
            with self.subTest(measure=measure.__name__):
                self.answers(measure, sdk_overhead.sdk_loop, "test.echo")
                self.answers(measure, sdk_overhead.minimal_loop, "echo")

    def test_json_report(self):
        out = subprocess.run([sys.executable, os.path.join(HERE, "sdk_overhead.py"), "--json",
                              "--messages", "200", "--rounds", "1"],
                             capture_output=True, check=True, timeout=60).stdout
        report = json.loads(out)
        for shape in ("batched", "one_per_read"):
            figure = report[shape]
            self.assertGreater(figure["sdk_us"], 0)
            self.assertGreater(figure["minimal_us"], 0)
            self.assertAlmostEqual(figure["ratio"], figure["sdk_us"] / figure["minimal_us"], delta=0.01)


if __name__ == "__main__":
    unittest.main()
