"""Waking the inbox drain: one queued ``tasks.drain_inbox`` covers every callback stored before it.

The webhook stores each callback and then makes sure a drain is queued. A flag in Redis, set
with NX and a short expiry, says one is queued and not yet started: while it stands, a
callback needs no message of its own. The drain clears the flag before it looks for rows, so
a callback whose wake found the flag standing is committed before the drain's query runs and
is seen by it. A lost drain message costs at most the flag's expiry, after which the next
callback queues another; beat drains periodically besides, and reconciliation settles
anything older.
"""

from __future__ import annotations

import threading

import redis
from celery import Celery

from config.celery import STATUS_QUEUE, TaskName

DRAIN_TASK = TaskName.DRAIN_INBOX.value
FLAG = "interactions:inbox:drain-queued"
FLAG_SECONDS = 15


class InboxWake:
    """Queues a drain when none is waiting; on a broker other than Redis, one per callback."""

    def __init__(self, celery: Celery) -> None:
        self._celery = celery
        self._redis: redis.Redis | None = None
        self._checked = False
        self._lock = threading.Lock()

    def _flags(self) -> redis.Redis | None:
        """A client for the broker's Redis, built on first use (after a server forks)."""
        with self._lock:
            if not self._checked:
                url = str(self._celery.conf.broker_url)
                if url.startswith(("redis://", "rediss://")):
                    self._redis = redis.Redis.from_url(url, socket_timeout=5)
                self._checked = True
            return self._redis

    def enqueue(self, inbound_id: int) -> None:
        """See that stored callback ``inbound_id`` is applied: queue a drain unless one waits."""
        self.wake()

    def wake(self) -> None:
        """Queue a drain unless one is already waiting."""
        flags = self._flags()
        if flags is not None and not flags.set(FLAG, b"1", nx=True, ex=FLAG_SECONDS):
            return
        try:
            self._celery.send_task(DRAIN_TASK, queue=STATUS_QUEUE, retry=False)
        except Exception:
            if flags is not None:
                flags.delete(FLAG)
            raise

    def started(self) -> None:
        """A drain is starting: the next callback must queue another."""
        flags = self._flags()
        if flags is not None:
            flags.delete(FLAG)
