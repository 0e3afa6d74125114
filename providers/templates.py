"""Message templates read from files and rendered in Jinja's sandbox; payload values stay data."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import missing

_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_SUBJECT_PREFIX = "Subject: "


class TemplateError(ValueError):
    """A template could not be found, compiled or rendered; the message holds no payload value."""


@dataclass(frozen=True)
class RenderedEmail:
    """An email's rendered subject line and plain-text body."""

    subject: str
    body: str


@dataclass(frozen=True)
class _Compiled:
    subject: Template | None
    body: Template


class _NamedStrictUndefined(StrictUndefined):
    """StrictUndefined whose error names a missing variable and never quotes a value."""

    __slots__ = ()

    @property
    def _undefined_message(self) -> str:
        # Jinja's own message can quote a runtime item key, which may come from the payload;
        # a top-level variable name can only come from the template itself.
        if self._undefined_obj is missing and isinstance(self._undefined_name, str):
            return f"missing variable {self._undefined_name!r}"
        return "missing attribute or item of a variable"


class TemplateStore:
    """Templates in one directory: ``{key}.email.txt`` and ``{key}.sms.txt``, compiled once."""

    def __init__(self, directory: Path) -> None:
        self._directory = Path(directory)
        # No loader: templates reach Jinja only through _read, so include/extends find nothing.
        self._env = ImmutableSandboxedEnvironment(undefined=_NamedStrictUndefined, autoescape=False)
        self._compiled: dict[tuple[str, str], _Compiled] = {}
        self._lock = threading.Lock()

    @property
    def directory(self) -> Path:
        """Where the template files are read from."""
        return self._directory

    def render_email(self, key: str, payload: dict[str, Any]) -> RenderedEmail:
        """The subject and body of email template ``key``, with ``payload`` as its variables."""
        compiled = self._template(key, "email")
        assert compiled.subject is not None  # email templates always carry a subject
        subject = self._render(compiled.subject, payload, key, "email subject")
        return RenderedEmail(subject, self._render(compiled.body, payload, key, "email body"))

    def render_sms(self, key: str, payload: dict[str, Any]) -> str:
        """The text of SMS template ``key``, with ``payload`` as its variables."""
        return self._render(self._template(key, "sms").body, payload, key, "sms")

    def placeholders(self, key: str, kind: str) -> set[str]:
        """The variables template ``key`` of ``kind`` (email or sms) uses; TemplateError if none."""
        source = self._read(self._checked_key(key), kind)
        try:
            return set(meta.find_undeclared_variables(self._env.parse(source)))
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {key!r} ({kind}) has a syntax error at line {exc.lineno}: {exc.message}"
            ) from None

    @staticmethod
    def _checked_key(key: str) -> str:
        if not isinstance(key, str) or not _KEY.match(key):
            raise TemplateError("template key must be 1-100 letters, digits and _ . -")
        return key

    def _template(self, key: str, kind: str) -> _Compiled:
        with self._lock:
            cached = self._compiled.get((key, kind))
        if cached is not None:
            return cached
        compiled = self._compile(key, kind)
        with self._lock:
            # Two threads may compile the same file at once; both results are equal.
            return self._compiled.setdefault((key, kind), compiled)

    def _compile(self, key: str, kind: str) -> _Compiled:
        source = self._read(self._checked_key(key), kind)
        try:
            if kind == "email":
                subject, body = _split_email(key, source)
                return _Compiled(self._env.from_string(subject), self._env.from_string(body))
            return _Compiled(None, self._env.from_string(source))
        except TemplateSyntaxError as exc:
            raise TemplateError(
                f"template {key!r} ({kind}) has a syntax error at line {exc.lineno}: {exc.message}"
            ) from None

    def _read(self, key: str, kind: str) -> str:
        path = self._directory / f"{key}.{kind}.txt"
        try:
            return path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TemplateError(f"unknown {kind} template {key!r}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(
                f"{kind} template {key!r} cannot be read ({type(exc).__name__})"
            ) from None

    @staticmethod
    def _render(template: Template, payload: dict[str, Any], key: str, part: str) -> str:
        try:
            return template.render(payload)
        except SecurityError:
            raise TemplateError(
                f"template {key!r} ({part}) attempted an operation the sandbox forbids"
            ) from None
        except UndefinedError as exc:
            detail = exc.message if (exc.message or "").startswith("missing ") else "undefined"
            raise TemplateError(f"template {key!r} ({part}): {detail}") from None
        except Exception as exc:
            # The exception's text could quote a payload value; its type is enough to debug.
            raise TemplateError(
                f"template {key!r} ({part}) failed to render ({type(exc).__name__})"
            ) from None


def _split_email(key: str, source: str) -> tuple[str, str]:
    """The subject line and body of an email template file."""
    first, _, rest = source.partition("\n")
    first = first.rstrip("\r")
    if not first.startswith(_SUBJECT_PREFIX):
        raise TemplateError(f"email template {key!r} must start with 'Subject: '")
    blank, _, body = rest.partition("\n")
    if blank.strip():
        raise TemplateError(f"email template {key!r} needs one blank line after its subject")
    return first[len(_SUBJECT_PREFIX) :], body
