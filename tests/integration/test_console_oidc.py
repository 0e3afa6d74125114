"""Console sign-in through an OpenID Connect provider (a local stub): code flow with PKCE,
key rotation at the provider, and sign-out that ends the provider's session too."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from pydantic import SecretStr
from werkzeug.test import TestResponse

from config.settings import Settings
from models.base import utcnow
from models.event import InteractionEvent
from models.staff_session import StaffSession
from services.support.sessions import StaffSessions, session_id
from services.support.staff import LocalDirectory, StaffUser
from tests.conftest import Database
from tests.console_fixtures import CapturedQueue, console_settings, token_of
from tests.oidc_stub import CLIENT_ID, CLIENT_SECRET, OidcStub
from workers.console import create_app
from workers.console_auth import OIDC_CLIENT
from workers.console_oidc import OidcClient

_FORM = re.compile(r'name="request" value="([^"]*)"')


@pytest.fixture
def provider() -> Iterator[OidcStub]:
    stub = OidcStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def settings(test_settings: Settings, provider: OidcStub) -> Settings:
    return console_settings(
        test_settings,
        console_users=[],
        console_oidc_issuer=provider.issuer,
        console_oidc_client_id=CLIENT_ID,
        console_oidc_client_secret=SecretStr(CLIENT_SECRET),
        console_oidc_roles_claim="client_roles",
        console_oidc_role_map={
            "support-reader": "viewer",
            "support-agent": "agent",
            "support-lead": "resender",
        },
    )


@pytest.fixture
def app(pg_db: Database, settings: Settings) -> Flask:
    return create_app(settings, sessions=pg_db.sessions, publisher=CapturedQueue())


@dataclass
class Browser:
    """One person's browser: its cookies for the console and for the provider."""

    console: FlaskClient
    web: requests.Session = field(default_factory=requests.Session)
    # Whether the provider showed its login form on the last sign-in.
    asked_to_log_in: bool = False

    def sign_in(self) -> tuple[TestResponse, dict[str, list[str]]]:
        """Through the provider and back: the console's answer, and what it asked for."""
        start = self.console.get("/login/oidc")
        assert start.status_code == 302
        asked = parse_qs(urlsplit(start.location).query)
        page = self.web.get(start.location, allow_redirects=False, timeout=5)
        self.asked_to_log_in = page.status_code == 200
        if self.asked_to_log_in:
            form = _FORM.search(page.text)
            assert form is not None, page.text
            page = self.web.post(
                urljoin(start.location, "/login"),
                data={"request": html.unescape(form[1])},
                allow_redirects=False,
                timeout=5,
            )
        assert page.status_code == 302, page.text
        target = urlsplit(page.headers["Location"])
        assert target.path == "/login/oidc/callback"
        return self.console.get(f"{target.path}?{target.query}"), asked


def _through_provider(app: Flask) -> tuple[FlaskClient, TestResponse, dict[str, list[str]]]:
    browser = Browser(app.test_client())
    answer, asked = browser.sign_in()
    return browser.console, answer, asked


def _signed_in_as(client: FlaskClient) -> str:
    page = client.get("/")
    assert page.status_code == 200
    found = re.search(r"Signed in as <strong>([^<]+)</strong>", page.get_data(as_text=True))
    assert found is not None
    return found[1]


def test_the_sign_in_page_offers_the_provider_and_no_local_form(app: Flask) -> None:
    page = app.test_client().get("/login").get_data(as_text=True)
    assert 'href="/login/oidc"' in page and 'name="password"' not in page


def test_a_member_of_staff_signs_in_with_pkce_and_gets_the_mapped_role(
    app: Flask, provider: OidcStub
) -> None:
    provider.state.claims = {
        "sub": "u-7",
        "preferred_username": "l.ead",
        "client_roles": ["support-lead", "unrelated"],
    }
    client, answer, asked = _through_provider(app)
    assert answer.status_code == 303 and answer.location == "/"
    assert asked["code_challenge_method"] == ["S256"] and asked["scope"] == ["openid profile email"]
    assert asked["state"][0] and asked["nonce"][0]
    [token_request] = provider.state.token_requests
    verifier = token_request["code_verifier"]
    assert verifier and verifier not in urlsplit(answer.location).query
    assert all(verifier not in value[0] for value in asked.values()), "only its hash went out"
    assert "Signed in as <strong>l.ead</strong> (resender)" in client.get("/").get_data(
        as_text=True
    )


def test_the_actor_recorded_is_the_providers_subject_not_the_user_name(
    app: Flask, provider: OidcStub, pg_db: Database
) -> None:
    provider.state.claims = {
        "sub": "3f2c-subject",
        "preferred_username": "l.ead",
        "client_roles": ["support-agent"],
    }
    client, answer, _ = _through_provider(app)
    assert answer.status_code == 303
    token = token_of(client.get("/").get_data(as_text=True))
    noted = client.post(
        "/customers/C-OIDC-1/notes",
        data={"content": "hi", "csrf_token": token, "confirm_unknown": "yes"},  # no record yet
    )
    assert noted.status_code == 303
    with pg_db.sessions() as session:
        actors = set(session.scalars(sa.select(InteractionEvent.actor)))
    assert actors == {"oidc:3f2c-subject"}


def test_a_token_issued_by_a_clock_a_little_ahead_is_accepted(
    app: Flask, provider: OidcStub
) -> None:
    provider.state.claims = {"sub": "u-10", "client_roles": ["support-reader"]}
    provider.state.tamper = "skewed"
    client, answer, _ = _through_provider(app)
    assert answer.status_code == 303, answer.get_data(as_text=True)
    assert "Signed in as <strong>oidc:u-10</strong> (viewer)" in client.get("/").get_data(
        as_text=True
    )


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        ("audience", "could not be verified"),
        ("key", "could not be verified"),
        ("expired", "could not be verified"),
        ("issuer", "could not be verified"),
        ("none", "could not be verified"),
        ("hs256", "could not be verified"),
        ("es256", "could not be verified"),
        ("at_hash", "could not be verified"),
        ("nonce", "was not for this sign-in"),
    ],
)
def test_a_token_that_is_not_right_in_every_way_signs_no_one_in(
    app: Flask, provider: OidcStub, tamper: str, message: str
) -> None:
    provider.state.claims = {"sub": "u-8", "client_roles": ["support-lead"]}
    provider.state.tamper = tamper
    client, answer, _ = _through_provider(app)
    assert answer.status_code == 401 and message in answer.get_data(as_text=True)
    assert client.get("/").status_code == 303


@pytest.mark.parametrize(
    ("azp", "tamper", "status"),
    [
        ("someone-else", None, 401),
        ("someone-else", "audiences", 401),
        (None, "audiences", 401),
        (CLIENT_ID, "audiences", 303),
        (CLIENT_ID, None, 303),
    ],
)
def test_a_token_issued_to_another_party_signs_no_one_in(
    app: Flask, provider: OidcStub, azp: str | None, tamper: str | None, status: int
) -> None:
    provider.state.claims = {"sub": "u-12", "client_roles": ["support-reader"]}
    if azp is not None:
        provider.state.claims["azp"] = azp
    provider.state.tamper = tamper
    _, answer, _ = _through_provider(app)
    assert answer.status_code == status, answer.get_data(as_text=True)
    if status == 401:
        assert "could not be verified" in answer.get_data(as_text=True)


def test_a_return_that_did_not_start_here_is_refused(app: Flask, provider: OidcStub) -> None:
    client = app.test_client()
    answer = client.get("/login/oidc/callback?code=abc&state=forged")
    assert answer.status_code == 401 and "did not start here" in answer.get_data(as_text=True)
    assert provider.state.token_requests == [], "no code is exchanged for a forged state"
    refused = client.get("/login/oidc/callback?error=access_denied&state=x")
    assert refused.status_code == 401 and "did not sign you in" in refused.get_data(as_text=True)


def test_a_user_with_no_console_role_is_refused(app: Flask, provider: OidcStub) -> None:
    provider.state.claims = {"sub": "u-9", "preferred_username": "o.ther", "client_roles": ["hr"]}
    client, answer, _ = _through_provider(app)
    assert answer.status_code == 403
    assert client.get("/").status_code == 303


def test_keys_rotated_at_the_provider_mid_session(app: Flask, provider: OidcStub) -> None:
    provider.state.claims = {"sub": "u-20", "client_roles": ["support-agent"]}
    agent, answer, _ = _through_provider(app)
    assert answer.status_code == 303
    provider.rotate_keys()
    assert _signed_in_as(agent) == "oidc:u-20", "a session outlives the key it began with"
    colleague, answer, _ = _through_provider(app)
    assert answer.status_code == 303, answer.get_data(as_text=True)
    assert _signed_in_as(colleague) == "oidc:u-20"
    assert provider.state.reads["/jwks"] == 2, "the new kid had the keys read again"
    assert provider.state.reads["/.well-known/openid-configuration"] == 1
    provider.state.tamper = "retired"
    _, refused, _ = _through_provider(app)
    assert refused.status_code == 401
    assert "could not be verified" in refused.get_data(as_text=True)


def test_discovery_and_keys_are_read_again_once_older_than_the_max_age(
    app: Flask, provider: OidcStub, settings: Settings
) -> None:
    now = [1000.0]
    app.extensions[OIDC_CLIENT] = OidcClient(settings, clock=lambda: now[0])
    provider.state.claims = {"sub": "u-21", "client_roles": ["support-reader"]}
    reads = provider.state.reads
    for _ in range(2):
        assert _through_provider(app)[1].status_code == 303
    assert (reads["/.well-known/openid-configuration"], reads["/jwks"]) == (1, 1)
    # Rotated while the console holds the old keys: it cannot know until their age is up.
    provider.rotate_keys()
    provider.state.tamper = "retired"
    assert _through_provider(app)[1].status_code == 303
    now[0] += settings.console_oidc_metadata_max_age_seconds
    assert _through_provider(app)[1].status_code == 401
    assert reads["/.well-known/openid-configuration"] == 2 and reads["/jwks"] >= 2


def test_sign_out_ends_the_providers_session_too(
    app: Flask, provider: OidcStub, pg_db: Database
) -> None:
    provider.state.claims = {"sub": "u-30", "client_roles": ["support-agent"]}
    browser = Browser(app.test_client())
    assert browser.sign_in()[0].status_code == 303 and browser.asked_to_log_in
    assert len(provider.state.issued) == 1
    # The provider's session signs the same browser in again without its form.
    browser.console = app.test_client()
    assert browser.sign_in()[0].status_code == 303 and not browser.asked_to_log_in
    id_token = provider.state.issued[-1]
    cookie = browser.console.get_cookie("interactions_console")
    assert cookie is not None and id_token not in repr(_opened(app, cookie.value))
    with pg_db.sessions() as session:
        raw = session.execute(sa.text("SELECT id_token FROM staff_sessions")).scalars().all()
    assert [value for value in raw if value] and all(id_token not in (v or "") for v in raw)

    home = browser.console.get("/")
    # Browsers hold the sign-out form's redirect to form-action: the provider is allowed.
    assert f"form-action 'self' {provider.issuer};" in home.headers["Content-Security-Policy"]
    csrf = token_of(home.get_data(as_text=True))
    out = browser.console.post("/logout", data={"csrf_token": csrf})
    assert out.status_code == 303
    target = urlsplit(out.location)
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{provider.issuer}/logout"
    sent = parse_qs(target.query)
    assert sent["id_token_hint"] == [id_token]
    assert sent["post_logout_redirect_uri"] == ["http://localhost/login"]
    assert browser.console.get("/").status_code == 303, "the console's session ended first"
    back = browser.web.get(out.location, allow_redirects=False, timeout=5)
    assert back.status_code == 302 and back.headers["Location"].startswith("http://localhost/login")
    assert provider.state.sessions == {}, "the provider's session ended"
    with pg_db.sessions() as session:
        row = session.get(StaffSession, session_id(_opened(app, cookie.value)["sid"]))
        assert row is not None and row.ended_at is not None and row.id_token is None

    assert browser.sign_in()[0].status_code == 303
    assert browser.asked_to_log_in, "the provider asked for its login again"


def test_an_end_session_endpoint_on_another_origin_is_allowed_as_a_form_action(
    app: Flask, provider: OidcStub
) -> None:
    provider.state.end_session_host = "localhost"
    provider.state.claims = {"sub": "u-32", "client_roles": ["support-agent"]}
    client, answer, _ = _through_provider(app)
    assert answer.status_code == 303
    elsewhere = provider.issuer.replace("127.0.0.1", "localhost")
    policy = client.get("/").headers["Content-Security-Policy"]
    assert f"form-action 'self' {provider.issuer} {elsewhere};" in policy
    out = client.post(
        "/logout", data={"csrf_token": token_of(client.get("/").get_data(as_text=True))}
    )
    assert out.location.startswith(f"{elsewhere}/logout?")


def test_sign_out_with_the_provider_out_of_reach_still_ends_the_consoles_session(
    app: Flask, provider: OidcStub, settings: Settings
) -> None:
    now = [1000.0]
    app.extensions[OIDC_CLIENT] = OidcClient(settings, clock=lambda: now[0])
    provider.state.claims = {"sub": "u-31", "client_roles": ["support-agent"]}
    client, answer, _ = _through_provider(app)
    assert answer.status_code == 303
    provider.stop()
    now[0] += settings.console_oidc_metadata_max_age_seconds
    out = client.post(
        "/logout", data={"csrf_token": token_of(client.get("/").get_data(as_text=True))}
    )
    assert out.status_code == 303 and out.location == "/login"
    assert client.get("/").status_code == 303


def _opened(app: Flask, cookie: str) -> dict[str, Any]:
    """What the console's signed cookie holds."""
    serializer = app.session_interface.get_signing_serializer(app)  # type: ignore[attr-defined]
    opened: dict[str, Any] = serializer.loads(cookie)
    return opened


def test_an_id_token_is_dropped_once_its_session_has_idled_out(
    pg_db: Database, settings: Settings
) -> None:
    now = [utcnow()]
    store = StaffSessions(pg_db.sessions, LocalDirectory([]), settings, clock=lambda: now[0])
    user = StaffUser("oidc:u-40", ("viewer",), None)
    store.open(user, "id-token-of-the-idle-session")
    now[0] += timedelta(minutes=settings.console_idle_minutes + 1)
    store.open(user, "id-token-of-the-next-session")
    with pg_db.sessions() as session:
        kept = session.scalars(
            sa.select(StaffSession.id_token).where(StaffSession.actor == user.username)
        ).all()
    assert sorted(kept, key=lambda value: value or "") == [None, "id-token-of-the-next-session"]


@pytest.mark.parametrize(
    ("offered", "configured", "used"),
    [
        (("client_secret_basic", "client_secret_post"), None, "client_secret_basic"),
        (("client_secret_post",), None, "client_secret_post"),
        (("client_secret_basic", "client_secret_post"), "client_secret_post", "client_secret_post"),
    ],
)
def test_the_client_authenticates_at_the_token_endpoint_as_offered_or_configured(
    pg_db: Database,
    settings: Settings,
    provider: OidcStub,
    offered: tuple[str, ...],
    configured: Any,
    used: str,
) -> None:
    provider.state.auth_methods = offered
    provider.state.claims = {"sub": "u-50", "client_roles": ["support-reader"]}
    changed = settings.model_copy(update={"console_oidc_token_auth_method": configured})
    app = create_app(changed, sessions=pg_db.sessions, publisher=CapturedQueue())
    assert _through_provider(app)[1].status_code == 303
    assert provider.state.auth_used == [used]
