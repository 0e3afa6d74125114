"""Flower on a real worker and broker: authentication everywhere, ids shown, nothing personal."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from devtools.processes import BIN, wait_until
from tests.e2e.conftest import Pipeline
from tests.e2e.flower_fixtures import PASSWORD, USER, FlowerServer, flower_server  # noqa: F401

pytestmark = pytest.mark.e2e
CHROMIUM = Path("/usr/bin/chromium")
BATCH = 6


def _dispatch_tasks(flower: FlowerServer) -> dict[str, dict[str, object]]:
    tasks = flower.json("/api/tasks?taskname=tasks.dispatch")
    return {k: v for k, v in tasks.items() if v.get("name") == "tasks.dispatch"}


def _run_batch(pipeline: Pipeline, flower: FlowerServer) -> dict[str, dict[str, object]]:
    worker = pipeline.start_worker(concurrency=4)

    def listed(path: str) -> bool:
        return any(name.startswith(f"{worker.name}@") for name in flower.json(path))

    # Listed by asking the workers (inspect), and alive by their heartbeats (events).
    wait_until(lambda: listed("/api/workers?refresh=1"), 30, "Flower to list the worker", 0.5)
    wait_until(lambda: listed("/api/workers?status=1"), 30, "the worker's heartbeat", 0.5)
    pipeline.send_batch("flower", BATCH)
    wait_until(lambda: pipeline.statuses("flower")["sent"] == BATCH, 30, f"{BATCH} SENT")

    def all_succeeded() -> bool:
        tasks = _dispatch_tasks(flower)
        return len(tasks) == BATCH and {t["state"] for t in tasks.values()} == {"SUCCESS"}

    wait_until(all_succeeded, 30, "Flower to show every dispatch as SUCCESS", every=0.5)
    return _dispatch_tasks(flower)


def test_flower_lists_worker_and_tasks_with_ids_and_nothing_personal(
    pipeline: Pipeline,
    flower_server: FlowerServer,  # noqa: F811
) -> None:
    flower = flower_server
    tasks = _run_batch(pipeline, flower)
    keys = set()
    for task_id, task in tasks.items():
        shown = str(task["kwargs"])
        assert "'idempotency_key': 'flower:C-" in shown and "'batch_id': 'flower'" in shown
        keys.add(shown.split("'idempotency_key': '")[1].split("'", maxsplit=1)[0])
        detail = flower.get(f"/api/task/info/{task_id}")[1].decode()
        for text in (json.dumps(task), detail):
            assert "example.org" not in text, "a recipient address reached Flower"
            assert "Person " not in text, "the payload reached Flower"
    assert keys == {f"flower:C-{i}" for i in range(BATCH)}
    everything = flower.get("/api/tasks")[1].decode() + flower.get("/api/workers")[1].decode()
    assert "example.org" not in everything and "Person " not in everything


def test_flower_refuses_every_page_api_and_metrics_without_credentials(
    pipeline: Pipeline,
    flower_server: FlowerServer,  # noqa: F811
) -> None:
    flower = flower_server
    for path in ("/", "/tasks", "/api/workers", "/api/tasks", "/metrics"):
        assert flower.get(path, auth=None)[0] == 401, path
        assert flower.get(path, auth=(USER, "wrong-password-123"))[0] == 401, path
    status, body = flower.get("/metrics")
    assert status == 200 and b"flower_" in body
    # The orchestrator's probe stays open and says nothing more than OK.
    assert flower.get("/healthcheck", auth=None) == (200, b"OK")


def test_flower_will_not_start_without_credentials(pipeline: Pipeline) -> None:
    env = {k: v for k, v in pipeline.env().items() if k != "INTERACTIONS_FLOWER_BASIC_AUTH"}
    for value in (None, '["ops:short"]', '["no-colon-here-at-all"]'):
        if value is not None:
            env["INTERACTIONS_FLOWER_BASIC_AUTH"] = value
        result = subprocess.run(
            [str(BIN / "interactions"), "flower", "--port", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        assert "Flower" in result.stderr and "Traceback" not in result.stderr


def _chromium(url: str, *args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--window-size=1400,900",
            "--virtual-time-budget=5000",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="Debian's chromium is not installed (make test installs it, .ci/bootstrap)",
)
def test_flower_dashboard_in_headless_chromium(
    pipeline: Pipeline,
    flower_server: FlowerServer,  # noqa: F811
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    flower = flower_server
    _run_batch(pipeline, flower)
    artifacts = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts")) / request.node.name
    artifacts.mkdir(parents=True, exist_ok=True)
    signed_in = f"http://{USER}:{PASSWORD}@127.0.0.1:{flower.port}"
    for page, expected in (("/", "w1@"), ("/tasks", "flower:C-")):
        shot = artifacts / f"flower{page.replace('/', '_') or '_'}.png"
        taken = _chromium(signed_in + page, f"--screenshot={shot}", profile=tmp_path / "p1")
        assert shot.is_file() and shot.stat().st_size > 10_000, taken.stderr[-2000:]
        dom = _chromium(signed_in + page, "--dump-dom", profile=tmp_path / "p2").stdout
        assert expected in dom, f"{page} does not show {expected!r}"
        assert "example.org" not in dom and "Person " not in dom
    refused = _chromium(flower.url + "/tasks", "--dump-dom", profile=tmp_path / "p3").stdout
    assert "flower:C-" not in refused
