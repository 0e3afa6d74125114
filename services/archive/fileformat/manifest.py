"""The manifest beside each archive file: what it holds, its hashes, and its format version.

A file is zstd-compressed JSON Lines (see ``json_line``); its manifest is a JSON document
stored next to it and recorded in the database as well.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from services.archive.fileformat.months import parse_month

FORMAT_NAME = "interactions-archive"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Manifest:
    """What one archived file holds; written beside the file and recorded in the database."""

    key: str
    month: date
    rows: int
    events: int
    first_id: int
    last_id: int
    first_created_at: datetime
    last_created_at: datetime
    byte_size: int
    sha256: str
    content_sha256: str
    schema_version: str
    created_at: datetime
    format: str = FORMAT_NAME
    format_version: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        """The manifest as the JSON document stored beside the data file."""
        document: dict[str, Any] = asdict(self)
        for name, value in document.items():
            if isinstance(value, datetime | date):
                document[name] = value.isoformat()
        document["month"] = f"{self.month:%Y-%m}"
        return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """A manifest read back from its JSON document."""
        document = json.loads(raw)
        document["month"] = parse_month(document["month"])
        for name in ("first_created_at", "last_created_at", "created_at"):
            document[name] = datetime.fromisoformat(document[name])
        return cls(**document)
