"""Migrations: the migrated schema is the models' schema, and enums grow on live tables."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from config.settings import Settings
from devtools.database import recreate_database
from models import Base, sealing
from models.contact import address_index
from models.crypto import keyring
from models.enums import ChannelType
from models.event import InteractionEvent
from models.migrate import alembic_config, current_revision, head_revision, upgrade
from models.sealing import SealedColumn
from models.session import build_engine
from services.keys.reindex import reindex_contacts
from tests.conftest import PG_URL

BlankDatabase = Callable[[str], Engine]


@pytest.fixture
def blank_database(test_settings: Settings) -> Iterator[BlankDatabase]:
    """An empty PostgreSQL database of its own for a test, named by suffix; disposed after."""
    engines: list[Engine] = []

    def make(suffix: str) -> Engine:
        base = sa.engine.make_url(PG_URL)
        rendered = base.set(database=f"{base.database}_{suffix}").render_as_string(
            hide_password=False
        )
        recreate_database(rendered)
        engines.append(build_engine(rendered, test_settings))
        return engines[-1]

    yield make
    for engine in engines:
        engine.dispose()


def test_the_migrated_schema_equals_the_models(pg_engine: Engine) -> None:
    with pg_engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        assert current_revision(connection) == head_revision()


def test_the_migrated_sqlite_database_has_every_table_and_index(sqlite_template: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{sqlite_template}")
    inspector = sa.inspect(engine)
    assert set(inspector.get_table_names()) - {"alembic_version"} == set(Base.metadata.tables)
    for name, table in Base.metadata.tables.items():
        columns = {c["name"] for c in inspector.get_columns(name)}
        assert columns == set(table.columns.keys()), name
        indexes = {i["name"] for i in inspector.get_indexes(name)}
        assert indexes == {i.name for i in table.indexes}, name
    engine.dispose()


def test_a_new_channel_is_added_to_a_live_table_with_rows(
    tmp_path: Path, blank_database: BlankDatabase
) -> None:
    engine = blank_database("enum")
    upgrade(engine)
    insert = sa.text(
        "INSERT INTO interactions (interaction_uuid, customer_id, idempotency_key, channel,"
        " status, attempt_count, created_at, updated_at)"
        " VALUES (:u, 'C-1', :k, CAST(:c AS channel_type), 'sent', 1, now(), now())"
    )
    with engine.begin() as connection:
        for i in range(50):
            connection.execute(insert, {"u": uuid.uuid4(), "k": f"old-{i}", "c": "email"})

    (tmp_path / "9001_whatsapp.py").write_text(
        textwrap.dedent(
            f'''
            """Add the whatsapp channel."""
            from models.migrate import add_enum_value

            revision = "9001"
            down_revision = {head_revision()!r}
            branch_labels = None
            depends_on = None


            def upgrade() -> None:
                add_enum_value("channel_type", "whatsapp")


            def downgrade() -> None:
                raise NotImplementedError
            '''
        )
    )
    config = alembic_config(extra_locations=[tmp_path])
    with engine.connect() as reader:
        # A reader holds the table open while the migration runs.
        reader.execute(sa.text("SELECT count(*) FROM interactions"))
        upgrade(engine, "9001", config)
        reader.rollback()
    with engine.begin() as connection:
        connection.execute(insert, {"u": uuid.uuid4(), "k": "new-1", "c": "whatsapp"})
        channels = connection.execute(
            sa.text("SELECT channel::text, count(*) FROM interactions GROUP BY 1 ORDER BY 1")
        ).all()
        assert current_revision(connection) == "9001"
    assert [tuple(row) for row in channels] == [("email", 50), ("whatsapp", 1)]


def test_reasons_kept_in_clear_before_revision_0007_are_moved_and_sealed(
    blank_database: BlankDatabase,
) -> None:
    engine = blank_database("reasons")
    upgrade(engine, "0006")
    with engine.begin() as connection:
        interaction = connection.execute(
            sa.text(
                "INSERT INTO interactions (interaction_uuid, customer_id, idempotency_key,"
                " channel, status, attempt_count, created_at, updated_at)"
                " VALUES (:u, 'C-1', 'k-1', 'email', 'delivered', 1, now(), now()) RETURNING id"
            ),
            {"u": uuid.uuid4()},
        ).scalar_one()
        connection.execute(
            sa.text(
                "INSERT INTO interaction_events (interaction_id, kind, outcome, source, detail,"
                " occurred_at, recorded_at) VALUES (:i, 'staff_action', 'forced_resend',"
                " 'console', CAST(:d AS JSONB), now(), now())"
            ),
            {"i": interaction, "d": '{"resend_key": "resend:x:1", "reason": "Ada lost it"}'},
        )
        # A provider's failure reason is not a staff reason: it stays where it was.
        connection.execute(
            sa.text(
                "INSERT INTO interaction_events (interaction_id, kind, outcome, source, detail,"
                " occurred_at, recorded_at) VALUES (:i, 'provider_event', 'applied',"
                " 'callback:notify', CAST(:d AS JSONB), now(), now())"
            ),
            {"i": interaction, "d": '{"reason": "permanent-failure"}'},
        )
    upgrade(engine)
    with engine.connect() as connection:
        detail, sealed = connection.execute(
            sa.text(
                "SELECT CAST(detail AS TEXT), reason FROM interaction_events"
                " WHERE kind = 'staff_action'"
            )
        ).one()
        provider_detail, provider_reason = connection.execute(
            sa.text(
                "SELECT CAST(detail AS TEXT), reason FROM interaction_events"
                " WHERE kind = 'provider_event'"
            )
        ).one()
    assert "Ada" not in detail and "resend:x:1" in detail
    assert sealed.startswith("v1:") and "Ada" not in sealed
    assert "permanent-failure" in provider_detail and provider_reason is None
    with Session(engine) as session:
        assert set(session.scalars(sa.select(InteractionEvent.reason))) == {"Ada lost it", None}


def test_failure_reasons_stored_before_revision_0011_lose_the_addresses_they_quote(
    blank_database: BlankDatabase,
) -> None:
    engine = blank_database("redacted")
    upgrade(engine, "0009")
    quoted = "550 5.1.1 <ada.lovelace@example.org>: Recipient address rejected"
    with engine.begin() as connection:
        interaction = connection.execute(
            sa.text(
                "INSERT INTO interactions (interaction_uuid, customer_id, idempotency_key,"
                " channel, status, attempt_count, failure_reason, created_at, updated_at)"
                " VALUES (:u, 'C-1', 'k-1', 'email', 'failed', 1, :r, now(), now()) RETURNING id"
            ),
            {"u": uuid.uuid4(), "r": quoted},
        ).scalar_one()
        connection.execute(
            sa.text(
                "INSERT INTO interactions (interaction_uuid, customer_id, idempotency_key,"
                " channel, status, attempt_count, failure_reason, created_at, updated_at)"
                " VALUES (:u, 'C-2', 'k-2', 'sms', 'failed', 1, :r, now(), now())"
            ),
            {"u": uuid.uuid4(), "r": "smtp server answered 550 5.1.1 to RCPT TO"},
        )
        connection.execute(
            sa.text(
                "INSERT INTO interaction_events (interaction_id, kind, outcome, source, detail,"
                " occurred_at, recorded_at) VALUES (:i, 'provider_event', 'applied',"
                " 'callback:signed', CAST(:d AS JSONB), now(), now())"
            ),
            {"i": interaction, "d": json.dumps({"failure_reason": quoted, "type": "bounce"})},
        )
    upgrade(engine)
    with engine.connect() as connection:
        reasons = (
            connection.execute(sa.text("SELECT failure_reason FROM interactions ORDER BY id"))
            .scalars()
            .all()
        )
        detail = connection.execute(
            sa.text("SELECT CAST(detail AS TEXT) FROM interaction_events")
        ).scalar_one()
    assert reasons == [
        "550 5.1.1 <[redacted]>: Recipient address rejected",
        "smtp server answered 550 5.1.1 to RCPT TO",
    ]
    assert "ada.lovelace" not in detail and "[redacted]" in detail and "bounce" in detail


def test_revision_0016_only_changes_the_schema_and_the_reindex_indexes_the_directory(
    blank_database: BlankDatabase,
) -> None:
    engine = blank_database("directory")
    upgrade(engine, "0015")
    ring = keyring()
    insert = sa.text(
        "INSERT INTO contacts (customer_id, email, phone, updated_at) VALUES (:c, :e, :p, now())"
    )
    with engine.begin() as connection:
        # Written before the directory normalised what it was given.
        connection.execute(
            insert,
            {
                "c": "C-OLD",
                "e": ring.seal("Ada.Lovelace@EXAMPLE.ORG", "contacts.email"),
                "p": ring.seal("(604) 555-0123", "contacts.phone"),
            },
        )
        connection.execute(
            insert, {"c": "C-ODD", "e": ring.seal("ada at example", "contacts.email"), "p": None}
        )
    upgrade(engine, "0016")
    with engine.connect() as connection:
        hashes = connection.execute(sa.text("SELECT email_hash, phone_hash FROM contacts")).all()
    assert [tuple(row) for row in hashes] == [(None, None), (None, None)], "no data in the DDL"

    upgrade(engine)
    done = reindex_contacts(engine, ring, "CA", batch=1)
    assert done == {"contacts.email_hash": 2, "contacts.phone_hash": 1}
    with engine.connect() as connection:
        rows = {
            row.customer_id: (row.email_hash, row.phone_hash)
            for row in connection.execute(
                sa.text("SELECT customer_id, email_hash, phone_hash FROM contacts")
            )
        }
    assert rows == {
        "C-OLD": (
            address_index(ChannelType.EMAIL, "Ada.Lovelace@example.org"),
            address_index(ChannelType.SMS, "+16045550123"),
        ),
        "C-ODD": (address_index(ChannelType.EMAIL, "ada at example"), None),
    }
    assert reindex_contacts(engine, ring, "CA") == {
        "contacts.email_hash": 0,
        "contacts.phone_hash": 0,
    }


def test_the_old_sealing_revisions_seal_only_their_own_columns(
    blank_database: BlankDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sealed column added long after them, whose table or column they never knew.
    later = SealedColumn("interactions", "id", "a_later_column", "interactions.a_later_column")
    monkeypatch.setattr(sealing, "SEALED_COLUMNS", (*sealing.SEALED_COLUMNS, later))
    engine = blank_database("pinned")
    upgrade(engine, "0011")
    with engine.connect() as connection:
        assert current_revision(connection) == "0011"
