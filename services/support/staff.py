"""Staff of the support console: who they are, how they sign in locally, and what they may do."""

from __future__ import annotations

import enum
import hmac
from collections.abc import Iterable
from dataclasses import dataclass

from werkzeug.security import check_password_hash, generate_password_hash

from config.settings import ConsoleUser

# Checked against when the name is unknown, so a wrong name costs as long as a wrong password.
_DECOY_HASH = generate_password_hash("not a password anyone has")


class Permission(enum.StrEnum):
    """What a console page or form needs."""

    READ = "read"
    # Addresses in full, subjects and bodies: what was sent, to whom (recorded when shown).
    READ_CONTENT = "read_content"
    ADD_NOTE = "add_note"
    RESEND = "resend"


ROLE_PERMISSIONS: dict[str, frozenset[Permission]] = {
    "viewer": frozenset({Permission.READ}),
    # A note records a call as it happened; it sends nothing and changes nothing sent.
    "agent": frozenset({Permission.READ, Permission.READ_CONTENT, Permission.ADD_NOTE}),
    "resender": frozenset(
        {Permission.READ, Permission.READ_CONTENT, Permission.ADD_NOTE, Permission.RESEND}
    ),
}


@dataclass(frozen=True)
class StaffUser:
    """A signed-in member of staff: ``username`` is what history records as the actor."""

    username: str
    roles: tuple[str, ...]
    # What the page shows, when it differs from the actor (a provider's user name).
    display_name: str | None = None

    @property
    def shown_name(self) -> str:
        """The name to show on the page."""
        return self.display_name or self.username

    def may(self, permission: Permission) -> bool:
        """Whether one of the user's roles grants ``permission``."""
        return any(permission in ROLE_PERMISSIONS.get(role, frozenset()) for role in self.roles)


class LocalDirectory:
    """The configured list of local users (development, or where no identity provider exists)."""

    def __init__(self, users: Iterable[ConsoleUser]) -> None:
        self._users = {user.username: user for user in users}

    def authenticate(self, username: str, password: str) -> StaffUser | None:
        """The user whose name and password these are, or None; the same cost either way."""
        user = self._users.get(username)
        stored = user.password_hash.get_secret_value() if user else _DECOY_HASH
        matches = check_password_hash(stored, password)
        if user is None or not matches:
            return None
        return StaffUser(user.username, tuple(user.roles))

    def lookup(self, username: str) -> StaffUser | None:
        """The user as configured now, so a removed user or role stops working at once."""
        user = self._users.get(username)
        return StaffUser(user.username, tuple(user.roles)) if user else None


def hash_password(password: str) -> str:
    """A password hash for the console's user list (scrypt, salted)."""
    if len(password) < 12:
        raise ValueError("a console password needs 12 characters or more")
    return generate_password_hash(password, method="scrypt")


def same_token(given: str | None, expected: str) -> bool:
    """Compare a form's token with the session's in constant time."""
    if not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
