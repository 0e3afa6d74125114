"""Scripts can trust the command line: exit codes, ``--json`` documents, values from stdin."""

from __future__ import annotations

import getpass
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_cli import CLI


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The embedded SQLite and filesystem broker, migrated."""
    environment = {"INTERACTIONS_VAR_DIR": str(tmp_path / "var")}
    assert cli(environment, "migrate").returncode == 0
    return environment


def cli(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("INTERACTIONS_")}
    return subprocess.run(
        [*CLI, *args],
        env={**clean, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def document(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def _dispatch(env: dict[str, str], key: str, address: str) -> subprocess.CompletedProcess[str]:
    return cli(
        env, "dispatch", "--customer", "101", "--channel", "email", "--template", "welcome",
        "--key", key, "--recipient", "-", "--json", stdin=address + "\n",
    )  # fmt: skip


def test_dispatch_exits_1_when_the_message_failed_and_reads_the_address_from_stdin(
    env: dict[str, str],
) -> None:
    sent = _dispatch(env, "k-1", "ada@example.org")
    assert sent.returncode == 0, sent.stderr
    assert document(sent)["outcome"] == "sent"
    assert document(sent)["interaction"]["recipient"] == "a***@example.org"
    failed = _dispatch(env, "k-2", "not an address")
    assert failed.returncode == 1
    assert document(failed)["interaction"]["status"] == "failed"
    assert cli(env, "dispatch", "--customer", "101").returncode == 2


def test_timeline_and_sent_to_print_json(env: dict[str, str]) -> None:
    _dispatch(env, "k-1", "ada@example.org")
    page = document(cli(env, "timeline", "101", "--json"))
    assert [item["idempotency_key"] for item in page["items"]] == ["k-1"]
    assert page["next_cursor"] is None
    found = cli(env, "sent-to", "--json", stdin="ada@example.org\n")
    assert found.returncode == 0, found.stderr
    assert [item["customer_id"] for item in document(found)["items"]] == ["101"]


def test_send_batch_from_stdin_exits_1_with_rejected_rows_and_batch_status_prints_json(
    env: dict[str, str],
) -> None:
    rows = "customer_id,recipient\nC-1,one@example.org\nC 2!,two@example.org\n"
    sent = cli(env, "send-batch", "--batch-id", "b1", "--channel", "email", "--template",
               "welcome", "-", stdin=rows)  # fmt: skip
    assert sent.returncode == 1, sent.stdout + sent.stderr
    assert "1 enqueued" in sent.stdout and "1 rejected" in sent.stdout
    status = cli(env, "batch-status", "b1", "--json")
    assert status.returncode == 0, status.stderr
    assert document(status)["batch_id"] == "b1" and document(status)["rejected"] == 1
    assert document(status)["started_by"] == getpass.getuser()  # who ran it, by default
    again = cli(env, "send-batch", "--batch-id", "b1", "--channel", "email", "--template",
                "welcome", "--by", "ops.lee", "-", stdin=rows)  # fmt: skip
    assert again.returncode == 1, again.stdout + again.stderr
    shown = cli(env, "batch-status", "b1")
    assert f"started by {getpass.getuser()}, 2 run(s)" in shown.stdout
    assert "run_again by ops.lee" in shown.stdout
    missing = cli(env, "batch-status", "nope", "--json")
    assert missing.returncode == 1 and "no batch 'nope'" in missing.stderr


def test_archive_list_and_keys_status_print_json(env: dict[str, str]) -> None:
    assert document(cli(env, "archive", "list", "--json")) == {"files": []}
    keys = cli(env, "keys", "status", "--json")
    assert keys.returncode == 0, keys.stderr
    assert keys.stderr.count("development key") <= 1
    assert document(keys)["keys"][0]["in_ring"] is True
