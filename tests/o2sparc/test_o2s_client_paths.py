"""Nothing the server names is written outside the chosen folder: job-log archives (crafted
zips with ``..``, absolute, drive and link members) and output file names; and the real
sandbox's files saved past links planted in the output folder."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from sparc.client.errors import UnsafePathError
from sparc.client.services.o2sparc import O2SparcSolver, UnexpectedResponseError
from sparc.client.services.o2sparc import solver as solver_module
from sparc.client.services.o2sparc.solver import _extract, _output_file_name

JOB = "00000000-0000-4000-8000-000000000000"


def _zip(path: Path, *members: tuple[str, bytes, int]) -> Path:
    """A zip of ``(name, data, unix mode)`` members (mode 0: none recorded)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


@pytest.mark.parametrize("name", [
    "../evil.txt", "logs/../../evil.txt", "/tmp/evil.txt", "\\evil.txt", "..\\evil.txt",
    "C:/evil.txt", "C:evil.txt", "logs\\..\\..\\evil.txt",
])
def test_a_member_escaping_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    archive = _zip(tmp_path / "log.zip", ("ok.logs", b"fine", 0), (name, b"evil", 0))
    out = tmp_path / "out" / "deeper"
    out.mkdir(parents=True)
    with pytest.raises(UnsafePathError):
        _extract(archive, out, JOB)
    assert list(out.iterdir()) == []  # checked before anything was written
    assert not [p for p in tmp_path.rglob("evil.txt")]


@pytest.mark.parametrize("mode", [stat.S_IFLNK | 0o777, stat.S_IFIFO | 0o644,
                                  stat.S_IFCHR | 0o644])
def test_links_and_special_members_are_refused(tmp_path: Path, mode: int) -> None:
    archive = _zip(tmp_path / "log.zip", ("link.logs", b"/etc/passwd", mode))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsafePathError, match="link or special file"):
        _extract(archive, out, JOB)
    assert list(out.iterdir()) == []


def test_plain_members_and_folders_are_extracted(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "log.zip", ("a.logs", b"A", stat.S_IFREG | 0o644),
                   ("sub/", b"", stat.S_IFDIR | 0o755), ("sub/./b.logs", b"B", 0))
    out = tmp_path / "out"
    out.mkdir()
    written = _extract(archive, out, JOB)
    assert written == [out / "a.logs", out / "sub" / "b.logs"]
    assert [p.read_bytes() for p in written] == [b"A", b"B"]


def test_a_link_already_in_the_folder_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.logs").symlink_to(outside)
    with pytest.raises(UnsafePathError):
        _extract(_zip(tmp_path / "log.zip", ("a.logs", b"overwritten", 0)), out, JOB)
    (out / "a.logs").unlink()
    (out / "sub").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(UnsafePathError):
        _extract(_zip(tmp_path / "log2.zip", ("sub/outside.txt", b"overwritten", 0)), out, JOB)
    assert outside.read_text() == "keep"


@pytest.mark.parametrize(("filename", "output", "expected"), [
    ("single_number.txt", "output_1", "single_number.txt"),
    ("../../etc/passwd", "output_1", "passwd"),
    ("/abs/name.txt", "output_1", "name.txt"),
    ("..\\..\\win.txt", "output_1", "win.txt"),
    ("C:\\x\\drive.txt", "output_1", "drive.txt"),
    ("..", "output_1", "output_1"),
    ("", "output_1", "output_1"),
    ("", "../../escape", "escape"),
    ("", "..", "output"),
])
def test_output_file_names_are_plain(filename: str, output: str, expected: str) -> None:
    assert _output_file_name(filename, output, set()) == expected


def test_output_file_names_never_clash_nor_escape() -> None:
    used: set[str] = set()
    names = [_output_file_name("f.txt", "out", used), _output_file_name("f.txt", "out", used),
             _output_file_name("f.txt", "out", used),
             _output_file_name("f.txt", "../../up", used)]
    assert names == ["f.txt", "out_f.txt", "out_f.txt_2", "up_f.txt"]
    assert all("/" not in n and "\\" not in n and n not in (".", "..") for n in names)


def test_files_from_the_sandbox_replace_links_planted_in_the_folder(
        sleeper: O2SparcSolver, number_file: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    out, logs = tmp_path / "out", tmp_path / "logs"
    out.mkdir()
    logs.mkdir()
    (out / "single_number.txt").symlink_to(outside)
    (logs / "sleeper_2.0.2.logs").symlink_to(outside)
    job_id = sleeper.submit_job({"input_1": number_file, "input_2": 1, "input_3": 0})
    sleeper.wait(job_id, progress=False)
    results = sleeper.get_results(job_id, output_dir=out)
    saved = results["output_1"]
    assert saved == out / "single_number.txt" and not saved.is_symlink()
    assert 1 <= int(saved.read_text()) <= 9
    with pytest.raises(UnsafePathError):
        sleeper.download_job_log(job_id, logs)
    assert outside.read_text() == "keep"


def test_a_log_unpacking_past_the_limit_is_refused(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a.logs", b"\0" * (3 << 20))  # 3 MiB of zeros: a few kB packed
    assert archive.stat().st_size < 64 << 10
    monkeypatch.setattr(solver_module, "MAX_LOG_BYTES", 2 << 20)
    with pytest.raises(UnexpectedResponseError, match="more than 2 MiB"):
        _extract(archive, tmp_path / "out", JOB)
    assert not (tmp_path / "out" / "a.logs").exists()  # no partial file left
    monkeypatch.setattr(solver_module, "MAX_LOG_BYTES", 4 << 20)
    assert _extract(archive, tmp_path / "out", JOB) == [tmp_path / "out" / "a.logs"]
