"""The janitor SIGKILLed at each step of the move protocol, then run again: nothing lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.archive import ArchiveState
from services.archive.jobs.audit import verify_archive
from services.archive.jobs.janitor import STEPS, Janitor
from services.archive.jobs.lock import archive_lock
from tests.archive_fixtures import (
    ArchiveWorld,
    archive_contents,
    build_world,
    clean,
    event_ids,
    moto_endpoint_fixture,  # noqa: F401 - a fixture
    seed,
    stored_rows,
)

ROOT = Path(__file__).resolve().parents[2]
CUTOFF = datetime(2024, 3, 1, tzinfo=UTC)


def recorded_ids(world: ArchiveWorld) -> set[int]:
    """Ids in files recorded ARCHIVED: the rows the archive vouches for."""
    with world.engine.connect() as connection:
        keys = set(
            connection.execute(
                sa.text("SELECT object_key FROM archive_manifests WHERE state = :s"),
                {"s": ArchiveState.ARCHIVED.value},
            ).scalars()
        )
    return {
        line["interaction"]["id"]
        for key, rows in archive_contents(world.store).items()
        if key in keys
        for line in rows
    }


def kill_at(world: ArchiveWorld, step: str, occurrence: int) -> None:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.e2e.archive_crash_child",
            step,
            str(occurrence),
            CUTOFF.isoformat(),
        ],
        cwd=ROOT,
        env={**clean_env, **world.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.strip() == f"AT {step}", line + (child.stderr.read() if child.stderr else "")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


@pytest.mark.parametrize("kind", ["local", "s3"])
@pytest.mark.parametrize("step", STEPS)
def test_a_killed_janitor_loses_and_doubles_nothing(
    step: str, kind: str, e2e_engine: Engine, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    world = build_world(e2e_engine, kind, tmp_path, request, chunk_rows=20)
    expired = [
        seed(world.engine, CUTOFF - timedelta(days=75 - d, hours=d % 5), customer_id=f"C-{d % 6}")
        for d in range(0, 72)
    ]
    kept = seed(world.engine, CUTOFF + timedelta(hours=1))
    everything = set(stored_rows(world.engine))
    events = event_ids(world.engine)

    kill_at(world, step, occurrence=2)
    in_db = set(stored_rows(world.engine))
    assert in_db | recorded_ids(world) == everything
    assert not in_db & recorded_ids(world)

    unrecorded = verify_archive(world.engine, world.store).unrecorded
    left = [k for k in unrecorded if k.endswith(".jsonl.zst")]
    if step in ("written", "verified", "deleted"):
        assert left  # the killed window's own files at least

    with archive_lock(world.engine):
        report = Janitor(world.engine, world.store, world.settings).run(CUTOFF)
    assert not report.blocked
    # The re-run cut the same windows, so it found every file the killed run had written.
    assert report.files_reused == len(left)

    in_db = set(stored_rows(world.engine))
    contents = archive_contents(world.store)
    archived = [line["interaction"]["id"] for rows in contents.values() for line in rows]
    archived_events = {
        e["id"] for rows in contents.values() for line in rows for e in line["events"]
    }
    assert in_db == {kept}
    assert sorted(archived) == sorted(expired)  # each exactly once
    assert len(in_db) + len(archived) == len(everything)
    assert event_ids(world.engine) | archived_events == events
    assert not event_ids(world.engine) & archived_events
    audit = verify_archive(world.engine, world.store)
    assert audit.ok and audit.checked == len(contents) and audit.unrecorded == []
    clean(world.engine)
