"""Failed console sign-ins are throttled per user name (a growing delay) and per client address."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from config.settings import Settings
from models.base import utcnow
from models.sign_in_failure import SignInFailure
from tests.conftest import Database
from tests.console_fixtures import PASSWORD, CapturedQueue, console_settings, token_of
from workers.console import create_app

WRONG = "not-the-password-123"


@pytest.fixture
def app(pg_db: Database, test_settings: Settings) -> Flask:
    settings = console_settings(
        test_settings,
        console_sign_in_failures_per_user=3,
        console_sign_in_failures_per_address=5,
        console_sign_in_window_minutes=15,
    )
    return create_app(settings, sessions=pg_db.sessions, publisher=CapturedQueue())


def _client(app: Flask, address: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def _sign_in(client: FlaskClient, username: str, password: str) -> tuple[int, str, str | None]:
    token = token_of(client.get("/login").get_data(as_text=True))
    answer = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )
    return answer.status_code, answer.get_data(as_text=True), answer.headers.get("Retry-After")


def test_a_user_name_that_failed_too_often_waits_even_with_the_right_password(
    app: Flask, pg_db: Database
) -> None:
    client = _client(app, "10.0.0.1")
    assert [_sign_in(client, "r.esender", WRONG)[0] for _ in range(3)] == [401] * 3
    status, page, retry = _sign_in(client, "r.esender", PASSWORD)
    assert status == 429 and retry is not None and 29 <= int(retry) <= 30
    assert f"Too many failed sign-ins. Wait {retry} seconds and try again" in page
    assert client.get("/").status_code == 303, "not signed in"
    elsewhere = _client(app, "10.0.0.2")
    assert _sign_in(elsewhere, "r.esender", PASSWORD)[0] == 429, "the name waits everywhere"
    assert _sign_in(elsewhere, "v.iewer", PASSWORD)[0] == 303, "other names are not held up"
    with pg_db.sessions() as session:
        subjects = list(session.scalars(sa.select(SignInFailure.subject)))
    assert len(subjects) == 6 and not any("esender" in s or "10.0" in s for s in subjects)

    with pg_db.sessions() as session, session.begin():
        session.execute(sa.update(SignInFailure).values(failed_at=utcnow() - timedelta(minutes=16)))
    assert _sign_in(client, "r.esender", PASSWORD)[0] == 303, "the window has passed"


def test_an_address_that_failed_too_often_waits_whatever_the_name(app: Flask) -> None:
    client = _client(app, "10.0.0.3")
    names = [f"guess-{n}" for n in range(5)]
    assert [_sign_in(client, name, WRONG)[0] for name in names] == [401] * 5
    assert _sign_in(client, "v.iewer", PASSWORD)[0] == 429
    assert _sign_in(_client(app, "10.0.0.4"), "v.iewer", PASSWORD)[0] == 303


def test_a_successful_sign_in_clears_the_names_failures(app: Flask) -> None:
    client = _client(app, "10.0.0.5")
    assert [_sign_in(client, "v.iewer", WRONG)[0] for _ in range(2)] == [401] * 2
    assert _sign_in(client, "v.iewer", PASSWORD)[0] == 303
    other = _client(app, "10.0.0.6")
    assert [_sign_in(other, "v.iewer", WRONG)[0] for _ in range(2)] == [401] * 2
    assert _sign_in(other, "v.iewer", PASSWORD)[0] == 303, "two fresh failures, under three"
