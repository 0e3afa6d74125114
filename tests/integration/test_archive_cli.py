"""``interactions archive ...`` run as an operator runs it, on PostgreSQL and a local directory."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from config.settings import Settings
from devtools.database import recreate_database
from devtools.tcp_proxy import TcpProxy
from models.migrate import upgrade
from models.session import build_engine
from tests.archive_fixtures import seed
from tests.conftest import PG_URL


@pytest.fixture
def cli_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    base = sa.engine.make_url(PG_URL)
    url = base.set(database=f"{base.database}_archive_cli").render_as_string(hide_password=False)
    recreate_database(url)
    engine = build_engine(url, Settings(environment="test", database_url=url))
    upgrade(engine)
    start = datetime(2023, 11, 20, tzinfo=UTC)
    for day in range(0, 90, 3):
        seed(engine, start + timedelta(days=day), customer_id=f"C-{day % 2}")
    engine.dispose()
    yield {
        "INTERACTIONS_DATABASE_URL": url,
        "INTERACTIONS_VAR_DIR": str(tmp_path / "var"),
        "INTERACTIONS_ARCHIVE_CHUNK_ROWS": "10",
    }


def run(env: dict[str, str], *args: str, ok: bool = True) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
    result = subprocess.run(
        [sys.executable, "-m", "workers", "archive", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode == 0) is ok, result.stdout + result.stderr
    return result.stdout


def test_an_operator_archives_checks_holds_and_restores(cli_env: dict[str, str]) -> None:
    dry = run(cli_env, "run", "--dry-run", "--before", "2024-01-15")
    assert dry.splitlines()[0] == (
        "cutoff 2024-01-15 00:00:00 UTC: 19 interactions to archive, 0 pending kept in the database"
    )
    assert ["2023-12", "10", "0"] in [line.split() for line in dry.splitlines()]
    assert "dry run: nothing moved" in dry

    done = run(cli_env, "run", "--before", "2024-01-15")
    assert "archived 19 interactions and 38 events into" in done

    listing = run(cli_env, "list")
    assert listing.splitlines()[0].split() == [
        "month",
        "state",
        "rows",
        "events",
        "size",
        "ids",
        "key",
    ]
    assert listing.splitlines()[-1].endswith("19 interactions archived")

    verified = run(cli_env, "verify")
    assert verified.splitlines()[-1].endswith(": 4 ok, 0 failed")

    placed = run(cli_env, "hold", "add", "--customer", "C-1", "--by", "j.doe", "--reason", "FOI 7")
    assert placed.strip() == "placed legal hold #1 on customer C-1 by j.doe: FOI 7"
    purge = run(cli_env, "purge", "--dry-run")
    assert "0 files would purge, 0 kept by legal holds" in purge
    assert "rows): eligible on 2033-01-01" in purge
    assert "past the retention: 24 months hot + 7 years cold" in purge
    assert "0 staff disclosures would purge" in purge

    restored = run(cli_env, "restore", "--month", "2023-12")
    assert restored.startswith("restored 2 files of 2023-12: 10 interactions, 20 events")
    again = run(cli_env, "restore", "--month", "2023-12")
    assert "restored 0 files" in again and "2 files restored before" in again


def test_a_run_that_loses_its_database_says_so_in_one_line(cli_env: dict[str, str]) -> None:
    url = sa.engine.make_url(cli_env["INTERACTIONS_DATABASE_URL"])
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        proxy.cut()
        through = url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
        result = subprocess.run(
            [sys.executable, "-m", "workers", "archive", "run"],
            env={**clean, **cli_env, "INTERACTIONS_DATABASE_URL": through},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        proxy.stop()
    said = result.stdout + result.stderr
    assert result.returncode == 1
    assert "the database went away" in said and "run the command again" in said
    assert "Traceback" not in said and len(said.strip().splitlines()) == 1, said
