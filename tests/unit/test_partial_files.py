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

#: Where this system can receive into unnamed files (Linux); elsewhere every partial is named.
UNNAMED = hasattr(os, "O_TMPFILE")


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_small_new_file_has_no_name_until_published(tmp_path: Path) -> None:
    part, dest = tmp_path / "a.csv.k.incomplete", tmp_path / "a.csv"
    with _PartialFile.open(part, 10) as handle:
        assert handle.unnamed is UNNAMED
        _write_all(handle, b"0123456789")
        assert handle.tell() == 10
        assert names(tmp_path) == ([] if UNNAMED else [part.name])  # nothing to see yet
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


def test_an_unnamed_file_that_cannot_be_linked_is_copied_to_its_name(tmp_path: Path) -> None:
    """Some systems refuse links to unnamed files: the bytes are copied to the named partial,
    then renamed."""
    if not UNNAMED:
        pytest.skip("no unnamed files on this system: nothing to fall back from")
    part, dest = tmp_path / "a.csv.k.incomplete", tmp_path / "a.csv"
    with _PartialFile.open(part, 6) as handle:
        _write_all(handle, b"abcdef")
        handle._publish_copy(dest)
    assert names(tmp_path) == ["a.csv"] and dest.read_bytes() == b"abcdef"


def test_folder_names_list_each_folder_once_and_answer_maybe_for_any_variant(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many new files in one folder: one listing, no lookup per file. A name that may be
    there in another case or Unicode form (case-insensitive or normalizing file systems) is
    "maybe": the caller then asks the file system."""
    import unicodedata

    from sparc.client._download import FolderNames

    (tmp_path / "Data.CSV").write_bytes(b"x")
    (tmp_path / unicodedata.normalize("NFD", "café.txt")).write_bytes(b"x")
    listed: list[str] = []
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: listed.append(p) or real_listdir(p))
    names = FolderNames()
    assert not any(names.may_exist(tmp_path / f"new-{i}.dat") for i in range(100))
    assert names.may_exist(tmp_path / "Data.CSV") and names.may_exist(tmp_path / "data.csv")
    assert names.may_exist(tmp_path / unicodedata.normalize("NFC", "café.txt"))
    assert not names.may_exist(tmp_path / "missing" / "a.csv")  # a folder not made yet
    assert listed == [str(tmp_path), str(tmp_path / "missing")]
    (tmp_path / "file").write_bytes(b"x")
    assert names.may_exist(tmp_path / "file" / "a.csv")  # not a folder: ask the system
