"""A customer's archived interactions, read back from cold storage into their timeline."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from config.settings import Settings
from models.archive import ArchiveManifest, ArchiveState
from models.interaction import CustomerInteraction
from services.archive.fileformat import manifest_rows
from services.archive.fileformat.checked_lines import lines
from services.archive.fileformat.customer_filter import CustomerFilter
from services.archive.stores.factory import open_store
from services.archive.stores.port import ArchiveStore
from services.ledger import history
from services.records import HistoryPage, InteractionRecord

SessionFactory = Callable[[], Session]

# The archived values go back through the model's column types, exactly as a row read from
# the table would, so a column the ledger stores encrypted is decrypted the same way.
_AS_ROWS = sa.text(
    f"SELECT * FROM json_populate_recordset(NULL::{CustomerInteraction.__tablename__},"  # noqa: S608
    " CAST(:documents AS json))"
)


def archived_interactions(
    sessions: SessionFactory, store: ArchiveStore, customer_id: str
) -> list[InteractionRecord]:
    """Every archived interaction of ``customer_id``, from the files that may hold it.

    Each file's Bloom filter rules most files out without reading them; a file that is
    read is checked against its manifest as it is read (``checked_lines.Corrupt`` otherwise).
    """
    documents = list(_archived_documents(sessions, lambda: store, customer_id))
    if not documents:
        return []
    with sessions() as session:
        statement = sa.select(CustomerInteraction).from_statement(_AS_ROWS)
        loaded = session.scalars(statement, {"documents": json.dumps(documents)})
        return [InteractionRecord.of(row) for row in loaded]


def in_archive(
    sessions: SessionFactory, open_archive: Callable[[], ArchiveStore], customer_id: str
) -> bool:
    """Whether the archive holds any interaction of ``customer_id``; stops at the first.

    Reads only the files whose Bloom filter may hold the customer, as the timeline does, and
    opens the store only when one may: a customer no filter matches costs one query.
    """
    return next(_archived_documents(sessions, open_archive, customer_id), None) is not None


def _archived_documents(
    sessions: SessionFactory, open_archive: Callable[[], ArchiveStore], customer_id: str
) -> Iterator[dict[str, Any]]:
    """The customer's archived interactions as stored, oldest month first, read lazily."""
    with sessions() as session:
        rows = list(
            session.scalars(
                sa.select(ArchiveManifest)
                .options(sa.orm.undefer(ArchiveManifest.customer_filter))
                .where(ArchiveManifest.state == ArchiveState.ARCHIVED)
                .order_by(ArchiveManifest.month, ArchiveManifest.first_id)
            )
        )
    needle = f'"customer_id":{json.dumps(customer_id)}'.encode()
    store: ArchiveStore | None = None
    for row in rows:
        if not CustomerFilter.from_bytes(row.customer_filter).might_contain(customer_id):
            continue
        store = store or open_archive()
        for text in lines(store, manifest_rows.manifest_from_row(row)):
            if needle in text:
                document: dict[str, Any] = json.loads(text)["interaction"]
                if document["customer_id"] == customer_id:
                    yield document


def history_with_archive(
    sessions: SessionFactory,
    settings: Settings,
    query: history.HistoryQuery,
    store: ArchiveStore | None = None,
) -> HistoryPage:
    """One page of the timeline over the hot table and the archive together, newest first."""
    with sessions() as session:
        hot = history.read_page(session, query)
    archived = [
        record
        for record in archived_interactions(
            sessions, store or open_store(settings), query.customer_id
        )
        if _matches(record, query)
    ]
    seen = {record.id for record in hot.items}
    merged = sorted(
        [*hot.items, *(r for r in archived if r.id not in seen)],
        key=lambda r: (r.created_at, r.id),
        reverse=True,
    )
    items = merged[: query.limit]
    more = hot.next_cursor is not None or len(merged) > query.limit
    cursor = history.Position(items[-1].created_at, items[-1].id).encode() if more else None
    return HistoryPage(items, cursor)


def _matches(record: InteractionRecord, query: history.HistoryQuery) -> bool:
    if query.channel is not None and record.channel is not query.channel:
        return False
    if query.status is not None and record.status is not query.status:
        return False
    after = query.after
    return after is None or (record.created_at, record.id) < (after.created_at, after.id)
