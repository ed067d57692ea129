"""Multipart ETags checked eight parts at a time (``_md5lanes``, AVX2), read back from the file.

The same digests as hashlib for every shape (lanes, tails, odd part sizes, offsets); the large
download really takes that path (and verifies, resumes, catches corruption: test_perf_large.py
runs on it); without the C module everything still checks, with hashlib.
"""

from __future__ import annotations

import hashlib
import os
import platform
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_perf_large import BIG, big, sha256_of  # noqa: F401 - the 20-part file and its sha256

from sparc.client import SparcClient, _md5parts
from sparc.client._download import MiB, RemoteFile, Verifier, _MultipartMD5, fetch_file


def _cpu_has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            return any(line.startswith("flags") and " avx2" in line for line in cpuinfo)
    except OSError:
        return False


def _write(path: Path, data: bytes) -> int:
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


@pytest.mark.skipif(not (sys.platform == "linux" and platform.machine() == "x86_64"),
                    reason="the AVX2 kernel is built for x86-64 (elsewhere: hashlib)")
def test_the_kernel_is_built_and_used_here() -> None:
    """`make env` compiled it (hatch_build.py) and this CPU runs it: a build that quietly fell
    back to hashlib would be 4x slower on every multipart ETag."""
    assert shutil.which("cc") or shutil.which("gcc"), "no C compiler: install one (gcc)"
    assert _cpu_has_avx2()
    assert _md5parts.LANES == 8


@pytest.mark.parametrize(("part_size", "count", "tail", "start"), [
    (MiB, 8, 0, 0),                  # one full group
    (MiB, 17, 123, 0),               # two groups, one lane left, a tail
    (MiB, 3, 0, 2 * MiB),            # a few lanes, at an offset
    (3 * MiB + 64, 9, MiB + 7, 0),   # whole blocks but not whole pages: hashlib
    (3 * MiB, 9, MiB + 7, 0),        # another part size
    (1000, 5, 17, 0),                # not a multiple of 64: hashlib for each
    (MiB, 0, 5, 0),                  # a tail alone
])
def test_part_md5s_equal_hashlib(tmp_path: Path, part_size: int, count: int, tail: int,
                                 start: int) -> None:
    data = random.Random(part_size + count).randbytes(start + part_size * count + tail + 99)
    fd = _write(tmp_path / "parts", data)
    try:
        got = _md5parts.part_md5s(fd, start, part_size, count, tail)
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
        with pytest.raises(OSError, match="ended at byte"):
            _md5parts.part_md5s(fd, 0, 1000, 9000)  # the hashlib path
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
        hasher = _MultipartMD5(MiB, parallel=True, file=fd)
        assert (hasher.file == fd and not hasher.parallel) if _md5parts.LANES else hasher.parallel
        kept = 5 * MiB + 3
        hasher.advance(kept)
        for i in range(kept, len(data), chunking):
            hasher.update(memoryview(data)[i:i + chunking])
        assert hasher.hexdigest() == expected.hexdigest() == hasher.hexdigest()
        assert expected.hexdigest().endswith("-20")
    finally:
        os.close(fd)


def test_several_part_size_guesses_are_hashed_in_memory(tmp_path: Path) -> None:
    """Only a single guess reads the file back; several guesses hash the stream in order."""
    fd = os.open(tmp_path, os.O_RDONLY)
    try:
        one = Verifier.choose(RemoteFile("u", 100 * MiB), {"etag": f'"{"a" * 32}-13"'}, file=fd)
        several = Verifier.choose(RemoteFile("u", 60 * MiB), {"etag": f'"{"a" * 32}-2"'}, file=fd)
    finally:
        os.close(fd)
    assert one.reads_file == bool(_md5parts.LANES)
    assert not several.reads_file


@pytest.mark.skipif(not _md5parts.LANES, reason="needs the C module (see the first test)")
def test_a_large_download_hashes_its_parts_eight_at_a_time(
        client: SparcClient, big: tuple[RemoteFile, str], tmp_path: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The 20-part file: two groups of eight, then three lanes and the short last part."""
    remote, sha = big
    groups: list[int] = []
    lane_md5s = _md5parts._lane_md5s

    def counted(fd: int, start: int, part_size: int, lanes: int) -> list[bytes]:
        groups.append(lanes)
        return lane_md5s(fd, start, part_size, lanes)

    monkeypatch.setattr(_md5parts, "_lane_md5s", counted)
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / BIG.rsplit("/", 1)[-1])
    assert outcome.check == "md5-multipart" and outcome.checksum is not None
    assert outcome.checksum.endswith("-20")
    assert sha256_of(outcome.path) == sha
    assert groups == [8, 8, 3]


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
