"""An injected error answer on a request with a body: the body is read and dropped, so the
kept-alive connection still works; past the drain limit the answer closes the connection."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

from sparc.sandbox.process import SandboxProcess


def _exchange(sock: socket.socket, request: bytes) -> bytes:
    """Send ``request`` and read one answer (headers and a Content-Length body)."""
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_error_answer_drops_the_request_body_and_keeps_the_connection(
        sandbox: SandboxProcess) -> None:
    sandbox.set_faults([{"route": "POST /discover/search/*", "kind": "status", "status": 503,
                         "count": 1}])
    try:
        parts = urlsplit(sandbox.url)
        payload = b'{"x": "' + b"a" * 200_000 + b'"}'
        post = (f"POST /discover/search/datasets HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
                ).encode() + payload
        get = f"GET /discover/datasets/90 HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            first = _exchange(sock, post)
            assert first.startswith(b"HTTP/1.1 503")
            assert b"connection: close" not in first.lower()
            second = _exchange(sock, get)  # same connection: the dropped body did not leak into it
            assert second.startswith(b"HTTP/1.1 200")
    finally:
        sandbox.clear_faults()


def test_error_answer_to_a_huge_body_closes_the_connection(sandbox: SandboxProcess) -> None:
    sandbox.set_faults([{"route": "PUT /_assets/*", "kind": "status", "status": 503, "count": 1}])
    try:
        parts = urlsplit(sandbox.url)
        size = 64 * 2**20
        head = (f"PUT /_assets/bucket/key HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                f"Content-Length: {size}\r\n\r\n").encode()
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(head)
            chunk = b"\0" * 2**20
            try:
                for _ in range(size // len(chunk)):
                    sock.sendall(chunk)
            except OSError:
                pass  # the server answered and closed before taking it all: that is the point
            answer = b""
            while b"\r\n\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
        assert answer.startswith(b"HTTP/1.1 503")
        assert b"connection: close" in answer.lower()
    finally:
        sandbox.clear_faults()
