"""``interactions doctor`` on a whole stack's configuration: every failure named in a sentence."""

from __future__ import annotations

import json
import os
from pathlib import Path

import sqlalchemy as sa

from devtools.database import recreate_database
from devtools.stub.server import StubNotifyServer
from services.callbacks.signatures import token_sha256
from tests.conftest import PG_URL
from tests.integration.test_cli import run
from tests.stub_fixtures import TEMPLATES, TEST_API_KEY

BROKER = os.environ.get("INTERACTIONS_TEST_BROKER_URL", "redis://127.0.0.1:6379/13")


def _production(tmp_path: Path) -> dict[str, str]:
    """A complete production configuration on the test PostgreSQL and Redis."""
    base = sa.engine.make_url(PG_URL)
    url = base.set(database=f"{base.database}_doctor").render_as_string(hide_password=False)
    recreate_database(url)
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    return {
        "INTERACTIONS_ENVIRONMENT": "production",
        "INTERACTIONS_DATABASE_URL": url,
        "INTERACTIONS_BROKER_URL": BROKER,
        "INTERACTIONS_VAR_DIR": str(tmp_path / "var"),
        "INTERACTIONS_EMAIL_PROVIDER": "notify",
        "INTERACTIONS_SMS_PROVIDER": "notify",
        "INTERACTIONS_NOTIFY_API_KEY": TEST_API_KEY,
        "INTERACTIONS_NOTIFY_TEMPLATES": json.dumps(TEMPLATES),
        "INTERACTIONS_WEBHOOK_NOTIFY_TOKEN_SHA256": json.dumps([token_sha256("t" * 32)]),
        "INTERACTIONS_METRICS_TOKEN_SHA256": json.dumps([token_sha256("m" * 32)]),
        "INTERACTIONS_FLOWER_BASIC_AUTH": '["ops:a-long-flower-password"]',
        "INTERACTIONS_ENCRYPTION_KEYS": os.environ["INTERACTIONS_ENCRYPTION_KEYS"],
        "INTERACTIONS_ENCRYPTION_ACTIVE_KEY": os.environ["INTERACTIONS_ENCRYPTION_ACTIVE_KEY"],
        "INTERACTIONS_BLIND_INDEX_KEY": os.environ["INTERACTIONS_BLIND_INDEX_KEY"],
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        "INTERACTIONS_ARCHIVE_URL": str(tmp_path / "archive"),
        "INTERACTIONS_CONSOLE_SECRET_KEY": "c" * 40,
        "INTERACTIONS_CONSOLE_USERS": json.dumps(
            [{"username": "ops", "password_hash": "scrypt:x", "roles": ["viewer"]}]
        ),
        "INTERACTIONS_CONSOLE_ALLOW_LOCAL_USERS_IN_PRODUCTION": "true",
    }


def test_a_complete_stack_passes_every_check(tmp_path: Path) -> None:
    env = _production(tmp_path)
    run(env, "migrate")
    out = run(env, "doctor").stdout
    lines = out.splitlines()
    assert lines and all(line.startswith("[ok] ") for line in lines), out
    names = {line.split("]")[1].split(":")[0].strip() for line in lines}
    assert names >= {
        "database",
        "migrations",
        "broker",
        "email provider",
        "sms provider",
        "callback auth",
        "beat schedule",
        "archive storage",
        "metrics",
        "metrics directory",
        "flower",
        "console",
        "variable names",
    }


def test_each_missing_piece_fails_with_a_sentence(tmp_path: Path) -> None:
    env = _production(tmp_path)
    run(env, "migrate")
    occupied = tmp_path / "a-file"
    occupied.write_text("the archive cannot be a directory under a file")
    env.update(
        {
            "INTERACTIONS_EMAIL_PROVIDER": "log",
            "INTERACTIONS_NOTIFY_API_KEY": "",
            "INTERACTIONS_WEBHOOK_NOTIFY_TOKEN_SHA256": "[]",
            "INTERACTIONS_METRICS_TOKEN_SHA256": '["not-a-hash"]',
            "INTERACTIONS_FLOWER_BASIC_AUTH": '["ops:short"]',
            "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "missing"),
            "INTERACTIONS_ARCHIVE_URL": str(occupied / "archive"),
        }
    )
    result = run(env, "doctor", ok=False)
    fails = [line for line in result.stdout.splitlines() if line.startswith("[FAIL]")]
    assert fails == [
        "[FAIL] email provider: INTERACTIONS_EMAIL_PROVIDER is log: messages are logged, not sent.",
        "[FAIL] sms provider: INTERACTIONS_NOTIFY_API_KEY is not set, so Notify refuses.",
        "[FAIL] callback auth: INTERACTIONS_WEBHOOK_NOTIFY_TOKEN_SHA256 is empty: Notify's "
        "delivery receipts will be refused.",
        f"[FAIL] archive storage: {occupied / 'archive'} is not writable: NotADirectoryError.",
        "[FAIL] metrics: INTERACTIONS_METRICS_TOKEN_SHA256 holds a value that is not a hex "
        "SHA-256.",
        f"[FAIL] metrics directory: PROMETHEUS_MULTIPROC_DIR ({tmp_path / 'missing'}) is not a "
        "writable directory.",
        "[FAIL] flower: Flower credential 1 (ops) has a password under 12 characters.",
    ]
    assert "7 check(s) failed." in result.stderr
    assert "short" not in result.stdout


def test_a_notify_key_of_the_wrong_shape_is_named_without_being_repeated(tmp_path: Path) -> None:
    env = _production(tmp_path)
    env["INTERACTIONS_NOTIFY_API_KEY"] = "not-a-notify-key-but-a-secret-42"
    out = run(env, "doctor", ok=False).stdout
    assert "[FAIL] email provider: INTERACTIONS_NOTIFY_API_KEY is not a Notify API key" in out
    assert "secret-42" not in out


def test_broken_settings_are_named_not_a_traceback(tmp_path: Path) -> None:
    env = {
        "INTERACTIONS_VAR_DIR": str(tmp_path),
        "INTERACTIONS_CLAIM_LEASE_SECONDS": "soon",
        "INTERACTIONS_ENVIRONMENT": "production",
    }
    result = run(env, "doctor", ok=False)
    assert "[FAIL] settings: INTERACTIONS_CLAIM_LEASE_SECONDS: Input should be a valid integer" in (
        result.stdout
    )
    assert "Traceback" not in result.stdout + result.stderr


def test_a_misspelt_variable_fails_the_doctor_naming_the_closest(tmp_path: Path) -> None:
    env = {**_production(tmp_path), "INTERACTIONS_EMAIL_PROVIDR": "notify"}
    run(env, "migrate", ok=False)
    document = json.loads(run(env, "doctor", "--json", ok=False).stdout)
    assert document["ok"] is False
    assert document["checks"] == [
        {
            "name": "variable names",
            "status": "fail",
            "message": "INTERACTIONS_EMAIL_PROVIDR is not a setting and would be ignored; "
            "did you mean INTERACTIONS_EMAIL_PROVIDER?",
        }
    ]


def test_a_console_no_one_can_sign_in_to_fails_in_production(tmp_path: Path) -> None:
    env = _production(tmp_path)
    run(env, "migrate")
    env["INTERACTIONS_CONSOLE_USERS"] = "[]"
    document = json.loads(run(env, "doctor", "--json", ok=False).stdout)
    failed = [c for c in document["checks"] if c["status"] == "fail"]
    assert [c["name"] for c in failed] == ["console"]
    assert "no one could sign in" in failed[0]["message"]


def test_send_test_makes_one_round_trip_through_the_provider(
    tmp_path: Path, stub_notify: StubNotifyServer
) -> None:
    env = {**_production(tmp_path), "INTERACTIONS_NOTIFY_BASE_URL": stub_notify.url}
    run(env, "migrate")
    out = run(env, "doctor", "--send-test", "ops@example.org").stdout
    assert "[ok] test send (email): notify took it as " in out
