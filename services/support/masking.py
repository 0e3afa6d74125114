"""Addresses as a viewer sees them, and the short preview of a message a timeline card shows."""

from __future__ import annotations

from models.enums import ChannelType

HIDDEN = "••••"
PREVIEW_CHARS = 140


def mask(channel: ChannelType, address: str | None) -> str | None:
    """``address`` with enough left to confirm it with a caller, and too little to use it.

    An email keeps its first character and its domain (a••••@example.org); a phone number its
    last four digits (•••• ••• 4567); anything else is hidden whole.
    """
    if not address:
        return None
    if channel is ChannelType.EMAIL and "@" in address:
        local, _, domain = address.rpartition("@")
        return f"{local[:1]}{HIDDEN}@{domain}"
    digits = [c for c in address if c.isdigit()]
    if channel is ChannelType.SMS and len(digits) >= 7:
        return f"{HIDDEN} ••• {''.join(digits[-4:])}"
    return HIDDEN


def preview(body: str | None, limit: int = PREVIEW_CHARS) -> str | None:
    """The start of a message's body on one line, cut at a word with an ellipsis."""
    if not body:
        return None
    flat = " ".join(body.split())
    if len(flat) <= limit:
        return flat
    cut = flat[:limit].rsplit(" ", 1)[0] or flat[:limit]
    return f"{cut}…"
