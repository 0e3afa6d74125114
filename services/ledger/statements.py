"""The ledger's one-statement PostgreSQL writes, each rendered once per process.

The dispatch's two (the claim, SENT) and the API's accepted message.

A dispatch writes four rows per message (the claim, its event, SENT, its event). Built with the
ORM per call, each cost more worker CPU than the database spent on it; as text rendered once and
run on the session's connection with the columns' own processors, each pair is one round trip.
The parameters take the column types, so sealing, redaction and enums apply exactly as in any
other write. ``writes`` runs them; the general statements there remain the path for everything
these do not cover (another dialect, a taken key, a suppressed address, a callback first).
"""

from __future__ import annotations

import contextlib
import threading
import time
import weakref
from typing import Any, ClassVar

import sqlalchemy as sa

from models.event import InteractionEvent
from models.interaction import CustomerInteraction

_INTERACTIONS = CustomerInteraction.__table__.c
_EVENTS = InteractionEvent.__table__.c

# The columns a SENT record returns: everything an InteractionRecord holds but the sealed
# values, which the caller already has in the clear (the address it sent to, the body).
RECORD_COLUMNS = (
    "id",
    "interaction_uuid",
    "customer_id",
    "idempotency_key",
    "channel",
    "status",
    "template_key",
    "batch_id",
    "attempt_count",
    "provider",
    "provider_reference",
    "failure_reason",
    "author",
    "created_at",
    "sent_at",
    "delivered_at",
    "opened_at",
    "failed_at",
)

# The first attempt of a key: the claim, unless the key exists or the address is suppressed
# on the channel (``suppression_hash`` NULL: not a suppressible channel), and its event.
FIRST_ATTEMPT = """
WITH claimed AS (
    INSERT INTO interactions (interaction_uuid, customer_id, idempotency_key, channel, status,
        recipient, recipient_hash, template_key, batch_id, meta_data, attempt_count,
        claim_expires_at, created_at, updated_at)
    SELECT CAST(:interaction_uuid AS uuid), :customer_id, :idempotency_key,
        CAST(:channel AS channel_type), CAST(:status AS interaction_status), :recipient,
        :recipient_hash, :template_key, :batch_id, CAST(:meta_data AS jsonb), 1,
        clock_timestamp() + make_interval(secs => :lease_seconds), :now, :now
    WHERE CAST(:suppression_hash AS text) IS NULL OR NOT EXISTS (
        SELECT 1 FROM suppressions
        WHERE recipient_hash = :suppression_hash AND channel = CAST(:channel AS channel_type)
            AND lifted_at IS NULL AND expires_at > :now
    )
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), started AS (
    INSERT INTO interaction_events (interaction_id, kind, from_status, to_status, outcome,
        source, attempt, occurred_at, recorded_at)
    SELECT id, CAST(:kind AS event_kind), NULL, CAST(:status AS interaction_status), NULL,
        :source, 1, :now, :now
    FROM claimed
)
SELECT id FROM claimed
"""

# SENT from the one status that moves to it, with its event; no row when a callback got there
# first (the caller then decides under the row lock).
SENT = f"""
WITH sent AS (
    UPDATE interactions SET status = CAST(:status AS interaction_status),
        provider = :provider, notify_reference = :notify_reference, claim_expires_at = NULL,
        failure_reason = NULL, body_content = COALESCE(:body_content, body_content),
        subject = COALESCE(:subject, subject),
        provider_reference = COALESCE(provider_reference, :provider_reference),
        sent_at = :now, updated_at = :now
    WHERE id = :interaction_id AND status = CAST(:from_status AS interaction_status)
    RETURNING {", ".join(RECORD_COLUMNS)}, body_content, subject
), changed AS (
    INSERT INTO interaction_events (interaction_id, kind, from_status, to_status, outcome,
        source, attempt, provider, occurred_at, recorded_at)
    SELECT id, CAST(:kind AS event_kind), CAST(:from_status AS interaction_status),
        CAST(:status AS interaction_status), :outcome, :source, :attempt, :provider, :now, :now
    FROM sent
)
SELECT * FROM sent
"""  # noqa: S608 - the only values formatted in are the column names above


# The interaction PENDING and unclaimed unless its key exists, and its first event.
ACCEPTED = """
WITH accepted AS (
    INSERT INTO interactions (interaction_uuid, customer_id, idempotency_key, channel, status,
        recipient, recipient_hash, template_key, batch_id, meta_data, attempt_count,
        claim_expires_at, created_at, updated_at)
    VALUES (CAST(:interaction_uuid AS uuid), :customer_id, :idempotency_key,
        CAST(:channel AS channel_type), CAST(:status AS interaction_status), :recipient,
        :recipient_hash, :template_key, :batch_id, CAST(:meta_data AS jsonb), 0, NULL,
        :now, :now)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id
), recorded AS (
    INSERT INTO interaction_events (interaction_id, kind, from_status, to_status, outcome,
        source, actor, occurred_at, recorded_at)
    SELECT id, CAST(:kind AS event_kind), NULL, CAST(:status AS interaction_status), :outcome,
        :source, :actor, :now, :now
    FROM accepted
)
SELECT id FROM accepted
"""


class Prepared:
    """A statement rendered once per dialect and run on the session's own DBAPI connection.

    Through SQLAlchemy's execution each run builds an execution context and a result object,
    about half of the database client's CPU on a dispatch; this keeps what matters of it: the
    column types' bind and result processors (sealing, redaction, enums) and errors raised as
    ``DBAPIError``, a lost connection invalidated, as any other statement's are.
    """

    def __init__(self, sql: str, binds: dict[str, Any], results: dict[str, Any]) -> None:
        self._statement = sa.text(sql).bindparams(
            *(sa.bindparam(name, type_=type_) for name, type_ in binds.items())
        )
        self._binds = binds
        self._results = results
        self._rendered: dict[str, tuple[str, dict[str, Any], list[Any]]] = {}

    def _render(self, dialect: sa.Dialect) -> tuple[str, dict[str, Any], list[Any]]:
        rendered = self._rendered.get(dialect.name)
        if rendered is None:
            sql = str(self._statement.compile(dialect=dialect))
            binds = {
                name: processor
                for name, type_ in self._binds.items()
                if (processor := type_.dialect_impl(dialect).bind_processor(dialect)) is not None
            }
            results = [
                type_.dialect_impl(dialect).result_processor(dialect, None)
                for type_ in self._results.values()
            ]
            rendered = self._rendered[dialect.name] = (sql, binds, results)
        return rendered

    def rows(self, connection: sa.Connection, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The rows the statement returns, each a dict of its processed result columns."""
        dialect = connection.dialect
        sql, binds, results = self._render(dialect)
        cursor = connection.connection.cursor()
        try:
            fetched = self._fetch(cursor, sql, binds, params)
        except dialect.loaded_dbapi.Error as exc:
            # SQLAlchemy's own handling, as for its statements: wrapped as DBAPIError, and on a
            # lost connection the pool's other connections of that age invalidated too, so
            # the task's retry does not pick up another dead one. (Pinned by the dead-database
            # test in tests/integration/test_concurrency.py.)
            connection._handle_dbapi_exception(exc, sql, None, cursor, None)
            raise
        finally:
            cursor.close()
        return self._processed(fetched, results)

    def rows_alone(self, engine: sa.Engine, params: dict[str, Any]) -> list[dict[str, Any]]:
        """The same, the statement its own transaction on the thread's own connection.

        One statement is atomic alone: it runs in autocommit, so there is no BEGIN or COMMIT to
        send and no session to begin, commit and close, on a connection this thread keeps for
        such statements (``ThreadConnections``) rather than one checked out of the pool and
        back for each. A lost connection is closed, every pooled one of its age invalidated,
        and the error is a ``DBAPIError``, as through a session.
        """
        dialect = engine.dialect
        sql, binds, results = self._render(dialect)
        held = ThreadConnections.of(engine)
        driver = held.driver()
        cursor = driver.cursor()
        try:
            fetched = self._fetch(cursor, sql, binds, params)
        except dialect.loaded_dbapi.Error as exc:
            lost = dialect.is_disconnect(exc, driver, cursor)
            if lost:
                held.lost()
            raise sa.exc.DBAPIError.instance(
                sql,
                None,
                exc,
                dialect.loaded_dbapi.Error,
                hide_parameters=True,
                connection_invalidated=lost,
                dialect=dialect,
            ) from exc
        finally:
            if not cursor.closed:
                cursor.close()
        return self._processed(fetched, results)

    @staticmethod
    def _fetch(cursor: Any, sql: str, binds: dict[str, Any], params: dict[str, Any]) -> list[Any]:
        values = {
            name: binds[name](value) if name in binds else value for name, value in params.items()
        }
        cursor.execute(sql, values)
        fetched: list[Any] = cursor.fetchall()
        return fetched

    def _processed(self, fetched: list[Any], results: list[Any]) -> list[dict[str, Any]]:
        names = list(self._results)
        return [
            {
                name: process(value) if process is not None else value
                for name, process, value in zip(names, results, row, strict=True)
            }
            for row in fetched
        ]


class ThreadConnections:
    """Each thread's own autocommit connection to an engine's database, for one-statement writes.

    A worker thread sends a dispatch's claim and its SENT each as one statement; holding one
    connection for them (as the bare pipeline does) spares a pool checkout and return per
    statement, about a tenth of a millisecond of CPU a message among 32 threads. The connection
    is the engine's own (its URL, connect arguments and application name), taken from the pool
    and detached from it, so the pool keeps its size for everything else. The thread keeps it
    open between messages, never with a transaction open (each statement commits alone). It
    is opened again when lost, when the pool is invalidated or disposed of, and once it is
    ``pool_recycle`` seconds old (counted from when it was first opened); ``close_all`` closes
    every one an engine's threads opened (the container does, when it closes).
    """

    _registry: ClassVar[weakref.WeakKeyDictionary[sa.Engine, ThreadConnections]] = (
        weakref.WeakKeyDictionary()
    )
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, engine: sa.Engine) -> None:
        # Weak, as the registry's key is: an engine no one holds goes, with its connections.
        self._engine = weakref.ref(engine)
        self._local = threading.local()
        self._opened: set[Any] = set()
        self._opened_lock = threading.Lock()
        recycle = engine.pool._recycle
        self._max_age = float(recycle) if recycle and recycle > 0 else None

    @classmethod
    def of(cls, engine: sa.Engine) -> ThreadConnections:
        """The engine's per-thread connections, made on first use."""
        found = cls._registry.get(engine)
        if found is None:
            with cls._registry_lock:
                found = cls._registry.setdefault(engine, cls(engine))
        return found

    @classmethod
    def close_all(cls, engine: sa.Engine) -> None:
        """Close every connection the engine's threads hold (at exit, or a test's end)."""
        with cls._registry_lock:
            found = cls._registry.pop(engine, None)
        if found is not None:
            with found._opened_lock:
                opened, found._opened = found._opened, set()
            for driver in opened:
                with contextlib.suppress(Exception):
                    driver.close()

    def driver(self) -> Any:
        """This thread's DBAPI connection, in autocommit; opened (again) when needed."""
        engine = self._engine()
        if engine is None:
            raise RuntimeError("the engine these connections belong to is gone")
        pool = engine.pool
        held = getattr(self._local, "held", None)
        if held is not None:
            driver, born, opened_from = held
            # From a pool since disposed of, or older than its last invalidation (another
            # thread met a lost connection): replaced now, as the pool replaces its own.
            fresh = (
                opened_from is pool
                and born > pool._invalidate_time
                and (self._max_age is None or time.time() - born < self._max_age)
            )
            if fresh and not driver.closed:
                return driver
            self._close()
        fairy = engine.raw_connection()
        opened: Any = fairy.driver_connection
        # When the pool first opened it (the clock the pool's own recycling and invalidation
        # use), not now.
        born = fairy._connection_record.starttime if fairy._connection_record else time.time()
        fairy.detach()
        opened.autocommit = True
        with self._opened_lock:
            self._opened.add(opened)
        self._local.held = (opened, born, pool)
        return opened

    def lost(self) -> None:
        """The connection died: close it, and have the pool replace those opened before it.

        As the pool does for its own: the pool's invalidation time moves to now only if it is
        older than the lost connection, so a thread finding its dead connection late does not
        throw away the ones opened since the outage.
        """
        held = getattr(self._local, "held", None)
        self._close()
        engine = self._engine()
        if held is not None and engine is not None and held[2] is engine.pool:
            pool = engine.pool
            if pool._invalidate_time < held[1]:
                pool._invalidate_time = time.time()

    def _close(self) -> None:
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            driver = held[0]
            with self._opened_lock:
                self._opened.discard(driver)
            # The driver's own close: the pool's would first try a rollback, and log it as an
            # error on a connection already gone.
            with contextlib.suppress(Exception):
                driver.close()


# The typed parameters of a new interaction and its first event, as both inserts bind them.
_NEW_ROW_BINDS = {
    "channel": _INTERACTIONS.channel.type,
    "status": _INTERACTIONS.status.type,
    "recipient": _INTERACTIONS.recipient.type,
    "meta_data": _INTERACTIONS.meta_data.type,
    "interaction_uuid": _INTERACTIONS.interaction_uuid.type,
    "kind": _EVENTS.kind.type,
    "now": _INTERACTIONS.created_at.type,
}

first_attempt = Prepared(FIRST_ATTEMPT, _NEW_ROW_BINDS, {"id": _INTERACTIONS.id.type})

# The API's accepted message: ``writes.accept`` on PostgreSQL, in the same one round trip.
accepted = Prepared(ACCEPTED, _NEW_ROW_BINDS, {"id": _INTERACTIONS.id.type})

sent = Prepared(
    SENT,
    {
        "status": _INTERACTIONS.status.type,
        "from_status": _INTERACTIONS.status.type,
        "body_content": _INTERACTIONS.body_content.type,
        "subject": _INTERACTIONS.subject.type,
        "kind": _EVENTS.kind.type,
        "now": _INTERACTIONS.created_at.type,
    },
    # The body and subject as stored, opened only when the receipt brought none (an earlier
    # attempt's).
    {name: _INTERACTIONS[name].type for name in RECORD_COLUMNS}
    | {"body_content": sa.Text(), "subject": sa.Text()},
)
