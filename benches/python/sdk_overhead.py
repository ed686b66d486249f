#!/usr/bin/env python3
"""CPU per message of the worker SDK's loop against the minimal echo loop.

Both answer the same ~100-byte echo requests and write to /dev/null; only the
CPU of the process running the loop is counted (time.process_time), so the
figure is the loop's own cost, read and write syscalls included, without the
scheduling noise of a round trip. Two shapes:

- batched: 64 KiB reads of a file of requests, as under pipelined load;
- one per read: each read returns one request (a SOCK_SEQPACKET socket fed by
  a child process), as for sequential calls.

The minimal loop is the raw baseline's Python side (echo_loop.py, the C JSON
scanner and encoder called directly, no validation, no dispatch). Rounds alternate
between the two, and each figure is the median over rounds. Prints one JSON
line, or a table without --json.

    python3 benches/python/sdk_overhead.py [--messages 20000] [--rounds 9] [--json]
"""

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time

import pybridge_worker
from echo_loop import serve as minimal_loop


def sdk_loop(in_fd, out_fd):
    # The SDK's inline mode (its fastest, the one the benchmarks run), with
    # the same READY line as the baseline loop.
    pybridge_worker.demo_worker(threads=0, handshake="ready-line").run(in_fd=in_fd, out_fd=out_fd)


def requests(n, method):
    params = json.dumps({"data": "x" * 89}, separators=(",", ":"))
    return [('{"jsonrpc":"2.0","id":%d,"method":"%s","params":%s}\n' % (i, method, params)).encode()
            for i in range(1, n + 1)]


def cpu_per_message_batched(loop, frames, out_fd):
    with tempfile.TemporaryFile() as f:
        f.write(b"".join(frames))
        f.flush()
        f.seek(0)
        started = time.process_time()
        loop(f.fileno(), out_fd)
        return (time.process_time() - started) / len(frames) * 1e6


def cpu_per_message_one_per_read(loop, frames, out_fd):
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    child = os.fork()
    if child == 0:  # the feeder: one packet per request, then EOF
        try:
            ours.close()
            for frame in frames:
                theirs.send(frame)
            theirs.shutdown(socket.SHUT_WR)
        finally:
            os._exit(0)
    theirs.close()
    try:
        started = time.process_time()
        loop(ours.fileno(), out_fd)
        return (time.process_time() - started) / len(frames) * 1e6
    finally:
        ours.close()
        os.waitpid(child, 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    out_fd = os.open(os.devnull, os.O_WRONLY)
    loops = {"sdk": (sdk_loop, requests(args.messages, "test.echo")),
             "minimal": (minimal_loop, requests(args.messages, "echo"))}
    shapes = {"batched": cpu_per_message_batched, "one_per_read": cpu_per_message_one_per_read}
    samples = {(shape, name): [] for shape in shapes for name in loops}
    for _ in range(args.rounds):
        for shape, measure in shapes.items():
            for name, (loop, frames) in loops.items():
                samples[(shape, name)].append(measure(loop, frames, out_fd))
    report = {"messages": args.messages, "rounds": args.rounds, "python": sys.version.split()[0]}
    for shape in shapes:
        sdk = statistics.median(samples[(shape, "sdk")])
        minimal = statistics.median(samples[(shape, "minimal")])
        report[shape] = {"sdk_us": round(sdk, 3), "minimal_us": round(minimal, 3), "ratio": round(sdk / minimal, 2)}
    if args.json:
        print(json.dumps(report))
    else:
        print("CPU per message, median of %d rounds of %d messages (Python %s)"
              % (args.rounds, args.messages, report["python"]))
        for shape in shapes:
            r = report[shape]
            print("  %-13s SDK %.2f µs   minimal loop %.2f µs   %.2f×" % (shape, r["sdk_us"], r["minimal_us"], r["ratio"]))


if __name__ == "__main__":
    main()
