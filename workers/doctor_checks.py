"""The doctor's checks of configuration: providers, secrets, beat, archive, metrics, Flower."""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

import redis

from config.celery import QUEUES, ROUTES, celery_config
from config.settings import Settings
from models.crypto import load_keyring
from providers.notify import ApiKey
from services.archive.stores.factory import open_store
from services.callbacks.signatures import decode_secret
from services.container import Container, container
from services.sending.pacing import describe
from workers.flower import credential_problems

_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Check:
    """One check and what it found; a warning is worth reading but does not fail the doctor."""

    name: str
    ok: bool
    message: str
    warning: bool = False

    @property
    def label(self) -> str:
        """``ok``, ``warn`` or ``FAIL``, as the doctor prints it."""
        if not self.ok:
            return "FAIL"
        return "warn" if self.warning else "ok"


def missing(settings: Settings, name: str, message: str) -> Check:
    """Fails in production, warns elsewhere: development runs without some secrets."""
    production = settings.environment == "production"
    return Check(name, not production, message, warning=not production)


def _notify_key_problem(settings: Settings) -> str | None:
    key = settings.notify_api_key.get_secret_value() if settings.notify_api_key else ""
    if not key:
        return "INTERACTIONS_NOTIFY_API_KEY is not set, so Notify refuses."
    try:
        ApiKey.parse(key)
    except ValueError as exc:  # its message describes the format, never the key
        return f"INTERACTIONS_NOTIFY_API_KEY is not a Notify API key: {exc}"
    return None


def check_providers(settings: Settings) -> list[Check]:
    """Whether each configured provider has what it needs to send."""
    checks = []
    for channel, name in (("email", settings.email_provider), ("sms", settings.sms_provider)):
        check = f"{channel} provider"
        variable = f"INTERACTIONS_{channel.upper()}_PROVIDER"
        if name == "log":
            checks.append(
                missing(settings, check, f"{variable} is log: messages are logged, not sent.")
            )
        elif name == "notify" and (problem := _notify_key_problem(settings)):
            checks.append(Check(check, False, problem))
        elif name == "notify" and not settings.notify_templates:
            checks.append(
                Check(
                    check,
                    False,
                    "INTERACTIONS_NOTIFY_TEMPLATES maps no template key to a Notify template id.",
                )
            )
        elif name == "smtp" and settings.smtp_username and settings.smtp_password is None:
            checks.append(
                Check(check, False, "INTERACTIONS_SMTP_USERNAME is set without its password.")
            )
        else:
            checks.append(Check(check, True, f"{name}, credentials present"))
    return checks


def check_webhook_secrets(settings: Settings) -> list[Check]:
    """Whether provider callbacks can be authenticated: token hashes and signing secrets."""
    bad_hashes = [h for h in settings.webhook_notify_token_sha256 if not _SHA256_HEX.match(h)]
    if bad_hashes:
        return [
            Check(
                "callback auth",
                False,
                "INTERACTIONS_WEBHOOK_NOTIFY_TOKEN_SHA256 holds a value that is not a hex SHA-256.",
            )
        ]
    for secret in settings.webhook_signing_secrets:
        try:
            decode_secret(secret.get_secret_value())
        except ValueError as exc:
            return [Check("callback auth", False, f"INTERACTIONS_WEBHOOK_SIGNING_SECRETS: {exc}.")]
    tokens = len(settings.webhook_notify_token_sha256)
    secrets = len(settings.webhook_signing_secrets)
    if "notify" in (settings.email_provider, settings.sms_provider) and not tokens:
        message = (
            "INTERACTIONS_WEBHOOK_NOTIFY_TOKEN_SHA256 is empty: Notify's delivery receipts "
            "will be refused."
        )
        return [missing(settings, "callback auth", message)]
    return [
        Check("callback auth", True, f"{tokens} Notify token hash(es), {secrets} signing key(s)")
    ]


def check_beat_schedule(settings: Settings) -> list[Check]:
    """Whether every beat entry names a registered task on a consumed queue, and fits its period."""
    app = container().celery
    app.loader.import_default_modules()
    problems = []
    schedule = celery_config(settings)["beat_schedule"]
    for name, entry in schedule.items():
        task = entry["task"]
        queue = entry.get("options", {}).get("queue") or ROUTES.get(task, {}).get("queue")
        period = entry["schedule"]
        expires = entry.get("options", {}).get("expires")
        if task not in app.tasks:
            problems.append(f"{name} runs {task}, which no task module registers")
        if queue not in QUEUES:
            problems.append(f"{name} goes to queue {queue!r}, which no worker consumes")
        if isinstance(period, timedelta):
            if period.total_seconds() <= 0:
                problems.append(f"{name} has no period")
            elif expires is not None and expires >= period.total_seconds():
                problems.append(f"{name} expires after its next run is due, so runs can pile up")
    reconcile = schedule.get("reconcile-claims", {}).get("schedule")
    if isinstance(reconcile, timedelta) and (
        reconcile.total_seconds() >= settings.claim_lease_seconds
    ):
        problems.append("reconcile-claims runs less often than a claim lease lasts")
    if problems:
        return [Check("beat schedule", False, "; ".join(problems) + ".")]
    return [Check("beat schedule", True, f"{len(schedule)} entries, each on a consumed queue")]


def check_metrics(settings: Settings) -> list[Check]:
    """Whether metrics can be written by every process and scraped from the webhook app."""
    tokens = settings.metrics_token_sha256
    if any(not _SHA256_HEX.match(h) for h in tokens):
        message = "INTERACTIONS_METRICS_TOKEN_SHA256 holds a value that is not a hex SHA-256."
        token = Check("metrics", False, message)
    elif not tokens:
        message = "INTERACTIONS_METRICS_TOKEN_SHA256 is empty: /metrics refuses every scrape."
        token = missing(settings, "metrics", message)
    else:
        token = Check("metrics", True, f"{len(tokens)} scrape token hash(es)")
    folder = settings.prometheus_multiproc_dir
    if folder is None:
        message = "PROMETHEUS_MULTIPROC_DIR is not set: each process keeps its metrics to itself."
        directory = missing(settings, "metrics directory", message)
    elif not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        message = f"PROMETHEUS_MULTIPROC_DIR ({folder}) is not a writable directory."
        directory = Check("metrics directory", False, message)
    else:
        directory = Check("metrics directory", True, f"{folder} is writable")
    return [token, directory]


def check_flower(settings: Settings) -> list[Check]:
    """Whether Flower has credentials it will accept."""
    secrets = [s.get_secret_value() for s in settings.flower_basic_auth]
    if not secrets:
        message = "INTERACTIONS_FLOWER_BASIC_AUTH is empty: `interactions flower` will not start."
        return [missing(settings, "flower", message)]
    problems = credential_problems(secrets)
    if problems:
        return [Check("flower", False, " ".join(problems))]
    return [Check("flower", True, f"{len(secrets)} basic-auth credential(s)")]


def check_archive_storage(settings: Settings) -> list[Check]:
    """Whether the janitor can write to its archive store: a probe written, read back, removed."""
    key = f"doctor/probe-{uuid.uuid4().hex}"
    probe = b"interactions doctor probe"
    try:
        store = open_store(settings)
        store.put_new(key, probe)
        try:
            readable = b"".join(store.read(key)) == probe
        finally:
            store.delete(key)
    except Exception as exc:  # local and S3 stores fail in their own ways
        message = f"{settings.resolved_archive_url} is not writable: {type(exc).__name__}"
        return [Check("archive storage", False, message + ".")]
    if not readable:
        message = f"{store.url} did not give back what was written to it."
        return [Check("archive storage", False, message)]
    return [Check("archive storage", True, f"{store.url} is writable")]


def check_encryption_keys(settings: Settings) -> list[Check]:
    """Whether the key ring that seals personal data loads, and from where."""
    try:
        ring = load_keyring(settings)
    except ValueError as exc:
        return [Check("encryption keys", False, f"{exc}.")]
    source = "settings" if settings.encryption_keys else f"{settings.var_dir}/keys.json"
    return [
        Check(
            "encryption keys", True, f"{len(ring.keys)} key(s) from {source}, {ring.active} active"
        )
    ]


def check_provider_holds(settings: Settings) -> list[Check]:
    """Whether anything holds a provider's sends: a refused key, an outage, a daily limit."""
    try:
        here = Container(settings)
        paced = [p for p in here.providers.all() if p.credential is not None]
    except ValueError:
        return []  # check_providers says what is missing
    checks = []
    for provider in paced:
        credential = provider.credential
        assert credential is not None
        name = f"{provider.name} pace"
        try:
            state = here.pacer.state(credential)
        except redis.RedisError as exc:
            checks.append(
                Check(name, False, f"the shared pace cannot be read ({type(exc).__name__})")
            )
            continue
        held = describe(provider.name, state)
        if held is None:
            checks.append(Check(name, True, f"sending, at most {credential.per_minute}/min"))
        else:
            checks.append(Check(name, state.breaker is None, held, warning=True))
    return checks
