"""The SQL a service call runs, captured as it runs, and EXPLAIN (ANALYZE, BUFFERS) of each."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

# What counts as a full read of a big table: a sequential scan of one of ours.
SEQ_SCAN = re.compile(r"Seq Scan on (interactions|interaction_events)\b")


@dataclass
class Captured:
    """Statements (with their parameters) seen while capturing, in order."""

    statements: list[tuple[str, Any]] = field(default_factory=list)


@contextmanager
def capture(engine: sa.Engine) -> Iterator[Captured]:
    """Record every statement ``engine`` sends while the block runs."""
    captured = Captured()

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT")):
            captured.statements.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield captured
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


@dataclass(frozen=True)
class Plan:
    """One statement's plan as it ran, and whether it read a big table from end to end."""

    statement: str
    text: str

    @property
    def seq_scan(self) -> bool:
        return SEQ_SCAN.search(self.text) is not None


def explain(engine: sa.Engine, statements: list[tuple[str, Any]]) -> list[Plan]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement, in a transaction rolled back."""
    plans = []
    raw: Any = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            for statement, parameters in statements:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
                text = "\n".join(row[0] for row in cursor.fetchall())
                plans.append(Plan(statement, text))
        raw.rollback()
    finally:
        raw.close()
    return plans


def save(plans: list[Plan], path: Path) -> None:
    """Write the statements and their plans to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        for plan in plans:
            out.write(f"{plan.statement}\n\n{plan.text}\n\n{'-' * 80}\n")
