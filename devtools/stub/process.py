"""The stub provider in a process of its own, driven over its control API."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path
from typing import Any

from devtools.processes import LoggedProcess, free_port, wait_until


class StubProcess(LoggedProcess):
    """The Notify stub in its own process, so it does not share the driver's interpreter."""

    def __init__(self, api_key: str, log_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "devtools.stub", "--port", str(self.port)]
        super().__init__("stub", [*command, "--api-key", api_key], log_dir)
        wait_until(self._answers, 20, "the stub provider")

    def _answers(self) -> bool:
        try:
            self.stats()
        except OSError:
            return False
        return True

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """One request to the stub's control API."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - a loopback http URL built above
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - as above
            return json.loads(response.read() or b"null")

    def stats(self) -> dict[str, Any]:
        """Totals, duplicates and receipts per reference."""
        return dict(self.call("GET", "/_stub/stats"))

    def configure(self, **config: Any) -> None:
        """Change how the stub behaves."""
        self.call("POST", "/_stub/config", config)

    def reset(self) -> None:
        """Forget every notification and count."""
        self.call("POST", "/_stub/reset", {})

    def reset_daily_limit(self) -> None:
        """Start the daily cap's period again: nothing sent today."""
        self.call("POST", "/_stub/reset-daily-limit", {})
