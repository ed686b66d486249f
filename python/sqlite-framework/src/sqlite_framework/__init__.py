"""The pybridge reference SQLite Extensions Framework worker, on the
``pybridge_worker`` SDK. Run it with ``python -m sqlite_framework``; the
``pybridge`` CLI embeds this package and the SDK and runs it by default."""

__version__ = "0.1.0"
