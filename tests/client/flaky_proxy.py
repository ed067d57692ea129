"""A TCP proxy for tests that drops connections in the middle of file downloads.

It sits between the client and the sandbox; presigned links are built from the Host the
sandbox sees, so file bytes flow through it too. Example::

    with FlakyProxy(sandbox_url, drop_after=100_000, drops=2) as proxy:
        os.environ["PENNSIEVE_API_HOST"] = proxy.url
"""

from __future__ import annotations

import socket
import threading
from urllib.parse import urlsplit


class FlakyProxy:
    """Forwards to ``target``; the first ``drops`` asset responses are cut after
    ``drop_after`` bytes by closing both sockets."""

    def __init__(self, target: str, *, drop_after: int, drops: int,
                 marker: bytes = b"GET /_assets") -> None:
        parts = urlsplit(target)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.drop_after, self.drops, self.marker = drop_after, drops, marker
        self.dropped = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._closing = False

    def __enter__(self) -> FlakyProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            armed = threading.Event()
            threading.Thread(target=self._upstream, args=(client, upstream, armed),
                             daemon=True).start()
            threading.Thread(target=self._downstream, args=(upstream, client, armed),
                             daemon=True).start()

    def _upstream(self, client: socket.socket, upstream: socket.socket,
                  armed: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                if self.marker in data:
                    with self._lock:
                        if self.dropped < self.drops:
                            self.dropped += 1
                            armed.set()
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            _close(client, upstream)

    def _downstream(self, upstream: socket.socket, client: socket.socket,
                    armed: threading.Event) -> None:
        sent = 0
        try:
            while data := upstream.recv(65536):
                if armed.is_set() and sent + len(data) >= self.drop_after:
                    client.sendall(data[: max(0, self.drop_after - sent)])
                    break
                client.sendall(data)
                sent += len(data) if armed.is_set() else 0
        except OSError:
            pass
        finally:
            _close(client, upstream)


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
