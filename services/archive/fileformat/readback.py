"""Reading an archive file back: its hash, the hash and line count of its content."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import zstandard

from services.archive.fileformat.manifest import Manifest
from services.archive.stores.port import ArchiveStore, ObjectMissing


@dataclass(frozen=True)
class Digest:
    """What a stored file was found to hold."""

    byte_size: int
    sha256: str
    content_sha256: str | None
    rows: int


class Unreadable(Exception):
    """A stored file that is missing or is not one whole zstd frame."""


def digest(store: ArchiveStore, key: str, *, content_hash: bool = True) -> Digest:
    """Stream the object once: hash the stored bytes, decompress, hash and count the lines.

    Without ``content_hash`` the decompressed lines are counted but not hashed (the Digest's
    content_sha256 is None).
    """
    stored = hashlib.sha256()
    content = hashlib.sha256() if content_hash else None
    size = rows = 0
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    try:
        for piece in store.read(key):
            size += len(piece)
            stored.update(piece)
            if decompressor.eof:
                raise Unreadable(f"{key}: bytes after the end of the compressed frame")
            text = decompressor.decompress(piece)
            if content is not None:
                content.update(text)
            rows += text.count(b"\n")
    except ObjectMissing:
        raise Unreadable(f"{key}: missing") from None
    except zstandard.ZstdError as exc:
        raise Unreadable(f"{key}: not a valid zstd stream ({exc})") from None
    if not decompressor.eof:
        raise Unreadable(f"{key}: truncated")
    return Digest(size, stored.hexdigest(), content.hexdigest() if content else None, rows)


def problem(store: ArchiveStore, manifest: Manifest, *, content_hash: bool = True) -> str | None:
    """Why the stored file does not match its manifest, or None when it does.

    ``content_hash=False`` leaves out re-hashing the decompressed lines; the janitor's
    read-back does, see Janitor._prepare.
    """
    try:
        found = digest(store, manifest.key, content_hash=content_hash)
    except Unreadable as exc:
        return str(exc)
    if found.sha256 != manifest.sha256:
        return f"{manifest.key}: SHA-256 {found.sha256[:12]}... is not {manifest.sha256[:12]}..."
    if found.rows != manifest.rows:
        return f"{manifest.key}: {found.rows} lines, the manifest says {manifest.rows}"
    if content_hash and found.content_sha256 != manifest.content_sha256:
        return f"{manifest.key}: its content hash does not match the manifest"
    if found.byte_size != manifest.byte_size:
        return f"{manifest.key}: {found.byte_size} bytes, the manifest says {manifest.byte_size}"
    return None
