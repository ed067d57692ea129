"""File GETs over kept-alive HTTP/1.1 sockets (``HttpCore.stream_file``): the same bytes,
errors and verification as httpx, one connection reused across files, a dead kept-alive
connection replaced, chunked bodies decoded, TLS verified with httpx's certificate store, and
httpx's own way whenever a proxy, an injected transport or an odd URL asks for it.
"""

from __future__ import annotations

import datetime
import hashlib
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sparc.client import SparcClient
from sparc.client._download import RemoteFile, fetch_file
from sparc.client._http import STALE_CHECK_AFTER, FileResponse, HttpCore
from sparc.client.errors import ArgumentError, LinkExpiredError, NotFoundError, TransportError
from sparc.sandbox.process import SandboxProcess


def entries(sandbox: SandboxProcess, dataset: int, version: int, paths: list[str]) -> list[dict]:  # type: ignore[type-arg]
    return httpx.post(f"{sandbox.url}/discover/datasets/{dataset}/versions/{version}/files/"
                      "download-manifest", json={"paths": paths}, timeout=60).json()["data"]


def test_many_files_over_one_kept_alive_connection(sandbox: SandboxProcess,
                                                   tmp_path: Path) -> None:
    files = entries(sandbox, 318, 1, ["files/primary/sub-03/sam-1"])[:30]
    with HttpCore() as http:
        for i, e in enumerate(files):
            outcome = fetch_file(http, RemoteFile(e["url"], int(e["size"])), tmp_path / f"{i}")
            assert outcome.check == "md5"
            assert (tmp_path / f"{i}").read_bytes() == httpx.get(e["url"]).content
        idle = http._files._idle
        assert [len(c) for c in idle.values()] == [1]  # one socket served all 30, one by one


def test_a_dead_kept_alive_connection_is_replaced(sandbox: SandboxProcess,
                                                  tmp_path: Path) -> None:
    """The server closed an idle connection: the next GET goes out again on a new one."""
    import socket

    first, second = entries(sandbox, 90, 1, ["metadata/records"])[:2]
    with HttpCore() as http:
        fetch_file(http, RemoteFile(first["url"], int(first["size"])), tmp_path / "a")
        [[conn]] = http._files._idle.values()
        conn.sock.shutdown(socket.SHUT_RDWR)  # as a server closing it
        outcome = fetch_file(http, RemoteFile(second["url"], int(second["size"])),
                             tmp_path / "b")
        assert outcome.status == "downloaded" and outcome.check == "md5"
        [[again]] = http._files._idle.values()
        assert again is not conn


def test_errors_are_the_typed_errors_of_the_core(sandbox: SandboxProcess,
                                                 faults: SandboxProcess) -> None:
    [e] = entries(sandbox, 90, 1, ["metadata/records/file.csv"])
    with HttpCore() as http:
        faults.set_faults([{"route": "GET /_assets/*", "kind": "expire", "count": 1}])
        with pytest.raises(LinkExpiredError), http.stream_file(e["url"]):
            pass
        faults.set_faults([{"route": "GET /_assets/*", "kind": "status", "status": 404,
                            "count": 1}])
        with pytest.raises(NotFoundError) as info, http.stream_file(e["url"]):
            pass
        assert "X-Amz-Signature=***" in str(info.value)  # the signed URL is redacted
        faults.set_faults([{"route": "GET /_assets/*", "kind": "truncate", "count": 1}])
        with pytest.raises(TransportError, match="broke off"), \
                http.stream_file(e["url"]) as resp:
            assert isinstance(resp, FileResponse)
            b"".join(resp.iter_bytes())
        with http.stream_file(e["url"]) as resp:  # and then all is well again
            assert hashlib.md5(resp.read()).hexdigest() == resp.headers["etag"].strip('"')


def test_a_chunked_body_is_decoded(sandbox: SandboxProcess) -> None:
    """The whole-version ZIP is streamed without a length (chunked)."""
    url = f"{sandbox.url}/discover/datasets/396/versions/1/download?downloadOrigin=SPARC"
    reference = httpx.get(url, timeout=60).content
    with HttpCore() as http, http.stream_file(url) as resp:
        assert isinstance(resp, FileResponse)
        assert resp.read() == reference and len(reference) > 1000


def test_httpx_when_a_proxy_a_transport_or_an_odd_url_asks(
        sandbox: SandboxProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    [e] = entries(sandbox, 90, 1, ["metadata/records/file.csv"])
    with HttpCore(transport=httpx.HTTPTransport()) as http, http.stream_file(e["url"]) as resp:
        assert isinstance(resp, httpx.Response)
    with HttpCore() as http:
        assert http._files.target(e["url"]) is not None
        assert http._files.target(e["url"].replace("/_assets/", "/_assets/a b/")) is None
        assert http._files.target("ftp://example.org/x") is None
        with pytest.raises(ArgumentError), http.stream_file(e["url"],
                                                            headers={"X-A": "1\r\nX-B: 2"}):
            pass
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    with HttpCore() as http:
        assert http._files.target(e["url"]) is None


# -- TLS ------------------------------------------------------------------------------------------
def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for localhost/127.0.0.1 and its key (PEM files)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[str, Path, bytes]]:
    """An HTTPS/1.1 file server on loopback (Python's own), serving 3 MB of bytes."""
    cert, key = self_signed(tmp_path)
    root = tmp_path / "www"
    root.mkdir()
    data = hashlib.sha256(b"seed").digest() * (3_000_000 // 32)
    (root / "blob.bin").write_bytes(data)

    class Handler(http.server.SimpleHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}/blob.bin", cert, data
    finally:
        server.shutdown()
        server.server_close()


def test_tls_is_verified_with_httpx_certificate_store(
        tls_server: tuple[str, Path, bytes], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    url, cert, data = tls_server
    with HttpCore() as http:  # an unknown issuer: refused, as httpx refuses it
        with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
            fetch_file(http, RemoteFile(url, len(data)), tmp_path / "no.bin")
    assert not (tmp_path / "no.bin").exists()
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted the way httpx is told to
    with HttpCore() as http:
        for i in range(3):
            outcome = fetch_file(http, RemoteFile(url, len(data)), tmp_path / f"{i}.bin")
            assert outcome.check == "size" and (tmp_path / f"{i}.bin").read_bytes() == data
        with http.stream_file(url) as resp:
            assert isinstance(resp, FileResponse) and resp.read() == data


def test_download_moves_the_same_bytes_as_httpx(client: SparcClient, sandbox: SandboxProcess,
                                                tmp_path: Path) -> None:
    result = client.pennsieve.download(318, "files/primary/sub-04/sam-2", tmp_path, version=1)
    assert len(result) == 50 and {f.check for f in result.files} <= {"md5", "size"}
    for e in entries(sandbox, 318, 1, ["files/primary/sub-04/sam-2"]):
        local = tmp_path.joinpath(*e["path"], e["fileName"])
        assert local.read_bytes() == httpx.get(e["url"]).content


def test_stale_idle_connections_are_dropped_before_use(sandbox: SandboxProcess,
                                                       tmp_path: Path) -> None:
    """Idle connections the server closed (readable: end of stream), or idle past httpx's
    keep-alive expiry, are closed at checkout instead of failing the next GET and its retry."""
    import socket

    files = entries(sandbox, 90, 1, ["metadata/records"])[:2]
    with HttpCore() as http:
        key, _, _ = http._files.target(files[0]["url"])  # type: ignore[misc]
        dead = [http._files._checkout(key, files[0]["url"], fresh=True)[0] for _ in range(4)]
        for conn in dead:
            http._files.release(conn, True)
            conn.sock.shutdown(socket.SHUT_RDWR)  # as a server closing them all
            conn.idle_since -= 2 * STALE_CHECK_AFTER  # old enough to be polled at checkout
        old = http._files._checkout(key, files[0]["url"], fresh=True)[0]
        http._files.release(old, True)
        old.idle_since -= 3600  # idle for an hour; the last released: the first tried
        outcome = fetch_file(http, RemoteFile(files[1]["url"], int(files[1]["size"])), tmp_path / "b")
        assert outcome.status == "downloaded" and outcome.check == "md5"
        assert all(conn.sock.fileno() == -1 for conn in [*dead, old])  # every stale one closed
        [[kept]] = http._files._idle.values()
        assert kept not in [*dead, old]


def _one_answer_server(answer: bytes, reset: bool) -> tuple[str, threading.Thread]:
    """A server that reads one request, sends ``answer`` and closes (with a RST if ``reset``)."""
    import socket
    import struct

    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(answer)
            if reset:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        listener.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return f"http://127.0.0.1:{listener.getsockname()[1]}/file", thread


@pytest.mark.parametrize("reset", [False, True])
def test_a_body_without_length_ends_cleanly_only_on_a_clean_close(reset: bool) -> None:
    """No Content-Length: the body is what came before the server's FIN; a connection reset is
    a broken transfer (TransportError), not the end of the file."""
    url, thread = _one_answer_server(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 5000,
                                     reset)
    with HttpCore() as http, http.stream_file(url) as response:
        assert isinstance(response, FileResponse)
        if reset:
            with pytest.raises(TransportError, match="broke off"):
                b"".join(response.iter_bytes())
        else:
            assert b"".join(response.iter_bytes()) == b"x" * 5000
    thread.join(5)


def test_readinto_reads_the_body_in_place_and_keeps_the_connection(
        sandbox: SandboxProcess) -> None:
    """Bodies with a Content-Length are read straight into the caller's buffer (the large-file
    path): the same bytes as httpx, 0 at the end, the connection back in the idle pool; a body
    without a Content-Length refuses (it is read with iter_bytes)."""
    [e] = entries(sandbox, 120, 1, ["files"])[:1]
    with HttpCore() as http:
        with http.stream_file(e["url"]) as resp:
            assert isinstance(resp, FileResponse) and resp.remaining == int(e["size"])
            block = bytearray(100_003)  # odd size: reads end mid-block and across blocks
            got = bytearray()
            while n := resp.readinto(memoryview(block)):
                got += block[:n]
            assert resp.readinto(memoryview(block)) == 0 and resp.remaining == 0
        assert bytes(got) == httpx.get(e["url"]).content
        assert [len(c) for c in http._files._idle.values()] == [1]
    chunked = FileResponse.__new__(FileResponse)
    chunked.remaining = None
    with pytest.raises(ValueError, match="Content-Length"):
        chunked.readinto(memoryview(block))


def test_readinto_takes_at_most_one_read_size_a_call(sandbox: SandboxProcess) -> None:
    """However big the caller's buffer, one call takes at most READ_SIZE: the large-file path
    writes each piece at once, while it is still in the core's cache (a whole socket buffer of
    several MB cost ~40 % more kernel time on the write)."""
    from sparc.client._http import READ_SIZE

    e = max(entries(sandbox, 120, 1, ["files"]), key=lambda x: int(x["size"]))
    assert int(e["size"]) > 4 * READ_SIZE
    with HttpCore() as http, http.stream_file(e["url"]) as resp:
        assert isinstance(resp, FileResponse)
        block = memoryview(bytearray(int(e["size"])))
        sizes, filled = [], 0
        while n := resp.readinto(block[filled:]):
            sizes.append(n)
            filled += n
        assert filled == int(e["size"]) and max(sizes) <= READ_SIZE


def test_file_headers_are_a_plain_dict_looked_up_in_any_case() -> None:
    """File GETs keep their headers in a plain dict by lower-case name (no httpx.Headers per
    file): any case finds them, repeated ones are joined as httpx joins them."""
    from sparc.client._http import FileHeaders

    fields = [("ETag", '"abc"'), ("Content-Length", "12"), ("X-Amz-Meta-A", "1"),
              ("x-amz-meta-a", "2")]
    headers = FileHeaders(fields)
    assert type(headers).__mro__[1] is dict
    assert headers.get("etag") == headers.get("ETAG") == headers["eTag"] == '"abc"'
    assert "CONTENT-LENGTH" in headers and "content-length" in headers and 5 not in headers
    assert headers.get("missing") is None and headers.get("missing", "x") == "x"
    assert headers["x-amz-meta-a"] == httpx.Headers(fields)["x-amz-meta-a"] == "1, 2"
