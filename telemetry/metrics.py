"""Prometheus metrics every process counts; one host's processes are added up at scrape time.

With ``PROMETHEUS_MULTIPROC_DIR`` set (workers and gunicorn on one host share it), each
process writes its counts to files there and the webhook app's ``/metrics`` adds them up.
Labels are channels, providers and outcomes: never an id, an address or anything a customer
wrote, so their number stays small and nothing personal reaches a dashboard.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable

from prometheus_client import Counter, Histogram, values

from config.settings import Settings
from models.enums import InteractionStatus


def count_across_processes(process_identity: Callable[[], str]) -> None:
    """With ``PROMETHEUS_MULTIPROC_DIR`` set, keep this process's counts in files of its own.

    Every metric has labels, so no value exists before the first count: installed by the
    composition root at start-up, this covers every value the process writes.
    """
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        values.ValueClass = values.MultiProcessValue(  # type: ignore[no-untyped-call]
            process_identifier=process_identity
        )


_BY_CHANNEL = ("channel", "provider")
CREATED = Counter("interactions_created", "Interactions recorded.", _BY_CHANNEL)
SENT = Counter("interactions_sent", "Interactions their provider accepted.", _BY_CHANNEL)
DELIVERED = Counter("interactions_delivered", "Interactions delivered.", _BY_CHANNEL)
OPENED = Counter("interactions_opened", "Interactions opened.", _BY_CHANNEL)
FAILED = Counter("interactions_failed", "Interaction attempts that ended FAILED.", _BY_CHANNEL)
PROVIDER_SECONDS = Histogram(
    "interactions_provider_request_seconds",
    "Time taken by each call to a provider.",
    ("provider", "operation"),
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
PROVIDER_ERRORS = Counter(
    "interactions_provider_errors",
    "Provider calls that failed, by kind: transient, permanent, ambiguous or unexpected.",
    ("provider", "operation", "kind"),
)
WEBHOOK_EVENTS = Counter(
    "interactions_webhook_events", "Provider callbacks received, by result.", ("provider", "result")
)
CALLBACKS_REJECTED = Counter(
    "interactions_callbacks_rejected",
    "Stored callbacks settled as rejected, never to be applied, by cause.",
    ("provider", "cause"),
)
CLAIMS_RECONCILED = Counter(
    "interactions_claims_reconciled",
    "Expired claims settled by reconciliation, by result.",
    ("result",),
)
ARCHIVED_ROWS = Counter(
    "interactions_archived_rows", "Rows the janitor moved to cold storage.", ("table",)
)
MAINTENANCE_RUNS = Counter(
    "interactions_maintenance_runs",
    "Maintenance task runs: ran, or skipped because another held its lock.",
    ("task", "result"),
)
PACED_SENDS = Counter(
    "interactions_paced_sends",
    "Sends that waited in their worker for a slot of the provider's shared pace.",
    ("provider",),
)
PACED_SECONDS = Counter(
    "interactions_paced_seconds",
    "Seconds worker threads slept waiting for their slot of the provider's pace.",
    ("provider",),
)
DEFERRED_SENDS = Counter(
    "interactions_deferred_sends",
    "Sends put back before their claim, by why: rate, slow_down, daily_limit, key_refused, outage.",
    ("provider", "hold"),
)
PROVIDER_PUSHBACK = Counter(
    "interactions_provider_pushback",
    "What a provider answered that holds every sender: slow_down for each 429 of its rate; "
    "daily_limit, key_refused and outage once each time one begins.",
    ("provider", "kind"),
)
BATCH_HELD = Counter(
    "interactions_batch_messages_held",
    "A batch's messages held before their claim: hold (paused, or scheduled) or drop (cancelled).",
    ("verdict",),
)

_STATUS_COUNTERS = {
    InteractionStatus.SENT: SENT,
    InteractionStatus.DELIVERED: DELIVERED,
    InteractionStatus.OPENED: OPENED,
    InteractionStatus.FAILED: FAILED,
}
# The statuses an interaction passes through on the way to each (OPENED implies DELIVERED).
_PASSES = {
    InteractionStatus.OPENED: (InteractionStatus.DELIVERED, InteractionStatus.OPENED),
}


def _label(value: object) -> str:
    return str(value.value if isinstance(value, enum.Enum) else value or "none")


def interaction_created(channel: object, provider: object) -> None:
    """Count one interaction row written for the first time."""
    CREATED.labels(_label(channel), _label(provider)).inc()


def attempt_claimed(channel: object, provider: object, attempt: int, failed: bool) -> None:
    """Count a claimed attempt: a new row on the first; FAILED at once when there is no address."""
    if attempt == 1:
        interaction_created(channel, provider)
    if failed:
        status_reached(InteractionStatus.FAILED, channel, provider)


def status_reached(status: InteractionStatus, channel: object, provider: object) -> None:
    """Count an interaction reaching ``status`` (SENT, DELIVERED, OPENED or FAILED)."""
    counter = _STATUS_COUNTERS.get(status)
    if counter is not None:
        counter.labels(_label(channel), _label(provider)).inc()


def gave_up(channel: str, settings: Settings) -> None:
    """Count an attempt FAILED once its retries ran out, under the configured provider."""
    providers = {"email": settings.email_provider, "sms": settings.sms_provider}
    status_reached(InteractionStatus.FAILED, channel, providers.get(str(channel), "log"))


def status_changed(
    previous: InteractionStatus | None,
    current: InteractionStatus | None,
    channel: object,
    provider: object,
) -> None:
    """Count a status event that moved an interaction on, with any status it implies."""
    if current is None or current == previous:
        return
    for status in _PASSES.get(current, (current,)):
        # SENT is counted where the provider accepted the message, whatever reports it later.
        if status is InteractionStatus.SENT or status == previous:
            continue
        status_reached(status, channel, provider)


def send_paced(provider: str, seconds: float) -> None:
    """Count a send that slept ``seconds`` for its slot."""
    PACED_SENDS.labels(provider).inc()
    PACED_SECONDS.labels(provider).inc(seconds)


def send_deferred(provider: str, hold: object) -> None:
    """Count a send put back before its claim."""
    DEFERRED_SENDS.labels(provider, _label(hold)).inc()


def provider_pushed_back(provider: str, kind: object) -> None:
    """Count a provider's answer that holds every sender."""
    PROVIDER_PUSHBACK.labels(provider, _label(kind)).inc()


def batch_message_held(verdict: object) -> None:
    """Count a batch's message parked (paused or not due) or dropped (cancelled)."""
    BATCH_HELD.labels(_label(verdict)).inc()


def webhook_event(provider: str, result: str) -> None:
    """Count one callback answered by the webhook app."""
    WEBHOOK_EVENTS.labels(provider, result).inc()


def callback_rejected(provider: str, cause: str) -> None:
    """Count one stored callback settled as rejected (a content error or a persistent fault)."""
    CALLBACKS_REJECTED.labels(_label(provider), cause).inc()


def claims_reconciled(**counts: int) -> None:
    """Count what one reconciliation pass did: ``confirmed_sent=3, released=1, ...``."""
    for result, count in counts.items():
        if count:
            CLAIMS_RECONCILED.labels(result).inc(count)


def archived_rows(count: int, table: str = "interactions") -> None:
    """Count rows the janitor moved to cold storage (call it once their chunk is committed)."""
    if count:
        ARCHIVED_ROWS.labels(table).inc(count)


def maintenance_run(task: str, ran: bool) -> None:
    """Count a maintenance run, or one skipped because another process held its lock."""
    MAINTENANCE_RUNS.labels(task, "ran" if ran else "skipped").inc()
