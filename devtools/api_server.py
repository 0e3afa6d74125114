"""``gunicorn 'workers.api:create_app()'`` on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

from devtools.processes import GunicornServer
from workers.gunicorn_commands import api_command


class ApiServer(GunicornServer):
    """The HTTP API under gunicorn, as production serves it."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        super().__init__("api", api_command, env, log_dir)
