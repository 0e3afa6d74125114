"""SQL that writes a row's JSON byte for byte as ``row_to_json`` does, at less cost.

``row_to_json`` works out every column's type, escapes every key and formats every value on
every row; for the janitor that is most of the work of an archive run. The expression built
here is read from the catalog for each window and spells each object out: the keys are constants,
integers and ``jsonb`` are printed by their own output functions, values that never need an
escape (uuids, labels of enums whose labels are all plain) are quoted as they are, and every
other column goes through ``to_json`` exactly as ``row_to_json`` would send it. The output is
the same bytes, so the archive's format is unchanged; tests/integration/test_archive_render.py
compares the two on hostile values.

A table with a column this module cannot spell out (a name that would need escaping) keeps
``row_to_json`` for the whole row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.engine import Connection

_PLAIN_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
# Text JSON never escapes: no quote, backslash or control character.
_PLAIN_LABEL = re.compile(r"^[A-Za-z0-9_.:-]*$")
_INTEGERS = {"smallint", "integer", "bigint"}

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, NULL), t.typtype, a.attnotnull,
       t.typtype = 'e' AND NOT EXISTS (
         SELECT 1 FROM pg_enum AS l
         WHERE l.enumtypid = a.atttypid AND l.enumlabel !~ %(plain_label)s
       )
FROM pg_attribute AS a
JOIN pg_type AS t ON t.oid = a.atttypid
WHERE a.attrelid = %(table)s::regclass AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


@dataclass(frozen=True)
class Column:
    """One column as the catalog describes it."""

    name: str
    type_name: str
    type_kind: str
    not_null: bool
    plain_enum: bool


def columns(connection: Connection, table: str) -> list[Column]:
    """The table's columns in their stored order, dropped ones left out."""
    rows = connection.exec_driver_sql(
        _COLUMNS, {"table": table, "plain_label": _PLAIN_LABEL.pattern}
    ).all()
    return [Column(*row) for row in rows]


def value(alias: str, column: Column) -> list[str | Literal]:
    """One column's JSON value as row_to_json writes it: SQL expressions and literal text."""
    ref = f'{alias}."{column.name}"'
    if column.type_name in _INTEGERS or column.type_name == "jsonb":
        text = f"{ref}::text"
    elif column.type_name == "uuid" or column.plain_enum:
        if column.not_null:
            return [Literal('"'), f"{ref}::text", Literal('"')]
        text = f"'\"' || {ref}::text || '\"'"
    else:
        text = f"to_json({ref})::text"
    return [text if column.not_null else f"coalesce({text}, 'null')"]


def row_json(alias: str, table_columns: list[Column]) -> str:
    """The SQL text of a row's JSON object, keys in column order, as row_to_json writes it."""
    if not table_columns or not all(_PLAIN_NAME.match(c.name) for c in table_columns):
        return f"row_to_json({alias})::text"
    pieces: list[str | Literal] = []
    for index, column in enumerate(table_columns):
        pieces.append(Literal(("{" if index == 0 else ",") + f'"{column.name}":'))
        pieces.extend(value(alias, column))
    pieces.append(Literal("}"))
    return _concatenated(pieces)


class Literal(str):
    """Constant text in the JSON, as opposed to an SQL expression."""


def _concatenated(pieces: list[str | Literal]) -> str:
    """The pieces joined with ``||``, neighbouring literals merged into one."""
    merged: list[str | Literal] = []
    for piece in pieces:
        if isinstance(piece, Literal) and merged and isinstance(merged[-1], Literal):
            merged[-1] = Literal(merged[-1] + piece)
        else:
            merged.append(piece)
    # Literals hold only column names (plain), braces, commas, colons and quotes.
    return " || ".join(f"'{p}'" if isinstance(p, Literal) else p for p in merged)
