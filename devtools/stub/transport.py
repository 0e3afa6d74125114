"""The stub's HTTP plumbing: keep-alive connections answered by a router, closed on stop."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import socketserver
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from devtools.stub.errors import HangUp, StubError

log = logging.getLogger(__name__)


class Router(Protocol):
    """What answers a request: a status and a JSON body, or a StubError."""

    def route(
        self, method: str, path: str, query: str, raw: bytes, authorization: str
    ) -> tuple[int, dict[str, Any]]:
        """Answer one request."""
        ...


class StubHandler(BaseHTTPRequestHandler):
    """Answers one keep-alive connection's requests."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 120
    server: StubHTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.track(self.connection, add=False)
        super().finish()

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing per request: paths carry references, and logging costs time."""

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        headers: dict[str, str] = {}
        try:
            authorization = self.headers.get("Authorization") or ""
            status, body = self.server.router.route(method, path, query, raw, authorization)
        except StubError as exc:
            status, body, headers = exc.status, exc.body(), exc.headers
        except HangUp:
            self._hang_up()
            return
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _hang_up(self) -> None:
        # A zero linger makes closing send a reset, as the peer of a crashed server sees.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True


class StubHTTPServer(ThreadingHTTPServer):
    """A threaded HTTP server that hands every request to its router."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], router: Router) -> None:
        self.router = router
        # Each open connection and the thread that serves it.
        self._open: dict[socket.socket, int] = {}
        self._open_lock = threading.Lock()
        super().__init__(address, StubHandler)

    def server_bind(self) -> None:
        # HTTPServer would look the host name up in DNS, which can take seconds.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (as hold_ms invites) is expected; anything else is worth a line.
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            log.warning("stub request failed", exc_info=True)

    def track(self, connection: socket.socket, *, add: bool) -> None:
        """Remember open connections, so stop() can close the idle keep-alive ones."""
        with self._open_lock:
            if add:
                self._open[connection] = threading.get_ident()
            else:
                self._open.pop(connection, None)

    def close_connections(self, spare_thread: int | None = None) -> None:
        """Shut every open connection but the one ``spare_thread`` serves, waking their threads."""
        with self._open_lock:
            for connection, thread in self._open.items():
                if thread == spare_thread:
                    continue
                # A client may have closed it already.
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
