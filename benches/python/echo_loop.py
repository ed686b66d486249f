"""The raw baseline's Python side: the least code that answers pipelined
JSON-RPC echo requests. It reads what is available, answers every complete
line with Python's C JSON scanner and encoder called directly (no validation,
no dispatch), and writes all the answers with one write.

benches/src/raw.rs runs this file as `python3 -c <source> [burn_ns]` and
sdk_overhead.py imports serve(). With burn_ns, the loop spins that many
nanoseconds of CPU after each read, before it answers: how much a worker's
own CPU per call costs a caller waiting on it.
"""

import json
import os
import sys
import time
from json.encoder import c_make_encoder, encode_basestring_ascii
from json.scanner import c_make_scanner


def serve(in_fd, out_fd, burn_ns=0):
    scan = c_make_scanner(json.JSONDecoder())
    enc = c_make_encoder(None, None, encode_basestring_ascii, None, ":", ",", False, False, False)
    os.write(out_fd, b"READY\n")
    pending = b""
    while True:
        chunk = os.read(in_fd, 65536)
        if not chunk:
            break
        pending += chunk
        lines = pending.split(b"\n")
        pending = lines.pop()
        replies = []
        for line in lines:
            if line:
                req = scan(line.decode(), 0)[0]
                replies.append("".join(enc({"jsonrpc": "2.0", "id": req["id"], "result": req.get("params")}, 0)).encode())
        if burn_ns:
            started = time.perf_counter_ns()
            while time.perf_counter_ns() - started < burn_ns:
                pass
        if replies:
            data = b"\n".join(replies) + b"\n"
            while data:
                data = data[os.write(out_fd, data):]


if __name__ == "__main__":
    serve(0, os.dup(1), int(sys.argv[1]) if len(sys.argv) > 1 else 0)
