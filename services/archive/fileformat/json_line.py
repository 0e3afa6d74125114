"""One line of an archive file: an interaction and every event it has, as PostgreSQL's JSON.

Each line is one interaction with its events, every column as PostgreSQL stores it
(``row_to_json`` of the row), so encrypted columns stay encrypted and a restore writes back
exactly what was read:

    {"interaction":{"id":1,...},"events":[{"id":7,...},...]}
"""

from __future__ import annotations


def line(interaction: str, events: list[str]) -> str:
    """One JSON Lines record from an interaction's JSON and its events' JSON, in id order."""
    return '{"interaction":' + interaction + ',"events":[' + ",".join(events) + "]}\n"
