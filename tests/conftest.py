"""Shared fixtures: a migrated PostgreSQL database, an embedded SQLite one, and the service."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from config.settings import Settings
from devtools.database import empty_tables, recreate_database
from devtools.keys import use_test_keys
from models.migrate import upgrade
from models.session import SessionFactory, build_engine
from providers.registry import ProviderRegistry
from services.sending.communication import CommunicationService
from tests.fakes import FakeProvider
from tests.smtp_fixtures import smtp_server  # noqa: F401 - a fixture
from tests.stub_fixtures import stub_notify  # noqa: F401 - a fixture

# Every process of a test run (pytest, its workers, its CLI calls) shares one key ring.
use_test_keys()

PG_URL = os.environ.get(
    "INTERACTIONS_TEST_DATABASE_URL",
    "postgresql+psycopg2://postgres@127.0.0.1:5432/interactions_test",
)
TABLES = (
    "interaction_events",
    "interactions",
    "batches",
    "contacts",
    "inbound_events",
    "queued_messages",
    "api_keys",
    "suppressions",
    "staff_disclosures",
    "staff_sessions",
)


@pytest.fixture(scope="session")
def test_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        environment="test",
        database_url=PG_URL,
        var_dir=tmp_path_factory.mktemp("var"),
        database_pool_size=25,
    )


@pytest.fixture(scope="session")
def pg_engine(test_settings: Settings) -> Iterator[Engine]:
    recreate_database(PG_URL)
    engine = build_engine(PG_URL, test_settings)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory, test_settings: Settings) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    engine = build_engine(f"sqlite:///{path}", test_settings)
    upgrade(engine)
    engine.dispose()
    return path


@dataclass
class Database:
    """A database for one test: sessions on it, and a way to count what is in it."""

    dialect: str
    sessions: SessionFactory

    def counts(self) -> dict[str, int]:
        with self.sessions() as session:
            return {
                table: session.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
                for table in TABLES
            }


def _savepoint_sessions(connection: Connection) -> SessionFactory:
    def factory() -> Session:
        return Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )

    return factory


@pytest.fixture(params=["postgresql", "sqlite"])
def db(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    test_settings: Settings,
) -> Iterator[Database]:
    """Each test in a rolled-back transaction on PostgreSQL, or a fresh SQLite file."""
    if request.param == "postgresql":
        engine: Engine = request.getfixturevalue("pg_engine")
        with engine.connect() as connection:
            outer = connection.begin()
            yield Database("postgresql", _savepoint_sessions(connection))
            outer.rollback()
        return
    template: Path = request.getfixturevalue("sqlite_template")
    path = tmp_path / "interactions.db"
    shutil.copy(template, path)
    engine = build_engine(f"sqlite:///{path}", test_settings)
    yield Database("sqlite", sessionmaker(bind=engine, expire_on_commit=False))
    engine.dispose()


@pytest.fixture
def pg_db(pg_engine: Engine) -> Iterator[Database]:
    """PostgreSQL only, in a rolled-back transaction."""
    with pg_engine.connect() as connection:
        outer = connection.begin()
        yield Database("postgresql", _savepoint_sessions(connection))
        outer.rollback()


@pytest.fixture
def committed_pg(pg_engine: Engine) -> Iterator[Database]:
    """PostgreSQL with real commits, for tests of concurrency; emptied afterwards."""
    yield Database("postgresql", sessionmaker(bind=pg_engine, expire_on_commit=False))
    empty_tables(pg_engine, *TABLES)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def service(db: Database, provider: FakeProvider, test_settings: Settings) -> CommunicationService:
    return CommunicationService(db.sessions, ProviderRegistry.single(provider), test_settings)
