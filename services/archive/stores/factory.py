"""Choosing the archive store the settings name: an S3-compatible bucket or a directory."""

from __future__ import annotations

from pathlib import Path

from config.settings import Settings
from services.archive.stores.local_directory import LocalStore
from services.archive.stores.port import ArchiveStore


def open_store(settings: Settings) -> ArchiveStore:
    """The store the settings name: s3://bucket/prefix, or a directory."""
    url = settings.resolved_archive_url
    if url.startswith("s3://"):
        # Only an archive in S3 needs boto3 loaded.
        from services.archive.stores.s3_bucket import S3Store  # noqa: PLC0415 - boto3 loads only for an archive in S3

        return S3Store.from_url(url, settings.archive_s3_endpoint_url, settings.archive_s3_region)
    return LocalStore(Path(url.removeprefix("file://")))
