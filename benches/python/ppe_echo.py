#!/usr/bin/env python3
"""What a Python user would reach for: concurrent.futures.ProcessPoolExecutor.

Runs the same echo of a ~100-byte object as pybridge's benchmark, one task per
call (chunksize 1, so each task is one round trip like one call), and prints
one JSON line: {"workers", "tasks", "seconds", "tasks_per_sec"}. `cargo xtask
bench` runs it in the same session as the Rust benchmarks.
"""

import argparse
import concurrent.futures
import json
import time


def echo(params):
    return params


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tasks", type=int, default=20000)
    parser.add_argument("--in-flight", type=int, default=64)
    args = parser.parse_args()
    payload = {"data": "x" * 89}
    with concurrent.futures.ProcessPoolExecutor(max_workers=args.workers) as pool:
        # Warm up: start the processes before timing.
        list(pool.map(echo, [payload] * (args.workers * 10)))
        started = time.perf_counter()
        pending = set()
        submitted = done = 0
        while done < args.tasks:
            while submitted < args.tasks and len(pending) < args.in_flight:
                pending.add(pool.submit(echo, payload))
                submitted += 1
            finished, pending = concurrent.futures.wait(pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in finished:
                future.result()
            done += len(finished)
        seconds = time.perf_counter() - started
    print(json.dumps({
        "workers": args.workers,
        "tasks": args.tasks,
        "seconds": seconds,
        "tasks_per_sec": args.tasks / seconds,
    }))


if __name__ == "__main__":
    main()
