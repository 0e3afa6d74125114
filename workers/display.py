"""Readable terminal output: tables and masked addresses."""

from __future__ import annotations

from collections.abc import Sequence

from models.event import InteractionEvent
from services.records import InteractionRecord


def mask(address: str | None) -> str:
    """An address with most of it hidden, enough for a person to recognise it."""
    if not address:
        return ""
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    return f"***{address[-3:]}" if len(address) > 3 else "***"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table with a header rule."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def _detail(record: InteractionRecord) -> str:
    if record.author:
        body = (record.body_content or "").replace("\n", " ")
        return f"{record.author}: {body[:48]}{'...' if len(body) > 48 else ''}"
    if record.failure_reason:
        return record.failure_reason[:60]
    return mask(record.recipient)


def timeline(records: Sequence[InteractionRecord]) -> str:
    """A customer's interactions as a table, newest first."""
    rows = [
        (
            r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            r.channel.value,
            r.status.value,
            r.template_key or "",
            r.idempotency_key if not r.idempotency_key.startswith("note:") else "(note)",
            str(r.attempt_count),
            _detail(r),
        )
        for r in records
    ]
    headers = ("created (UTC)", "channel", "status", "template", "key", "tries", "detail")
    return table(headers, rows)


def events(history: Sequence[InteractionEvent]) -> str:
    """An interaction's event history as a table, oldest first."""
    rows = [
        (
            e.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
            e.kind.value,
            f"{e.from_status.value if e.from_status else '-'} -> "
            f"{e.to_status.value if e.to_status else '-'}",
            e.outcome or "",
            e.source,
        )
        for e in history
    ]
    return table(("when (UTC)", "event", "status", "outcome", "source"), rows)
