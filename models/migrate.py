"""Alembic driven from code: upgrade to head and report where a database stands."""

from __future__ import annotations

from pathlib import Path

from alembic import command, op
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str | None = None, extra_locations: list[Path] | None = None) -> Config:
    """An Alembic configuration for this project's migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    locations = [MIGRATIONS / "versions", *(extra_locations or [])]
    config.set_main_option("version_locations", " ".join(str(p) for p in locations))
    config.set_main_option("path_separator", "space")
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head", config: Config | None = None) -> None:
    """Upgrade the database behind ``engine`` to ``revision``."""
    config = config or alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()


def head_revision(config: Config | None = None) -> str | None:
    """The newest revision the code knows."""
    return ScriptDirectory.from_config(config or alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    return MigrationContext.configure(connection).get_current_revision()


class SchemaBehind(RuntimeError):
    """The database is not at the revision the code needs."""


def ensure_migrated(engine: Engine) -> None:
    """Raise SchemaBehind, saying what to run, unless the database is at the newest revision."""
    with engine.connect() as connection:
        current = current_revision(connection)
    head = head_revision()
    if current == head:
        return
    where = f"at revision {current}" if current else "not migrated"
    raise SchemaBehind(
        f"the database is {where} and this code needs {head}: run `interactions migrate` "
        "(or models.migrate.upgrade(engine)) with the same INTERACTIONS_DATABASE_URL"
    )


def add_enum_value(type_name: str, value: str) -> None:
    """Add ``value`` to a PostgreSQL enum type from inside a migration, on a live table.

    PostgreSQL cannot use a new enum value in the transaction that added it, so the
    statement runs in its own autocommit block; it takes no table rewrite and no long lock.
    On SQLite enums are plain text, so there is nothing to do.
    """
    if op.get_bind().dialect.name != "postgresql":
        return
    with op.get_context().autocommit_block():
        op.execute(f"ALTER TYPE {type_name} ADD VALUE IF NOT EXISTS '{value}'")
