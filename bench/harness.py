"""Start and stop the processes a benchmark needs: the stub provider and Celery workers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
CELERY = str(Path(sys.executable).with_name("celery"))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StubProcess:
    """The Notify stub in its own process, so it does not share the driver's interpreter."""

    def __init__(self, api_key: str, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log = (log_dir / "stub.log").open("wb")
        self.process = subprocess.Popen(
            [PYTHON, "-m", "providers.stub_server", "--port", str(self.port), "--api-key", api_key],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._answers, 20, "the stub provider")

    def _answers(self) -> bool:
        try:
            self.stats()
        except OSError:
            return False
        return True

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request to the stub's control API."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def stats(self) -> dict[str, Any]:
        return dict(self.call("GET", "/_stub/stats"))

    def configure(self, **config: Any) -> None:
        self.call("POST", "/_stub/config", config)

    def reset(self) -> None:
        self.call("POST", "/_stub/reset", {})

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=10)


def start_workers(
    app: str, env: dict[str, str], count: int, log_dir: Path, tag: str, queues: str = "dispatch"
) -> list[subprocess.Popen[bytes]]:
    """``count`` worker processes of ``app``, returned once every one is ready."""
    workers = []
    logs = []
    for n in range(count):
        log_path = log_dir / f"{tag}-{n}.log"
        logs.append(log_path)
        command = [
            CELERY,
            "-A",
            app,
            "worker",
            "-Q",
            queues,
            "-n",
            f"{tag}{n}@%h",
            "-l",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        workers.append(
            subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=log_path.open("wb"), stderr=subprocess.STDOUT
            )
        )
    wait_for(lambda: all(" ready." in p.read_text() for p in logs), 60, f"{count} workers")
    return workers


def stop_workers(workers: list[subprocess.Popen[bytes]]) -> None:
    """Warm shutdown, by PID; SIGKILL whatever is left after 20 s."""
    for worker in workers:
        worker.send_signal(signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()


def wait_for(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> float:
    """Poll until ``condition`` holds; returns the time it held, or raises naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.perf_counter()
        time.sleep(every)
    raise TimeoutError(f"{what}: not done after {timeout}s")
