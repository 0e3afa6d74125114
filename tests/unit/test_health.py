"""The container health checks of workers.health."""

from __future__ import annotations

import os
import time
from pathlib import Path

from workers.health import beat_ok, main


def test_beat_is_healthy_while_its_schedule_is_fresh(tmp_path: Path) -> None:
    schedule = tmp_path / "celerybeat-schedule"
    assert beat_ok(schedule, 600) == f"beat has written no schedule at {schedule}"
    (tmp_path / "celerybeat-schedule.dat").write_bytes(b"x")
    assert beat_ok(schedule, 600) is None
    old = time.time() - 900
    os.utime(tmp_path / "celerybeat-schedule.dat", (old, old))
    problem = beat_ok(schedule, 600)
    assert problem is not None and problem.startswith("beat's schedule was last saved 9")
    assert main(["beat", str(schedule)]) == 1


def test_http_check_fails_on_a_closed_port() -> None:
    assert main(["http", "http://127.0.0.1:9/healthz"]) == 1
