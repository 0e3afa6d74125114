"""Fixtures for the archive: a cleaned PostgreSQL ledger, a local or S3 store, and seed data."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import zstandard
from sqlalchemy.engine import Engine

from config.settings import Settings
from devtools.database import empty_tables
from models.enums import ChannelType, EventKind, InteractionStatus
from models.event import InteractionEvent
from models.interaction import CustomerInteraction
from services.archive.fileformat.names import data_key_of
from services.archive.stores.factory import open_store
from services.archive.stores.local_directory import LocalStore
from services.archive.stores.port import ArchiveStore

ARCHIVE_TABLES = (
    "interaction_events, interactions, archive_manifests, archive_legal_holds, staff_disclosures"
)
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(scope="session", name="moto_endpoint")
def moto_endpoint_fixture() -> Iterator[str]:
    """An S3-compatible endpoint: moto's server on a free local port, over real HTTP."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - moto loads only for the S3 tests

    for name, value in S3_ENV.items():
        os.environ.setdefault(name, value)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def make_bucket(endpoint: str) -> str:
    """A new, empty bucket on the endpoint."""
    import boto3  # noqa: PLC0415 - boto3 loads only for the S3 tests

    name = f"archive-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@dataclass
class ArchiveWorld:
    """A ledger to archive from and a store to archive to, configured together."""

    engine: Engine
    settings: Settings
    store: ArchiveStore
    kind: str

    def env(self) -> dict[str, str]:
        """The environment a subprocess needs to reach the same database and store."""
        env = {
            "INTERACTIONS_DATABASE_URL": self.settings.resolved_database_url,
            "INTERACTIONS_ARCHIVE_URL": self.settings.resolved_archive_url,
            "INTERACTIONS_ARCHIVE_CHUNK_ROWS": str(self.settings.archive_chunk_rows),
            "INTERACTIONS_VAR_DIR": str(self.settings.var_dir),
        }
        if self.settings.archive_s3_endpoint_url:
            env["INTERACTIONS_ARCHIVE_S3_ENDPOINT_URL"] = self.settings.archive_s3_endpoint_url
            env["INTERACTIONS_ARCHIVE_S3_REGION"] = "us-east-1"
            env.update(S3_ENV)
        return env


def clean(engine: Engine) -> None:
    """Empty the ledger and the archive catalogue."""
    empty_tables(engine, ARCHIVE_TABLES)


def build_world(
    engine: Engine, kind: str, tmp_path: Path, request: pytest.FixtureRequest, chunk_rows: int = 50
) -> ArchiveWorld:
    """A world on ``engine`` with a local directory or a fresh bucket as its store."""
    options: dict[str, Any] = {}
    if kind == "s3":
        endpoint = request.getfixturevalue("moto_endpoint")
        options = {
            "archive_url": f"s3://{make_bucket(endpoint)}/cold",
            "archive_s3_endpoint_url": endpoint,
            "archive_s3_region": "us-east-1",
        }
    else:
        options = {"archive_url": str(tmp_path / "archive")}
    settings = Settings(
        environment="test",
        database_url=engine.url.render_as_string(hide_password=False),
        var_dir=tmp_path / "var",
        archive_chunk_rows=chunk_rows,
        **options,
    )
    clean(engine)
    return ArchiveWorld(engine, settings, open_store(settings), kind)


@pytest.fixture(params=["local", "s3"], name="world")
def world_fixture(
    request: pytest.FixtureRequest, pg_engine: Engine, tmp_path: Path
) -> Iterator[ArchiveWorld]:
    """The archive on PostgreSQL with each kind of store; the tables are emptied afterwards."""
    yield build_world(pg_engine, request.param, tmp_path, request)
    clean(pg_engine)


def seed(
    engine: Engine,
    created_at: datetime,
    *,
    customer_id: str = "C-1",
    status: InteractionStatus = InteractionStatus.DELIVERED,
    events: int = 2,
    body: str = "Your statement is ready.\tWith a tab, a \\ backslash and \u00e9.",
) -> int:
    """One interaction created at ``created_at`` with ``events`` events; returns its id."""
    key = f"seed-{uuid.uuid4()}"
    row = CustomerInteraction(
        customer_id=customer_id,
        idempotency_key=key,
        channel=ChannelType.EMAIL,
        status=status,
        body_content=body,
        recipient="person@example.org",
        template_key="statement",
        meta_data={"payload": {"name": "Ada", "amount": 12.5}, "tags": ["a", "b"]},
        attempt_count=1,
        claim_expires_at=created_at + timedelta(minutes=5)
        if status is InteractionStatus.PENDING
        else None,
        created_at=created_at,
        updated_at=created_at,
        sent_at=created_at if status is not InteractionStatus.PENDING else None,
    )
    with sa.orm.Session(engine) as session, session.begin():
        session.add(row)
        session.flush()
        for n in range(events):
            session.add(
                InteractionEvent(
                    interaction_id=row.id,
                    kind=EventKind.STATUS_CHANGED,
                    from_status=InteractionStatus.PENDING,
                    to_status=InteractionStatus.SENT,
                    source="provider",
                    provider="notify",
                    provider_event_id=f"{key}-{n}",
                    detail={"n": n, "raw": 'q"uote'},
                    occurred_at=created_at + timedelta(seconds=n),
                    recorded_at=created_at + timedelta(seconds=n),
                )
            )
        return row.id


def stored_rows(engine: Engine) -> dict[int, str]:
    """Every interaction as PostgreSQL renders it (all columns, as stored), by id."""
    with engine.connect() as connection:
        connection.exec_driver_sql("SET TIME ZONE 'UTC'")
        rows = connection.exec_driver_sql(
            "SELECT i.id, row_to_json(i)::text FROM interactions i ORDER BY i.id"
        ).all()
        connection.rollback()
    return {int(ident): text for ident, text in rows}


def event_ids(engine: Engine) -> set[int]:
    """The id of every event in the database."""
    with engine.connect() as connection:
        return set(connection.exec_driver_sql("SELECT id FROM interaction_events").scalars())


def archive_contents(store: ArchiveStore) -> dict[str, list[dict[str, Any]]]:
    """Every line of every data file in the store (recorded or not), parsed, by key."""
    found = {}
    for key in store.keys("interactions/"):
        if data_key_of(key) != key:
            continue
        data = b"".join(store.read(key))
        text = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        found[key] = [json.loads(line) for line in text.splitlines()]
    return found


def archived_ids(store: ArchiveStore) -> list[int]:
    """Every interaction id in the store's files, with repeats if a row is in two files."""
    return [line["interaction"]["id"] for rows in archive_contents(store).values() for line in rows]


class CorruptingStore:
    """A store that flips a byte of every data file it writes, as a failing disk would."""

    def __init__(self, inner: ArchiveStore) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def put_new(self, key: str, data: bytes) -> None:
        if key.endswith(".jsonl.zst"):
            middle = len(data) // 2
            data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
        self._inner.put_new(key, data)


def local_path(world: ArchiveWorld, key: str) -> Path:
    """Where a local store keeps ``key``."""
    assert isinstance(world.store, LocalStore)
    return Path(world.store.url) / key
