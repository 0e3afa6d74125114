"""The cold archive's catalogue: one manifest row per archived file, and legal holds on purging."""

from __future__ import annotations

import enum
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigId, utcnow, value_enum
from models.interaction import CUSTOMER_ID_MAX, CustomerInteraction


class ArchiveState(enum.StrEnum):
    """What a manifest's file holds now."""

    # The file is the only copy of its rows: they were deleted in the transaction that
    # recorded the manifest.
    ARCHIVED = "archived"
    # Its rows were put back into the tables; the file is a redundant copy until the
    # janitor archives them again (reusing the file when it is byte-identical).
    RESTORED = "restored"
    # The file was deleted once its month passed the cold retention; the row is the record.
    PURGED = "purged"


class ArchiveManifest(Base):
    """One archived file: which rows it holds, where it is, and the hashes that vouch for it."""

    __tablename__ = "archive_manifests"
    __table_args__ = (sa.Index("ix_archive_manifests_month_state", "month", "state"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # The object's key in the store: interactions/YYYY-MM/<first id>-<last id>.jsonl.zst
    object_key: Mapped[str] = mapped_column(sa.String(512), unique=True, nullable=False)
    # The store it was written to (a directory or s3://bucket/prefix), for the record.
    store_url: Mapped[str] = mapped_column(sa.String(1024), nullable=False)
    # The first day of the month whose interactions (by created_at, UTC) the file holds.
    month: Mapped[date] = mapped_column(sa.Date, nullable=False)
    state: Mapped[ArchiveState] = mapped_column(
        value_enum(ArchiveState, "archive_state"), nullable=False
    )
    row_count: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    event_count: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    first_id: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    last_id: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    first_created_at: Mapped[datetime] = mapped_column(nullable=False)
    last_created_at: Mapped[datetime] = mapped_column(nullable=False)
    byte_size: Mapped[int] = mapped_column(sa.BigInteger, nullable=False)
    # SHA-256 of the stored (compressed) bytes, and of the JSON Lines inside them.
    sha256: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    content_sha256: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    # The Alembic revision of the tables the rows were read from, and the file format's version.
    schema_version: Mapped[str] = mapped_column(sa.String(32), nullable=False)
    format_version: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    # A Bloom filter of the file's customer ids: which files a customer's history may be in.
    customer_filter: Mapped[bytes] = mapped_column(sa.LargeBinary, nullable=False, deferred=True)
    created_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    restored_at: Mapped[datetime | None]
    purged_at: Mapped[datetime | None]


class LegalHold(Base):
    """A hold that keeps archived files from being purged: one customer's, or one month's."""

    __tablename__ = "archive_legal_holds"
    __table_args__ = (
        sa.CheckConstraint("(customer_id IS NULL) <> (month IS NULL)", name="one_scope"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str | None] = mapped_column(sa.String(CUSTOMER_ID_MAX))
    month: Mapped[date | None] = mapped_column(sa.Date)
    reason: Mapped[str] = mapped_column(sa.Text, nullable=False)
    placed_by: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    placed_at: Mapped[datetime] = mapped_column(nullable=False, default=utcnow)
    released_by: Mapped[str | None] = mapped_column(sa.String(100))
    released_at: Mapped[datetime | None]


# The janitor finds the expired id range with one read guided by this index. BRIN suits a
# column that grows with the table's physical order: it is a few pages for millions of rows
# and costs inserts almost nothing. It is declared here to keep the janitor's needs together.
sa.Index(
    "ix_interactions_created_at_brin",
    CustomerInteraction.__table__.c.created_at,
    postgresql_using="brin",
)
