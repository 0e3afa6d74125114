"""Maintenance tasks on the beat schedule; each takes a database lock so runs never overlap."""

from __future__ import annotations

import dataclasses
import logging

from celery import Task

from config.celery import TaskName
from services.container import container
from services.locks import AlreadyRunning, run_exclusively
from services.sending.parking import release_parked as release
from tasks.base import project_task
from telemetry import metrics

log = logging.getLogger(__name__)


@project_task(TaskName.RECONCILE_CLAIMS)
def reconcile_claims(self: Task) -> None:
    """Settle expired claims by asking providers; re-enqueue released claims nobody took."""
    here = container()
    try:
        report = run_exclusively(here.engine, "reconcile_claims", here.reconciler().run)
    except AlreadyRunning as exc:
        log.info("%s; skipped", exc)
        return
    metrics.claims_reconciled(**dataclasses.asdict(report))
    log.info("reconcile_claims: %s", report)


@project_task(TaskName.POLL_UNFINISHED)
def poll_unfinished(self: Task) -> None:
    """Ask providers about SENT interactions whose final status never arrived."""
    here = container()
    try:
        report = run_exclusively(here.engine, "poll_unfinished", here.poller().run)
    except AlreadyRunning as exc:
        log.info("%s; skipped", exc)
        return
    log.info("poll_unfinished: %s", report)


@project_task(TaskName.RELEASE_PARKED)
def release_parked(self: Task) -> None:
    """Publish again the messages parked for a provider that now takes them."""
    here = container()
    lots = here.parking
    if lots is None:
        return
    try:
        report = run_exclusively(
            here.engine,
            "release_parked",
            lambda: release(lots, here.pacer, here.providers, here.publisher, here.batch_gate),
        )
    except AlreadyRunning as exc:
        log.info("%s; skipped", exc)
        return
    if report.released or report.held:
        log.info("release_parked: %d released, held: %s", report.released, report.held)
