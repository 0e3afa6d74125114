"""Exposing metrics: the ``/metrics`` blueprint, behind its token; ``interactions metrics``.

A scrape adds up every process of this host that writes to ``PROMETHEUS_MULTIPROC_DIR``
(workers, gunicorn workers) and asks the broker how deep each queue is at that moment.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import click
import redis
from flask import Blueprint, Response, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    write_to_textfile,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from config.celery import QUEUES
from config.settings import Settings, get_settings
from services.callbacks.signatures import Unauthenticated
from services.container import Container
from services.sending.parking import parked_for
from telemetry import metrics
from workers.webapp import services

log = logging.getLogger(__name__)
# What each answer of the webhook app means for a callback, as the metric's "result" label.
WEBHOOK_RESULTS = {
    202: "accepted",
    200: "repeat",
    400: "malformed",
    401: "unauthenticated",
    413: "too_large",
    503: "unavailable",
}
CALLBACK_PREFIX = "/callbacks/"


class QueueDepthCollector(Collector):
    """Messages waiting in each Celery queue, and those fetched but not yet acknowledged."""

    def __init__(self, broker_url: str, queues: tuple[str, ...] = QUEUES) -> None:
        self._broker_url = broker_url
        self._queues = queues

    def collect(self) -> Iterator[Metric]:
        """Ask Redis now; a broker that does not answer is reported as down, not as an error."""
        up = GaugeMetricFamily("interactions_broker_up", "Whether the broker answered the scrape.")
        if not self._broker_url.startswith(("redis://", "rediss://")):
            return  # the filesystem transport of the embedded default has no queues to ask
        depth = GaugeMetricFamily(
            "interactions_queue_depth", "Messages waiting in each queue.", labels=["queue"]
        )
        unacked = GaugeMetricFamily(
            "interactions_queue_unacked", "Messages fetched by workers and not yet acknowledged."
        )
        try:
            client = redis.Redis.from_url(
                self._broker_url, socket_timeout=2, socket_connect_timeout=2
            )
            with client, client.pipeline(transaction=False) as pipe:
                for queue in self._queues:
                    pipe.llen(queue)
                pipe.hlen("unacked")
                *lengths, held = pipe.execute()
        except redis.RedisError as exc:
            log.warning("queue depth unavailable: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        for queue, length in zip(self._queues, lengths, strict=True):
            depth.add_metric([queue], length)
        unacked.add_metric([], held)
        up.add_metric([], 1)
        yield from (depth, unacked, up)


class PaceCollector(Collector):
    """Each provider's shared pace at scrape time: held or sending, and what waits parked."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def collect(self) -> Iterator[Metric]:
        """Read every paced provider's state from Redis; nothing when it cannot be read."""
        sending = GaugeMetricFamily(
            "interactions_provider_sending",
            "1 while nothing holds the provider's sends, 0 while a limit, key or outage does.",
            labels=["provider"],
        )
        breaker = GaugeMetricFamily(
            "interactions_provider_breaker_open",
            "1 while the provider's breaker is open, by why: key_refused or outage.",
            labels=["provider", "kind"],
        )
        paused = GaugeMetricFamily(
            "interactions_provider_paused_until_seconds",
            "When a channel paused by the provider's daily limit resumes (Unix time).",
            labels=["provider", "channel"],
        )
        parked = GaugeMetricFamily(
            "interactions_provider_parked",
            "Messages parked until the provider takes them again.",
            labels=["provider"],
        )
        try:
            self._fill(sending, breaker, paused, parked)
        except (redis.RedisError, ValueError) as exc:
            log.warning("provider pace unavailable: %s", type(exc).__name__)
            return
        yield from (sending, breaker, paused, parked)

    def _fill(self, *families: GaugeMetricFamily) -> None:
        sending, breaker, paused, parked = families
        here = Container(self._settings)
        lots = here.parking
        for provider in here.providers.all():
            credential = provider.credential
            if credential is None:
                continue
            state = here.pacer.state(credential)
            sending.add_metric([provider.name], 1 if state.sending else 0)
            if state.breaker is not None:
                breaker.add_metric([provider.name, state.breaker.value], 1)
            for channel, until in state.paused_until.items():
                paused.add_metric([provider.name, channel], until.timestamp())
            waiting = parked_for(lots, credential)
            parked.add_metric([provider.name], waiting)


def registry(settings: Settings) -> CollectorRegistry:
    """Everything one scrape reports: this host's processes, and the broker's queues."""
    if settings.prometheus_multiproc_dir is not None:
        combined = CollectorRegistry()
        MultiProcessCollector(  # type: ignore[no-untyped-call]
            combined, path=str(settings.prometheus_multiproc_dir)
        )
    else:
        combined = CollectorRegistry()
        combined.register(_Default())
    combined.register(QueueDepthCollector(settings.resolved_broker_url))
    combined.register(PaceCollector(settings))
    return combined


class _Default(Collector):
    """This process's own registry, when there is no multiprocess directory to add up."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def render(settings: Settings) -> bytes:
    """The metrics in Prometheus' text format."""
    return generate_latest(registry(settings))


metrics_endpoint = Blueprint("metrics", __name__)


@metrics_endpoint.get("/metrics")
def scrape() -> Response:
    """This host's metrics, for a caller with the metrics token."""
    here = services()
    try:
        here.metrics_verifier.verify(request.headers.get("Authorization"))
    except Unauthenticated as exc:
        log.warning("metrics scrape refused: %s", exc)
        return Response("unauthenticated\n", 401, {"WWW-Authenticate": "Bearer"})
    return Response(render(here.settings), 200, {"Content-Type": CONTENT_TYPE_LATEST})


@metrics_endpoint.after_app_request
def count_callback(response: Response) -> Response:
    """Count each callback by provider and by what it was answered."""
    if request.path.startswith(CALLBACK_PREFIX):
        provider = request.path.removeprefix(CALLBACK_PREFIX).strip("/") or "none"
        if request.url_rule is None:
            provider = "unknown"  # a 404: keep labels to the routes that exist
        code = response.status_code
        metrics.webhook_event(provider, WEBHOOK_RESULTS.get(code, f"http_{code}"))
    return response


@click.command("metrics")
@click.option(
    "--textfile",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file atomically (for node_exporter's textfile collector).",
)
def metrics_command(textfile: Path | None) -> None:
    """Print this host's metrics in Prometheus' text format, or write them to a file."""
    settings = get_settings()
    if textfile is None:
        click.echo(render(settings).decode(), nl=False)
        return
    write_to_textfile(str(textfile), registry(settings))
    click.echo(f"metrics written to {textfile}")
