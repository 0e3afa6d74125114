"""A TCP proxy the tests cut and restore, to take a real server away from the service and back.

Processes are pointed at the proxy's port instead of the server's; ``cut()`` closes every
connection through it and refuses new ones, as a server that went down would, and
``restore()`` lets connections through again. The server itself (the machine's PostgreSQL or
Redis, shared with everything else) never stops.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading

CHUNK = 65536


class TcpProxy:
    """Forwards connections from a free loopback port to ``host:port`` while it is up."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._up.set()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """Close every connection and refuse new ones, until ``restore``."""
        self._up.clear()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
            self._open.clear()

    def restore(self) -> None:
        """Let connections through again."""
        self._up.set()

    def stop(self) -> None:
        """Cut everything and stop listening."""
        self._stopped = True
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()  # the server is "down": the connection is refused at once
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        pairs = {client: upstream, upstream: client}
        for sock in pairs:
            sock.setblocking(True)
            selector.register(sock, selectors.EVENT_READ)
        try:
            while self._up.is_set():
                for key, _ in selector.select(timeout=0.5):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = source.recv(CHUNK)
                    if not data:
                        return
                    pairs[source].sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            with self._lock:
                for sock in pairs:
                    self._open.discard(sock)
                    with contextlib.suppress(OSError):
                        sock.close()
