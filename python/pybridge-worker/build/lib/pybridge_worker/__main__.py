"""``python -m pybridge_worker``: the demo worker (``--help`` lists its flags)."""

from .demo import demo_worker


def main():
    """Run the demo worker with the command-line flags; return the exit code."""
    return demo_worker().main()


if __name__ == "__main__":
    raise SystemExit(main())
