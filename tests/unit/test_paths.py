"""Relative paths of Discover files for both URI layouts, and output-path safety."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sparc.client._download import safe_join
from sparc.client.errors import ArgumentError, UnsafePathError
from sparc.client.services.pennsieve import file_ref, relative_path

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "specs" / "samples"  # see SOURCES.md


def test_pre50_layout_strips_id_and_version() -> None:
    hit = {"uri": "s3://pennsieve-prod-discover-publish-use1/90/1/revisions/1/manifest.json",
           "datasetId": 90, "datasetVersion": 1, "name": "manifest.json"}
    assert relative_path(hit) == "revisions/1/manifest.json"
    ref = file_ref(hit)
    assert (ref.dataset_id, ref.version, ref.path, ref.name) == (90, 1, "revisions/1/manifest.json",
                                                                 "manifest.json")


def test_50_layout_keeps_files_prefix() -> None:
    hit = {"uri": "s3://prd-sparc-discover50-use1/396/files/primary/sub-1/a.proj",
           "datasetId": 396, "datasetVersion": 3}
    assert relative_path(hit) == "files/primary/sub-1/a.proj"


def test_50_layout_folder_named_like_version_is_kept() -> None:
    hit = {"uri": "s3://b/396/3", "datasetId": 396, "datasetVersion": 3}
    assert relative_path(hit) == "3"


def test_real_samples_all_give_paths_under_files() -> None:
    data = json.loads((SAMPLES / "discover-search-files_items_sparc-datasets-11-292-396-426.json")
                      .read_text())
    for items in data.values():
        for hit in items if isinstance(items, list) else [items]:
            path = relative_path(hit)
            assert path.startswith(("files/", "manifest.json", "revisions/")), path
            assert not path.startswith(str(hit["datasetId"]))


def test_browse_node_path_wins_and_ids_come_from_uri() -> None:
    node = {"name": "a.csv", "path": "files/a.csv", "uri": "s3://b/90/1/files/a.csv",
            "type": "File", "size": 3}
    ref = file_ref(node)
    assert (ref.dataset_id, ref.version, ref.path, ref.size) == (90, 1, "files/a.csv", 3)


def test_foreign_uri_is_rejected() -> None:
    with pytest.raises(ValueError, match="does not belong to dataset 5"):
        relative_path({"uri": "s3://b/90/1/x", "datasetId": 5})
    with pytest.raises(TypeError, match="file dict"):
        file_ref("files/a.csv")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", "C:\\x", "\\\\srv\\share",
                                 "", "a\x00b"])
def test_safe_join_rejects(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, bad)


def test_safe_join_rejects_links_out(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="link"):
        safe_join(root, "link/file.txt")
    assert safe_join(root, "a/./b.txt") == root / "a" / "b.txt"


def test_save_target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sparc.client._download import save_target

    monkeypatch.chdir(tmp_path)
    assert save_target(None, "a.csv") == tmp_path / "a.csv"
    assert save_target(tmp_path, "a.csv") == tmp_path / "a.csv"       # an existing folder
    with pytest.warns(UserWarning, match="does not end in .zip"):  # the name is kept as given
        assert save_target(tmp_path / "out", "x.zip", ".zip") == tmp_path / "out"
    assert save_target(tmp_path / "out.ZIP", "x.zip", ".zip") == tmp_path / "out.ZIP"
    for bad_name in ("a\x00b", 42):
        with pytest.raises(ArgumentError):
            save_target(bad_name, "x.zip")  # type: ignore[arg-type]
    for bad in ("../a", "a/b", "..", ""):
        with pytest.raises(UnsafePathError):
            save_target(None, bad)


def test_download_records_sidecar(tmp_path: Path) -> None:
    """One JSON line per saved file under <output>/.sparc/; the last line for a path wins;
    a sidecar grown long is compacted on load."""
    from sparc.client._download import DownloadRecords, Record

    records = DownloadRecords(tmp_path)
    for i in range(150):
        records.add(Record("a.csv", i, 1, "md5", f"md5:{i:032x}", None, "pennsieve:90/1"))
    records.add(Record("b.csv", 5, 2, "size"))
    sidecar = tmp_path / ".sparc" / "downloads.jsonl"
    assert len(sidecar.read_text().splitlines()) >= 1  # the first at once, then every 0.5 s
    records.close()  # and the rest on close
    assert len(sidecar.read_text().splitlines()) == 151
    again = DownloadRecords(tmp_path)
    assert again.get("a.csv").size == 149 and again.get("b.csv").check == "size"  # type: ignore[union-attr]
    assert len(sidecar.read_text().splitlines()) == 2  # compacted
    local = tmp_path / "b.csv"
    local.write_bytes(b"12345")
    stat = local.stat()
    assert Record("b.csv", 5, stat.st_mtime_ns, "size").matches_disk(local)
    assert not Record("b.csv", 5, stat.st_mtime_ns + 1, "size").matches_disk(local)


@pytest.mark.parametrize("bad", ["/x", "\\x", "//srv/share/x", "c:x", "Z:/x", ".", "./", "a/..",
                                 "a\\..\\..\\x"])
def test_safe_join_rejects_more(tmp_path: Path, bad: str) -> None:
    """Absolute in POSIX or Windows terms (root, drive, UNC share), '..', or no file at all."""
    with pytest.raises(UnsafePathError):
        safe_join(tmp_path, bad)


def test_safe_join_many_paths_one_resolve_per_folder(tmp_path: Path) -> None:
    from sparc.client._download import SafeJoin

    join = SafeJoin(tmp_path)
    got = [join(f"files/primary/f{i}.dat") for i in range(3)] + [join("a\\b.txt"), join("c.txt")]
    assert got == [tmp_path / "files" / "primary" / f"f{i}.dat" for i in range(3)] + \
        [tmp_path / "a" / "b.txt", tmp_path / "c.txt"]
    assert set(join._folders) == {"files/primary", "files", "a", ""}  # each from its parent
    (tmp_path / "files" / "primary").mkdir(parents=True)
    (tmp_path / "files" / "primary" / "evil.dat").symlink_to("/etc/hostname")
    with pytest.raises(UnsafePathError, match="link"):
        join("files/primary/evil.dat")


def test_safe_join_keeps_windows_drives_out() -> None:
    """On Windows a segment such as "D:x" replaces what it is joined to: checked with a pure
    Windows root (no file system), every drive-bearing path is refused, as before."""
    from pathlib import PureWindowsPath

    from sparc.client._download import SafeJoin

    class WindowsRoot(PureWindowsPath):
        def resolve(self) -> WindowsRoot:
            return self

    for root in ("C:/out", "out"):  # a relative root too: "a/D:x" would leave it for D:
        join = SafeJoin(WindowsRoot(root))  # type: ignore[arg-type]
        for bad in ["a/D:evil.txt", "a/b/D:evil", "D:evil", "./D:x", "a\\D:y", "1:x", "a/C:x",
                    "a/D:x/f.txt", "a/D:/f.txt", "D:x/f.txt"]:
            with pytest.raises(UnsafePathError):
                join(bad)
        assert join("a/b.txt") == WindowsRoot(root) / "a" / "b.txt"


def test_safe_join_follows_folder_links_at_any_depth(tmp_path: Path) -> None:
    """Folders are resolved from their parent's resolution (one lookup each): a link at any
    depth is still followed, refused when it leads out, kept when it stays inside."""
    from sparc.client._download import SafeJoin

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "real" / "deep").mkdir(parents=True)
    outside.mkdir()
    (root / "real" / "out").symlink_to(outside)
    (root / "in").symlink_to(root / "real")
    join = SafeJoin(root)
    assert join("real/deep/a.txt") == root / "real" / "deep" / "a.txt"
    assert join("in/deep/b.txt") == root / "in" / "deep" / "b.txt"  # a link kept inside
    for bad in ("real/out/c.txt", "real/out/x/d.txt", "in/out/e.txt"):
        with pytest.raises(UnsafePathError, match="outside"):
            join(bad)
