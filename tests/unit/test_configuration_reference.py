"""docs/configuration.md is generated from Settings and agrees with it."""

from __future__ import annotations

from config.settings import Settings
from devtools.configuration import DOCUMENT, HELP, help_of, render


def test_every_setting_has_one_line_of_help() -> None:
    missing = [name for name in Settings.model_fields if not help_of(name)]
    assert missing == [], "add a line to devtools.configuration.HELP"
    assert set(HELP) <= set(Settings.model_fields), "HELP names a setting that is gone"
    assert all("\n" not in (help_of(name) or "") for name in Settings.model_fields)


def test_the_document_is_what_the_code_generates() -> None:
    assert DOCUMENT.read_text() == render(), "run python -m devtools.configuration"
    assert "`INTERACTIONS_SMTP_SENDER` | `no-reply@example.gov`" in render()
