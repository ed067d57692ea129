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


VTK_TYPES = {"double": ">f8", "float": ">f4", "int": ">i4", "unsigned_char": ">u1",
             "long": ">i8", "vtkIdType": ">i4", "unsigned_int": ">u4", "char": ">i1"}


def read_legacy_vtk(path: Path) -> dict[str, Any]:
    """A minimal reader of binary legacy VTK (classic 4.2 layout), independent of the writer and
    of meshio: UNSTRUCTURED_GRID (CELLS/CELL_TYPES) and POLYDATA (LINES/POLYGONS), FIELD data at
    dataset, point and cell level (names %-decoded as VTK does)."""
    from urllib.parse import unquote

    data = path.read_bytes()
    pos = 0

    def line() -> str:
        nonlocal pos
        end = data.index(b"\n", pos)
        text = data[pos:end].decode()
        pos = end + 1
        return text

    def array(count: int, dtype: str) -> np.ndarray:
        nonlocal pos
        values = np.frombuffer(data, dtype=dtype, count=count, offset=pos).astype(
            np.dtype(dtype).newbyteorder("="))
        pos += count * np.dtype(dtype).itemsize
        if data[pos:pos + 1] == b"\n":
            pos += 1
        return values

    def cell_list(count: int, size: int) -> list[np.ndarray]:
        flat, out, i = array(size, ">i4"), [], 0
        for _ in range(count):
            out.append(flat[i + 1:i + 1 + flat[i]])
            i += 1 + flat[i]
        assert i == size
        return out

    out: dict[str, Any] = {"version": line(), "title": line(), "encoding": line().strip()}
    assert out["encoding"] == "BINARY"
    out["dataset"] = line().split()[1]
    out.update(field={}, point_data={}, cell_data={}, cells=[], cell_types=None)
    target = out["field"]
    while pos < len(data):
        words = line().split()
        if not words:
            continue
        key = words[0]
        if key == "FIELD":
            for _ in range(int(words[2])):
                name, components, tuples, kind = line().split()
                values = array(int(components) * int(tuples), VTK_TYPES[kind])
                target[unquote(name)] = values.reshape(int(tuples), -1).squeeze(-1) \
                    if int(components) == 1 else values.reshape(int(tuples), -1)
        elif key == "POINTS":
            out["points"] = array(3 * int(words[1]), VTK_TYPES[words[2]]).reshape(-1, 3)
        elif key in ("CELLS", "LINES", "POLYGONS", "VERTICES"):
            out["cells"] = cell_list(int(words[1]), int(words[2]))
            out["cell_kind"] = key
        elif key == "CELL_TYPES":
            out["cell_types"] = array(int(words[1]), ">i4")
        elif key == "POINT_DATA":
            target = out["point_data"]
        elif key == "CELL_DATA":
            target = out["cell_data"]
        else:
            raise ValueError(f"unknown legacy VTK section {key!r} at byte {pos}")
    return out


def zinc_nodes(name: str, points: list[tuple[float, ...]]) -> tuple[Any, Any, Any, Any]:
    """A new Zinc context ``name`` whose default region has nodes 1..n at ``points``, in a
    coordinate field of ``len(points[0])`` components: (context, region, fieldmodule,
    coordinates). The context is returned so it outlives the region."""
    from cmlibs.zinc.context import Context
    from cmlibs.zinc.field import Field

    context = Context(name)
    region = context.getDefaultRegion()
    fieldmodule = region.getFieldmodule()
    coordinates = fieldmodule.createFieldFiniteElement(len(points[0]))
    coordinates.setName("coordinates")
    coordinates.setTypeCoordinate(True)
    nodes = fieldmodule.findNodesetByFieldDomainType(Field.DOMAIN_TYPE_NODES)
    template = nodes.createNodetemplate()
    template.defineField(coordinates)
    cache = fieldmodule.createFieldcache()
    for identifier, point in enumerate(points, 1):
        cache.setNode(nodes.createNode(identifier, template))
        coordinates.assignReal(cache, list(point))
    return context, region, fieldmodule, coordinates
