"""What a run will move: the cutoff, the expired interactions by month, their id windows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.engine import Engine

from services.archive.fileformat.months import months_back
from services.archive.jobs.window_export import INTERACTIONS, Window

# created_at < cutoff is served by the BRIN index: it reads the expired part of the table only.
_BY_MONTH = f"""
SELECT date_trunc('month', created_at AT TIME ZONE 'UTC')::date,
       count(*) FILTER (WHERE status <> 'pending'),
       count(*) FILTER (WHERE status = 'pending'),
       min(id) FILTER (WHERE status <> 'pending'),
       max(id) FILTER (WHERE status <> 'pending')
FROM {INTERACTIONS}
WHERE created_at < %(cutoff)s
GROUP BY 1
ORDER BY 1
"""  # noqa: S608


@dataclass(frozen=True)
class MonthCount:
    """One month's expired interactions: those that will move and those kept as PENDING."""

    month: date
    settled: int
    pending: int
    first_id: int | None
    last_id: int | None


@dataclass(frozen=True)
class Plan:
    """The expired interactions as found when the run began."""

    cutoff: datetime
    months: list[MonthCount]

    @property
    def expired(self) -> int:
        """Interactions that will move."""
        return sum(m.settled for m in self.months)

    @property
    def pending(self) -> int:
        """Expired interactions still PENDING: never archived, reported instead."""
        return sum(m.pending for m in self.months)

    def windows(self, size: int) -> list[Window]:
        """Primary-key windows on a fixed grid of ``size`` ids covering every expired row.

        The grid does not move between runs, so a run after a crash cuts the same windows
        and so names the same files as the run it follows.
        """
        firsts = [m.first_id for m in self.months if m.first_id is not None]
        lasts = [m.last_id for m in self.months if m.last_id is not None]
        if not firsts or not lasts:
            return []
        start, end = (min(firsts) - 1) // size, (max(lasts) - 1) // size
        return [Window(j * size, (j + 1) * size) for j in range(start, end + 1)]


def default_cutoff(now: datetime, hot_months: int) -> datetime:
    """Interactions created before this moment are past the hot retention."""
    return months_back(now, hot_months)


def find_expired(engine: Engine, cutoff: datetime, timeout_seconds: int) -> Plan:
    """Count what is past ``cutoff``, by month, in one read that takes no row locks."""
    with engine.connect() as connection, connection.begin():
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {int(timeout_seconds) * 1000}")
        rows = connection.exec_driver_sql(_BY_MONTH, {"cutoff": cutoff}).all()
    return Plan(cutoff, [MonthCount(*row) for row in rows])
