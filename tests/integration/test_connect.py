"""services.connect(): the one way to build the service in-process, refusing a stale schema."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from models.migrate import SchemaBehind, upgrade
from services import CommunicationService, DispatchOutcome, connect
from services.container import Container


def _settings(tmp_path: Path) -> Settings:
    return Settings(environment="test", var_dir=tmp_path)


def test_an_unmigrated_database_names_the_command_to_run(tmp_path: Path) -> None:
    with pytest.raises(SchemaBehind, match="run `interactions migrate`"):
        connect(_settings(tmp_path))


def test_a_migrated_database_sends_through_the_configured_provider(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    here = Container(settings)
    upgrade(here.engine)
    here.close()
    service = CommunicationService.from_settings(settings)
    result = service.dispatch(101, "email", "welcome", {}, "connect-1", "ada@example.org")
    assert result.outcome is DispatchOutcome.SENT
    assert result.interaction.provider == "log"
