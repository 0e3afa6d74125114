"""The batch producer: streaming CSV, rejections with line numbers, resume, one query per chunk."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pytest
import sqlalchemy as sa

from config.settings import Settings
from models import Batch
from models.base import utcnow
from models.enums import ChannelType
from providers.notify import NotifyProvider
from providers.smtp import SmtpProvider
from services.errors import InvalidInput
from services.sending.batch_status import batch_status
from services.sending.batches import BatchProducer, DispatchMessage, TemplateCheck, read_csv
from services.sending.communication import CommunicationService
from tests.conftest import Database
from tests.stub_fixtures import TEST_API_KEY


class RecordingPublisher:
    """Stands in for the broker: the producer's own logic is under test here, not the queue."""

    def __init__(self) -> None:
        self.chunks: list[list[DispatchMessage]] = []

    def publish(self, messages: Sequence[DispatchMessage]) -> None:
        self.chunks.append(list(messages))

    @property
    def messages(self) -> list[DispatchMessage]:
        return [m for chunk in self.chunks for m in chunk]


def csv_bytes(*lines: str | bytes) -> io.BytesIO:
    return io.BytesIO(
        b"\n".join(line if isinstance(line, bytes) else line.encode() for line in lines) + b"\n"
    )


def test_rows_become_messages_and_bad_rows_are_reported_by_line(
    db: Database, test_settings: Settings
) -> None:
    publisher = RecordingPublisher()
    source = csv_bytes(
        "customer_id,recipient,name,amount",
        "C-1,ada@example.org,Ada,12.50",
        "C-2,,Grace,3.00",
        "bad id!,x@example.org,X,1",
        "C-4,not-an-email,Y,2",
        "C-5,z@example.org,Z",
        b"C-6,caf\xe9@example.org,Caf\xe9,1",
        "C-1,ada@example.org,Ada,12.50",
        '"C-8,unterminated',
    )
    report = BatchProducer(db.sessions, publisher, test_settings).run(
        "b1", "email", "welcome", read_csv(source)
    )
    assert [m.idempotency_key for m in publisher.messages] == ["b1:C-1", "b1:C-2"]
    first = publisher.messages[0]
    assert (first.recipient, first.payload, first.batch_id) == (
        "ada@example.org",
        {"name": "Ada", "amount": "12.50"},
        "b1",
    )
    assert publisher.messages[1].recipient is None, "the contact directory will supply it"
    assert (report.rows, report.enqueued, report.duplicates) == (8, 2, 1)
    lines = {r.line: r.reason for r in report.rejections}
    assert set(lines) == {4, 5, 6, 7, 9}
    assert "customer_id" in lines[4]
    assert "not a valid email" in lines[5] and "not-an-email" not in lines[5]
    assert "expected 4 fields, found 3" in lines[6]
    assert lines[7] == "not valid UTF-8"


def test_a_key_column_names_each_rows_key(db: Database, test_settings: Settings) -> None:
    publisher = RecordingPublisher()
    source = csv_bytes("customer_id,key,name", "C-1,statement-2026-11-C-1,Ada")
    BatchProducer(db.sessions, publisher, test_settings).run(
        "b2", "email", "welcome", read_csv(source, key_column="key")
    )
    assert publisher.messages[0].idempotency_key == "statement-2026-11-C-1"
    assert publisher.messages[0].payload == {"name": "Ada"}


def test_a_header_without_customer_id_is_refused() -> None:
    with pytest.raises(InvalidInput, match="customer_id column"):
        list(read_csv(csv_bytes("id,recipient", "C-1,a@example.org")))


def test_a_header_that_is_not_csv_is_refused_not_a_crash() -> None:
    # A carriage return inside the header line: the csv module's own error, as InvalidInput.
    with pytest.raises(InvalidInput, match="header is not valid CSV"):
        list(read_csv(io.BytesIO(b"\xc2\x88>\r\x04=\n")))


def test_a_rerun_enqueues_only_what_is_not_sent(
    db: Database, test_settings: Settings, service: CommunicationService
) -> None:
    rows = ["customer_id,recipient"] + [f"C-{i},p{i}@example.org" for i in range(10)]
    first = RecordingPublisher()
    producer = BatchProducer(db.sessions, first, test_settings)
    producer.run("b3", "email", "welcome", read_csv(csv_bytes(*rows)))
    for message in first.messages[:6]:
        service.dispatch(**{k: v for k, v in message.as_kwargs().items()})
    second = RecordingPublisher()
    report = BatchProducer(db.sessions, second, test_settings).run(
        "b3", "email", "welcome", read_csv(csv_bytes(*rows))
    )
    assert (report.enqueued, report.already_sent) == (4, 6)
    assert [m.idempotency_key for m in second.messages] == [f"b3:C-{i}" for i in range(6, 10)]
    status = batch_status(db.sessions, "b3", utcnow())
    assert (status.runs, status.expected, status.finished) == (2, 10, 6)


def test_the_already_sent_check_is_one_query_per_chunk(
    db: Database, test_settings: Settings
) -> None:
    statements: list[str] = []
    settings = test_settings.model_copy(update={"batch_chunk_size": 100})
    rows = ["customer_id,recipient"] + [f"C-{i},p{i}@example.org" for i in range(250)]
    publisher = RecordingPublisher()
    with db.sessions() as session:
        engine = session.get_bind()

    def count(conn: object, cursor: object, statement: str, *args: object) -> None:
        if "FROM interactions" in statement:
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        BatchProducer(db.sessions, publisher, settings).run(
            "b4", "email", "welcome", read_csv(csv_bytes(*rows))
        )
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(statements) == 3
    assert [len(c) for c in publisher.chunks] == [100, 100, 50]


def test_a_batch_id_is_tied_to_its_channel_and_template(
    db: Database, test_settings: Settings
) -> None:
    producer = BatchProducer(db.sessions, RecordingPublisher(), test_settings)
    producer.run("b5", "email", "welcome", read_csv(csv_bytes("customer_id", "C-1")))
    with pytest.raises(InvalidInput, match="was started for email with template 'welcome'"):
        producer.run("b5", "sms", "welcome", read_csv(csv_bytes("customer_id", "C-1")))
    with db.sessions() as session:
        assert session.get_one(Batch, "b5").runs == 1


def _template_check(test_settings: Settings) -> TemplateCheck:
    notify = NotifyProvider(
        "http://127.0.0.1:9", TEST_API_KEY, {"welcome": "f33517ff-2a88-4f6e-b855-c550268ce08a"}
    )
    smtp = SmtpProvider.from_settings(test_settings)
    chosen = {ChannelType.EMAIL: smtp, ChannelType.SMS: notify}

    def check(channel: ChannelType, key: str, fields: set[str]) -> None:
        chosen[channel].check_template(key, channel, fields)

    return check


def test_a_template_the_provider_does_not_know_is_refused_before_anything_is_enqueued(
    db: Database, test_settings: Settings
) -> None:
    publisher = RecordingPublisher()
    producer = BatchProducer(
        db.sessions, publisher, test_settings, templates=_template_check(test_settings)
    )
    rows = read_csv(io.BytesIO(b"customer_id,recipient,name\nC-1,+16135550101,Ada\n"))
    with pytest.raises(InvalidInput, match="'welcom' is not mapped") as refused:
        producer.run("typo", "sms", "welcom", rows)
    assert "nothing was enqueued" in str(refused.value)
    assert publisher.messages == []
    with db.sessions() as session:
        assert session.get(Batch, "typo") is None


def test_a_template_whose_placeholders_the_columns_miss_is_refused(
    db: Database, test_settings: Settings
) -> None:
    publisher = RecordingPublisher()
    producer = BatchProducer(
        db.sessions, publisher, test_settings, templates=_template_check(test_settings)
    )
    missing = read_csv(io.BytesIO(b"customer_id,recipient,city\nC-1,ada@example.org,Ottawa\n"))
    with pytest.raises(InvalidInput, match="'welcome' needs name"):
        producer.run("no-name", "email", "welcome", missing)
    assert publisher.messages == []
    covered = read_csv(io.BytesIO(b"customer_id,recipient,name\nC-1,ada@example.org,Ada\n"))
    assert producer.run("named", "email", "welcome", covered).enqueued == 1
