"""Maintenance tasks on the beat schedule; each takes a database lock so runs never overlap."""

from __future__ import annotations

import dataclasses
import logging

from celery import Task

from broker.publisher import CeleryPublisher
from config.settings import get_settings
from models.base import utcnow
from models.session import get_engine, session_factory
from providers.registry import ProviderRegistry
from services.locks import exclusive
from services.sending.polling import Poller
from services.sending.reconciliation import Reconciler
from tasks.base import project_task
from telemetry import metrics
from workers.app import app

log = logging.getLogger(__name__)


def build_reconciler() -> Reconciler:
    """A reconciler on this process's engine, providers and broker."""
    settings = get_settings()
    return Reconciler(
        session_factory(get_engine(settings)),
        ProviderRegistry.from_settings(settings),
        CeleryPublisher(app),
        settings,
        utcnow,
    )


@project_task("tasks.reconcile_claims")
def reconcile_claims(self: Task) -> None:
    """Settle expired claims by asking providers; re-enqueue released claims nobody took."""
    with exclusive(get_engine(get_settings()), "reconcile_claims") as mine:
        metrics.maintenance_run("reconcile_claims", mine)
        if not mine:
            log.info("reconcile_claims is already running elsewhere; skipped")
            return
        report = build_reconciler().run()
    metrics.claims_reconciled(**dataclasses.asdict(report))
    log.info("reconcile_claims: %s", report)


@project_task("tasks.poll_unfinished")
def poll_unfinished(self: Task) -> None:
    """Ask providers about SENT interactions whose final status never arrived."""
    settings = get_settings()
    with exclusive(get_engine(settings), "poll_unfinished") as mine:
        metrics.maintenance_run("poll_unfinished", mine)
        if not mine:
            log.info("poll_unfinished is already running elsewhere; skipped")
            return
        report = Poller(
            session_factory(get_engine(settings)),
            ProviderRegistry.from_settings(settings),
            settings,
            utcnow,
        ).run()
    log.info("poll_unfinished: %s", report)
