"""The sandbox must never be the bottleneck: request rates against a bare app, the manifest, start-up.

Prints, each against a baseline measured in the same run (medians of interleaved rounds; on a
shared machine, trust the CPU figures over the rates):

* requests/s and p50/p99 latency at 1, 16 and 64 concurrent keep-alive clients, for a Discover
  dataset (``GET /discover/datasets/90``) and a 4 KiB range of a generated 1 GiB asset, against a
  bare Starlette app giving the same answer (status, headers, body) to the same request line from
  the same uvicorn (httptools, uvloop, same settings) (target: >= 0.8x at 1 and 16 clients); for
  the asset, also against the bare app sending the body alone (no S3 headers; no target); beside
  them, server CPU microseconds per request (sandbox vs bare) and the sandbox's share of the CPU
  the run used (sandbox + load generator);
* a download-manifest naming 2,000 explicit paths of dataset 318 (target: <= 0.2 s), and the
  same files named by their folders;
* generated content: a 4 KiB range vs a whole 1 MiB block, and GB/s vs a plain copy;
* start-up of ``sparc sandbox serve --port 0`` (fresh data folder, then reused) vs a bare
  interpreter start (target: under 2 s); the 1 GiB file through a raw socket reader.

``python bench/sandbox.py --inprocess`` prints, instead, the app's own cost: microseconds per
request of the sandbox app and of the bare app (replaying its answer) called in-process with a
fake scope, ``receive`` and ``send`` (no server, no sockets: what the per-request work of the
app itself costs; best of several rounds).

The load generator is this script run as ``--load URL CLIENTS SECONDS [RANGE]`` (asyncio, raw
sockets, one process); the bare app is ``--bare BODYFILE MEDIA [ANSWERFILE]`` (prints its URL). Other benchmarks
read the sandbox's CPU the same way: ``GET /_sandbox/process`` (``pid``, ``cpu_seconds``).

Run: ``python bench/sandbox.py`` (about two minutes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

GIB = 1 << 30
CONCURRENCY = (1, 16, 64)
ROUNDS = 5  # the bare app's own rate swings between rounds (7,150-11,900 req/s seen): five steady the median
SECONDS = 1.5  # per round and client count
RANGE = "bytes=1048576-1052671"  # 4 KiB inside block 1 of the generated 1 GiB file
BIG_FILE = "files/primary/sub-1/sam-1/recording_full.dat"  # dataset 90 version 1


# ---- the load generator (child process) ----------------------------------------------------------
async def _client(host: str, port: int, request: bytes, deadline: float, latencies: list[float],
                  errors: list[bytes]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    clock = time.perf_counter
    try:
        while clock() < deadline:
            started = clock()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 206")):
                errors.append(head[:60])
            at = head.lower().find(b"content-length:")
            await reader.readexactly(int(head[at + 15:head.index(b"\r\n", at)]))
            latencies.append(clock() - started)
    finally:
        writer.close()


async def _load(url: str, clients: int, seconds: float, byte_range: str | None) -> dict[str, Any]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    target = parts.path + ("?" + parts.query if parts.query else "")
    extra = f"Range: {byte_range}\r\n" if byte_range else ""
    request = f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}\r\n".encode()
    latencies: list[float] = []
    errors: list[bytes] = []
    started = time.perf_counter()
    await asyncio.gather(*(_client(parts.hostname, parts.port, request, started + seconds, latencies, errors)
                           for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"requests": len(latencies), "seconds": elapsed, "errors": [e.decode("latin-1") for e in errors[:3]],
            "p50": latencies[len(latencies) // 2], "p99": latencies[int(len(latencies) * 0.99)],
            "cpu": usage.ru_utime + usage.ru_stime}


def load_main(argv: list[str]) -> None:
    try:
        import uvloop  # the cheapest client loop there is: the server stays the thing measured

        uvloop.install()
    except ImportError:
        pass
    url, clients, seconds = argv[0], int(argv[1]), float(argv[2])
    print(json.dumps(asyncio.run(_load(url, clients, seconds, argv[3] if len(argv) > 3 else None))))


# ---- the bare app (child process) ----------------------------------------------------------------
def bare_main(argv: list[str]) -> None:
    """A bare Starlette app answering every GET with the bytes of ``argv[0]`` (media type ``argv[1]``),
    on the same uvicorn; with ``argv[2]`` (a JSON file of ``[status, [[name, value], ...]]``), the
    same status and headers too: the sandbox's recorded answer replayed."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = Path(argv[0]).read_bytes()
    media = argv[1] if len(argv) > 1 else "application/json"
    status, headers = json.loads(Path(argv[2]).read_text()) if len(argv) > 2 else (200, [])

    async def endpoint(request: Request) -> Response:
        return Response(body, status_code=status, headers=dict(headers), media_type=media)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(f"http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    app = Starlette(routes=[Route("/{path:path}", endpoint)])
    # uvicorn as the sandbox runs it (sandbox/server.py _config): no proxy headers, no server header
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                                  proxy_headers=False, server_header=False)).run(sockets=[sock])


#: Headers the server itself writes (or the body decides): not replayed by the bare app.
SERVER_HEADERS = {"date", "server", "content-length", "content-type", "connection"}


class BareApp:
    """``with BareApp(body, media, scratch, answer) as bare: bare.url, bare.cpu()``; ``answer`` is
    ``(status, headers)`` to replay beside the body (default: 200 and no headers of its own)."""

    def __init__(self, body: bytes, media: str, scratch: Path,
                 answer: tuple[int, list[tuple[str, str]]] | None = None) -> None:
        path = scratch / f"bare-{len(body)}.body"
        path.write_bytes(body)
        args = [sys.executable, __file__, "--bare", str(path), media]
        if answer is not None:
            status, headers = answer
            replay = scratch / f"bare-{len(body)}-{status}.json"
            replay.write_text(json.dumps([status, [(k, v) for k, v in headers
                                                   if k.lower() not in SERVER_HEADERS]]))
            args.append(str(replay))
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        for _ in range(200):  # wait until it answers
            try:
                urllib.request.urlopen(self.url + "/", timeout=1).read()
                break
            except OSError:
                time.sleep(0.05)

    def cpu(self) -> float:
        return proc_cpu(self.proc.pid)

    def __enter__(self) -> BareApp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(url: str, clients: int, seconds: float, byte_range: str | None,
             server_cpu: Callable[[], float]) -> dict[str, Any]:
    before = server_cpu()
    args = [sys.executable, __file__, "--load", url, str(clients), str(seconds)] + ([byte_range] if byte_range else [])
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"load generator failed on {url}:\n{done.stderr[-2000:]}")
    out = json.loads(done.stdout)
    out["server_cpu"] = server_cpu() - before
    if out["errors"]:
        raise SystemExit(f"{url}: unexpected answers {out['errors']}")
    return out


# ---- the app alone, in-process ------------------------------------------------------------------
def inprocess_main(rounds: int = 7, n: int = 20000) -> None:
    """Microseconds per request of each app called directly (see the module docstring)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from sparc.sandbox.assets.signing import presigner
    from sparc.sandbox.server import create_app
    from sparc.sandbox.settings import SandboxSettings

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    def call(app: Any, target: str, headers: list[tuple[bytes, bytes]]) -> None:
        path, _, query = target.partition("?")
        sent.clear()
        coroutine = app({"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                         "http_version": "1.1", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
                         "scheme": "http", "root_path": "", "headers": list(headers), "state": {},
                         "method": "GET", "path": path, "raw_path": path.encode(),
                         "query_string": query.encode()}, receive, send)
        try:
            coroutine.send(None)  # nothing on these routes waits: one step runs the request
        except StopIteration:
            return
        raise RuntimeError(f"{target}: the app waited")

    with tempfile.TemporaryDirectory(prefix="sparc-bench-") as scratch:
        app = create_app(SandboxSettings(data_dir=Path(scratch), time_scale=0))
        state = app.state
        host = [(b"host", b"127.0.0.1:8000")]
        url = state.discover.download_manifest(90, 1, [BIG_FILE], None, state.settings.download_size_cap,
                                               presigner(state.signer, "http://127.0.0.1:8000/"))["data"][0]["url"]
        cases = [("GET /discover/datasets/90", "/discover/datasets/90", host, "application/json"),
                 ("4 KiB range of an asset", url.split("127.0.0.1:8000", 1)[1],
                  host + [(b"range", RANGE.encode())], "application/octet-stream")]
        print(f"in-process, microseconds per request (best of {rounds} rounds of {n:,}):")
        for name, target, headers, media in cases:
            call(app, target, headers)
            status = sent[0]["status"]
            replayed = {k.decode(): v.decode() for k, v in sent[0]["headers"]
                        if k.decode() not in SERVER_HEADERS}
            body = b"".join(m.get("body", b"") for m in sent[1:])

            async def endpoint(request: Request, body: bytes = body, status: int = status,
                               replayed: dict[str, str] = replayed, media: str = media) -> Response:
                return Response(body, status_code=status, headers=replayed, media_type=media)

            bare = Starlette(routes=[Route("/{path:path}", endpoint)])
            best = {"sandbox": float("inf"), "bare": float("inf")}
            for _ in range(rounds):
                for who, each in (("sandbox", app), ("bare", bare)):
                    started = time.perf_counter()
                    for _ in range(n):
                        call(each, target, headers)
                    best[who] = min(best[who], (time.perf_counter() - started) / n * 1e6)
            print(f"  {name:26s} sandbox {best['sandbox']:6.1f} us | bare {best['bare']:6.1f} us | "
                  f"{best['sandbox'] / best['bare']:4.2f}x")
        state.db.close()


# ---- the figures --------------------------------------------------------------------------------
def request_rates(sandbox: Any, scratch: Path) -> None:
    """Each endpoint against a bare app replaying the sandbox's recorded answer (its status, its
    headers, its body: an S3 answer's ETag, Last-Modified, Content-Range and request ids are part of
    what any server emulating S3 must send) on the same uvicorn settings, fed the same request
    line; when the answer has headers of its own, also against the bare app sending the body alone
    (no target: that one measures uvicorn writing S3's headers as much as the sandbox)."""
    pid = sandbox.get_json("/_sandbox/process")["pid"]
    url = manifest_urls(sandbox.url, 90, [BIG_FILE])[0]
    endpoints = [("GET /discover/datasets/90", sandbox.url + "/discover/datasets/90", None, "application/json"),
                 ("4 KiB range of an asset", url, RANGE, "application/octet-stream")]
    for name, target, byte_range, media in endpoints:
        request = urllib.request.Request(target, headers={"Range": byte_range} if byte_range else {})
        with urllib.request.urlopen(request) as resp:
            body, answer = resp.read(), (resp.status, list(resp.headers.items()))
        own_headers = [k for k, _ in answer[1] if k.lower() not in SERVER_HEADERS]
        with contextlib.ExitStack() as stack:
            bares = {"bare": stack.enter_context(BareApp(body, media, scratch, answer))}
            if own_headers:
                bares["body only"] = stack.enter_context(BareApp(body, media, scratch))
            parts = urlsplit(target)  # the same request line (a presigned URL's 1 KB query too)
            tail = parts.path + (f"?{parts.query}" if parts.query else "")
            servers = [("sandbox", target, lambda: proc_cpu(pid))]
            servers += [(who, app.url + tail, app.cpu) for who, app in bares.items()]
            runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
            for i in range(ROUNDS):  # interleaved: every server sees the same machine load
                for clients in CONCURRENCY:  # each round starts with the next server
                    for who, where, cpu in servers[i % len(servers):] + servers[:i % len(servers)]:
                        runs.setdefault((who, clients), []).append(
                            run_load(where, clients, SECONDS, byte_range, cpu))
        replayed = f"status {answer[0]} and {len(own_headers)} headers of its own" if own_headers \
            else f"status {answer[0]}, no headers of its own"
        print(f"\n{name} ({len(body):,} bytes; bare app: the same answer, {replayed}), "
              f"medians of {ROUNDS} interleaved rounds of {SECONDS} s:")
        print("clients   sandbox req/s  p50 ms  p99 ms |  bare req/s  p50 ms  p99 ms | ratio (target)"
              " | server CPU us/req sandbox/bare | sandbox CPU share"
              + (" | vs body only (no target)" if own_headers else ""))
        for clients in CONCURRENCY:
            s, b = summary(runs[("sandbox", clients)]), summary(runs[("bare", clients)])
            target_note = ">= 0.8: " + ("met" if s["rate"] / b["rate"] >= 0.8 else "MISSED") \
                if clients in (1, 16) else "(no target)"
            extra = ""
            if own_headers:
                o = summary(runs[("body only", clients)])
                extra = f" | {s['rate'] / o['rate']:4.2f}x ({o['rate']:,.0f} req/s)"
            print(f"{clients:7d}   {s['rate']:13,.0f} {s['p50']:7.2f} {s['p99']:7.2f} | {b['rate']:11,.0f} "
                  f"{b['p50']:7.2f} {b['p99']:7.2f} | {s['rate'] / b['rate']:5.2f}x {target_note:13s}"
                  f" | {s['cpu_us']:6.0f} / {b['cpu_us']:4.0f} = {s['cpu_us'] / b['cpu_us']:4.2f}x"
                  f"          | {s['share']:5.0%}{extra}")


def summary(runs: list[dict[str, Any]]) -> dict[str, float]:
    med = statistics.median
    return {"rate": med(r["requests"] / r["seconds"] for r in runs), "p50": med(r["p50"] for r in runs) * 1e3,
            "p99": med(r["p99"] for r in runs) * 1e3,
            "cpu_us": med(r["server_cpu"] / r["requests"] for r in runs) * 1e6,
            "share": med(r["server_cpu"] / (r["server_cpu"] + r["cpu"]) for r in runs)}


def manifest_urls(base: str, dataset: int, paths: list[str]) -> list[str]:
    return [row["url"] for row in manifest(base, dataset, paths)["data"]]


def manifest(base: str, dataset: int, paths: list[str]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base}/discover/datasets/{dataset}/versions/1/files/download-manifest",
        data=json.dumps({"paths": paths}).encode(), headers={"Content-Type": "application/json"},
        method="POST")
    with urllib.request.urlopen(request) as resp:
        return json.loads(resp.read())


def manifest_time(sandbox: Any, db: Path) -> None:
    import sqlite3

    with sqlite3.connect(db) as conn:
        pk = conn.execute("SELECT pk FROM datasets WHERE id = 318").fetchone()[0]
        paths = [r[0] for r in conn.execute("SELECT path FROM files WHERE dataset_pk = ? ORDER BY path LIMIT 2000",
                                            (pk,))]
    folders = sorted({p.rpartition("/")[0] for p in paths})
    times: dict[str, list[float]] = {"paths": [], "folders": []}
    counts = {}
    for _ in range(5):
        for name, named in (("paths", paths), ("folders", folders)):
            started = time.perf_counter()
            counts[name] = manifest(sandbox.url, 318, named)["header"]["count"]
            times[name].append(time.perf_counter() - started)
    explicit, by_folder = statistics.median(times["paths"]), statistics.median(times["folders"])
    print(f"\ndownload-manifest, {len(paths):,} explicit paths  : {explicit:6.3f} s ({counts['paths']:,} files; "
          f"target <= 0.2 s: {'met' if explicit <= 0.2 else 'MISSED'})")
    print(f"download-manifest, their {len(folders)} folders     : {by_folder:6.3f} s ({counts['folders']:,} files; "
          f"{by_folder / counts['folders'] * 1e6:.0f} us per file vs {explicit / counts['paths'] * 1e6:.0f})")


def content_figures() -> float:
    from sparc.sandbox.catalogue.content import BLOCK_SIZE, _block, generated_block, iter_generated

    n = 2000
    started = time.perf_counter()
    for i in range(n):
        b"".join(iter_generated(7, BLOCK_SIZE + 4096 * (i % 200), BLOCK_SIZE + 4096 * (i % 200 + 1)))
    ranged = (time.perf_counter() - started) / n
    started = time.perf_counter()
    for i in range(n // 10):
        generated_block(7, 1 + i % 200)
    whole = (time.perf_counter() - started) / (n // 10)
    print(f"\n4 KiB range of generated content: {ranged * 1e6:6.1f} us ({whole / ranged:.0f}x cheaper than the "
          f"whole 1 MiB block at {whole * 1e6:.0f} us)")
    size = GIB // 2
    started = time.perf_counter()
    for _ in iter_generated(42, 0, size):
        pass
    generated = size / (time.perf_counter() - started)
    block = _block()
    started = time.perf_counter()
    for _ in range(size // BLOCK_SIZE):
        bytes(bytearray(block))  # one copy of each block: the cheapest real producer
    copied = size / (time.perf_counter() - started)
    print(f"generated content, one core     : {generated / 1e9:6.2f} GB/s "
          f"({generated / copied:.2f}x a plain copy at {copied / 1e9:.2f} GB/s)")
    return generated


def startup(data_dir: Path) -> float:
    from sparc.sandbox.process import SandboxProcess

    started = time.perf_counter()
    with SandboxProcess(data_dir):
        return time.perf_counter() - started


def bare_start() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def raw_http_rate(url: str) -> tuple[int, float]:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        target = parts.path + ("?" + parts.query if parts.query else "")
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                     f"Connection: close\r\n\r\n".encode())
        buf = bytearray(4 << 20)
        received, started = 0, time.perf_counter()
        while n := sock.recv_into(buf):
            received += n
        return received, received / (time.perf_counter() - started)


def main() -> None:
    from sparc.sandbox.process import SandboxProcess

    scratch = Path(tempfile.mkdtemp(prefix="sparc-bench-"))
    try:
        with SandboxProcess(scratch / "serve", "--time-scale", "0") as sandbox:
            request_rates(sandbox, scratch)
            manifest_time(sandbox, scratch / "serve" / "sandbox.sqlite3")
            url = manifest_urls(sandbox.url, 90, [BIG_FILE])[0]
            generated = content_figures()
            received, rate = raw_http_rate(url)
            print(f"1 GiB file over loopback HTTP   : {rate / 1e9:6.2f} GB/s "
                  f"({received / GIB:.2f} GiB received; {rate / generated:.2f}x generation)")

        bare = statistics.median(bare_start() for _ in range(3))
        fresh = statistics.median(startup(scratch / f"fresh{i}") for i in range(2))
        reused = statistics.median(startup(scratch / "fresh0") for _ in range(2))
        print(f"\nbare interpreter start          : {bare * 1000:7.0f} ms")
        print(f"sandbox start, fresh data dir   : {fresh * 1000:7.0f} ms ({fresh / bare:.1f}x bare; "
              f"target < 2000 ms: {'met' if fresh < 2 else 'MISSED'})")
        print(f"sandbox start, reused data dir  : {reused * 1000:7.0f} ms ({reused / bare:.1f}x bare)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--load"]:
        load_main(sys.argv[2:])
    elif sys.argv[1:2] == ["--bare"]:
        bare_main(sys.argv[2:])
    elif sys.argv[1:2] == ["--inprocess"]:
        inprocess_main()
    else:
        main()
