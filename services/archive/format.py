"""The archive's file format: zstd-compressed JSON Lines, deterministic names, and manifests.

Each line is one interaction with every event it has, every column as PostgreSQL stores it
(``row_to_json`` of the row), so encrypted columns stay encrypted and a restore writes back
exactly what was read:

    {"interaction":{"id":1,...},"events":[{"id":7,...},...]}
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

FORMAT_NAME = "interactions-archive"
FORMAT_VERSION = 1
ROOT = "interactions"
DATA_SUFFIX = ".jsonl.zst"
MANIFEST_SUFFIX = ".manifest.json"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def line(interaction: str, events: list[str]) -> str:
    """One JSON Lines record from an interaction's JSON and its events' JSON, in id order."""
    return '{"interaction":' + interaction + ',"events":[' + ",".join(events) + "]}\n"


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


def parse_month(text: str) -> date:
    """The first day of the month written ``YYYY-MM``; ValueError for anything else."""
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(f"{text!r} is not a month written YYYY-MM")
    return date(int(match.group(1)), int(match.group(2)), 1)


def next_month(month: date) -> date:
    """The first day of the month after ``month``."""
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def months_back(moment: datetime, months: int) -> datetime:
    """``moment`` moved back by whole calendar months, the day clamped to the month's end."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, _days_in(year, month + 1))
    return moment.replace(year=year, month=month + 1, day=day)


def _days_in(year: int, month: int) -> int:
    return (date(year + month // 12, month % 12 + 1, 1) - date(year, month, 1)).days


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The first instant of ``month`` and of the month after it, in UTC."""
    following = next_month(month)
    return (
        datetime(month.year, month.month, 1, tzinfo=UTC),
        datetime(following.year, following.month, 1, tzinfo=UTC),
    )


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
