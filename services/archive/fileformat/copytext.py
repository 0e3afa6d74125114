"""Undoing the escapes of PostgreSQL's COPY text format, for output of one text column."""

from __future__ import annotations

import re

# COPY ... TO in text format writes a backslash before each of these; nothing else is escaped
# in a single column that is never NULL.
_UNESCAPED = {
    b"\\": b"\\",
    b"n": b"\n",
    b"r": b"\r",
    b"t": b"\t",
    b"b": b"\b",
    b"f": b"\f",
    b"v": b"\v",
}
_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)


def _unescape_one(match: re.Match[bytes]) -> bytes:
    try:
        return _UNESCAPED[match.group(1)]
    except KeyError:
        raise ValueError(f"unexpected COPY escape {match.group(0)!r}") from None


def unescape(rows: bytes) -> bytes:
    """The text of whole COPY rows as the column held it, each row still ending in a newline.

    ``rows`` must end at a row's end: an escape is never split from the character it escapes.
    """
    if rows and not rows.endswith(b"\n"):
        raise ValueError("COPY output cut inside a row")
    if b"\\" not in rows:
        return rows
    return _ESCAPE.sub(_unescape_one, rows)
