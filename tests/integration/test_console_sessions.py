"""Console sessions in the database: sign-out, idle and absolute limits, a new id at sign-in."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from config.settings import Settings
from models.base import utcnow
from models.staff_session import StaffSession
from services.support.sessions import session_id
from tests.conftest import Database
from tests.console_fixtures import PASSWORD, CapturedQueue, console_settings, sign_in, token_of
from workers.console import create_app

COOKIE = "interactions_console"


@pytest.fixture
def app(pg_db: Database, test_settings: Settings) -> Flask:
    settings = console_settings(test_settings, console_idle_minutes=30)
    return create_app(settings, sessions=pg_db.sessions, publisher=CapturedQueue())


def _cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    return cookie.value


def _token(app: Flask, cookie: str) -> str:
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    token: str = serializer.loads(cookie)["sid"]
    return token


def _replayed(app: Flask, cookie: str) -> FlaskClient:
    client = app.test_client()
    client.set_cookie(COOKIE, cookie)
    return client


def _row(db: Database, app: Flask, cookie: str) -> StaffSession:
    with db.sessions() as session:
        row = session.get(StaffSession, session_id(_token(app, cookie)))
        assert row is not None
        return row


def _set(db: Database, app: Flask, cookie: str, **values: object) -> None:
    with db.sessions() as session, session.begin():
        session.execute(
            sa.update(StaffSession)
            .where(StaffSession.id == session_id(_token(app, cookie)))
            .values(**values)
        )


def test_a_cookie_replayed_after_sign_out_is_refused(app: Flask, pg_db: Database) -> None:
    client, token = sign_in(app, "r.esender")
    copied = _cookie(client)
    assert _replayed(app, copied).get("/").status_code == 200, "a copy works while signed in"
    answer = client.post("/logout", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.location.endswith("/login")
    replay = _replayed(app, copied).get("/")
    assert replay.status_code == 303 and replay.location.endswith("/login")
    assert _row(pg_db, app, copied).ended_at is not None


def test_the_database_holds_only_a_hash_of_the_cookies_token(app: Flask, pg_db: Database) -> None:
    client, _ = sign_in(app, "v.iewer")
    token = _token(app, _cookie(client))
    row = _row(pg_db, app, _cookie(client))
    assert row.id == session_id(token) != token and row.actor == "v.iewer"
    assert row.expires_at - row.created_at == timedelta(minutes=480)


def test_a_session_idle_past_the_timeout_is_refused(app: Flask, pg_db: Database) -> None:
    client, _ = sign_in(app, "v.iewer")
    cookie = _cookie(client)
    _set(pg_db, app, cookie, last_seen_at=utcnow() - timedelta(minutes=29))
    assert client.get("/").status_code == 200, "29 minutes idle is still within the limit"
    assert _row(pg_db, app, cookie).last_seen_at > utcnow() - timedelta(minutes=1)
    _set(pg_db, app, cookie, last_seen_at=utcnow() - timedelta(minutes=31))
    answer = _replayed(app, cookie).get("/")
    assert answer.status_code == 303 and answer.location.endswith("/login")


def test_a_session_past_its_absolute_limit_is_refused_however_active(
    app: Flask, pg_db: Database
) -> None:
    client, _ = sign_in(app, "v.iewer")
    _set(pg_db, app, _cookie(client), expires_at=utcnow() - timedelta(seconds=1))
    answer = client.get("/")
    assert answer.status_code == 303 and answer.location.endswith("/login")


def test_signing_in_issues_a_new_session_id_and_ends_the_one_held_before(
    app: Flask, pg_db: Database
) -> None:
    client, _ = sign_in(app, "v.iewer")
    before = _cookie(client)
    form_token = token_of(client.get("/login").get_data(as_text=True))
    again = client.post(
        "/login", data={"username": "r.esender", "password": PASSWORD, "csrf_token": form_token}
    )
    assert again.status_code == 303
    after = _cookie(client)
    assert _token(app, after) != _token(app, before)
    assert _row(pg_db, app, before).ended_at is not None
    assert _replayed(app, before).get("/").status_code == 303
    assert "Signed in as <strong>r.esender</strong>" in client.get("/").get_data(as_text=True)


def test_a_cookie_signed_by_this_console_but_naming_no_session_is_refused(app: Flask) -> None:
    client, _ = sign_in(app, "v.iewer")
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    forged = serializer.dumps({**serializer.loads(_cookie(client)), "sid": "made-up"})
    assert _replayed(app, forged).get("/").status_code == 303
