"""``interactions flower``: Flower on the configured broker, with authentication always required.

Flower 2 leaves ``/metrics`` open to anyone even when basic auth is on; here it answers only
with the same credentials as the dashboard. ``/healthcheck`` stays open for the orchestrator:
it says "OK" and nothing else. Flower is built on a bare Celery app (no task modules loaded):
it learns everything it shows from the workers' events.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from types import FrameType
from typing import Any

import click
import tornado.web
from celery import Celery

from config.celery import celery_config
from config.logging import configure_logging
from config.settings import Settings, get_settings

log = logging.getLogger(__name__)
# The tasks page shows each task's displayed arguments: ids only (see workers.app).
TASK_COLUMNS = "name,uuid,state,kwargs,received,runtime,worker,retries"
MIN_PASSWORD_CHARS = 12


def credential_problems(credentials: Sequence[str]) -> list[str]:
    """Why the configured basic-auth credentials cannot be used, one sentence each."""
    if not credentials:
        return [
            "Flower needs INTERACTIONS_FLOWER_BASIC_AUTH, a JSON list such as "
            "'[\"ops:a-long-random-password\"]'; it does not run without authentication."
        ]
    problems = []
    for number, credential in enumerate(credentials, 1):
        user, colon, password = credential.partition(":")
        if not colon or not user:
            problems.append(f"Flower credential {number} is not in the form user:password.")
        elif len(password) < MIN_PASSWORD_CHARS:
            problems.append(
                f"Flower credential {number} ({user}) has a password under "
                f"{MIN_PASSWORD_CHARS} characters."
            )
    return problems


def _authenticated_metrics() -> type[tornado.web.RequestHandler]:
    from flower.views.monitor import Metrics  # noqa: PLC0415 - Flower loads only for this command

    class AuthenticatedMetrics(Metrics):  # type: ignore[misc]
        """Flower's Prometheus metrics, behind the dashboard's authentication."""

        @tornado.web.authenticated
        async def get(self) -> None:
            await super().get()

    return AuthenticatedMetrics


def build_flower(settings: Settings, port: int, address: str) -> Any:
    """A Flower application on the configured broker; it listens once started."""
    from flower.app import Flower  # noqa: PLC0415 - Flower loads only for this command
    from flower.options import options  # noqa: PLC0415 - Flower loads only for this command
    from flower.urls import settings as flower_settings  # noqa: PLC0415 - Flower loads only for this command

    options.basic_auth = [secret.get_secret_value() for secret in settings.flower_basic_auth]
    options.port = port
    options.address = address
    options.max_tasks = settings.flower_max_tasks
    options.tasks_columns = TASK_COLUMNS
    celery = Celery("interactions", set_as_current=False)
    celery.config_from_object(celery_config(settings))
    flower = Flower(capp=celery, options=options, **flower_settings)
    # Rules added later are matched first, so this replaces Flower's open /metrics.
    flower.add_handlers(r".*", [(r"/metrics", _authenticated_metrics())])
    return flower


@click.command("flower")
@click.option("--port", type=int, default=None, help="Default: INTERACTIONS_FLOWER_PORT (5555).")
@click.option("--address", default=None, help="Default: INTERACTIONS_FLOWER_ADDRESS (127.0.0.1).")
def flower_command(port: int | None, address: str | None) -> None:
    """Run Flower on the configured broker, with basic auth from the environment."""
    settings = get_settings()
    problems = credential_problems([s.get_secret_value() for s in settings.flower_basic_auth])
    if problems:
        raise click.ClickException(" ".join(problems))
    if settings.resolved_broker_url.startswith("filesystem"):
        raise click.ClickException(
            "Flower needs a broker with events (Redis): set INTERACTIONS_BROKER_URL."
        )
    configure_logging(logging.INFO, settings.resolved_log_format)
    # Flower's access log names every request; Flower itself turns it off outside debug mode.
    logging.getLogger("tornado.access").disabled = True
    flower = build_flower(
        settings, port or settings.flower_port, address or settings.flower_address
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        flower.io_loop.add_callback(flower.stop)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    bound = flower.start_http_server()
    log.info(
        "Flower listening on http://%s:%s (basic auth required)",
        address or settings.flower_address,
        bound,
    )
    flower.start()
