"""The ``interactions`` command line, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from devtools.database import recreate_database
from tests.conftest import PG_URL

CLI = [sys.executable, "-m", "workers"]


def run(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
    result = subprocess.run(
        [*CLI, *args], env={**clean, **env}, capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode == 0) is ok, result.stdout + result.stderr
    return result


@pytest.fixture(params=["sqlite", "postgresql"])
def cli_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    env = {"INTERACTIONS_VAR_DIR": str(tmp_path / "var")}
    if request.param == "postgresql":
        base = sa.engine.make_url(PG_URL)
        url = base.set(database=f"{base.database}_cli")
        rendered = url.render_as_string(hide_password=False)
        recreate_database(rendered)
        env["INTERACTIONS_DATABASE_URL"] = rendered
        env["INTERACTIONS_BROKER_URL"] = os.environ.get(
            "INTERACTIONS_TEST_BROKER_URL", "redis://127.0.0.1:6379/13"
        )
    return env


def test_migrate_dispatch_note_and_timeline(cli_env: dict[str, str]) -> None:
    migrated = run(cli_env, "migrate").stdout
    assert "newest revision" in migrated and "contacts.email_hash: 0 indexed" in migrated
    run(cli_env, "contact", "C-42", "--email", "ada@example.org")
    assert "contacts.email_hash: 0 indexed" in run(cli_env, "keys", "reindex").stdout
    first = run(
        cli_env,
        "dispatch",
        "--customer",
        "C-42",
        "--channel",
        "email",
        "--template",
        "welcome",
        "--key",
        "cli-1",
        "--payload",
        '{"name": "Ada"}',
    )
    assert first.stdout.strip() == "sent: cli-1 is sent"
    again = run(
        cli_env,
        "dispatch",
        "--customer",
        "C-42",
        "--channel",
        "email",
        "--template",
        "welcome",
        "--key",
        "cli-1",
    )
    assert again.stdout.strip() == "already_sent: cli-1 is sent"
    run(cli_env, "note", "C-42", "Called about the renewal.", "--author", "j.doe")
    table = run(cli_env, "timeline", "C-42").stdout.splitlines()
    assert table[0].split() == [
        "created",
        "(UTC)",
        "channel",
        "status",
        "template",
        "key",
        "tries",
        "detail",
    ]
    assert "phone" in table[2] and "j.doe: Called about the renewal." in table[2]
    assert "email" in table[3] and "cli-1" in table[3] and "a***@example.org" in table[3]
    assert "ada@example.org" not in "\n".join(table)
    doctor = run(cli_env, "doctor").stdout
    assert "[ok] database" in doctor and "[ok] migrations" in doctor and "[ok] broker" in doctor


def test_bad_input_gets_a_clear_message(cli_env: dict[str, str]) -> None:
    run(cli_env, "migrate")
    bad_payload = run(
        cli_env,
        "dispatch",
        "--customer",
        "C-1",
        "--channel",
        "email",
        "--template",
        "t",
        "--key",
        "k",
        "--payload",
        "{oops",
        ok=False,
    )
    assert "--payload is not JSON" in bad_payload.stderr
    bad_channel = run(
        cli_env,
        "dispatch",
        "--customer",
        "C-1",
        "--channel",
        "fax",
        "--template",
        "t",
        "--key",
        "k",
        ok=False,
    )
    assert "'fax' is not one of" in bad_channel.stderr
    bad_customer = run(cli_env, "timeline", "C 1; --", ok=False)
    assert "customer_id: may hold only" in bad_customer.stderr


def test_doctor_names_each_failure(tmp_path: Path) -> None:
    env = {
        "INTERACTIONS_DATABASE_URL": "postgresql+psycopg2://postgres:secret@127.0.0.1:1/none",
        "INTERACTIONS_BROKER_URL": "redis://127.0.0.1:1/0",
        "INTERACTIONS_VAR_DIR": str(tmp_path),
    }
    out = run(env, "doctor", ok=False).stdout
    assert (
        "[FAIL] database: postgresql+psycopg2://postgres:***@127.0.0.1:1/none does not answer"
        in out
    )
    assert "[FAIL] broker: redis://127.0.0.1:1/0 does not answer" in out
    assert ":secret@" not in out


def test_doctor_says_when_migrations_are_behind(tmp_path: Path) -> None:
    env = {"INTERACTIONS_VAR_DIR": str(tmp_path)}
    out = run(env, "doctor", ok=False).stdout
    assert "[FAIL] migrations: at nothing, head is" in out
    assert "run `interactions migrate`" in out
