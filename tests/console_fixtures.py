"""The support console under Flask's test client: users, a captured queue, signing in."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from pydantic import SecretStr
from werkzeug.security import generate_password_hash

from config.settings import ConsoleUser, Settings
from services.sending.batches import DispatchMessage

PASSWORD = "console-test-password-42"
SECRET = "console-test-secret-key-0123456789abcdef"
# A cheap hash keeps the tests quick; the console accepts any werkzeug hash.
_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
USERS = [
    ConsoleUser(username="v.iewer", password_hash=_HASH, roles=["viewer"]),  # type: ignore[arg-type]
    ConsoleUser(username="a.gent", password_hash=_HASH, roles=["agent"]),  # type: ignore[arg-type]
    ConsoleUser(username="r.esender", password_hash=_HASH, roles=["resender"]),  # type: ignore[arg-type]
]
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def console_settings(base: Settings, **changes: Any) -> Settings:
    """``base`` with the console's users and secret."""
    values = {"console_users": USERS, "console_secret_key": SECRET, **changes}
    if isinstance(values["console_secret_key"], str):
        values["console_secret_key"] = SecretStr(values["console_secret_key"])
    return base.model_copy(update=values)


def users_env() -> str:
    """INTERACTIONS_CONSOLE_USERS for a child process."""
    return json.dumps(
        [{"username": u.username, "password_hash": _HASH, "roles": list(u.roles)} for u in USERS]
    )


@dataclass
class CapturedQueue:
    """The publisher boundary: keeps what the console would have enqueued."""

    messages: list[DispatchMessage] = field(default_factory=list)
    broken: bool = False

    def publish(self, messages: Sequence[DispatchMessage]) -> None:
        if self.broken:
            raise ConnectionError("broker down")
        self.messages.extend(messages)


def token_of(html: str) -> str:
    """The form token a page carries."""
    found = _TOKEN.search(html)
    assert found, "the page has no form token"
    return found.group(1)


def sign_in(app: Flask, username: str, password: str = PASSWORD) -> tuple[FlaskClient, str]:
    """A client signed in as ``username``, and its form token."""
    client = app.test_client()
    token = token_of(client.get("/login").get_data(as_text=True))
    answer = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    assert answer.status_code == 303, answer.get_data(as_text=True)
    return client, token_of(client.get("/").get_data(as_text=True))


class _Paragraphs(HTMLParser):
    """Notes each <p> opened while another is still open in the markup as written."""

    def __init__(self) -> None:
        super().__init__()
        self.open = 0
        self.nested: list[tuple[int, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "p":
            if self.open:
                self.nested.append(self.getpos())
            self.open += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.open = max(0, self.open - 1)


def nested_paragraphs(html: str) -> list[tuple[int, int]]:
    """Where a page's markup opens a paragraph inside another (invalid: browsers split them)."""
    parser = _Paragraphs()
    parser.feed(html)
    return parser.nested
