"""Bulk sends: stream recipients, skip what is already sent, enqueue one dispatch per recipient.

Running a batch again with the same id is the resume: only keys not yet SENT, DELIVERED or
OPENED are enqueued again, and the claim protocol absorbs any that are still in flight.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, Any, Protocol

import sqlalchemy as sa

from config.settings import Settings
from models.base import utcnow
from models.batch import Batch, BatchState
from models.enums import SENT_OR_BEYOND, ChannelType
from models.interaction import CustomerInteraction
from models.session import SessionFactory
from providers.base import TemplateProblem
from services.errors import InvalidInput
from services.sending import batch_control, queued, validation
from services.sending.batch_control import BatchGate, Steering

MAX_REJECTIONS_KEPT = 1000
# What surrogateescape makes of bytes that are not UTF-8.
_SURROGATES = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class DispatchMessage:
    """Everything a dispatch task needs; it travels in the broker, never in a displayed repr."""

    idempotency_key: str
    customer_id: str
    channel: str
    template_key: str
    payload: dict[str, Any] = field(repr=False)
    recipient: str | None = field(repr=False)
    batch_id: str | None
    # The Notify reply-to (email) or sender (SMS) id over the template's own; an id, not data.
    reply_to_id: str | None = None

    def as_kwargs(self) -> dict[str, Any]:
        """The task's keyword arguments; ``reply_to_id`` only when set (older workers)."""
        extra = {"reply_to_id": self.reply_to_id} if self.reply_to_id is not None else {}
        return {
            "idempotency_key": self.idempotency_key,
            "customer_id": self.customer_id,
            "channel": self.channel,
            "template_key": self.template_key,
            "payload": self.payload,
            "recipient": self.recipient,
            "batch_id": self.batch_id,
            **extra,
        }


# Raises TemplateProblem unless the channel's provider can send the template with these fields.
TemplateCheck = Callable[[ChannelType, str, set[str]], None]


class TaskMessage(Protocol):
    """Anything that carries a dispatch task's keyword arguments."""

    def as_kwargs(self) -> dict[str, Any]:
        """The task's keyword arguments."""


class Publisher(Protocol):
    """Puts dispatch messages on the broker."""

    def publish(self, messages: Sequence[TaskMessage]) -> None:
        """Enqueue one dispatch task per message."""


@dataclass(frozen=True)
class RecipientRow:
    """One recipient of a batch, as read from its source."""

    line: int
    customer_id: str
    recipient: str | None = field(repr=False)
    payload: dict[str, Any] = field(repr=False)
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Rejection:
    """A source row the batch could not use, with where it was and why (no personal data)."""

    line: int
    reason: str


@dataclass
class BatchReport:
    """What one run of a batch did."""

    batch_id: str
    rows: int = 0
    enqueued: int = 0
    already_sent: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)


def _decoded_lines(stream: IO[bytes]) -> Iterator[str]:
    """Text lines; undecodable bytes become surrogates so one bad row cannot stop the batch."""
    for raw in stream:
        yield raw.decode("utf-8", errors="surrogateescape")


def _has_bad_bytes(values: Iterable[str]) -> bool:
    return any(not value.isascii() and _SURROGATES.search(value) for value in values)


def read_csv(
    stream: IO[bytes], key_column: str | None = None
) -> Iterator[RecipientRow | Rejection]:
    """Stream a CSV of recipients: ``customer_id``, optional ``recipient``, the rest payload."""
    reader = csv.reader(_decoded_lines(stream))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:  # a stray carriage return, say; the message quotes no data
        raise InvalidInput("csv", f"the header is not valid CSV ({exc})") from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    if "customer_id" not in header:
        raise InvalidInput("csv", "the header must name a customer_id column")
    if key_column and key_column not in header:
        raise InvalidInput("csv", f"the header has no {key_column!r} column")
    reserved = {"customer_id", "recipient", key_column}
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Rejection(reader.line_num, f"malformed CSV ({exc})")
            continue
        line = reader.line_num
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            yield Rejection(line, f"expected {len(header)} fields, found {len(cells)}")
            continue
        if _has_bad_bytes(cells):
            yield Rejection(line, "not valid UTF-8")
            continue
        values = dict(zip(header, cells, strict=True))
        yield RecipientRow(
            line=line,
            customer_id=values["customer_id"].strip(),
            recipient=values.get("recipient", "").strip() or None,
            payload={k: v for k, v in values.items() if k not in reserved},
            idempotency_key=values[key_column].strip() if key_column else None,
        )


class BatchProducer:
    """Turns a stream of recipients into dispatch tasks, one chunk at a time."""

    def __init__(
        self,
        sessions: SessionFactory,
        publisher: Publisher,
        settings: Settings,
        broker_epoch: Callable[[], str | None] = lambda: None,
        gate: BatchGate | None = None,
        templates: TemplateCheck | None = None,
    ) -> None:
        self._sessions = sessions
        self._templates = templates
        self._publisher = publisher
        self._settings = settings
        self._broker_epoch = broker_epoch
        self._gate = gate

    def run(
        self,
        batch_id: str,
        channel: ChannelType | str,
        template_key: str,
        rows: Iterable[RecipientRow | Rejection],
        *,
        source: str | None = None,
        on_progress: Callable[[int], None] | None = None,
        not_before: datetime | None = None,
        reply_to_id: str | None = None,
        started_by: str | None = None,
    ) -> BatchReport:
        """Enqueue every recipient of ``rows`` not already sent; safe to run again.

        ``not_before`` schedules the batch: its messages wait, parked, until then. A batch an
        operator cancelled takes nothing more, even from a run that started before.
        ``reply_to_id`` is kept on the batch: a later run without one goes out with it too.
        ``started_by`` (who runs it) goes into the batch's history, for this run and each one.
        """
        if not batch_id or len(batch_id) > 100 or not validation.is_printable(batch_id):
            raise InvalidInput("batch_id", "must be 1-100 printable characters")
        parsed_channel = validation.sent_channel(channel)
        template = validation.template_key(template_key)
        if not_before is not None and not_before.tzinfo is None:
            raise InvalidInput("not_before", "must say its time zone (e.g. 09:00-08:00 or Z)")
        sender = validation.sender_id(reply_to_id)
        starter = batch_control.starter(started_by)
        chunk_size = self._settings.batch_chunk_size
        iterator = iter(rows)
        first = list(itertools.islice(iterator, chunk_size))
        self._check_template(parsed_channel, template, first)
        sender = self._start(
            batch_id, parsed_channel, template, source, not_before, sender, starter
        )
        report = BatchReport(batch_id)
        chunks = itertools.chain(
            [first], iter(lambda: list(itertools.islice(iterator, chunk_size)), [])
        )
        # One chunk is delivered (already-sent query, record, publish) by a thread while the
        # next one is read and checked here: the database and broker round trips overlap the
        # parsing, and at most two chunks are held at once. Each chunk is still recorded
        # before it is published, and the cancellation check still comes before each chunk.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch-delivery") as deliverer:
            in_flight: Future[tuple[int, int, int]] | None = None
            try:
                for chunk in chunks:
                    if not chunk:
                        break
                    pending = self._check_chunk(
                        report, batch_id, parsed_channel, template, chunk, sender
                    )
                    if in_flight is not None:
                        self._settle(report, in_flight.result(), on_progress)
                    in_flight = deliverer.submit(
                        self._deliver, batch_id, pending, len(chunk), dataclasses.replace(report)
                    )
                if in_flight is not None:
                    self._settle(report, in_flight.result(), on_progress)
                    in_flight = None
            finally:
                if in_flight is not None:
                    # Stopped for another reason (a row limit, a bad stream): the chunk under
                    # way still finishes, so what was read is enqueued; its own failure, if
                    # any, is the lesser news.
                    in_flight.exception()
        return report

    @staticmethod
    def _settle(
        report: BatchReport,
        delivered: tuple[int, int, int],
        on_progress: Callable[[int], None] | None,
    ) -> None:
        already_sent, enqueued, rows = delivered
        report.already_sent += already_sent
        report.enqueued += enqueued
        if on_progress:
            on_progress(rows)

    def _check_template(
        self, channel: ChannelType, template: str, first: list[RecipientRow | Rejection]
    ) -> None:
        """Refuse, before anything is enqueued, a template the provider cannot send as asked."""
        if self._templates is None:
            return
        sample = next((row for row in first if isinstance(row, RecipientRow)), None)
        fields = set(sample.payload) if sample is not None else set()
        try:
            self._templates(channel, template, fields)
        except TemplateProblem as exc:
            raise InvalidInput("template_key", f"{exc}; nothing was enqueued") from None

    def _refuse_if_cancelled(self, batch_id: str) -> None:
        with self._sessions() as session:
            state = session.scalar(sa.select(Batch.state).where(Batch.id == batch_id))
        if state is BatchState.CANCELLED:
            raise InvalidInput(
                "batch_id", f"batch {batch_id!r} was cancelled; nothing more enqueued"
            )

    def _start(
        self,
        batch_id: str,
        channel: ChannelType,
        template: str,
        source: str | None,
        not_before: datetime | None,
        reply_to_id: str | None = None,
        starter: str = batch_control.STARTER_NOT_GIVEN,
    ) -> str | None:
        """Record the run on the batch, and who ran it; the reply-to id its messages go out with."""
        with self._sessions() as session, session.begin():
            batch = session.get(Batch, batch_id, with_for_update=True)
            if batch is not None and batch.state is BatchState.CANCELLED:
                raise InvalidInput(
                    "batch_id", f"batch {batch_id!r} was cancelled; nothing enqueued"
                )
            if batch is None:
                batch = Batch(
                    id=batch_id, channel=channel, template_key=template, state=BatchState.SENDING
                )
                session.add(batch)
            elif (batch.channel, batch.template_key) != (channel, template):
                raise InvalidInput(
                    "batch_id",
                    f"was started for {batch.channel.value} with template {batch.template_key!r}",
                )
            batch.source = source
            if not_before is not None:
                batch.not_before = not_before.astimezone(UTC)
            if reply_to_id is not None:
                batch.reply_to_id = reply_to_id
            sender = batch.reply_to_id
            batch.runs = (batch.runs or 0) + 1
            batch.total_rows = batch.enqueued = batch.already_sent = batch.rejected = 0
            batch.updated_at = utcnow()
            session.flush()  # a new batch's row first: the run's history row refers to it
            session.add(batch_control.run_recorded(batch_id, batch.runs, starter))
            steering = Steering(batch.state, batch.not_before)
        if self._gate is not None:
            self._gate.mirror(batch_id, steering)
        return sender

    def _check_chunk(
        self,
        report: BatchReport,
        batch_id: str,
        channel: ChannelType,
        template: str,
        chunk: list[RecipientRow | Rejection],
        reply_to_id: str | None = None,
    ) -> list[DispatchMessage]:
        """The chunk's messages, checked and without repeated keys; rejections counted."""
        messages: dict[str, DispatchMessage] = {}
        for item in chunk:
            report.rows += 1
            checked = self._checked(item, batch_id, channel, template, reply_to_id)
            if isinstance(checked, Rejection):
                report.rejected += 1
                if len(report.rejections) < MAX_REJECTIONS_KEPT:
                    report.rejections.append(checked)
                continue
            if checked.idempotency_key in messages:
                report.duplicates += 1
                continue
            messages[checked.idempotency_key] = checked
        return list(messages.values())

    def _deliver(
        self, batch_id: str, messages: list[DispatchMessage], rows: int, before: BatchReport
    ) -> tuple[int, int, int]:
        """Enqueue what is not already sent; (already sent, enqueued, rows) of the chunk.

        ``before`` holds the totals through this chunk's checks and the previous chunks'
        deliveries, from which the batch's progress is saved.
        """
        self._refuse_if_cancelled(batch_id)
        done = self._already_sent([m.idempotency_key for m in messages])
        pending = [m for m in messages if m.idempotency_key not in done]
        if pending:
            # Recorded first: a message the broker loses is then found and published again.
            with self._sessions() as session, session.begin():
                queued.record(session, pending, utcnow(), self._broker_epoch())
            self._publisher.publish(pending)
        before.already_sent += len(done)
        before.enqueued += len(pending)
        self._save_progress(batch_id, before)
        return len(done), len(pending), rows

    def _checked(
        self,
        item: RecipientRow | Rejection,
        batch_id: str,
        channel: ChannelType,
        template: str,
        reply_to_id: str | None = None,
    ) -> DispatchMessage | Rejection:
        if isinstance(item, Rejection):
            return item
        try:
            customer = validation.customer_id(item.customer_id)
            recipient = (
                validation.recipient(channel, item.recipient, self._settings.default_phone_region)
                if item.recipient
                else None
            )
            payload = validation.payload(item.payload, self._settings.max_payload_bytes)
            key = validation.idempotency_key(item.idempotency_key or f"{batch_id}:{customer}")
        except InvalidInput as exc:
            return Rejection(item.line, str(exc))
        return DispatchMessage(
            key, customer, channel.value, template, payload, recipient, batch_id, reply_to_id
        )

    def _already_sent(self, keys: list[str]) -> set[str]:
        """The keys among ``keys`` that need nothing more: one query per chunk."""
        if not keys:
            return set()
        table = CustomerInteraction
        with self._sessions() as session:
            found = session.scalars(
                sa.select(table.idempotency_key).where(
                    table.idempotency_key.in_(keys), table.status.in_(SENT_OR_BEYOND)
                )
            )
            return set(found)

    def _save_progress(self, batch_id: str, report: BatchReport) -> None:
        with self._sessions() as session, session.begin():
            session.execute(
                sa.update(Batch)
                .where(Batch.id == batch_id)
                .values(
                    total_rows=report.rows,
                    enqueued=report.enqueued,
                    already_sent=report.already_sent,
                    rejected=report.rejected,
                    updated_at=utcnow(),
                )
            )
