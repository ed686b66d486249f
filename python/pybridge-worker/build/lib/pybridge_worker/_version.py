"""The package version; equal to the pybridge workspace version (checked by
``cargo xtask tidy``)."""

__version__ = "0.1.0"
