"""Where archive files live: the store port, a local directory, and choosing one by URL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Protocol

from config.settings import Settings

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


class LocalStore:
    """Archive files in a local directory, written by temporary file, fsync and hard link."""

    def __init__(self, root: Path) -> None:
        self._root = root.resolve()

    @property
    def url(self) -> str:
        """The directory's absolute path."""
        return str(self._root)

    def _path(self, key: str) -> Path:
        return self._root / checked_key(key)

    def put_new(self, key: str, data: bytes) -> None:
        """Write beside the target, fsync, then link: link(2) fails rather than replace."""
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
        try:
            with temporary.open("xb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            try:
                os.link(temporary, target)
            except FileExistsError:
                raise ObjectExists(key) from None
        finally:
            temporary.unlink(missing_ok=True)
        _fsync_directory(target.parent)

    def read(self, key: str) -> Iterator[bytes]:
        """The file's bytes in pieces of a mebibyte."""
        try:
            stream = self._path(key).open("rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        with stream:
            while piece := stream.read(READ_PIECE):
                yield piece

    def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        """Remove the file; a missing one is not an error."""
        self._path(key).unlink(missing_ok=True)

    def keys(self, prefix: str) -> Iterator[str]:
        """Every file under the directory the prefix names, temporary leftovers included."""
        base = self._root / checked_key(prefix.rstrip("/") or ".")
        if not base.is_dir():
            return
        found = (
            Path(folder, name).relative_to(self._root).as_posix()
            for folder, _, names in os.walk(base)
            for name in names
        )
        yield from sorted(key for key in found if key.startswith(prefix))


def _fsync_directory(folder: Path) -> None:
    """Make a new directory entry durable, so a crash cannot forget a file we reported."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def open_store(settings: Settings) -> ArchiveStore:
    """The store the settings name: s3://bucket/prefix, or a directory."""
    url = settings.resolved_archive_url
    if url.startswith("s3://"):
        from services.archive.s3 import S3Store

        return S3Store.from_url(url, settings.archive_s3_endpoint_url, settings.archive_s3_region)
    return LocalStore(Path(url.removeprefix("file://")))
