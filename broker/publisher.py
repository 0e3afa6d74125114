"""Publishing dispatch tasks in bulk: one broker round trip per chunk.

On Redis each chunk is one LPUSH of messages built here, byte for byte the envelopes kombu's
Redis transport writes (the same Celery protocol-2 headers, from ``as_task_v2``), so a
worker cannot tell them apart; building them directly costs a fraction of kombu's publish
machinery per message, which dominated a batch upload. Other transports (the filesystem
broker of the embedded default) go through kombu's batching producer.
"""

from __future__ import annotations

import base64
import json
import os
import re
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from celery import Celery

from broker.redaction import shown_arguments
from config.celery import DISPATCH_QUEUE, TaskName

TASK_NAME = TaskName.DISPATCH.value
# Where each message's own values go in the envelope text built once per chunk.
_MARKER = re.compile(r"@@(ID|TAG|REPR|BODY)@@")


def _uuid4() -> str:
    """A random (version 4) UUID's text, without building a UUID object per message."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class TaskMessage(Protocol):
    """What one dispatch task carries: its keyword arguments, ids and data alike."""

    def as_kwargs(self) -> dict[str, Any]:
        """The task's keyword arguments."""


class CeleryPublisher:
    """Publishes ``tasks.dispatch`` messages straight to the dispatch queue.

    Each message is the Celery protocol-2 message ``apply_async`` would send; a chunk of
    recipients costs one round trip instead of one per recipient. The displayed arguments
    carry ids only.
    """

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._redis = app.conf.broker_url.startswith(("redis://", "rediss://"))
        self._shape: tuple[int, list[str], list[str], str] | None = None

    def publish(self, messages: Sequence[TaskMessage]) -> None:
        """Enqueue one dispatch task per message; returns once the broker has them all."""
        if not messages:
            return
        if self._redis:
            self._push(messages)
        else:
            self._publish(messages)

    def _envelope(self, kwargs: dict[str, Any]) -> tuple[list[str], list[str], str]:
        """The Redis envelope of a dispatch, as text around the four values that vary.

        Celery's own headers (``as_task_v2``) and kombu's properties are encoded once per
        chunk with a marker where each message's task id, delivery tag, displayed arguments
        and body go; a message is then the pieces joined with its values. Returns the texts,
        the marker names between them, and the embedded options of the body.
        """
        built = self._app.amqp.as_task_v2(
            "@@ID@@", TASK_NAME, kwargs=kwargs, argsrepr="()", kwargsrepr="@@REPR@@",
            ignore_result=True,
        )  # fmt: skip
        envelope = {
            "body": "@@BODY@@",
            "content-encoding": "utf-8",
            "content-type": "application/json",
            "headers": built.headers,
            "properties": {
                "correlation_id": "@@ID@@",
                "reply_to": "",
                "delivery_mode": 2,
                "delivery_info": {"exchange": "", "routing_key": DISPATCH_QUEUE},
                "priority": 0,
                "body_encoding": "base64",
                "delivery_tag": "@@TAG@@",
            },
        }
        pieces = _MARKER.split(json.dumps(envelope))
        return pieces[0::2], pieces[1::2], json.dumps(built.body[2])

    def _push(self, messages: Sequence[TaskMessage]) -> None:
        """One LPUSH of every message's envelope, as kombu's Redis transport writes it."""
        # The headers name this process (origin), so a forked child builds its own.
        if self._shape is None or self._shape[0] != os.getpid():
            self._shape = (os.getpid(), *self._envelope(messages[0].as_kwargs()))
        _, texts, markers, embed = self._shape
        envelopes: list[str] = []
        for message in messages:
            kwargs = message.as_kwargs()
            body = f"[[], {json.dumps(kwargs)}, {embed}]".encode()
            values = {
                "ID": _uuid4(),
                "TAG": _uuid4(),
                # The displayed arguments, as a JSON string's content (it may hold quotes).
                "REPR": json.dumps(shown_arguments(TASK_NAME, kwargs))[1:-1],
                "BODY": base64.b64encode(body).decode(),
            }
            parts = [texts[0]]
            for marker, text in zip(markers, texts[1:], strict=True):
                parts.append(values[marker])
                parts.append(text)
            envelopes.append("".join(parts))
        with self._app.producer_or_acquire() as producer:
            channel = producer.channel
            # kombu's own client: its key prefix and connection options apply.
            with channel.conn_or_acquire() as client:
                client.lpush(channel._q_for_pri(DISPATCH_QUEUE, 0), *envelopes)

    def _publish(self, messages: Sequence[TaskMessage]) -> None:
        """Through kombu's batching producer, for transports other than Redis."""
        amqp = self._app.amqp
        with self._app.producer_or_acquire() as producer, producer.batch(max(1, len(messages))):
            for message in messages:
                kwargs = message.as_kwargs()
                task_id = str(uuid.uuid4())
                built = amqp.as_task_v2(
                    task_id,
                    TASK_NAME,
                    kwargs=kwargs,
                    argsrepr="()",
                    kwargsrepr=shown_arguments(TASK_NAME, kwargs),
                    ignore_result=True,
                )
                producer.publish(
                    built.body,
                    exchange="",
                    routing_key=DISPATCH_QUEUE,
                    headers=built.headers,
                    correlation_id=task_id,
                    reply_to="",
                    serializer="json",
                    retry=True,
                )
