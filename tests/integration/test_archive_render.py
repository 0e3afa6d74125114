"""The archive's spelled-out JSON is row_to_json's, byte for byte, on hostile values."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection, Engine

from services.archive.fileformat import row_json_sql as render
from services.archive.jobs.window_export import EVENTS, INTERACTIONS

# Everything PostgreSQL's text can hold: quotes, backslashes, control and non-ASCII characters.
TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=30)
NULLABLE_TEXT = st.none() | TEXT
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
# Hypothesis takes naive bounds and adds the zone itself.
MOMENTS = st.datetimes(
    min_value=datetime(1900, 1, 1),  # noqa: DTZ001
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@pytest.fixture
def connection(pg_engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that is rolled back, printing timestamps in UTC."""
    with pg_engine.connect() as connection:
        outer = connection.begin()
        connection.exec_driver_sql("SET LOCAL TIME ZONE 'UTC'")
        yield connection
        outer.rollback()


def both(connection: Connection, table: str, alias: str, where: str) -> list[tuple[str, str]]:
    spelled = render.row_json(alias, render.columns(connection, table))
    rows = connection.exec_driver_sql(
        f"SELECT row_to_json({alias})::text, {spelled} FROM {table} AS {alias} WHERE {where}"
    ).all()
    return [(row[0], row[1]) for row in rows]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    texts=st.lists(NULLABLE_TEXT, min_size=12, max_size=12),
    meta=JSON_VALUES,
    detail=JSON_VALUES,
    moments=st.lists(MOMENTS | st.none(), min_size=7, max_size=7),
)
def test_interactions_and_events_render_as_row_to_json(
    connection: Connection,
    texts: list[str | None],
    meta: Any,
    detail: Any,
    moments: list[datetime | None],
) -> None:
    savepoint = connection.begin_nested()
    created = moments[0] or datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
    interaction_id = connection.exec_driver_sql(
        f"""INSERT INTO {INTERACTIONS} (interaction_uuid, customer_id, idempotency_key, channel,
          status, body_content, notify_reference, provider_reference, provider, meta_data,
          recipient, template_key, batch_id, author, attempt_count, failure_reason,
          recipient_hash, created_at, updated_at, sent_at, delivered_at, opened_at, failed_at,
          claim_expires_at)
        VALUES (gen_random_uuid(), %(customer)s, %(key)s, 'email', 'delivered', %(t0)s, %(t1)s,
          %(t2)s, %(t3)s, %(meta)s, %(t4)s, %(t5)s, %(t6)s, %(t7)s, 3, %(t8)s, %(t9)s,
          %(created)s, %(created)s, %(m1)s, %(m2)s, %(m3)s, %(m4)s, %(m5)s)
        RETURNING id""",
        {
            "customer": texts[10] or "C-1",
            "key": (texts[11] or "") + ":render",
            **{f"t{n}": texts[n] for n in range(10)},
            "meta": None if meta is None else json.dumps(meta),
            "created": created,
            **{f"m{n}": moments[n] for n in range(1, 6)},
        },
    ).scalar_one()
    connection.exec_driver_sql(
        f"""INSERT INTO {EVENTS} (interaction_id, kind, from_status, to_status, outcome, source,
          actor, attempt, provider, provider_event_id, reference, detail, occurred_at,
          recorded_at, reason)
        VALUES (%(id)s, 'status_changed', 'sent', 'delivered', %(t0)s, %(source)s, %(t1)s, NULL,
          %(t2)s, %(t3)s, %(t4)s, %(detail)s, %(at)s, %(at)s, %(t5)s),
          (%(id)s, 'staff_action', NULL, NULL, NULL, 'console', %(t6)s, 2, NULL, NULL, NULL,
          NULL, %(at)s, %(at)s, NULL)""",
        {
            "id": interaction_id,
            "source": texts[6] or "provider",
            **{f"t{n}": texts[n] for n in range(7)},
            "detail": None if detail is None else json.dumps(detail),
            "at": moments[6] or created + timedelta(microseconds=1),
        },
    )
    pairs = both(connection, INTERACTIONS, "i", f"i.id = {interaction_id}")
    pairs += both(connection, EVENTS, "e", f"e.interaction_id = {interaction_id}")
    savepoint.rollback()

    assert len(pairs) == 3
    for expected, spelled in pairs:
        assert spelled == expected


def test_every_kind_of_column_renders_as_row_to_json(connection: Connection) -> None:
    connection.exec_driver_sql("CREATE TYPE pg_temp.plain_kind AS ENUM ('a', 'b-c', 'd.e:f')")
    connection.exec_driver_sql("CREATE TYPE pg_temp.odd_kind AS ENUM ('plain', 'quo\"te')")
    connection.exec_driver_sql("CREATE DOMAIN pg_temp.small_count AS integer CHECK (VALUE >= 0)")
    connection.exec_driver_sql(
        """CREATE TEMP TABLE kinds (
          id bigint PRIMARY KEY, tiny smallint, flag boolean, amount numeric, ratio float8,
          day date, local_time timestamp, span interval, raw bytea, plain_label pg_temp.plain_kind,
          odd_label pg_temp.odd_kind NOT NULL, tags text[], numbers int[], doc json, jdoc jsonb,
          counted pg_temp.small_count, token uuid, letter "char")"""
    )
    connection.exec_driver_sql(
        """INSERT INTO kinds VALUES
          (1, -3, true, 12.50, 'NaN', '2024-02-29', '2024-02-29 12:00:00.5', '1 day 2 hours',
           '\\x00ff', 'b-c', 'quo"te', ARRAY['x"y', NULL, 'é\\z'], ARRAY[1, NULL],
           '{"spaced" :  [1, 2]}', '{"b": [1, {"a": "\\""}]}', 7,
           'e1b5a729-77fa-4712-aefd-6fdf2d18e688', 'q'),
          (2, NULL, NULL, NULL, 'Infinity', NULL, NULL, NULL, NULL, NULL, 'plain', NULL, NULL,
           NULL, NULL, NULL, NULL, NULL),
          (3, 0, false, -0.001, -1.5e-300, '0044-03-15 BC', '0001-01-01', '-1 sec', '\\x', 'a',
           'plain', '{}', '{}', 'null', 'null', 0, '00000000-0000-0000-0000-000000000000', ' ')"""
    )
    kinds = render.columns(connection, "kinds")
    assert not next(c for c in kinds if c.name == "odd_label").plain_enum
    assert next(c for c in kinds if c.name == "plain_label").plain_enum

    pairs = both(connection, "kinds", "k", "true")

    assert len(pairs) == 3
    for expected, spelled in pairs:
        assert spelled == expected


def test_a_column_name_that_needs_escaping_keeps_row_to_json(connection: Connection) -> None:
    connection.exec_driver_sql('CREATE TEMP TABLE odd (id int, "Mixed Case" text, "q""t" int)')
    connection.exec_driver_sql("""INSERT INTO odd VALUES (1, 'x', 2)""")

    assert render.row_json("o", render.columns(connection, "odd")) == "row_to_json(o)::text"
    assert both(connection, "odd", "o", "true") == [
        ('{"id":1,"Mixed Case":"x","q\\"t":2}', '{"id":1,"Mixed Case":"x","q\\"t":2}')
    ]


def test_dropped_columns_are_left_out_as_row_to_json_leaves_them(connection: Connection) -> None:
    connection.exec_driver_sql("CREATE TEMP TABLE thinned (id int, gone text, kept text)")
    connection.exec_driver_sql("ALTER TABLE thinned DROP COLUMN gone")
    connection.exec_driver_sql("INSERT INTO thinned VALUES (1, 'k')")

    assert both(connection, "thinned", "t", "true") == [('{"id":1,"kept":"k"}',) * 2]
