"""The console's sign-in throttle under concurrency and behind a proxy, its limits and headers."""

from __future__ import annotations

import io
import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from config.settings import Settings
from devtools.processes import ConsoleServer
from models.sign_in_failure import SignInFailure
from services.container import Container
from services.support.staff import StaffUser
from tests.conftest import PG_URL, Database
from tests.console_fixtures import (
    PASSWORD,
    SECRET,
    CapturedQueue,
    console_settings,
    token_of,
    users_env,
)
from workers.console import create_app
from workers.webapp import EXTENSION

WRONG = "not-the-password-123"
PER_USER = 5
GUESSES = 50
# About what werkzeug's scrypt costs; the tests' cheap hash would make the race hard to hit.
CHECK_SECONDS = 0.07
AGE_FAILURES = sa.text(
    "UPDATE staff_sign_in_failures SET failed_at = failed_at - make_interval(secs => :s)"
)


def _app(sessions: Database, base: Settings, **changes: object) -> Flask:
    limits: dict[str, object] = {
        "console_sign_in_failures_per_user": PER_USER,
        "console_sign_in_failures_per_address": 1000,
    }
    settings = console_settings(base, **{**limits, **changes})
    return create_app(settings, sessions=sessions.sessions, publisher=CapturedQueue())


def _container(app: Flask) -> Container:
    built: Container = app.extensions[EXTENSION]()
    return built


def _client(app: Flask, address: str = "10.1.0.1") -> tuple[FlaskClient, str]:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client, token_of(client.get("/login").get_data(as_text=True))


def _post(
    client: FlaskClient, token: str, username: str, password: str, forwarded: str | None = None
) -> tuple[int, str | None]:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    answer = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": token},
        headers=headers,
    )
    return answer.status_code, answer.headers.get("Retry-After")


def _age_failures(db: Database, seconds: float) -> None:
    with db.sessions() as session, session.begin():
        session.execute(AGE_FAILURES, {"s": seconds})


def test_fifty_concurrent_wrong_passwords_reach_the_password_check_at_most_the_limit(
    committed_pg: Database, test_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(committed_pg, test_settings)
    directory = _container(app).staff_directory
    checked = Counter[str]()
    lock = threading.Lock()
    authenticate = directory.authenticate

    def counted(username: str, password: str) -> StaffUser | None:
        with lock:
            checked[username] += 1
        time.sleep(CHECK_SECONDS)
        return authenticate(username, password)

    monkeypatch.setattr(directory, "authenticate", counted)
    clients = [_client(app, f"10.2.0.{n}") for n in range(GUESSES)]
    start = threading.Barrier(GUESSES)
    statuses = Counter[int]()

    def guess(client: FlaskClient, token: str) -> None:
        start.wait()
        status, _ = _post(client, token, "r.esender", WRONG)
        with lock:
            statuses[status] += 1

    threads = [threading.Thread(target=guess, args=pair) for pair in clients]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        # committed_pg empties the ledger's tables, not this one.
        with committed_pg.sessions() as session, session.begin():
            session.execute(sa.delete(SignInFailure))
    assert 1 <= checked["r.esender"] <= PER_USER, checked
    assert statuses == Counter({401: checked["r.esender"], 429: GUESSES - checked["r.esender"]})


def test_a_name_that_failed_too_often_waits_a_delay_that_doubles_not_the_window(
    pg_db: Database, test_settings: Settings
) -> None:
    app = _app(pg_db, test_settings, console_sign_in_delay_seconds=30)
    client, token = _client(app)
    assert [_post(client, token, "a.gent", WRONG)[0] for _ in range(PER_USER)] == [401] * PER_USER
    status, retry = _post(client, token, "a.gent", PASSWORD)
    assert status == 429 and retry is not None and 29 <= int(retry) <= 30

    _age_failures(pg_db, 31)
    assert _post(client, token, "a.gent", WRONG)[0] == 401, "the delay has passed"
    _age_failures(pg_db, 31)
    status, retry = _post(client, token, "a.gent", PASSWORD)
    assert status == 429 and retry is not None and 28 <= int(retry) <= 29, "now 60 seconds"
    _age_failures(pg_db, 30)
    assert _post(client, token, "a.gent", PASSWORD)[0] == 303


def test_behind_a_trusted_proxy_each_client_is_counted_at_its_own_address(
    pg_db: Database, test_settings: Settings
) -> None:
    app = _app(
        pg_db,
        test_settings,
        console_sign_in_failures_per_address=5,
        console_trusted_proxy_hops=1,
    )
    proxy, token = _client(app, "10.9.9.9")
    guesses = [_post(proxy, token, f"guess-{n}", WRONG, f"203.0.113.{n}")[0] for n in range(8)]
    assert guesses == [401] * 8, "eight clients, one failure each"
    assert [_post(proxy, token, f"again-{n}", WRONG, "203.0.113.50")[0] for n in range(5)] == [
        401
    ] * 5
    assert _post(proxy, token, "v.iewer", PASSWORD, "203.0.113.50")[0] == 429
    assert _post(proxy, token, "v.iewer", PASSWORD, "203.0.113.51")[0] == 303


def test_without_a_trusted_proxy_a_forwarded_address_is_ignored(
    pg_db: Database, test_settings: Settings
) -> None:
    app = _app(pg_db, test_settings, console_sign_in_failures_per_address=3)
    client, token = _client(app, "10.3.0.1")
    for n in range(3):
        assert _post(client, token, f"guess-{n}", WRONG, f"198.51.100.{n}")[0] == 401
    assert _post(client, token, "v.iewer", PASSWORD, "198.51.100.77")[0] == 429


def test_the_default_address_ceiling_is_far_above_the_names() -> None:
    defaults = Settings(environment="test")
    assert defaults.console_trusted_proxy_hops == 0
    assert defaults.console_sign_in_failures_per_address >= 10 * (
        defaults.console_sign_in_failures_per_user
    )


class CountingStream(io.BytesIO):
    """A request body that counts the bytes the app reads from it."""

    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.read_bytes += len(chunk)
        return chunk


def _multipart(size: int) -> tuple[bytes, str]:
    boundary = "console-test-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf_token"\r\n\r\nx\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="f.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + b"a" * size
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("kind", ["urlencoded", "multipart"])
def test_a_one_megabyte_form_is_refused_with_413_unread(
    pg_db: Database, test_settings: Settings, kind: str
) -> None:
    app = _app(pg_db, test_settings)
    if kind == "urlencoded":
        body, content_type = (
            b"csrf_token=x&content=" + b"a" * 1024 * 1024,
            ("application/x-www-form-urlencoded"),
        )
    else:
        body, content_type = _multipart(1024 * 1024)
    stream = CountingStream(body)
    answer = app.test_client().post(
        "/login", input_stream=stream, content_length=len(body), content_type=content_type
    )
    assert answer.status_code == 413
    assert stream.read_bytes == 0, "the body was read"


def test_a_longest_note_still_fits(pg_db: Database, test_settings: Settings) -> None:
    app = _app(pg_db, test_settings)
    client, token = _client(app)
    assert _post(client, token, "a.gent", PASSWORD)[0] == 303
    token = token_of(client.get("/").get_data(as_text=True))
    note = "\U0001f4de" * test_settings.max_note_chars
    form = {"content": note, "confirm_unknown": "yes", "csrf_token": token}
    answer = client.post("/customers/C-1/notes", data=form)
    assert answer.status_code == 303


def test_production_pages_carry_hsts_and_development_ones_do_not(
    pg_db: Database, test_settings: Settings
) -> None:
    production = _app(
        pg_db,
        test_settings,
        environment="production",
        console_allow_local_users_in_production=True,
    )
    answer = production.test_client().get("/login")
    assert answer.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert (
        "Strict-Transport-Security"
        not in _app(pg_db, test_settings).test_client().get("/login").headers
    )


def test_gunicorn_logs_no_request_line_no_query_and_no_client_address(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
    env.update(
        INTERACTIONS_ENVIRONMENT="test",
        INTERACTIONS_DATABASE_URL=PG_URL,
        INTERACTIONS_VAR_DIR=str(tmp_path / "var"),
        INTERACTIONS_CONSOLE_USERS=users_env(),
        INTERACTIONS_CONSOLE_SECRET_KEY=SECRET,
    )
    server = ConsoleServer(env, tmp_path)
    try:
        status, _ = server.post("/healthz?reference=query-7f3e", b"", {}, method="GET")
        assert status == 200
        assert server.post("/login?next=query-9a1c", b"", {}, method="GET")[0] == 200
    finally:
        server.stop()
    logged = server.log_text()
    assert "Booting worker" in logged, logged
    assert "query-" not in logged and "/healthz" not in logged and "GET /" not in logged, logged
    assert "127.0.0.1 -" not in logged, logged
