"""Settings refuse misspelt names in production and read secrets from files."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from config.settings import UnknownSetting, load_settings, unknown_variables

PRODUCTION = {
    "INTERACTIONS_ENVIRONMENT": "production",
    "INTERACTIONS_DATABASE_URL": "postgresql+psycopg2://u@db/interactions",
    "INTERACTIONS_BROKER_URL": "redis://broker:6379/0",
    "INTERACTIONS_ENCRYPTION_KEYS": '{"k1": "' + "A" * 43 + '="}',
    "INTERACTIONS_ENCRYPTION_ACTIVE_KEY": "k1",
    "INTERACTIONS_BLIND_INDEX_KEY": "B" * 43 + "=",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment holding no INTERACTIONS_* name but the suite's own."""
    for name in list(os.environ):
        if name.startswith("INTERACTIONS_") and not name.startswith("INTERACTIONS_TEST_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_a_misspelt_name_fails_production_start_up_naming_the_closest(
    clean_env: pytest.MonkeyPatch,
) -> None:
    for name, value in {**PRODUCTION, "INTERACTIONS_EMAIL_PROVIDR": "notify"}.items():
        clean_env.setenv(name, value)
    with pytest.raises(UnknownSetting, match="did you mean INTERACTIONS_EMAIL_PROVIDER"):
        load_settings()


def test_a_misspelt_name_is_a_warning_in_development(
    clean_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    clean_env.setenv("INTERACTIONS_EMAIL_PROVIDR", "notify")
    with caplog.at_level(logging.WARNING):
        settings = load_settings()
    assert settings.email_provider == "log"
    assert "INTERACTIONS_EMAIL_PROVIDR is not a setting" in caplog.text


def test_every_setting_and_the_suites_own_names_are_known() -> None:
    environ = {"INTERACTIONS_SMTP_SENDER": "x", "INTERACTIONS_TEST_DATABASE_URL": "x", "PATH": "/"}
    assert unknown_variables(environ) == []


def test_secrets_come_from_files_and_the_environment_wins(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "interactions_notify_api_key").write_text("from-a-file\n")
    (tmp_path / "INTERACTIONS_FLOWER_BASIC_AUTH").write_text('["ops:a-long-password"]\n')
    (tmp_path / "INTERACTIONS_SMTP_PASSWORD").write_text("file")
    clean_env.setenv("INTERACTIONS_SECRETS_DIR", str(tmp_path))
    clean_env.setenv("INTERACTIONS_SMTP_PASSWORD", "environment")
    settings = load_settings()
    assert settings.notify_api_key is not None
    assert settings.notify_api_key.get_secret_value() == "from-a-file"
    assert [s.get_secret_value() for s in settings.flower_basic_auth] == ["ops:a-long-password"]
    assert settings.smtp_password is not None
    assert settings.smtp_password.get_secret_value() == "environment"
