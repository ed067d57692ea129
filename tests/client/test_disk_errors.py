"""Disk errors during a download name the file concerned (a full disk, a file where a folder
should be), keep their OSError class and errno, and never leave a file at its final name."""

from __future__ import annotations

import errno
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparc.client import SparcClient


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs (needs root and mount rights; skipped with the reason otherwise)."""
    mount = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot mount a tiny tmpfs to fill up: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tiny tmpfs to fill up: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=10)


def test_a_full_disk_names_the_partial_file(client: SparcClient, tiny_disk: Path) -> None:
    """A 5 MB file into 1 MiB: ENOSPC naming the partial file, nothing at the final name."""
    out = tiny_disk / "out"
    with pytest.raises(OSError) as info:
        client.pennsieve.download(120, "files/primary/sub-1/ecap_run2.edf", out, version=1)
    error = info.value
    assert error.errno == errno.ENOSPC
    assert error.filename and error.filename.endswith(".incomplete")
    assert "ecap_run2.edf" in str(error) and "No space left" in str(error)
    assert not (out / "files/primary/sub-1/ecap_run2.edf").exists()

    node = client.pennsieve.get_file(120, "files/primary/sub-1/ecap_run2.edf", 1)
    with pytest.raises(OSError) as single:
        client.pennsieve.download_file({**node, "datasetId": 120, "datasetVersion": 1},
                                       output_name=tiny_disk / "one.edf")
    assert single.value.errno == errno.ENOSPC and "one.edf" in str(single.value.filename)
    assert not (tiny_disk / "one.edf").exists()


def test_a_file_where_a_folder_must_go_is_named(client: SparcClient, tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "metadata").mkdir(parents=True)
    (out / "metadata" / "records").write_text("in the way")
    with pytest.raises(OSError) as info:
        client.pennsieve.download(90, "metadata/records/award.csv", out, version=1)
    assert "records" in str(info.value.filename)
