"""Multipart ETags checked eight parts at a time (``_md5lanes``, AVX2), read back from the file.

The same digests as hashlib for every shape (lanes, tails, odd part sizes, offsets); the large
download really takes that path (and verifies, resumes, catches corruption: test_perf_large.py
runs on it); without the C module everything still checks, with hashlib.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import platform
import random
import shutil
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from test_perf_large import BIG, big, sha256_of  # noqa: F401 - the 20-part file and its sha256

from sparc.client import SparcClient, _download, _md5parts
from sparc.client._download import MiB, RemoteFile, Verifier, _MultipartMD5, fetch_file
from sparc.sandbox.process import SandboxProcess


def _cpu_has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any(line.startswith("flags") and " avx2" in line for line in cpuinfo)
    except OSError:
        return False


def _write(path: Path, data: bytes) -> int:
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


def _can_build() -> str | None:
    """Why ``make env`` cannot have built the kernel here, or ``None`` when it can."""
    if not (sys.platform == "linux" and platform.machine() == "x86_64"):
        return "the AVX2 kernel is built for x86-64 Linux here (elsewhere: hashlib)"
    if not (shutil.which("cc") or shutil.which("gcc")):
        return "no C compiler (install gcc: the kernel is optional)"
    if not (Path(sysconfig.get_paths()["include"]) / "Python.h").exists():
        return "no Python headers (install python3-dev: the kernel is optional)"
    if not _cpu_has_avx2():
        return "this CPU has no AVX2"
    return None


def test_the_kernel_is_built_and_used_where_it_can_be() -> None:
    """With a compiler, Python's headers and AVX2, `make env` built it (hatch_build.py) and it
    is used: a build that quietly fell back to hashlib would be 4x slower on every multipart
    ETag. Without them, the package goes without it (LANES 0)."""
    why_not = _can_build()
    if why_not is not None and os.environ.get("SPARC_NO_EXTENSIONS") != "1":
        pytest.skip(why_not)
    assert _md5parts.LANES == (0 if os.environ.get("SPARC_NO_EXTENSIONS") == "1" else 8)


@pytest.mark.parametrize("mapped", [True, False])
@pytest.mark.parametrize(("part_size", "count", "tail", "start"), [
    (MiB, 8, 0, 0),                  # one full group
    (MiB, 19, 123, 0),               # two groups, three lanes, a tail
    (MiB, 3, 0, 2 * MiB),            # the fewest lanes, at an offset
    (MiB, 2, 0, 0),                  # fewer: hashlib
    (MiB + 4096, 9, 0, 0),           # a short last slice in every lane
    (3 * MiB + 64, 9, MiB + 7, 0),   # whole blocks but not whole pages: hashlib
    (1000, 5, 17, 0),                # not a multiple of 64: hashlib for each
    (MiB, 0, 5, 0),                  # a tail alone
])
def test_part_md5s_equal_hashlib(tmp_path: Path, part_size: int, count: int, tail: int,
                                 start: int, mapped: bool) -> None:
    data = random.Random(part_size + count).randbytes(start + part_size * count + tail + 99)
    fd = _write(tmp_path / "parts", data)
    try:
        got = _md5parts.part_md5s(fd, start, part_size, count, tail, mapped=mapped)
    finally:
        os.close(fd)
    spans = [(start + i * part_size, part_size) for i in range(count)]
    spans += [(start + count * part_size, tail)] if tail else []
    assert got == [hashlib.md5(data[at:at + n]).digest() for at, n in spans]


def test_a_file_shorter_than_its_parts_is_an_error(tmp_path: Path) -> None:
    fd = _write(tmp_path / "short", bytes(8 * MiB - 1))
    try:
        with pytest.raises(OSError, match="ends before"):
            _md5parts.part_md5s(fd, 0, MiB, 8)
        with pytest.raises(OSError, match="ends before"):
            _md5parts.part_md5s(fd, 0, 1000, 9000)  # the hashlib path
    finally:
        os.close(fd)


@pytest.mark.skipif(not _md5parts.LANES, reason="needs the C module (see the first test)")
def test_a_file_that_cannot_be_mapped_is_read(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Some FUSE file systems refuse maps, an address-space limit too: the job reads instead."""
    data = random.Random(3).randbytes(8 * MiB)
    fd = _write(tmp_path / "parts", data)

    def refused(*args: object, **kwargs: object) -> None:
        raise OSError(19, "No such device")

    monkeypatch.setattr(_md5parts.mmap, "mmap", refused)
    try:
        got = _md5parts.part_md5s(fd, 0, MiB, 8)
    finally:
        os.close(fd)
    assert got == [hashlib.md5(data[i * MiB:(i + 1) * MiB]).digest() for i in range(8)]


def test_a_stopped_job_stops(tmp_path: Path) -> None:
    fd = _write(tmp_path / "parts", bytes(8 * MiB))
    stop = threading.Event()
    stop.set()
    try:
        with pytest.raises(_md5parts.Stopped):
            _md5parts.part_md5s(fd, 0, MiB, 8, stop=stop)
        with pytest.raises(_md5parts.Stopped):
            _md5parts.part_md5s(fd, 0, MiB, 1, stop=stop)
    finally:
        os.close(fd)


@pytest.mark.skipif(not _md5parts.LANES, reason="needs the C module (see the first test)")
def test_settle_stops_the_jobs_and_leaves_no_descriptor(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Before its file is truncated, a hasher's jobs are told to stop and waited for: none
    reads a map of a shrunk file, none keeps a duplicate of its descriptor (and lock)."""
    def until_stopped(fd: int, start: int, part_size: int, lanes: int, mapped: bool,
                      stop: threading.Event | None) -> list[bytes]:
        assert stop is not None
        if not stop.wait(5):  # a settle that only waited would take 5 s per job
            return [bytes(16)] * lanes
        raise _md5parts.Stopped("told to stop")

    monkeypatch.setattr(_md5parts, "_lane_md5s", until_stopped)
    fd = _write(tmp_path / "parts", bytes(16 * MiB))
    try:
        before = len(os.listdir(f"/proc/{os.getpid()}/fd"))
        hasher = _MultipartMD5(MiB, parallel=True, file=fd, size=16 * MiB)
        hasher.advance(16 * MiB)  # two groups of eight parts, both waiting
        assert len(hasher._pending) == 2
        started = time.monotonic()
        hasher.settle()
        assert time.monotonic() - started < 2
        assert not hasher._pending
        assert len(os.listdir(f"/proc/{os.getpid()}/fd")) == before
        with pytest.raises(RuntimeError, match="stopped"):
            hasher.hexdigest()  # incomplete: never taken for a digest
    finally:
        os.close(fd)


@pytest.mark.skipif(not _md5parts.LANES, reason="needs the C module (see the test above)")
def test_the_kernel_checks_its_arguments() -> None:
    from sparc.client import _md5lanes

    with pytest.raises(ValueError, match="128 bytes"):
        _md5lanes.update(bytearray(64), [bytes(64)])
    with pytest.raises(ValueError, match="1 to 8 blocks"):
        _md5lanes.update(bytearray(128), [bytes(64)] * 9)
    with pytest.raises(ValueError, match="one length, a multiple of 64"):
        _md5lanes.update(bytearray(128), [bytes(64), bytes(128)])
    with pytest.raises(ValueError, match="one length, a multiple of 64"):
        _md5lanes.update(bytearray(128), [bytes(65)])
    with pytest.raises(BufferError):
        _md5lanes.update(bytes(128), [bytes(64)])  # the states must be writable


@pytest.mark.parametrize("chunking", [1000, 65536, 3 * MiB + 5])
def test_the_hasher_reading_the_file_equals_hashing_in_memory(tmp_path: Path,
                                                              chunking: int) -> None:
    """Bytes written then fed (a prefix fed as kept from an earlier run): the same ETag as
    the in-memory hasher, whatever the chunking, read once however often it is asked."""
    data = random.Random(chunking).randbytes(19 * MiB + 4321)
    expected = _MultipartMD5(MiB)
    expected.update(data)
    fd = _write(tmp_path / "file", data)
    try:
        hasher = _MultipartMD5(MiB, parallel=True, file=fd, size=len(data))
        assert (hasher.file == fd and not hasher.parallel) if _md5parts.LANES else hasher.parallel
        kept = 5 * MiB + 3
        if hasher.file is not None:
            hasher.advance(kept)
        else:  # without the C module: the in-memory hasher, fed the kept bytes
            hasher.update(data[:kept])
        for i in range(kept, len(data), chunking):
            hasher.update(memoryview(data)[i:i + chunking])
        assert hasher.hexdigest() == expected.hexdigest() == hasher.hexdigest()
        assert expected.hexdigest().endswith("-20")
    finally:
        os.close(fd)


def test_the_file_is_what_is_checked(tmp_path: Path) -> None:
    """Reading the file back checks the bytes on disk, not those fed (same length)."""
    on_disk = random.Random(1).randbytes(9 * MiB)
    expected = _MultipartMD5(MiB)
    expected.update(on_disk)
    fd = _write(tmp_path / "file", on_disk)
    try:
        hasher = _MultipartMD5(MiB, parallel=True, file=fd, size=len(on_disk))
        hasher.update(bytes(len(on_disk)))
        digest = hasher.hexdigest()
    finally:
        os.close(fd)
    assert (digest == expected.hexdigest()) == bool(_md5parts.LANES)


def test_which_checks_read_the_file(tmp_path: Path) -> None:
    """Only a single guess of at least eight parts reads the file back: several guesses hash
    the stream in order, fewer parts are hashed in memory while they stream."""
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        one = Verifier.choose(RemoteFile("u", 100 * MiB), {"etag": f'"{"a" * 32}-13"'}, file=fd)
        several = Verifier.choose(RemoteFile("u", 60 * MiB), {"etag": f'"{"a" * 32}-2"'}, file=fd)
        few = Verifier.choose(RemoteFile("u", 36 * MiB), {"etag": f'"{"a" * 32}-5"'}, file=fd)
        whole = Verifier.choose(RemoteFile("u", 400 * MiB), {"etag": f'"{"a" * 32}-1"'}, file=fd)
    finally:
        os.close(fd)
    assert one.reads_file == bool(_md5parts.LANES)
    assert not several.reads_file and not few.reads_file and not whole.reads_file
    assert few.part_size == 8 * MiB  # hashed in parallel in memory, as before


@pytest.mark.skipif(not _md5parts.LANES, reason="needs the C module (see the first test)")
def test_a_large_download_hashes_its_parts_eight_at_a_time(
        client: SparcClient, big: tuple[RemoteFile, str], tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The 20-part file: two groups of eight side by side, then the last three parts and the
    short one each on its own as it comes (no group of eight will follow)."""
    remote, sha = big
    groups: list[int] = []
    singles: list[int] = []
    lane_md5s, hashlib_md5 = _md5parts._lane_md5s, _md5parts._hashlib_md5

    def counted(fd: int, start: int, part_size: int, lanes: int, *args: Any) -> list[bytes]:
        groups.append(lanes)
        return lane_md5s(fd, start, part_size, lanes, *args)

    def single(fd: int, start: int, size: int, *args: Any) -> bytes:
        singles.append(size)
        return hashlib_md5(fd, start, size, *args)

    monkeypatch.setattr(_md5parts, "_lane_md5s", counted)
    monkeypatch.setattr(_md5parts, "_hashlib_md5", single)
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / BIG.rsplit("/", 1)[-1])
    assert outcome.check == "md5-multipart" and outcome.checksum is not None
    assert outcome.checksum.endswith("-20")
    assert sha256_of(outcome.path) == sha
    assert groups == [8, 8]
    assert sorted(singles) == sorted([8 * MiB] * 3 + [(remote.size or 0) - 19 * 8 * MiB])


def test_without_the_module_downloads_check_with_hashlib(
        client: SparcClient, big: tuple[RemoteFile, str], tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    remote, sha = big
    monkeypatch.setattr(_md5parts, "LANES", 0)
    monkeypatch.setattr(_md5parts, "_lane_md5s", None)  # would fail if called
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / "big.exf")
    assert outcome.check == "md5-multipart" and sha256_of(outcome.path) == sha


def test_without_the_module_the_package_imports(tmp_path: Path) -> None:
    """A build without a compiler has no ``_md5lanes``: the package still imports, LANES 0."""
    code = ("import sys; sys.modules['sparc.client._md5lanes'] = None\n"
            "from sparc.client import _md5parts, SparcClient\n"
            "print(_md5parts.LANES)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=tmp_path)
    assert done.stdout.strip() == "0"


def test_a_resumed_attempt_goes_on_with_the_same_check(
        client: SparcClient, faults: SandboxProcess, big: tuple[RemoteFile, str],  # noqa: F811
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A drop mid-file, then a 206 from there: the check chosen for the first answer takes the
    rest (its parts already read back stay read), not a new one hashing the kept bytes again."""
    remote, sha = big
    chosen: list[Verifier] = []
    choose = Verifier.choose.__func__  # type: ignore[attr-defined]

    def counted(cls: type[Verifier], *args: Any, **kwargs: Any) -> Verifier:
        chosen.append(choose(cls, *args, **kwargs))
        return chosen[-1]

    monkeypatch.setattr(Verifier, "choose", classmethod(counted))
    faults.set_faults([{"route": "GET /_assets/*", "kind": "reset",
                        "after_bytes": 90 * MiB + 5, "count": 1}])
    faults.reset_stats()
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / "big.exf")
    assert outcome.check == "md5-multipart" and sha256_of(outcome.path) == sha
    assert faults.stats()["requests"]["GET /_assets/{bucket}/{key}"] == 2
    assert len(chosen) == 1


class _NoRanges(http.server.BaseHTTPRequestHandler):
    """Serves DATA whole, ignoring ``Range`` (as some servers and proxies do); the first
    answer breaks off after BREAK bytes."""

    protocol_version = "HTTP/1.1"
    data = b""
    etag = ""
    ranges: list[str | None] = []
    BREAK = 70 * MiB

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).ranges.append(self.headers.get("Range"))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.data)))
        self.send_header("ETag", f'"{self.etag}"')
        self.end_headers()
        if len(self.ranges) == 1:
            self.wfile.write(self.data[:self.BREAK])
            self.close_connection = True
            return
        self.wfile.write(self.data)

    def log_message(self, *args: Any) -> None:
        pass


def test_jobs_stop_before_a_server_ignoring_range_starts_the_file_over(
        client: SparcClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts read back from the partial file, then the file started over (a 200 to a resumed
    request): the jobs reading it are stopped and waited for first, and the new answer is
    checked from byte 0."""
    data = random.Random(11).randbytes(80 * MiB + 12345)
    part = 8 * MiB
    etag = _MultipartMD5(part)
    etag.update(data)
    _NoRanges.data, _NoRanges.etag, _NoRanges.ranges = data, etag.hexdigest(), []
    events: list[str] = []
    settle, truncate = _MultipartMD5.settle, _download._PartialFile.truncate

    def settled(self: _MultipartMD5) -> None:
        events.append(f"settle {len(self._pending)} pending")
        settle(self)

    def truncated(self: _download._PartialFile, size: int) -> None:
        events.append(f"truncate {size}")
        truncate(self, size)

    monkeypatch.setattr(_MultipartMD5, "settle", settled)
    monkeypatch.setattr(_download._PartialFile, "truncate", truncated)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NoRanges)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        remote = RemoteFile(f"http://127.0.0.1:{server.server_port}/f.bin", len(data))
        outcome = fetch_file(client.pennsieve.http, remote, tmp_path / "f.bin")
    finally:
        server.shutdown()
        server.server_close()
    assert _NoRanges.ranges == [None, f"bytes={_NoRanges.BREAK}-"]
    assert outcome.check == "md5-multipart" and outcome.path.read_bytes() == data
    truncate_at = events.index("truncate 0")  # (the group may be hashed already: the order
    assert truncate_at > 0 and events[truncate_at - 1].startswith("settle")  # is what matters)


def test_files_on_network_file_systems_are_read_not_mapped(tmp_path: Path) -> None:
    """A mapped page that fails to load (a server away) kills the process: network and FUSE
    file systems are read instead; this test's own folder is local here."""
    lines = ["22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw",
             "61 22 0:53 / /home rw - nfs4 srv:/home rw,vers=4.2",
             "62 22 0:54 / /mnt/box rw - fuse.sshfs box: rw",
             "63 22 0:55 /x /scratch rw shared:7 - lustre 10.0.0.1@tcp:/fs rw"]
    kinds = {dev: _md5parts.mount_kind(dev, lines) for dev in ("8:1", "0:53", "0:54", "0:55", "9:9")}
    assert kinds == {"8:1": "ext4", "0:53": "nfs4", "0:54": "fuse.sshfs", "0:55": "lustre",
                     "9:9": None}
    assert [k.startswith(_md5parts._NOT_MAPPED) for k in ("nfs4", "fuse.sshfs", "lustre")] == \
        [True] * 3
    assert not "ext4".startswith(_md5parts._NOT_MAPPED)
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        assert _md5parts.may_map(fd) is (sys.platform == "linux")
    finally:
        os.close(fd)
