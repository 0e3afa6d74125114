"""A PostgreSQL database dropped and created afresh, for test runs, benchmarks and the demo."""

from __future__ import annotations

import sqlalchemy as sa


def recreate_database(url: str) -> None:
    """Drop and create the database ``url`` names, so every run starts from the migrations."""
    target = sa.engine.make_url(url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        connection.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()


def empty_tables(engine: sa.Engine, *tables: str) -> None:
    """Every row of ``tables`` gone and their ids started again, in one statement."""
    with engine.begin() as connection:
        connection.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))


# What a dispatch run writes: the tables a benchmark empties between runs.
LEDGER_TABLES = ("interaction_events", "interactions", "batches", "queued_messages")
