"""Reading archived files line by line, each checked against its manifest as it is read."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import zstandard

from services.archive.fileformat.manifest import Manifest
from services.archive.stores.port import ArchiveStore


class Corrupt(Exception):
    """A file that does not match its manifest: nothing read from it may be used."""


def lines(store: ArchiveStore, manifest: Manifest) -> Iterator[bytes]:
    """The file's lines; raises Corrupt at the end when its hash or count is wrong.

    Callers act on the lines inside a transaction they commit only once the iteration has
    finished, so a corrupt file changes nothing.
    """
    stored = hashlib.sha256()
    decompressor = zstandard.ZstdDecompressor().decompressobj()
    rest = b""
    count = 0
    try:
        for piece in store.read(manifest.key):
            stored.update(piece)
            text = rest + decompressor.decompress(piece)
            *whole, rest = text.split(b"\n")
            count += len(whole)
            yield from whole
    except zstandard.ZstdError as exc:
        raise Corrupt(f"{manifest.key}: not a valid zstd stream ({exc})") from None
    if rest or not decompressor.eof:
        raise Corrupt(f"{manifest.key}: truncated")
    if stored.hexdigest() != manifest.sha256 or count != manifest.rows:
        raise Corrupt(f"{manifest.key}: does not match its manifest (hash or line count)")
