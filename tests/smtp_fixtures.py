"""A real local SMTP server (aiosmtpd) that records what it receives, for the SMTP tests."""

from __future__ import annotations

import asyncio
import email
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted: its envelope, raw bytes and the connection it came on."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes
    peer: tuple[str, int]

    @property
    def message(self) -> EmailMessage:
        """The message parsed, headers decoded."""
        parsed = email.message_from_bytes(self.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed

    @property
    def text(self) -> str:
        """The plain-text body, decoded, with the wire's CRLF line endings read as newlines."""
        return str(self.message.get_content()).replace("\r\n", "\n")


class RecordingHandler:
    """Accepts mail and keeps it; a test can make it refuse recipients or data, or stall."""

    def __init__(self) -> None:
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None
        self.data_delay = 0.0
        self._received: list[ReceivedMessage] = []
        self._lock = threading.Lock()

    @property
    def received(self) -> list[ReceivedMessage]:
        """What was accepted so far, oldest first."""
        with self._lock:
            return list(self._received)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        """Accept the recipient unless a refusal was set."""
        if self.rcpt_reply is not None:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Keep the message, then answer (late, if a delay was set) unless a refusal was set."""
        if self.data_reply is not None:
            return self.data_reply
        with self._lock:
            self._received.append(
                ReceivedMessage(
                    envelope.mail_from,
                    tuple(envelope.rcpt_tos),
                    bytes(envelope.content),
                    tuple(session.peer[:2]),
                )
            )
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    """A running server: where to reach it and what it received."""

    host: str
    port: int
    handler: RecordingHandler

    @property
    def received(self) -> list[ReceivedMessage]:
        """What the server accepted so far, oldest first."""
        return self.handler.received

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """The received messages once there are ``count``, for sends that finish late."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.received


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_smtp_server(**smtp_parameters: Any) -> Iterator[SmtpServer]:
    """Run an SMTP server on a free local port; ``smtp_parameters`` go to aiosmtpd's SMTP."""
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(handler, hostname=HOST, port=port, **smtp_parameters)
    controller.start()
    try:
        yield SmtpServer(HOST, port, handler)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 that records every message it accepts."""
    with running_smtp_server() as server:
        yield server
