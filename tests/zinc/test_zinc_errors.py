"""Bad inputs: each a typed error that says what was found and what is accepted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from zinc_readback import zinc_nodes

from sparc.client import SparcClient
from sparc.client.errors import ArgumentError, NotFoundError, SparcError
from sparc.client.services.zinc import (
    EmptyExportError,
    NoExportableFileError,
    NotExportableError,
    UnknownFormatError,
    UnknownOrganError,
    ZincService,
)


@pytest.fixture
def zinc() -> ZincService:
    return ZincService()


@pytest.mark.parametrize("fmt", ["gltf", "x3d", "", ["vtk", "fbx"], []])
def test_unknown_format(zinc: ZincService, data: Path, tmp_path: Path, fmt: object) -> None:
    with pytest.raises(UnknownFormatError, match="accepted: vtk, stl, obj, ply, glb, webgl|glb"):
        zinc.export(data / "cube.exf", fmt, tmp_path / "out")  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("name", "content", "match"), [
    ("notes.txt", "just some notes\n", "not a file the Zinc service can export"),
    ("data.json", '{"models": {}}', "no scaffold_settings.scaffoldPackage"),
    ("broken.json", '{"scaffold_settings": ', "not valid JSON"),
    ("bad-type-settings.json",
     '{"scaffold_settings": {"scaffoldPackage": {"scaffoldTypeName": "3D Nothing 9"}}}',
     "scaffoldmaker has no scaffold type .3D Nothing 9.; expected one of .*3D Box 1"),
    ("other.xml", "<root><data>Test data</data></root>", "not an MBF segmentation"),
    ("broken.xml", "<root><data>Test data</root>", "not well-formed XML"),
    ("garbage.exf", "EX Version: 3\nthis is not a zinc file\n", "could not be read as a Zinc"),
])
def test_not_exportable_files(zinc: ZincService, tmp_path: Path, name: str, content: str,
                              match: str) -> None:
    source = tmp_path / name
    source.write_text(content)
    out = tmp_path / "out"
    with pytest.raises(NotExportableError, match=match) as info:
        zinc.export(source, "stl", out)
    assert "expected" in str(info.value) or "MBF" in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, SparcError)
    assert not out.exists() or not list(out.iterdir())


def test_missing_local_file(zinc: ZincService, tmp_path: Path) -> None:
    with pytest.raises(NotExportableError, match="no such file"):
        zinc.export(tmp_path / "absent.exf", "vtk", tmp_path)


def test_no_geometry_is_an_error(zinc: ZincService, tmp_path: Path) -> None:
    context, region, _, _ = zinc_nodes("nodes-only", [(float(i), 0.0, 0.0) for i in range(3)])
    source = tmp_path / "nodes.exf"
    region.writeFile(str(source))
    with pytest.raises(EmptyExportError, match="no elements"):
        zinc.export(source, ["vtk", "stl"], tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


def test_mbf_without_contours_is_an_error(zinc: ZincService, tmp_path: Path) -> None:
    source = tmp_path / "empty.xml"
    source.write_text('<mbf version="4.0" xmlns="http://www.mbfbioscience.com"></mbf>')
    with pytest.raises(EmptyExportError):
        zinc.export(source, "vtk", tmp_path / "out")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"refinement": 0}, "refinement"), ({"refinement": 2.5}, "refinement"),
    ({"tube_radius": -1}, "tube_radius"), ({"file": "x.exf"}, "dataset sources only"),
    ({"version": 2}, "dataset sources only"),
])
def test_bad_options(zinc: ZincService, data: Path, tmp_path: Path, kwargs: dict[str, object],
                     match: str) -> None:
    with pytest.raises(ArgumentError, match=match):
        zinc.export(data / "cube.exf", "vtk", tmp_path, **kwargs)  # type: ignore[arg-type]


def test_bad_source_type(zinc: ZincService, tmp_path: Path) -> None:
    with pytest.raises(ArgumentError, match="dataset id or a local path"):
        zinc.export(2.5, "vtk", tmp_path)  # type: ignore[arg-type]


# -- datasets ----------------------------------------------------------------------------------
def test_dataset_without_exportable_files(sandbox_env: Path) -> None:
    with SparcClient(connect=False) as client, \
            pytest.raises(NoExportableFileError, match="dataset 120 version 1 has no exportable"):
        client.zinc.export(120, "vtk", "out")
    assert sorted(os.listdir(sandbox_env)) == []  # nothing downloaded into the working folder


def test_dataset_file_not_there(sandbox_env: Path) -> None:
    with SparcClient(connect=False) as client, \
            pytest.raises(NoExportableFileError, match="no file 'absent.xml'.*10991_"):
        client.zinc.export(107, "vtk", "out", file="absent.xml")


def test_named_file_that_is_not_exportable(sandbox_env: Path) -> None:
    with SparcClient(connect=False) as client, \
            pytest.raises(NotExportableError, match="changes.txt"):
        client.zinc.export(292, "vtk", "out", file="changes.txt")


def test_unknown_dataset(sandbox_env: Path) -> None:
    with SparcClient(connect=False) as client, pytest.raises(NotFoundError):
        client.zinc.export(999999, "vtk", "out")


def test_scaffold_helper_on_a_dataset_without_scaffold(sandbox_env: Path) -> None:
    from sparc.client.zinchelper import ZincHelper

    with ZincHelper() as zinc, pytest.raises(NoExportableFileError, match="settings"):
        zinc.get_scaffold_as_vtk(107)


def test_dataset_export_names_one_file_and_downloads_nothing_to_cwd(sandbox_env: Path) -> None:
    with SparcClient(connect=False) as client:
        paths = client.zinc.export("107", "vtk", "out", file="10991_20180817_143553.xml")
    assert [p.relative_to(sandbox_env).as_posix() for p in paths] == \
        ["out/10991_20180817_143553.vtk"]
    assert sorted(os.listdir(sandbox_env)) == ["out"]


# -- analyse -----------------------------------------------------------------------------------
def test_analyse_unknown_organ(zinc: ZincService, data: Path) -> None:
    with pytest.raises(UnknownOrganError, match="The brain organ is not handled by the mapping "
                                                "tool; known organs: .*stomach"):
        zinc.analyse(data / "3Dscaffold-CGRP-Mice-Dorsal-2.xml", ["stomach", "Brain"])


def test_analyse_not_xml(zinc: ZincService, tmp_path: Path) -> None:
    source = tmp_path / "input.txt"
    source.write_text("This is not an XML file")
    with pytest.raises(ValueError, match="must be an MBF XML file"):
        zinc.analyse(source, "stomach")


def test_analyse_malformed_xml(zinc: ZincService, tmp_path: Path) -> None:
    source = tmp_path / "input.xml"
    source.write_text("<root><data>Test data</root>")
    with pytest.raises(NotExportableError, match="not well-formed"):
        zinc.analyse(source, "stomach")


def test_analyse_without_groups(zinc: ZincService, tmp_path: Path) -> None:
    source = tmp_path / "test_input.XML"  # upper-case suffix accepted
    source.write_text("<root><data>Test data</data></root>")
    assert zinc.analyse(source, "stomach") == (
        f"The data file {source} doesn't have any groups, "
        "therefore this data file is not suitable for mapping.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test_input.XML"]


def test_analyse_no_group_of_the_organ_is_not_suited(zinc: ZincService, data: Path) -> None:
    message = zinc.analyse(data / "3Dscaffold-CGRP-Mice-Dorsal-2.xml", "heart", "Mice")
    assert "is not suited for mapping" in message and "none of its groups" in message
    assert "FillDensity" not in message  # mbfxml2ex's raw-XML group is not anatomy


# -- without the extra -------------------------------------------------------------------------
BLOCK = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('cmlibs', 'scaffoldmaker', 'mbfxml2ex'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
"""


def test_without_the_extra_the_error_names_the_install_command(data: Path) -> None:
    code = BLOCK + f"""
from sparc.client import SparcClient
client = SparcClient(connect=False)
zinc = client.zinc
try:
    zinc.export({str(data / 'cube.exf')!r}, 'vtk', {str(data)!r})
except ImportError as exc:
    print(type(exc).__name__, exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ZincNotInstalledError the Zinc service needs cmlibs.zinc")
    assert "pip install 'sparc.client[zinc]'" in out.stdout


def test_without_the_extra_nothing_touches_the_network(data: Path) -> None:
    """The missing extra is reported before any dataset lookup (the API host is unreachable)."""
    code = BLOCK + f"""
from sparc.client import SparcClient
from sparc.client.zinchelper import ZincHelper
client = SparcClient(connect=False)
calls = [lambda: client.zinc.export(292, 'vtk', {str(data)!r}),
         lambda: client.zinc.export({str(data / 'cube.exf')!r}, 'vtk', {str(data)!r}),
         lambda: ZincHelper().get_scaffold_vtk(292, 'x.vtk'),
         lambda: ZincHelper().get_mbf_vtk(107, 'a.xml', 'x.vtk'),
         lambda: client.zinc.analyse({str(data / '3Dscaffold-CGRP-Mice-Dorsal-2.xml')!r}, 'stomach')]
for call in calls:
    try:
        call()
    except Exception as exc:
        print(type(exc).__name__)
"""
    env = {**os.environ, "PENNSIEVE_API_HOST": "http://127.0.0.1:9",
           "SPARC_HTTP_RETRIES": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=env, timeout=60)
    assert out.stdout.split() == ["ZincNotInstalledError"] * 5, out.stdout + out.stderr


def test_client_zinc_imports_nothing_heavy() -> None:
    code = ("import sys; from sparc.client import SparcClient; c = SparcClient(connect=False); "
            "z = c.zinc; c.connect(); z.info(); print(sorted(m for m in ('cmlibs', 'cmlibs.zinc', "
            "'scaffoldmaker', 'mbfxml2ex', 'numpy', 'meshio', 'trimesh') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dataset_id_beside_a_folder_of_that_name(sandbox_env: Path) -> None:
    """``sparc zinc export 107 -o 107`` twice: the folder 107 is not taken for the source."""
    with SparcClient(connect=False) as client:
        for _ in range(2):
            paths = client.zinc.export("107", "vtk", "107", file="10991_20180817_143553.xml")
            assert [p.relative_to(sandbox_env).as_posix() for p in paths] == \
                ["107/10991_20180817_143553.vtk"]
    done = subprocess.run([sys.executable, "-m", "sparc.cli", "zinc", "export", "107", "-o",
                           "107", "--file", "10991_20180817_143553.xml", "-q"],
                          cwd=sandbox_env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr


def test_a_folder_is_not_a_source_file(zinc: ZincService, tmp_path: Path) -> None:
    (tmp_path / "scaffold.exf").mkdir()
    with pytest.raises(NotExportableError, match="is a directory"):
        zinc.export(tmp_path / "scaffold.exf", "vtk", tmp_path / "out")


@pytest.mark.parametrize("fmt", [None, 3, b"vtk"])
def test_format_of_the_wrong_type(zinc: ZincService, data: Path, tmp_path: Path,
                                  fmt: object) -> None:
    with pytest.raises(UnknownFormatError, match="accepted: vtk"):
        zinc.export(data / "cube.exf", fmt, tmp_path / "out")  # type: ignore[arg-type]


def test_output_naming_an_existing_file(zinc: ZincService, data: Path, tmp_path: Path,
                                        sandbox_env: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("mine")
    with pytest.raises(ArgumentError, match="output must be a folder.*existing file"):
        zinc.export(data / "cube.exf", "vtk", taken)
    from sparc.client.zinchelper import ZincHelper

    with ZincHelper() as helper, pytest.raises(ArgumentError, match="must be a folder"):
        helper.get_mbf_vtk(107, "10991_20180817_143553.xml", taken / "x.vtk")
    assert taken.read_text() == "mine"


def test_analyse_missing_file_names_what_analyse_takes(zinc: ZincService, tmp_path: Path) -> None:
    with pytest.raises(NotExportableError, match="does not exist; analyse.. takes an MBF XML") \
            as info:
        zinc.analyse(tmp_path / "absent.xml", "stomach")
    assert ".exf" not in str(info.value) and "settings" not in str(info.value)
