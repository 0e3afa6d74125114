"""Why applying a stored callback failed: its content (settle it), the moment (retry), or a bug.

A content error is the event's own fault and will fail the same way every time: its row is
settled as rejected so it never blocks the next one. A transient error (a deadlock, a
serialization failure, a lost connection) says nothing about the event: its batch is retried.
Anything else is retried a bounded number of times before it too is settled, with its class
as the reason, so a bug can neither lose a good event at once nor block the queue for ever.
"""

from __future__ import annotations

import enum

from sqlalchemy.exc import DataError, DBAPIError, InterfaceError, OperationalError

from services.callbacks.parsing import MalformedCallback

# SQLSTATE classes: 08 connection, 40 rollback (deadlock, serialization), 53 resources,
# 57 operator intervention (shutdown, statement timeout).
_TRANSIENT_CLASSES = ("08", "40", "53", "57")
_CONTENT_ERRORS = (MalformedCallback, DataError, ValueError, OverflowError, RecursionError)


class Cause(enum.StrEnum):
    """What kind of failure stopped a callback from being applied."""

    CONTENT = "content"
    TRANSIENT = "transient"
    UNEXPECTED = "unexpected"


def cause_of(exc: BaseException) -> Cause:
    """Sort a failure to apply one event into its kind; transient is checked first."""
    if isinstance(exc, OperationalError | InterfaceError):
        return Cause.TRANSIENT
    if isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or _sqlstate(exc).startswith(_TRANSIENT_CLASSES)
    ):
        return Cause.TRANSIENT
    if isinstance(exc, _CONTENT_ERRORS):  # UnicodeError is a ValueError
        return Cause.CONTENT
    return Cause.UNEXPECTED


def _sqlstate(exc: DBAPIError) -> str:
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    return code if isinstance(code, str) else ""


def reason_for(exc: BaseException) -> str:
    """A reason to keep with a rejected row: the field and the problem, never the value."""
    if isinstance(exc, MalformedCallback):
        return str(exc)[:200]
    if isinstance(exc, DBAPIError):
        state = _sqlstate(exc)
        return f"the database refused a value ({state or type(exc.orig).__name__})"
    if isinstance(exc, UnicodeError):
        return "a value is not valid UTF-8 text"
    if cause_of(exc) is Cause.CONTENT:
        return f"a value cannot be applied ({type(exc).__name__})"
    return f"unexpected {type(exc).__name__} while applying"
