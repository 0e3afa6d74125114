"""A local directory as the archive store, written so that no file is ever replaced."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from services.archive.stores.port import READ_PIECE, ObjectExists, ObjectMissing, checked_key


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
