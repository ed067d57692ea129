"""Every format from each input kind, read back with independent readers (meshio, trimesh)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from zinc_readback import (
    ALL_FORMATS,
    DATA,
    EXF_PATH,
    MBF_NAME,
    bounds,
    counts,
    mbf_contour_bounds,
    meshio_read,
    read_legacy_vtk,
    trimesh_scene,
    webgl_bounds,
    zinc_node_bounds,
    zinc_nodes,
)

from sparc.client import SparcClient
from sparc.client.services.zinc import ZincService


def by_suffix(paths: list[Path], stem: str) -> dict[str, Path]:
    out = {}
    for path in paths:
        if path.name.startswith(stem):
            rest = path.name[len(stem):]
            key = {"_metadata.json": "webgl"}.get(rest, rest.lstrip("."))
            out.setdefault(key, path)
    return out


def obj_groups(path: Path) -> dict[str, int]:
    """Faces per group name of an OBJ (a ``g`` line may name several groups)."""
    faces: dict[str, int] = {}
    current: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("g "):
            current = line.split()[1:]
        elif line.startswith("f "):
            for name in current:
                faces[name] = faces.get(name, 0) + 1
    return faces


def check_surface_files(files: dict[str, Path], source: np.ndarray, *, tolerance: float,
                        min_triangles: int) -> dict[str, tuple[int, int]]:
    """Every surface format holds triangles whose bounds match ``source`` (and each other)."""
    assert set(ALL_FORMATS) <= set(files), files
    size = float(np.linalg.norm(source[1] - source[0]))
    found = {}
    for fmt in ("vtk", "stl", "obj", "ply"):
        points, cells = counts(meshio_read(files[fmt]))
        assert cells.get("triangle", 0) >= min_triangles, (fmt, cells)
        assert points > 3, fmt
        box = bounds(meshio_read(files[fmt]).points)
        assert np.allclose(box, source, atol=tolerance * size), (fmt, box, source)
        found[fmt] = (points, cells["triangle"])
    assert len({found[f] for f in ("vtk", "ply", "obj")}) == 1, found  # same mesh everywhere
    assert found["stl"][1] == found["vtk"][1]
    scene = trimesh_scene(files["glb"])  # one mesh per group: groups overlap
    assert sum(len(g.faces) for g in scene.geometry.values()) >= found["vtk"][1]
    assert max(len(g.faces) for g in scene.geometry.values()) <= found["vtk"][1]
    assert np.allclose(scene.bounds, source, atol=tolerance * size)
    entries, box = webgl_bounds(files["webgl"])
    assert entries and all(e["Type"] == "Surfaces" for e in entries)
    assert np.allclose(box, source, atol=tolerance * size), (box, source)
    return found


# -- scaffold settings JSON from sandbox dataset 292 -------------------------------------------
def test_scaffold_settings_from_dataset_every_format(exports_292: tuple[Path, list[Path]],
                                                     sandbox_env: Path) -> None:
    out, paths = exports_292
    assert all(p.parent == out and p.stat().st_size > 0 for p in paths)
    files = by_suffix(paths, "Scaffold_Creator-settings")
    with SparcClient(connect=False) as client:  # the scaffold as Scaffold Creator saved it
        exf = client.pennsieve.download(292, [EXF_PATH], sandbox_env / "src")
    source = zinc_node_bounds(Path(exf[0]))
    found = check_surface_files(files, source, tolerance=0.02, min_triangles=5000)
    assert found["vtk"][1] > 10_000
    # annotation groups are kept as named parts
    names = set(trimesh_scene(files["glb"]).geometry)
    assert {"serosa of body of stomach", "luminal surface of body of stomach"} <= names, names
    groups = {e["GroupName"] for e in json.loads(files["webgl"].read_text())}
    assert groups == names
    assert obj_groups(files["obj"])["serosa_of_body_of_stomach"] > 0
    assert not list(out.glob(".*")), "temporary files left behind"


def test_every_annotation_group_is_kept(exports_292: tuple[Path, list[Path]]) -> None:
    """Overlapping groups (stomach holds body of stomach) each stay a named part in every format
    that can hold overlapping sets; STL/PLY/VTK 'part' stay a disjoint partition."""
    out, paths = exports_292
    files = by_suffix(paths, "Scaffold_Creator-settings")
    wanted = {"stomach", "body of stomach", "fundus of stomach", "serosa of stomach",
              "esophagus", "serosa of body of stomach"}
    glb = {name: len(g.faces) for name, g in trimesh_scene(files["glb"]).geometry.items()}
    assert wanted <= set(glb) and len(glb) == 38, sorted(glb)
    assert glb["stomach"] > glb["body of stomach"] > glb["serosa of body of stomach"] > 0
    webgl = {e["GroupName"] for e in json.loads(files["webgl"].read_text())}
    assert webgl == set(glb)
    obj = obj_groups(files["obj"])
    assert obj == {name.replace(" ", "_"): count for name, count in glb.items()}
    mesh = meshio_read(files["vtk"])
    arrays = {name.replace("%20", " "): values[0] for name, values in mesh.cell_data.items()}
    assert set(arrays) == set(glb) | {"part"}
    assert {name: int(arrays[name].sum()) for name in glb} == glb
    assert len(set(arrays["part"].tolist())) < len(glb)  # the partition stays disjoint
    # sizes stay sane: the vertices are shared, not copied per group
    assert files["glb"].stat().st_size < 3 * files["stl"].stat().st_size


def test_refinement_follows_the_curved_geometry(data: Path, tmp_path: Path) -> None:
    zinc = ZincService()
    coarse = zinc.export(data / "cube.exf", "stl", tmp_path / "r1", refinement=1)[0]
    fine = zinc.export(data / "cube.exf", "stl", tmp_path / "r8", refinement=8)[0]
    assert counts(meshio_read(coarse))[1]["triangle"] == 6 * 2 * 1
    assert counts(meshio_read(fine))[1]["triangle"] == 6 * 2 * 64


# -- a local .exf ------------------------------------------------------------------------------
def test_local_exf_every_format(data: Path, tmp_path: Path) -> None:
    paths = ZincService().export(data / "cube.exf", ALL_FORMATS, tmp_path / "out")
    files = by_suffix(paths, "cube")
    source = zinc_node_bounds(data / "cube.exf")
    assert np.allclose(source, [[0, 0, 0], [1.5, 1, 1]])
    found = check_surface_files(files, source, tolerance=1e-6, min_triangles=400)
    assert found["vtk"] == (218, 432)  # refinement 6 on the 6 faces of one tricubic hexahedron
    import trimesh

    stl = trimesh.load(str(files["stl"]), force="mesh")
    assert stl.is_watertight
    assert stl.area == pytest.approx(8.0, rel=1e-4)
    assert stl.volume == pytest.approx(1.5, rel=1e-4)  # positive: faces point outwards


def test_local_settings_json(data: Path, tmp_path: Path) -> None:
    paths = ZincService().export(str(data / "box-settings.json"), ["vtk", "stl"], tmp_path)
    mesh = meshio_read(paths[0])
    assert np.allclose(bounds(mesh.points), [[0, 0, 0], [1, 1, 1]])
    assert counts(mesh)[1]["triangle"] == 6 * 2 * 36


# -- MBF XML from sandbox dataset 107 ----------------------------------------------------------
def test_mbf_from_dataset_every_format(exports_107: tuple[Path, list[Path]]) -> None:
    out, paths = exports_107
    files = by_suffix(paths, Path(MBF_NAME).stem)
    source = mbf_contour_bounds(DATA / "3Dscaffold-CGRP-Mice-Dorsal-2.xml")  # same bytes as 107's
    vtk = read_legacy_vtk(files["vtk"])  # meshio cannot read POLYDATA
    assert vtk["version"] == "# vtk DataFile Version 4.2" and vtk["dataset"] == "POLYDATA"
    assert vtk["cell_kind"] == "LINES" and len(vtk["points"]) == 1743
    assert sum(len(chain) - 1 for chain in vtk["cells"]) == 1735  # 1746 elements, 11 empty
    assert len(vtk["cells"]) < 200 and max(len(chain) for chain in vtk["cells"]) > 20
    assert np.allclose(bounds(vtk["points"]), source)
    assert sorted(set(vtk["cell_data"]["part"].tolist())) == list(range(8))
    assert len(vtk["cell_data"]) == 1 + 9 and len(vtk["point_data"]["radius"]) == 1743
    # surface formats: tubes around the lines (radius 2.5 from the file)
    for fmt in ("stl", "obj", "ply"):
        mesh = meshio_read(files[fmt])
        assert counts(mesh)[1]["triangle"] > 20_000, fmt
        assert np.allclose(bounds(mesh.points), source, atol=3.5), fmt  # largest d/2: 3.485
    scene = trimesh_scene(files["glb"])
    assert len(scene.geometry) == 9  # ilx_0793091 holds the same lines as another group
    assert "http://uri.interlex.org/base/ilx_0793091" in scene.geometry
    assert "limiting ridge on circular-longitudinal muscle interface" in scene.geometry
    entries, box = webgl_bounds(files["webgl"])
    assert len(entries) == 9 and all(e["Type"] == "Lines" for e in entries)
    assert np.allclose(box, source)


def test_tube_radius(data: Path, tmp_path: Path) -> None:
    xml = data / "3Dscaffold-CGRP-Mice-Dorsal-2.xml"
    stl = ZincService().export(xml, "stl", tmp_path, tube_radius=20.0)[0]
    box = bounds(meshio_read(stl).points)
    source = mbf_contour_bounds(xml)
    assert np.allclose(box, source, atol=20.01)
    assert not np.allclose(box, source, atol=10.0)


# -- repeatability and isolation --------------------------------------------------------------
@pytest.mark.parametrize("name", ["cube.exf", "3Dscaffold-CGRP-Mice-Dorsal-2.xml"])
def test_two_exports_give_identical_files(data: Path, tmp_path: Path, name: str) -> None:
    zinc = ZincService()
    first = zinc.export(data / name, ALL_FORMATS, tmp_path / "a")
    second = zinc.export(data / name, ALL_FORMATS, tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_exports_do_not_leak_into_each_other(data: Path, tmp_path: Path) -> None:
    zinc = ZincService()
    alone = zinc.export(data / "cube.exf", "vtk", tmp_path / "alone")[0]
    zinc.export(data / "3Dscaffold-CGRP-Mice-Dorsal-2.xml", "vtk", tmp_path / "mbf")
    zinc.export(data / "box-settings.json", "vtk", tmp_path / "box")
    after = zinc.export(data / "cube.exf", "vtk", tmp_path / "after")[0]
    assert alone.read_bytes() == after.read_bytes()


@pytest.mark.slow
def test_dataset_scaffold_export_is_repeatable(sandbox_env: Path) -> None:
    with SparcClient(connect=False) as client:
        first = client.zinc.export(292, ALL_FORMATS, "a")
        second = client.zinc.export(292, ALL_FORMATS, "b")
    assert len(first) == len(second) > 12  # settings JSON and EXF, each in every format
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name
    exf = by_suffix(first, "Scaffold_Creator.")  # the EXF export agrees with the generated one
    settings = by_suffix(first, "Scaffold_Creator-settings")
    assert np.allclose(bounds(meshio_read(exf["vtk"]).points),
                       bounds(meshio_read(settings["vtk"]).points), atol=1e-5)


# -- child regions ------------------------------------------------------------------------------
def test_child_regions_are_exported(data: Path, tmp_path: Path) -> None:
    """An .exf whose elements live in child regions (``Region: /heart``) exports every region,
    its parts named by region path."""
    from cmlibs.zinc.context import Context

    context = Context("child-regions")
    region = context.getDefaultRegion()
    heart = region.createChild("heart")
    assert heart.readFile(str(data / "cube.exf")) == 1
    assert region.createChild("body").createChild("lung").readFile(str(data / "cube.exf")) == 1
    source = tmp_path / "regions.exf"
    assert region.writeFile(str(source)) == 1
    assert "Region: /heart" in source.read_text()
    paths = ZincService().export(source, ["vtk", "glb", "webgl"], tmp_path / "out")
    files = by_suffix(paths, "regions")
    assert counts(meshio_read(files["vtk"])) == (2 * 218, {"triangle": 2 * 432})
    assert sorted(trimesh_scene(files["glb"]).geometry) == ["body/lung", "heart"]
    entries, box = webgl_bounds(files["webgl"])
    assert sorted((e["GroupName"], e["RegionPath"]) for e in entries) == [
        ("body/lung", "body/lung"), ("heart", "heart")]
    assert np.allclose(box, [[0, 0, 0], [1.5, 1, 1]], atol=1e-5)


# -- part names ---------------------------------------------------------------------------------
def test_part_names_in_vtk_ply_stl(exports_292: tuple[Path, list[Path]], data: Path,
                                   tmp_path: Path) -> None:
    """VTK: field data <name> = part index; PLY: 'comment part <i> <name>' and a 'part' face
    property; STL: the names in the 80-byte header when they fit. meshio/trimesh still read them."""
    import trimesh

    from sparc.client.services.zinc import _engine

    out, paths = exports_292
    files = by_suffix(paths, "Scaffold_Creator-settings")
    vtk = read_legacy_vtk(files["vtk"])
    assert vtk["version"] == "# vtk DataFile Version 4.2"
    names = {index: name for name, index in
             ((n, int(v[0])) for n, v in vtk["field"].items())}
    assert sorted(names) == list(range(len(names))) and "serosa of body of stomach" in \
        names.values()
    part = vtk["cell_data"]["part"]
    assert set(part.tolist()) == set(names)
    ply_comments = [line.split(" ", 3)[2:] for line in
                    files["ply"].read_bytes().split(b"end_header")[0].decode().splitlines()
                    if line.startswith("comment part ")]
    assert {int(i): n for i, n in ply_comments} == names
    mesh = meshio_read(files["ply"])
    assert np.array_equal(mesh.cell_data["part"][0], part)
    ply = trimesh.load(str(files["ply"]), process=False)
    assert np.array_equal(ply.metadata["_ply_raw"]["face"]["data"]["part"].ravel(), part)
    assert len(ply.faces) == len(part)
    assert files["stl"].read_bytes()[:80].rstrip() == \
        f"sparc.client zinc export: {len(names)} parts".encode()  # too many names to fit
    cube = ZincService().export(data / "cube.exf", "stl", tmp_path)[0]
    assert cube.read_bytes()[:80].rstrip() == \
        f"sparc.client zinc export: {_engine.UNGROUPED}".encode()
    assert len(trimesh.load(str(cube)).faces) == 432


def test_partly_defined_faces_give_the_whole_surface(data: Path, tmp_path: Path) -> None:
    """A 3-D .exf with only some faces defined: the missing faces are defined, not skipped."""
    from cmlibs.zinc.context import Context

    context = Context("some-faces")
    region = context.getDefaultRegion()
    assert region.readFile(str(data / "cube.exf")) == 1
    fieldmodule = region.getFieldmodule()
    fieldmodule.defineAllFaces()
    mesh2d = fieldmodule.findMeshByDimension(2)
    assert mesh2d.getSize() == 6
    for identifier in (1, 2, 3, 4):  # keep 2 of the 6 faces
        assert mesh2d.destroyElement(mesh2d.findElementByIdentifier(identifier)) == 1
    source = tmp_path / "some-faces.exf"
    assert region.writeFile(str(source)) == 1
    stl = ZincService().export(source, "stl", tmp_path / "out")[0]
    assert counts(meshio_read(stl))[1]["triangle"] == 432


def test_two_component_coordinates_get_z_zero(tmp_path: Path) -> None:
    """A 2-D mesh with a 2-component coordinate field exports at z = 0."""
    from cmlibs.zinc.element import Element, Elementbasis

    context, region, fieldmodule, coordinates = zinc_nodes(
        "square", [(0.0, 0.0), (2.0, 0.0), (0.0, 1.0), (2.0, 1.0)])
    mesh = fieldmodule.findMeshByDimension(2)
    element_template = mesh.createElementtemplate()
    element_template.setElementShapeType(Element.SHAPE_TYPE_SQUARE)
    eft = mesh.createElementfieldtemplate(
        fieldmodule.createElementbasis(2, Elementbasis.FUNCTION_TYPE_LINEAR_LAGRANGE))
    element_template.defineField(coordinates, -1, eft)
    mesh.createElement(1, element_template).setNodesByIdentifier(eft, [1, 2, 3, 4])
    source = tmp_path / "square.exf"
    assert region.writeFile(str(source)) == 1
    paths = ZincService().export(source, ["stl", "vtk", "webgl"], tmp_path / "out")
    files = by_suffix(paths, "square")
    mesh_read = meshio_read(files["stl"])
    assert counts(mesh_read)[1]["triangle"] == 2
    assert np.allclose(bounds(mesh_read.points), [[0, 0, 0], [2, 1, 0]])
    assert np.allclose(webgl_bounds(files["webgl"])[1], [[0, 0, 0], [2, 1, 0]])


def test_webgl_metadata_last_and_stale_parts_removed(data: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from sparc.client.services.zinc import service

    order: list[str] = []
    publish = service._publish
    monkeypatch.setattr(service, "_publish", lambda folder, name, write: (
        order.append(name), publish(folder, name, write))[1])
    out = tmp_path / "out"
    source = tmp_path / "seg.xml"
    source.write_bytes((data / "3Dscaffold-CGRP-Mice-Dorsal-2.xml").read_bytes())
    first = ZincService().export(source, "webgl", out)
    assert len(first) == 10 and order[-1] == "seg_metadata.json"  # 9 groups, then metadata
    assert first[0].name == "seg_metadata.json"
    (out / "seg_99.json").write_text("my own notes")  # not a ZincJS part: kept
    order.clear()
    source = tmp_path / "seg.exf"
    source.write_bytes((data / "cube.exf").read_bytes())
    second = ZincService().export(source, "webgl", out)
    assert order == ["seg_1.json", "seg_metadata.json"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["seg_metadata.json", "seg_1.json", "seg_99.json"])
    assert webgl_bounds(second[0])[1].tolist() == [[0, 0, 0], [1.5, 1, 1]]


def test_scaffold_surface_is_welded(exports_292: tuple[Path, list[Path]]) -> None:
    """No two points of 292's exported surface closer than Zinc's 6-digit rounding: faces share
    their vertices across element and group boundaries."""
    from scipy.spatial import cKDTree

    out, paths = exports_292
    points = read_legacy_vtk(by_suffix(paths, "Scaffold_Creator-settings")["vtk"])["points"]
    tolerance = 1e-5 * np.abs(points).max()
    assert not len(cKDTree(points).query_pairs(tolerance)), "duplicate vertices"
    closest = cKDTree(points).query(points, k=2)[0][:, 1].min()
    assert closest > 10 * tolerance  # the tolerance is far below the tessellation spacing


def test_an_export_without_progress_imports_no_tqdm(data: Path, tmp_path: Path) -> None:
    """Bars off: the step bar is a NoBar and tqdm is never imported (fresh interpreter)."""
    code = (
        "import json, sys\n"
        "from sparc.client.services.zinc import ZincService\n"
        "ZincService().export(sys.argv[1], ['stl'], sys.argv[2], progress=False)\n"
        "print(json.dumps('tqdm' in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(data / "cube.exf"), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "false"
    assert (tmp_path / "out" / "cube.stl").is_file()
