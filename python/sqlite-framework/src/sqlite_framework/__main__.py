"""``python -m sqlite_framework``: the reference framework worker (``--help``
lists its flags)."""

from .server import main

if __name__ == "__main__":
    raise SystemExit(main())
