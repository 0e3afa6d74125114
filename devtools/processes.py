"""Start the service's processes with their log files, wait until they answer, and stop them."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from workers.gunicorn_commands import console_command, webhooks_command

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
ALL_QUEUES = "dispatch,status,maintenance"
LOG_TAIL = 2000


def worker_command(
    name: str,
    app: str = "workers.app",
    queues: str = ALL_QUEUES,
    concurrency: int | None = None,
    loglevel: str = "INFO",
    heartbeat: bool = True,
) -> list[str]:
    """``celery worker`` for ``app`` named ``name``, without gossip and mingle chatter."""
    command = [str(BIN / "celery"), "-A", app, "worker", "-Q", queues, "-n", f"{name}@%h"]
    if concurrency is not None:
        command += ["-c", str(concurrency)]
    command += ["-l", loglevel, "--without-gossip", "--without-mingle"]
    return command if heartbeat else [*command, "--without-heartbeat"]


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def poll(condition: Callable[[], bool], timeout: float, every: float = 0.2) -> bool:
    """Whether ``condition`` came to hold within ``timeout`` seconds, asked every ``every``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, every: float = 0.1
) -> float:
    """Poll until ``condition`` holds and return when it did, or fail saying ``what`` did not."""
    if not poll(condition, timeout, every):
        raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
    return time.perf_counter()


def stop_process(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGTERM, and SIGKILL if the process is still there after 20 seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class LoggedProcess:
    """One child process whose output goes to ``{log_dir}/{name}.log``; stopped by its PID."""

    def __init__(
        self,
        name: str,
        command: list[str],
        log_dir: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = ROOT,
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(  # noqa: S603 - our own commands, argv built by us
            command, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    def log_text(self) -> str:
        """Everything the process has written so far."""
        return self.log_path.read_text(errors="replace")

    def check_running(self) -> None:
        """Raise with the end of the log if the process has exited."""
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.name} exited: {self.log_text()[-LOG_TAIL:]}")

    def kill(self) -> None:
        """SIGKILL the process: no warm shutdown, no acknowledgements."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def terminate(self) -> None:
        """Ask the process to stop (SIGTERM), without waiting for it."""
        self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """Graceful stop, then SIGKILL if it does not go."""
        stop_process(self.process)
        self._log.close()


class Worker(LoggedProcess):
    """One ``celery worker`` process with its own log file."""

    def __init__(
        self,
        env: dict[str, str],
        name: str,
        log_dir: Path,
        concurrency: int | None = 16,
        app: str = "workers.app",
        queues: str = ALL_QUEUES,
        heartbeat: bool = True,
        cwd: Path | None = ROOT,
    ) -> None:
        command = worker_command(name, app, queues, concurrency, heartbeat=heartbeat)
        super().__init__(name, command, log_dir, env, cwd)

    def ready(self) -> bool:
        """Whether the worker says it is ready to consume (raises if it exited before)."""
        if " ready." in self.log_text():
            return True
        self.check_running()
        return False

    def wait_ready(self, timeout: float = 30) -> None:
        """Block until the worker says it is ready to consume."""
        wait_until(self.ready, timeout, f"{self.name} to be ready")


def start_workers(
    app: str, env: dict[str, str], count: int, log_dir: Path, tag: str, queues: str = "dispatch"
) -> list[Worker]:
    """``count`` worker processes of ``app``, without heartbeats, returned once all are ready."""
    workers = [
        Worker(env, f"{tag}-{n}", log_dir, None, app, queues, heartbeat=False) for n in range(count)
    ]
    wait_until(lambda: all(w.ready() for w in workers), 60, f"{count} workers")
    return workers


def stop_workers(workers: list[Worker]) -> None:
    """Warm shutdown of all at once; SIGKILL whatever is left after 20 s."""
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.stop()


class GunicornServer(LoggedProcess):
    """One of the service's WSGI apps under gunicorn on a free loopback port."""

    def __init__(
        self, name: str, command: Callable[[str], list[str]], env: dict[str, str], log_dir: Path
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(name, command(f"127.0.0.1:{self.port}"), log_dir, env)
        wait_until(self._answers, 30, f"the {name} app to answer")

    def _answers(self) -> bool:
        self.check_running()
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


class WebhookServer(GunicornServer):
    """``gunicorn 'workers.webhooks:create_app()'`` on a free loopback port."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        super().__init__("webhooks", webhooks_command, env, log_dir)


class ConsoleServer(GunicornServer):
    """``gunicorn 'workers.console:create_app()'`` on a free loopback port."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        super().__init__("console", console_command, env, log_dir)
