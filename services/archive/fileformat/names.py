"""Where each archive file sits in a store: deterministic keys by month and id range."""

from __future__ import annotations

from datetime import date

ROOT = "interactions"
DATA_SUFFIX = ".jsonl.zst"
MANIFEST_SUFFIX = ".manifest.json"


def month_prefix(month: date) -> str:
    """The key prefix under which every file of ``month`` lives."""
    return f"{ROOT}/{month:%Y-%m}/"


def object_key(month: date, first_id: int, last_id: int) -> str:
    """The key of the file holding ``month``'s interactions from ``first_id`` to ``last_id``.

    Two files can only share a name when they hold the same rows, so a run that finds an
    object under the name it was about to write knows it is meeting an earlier run's work.
    """
    return f"{month_prefix(month)}{first_id:012d}-{last_id:012d}{DATA_SUFFIX}"


def manifest_key(data_key: str) -> str:
    """The key of the manifest that travels beside a data file."""
    return data_key.removesuffix(DATA_SUFFIX) + MANIFEST_SUFFIX


def data_key_of(key: str) -> str | None:
    """The data file a stored key belongs to (itself, or the file a manifest describes)."""
    if key.endswith(DATA_SUFFIX):
        return key
    if key.endswith(MANIFEST_SUFFIX):
        return key.removesuffix(MANIFEST_SUFFIX) + DATA_SUFFIX
    return None
