"""Logging set-up: one format, and nothing personal in any record."""

from __future__ import annotations

import logging


def configure_logging(level: int = logging.INFO) -> None:
    """Send log records to standard error in one readable format."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
