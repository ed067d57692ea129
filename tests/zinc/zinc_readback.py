"""Independent readers for the exported files (meshio, trimesh, json) and the sources' bounds."""

from __future__ import annotations

import json
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data" / "zinc"
MBF_NAME = "10991_20180817_143553.xml"
SETTINGS_PATH = "files/primary/Scaffold_Creator-settings.json"
EXF_PATH = "files/primary/Scaffold_Creator.exf"
ALL_FORMATS = ["vtk", "stl", "obj", "ply", "glb", "webgl"]


def meshio_read(path: Path) -> Any:
    import meshio

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return meshio.read(str(path))


def counts(mesh: Any) -> tuple[int, dict[str, int]]:
    """(points, {cell type: count})."""
    cells: dict[str, int] = {}
    for block in mesh.cells:
        cells[block.type] = cells.get(block.type, 0) + len(block.data)
    return len(mesh.points), cells


def bounds(points: Any) -> np.ndarray:
    points = np.asarray(points, dtype=float)
    return np.array([points.min(axis=0), points.max(axis=0)])


def trimesh_scene(path: Path) -> Any:
    import trimesh

    return trimesh.load(str(path), force="scene")


def webgl_bounds(metadata: Path) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The metadata entries and the bounds of every vertex in the files they name."""
    entries = json.loads(metadata.read_text())
    vertices = []
    for entry in entries:
        part = json.loads((metadata.parent / entry["URL"]).read_text())
        vertices.append(np.asarray(part["vertices"], dtype=float).reshape(-1, 3))
    return entries, bounds(np.concatenate(vertices))


def zinc_node_bounds(path: Path) -> np.ndarray:
    """Bounds of the nodes of an EX/EXF file, through cmlibs.zinc directly."""
    from cmlibs.utils.zinc.field import find_coordinate_fields
    from cmlibs.zinc.context import Context
    from cmlibs.zinc.field import Field

    context = Context("readback")
    region = context.getDefaultRegion()
    assert region.readFile(str(path)) == 1  # RESULT_OK
    fieldmodule = region.getFieldmodule()
    field = next(f for f in find_coordinate_fields(region))
    named = fieldmodule.findFieldByName("coordinates")
    field = named if named.isValid() else field
    nodes = fieldmodule.findNodesetByFieldDomainType(Field.DOMAIN_TYPE_NODES)
    cache = fieldmodule.createFieldcache()
    values = []
    iterator = nodes.createNodeiterator()
    node = iterator.next()
    while node.isValid():
        cache.setNode(node)
        ok, xyz = field.evaluateReal(cache, 3)
        if ok == 1:
            values.append(xyz)
        node = iterator.next()
    return bounds(values)


def mbf_contour_bounds(path: Path) -> np.ndarray:
    """Bounds of the <point> elements inside <contour>/<tree> elements of an MBF XML file."""
    points = []
    for element in ET.parse(path).getroot().iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in ("contour", "tree"):
            for point in element.iter():
                if point.tag.rsplit("}", 1)[-1] == "point":
                    points.append([float(point.get(c)) for c in "xyz"])
    return bounds(points)
