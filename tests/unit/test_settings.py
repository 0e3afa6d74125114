"""Settings from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config.settings import Settings


def test_embedded_default_with_nothing_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("INTERACTIONS_DATABASE_URL", raising=False)
    monkeypatch.delenv("INTERACTIONS_BROKER_URL", raising=False)
    monkeypatch.setenv("INTERACTIONS_VAR_DIR", str(tmp_path))
    settings = Settings()
    assert settings.embedded
    assert settings.resolved_database_url == f"sqlite:///{tmp_path / 'interactions.db'}"
    assert settings.resolved_broker_url == "filesystem://localhost/"


def test_values_come_from_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERACTIONS_DATABASE_URL", "postgresql+psycopg2://db/x")
    monkeypatch.setenv("INTERACTIONS_CLAIM_LEASE_SECONDS", "600")
    settings = Settings()
    assert settings.resolved_database_url == "postgresql+psycopg2://db/x"
    assert settings.claim_lease_seconds == 600


def test_production_refuses_the_embedded_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INTERACTIONS_DATABASE_URL", raising=False)
    monkeypatch.setenv("INTERACTIONS_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="production needs"):
        Settings()


def test_a_malformed_value_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERACTIONS_CLAIM_LEASE_SECONDS", "soon")
    with pytest.raises(ValidationError, match="claim_lease_seconds"):
        Settings()


def test_a_lease_shorter_than_a_task_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERACTIONS_CLAIM_LEASE_SECONDS", "60")
    monkeypatch.setenv("INTERACTIONS_TASK_TIME_LIMIT_SECONDS", "120")
    with pytest.raises(ValidationError, match="claim_lease_seconds must exceed"):
        Settings()


def test_a_visibility_timeout_shorter_than_a_retry_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INTERACTIONS_BROKER_VISIBILITY_TIMEOUT_SECONDS", "300")
    with pytest.raises(ValidationError, match="broker_visibility_timeout_seconds must exceed"):
        Settings()


PRODUCTION = {
    "INTERACTIONS_ENVIRONMENT": "production",
    "INTERACTIONS_DATABASE_URL": "postgresql+psycopg2://u@db/interactions",
    "INTERACTIONS_BROKER_URL": "redis://redis:6379/0",
    "INTERACTIONS_ENCRYPTION_KEYS": '{"k1": "' + "A" * 43 + '="}',
    "INTERACTIONS_ENCRYPTION_ACTIVE_KEY": "k1",
    "INTERACTIONS_BLIND_INDEX_KEY": "b" * 32,
    "INTERACTIONS_CONSOLE_OIDC_CLIENT_ID": "interactions-console",
}


@pytest.mark.parametrize(
    ("issuer", "redirect", "refused"),
    [
        (
            "http://sso.example.gov/realms/staff",
            "https://console.example.gov/login/oidc/callback",
            "OIDC_ISSUER must be an https",
        ),
        ("https://sso.example.gov/realms/staff", None, "OIDC_REDIRECT_URL must be set"),
        (
            "https://sso.example.gov/realms/staff",
            "http://console.example.gov/login/oidc/callback",
            "OIDC_REDIRECT_URL must be set",
        ),
        (
            "https://sso.example.gov/realms/staff",
            "https://console.example.gov/login/oidc/callback",
            None,
        ),
    ],
)
def test_production_signs_staff_in_over_https_only(
    monkeypatch: pytest.MonkeyPatch, issuer: str, redirect: str | None, refused: str | None
) -> None:
    for name, value in PRODUCTION.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("INTERACTIONS_CONSOLE_OIDC_ISSUER", issuer)
    if redirect:
        monkeypatch.setenv("INTERACTIONS_CONSOLE_OIDC_REDIRECT_URL", redirect)
    else:
        monkeypatch.delenv("INTERACTIONS_CONSOLE_OIDC_REDIRECT_URL", raising=False)
    if refused is None:
        assert Settings().console_oidc_enabled
        return
    with pytest.raises(ValidationError, match=refused):
        Settings()
    monkeypatch.setenv("INTERACTIONS_ENVIRONMENT", "development")
    assert Settings().console_oidc_enabled, "plain http is fine outside production"
