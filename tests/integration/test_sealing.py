"""Personal data at rest: sealed in the tables, found by blind index, rotated without loss."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from config.settings import Settings
from models.base import utcnow
from models.crypto import KeyRing, install_keyring, keyring
from models.sealing import SEALED_COLUMNS, Rewrite, resealer, rewrite_column
from models.staff_session import StaffSession
from providers.registry import ProviderRegistry
from services.callbacks import inbox
from services.callbacks.parsing import parse_notify
from services.keys.rotation import keys_in_use, rotate
from services.sending.communication import CommunicationService
from tests.conftest import Database
from tests.factories import send_email
from tests.fakes import FakeProvider
from tests.webhook_fixtures import notify_receipt

CANARY_ADDRESS = "canary.7f3a@example.org"
CANARY_TEXT = "CANARY-BODY-91x"
CANARY_SUBJECT = "CANARY-SUBJECT-52q"
# Refused before sending (no dot in the domain), and kept sealed for the console.
CANARY_REFUSED = "canary.7f3a@exampleorg"
CANARY_ID_TOKEN = "eyJ.CANARY-ID-TOKEN-33z.sig"


@pytest.fixture
def service(db: Database, test_settings: Settings) -> CommunicationService:
    return CommunicationService(
        db.sessions, ProviderRegistry.single(FakeProvider(subject=CANARY_SUBJECT)), test_settings
    )


@pytest.fixture
def restore_ring() -> Iterator[None]:
    yield
    install_keyring(None)


def _fill(service: CommunicationService, db: Database) -> None:
    service.upsert_contact("C-9", CANARY_ADDRESS, "+1 613 555 0199")
    send_email(service, customer_id="C-9", recipient=None, payload={"note": CANARY_TEXT})
    service.add_note("C-9", f"Called: {CANARY_TEXT}", author="agent")
    body = notify_receipt("N-1", "00000000-0000-0000-0000-000000000000", to=CANARY_ADDRESS)
    inbox.store(db.sessions, "notify", parse_notify(body), body, utcnow())
    refused = service.dispatch("C-9", "email", "welcome", {}, "refused-1", CANARY_REFUSED)
    assert refused.status.value == "failed"
    now = utcnow()
    with db.sessions() as session, session.begin():
        session.add(
            StaffSession(
                id="0" * 64,
                actor="oidc:agent",
                roles=["agent"],
                created_at=now,
                last_seen_at=now,
                expires_at=now,
                id_token=CANARY_ID_TOKEN,
            )
        )


def _keys_of(db: Database, sql: str) -> set[str]:
    """The key ids of the sealed values a query returns."""
    with db.sessions() as session:
        return {KeyRing.key_id_of(v) for v in session.execute(sa.text(sql)).scalars() if v}


def _raw_values(db: Database) -> list[str]:
    with db.sessions() as session:
        values = []
        for spec in SEALED_COLUMNS:
            rows = session.execute(
                sa.text(f"SELECT CAST({spec.column} AS TEXT) FROM {spec.table}")
            ).scalars()
            values.extend(v for v in rows if v is not None)
        return values


def test_personal_data_is_sealed_in_every_table_and_reads_back(
    service: CommunicationService, db: Database
) -> None:
    _fill(service, db)
    raw = "\n".join(_raw_values(db))
    assert CANARY_ADDRESS not in raw and CANARY_TEXT not in raw and "6135550199" not in raw
    assert CANARY_SUBJECT not in raw and "exampleorg" not in raw and "CANARY-ID" not in raw
    assert raw.count("v1:test-2026a:") >= 6
    timeline = service.get_history("C-9", 10).items
    assert {r.recipient for r in timeline if r.channel.value == "email"} == {
        CANARY_ADDRESS,
        CANARY_REFUSED,
    }
    assert any(CANARY_TEXT in (r.body_content or "") for r in timeline)


def test_everything_sent_to_an_address_is_found_without_decrypting(
    service: CommunicationService, db: Database
) -> None:
    send_email(service, customer_id="C-1", recipient="Ada@Example.org")
    send_email(service, customer_id="C-2", recipient="ada@example.ORG")
    send_email(service, customer_id="C-3", recipient="grace@example.org")
    service.dispatch("C-4", "sms", "reminder", {}, "sms-1", "613-555-0101")
    found = service.find_by_recipient("email", "ADA@example.org")
    assert sorted(r.customer_id for r in found) == ["C-1", "C-2"]
    assert [r.customer_id for r in service.find_by_recipient("sms", "+1 (613) 555-0101")] == ["C-4"]
    assert service.find_by_recipient("email", "nobody@example.org") == []


def test_rotation_reseals_everything_and_the_old_key_can_go(
    committed_pg: Database, test_settings: Settings, restore_ring: None
) -> None:
    db = committed_pg
    service = CommunicationService(
        db.sessions, ProviderRegistry.single(FakeProvider(subject=CANARY_SUBJECT)), test_settings
    )
    _fill(service, db)
    old = keyring()
    new_key = base64.b64decode(base64.b64encode(bytes(range(64, 96))))
    both = KeyRing({**old.keys, "test-2027": new_key}, "test-2027", old.index_key)
    install_keyring(both)
    with db.sessions() as session:
        engine = session.get_bind()
    interrupted = {"calls": 0}

    def crash_after_two(_: int) -> None:
        interrupted["calls"] += 1
        if interrupted["calls"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rotate(engine, both, crash_after_two, batch=1)  # type: ignore[arg-type]

    assert set(keys_in_use(engine)) == {"test-2026a", "test-2027"}, "half done after the crash"
    rotate(engine, both)  # type: ignore[arg-type]
    assert set(keys_in_use(engine)) == {"test-2027"}
    for sql in (
        "SELECT subject FROM interactions",
        "SELECT recipient FROM interactions WHERE status = 'failed'",
        "SELECT id_token FROM staff_sessions",
    ):
        assert _keys_of(db, sql) == {"test-2027"}, sql

    install_keyring(KeyRing({"test-2027": new_key}, "test-2027", old.index_key))
    timeline = service.get_history("C-9", 10).items
    assert {r.recipient for r in timeline if r.channel.value == "email"} == {
        CANARY_ADDRESS,
        CANARY_REFUSED,
    }
    assert any(CANARY_TEXT in (r.body_content or "") for r in timeline)
    assert service.find_by_recipient("email", CANARY_ADDRESS)
    assert {r.subject for r in timeline if r.subject} == {CANARY_SUBJECT}
    assert CANARY_REFUSED in {r.recipient for r in timeline}
    with db.sessions() as session:
        assert session.scalars(sa.select(StaffSession.id_token)).one() == CANARY_ID_TOKEN


def test_a_bounce_reason_that_quotes_the_address_is_stored_without_it(db: Database) -> None:
    provider = FakeProvider()
    service = CommunicationService(db.sessions, ProviderRegistry.single(provider), Settings())
    provider.fail_next(
        provider.permanent(f"550 5.1.1 <{CANARY_ADDRESS}>: Recipient address rejected")
    )
    result = send_email(service, customer_id="C-9", recipient=CANARY_ADDRESS)
    assert result.interaction.status.value == "failed"
    with db.sessions() as session:
        stored = (
            session.execute(
                sa.text(
                    "SELECT CAST(failure_reason AS TEXT) FROM interactions UNION ALL "
                    "SELECT CAST(detail AS TEXT) FROM interaction_events WHERE detail IS NOT NULL"
                )
            )
            .scalars()
            .all()
        )
    dump = "\n".join(v for v in stored if v)
    assert "5.1.1" in dump and "Recipient address rejected" in dump
    assert CANARY_ADDRESS not in dump and "canary.7f3a" not in dump


def test_a_rotation_never_overwrites_a_value_written_while_it_ran(
    committed_pg: Database, restore_ring: None
) -> None:
    db = committed_pg
    old = keyring()
    now = utcnow()
    with db.sessions() as session, session.begin():
        for sid, token in (("1" * 64, "token-signed-out"), ("2" * 64, "token-first")):
            session.add(
                StaffSession(
                    id=sid,
                    actor="oidc:agent",
                    roles=["agent"],
                    created_at=now,
                    last_seen_at=now,
                    expires_at=now,
                    id_token=token,
                )
            )
    new = KeyRing({**old.keys, "test-2027": bytes(range(64, 96))}, "test-2027", old.index_key)
    engine = db.sessions().get_bind()
    spec = next(s for s in SEALED_COLUMNS if s.table == "staff_sessions")
    reseal = resealer(new)
    meddled: list[str] = []

    def meddling(purpose: str) -> Rewrite:
        """Re-seals as a rotation does, after another writer changed the row just read."""

        def rewrite(value: str) -> str | None:
            plain = new.open(value, purpose)
            if plain in ("token-signed-out", "token-first"):
                meddled.append(plain)
                changed = None if plain == "token-signed-out" else old.seal("token-second", purpose)
                with engine.begin() as other:
                    other.execute(
                        sa.text("UPDATE staff_sessions SET id_token = :t WHERE id_token = :v"),
                        {"t": changed, "v": value},
                    )
            return reseal(purpose)(value)

        return rewrite

    with engine.connect() as connection:
        assert rewrite_column(connection, spec, meddling) == 1
    assert sorted(meddled) == ["token-first", "token-signed-out"]
    with engine.connect() as connection:
        rows = dict(connection.execute(sa.text("SELECT id, id_token FROM staff_sessions")).all())
    assert rows["1" * 64] is None, "the sign-out stands"
    assert KeyRing.key_id_of(rows["2" * 64]) == "test-2027"
    assert new.open(rows["2" * 64], spec.purpose) == "token-second", "the later write stands"
