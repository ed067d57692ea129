"""Partial files of downloads (``_PartialFile``): small files are received into an unnamed file
(Linux ``O_TMPFILE``) that is named only once its bytes are checked; bigger files, and files
with bytes kept from an earlier run, use a named, locked ``.incomplete`` file that a later run
resumes. Either way the final name gets whole bytes only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sparc.client._download import UNNAMED_PARTIAL_MAX, _PartialFile, _write_all
from sparc.client.errors import TransportError


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_small_new_file_has_no_name_until_published(tmp_path: Path,
                                                     unnamed_files: bool) -> None:
    part, dest = tmp_path / "a.csv.k.incomplete", tmp_path / "a.csv"
    with _PartialFile.open(part, 10) as handle:
        assert handle.unnamed is unnamed_files
        _write_all(handle, b"0123456789")
        assert handle.tell() == 10
        assert names(tmp_path) == ([] if unnamed_files else [part.name])  # nothing to see
        assert b"".join(handle.blocks(10)) == b"0123456789"  # read back (a resume's check)
        handle.publish(dest)
    assert names(tmp_path) == ["a.csv"] and dest.read_bytes() == b"0123456789"


def test_publishing_replaces_a_file_already_there(tmp_path: Path) -> None:
    dest = tmp_path / "a.csv"
    dest.write_bytes(b"old bytes")
    with _PartialFile.open(tmp_path / "a.csv.k.incomplete", 3) as handle:
        _write_all(handle, b"new")
        handle.publish(dest)
    assert names(tmp_path) == ["a.csv"] and dest.read_bytes() == b"new"


def test_a_discarded_file_leaves_nothing(tmp_path: Path) -> None:
    for size in (5, UNNAMED_PARTIAL_MAX + 1):  # unnamed (where possible), then named
        with _PartialFile.open(tmp_path / "a.k.incomplete", size) as handle:
            _write_all(handle, b"bytes")
            handle.discard()
        assert names(tmp_path) == []


def test_kept_bytes_and_big_files_use_a_named_resumable_partial(tmp_path: Path) -> None:
    part = tmp_path / "a.csv.k.incomplete"
    part.write_bytes(b"01234")  # bytes of an earlier run: resumed, whatever the size
    with _PartialFile.open(part, 10) as handle:
        assert not handle.unnamed and handle.tell() == 5
        assert b"".join(handle.blocks(5)) == b"01234"
        _write_all(handle, b"56789")
    assert part.read_bytes() == b"0123456789"  # closed unpublished: kept for the next run
    big = tmp_path / "big.k.incomplete"
    with _PartialFile.open(big, UNNAMED_PARTIAL_MAX + 1) as handle:
        assert not handle.unnamed and big.exists()


@pytest.mark.skipif(os.name == "nt", reason="advisory locks are POSIX; Windows has none")
def test_a_named_partial_is_locked_against_a_second_download(tmp_path: Path) -> None:
    part = tmp_path / "big.k.incomplete"
    with _PartialFile.open(part, UNNAMED_PARTIAL_MAX + 1):
        with pytest.raises(TransportError, match="being downloaded by another process"):
            _PartialFile.open(part, UNNAMED_PARTIAL_MAX + 1)
    with _PartialFile.open(part, UNNAMED_PARTIAL_MAX + 1):  # released when closed
        pass


def test_a_missing_folder_is_made(tmp_path: Path) -> None:
    for size in (3, UNNAMED_PARTIAL_MAX + 1):
        folder = tmp_path / f"x{size}" / "y"
        with _PartialFile.open(folder / "a.k.incomplete", size) as handle:
            _write_all(handle, b"abc")
            handle.publish(folder / "a")
        assert (folder / "a").read_bytes() == b"abc"


def test_an_unnamed_file_that_cannot_be_linked_is_copied_to_its_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed_files: bool) -> None:
    """Some systems refuse links to unnamed files: the bytes are copied to the named partial,
    then renamed; ``copied`` tells the caller the saved file is a new one (its times differ
    from the unnamed file's)."""
    import errno

    from sparc.client import _download

    if not unnamed_files:
        pytest.skip("no unnamed files on this system: nothing to fall back from")
    monkeypatch.setitem(_download._unnamed_state, "refused", set())

    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    part, dest = tmp_path / "a.csv.k.incomplete", tmp_path / "a.csv"
    with _PartialFile.open(part, 6) as handle:
        assert handle.unnamed
        _write_all(handle, b"abcdef")
        monkeypatch.setattr(os, "link", no_links)
        handle.publish(dest)
        assert handle.copied
    assert names(tmp_path) == ["a.csv"] and dest.read_bytes() == b"abcdef"


def test_folder_names_list_each_folder_once_and_answer_maybe_for_any_variant(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many new files in one folder: one listing, no lookup per file. A name that may be
    there in another case (case-insensitive file systems), a name beyond ASCII, or any name in
    a folder holding such names (file systems fold and normalize those their own way) is
    "maybe": the caller then asks the file system."""
    import unicodedata

    from sparc.client._download import FolderNames

    plain, mixed = tmp_path / "plain", tmp_path / "mixed"
    plain.mkdir()
    mixed.mkdir()
    (plain / "Data.CSV").write_bytes(b"x")
    (mixed / unicodedata.normalize("NFD", "café.txt")).write_bytes(b"x")
    listed: list[str] = []
    real_listdir = os.listdir

    def listdir(path: str) -> list[str]:
        listed.append(path)
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    names = FolderNames()
    assert not any(names.may_exist(plain / f"new-{i}.dat") for i in range(100))
    assert names.may_exist(plain / "Data.CSV") and names.may_exist(plain / "data.csv")
    assert names.may_exist(plain / "é.csv")  # a name beyond ASCII: ask
    assert names.may_exist(mixed / unicodedata.normalize("NFC", "café.txt"))
    assert names.may_exist(mixed / "other.csv")  # a folder with names beyond ASCII: ask
    assert not names.may_exist(tmp_path / "missing" / "a.csv")  # a folder not made yet
    assert listed == [str(plain), str(mixed), str(tmp_path / "missing")]
    (tmp_path / "file").write_bytes(b"x")
    assert names.may_exist(tmp_path / "file" / "a.csv")  # not a folder: ask the system


def test_a_file_system_without_unnamed_files_gets_named_partials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unnamed_files: bool) -> None:
    """Where O_TMPFILE is refused (NFS, CIFS, many FUSE mounts), also in a folder still to be
    made, the file is received into a named partial; other errors are not taken for that."""
    import errno

    from sparc.client import _download

    if not unnamed_files:
        pytest.skip("no O_TMPFILE here: named partials are all there is (tested above)")
    real_open = os.open

    def no_tmpfile(path: str, flags: int, *args: int) -> int:
        if flags & os.O_TMPFILE == os.O_TMPFILE:
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", no_tmpfile)
    monkeypatch.setitem(_download._unnamed_state, "refused", set())
    part = tmp_path / "new" / "a.csv.k.incomplete"
    with _PartialFile.open(part, 3) as handle:
        assert not handle.unnamed and part.exists()
        _write_all(handle, b"abc")
        handle.publish(tmp_path / "new" / "a.csv")
    assert names(tmp_path / "new") == ["a.csv"]
    assert str(tmp_path / "new") in _download._unnamed_state["refused"]

    def out_of_descriptors(path: str, flags: int, *args: int) -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(os, "open", out_of_descriptors)
    with pytest.raises(OSError, match="Too many open files"):
        _PartialFile.open(tmp_path / "b.csv.k.incomplete", 3)
    assert str(tmp_path) not in _download._unnamed_state["refused"]


def test_a_long_name_is_replaced_in_place(tmp_path: Path) -> None:
    """Publishing over an existing file goes through a short temporary name: a file name near
    the 255-byte limit still works."""
    dest = tmp_path / ("n" * 240)
    dest.write_bytes(b"old")
    with _PartialFile.open(tmp_path / "x.incomplete", 3) as handle:
        _write_all(handle, b"new")
        handle.publish(dest)
    assert dest.read_bytes() == b"new" and names(tmp_path) == [dest.name]


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="no O_NOFOLLOW on this system")
def test_a_link_at_a_partial_name_is_never_written_through(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"keep")
    part = tmp_path / "a.csv.k.incomplete"
    part.symlink_to(target)
    with pytest.raises(OSError):
        _PartialFile.open(part, 10)
    assert target.read_bytes() == b"keep"
