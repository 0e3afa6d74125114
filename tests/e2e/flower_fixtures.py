"""``interactions flower`` as a real process on a free loopback port, and requests to it."""

from __future__ import annotations

import base64
import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.processes import BIN, LoggedProcess, free_port, wait_until
from tests.e2e.conftest import Pipeline

USER = "ops"
PASSWORD = "flower-e2e-5b0c1d9e7f"


class FlowerServer(LoggedProcess):
    """One ``interactions flower`` process with basic auth, stopped by PID."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [str(BIN / "interactions"), "flower", "--port", str(self.port)]
        super().__init__("flower", command, log_dir, env)
        wait_until(self._healthy, 30, "Flower to answer /healthcheck")

    def _healthy(self) -> bool:
        self.check_running()
        try:
            return self.get("/healthcheck", auth=None)[0] == 200
        except OSError:
            return False

    def get(self, path: str, auth: tuple[str, str] | None = (USER, PASSWORD)) -> tuple[int, bytes]:
        """One GET; returns the status and body."""
        headers = {}
        if auth is not None:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def json(self, path: str) -> Any:
        """GET ``path`` with credentials and decode its JSON."""
        status, body = self.get(path)
        assert status == 200, (path, status, body[:200])
        return json.loads(body)


@pytest.fixture
def flower_server(pipeline: Pipeline) -> Iterator[FlowerServer]:
    env = {**pipeline.env(), "INTERACTIONS_FLOWER_BASIC_AUTH": json.dumps([f"{USER}:{PASSWORD}"])}
    server = FlowerServer(env, pipeline.log_dir)
    yield server
    server.stop()
