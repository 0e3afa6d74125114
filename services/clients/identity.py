"""Who is calling the HTTP API and what they may do."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Scope(enum.StrEnum):
    """A group of endpoints a client may be allowed."""

    SEND = "send"
    READ = "read"
    NOTES = "notes"


class Unauthenticated(Exception):
    """The request carries no credential the service accepts (said without detail)."""


@dataclass(frozen=True)
class Caller:
    """An authenticated client: its name (recorded on its writes) and its scopes."""

    client: str
    scopes: frozenset[Scope]

    def may(self, scope: Scope) -> bool:
        """Whether the client holds ``scope``."""
        return scope in self.scopes


def parse_scopes(text: str | list[str]) -> frozenset[Scope]:
    """The known scopes among a comma- or space-separated list; ValueError names an unknown one."""
    words = text if isinstance(text, list) else text.replace(",", " ").split()
    found: set[Scope] = set()
    for word in words:
        try:
            found.add(Scope(word.strip()))
        except ValueError:
            known = ", ".join(scope.value for scope in Scope)
            raise ValueError(f"unknown scope {word!r}; expected some of {known}") from None
    return frozenset(found)
