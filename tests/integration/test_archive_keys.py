"""Sealed values stay sealed in the archive, and archived months read back after a rotation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy.orm import sessionmaker

from models.crypto import KeyRing, install_keyring, keyring
from providers.registry import ProviderRegistry
from services.archive.jobs.janitor import Janitor
from services.archive.jobs.restore import restore_month
from services.keys.rotation import archive_keys, rotate
from services.sending.communication import CommunicationService
from tests.archive_fixtures import (
    ArchiveWorld,
    archive_contents,
    moto_endpoint_fixture,  # noqa: F401 - a fixture
    seed,
    world_fixture,  # noqa: F401 - a fixture
)
from tests.fakes import FakeProvider

NEW_KEY = bytes(range(100, 132))


@pytest.fixture
def restore_ring() -> Iterator[None]:
    yield
    install_keyring(None)


def test_archive_files_keep_sealed_values_and_read_back_after_rotation(
    world: ArchiveWorld, restore_ring: None
) -> None:
    cutoff = datetime(2024, 3, 1, tzinfo=UTC)
    archived = seed(world.engine, cutoff - timedelta(days=10), customer_id="C-5")
    Janitor(world.engine, world.store, world.settings).run(cutoff)
    contents = json.dumps(archive_contents(world.store))
    assert "person@example.org" not in contents and "Your statement" not in contents
    assert "v1:test-2026a:" in contents

    old = keyring()
    install_keyring(KeyRing({**old.keys, "test-2027": NEW_KEY}, "test-2027", old.index_key))
    rotate(world.engine, keyring())
    sessions = sessionmaker(bind=world.engine, expire_on_commit=False)
    files = archive_keys(sessions, world.settings)
    assert files and all(set(ids) == {"test-2026a"} for ids in files.values()), (
        "archive files are immutable: they report the key that still reads them"
    )
    service = CommunicationService(
        sessions, ProviderRegistry.single(FakeProvider()), world.settings
    )
    [record] = service.get_history("C-5", include_archived=True).items
    assert record.id == archived and record.recipient == "person@example.org"
    restore_month(world.engine, world.store, date(2024, 2, 1))
    [restored] = service.get_history("C-5").items
    assert restored.id == archived and restored.body_content
    assert restored.body_content.startswith("Your statement is ready.")
