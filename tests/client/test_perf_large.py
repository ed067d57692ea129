"""The large-file path: the body received into reused blocks, written and hashed on a writer
thread, multipart ETag parts hashed in parallel on the hash pool where they lie. Same bytes, same verdicts as hashing in order, also
across drops (resume) and corruption (caught, downloaded again).

The file: dataset 426 v3, 167,666,455 bytes stored in 20 parts of 8 MiB (ETag ``<md5>-20``).
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
from pathlib import Path

import httpx
import pytest
from test_disk_errors import tiny_disk  # noqa: F401 - the 1 MiB tmpfs fixture

from sparc.client import SparcClient
from sparc.client._download import (
    BLOCK_MEMORY,
    BLOCK_SINK_MIN,
    PENDING_PARTS,
    MiB,
    RemoteFile,
    Verifier,
    _BlockSink,
    _MultipartMD5,
    fetch_file,
    partial_path,
)
from sparc.sandbox.process import SandboxProcess

BIG = "files/primary/sub-f006/L/020-stitching/Segmentation_Stitcher.exf"


@pytest.fixture(scope="module")
def big(sandbox: SandboxProcess) -> tuple[RemoteFile, str]:
    """The file's link and the sha256 of its bytes, read with a plain httpx stream."""
    base = sandbox.url
    entry = httpx.post(f"{base}/discover/datasets/426/versions/3/files/download-manifest",
                       json={"paths": [BIG]}, timeout=60).json()["data"][0]
    digest = hashlib.sha256()
    with httpx.stream("GET", entry["url"], timeout=60) as resp:
        for chunk in resp.iter_bytes():
            digest.update(chunk)
    return RemoteFile(entry["url"], int(entry["size"])), digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(4 * MiB):
            digest.update(block)
    return digest.hexdigest()


def test_parallel_part_hashes_equal_hashing_in_order() -> None:
    """Pure logic: the same ETag whatever the chunking, parallel or not, with a tail part."""
    data = random.Random(5).randbytes(5 * MiB + 12345)
    expected = _MultipartMD5(MiB)
    expected.update(data)
    for chunking in (1, 4095, 65536, 3 * MiB):
        parallel = _MultipartMD5(MiB, parallel=True)
        assert parallel.parallel
        for i in range(0, len(data), chunking):
            parallel.update(memoryview(data)[i:i + chunking])
        assert parallel.hexdigest() == expected.hexdigest() == parallel.hexdigest()
    assert expected.hexdigest().endswith("-6")


def test_one_guess_hashes_in_parallel_several_in_order() -> None:
    verifier = Verifier.choose(RemoteFile("u", 100 * MiB), {"etag": f'"{"a" * 32}-13"'})
    assert verifier.kind == "md5-multipart"
    assert [h.parallel for h in verifier._hashers] == [True]  # 8 MiB is the only guess
    several = Verifier.choose(RemoteFile("u", 60 * MiB), {"etag": f'"{"a" * 32}-2"'})
    assert len(several._hashers) > 1 and not any(h.parallel for h in several._hashers)


def test_large_file_verified_by_multipart_etag(client: SparcClient, big: tuple[RemoteFile, str],
                                               tmp_path: Path) -> None:
    remote, sha = big
    assert remote.size is not None and remote.size >= BLOCK_SINK_MIN
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / "big.exf")
    assert outcome.check == "md5-multipart" and outcome.bytes_transferred == remote.size
    assert outcome.checksum is not None and outcome.checksum.endswith("-20")
    assert sha256_of(tmp_path / "big.exf") == sha


def test_large_file_resumes_across_drops(client: SparcClient, faults: SandboxProcess,
                                         big: tuple[RemoteFile, str], tmp_path: Path) -> None:
    """Two drops mid-part (not on a part boundary): resumed where they broke, parts hashed
    across the break, the same bytes, about one file's worth moved."""
    remote, sha = big
    faults.set_faults([{"route": "GET /_assets/*", "kind": "reset",
                        "after_bytes": 50 * MiB + 777, "count": 2}])
    faults.reset_stats()
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / "big.exf")
    assert outcome.check == "md5-multipart" and outcome.bytes_transferred == remote.size
    assert sha256_of(tmp_path / "big.exf") == sha
    # Bytes the sandbox handed to the kernel count as sent; at each reset those still in the
    # loopback socket buffers (autotuned: several MiB) are lost. Restarting from byte 0 instead
    # of resuming would resend the 50 and 100 MiB already received: 150 MiB over the size.
    assert faults.stats()["bytes_sent"] <= (remote.size or 0) + 2 * 12 * MiB


def test_a_partial_on_disk_is_rehashed_in_parallel(client: SparcClient,
                                                   big: tuple[RemoteFile, str],
                                                   tmp_path: Path) -> None:
    """A partial of 70 MiB + 5 bytes from an earlier run: fed to the parallel hasher from
    disk, only the rest moves; a damaged partial is caught and the file downloaded again."""
    remote, sha = big
    reference = tmp_path / "ref.exf"
    fetch_file(client.pennsieve.http, remote, reference)
    kept = 70 * MiB + 5
    with reference.open("rb") as f:
        head = f.read(kept)
    dest = tmp_path / "resumed.exf"
    partial_path(dest, remote).write_bytes(head)
    outcome = fetch_file(client.pennsieve.http, remote, dest)
    assert outcome.check == "md5-multipart"
    assert outcome.bytes_transferred == (remote.size or 0) - kept
    assert sha256_of(dest) == sha

    damaged = bytearray(head)
    damaged[9 * MiB + 3] ^= 0xFF  # in the second part
    dest2 = tmp_path / "damaged.exf"
    partial_path(dest2, remote).write_bytes(bytes(damaged))
    outcome = fetch_file(client.pennsieve.http, remote, dest2)
    assert outcome.check == "md5-multipart" and sha256_of(dest2) == sha
    assert outcome.bytes_transferred == (remote.size or 0) - kept + (remote.size or 0)
    assert "downloaded again" in outcome.note


def test_corruption_in_flight_is_caught_by_parallel_hashing(
        client: SparcClient, faults: SandboxProcess, big: tuple[RemoteFile, str],
        tmp_path: Path) -> None:
    remote, sha = big
    faults.set_faults([{"route": "GET /_assets/*", "kind": "corrupt",
                        "after_bytes": 100 * MiB, "count": 1}])
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / "big.exf")
    assert outcome.check == "md5-multipart" and "downloaded again" in outcome.note
    assert sha256_of(tmp_path / "big.exf") == sha
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".incomplete")]


def test_a_full_disk_on_the_writer_thread_names_the_partial(
        client: SparcClient, big: tuple[RemoteFile, str],
        tiny_disk: Path) -> None:  # noqa: F811 - the fixture imported above
    """ENOSPC raised on the writer thread comes out of fetch_file as the same OSError, naming
    the partial file; nothing lands at the final name."""
    import errno

    remote, _ = big
    with pytest.raises(OSError) as info:
        fetch_file(client.pennsieve.http, remote, tiny_disk / "big.exf")
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename and str(info.value.filename).endswith(".incomplete")
    assert not (tiny_disk / "big.exf").exists()


def test_parallel_parts_copy_chunks_and_reuse_their_buffers() -> None:
    """A received chunk is not kept until its part is hashed (chunks held that long fragmented the
    heap: peak RSS +30 % on 1 GiB); the part buffers are reused: PENDING_PARTS + 1 at the most."""
    hasher = _MultipartMD5(MiB, parallel=True)
    expected = _MultipartMD5(MiB)
    buffers: set[int] = set()
    for i in range(12):
        chunk = bytes([i]) * (MiB // 2 + 7)
        before = sys.getrefcount(chunk)
        hasher.update(chunk)
        expected.update(chunk)
        assert sys.getrefcount(chunk) == before  # no view of it left behind
        if hasher._buffer is not None:
            buffers.add(id(hasher._buffer))
    assert hasher.hexdigest() == expected.hexdigest()
    assert len(buffers) <= PENDING_PARTS + 1


@pytest.mark.parametrize("resumed_at", [0, 3 * MiB + 5])
def test_blocks_end_on_part_boundaries_and_whole_parts_are_hashed_in_place(
        tmp_path: Path, resumed_at: int) -> None:
    """Pure logic of the large-file sink: after a resume at any byte, the first block ends on a
    part boundary, so every later part is lent to the hash pool without a copy; the file is the
    bytes in order, the ETag the one of hashing in order, and at most
    max(3, BLOCK_MEMORY // part) blocks are ever made (constant memory)."""
    part = 2 * MiB
    data = random.Random(7).randbytes(11 * part + 777)
    expected = _MultipartMD5(part)
    expected.update(data)
    etag = expected.hexdigest()
    verifier = Verifier.choose(RemoteFile("u", len(data)), {"etag": f'"{etag}"'})
    assert verifier.part_size == part  # one guess: hashed in parallel
    path = tmp_path / "file.incomplete"
    path.write_bytes(data[:resumed_at])
    verifier.feed_file(path, resumed_at)
    lent: list[tuple[int, bool]] = []
    lend = verifier.lend

    def recording(view: memoryview, last: bool) -> object:
        future = lend(view, last)
        lent.append((len(view), future is not None))
        return future

    verifier.lend = recording  # type: ignore[method-assign]
    blocks: set[int] = set()
    with path.open("ab") as handle:
        sink = _BlockSink(handle, verifier, resumed_at)
        rng, pos = random.Random(3), resumed_at
        while pos < len(data):
            room = sink.take()
            blocks.add(id(sink._block))
            n = min(len(room), rng.randrange(1, 300_000), len(data) - pos)
            room[:n] = data[pos:pos + n]
            sink.commit(n)
            pos += n
        sink.close()
    assert path.read_bytes() == data
    assert verifier.problem(len(data)) is None and verifier.digests() == [etag]
    assert len(blocks) <= max(3, BLOCK_MEMORY // part)  # reused: constant memory
    first, *rest = lent
    assert first[0] == part - resumed_at % part and first[1] == (resumed_at % part == 0)
    assert all(was_lent for _, was_lent in rest)  # whole parts and the short last one
    assert [size for size, _ in rest[:-1]] == [part] * (len(rest) - 1)


def test_a_block_sink_hands_over_what_it_has_when_the_stream_breaks(tmp_path: Path) -> None:
    """Bytes committed before a break are written (copied into the hasher, not lent: not a
    whole part), so the next attempt resumes right after them with the same verdict."""
    part = MiB
    data = random.Random(9).randbytes(3 * part)
    expected = _MultipartMD5(part)
    expected.update(data)
    verifier = Verifier.choose(RemoteFile("u", len(data)), {"etag": f'"{expected.hexdigest()}"'})
    path = tmp_path / "file.incomplete"
    with path.open("ab") as handle:
        sink = _BlockSink(handle, verifier, 0)
        room = sink.take()
        room[:1000] = data[:1000]
        sink.commit(1000)
        sink.close()  # the stream broke here
        handle.flush()
        assert path.stat().st_size == 1000
        sink = _BlockSink(handle, verifier, 1000)
        assert len(sink.take()) == part - 1000  # up to the part boundary
        sink.put(data[1000:])
        sink.close()
    assert path.read_bytes() == data and verifier.problem(len(data)) is None


def test_write_all_finishes_short_writes() -> None:
    """Partial files are unbuffered: a raw write may take part of the bytes; _write_all loops
    until all are written, and a write taking none is an error, not a silent loss."""
    from sparc.client._download import _write_all

    class Trickle:
        def __init__(self, step: int) -> None:
            self.got, self.step = bytearray(), step

        def write(self, data: memoryview | bytes) -> int:
            piece = bytes(data[:self.step])
            self.got += piece
            return len(piece)

    data = random.Random(1).randbytes(10_007)
    trickle = Trickle(999)
    _write_all(trickle, data)  # type: ignore[arg-type]
    assert bytes(trickle.got) == data
    with pytest.raises(OSError, match="took no bytes"):
        _write_all(Trickle(0), data)  # type: ignore[arg-type]


def test_outcome_stat_is_the_saved_files(client: SparcClient, big: tuple[RemoteFile, str],
                                         tmp_path: Path) -> None:
    """The stat taken before close (no second lookup) is the saved file's: size and mtime,
    which the download records rely on."""
    remote, _ = big
    outcome = fetch_file(client.pennsieve.http, remote, tmp_path / "big.exf")
    if os.name == "nt":  # taken after the rename there
        assert outcome.stat is None
        return
    assert outcome.stat is not None
    on_disk = (tmp_path / "big.exf").stat()
    assert (outcome.stat.st_size, outcome.stat.st_mtime_ns, outcome.stat.st_ino) == \
        (on_disk.st_size, on_disk.st_mtime_ns, on_disk.st_ino)
