"""Addresses as a viewer sees them, and the short preview of a message a timeline card shows."""

from __future__ import annotations

from models.enums import ChannelType

HIDDEN = "••••"
PREVIEW_CHARS = 140
SHORTEST_LOCAL_SHOWN = 3
SHORTEST_NUMBER = 7
FULL_LENGTH_NUMBER = 10


def mask(channel: ChannelType, address: str | None) -> str | None:
    """``address`` with enough left to confirm it with a caller, and too little to use it.

    An email keeps its domain, and its first character when its local part has three or more
    (a••••@example.org; a one- or two-character local part would be shown nearly whole). A
    phone number keeps its last four digits when it has ten or more (•••• ••• 4567), its last
    two when shorter (4 of 7 digits would leave too few to guess); anything else is hidden.
    """
    if not address:
        return None
    if channel is ChannelType.EMAIL and "@" in address:
        local, _, domain = address.rpartition("@")
        kept = local[:1] if len(local) >= SHORTEST_LOCAL_SHOWN else ""
        return f"{kept}{HIDDEN}@{domain}"
    digits = [c for c in address if c.isdigit()]
    if channel is ChannelType.SMS and len(digits) >= SHORTEST_NUMBER:
        kept_digits = 4 if len(digits) >= FULL_LENGTH_NUMBER else 2
        return f"{HIDDEN} ••• {''.join(digits[-kept_digits:])}"
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
