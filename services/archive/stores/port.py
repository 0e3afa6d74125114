"""The archive store port: what every store does, its errors, and which keys it accepts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Protocol

READ_PIECE = 1 << 20


class ObjectExists(Exception):
    """A write found an object under its key already; stores never overwrite."""


class ObjectMissing(Exception):
    """No object under the key."""


class ArchiveStore(Protocol):
    """An object store that never overwrites: a directory, or an S3-compatible bucket."""

    @property
    def url(self) -> str:
        """Where the store is, for the record (never carries credentials)."""
        ...

    def put_new(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` whole or not at all; ObjectExists if the key is taken."""
        ...

    def read(self, key: str) -> Iterator[bytes]:
        """The object's bytes, in pieces; ObjectMissing when there is none."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def delete(self, key: str) -> None:
        """Remove the object under ``key``, if any."""
        ...

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key that starts with ``prefix``, in order."""
        ...


def checked_key(key: str) -> str:
    """``key`` when it is a plain relative path; ValueError for anything that could escape."""
    path = PurePosixPath(key)
    if not key or path.is_absolute() or ".." in path.parts or "\\" in key:
        raise ValueError(f"{key!r} is not an archive key")
    return key
