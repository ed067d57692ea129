"""Download speed, CPU and memory of ``client.pennsieve.download`` against curl and a plain httpx
loop, on the same URLs of a local sandbox, measured in the same run (interleaved rounds, medians).

Workloads (issue 10):

* ``large``: one 1 GiB file (90/1 ``recording_full.dat``, a multipart ETag of 128 x 8 MiB parts,
  which is what production lets a client check): target >= 0.9x curl, peak RSS < 100 MB;
* ``mid``: the 6 files of 120/1 ``files`` (1-100 MB, 132 MB): reported against the same baselines;
* ``small``: 2,000 small files (318/1 ``files/primary/sub-01..08``): target >= 1.0x curl (one
  process, one reused connection) to disk, >= 0.9x a plain httpx loop on tmpfs, client CPU per
  file <= 1.3x the plain loop's.

Each runs to disk (a scratch folder) and to tmpfs (``/dev/shm``, when present). The machine's
ceilings (sha256 and MD5 on one core, MD5 of eight parts side by side as ``_md5lanes`` hashes
them, Python writing to disk and to tmpfs) and the sandbox's CPU share are printed beside the
figures. For the large file, ``sparc.client x4 hashlib`` is the same download with the parts
hashed by hashlib (the C module turned off in that process): what the eight lanes bring.
Prints; asserts nothing. Run::

    python bench/download.py [--rounds 3] [--only large,mid,small] [--no-tmpfs]
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from sparc.client import _md5parts
from sparc.sandbox.process import SandboxProcess

MiB = 1 << 20
LARGE = (90, 1, ["files/primary/sub-1/sam-1/recording_full.dat"])
MID = (120, 1, ["files"])
SMALL = (318, 1, [f"files/primary/sub-{s:02d}" for s in range(1, 9)])
CURL = shutil.which("curl")


# -- the machine ---------------------------------------------------------------------------------
def ceilings(scratch: Path, tmpfs: Path | None) -> dict[str, float]:
    """GB/s: sha256 and MD5 on one core, Python writing 256 MiB (1 MiB blocks, no fsync)."""
    block = os.urandom(MiB)
    out: dict[str, float] = {}
    for name in ("sha256", "md5"):
        digest = hashlib.new(name)
        started = time.perf_counter()
        for _ in range(256):
            digest.update(block)
        out[name] = 256 * MiB / (time.perf_counter() - started) / 1e9
    if _md5parts.LANES:  # eight 32 MiB parts side by side, as sparc.client checks multipart ETags
        from sparc.client import _md5lanes

        parts = [os.urandom(32 * MiB) for _ in range(8)]
        states = bytearray(128)
        started = time.perf_counter()
        _md5lanes.update(states, parts)
        out["md5 x8 lanes"] = 256 * MiB / (time.perf_counter() - started) / 1e9
    out["disk create"] = create_seconds(scratch) * 1e6  # microseconds, not GB/s
    for label, folder in (("disk write", scratch), ("tmpfs write", tmpfs)):
        if folder is None:
            continue
        path = folder / "ceiling.bin"
        started = time.perf_counter()
        with path.open("wb") as f:
            for _ in range(256):
                f.write(block)
        out[label] = 256 * MiB / (time.perf_counter() - started) / 1e9
        path.unlink()
    return out


def create_seconds(folder: Path, files: int = 300) -> float:
    """Seconds to create (and close) one empty file in ``folder``, the median of ``files``.

    On ext4 without a journal (this host's), creating a file skips the inodes freed in the
    last 5 s (300 s while their inode table block is dirty), one buffer lookup each
    (``recently_deleted``): after a test suite or a bench deleted thousands of files, each
    create costs 0.5-1 ms instead of ~20 us, and curl, creating its 2,000 files one after
    another, pays it in full. Printed beside the small-files figures, which swing with it."""
    place = folder / "create-probe"
    place.mkdir()
    try:
        times = []
        for i in range(files):
            started = time.perf_counter()
            os.close(os.open(place / f"f{i}", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            times.append(time.perf_counter() - started)
        return statistics.median(times)
    finally:
        shutil.rmtree(place, ignore_errors=True)


class Meter:
    """Wall seconds, this process's CPU seconds (every thread), its children's (curl), and
    the sandbox's CPU seconds, over one run."""

    def __init__(self, sandbox: SandboxProcess) -> None:
        self.sandbox = sandbox

    def sandbox_cpu(self) -> float:
        return float(self.sandbox.get_json("/_sandbox/process")["cpu_seconds"])

    def run(self, func: Callable[[], object]) -> dict[str, float]:
        """Wall and CPU seconds of ``func()`` (this process and its children), and the sandbox's
        share of a core; or the figures ``func`` returns, measured where it ran them."""
        own, kids = resource.getrusage(resource.RUSAGE_SELF), \
            resource.getrusage(resource.RUSAGE_CHILDREN)
        sb0 = self.sandbox_cpu()
        started = time.perf_counter()
        inner = func()
        wall = time.perf_counter() - started
        sb1 = self.sandbox_cpu()
        if isinstance(inner, dict):
            return inner
        own2, kids2 = resource.getrusage(resource.RUSAGE_SELF), \
            resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (own2.ru_utime - own.ru_utime + own2.ru_stime - own.ru_stime
               + kids2.ru_utime - kids.ru_utime + kids2.ru_stime - kids.ru_stime)
        return {"wall": wall, "cpu": cpu, "sandbox": (sb1 - sb0) / wall if wall else 0.0}


def settle(max_wait: float = 20.0) -> float:
    """``sync``, then wait (at most ``max_wait`` s) until no task has waited for the disk more
    than 2% of half a second (``/proc/pressure/io``: this disk discards freed blocks, which
    goes on after a large file is deleted). The seconds it took."""
    started = time.monotonic()
    os.sync()
    while time.monotonic() - started < max_wait:
        before = io_stall()
        if before is None:
            break
        time.sleep(0.5)
        after = io_stall()
        if after is None or after - before < 10_000:  # microseconds stalled in 0.5 s
            break
    return time.monotonic() - started


def io_stall() -> int | None:
    """Microseconds some task has waited for I/O since boot, or ``None`` (no PSI here)."""
    try:
        with open("/proc/pressure/io") as f:
            some = f.readline().split()
    except OSError:
        return None
    return int(some[-1].partition("=")[2]) if some and some[-1].startswith("total=") else None


# -- the contenders ------------------------------------------------------------------------------
def local(out: Path, entry: dict[str, Any]) -> Path:
    return out.joinpath(*entry["path"], entry["fileName"])


def curl(entries: list[dict[str, Any]], out: Path) -> None:
    """One curl process, one reused connection, files one after another (``-K`` list)."""
    config = out.with_name(out.name + ".curl")
    with config.open("w") as f:
        for e in entries:
            f.write(f'url = "{e["url"]}"\noutput = "{local(out, e)}"\n')
    subprocess.run([CURL or "curl", "-s", "-f", "--create-dirs", "-K", str(config)], check=True)
    config.unlink()


def plain(entries: list[dict[str, Any]], out: Path) -> None:
    """A plain httpx loop: one client, one stream per file, written as received, no checks."""
    with httpx.Client(timeout=60) as http:
        for e in entries:
            dest = local(out, e)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with http.stream("GET", e["url"]) as resp, dest.open("wb") as f:
                for chunk in resp.iter_bytes():
                    f.write(chunk)


OURS = r"""
import json, resource, sys, time
import httpx
from sparc.client import SparcClient
job = json.loads(sys.argv[1])
if job.get("no_lanes"):  # the baseline: multipart ETag parts hashed with hashlib, as before
    from sparc.client import _md5parts
    _md5parts.LANES = 0
def sandbox_cpu():
    return httpx.get(job["sandbox"] + "/_sandbox/process").json()["cpu_seconds"]
with SparcClient(connect=False) as client:  # a first small download opens the connections
    client.pennsieve.download(90, "metadata/records", job["out"] + ".warm", version=1,
                              progress=False)
    sb0, r0, t0 = sandbox_cpu(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = client.pennsieve.download(job["dataset"], job["paths"], job["out"],
                                       version=job["version"], max_workers=job["workers"],
                                       progress=False)
    t1, r1, sb1 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF), sandbox_cpu()
assert result.ok
wall = t1 - t0
print(json.dumps({"wall": wall, "sandbox": (sb1 - sb0) / wall,
                  "cpu": r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime,
                  "checks": sorted({f.check for f in result.files})}))
"""


def ours(sandbox: SandboxProcess, work: tuple[int, int, list[str]],
         workers: int, no_lanes: bool = False) -> Callable[[Path], dict[str, float]]:
    """``download()`` in a fresh process, as curl runs in its own: its call timed there, after a
    first small download (start-up and import left out: bench/import_time.py measures them).
    In this process, after the other contenders' runs, the same call took 1.2-1.4x as long."""
    dataset, version, paths = work

    def run(out: Path) -> dict[str, float]:
        job = {"sandbox": sandbox.url, "dataset": dataset, "version": version, "paths": paths,
               "workers": workers, "out": str(out / "got"), "no_lanes": no_lanes}
        done = subprocess.run([sys.executable, "-c", OURS, json.dumps(job)], text=True,
                              capture_output=True)
        if done.returncode:
            raise RuntimeError(f"sparc.client run failed: {done.stderr[-3000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        ours.checks.update(figures.pop("checks"))  # type: ignore[attr-defined]
        shutil.rmtree(out / "got.warm", ignore_errors=True)
        return figures
    return run


ours.checks = set()  # type: ignore[attr-defined]


# -- one workload --------------------------------------------------------------------------------
def measure(name: str, contenders: dict[str, Callable[[Path], object]], places: dict[str, Path],
            rounds: int, meter: Meter, keep: bool = False) -> dict[tuple[str, str], dict[str, float]]:
    """Every contender in every place, ``rounds`` interleaved rounds, each round starting with
    the next contender (no one always runs after the same one): medians. Each run starts once
    the disk is quiet (:func:`settle`): writing back and discarding the run before's gigabyte
    would take CPU from whoever runs next (runs of ours at 0.50x-0.63x curl used 3.8 CPU s/GB
    against 2.4 when quiet, with tasks stalled on I/O 41% of the time).

    ``keep``: outputs are deleted only once the workload is over. For many small files this
    matters: ext4 skips inodes freed in the last 5 s (300 s while their table block is dirty)
    when it allocates one (``recently_deleted``), so a run right after another's 2,000 files
    were deleted pays a scan per created file (0.6 ms here) that a researcher's disk does not
    have, and whoever runs later in a round pays the most."""
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    labels = list(contenders)
    made: list[Path] = []
    try:
        for i in range(rounds):
            for place, folder in places.items():
                for label in labels[i % len(labels):] + labels[:i % len(labels)]:
                    out = folder / f"{name}-{label}-{i}"
                    shutil.rmtree(out, ignore_errors=True)
                    out.mkdir(parents=True)
                    made.append(out)
                    settle()  # no one pays for the disk work the run before left behind
                    run = meter.run(functools.partial(contenders[label], out))
                    runs.setdefault((place, label), []).append(run)
                    if not keep:
                        shutil.rmtree(out, ignore_errors=True)
    finally:
        for out in made:
            shutil.rmtree(out, ignore_errors=True)
    return {key: {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            for key, rs in runs.items()}


def report(title: str, figures: dict[tuple[str, str], dict[str, float]], size: int, files: int,
           targets: list[tuple[str, str, str, float]]) -> None:
    """One line per place and contender; the ratios with their targets."""
    print(f"\n== {title}: {files} file{'s' * (files > 1)}, {size / 1e6:,.1f} MB ==")
    for (place, label), f in figures.items():
        per = f"{f['cpu'] / files * 1e3:6.2f} ms CPU/file" if files > 1 else \
            f"{f['cpu'] / (size / 1e9):5.2f} CPU s/GB"
        print(f"  {place:5} {label:24} {f['wall']:7.2f} s {size / f['wall'] / 1e6:8.1f} MB/s  "
              f"{per}  sandbox CPU {f['sandbox'] * 100:3.0f}% of a core")
    for place, versus, what, target in targets:
        mine = next((f for (p, label), f in figures.items()
                     if p == place and label.startswith("sparc")), None)
        base = figures.get((place, versus))
        if mine is None or base is None:
            continue
        if what == "speed":
            ratio = base["wall"] / mine["wall"]
            verdict = f"target >= {target}x: {'met' if ratio >= target else 'MISSED'}" if target \
                else "no target"
            print(f"  -> {place}: speed vs {versus}: {ratio:.2f}x ({verdict})")
        else:
            ratio = mine["cpu"] / base["cpu"]
            print(f"  -> {place}: client CPU vs {versus}: {ratio:.2f}x (target <= {target}x: "
                  f"{'met' if ratio <= target else 'MISSED'})")


def cpu_floor(figures: dict[tuple[str, str], dict[str, float]], place: str, size: int,
              md5_rate: float) -> None:
    """The fastest this machine could verify the file: the CPU seconds our run took (client and
    sandbox) spread over every core, against curl's time (which verifies nothing)."""
    mine = figures.get((place, "sparc.client x4"))
    base = figures.get((place, "curl"))
    if mine is None or base is None:
        return
    cores = os.cpu_count() or 1
    used = mine["cpu"] + mine["sandbox"] * mine["wall"]
    floor = used / cores
    print(f"  -> {place}: CPU floor: sparc.client {mine['cpu']:.2f} + sandbox "
          f"{mine['sandbox'] * mine['wall']:.2f} CPU s (MD5 alone ~{size / 1e9 / md5_rate:.2f})"
          f" over {cores} cores: no run can end before {floor:.2f} s, "
          f"at best {base['wall'] / floor:.2f}x curl ({mine['wall'] / floor:.2f}x the floor)")


CHILD = """
import json, os, resource, sys
from sparc.client import SparcClient
with SparcClient(connect=False) as client:
    client.pennsieve.download(90, sys.argv[2], sys.argv[1], version=1, progress=False)
try:  # this process's own peak: ru_maxrss also counts the parent forked before the exec
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"maxrss_mib": peak / 1024}))
"""


def peak_rss(sandbox: SandboxProcess, out: Path) -> float:
    """The peak RSS (MiB) of a fresh interpreter downloading the 1 GiB file."""
    done = subprocess.run([sys.executable, "-c", CHILD, str(out), LARGE[2][0]],
                          capture_output=True, text=True, check=True,
                          env={**os.environ, **sandbox.env})
    shutil.rmtree(out, ignore_errors=True)
    return float(json.loads(done.stdout.strip().splitlines()[-1])["maxrss_mib"])


def resume(http: Any, sandbox: SandboxProcess, scratch: Path) -> None:
    """Bytes moved to finish a download interrupted half-way (120/1, 25 MiB, MD5 ETag)."""
    from sparc.client._download import RemoteFile, fetch_file, partial_path

    [entry] = httpx.post(f"{sandbox.url}/discover/datasets/120/versions/1/files/"
                         "download-manifest", json={"paths": ["files/primary/sub-2/ecap_run1.edf"]},
                         timeout=60).json()["data"]
    remote = RemoteFile(entry["url"], int(entry["size"]))
    size = remote.size or 0
    whole = fetch_file(http, remote, scratch / "whole.edf").path.read_bytes()
    dest = scratch / "resumed.edf"
    partial_path(dest, remote).write_bytes(whole[: size // 2])
    sandbox.reset_stats()
    outcome = fetch_file(http, remote, dest)
    moved = sandbox.stats()["bytes_sent"]
    assert dest.read_bytes() == whole
    print(f"resume after 50%: moved {moved / 1e6:.1f} MB of {size / 1e6:.1f} MB "
          f"({moved / size:.2f}x a full download; checked: {outcome.check})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="large,mid,small")
    parser.add_argument("--no-tmpfs", action="store_true")
    args = parser.parse_args()
    wanted = set(args.only.split(","))
    scratch = Path(tempfile.mkdtemp(prefix="sparc-bench-"))
    shm = Path("/dev/shm")
    tmpfs = None if args.no_tmpfs or not shm.is_dir() else Path(
        tempfile.mkdtemp(prefix="sparc-bench-", dir=shm))
    places = {"disk": scratch / "out", **({"tmpfs": tmpfs} if tmpfs else {})}
    try:
        with SandboxProcess(scratch / "sb", "--time-scale", "0") as sandbox:
            os.environ.update(sandbox.env)
            from sparc.client import SparcClient

            print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; "
                  f"{args.rounds} interleaved rounds, medians; curl: {CURL or 'not found'}")
            limits = ceilings(scratch, tmpfs)
            print("ceilings (one core): " + ", ".join(
                f"{k} {v:.0f} us per file" if k == "disk create" else f"{k} {v:.2f} GB/s"
                for k, v in limits.items()))
            meter = Meter(sandbox)
            with SparcClient(connect=False) as client:
                p = client.pennsieve
                for name, work, workers, title in (
                        ("large", LARGE, 4, "one 1 GiB file, multipart ETag"),
                        ("mid", MID, 4, "120/1 files: 1-100 MB"),
                        ("small", SMALL, 4, "2,000 small files of 318/1")):
                    if name not in wanted:
                        continue
                    entries = p.download_manifest(work[0], work[2], work[1])["data"]
                    size = sum(int(e["size"]) for e in entries)
                    contenders: dict[str, Callable[[Path], object]] = {}
                    if CURL:
                        contenders["curl"] = functools.partial(curl, entries)
                    contenders["httpx loop"] = functools.partial(plain, entries)
                    contenders[f"sparc.client x{workers}"] = ours(sandbox, work, workers)
                    if name == "small":
                        contenders["sparc.client x1"] = ours(sandbox, work, 1)
                    if name == "large" and _md5parts.LANES:
                        contenders[f"sparc.client x{workers} hashlib"] = \
                            ours(sandbox, work, workers, no_lanes=True)
                    create_before = create_seconds(scratch) * 1e6
                    figures = measure(name, contenders, places, args.rounds, meter,
                                      keep=name != "large")
                    targets = [("disk", "curl", "speed", 0.9), ("tmpfs", "curl", "speed", 0.0)] \
                        if name == "large" else \
                        [("disk", "curl", "speed", 1.0), ("tmpfs", "httpx loop", "speed", 0.9),
                         ("tmpfs", "httpx loop", "cpu", 1.3)] if name == "small" else \
                        [("disk", "curl", "speed", 1.0), ("tmpfs", "httpx loop", "speed", 0.9)]
                    report(title, figures, size, len(entries), targets)
                    if name == "small":
                        print(f"  disk: creating a file took {create_before:.0f} us before these "
                              f"runs, {create_seconds(scratch) * 1e6:.0f} us after (see "
                              "create_seconds: files deleted in the last minutes slow creates "
                              "on this disk, curl's most)")
                        one = figures.get(("tmpfs" if tmpfs else "disk", "sparc.client x1"))
                        base = figures.get(("tmpfs" if tmpfs else "disk", "httpx loop"))
                        if one and base:
                            ratio = one["cpu"] / base["cpu"]
                            print(f"  -> one worker, like the loop: client CPU/file "
                                  f"{ratio:.2f}x the httpx loop's (target <= 1.3x: "
                                  f"{'met' if ratio <= 1.3 else 'MISSED'})")
                        print("  how: kept-alive sockets, no httpx per file; each file received "
                              "into an unnamed file (Linux O_TMPFILE) linked to its name once "
                              "checked (one name operation, not a create and a rename: a "
                              "create holds the folder's lock while the file system finds an "
                              "inode, and four workers spun on it); each folder listed once "
                              "(no lookup per new file); partial files on raw descriptors (one "
                              "open, no seek, stat or unlock).")
                    if name == "large":
                        cpu_floor(figures, "disk", size,
                                  limits.get("md5 x8 lanes") or limits["md5"])
                        rss = peak_rss(sandbox, scratch / "rss")
                        print(f"  peak RSS of a fresh interpreter downloading it: {rss:.0f} MiB "
                              f"(target < 100 MB: {'met' if rss * 1.048576 < 100 else 'MISSED'})")
                        print("  how: one stream (curl's way), the socket read straight into "
                              "reused 8 MiB blocks (one multipart part each: no bytes object per "
                              "read) and each piece of at most 256 KiB written at once, while still "
                              "in the core's cache (whole blocks written later from another thread "
                              "cost twice the kernel time; 512 KiB pieces cost 1.6x on a busy "
                              "host); the multipart ETag's parts read back from the file "
                              "through a map (no copy) and hashed eight at a time, one per AVX2 "
                              "lane (_md5lanes, about 4x hashlib per core: MD5 is a chain of "
                              "dependent steps, one part keeps a core mostly idle), on a hash "
                              "pool, in parallel; without the C module, each part hashed with "
                              "hashlib where it lies in memory ('hashlib' above).")
                print(f"\nchecks used by sparc.client: {', '.join(sorted(ours.checks))}")  # type: ignore[attr-defined]
                resume(p.http, sandbox, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if tmpfs is not None:
            shutil.rmtree(tmpfs, ignore_errors=True)


if __name__ == "__main__":
    main()
