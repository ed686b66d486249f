"""Stdio isolation: the protocol moves to private duplicates of fds 0 and 1,
so ``print()`` and child processes can never corrupt or steal the channel."""

import os
import sys

__all__ = ["isolate_stdio"]


def isolate_stdio():
    """Move the protocol off fds 0 and 1; return ``(in_fd, out_fd)``.

    The returned fds are private duplicates of stdin and stdout (not inherited
    by child processes). Afterwards fd 1 and ``sys.stdout`` point at stderr and
    fd 0 at /dev/null, so nothing else in the process, or in a child, can
    write into or read from the protocol stream. ``Worker.run()`` calls this;
    call it yourself only to pass the fds to ``run(in_fd, out_fd)``.
    """
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass
    in_fd = os.dup(0)  # os.dup makes non-inheritable fds
    out_fd = os.dup(1)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(devnull, 0)
    finally:
        os.close(devnull)
    sys.stdout = sys.stderr
    return in_fd, out_fd


