"""An S3-compatible bucket as the archive store: AWS, MinIO or a government object store."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from services.archive.stores.port import READ_PIECE, ObjectExists, ObjectMissing, checked_key

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

# A conditional write that lost answers 412, or 409 while another write to the key is in flight.
_TAKEN = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING = {"NoSuchKey", "404", "NotFound"}


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class S3Store:
    """Objects under ``s3://bucket/prefix``; writes are conditional, so none overwrites."""

    def __init__(self, client: S3Client, bucket: str, prefix: str) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""

    @classmethod
    def from_url(cls, url: str, endpoint_url: str | None, region: str | None) -> S3Store:
        """A store for ``s3://bucket/prefix``, credentials from boto3's usual chain."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise ValueError(f"{url!r} names no bucket")
        config = Config(retries={"max_attempts": 5, "mode": "standard"})
        client: Any = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config
        )
        return cls(client, bucket, prefix)

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self._bucket}/{self._prefix}".rstrip("/")

    def _key(self, key: str) -> str:
        return self._prefix + checked_key(key)

    def put_new(self, key: str, data: bytes) -> None:
        """PUT with If-None-Match: * and a SHA-256 the store checks on receipt."""
        if self.exists(key):
            # A store that ignores If-None-Match would replace the object; refuse first.
            raise ObjectExists(key)
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        try:
            self._client.put_object(
                Bucket=self._bucket,
                Key=self._key(key),
                Body=data,
                IfNoneMatch="*",
                ChecksumSHA256=checksum,
            )
        except ClientError as exc:
            if _code(exc) in _TAKEN:
                raise ObjectExists(key) from None
            raise

    def read(self, key: str) -> Iterator[bytes]:
        """The object's bytes, streamed."""
        try:
            response = self._client.get_object(Bucket=self._bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                raise ObjectMissing(key) from None
            raise
        body = response["Body"]
        try:
            yield from body.iter_chunks(READ_PIECE)
        finally:
            body.close()

    def exists(self, key: str) -> bool:
        """A HEAD of the object."""
        try:
            self._client.head_object(Bucket=self._bucket, Key=self._key(key))
        except ClientError as exc:
            if _code(exc) in _MISSING:
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        """DELETE the object; S3 answers the same whether or not it existed."""
        self._client.delete_object(Bucket=self._bucket, Key=self._key(key))

    def keys(self, prefix: str) -> Iterator[str]:
        """Every key under ``prefix``, page by page."""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=self._prefix + prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                yield item["Key"].removeprefix(self._prefix)
