"""``python -m pybridge_worker``: the demo worker (``--help`` lists its flags)."""

import os
import sys

from .demo import demo_worker


def main():
    """Run the demo worker with the command-line flags; return the exit code."""
    return demo_worker().main()


if __name__ == "__main__":
    code = main()
    # The worker has answered and its host has closed stdin: the interpreter's
    # teardown (module and object finalization, several milliseconds) only
    # delays the host, which waits for the exit. This program registers
    # nothing to run at exit, so it flushes what Python buffers and leaves.
    # A worker of one's own keeps `raise SystemExit(worker.main())`, which
    # runs its atexit handlers.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
