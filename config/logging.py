"""Logging set-up: JSON in production, readable text in development, nothing personal in any record.

A record carries the ids of what it is about (interaction UUID, idempotency key, batch id,
customer id, task id) from the ``extra`` of the call or from the context a task binds; every
other ``extra`` is dropped, so a field such as a recipient or a body cannot reach a log line
by mistake, and any e-mail address left in a message or traceback is masked.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from config.settings import get_settings

LogFormat = Literal["json", "text"]

# The ids a line may carry about what it concerns, in the order they are shown.
CONTEXT_FIELDS = (
    "interaction_uuid",
    "idempotency_key",
    "batch_id",
    "customer_id",
    "event_id",
    "task_id",
    "task_name",
)
# Other extras a log call may pass: codes and names, never anything a customer wrote or owns.
SAFE_EXTRAS = ("provider", "channel", "status", "outcome", "reason", "queue", "count")
_FIELDS = (*CONTEXT_FIELDS, *SAFE_EXTRAS)
_EMAIL = re.compile(r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)+")
MASKED_EMAIL = "[email]"

# The logger of Celery's "Task ... received" line.
CELERY_RECEIVED_LOGGER = "celery.worker.strategy"

_context: ContextVar[dict[str, str] | None] = ContextVar("log_context", default=None)


def scrub(text: str) -> str:
    """``text`` with every e-mail address masked."""
    # Every address has an "@": most lines have none, and a search for it costs a tenth of
    # the pattern's.
    return _EMAIL.sub(MASKED_EMAIL, text) if "@" in text else text


@contextmanager
def log_context(**ids: object) -> Iterator[None]:
    """Attach ``ids`` to every line logged in this block (and this thread or task)."""
    token = _context.set({**(_context.get() or {}), **_clean(ids)})
    try:
        yield
    finally:
        _context.reset(token)


def start_context(**ids: object) -> None:
    """Begin a fresh context, as a task does when it starts; ``end_context`` closes it."""
    _context.set(_clean(ids))


def end_context() -> None:
    """Close the context a task began."""
    _context.set(None)


def bind(**ids: object) -> None:
    """Add ids learnt along the way (the interaction UUID once claimed); no-op outside a context."""
    current = _context.get()
    if current is not None:
        current.update(_clean(ids))


def _clean(ids: dict[str, object]) -> dict[str, str]:
    return {k: str(v) for k, v in ids.items() if k in CONTEXT_FIELDS and v is not None}


def record_fields(record: logging.LogRecord) -> dict[str, str]:
    """The ids and safe extras of ``record``, its own extras first, then the bound context."""
    bound = _context.get() or {}
    given = record.__dict__
    fields = {}
    for name in _FIELDS:
        value = given.get(name)
        if value is not None:
            fields[name] = scrub(str(value))
        elif name in bound:
            fields[name] = bound[name]
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as JSON: time, level, logger, message, ids, and the exception if any."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
            **record_fields(record),
            "process": record.process,
        }
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
            line["exc"] = scrub(self.formatException(record.exc_info))
        elif record.exc_text:
            line["exc"] = scrub(record.exc_text)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """A line a person reads: time, level, logger, message, then the ids as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The usual line with its ids appended and e-mail addresses masked."""
        text = super().format(record)
        fields = record_fields(record)
        if fields:
            text += "  " + " ".join(f"{k}={v}" for k, v in fields.items())
        return scrub(text)


def formatter(fmt: LogFormat) -> logging.Formatter:
    """The formatter for ``fmt``."""
    return JsonFormatter() if fmt == "json" else TextFormatter()


def configured_format() -> LogFormat:
    """The format the settings ask for; text when the settings themselves are broken."""
    try:
        return get_settings().resolved_log_format
    except ValueError:  # the command reports the broken setting itself, in plain words
        return "text"


def configure_logging(
    level: int | str = logging.INFO, fmt: LogFormat | None = None, stream: Any = None
) -> None:
    """Send every record to standard error (or ``stream``) in the configured format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(fmt or configured_format()))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level)
    # Celery logs every task twice at INFO, received and done: the second line says all the
    # first does (the task, its ids) and how it ended, so one line a message is kept.
    logging.getLogger(CELERY_RECEIVED_LOGGER).setLevel(logging.WARNING)
    # SQLAlchemy logs each statement at INFO once its logger is enabled; never those.
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)
    # Authlib logs a sign-in's PKCE code verifier at DEBUG; never that.
    logging.getLogger("authlib").setLevel(logging.INFO)


def gunicorn_logconfig(fmt: LogFormat, level: str = "INFO") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for gunicorn: its own lines in our format, no access log."""
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "service",
        "stream": "ext://sys.stderr",
    }
    factory = JsonFormatter if fmt == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"service": {"()": f"{__name__}.{factory.__name__}"}},
        "handlers": {"console": handler, "nowhere": {"class": "logging.NullHandler"}},
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["console"], "propagate": False},
            # Gunicorn logs every request once a logging config is given; its lines would hold
            # the client's address and the query string, so they go nowhere.
            "gunicorn.access": {"level": "CRITICAL", "handlers": ["nowhere"], "propagate": False},
            # Authlib logs a sign-in's PKCE code verifier at DEBUG.
            "authlib": {"level": "INFO"},
        },
    }
