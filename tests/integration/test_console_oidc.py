"""Console sign-in through an OpenID Connect provider (a local stub): code flow with PKCE."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from pydantic import SecretStr
from werkzeug.test import TestResponse

from config.settings import Settings
from models.event import InteractionEvent
from tests.conftest import Database
from tests.console_fixtures import CapturedQueue, console_settings
from tests.oidc_stub import CLIENT_ID, CLIENT_SECRET, OidcStub
from workers.console import create_app


@pytest.fixture
def provider() -> Iterator[OidcStub]:
    stub = OidcStub().start()
    yield stub
    stub.stop()


@pytest.fixture
def app(pg_db: Database, test_settings: Settings, provider: OidcStub) -> Flask:
    settings = console_settings(
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
    return create_app(settings, sessions=pg_db.sessions, publisher=CapturedQueue())


def _through_provider(app: Flask) -> tuple[FlaskClient, TestResponse, dict[str, list[str]]]:
    client = app.test_client()
    start = client.get("/login/oidc")
    assert start.status_code == 303
    asked = parse_qs(urlsplit(start.location).query)
    back = requests.get(start.location, allow_redirects=False, timeout=5)
    assert back.status_code == 302, back.text
    target = urlsplit(back.headers["Location"])
    assert target.path == "/login/oidc/callback"
    return client, client.get(f"{target.path}?{target.query}"), asked


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
    page = client.get("/").get_data(as_text=True)
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    noted = client.post("/customers/C-OIDC-1/notes", data={"content": "hi", "csrf_token": token})
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
