"""A Notify-compatible stub provider on the standard library only: ``python -m devtools.stub``."""

from devtools.stub.cli import main

__all__ = ["main"]
