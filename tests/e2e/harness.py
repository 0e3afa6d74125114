"""Real ``celery worker`` processes for end-to-end tests, started and killed by PID."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from workers.processes import console_command, webhooks_command, worker_command

ROOT = Path(__file__).resolve().parents[2]


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGTERM, and SIGKILL if the process is still there after 20 seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class Worker:
    """One ``celery -A workers.app worker`` process with its own log file."""

    def __init__(
        self, env: dict[str, str], name: str, log_dir: Path, concurrency: int = 16
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        command = worker_command(name, concurrency=concurrency)
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until the worker says it is ready to consume."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log_path.read_text():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout}s")

    def kill(self) -> None:
        """SIGKILL the worker's main process: no warm shutdown, no acknowledgements."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        """Warm shutdown, then SIGKILL if it does not go."""
        stop_process(self.process)
        self._log.close()


class GunicornServer:
    """One of the service's WSGI apps under gunicorn on a free loopback port."""

    def __init__(
        self, name: str, command: Callable[[str], list[str]], env: dict[str, str], log_dir: Path
    ) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.name = name
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            command(f"127.0.0.1:{self.port}"),
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self._answers, 30, f"the {name} app to answer")

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
        try:
            return self.post("/healthz", b"", {}, method="GET")[0] == 200
        except OSError:
            return False

    def post(
        self, path: str, body: bytes, headers: dict[str, str], method: str = "POST"
    ) -> tuple[int, bytes]:
        """One request; returns the status and body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def stop(self) -> None:
        """Graceful stop, then SIGKILL."""
        stop_process(self.process)
        self._log.close()


class WebhookServer(GunicornServer):
    """``gunicorn 'workers.webhooks:create_app()'`` on a free loopback port."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        super().__init__("webhooks", webhooks_command, env, log_dir)


class ConsoleServer(GunicornServer):
    """``gunicorn 'workers.console:create_app()'`` on a free loopback port."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        super().__init__("console", console_command, env, log_dir)


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, every: float = 0.1
) -> None:
    """Poll ``condition`` until it holds, or fail saying ``what`` did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
