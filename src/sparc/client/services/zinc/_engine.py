"""The conversion engine: load a scaffold / Zinc / MBF file into a fresh Zinc context, tessellate
it, and hand back plain arrays (:class:`Geometry`) plus the ZincJS (WebGL) buffers.

Everything heavy (cmlibs.zinc, scaffoldmaker, mbfxml2ex, numpy) is imported inside functions, so
importing this module costs nothing. Example::

    geometry = load_geometry(Path("cube.exf"), refinement=4)
    geometry.points.shape, geometry.cells.shape     # (218, 3) (192, 3)
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sparc.client.services.zinc.errors import (
    ACCEPTED_INPUTS,
    EmptyExportError,
    NotExportableError,
    ZincNotInstalledError,
)

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger("sparc.client")

#: Input kinds and the file suffixes that name them.
SUFFIX_KINDS = {".json": "scaffold", ".exf": "zinc", ".ex": "zinc", ".xml": "mbf"}
#: Groups that are not anatomy: Zinc/mbfxml2ex bookkeeping.
IGNORED_GROUPS = ("marker",)
#: Name of the part holding faces/lines that belong to no annotation group.
UNGROUPED = "ungrouped"


def require(module: str) -> Any:
    """Import ``module`` or raise :class:`ZincNotInstalledError` naming the install command."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ZincNotInstalledError(module.split(".")[0] if "cmlibs" not in module
                                    else ".".join(module.split(".")[:2])) from exc


def check_installed() -> None:
    """Raise :class:`ZincNotInstalledError` unless every package of the ``zinc`` extra imports."""
    import importlib.util

    for name in ("cmlibs.zinc", "cmlibs.utils", "scaffoldmaker", "mbfxml2ex", "meshio", "trimesh",
                 "scipy", "numpy"):
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:
            found = False
        if not found:
            raise ZincNotInstalledError(name)


@dataclass
class Geometry:
    """What one input becomes: a triangle surface (``kind="surface"``) or line segments
    (``kind="lines"``).

    Each cell belongs to one *class*: the set of annotation groups holding its face/line element
    (``class_groups[cell_class[i]]``, indices into ``group_names``). Groups overlap (``stomach``
    holds ``body of stomach``), so formats that can name overlapping sets (OBJ, glTF, VTK arrays,
    WebGL) keep every group; ``part`` is the disjoint partition (each cell in its smallest group)
    for a single per-cell label.
    """

    kind: str
    points: np.ndarray                 # (n, 3) float64, the source's own coordinates
    cells: np.ndarray                  # (m, 3) triangles or (m, 2) segments, int64
    part: np.ndarray                   # (m,) index into part_names
    part_names: list[str]
    radius: np.ndarray | None = None   # (n,) per point, lines only (from the file; may be None)
    webgl: list[tuple[str, str]] = field(default_factory=list)  # (suffix, text) ZincJS buffers
    source_kind: str = ""              # "scaffold" | "zinc" | "mbf"
    cell_class: np.ndarray | None = None            # (m,) class index per cell
    class_groups: list[tuple[int, ...]] = field(default_factory=list)
    class_part: list[int] = field(default_factory=list)  # class -> index into part_names
    group_names: list[str] = field(default_factory=list)  # every group holding some cell

    def classes(self) -> np.ndarray:
        import numpy as np

        if self.cell_class is None:
            return np.zeros(len(self.cells), dtype=np.int64)
        return self.cell_class

    def group_labels(self) -> list[str]:
        """``group_names`` plus :data:`UNGROUPED` when some cell is in no group."""
        extra = [UNGROUPED] if any(not g for g in self.class_groups) else []
        return list(self.group_names) + extra

    def group_classes(self) -> list[tuple[str, list[int]]]:
        """(group label, the classes it holds) for every label of :meth:`group_labels`."""
        out = [(name, [c for c, sig in enumerate(self.class_groups) if j in sig])
               for j, name in enumerate(self.group_names)]
        if any(not g for g in self.class_groups):
            out.append((UNGROUPED, [c for c, sig in enumerate(self.class_groups) if not sig]))
        return out


# -- loading ------------------------------------------------------------------------------------
def sniff_kind(path: Path) -> str:
    """``scaffold``, ``zinc`` or ``mbf`` from the suffix, else from the first bytes."""
    if path.is_dir():
        raise NotExportableError(f"{str(path)!r} is a directory, not a file; expected "
                                 f"{ACCEPTED_INPUTS}", path=str(path))
    if not path.is_file():
        raise NotExportableError(f"no such file: {str(path)!r}; expected {ACCEPTED_INPUTS}",
                                 path=str(path))
    kind = SUFFIX_KINDS.get(path.suffix.lower())
    if kind:
        return kind
    head = path.open("rb").read(2048).lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"{"):
        return "scaffold"
    if head.startswith((b"EX Version", b"Region:", b"Group name", b"!")):
        return "zinc"
    if head.startswith(b"<") and b"mbf" in head.lower():
        return "mbf"
    raise NotExportableError(
        f"{path.name!r} is not a file the Zinc service can export (suffix {path.suffix or 'none'!r}, "
        f"content starts {head[:24]!r}); expected {ACCEPTED_INPUTS}", path=str(path))


def _load_scaffold(region: Any, path: Path) -> Any:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise NotExportableError(f"{path.name!r} is not valid JSON ({exc}); expected "
                                 f"{ACCEPTED_INPUTS}", path=str(path)) from exc
    package = (document.get("scaffold_settings") or {}).get("scaffoldPackage") \
        if isinstance(document, dict) else None
    if not isinstance(package, dict):
        keys = sorted(document)[:8] if isinstance(document, dict) else type(document).__name__
        raise NotExportableError(
            f"{path.name!r} is JSON but not a scaffold settings file: no "
            f"scaffold_settings.scaffoldPackage (top level: {keys}); expected {ACCEPTED_INPUTS}",
            path=str(path))
    scaffolds = require("scaffoldmaker.scaffolds")
    known = [t.getName() for t in scaffolds.Scaffolds().getScaffoldTypes()]
    if package.get("scaffoldTypeName") not in known:
        raise NotExportableError(
            f"{path.name!r}: scaffoldmaker has no scaffold type "
            f"{package.get('scaffoldTypeName')!r}; expected one of {', '.join(known)}",
            path=str(path))
    package = {**package, "_ScaffoldPackage": True}
    try:
        scaffold_package = scaffolds.Scaffolds_decodeJSON(package)
        if not hasattr(scaffold_package, "generate"):
            raise TypeError("scaffoldPackage did not decode to a ScaffoldPackage")
        with contextlib.redirect_stdout(io.StringIO()):
            scaffold_package.generate(region)
    except Exception as exc:  # scaffoldmaker raises anything for bad settings
        raise NotExportableError(
            f"{path.name!r}: scaffoldmaker could not generate its scaffoldPackage "
            f"(type {package.get('scaffoldTypeName')!r}): {type(exc).__name__}: {exc}",
            path=str(path)) from exc
    # The annotation groups are unmanaged Zinc fields: keep them alive with the region.
    for annotation_group in scaffold_package.getAnnotationGroups():
        annotation_group.getGroup().setManaged(True)
    return scaffold_package


def _load_zinc(region: Any, path: Path) -> None:
    from cmlibs.zinc.result import RESULT_OK

    if region.readFile(str(path)) != RESULT_OK:
        raise NotExportableError(f"{path.name!r} could not be read as a Zinc EX/EXF file; "
                                 f"expected {ACCEPTED_INPUTS}", path=str(path))


def read_mbf(path: Path) -> Any:
    """Parse an MBF XML file (mbfxml2ex), raising :class:`NotExportableError` for other XML."""
    import xml.etree.ElementTree as ET

    try:
        root_tag = ""
        for _, element in ET.iterparse(str(path), events=("start",)):  # whole file: well-formed?
            root_tag = root_tag or element.tag
    except ET.ParseError as exc:
        raise NotExportableError(f"{path.name!r} is not well-formed XML ({exc}); expected an "
                                 "MBF XML segmentation", path=str(path)) from exc
    if root_tag.rsplit("}", 1)[-1].lower() != "mbf":
        raise NotExportableError(f"{path.name!r} is XML but not an MBF segmentation (root "
                                 f"element <{root_tag.rsplit('}', 1)[-1]}>, expected <mbf>)",
                                 path=str(path))
    app = require("mbfxml2ex.app")
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # mbfxml2ex prints "Unhandled tag:"
            return app.read_xml(str(path))
    except Exception as exc:
        raise NotExportableError(f"{path.name!r} is not a readable MBF XML file: "
                                 f"{type(exc).__name__}: {exc}", path=str(path)) from exc


def _load_mbf(region: Any, path: Path) -> None:
    contents = read_mbf(path)
    zinc = require("mbfxml2ex.zinc")
    with contextlib.redirect_stdout(io.StringIO()):
        zinc.load(region, contents, None)


def new_region(name: str = "sparc") -> tuple[Any, Any]:
    """A fresh Zinc context and its root region (never shared between exports)."""
    context_module = require("cmlibs.zinc.context")
    context = context_module.Context(name)
    return context, context.getDefaultRegion()


def load(region: Any, path: Path) -> tuple[str, Any]:
    """Fill ``region`` from ``path``; returns the input kind and an object to keep alive."""
    kind = sniff_kind(path)
    keep: Any = None
    if kind == "scaffold":
        keep = _load_scaffold(region, path)
    elif kind == "zinc":
        _load_zinc(region, path)
    else:
        _load_mbf(region, path)
    return kind, keep


def group_names(fieldmodule: Any) -> list[Any]:
    """The region's annotation groups (bookkeeping groups and raw-XML artefacts left out)."""
    from cmlibs.utils.zinc.field import get_group_list

    return [g for g in get_group_list(fieldmodule)
            if g.getName() not in IGNORED_GROUPS and not g.getName().lstrip().startswith("<")]


def _coordinate_field(region: Any, path: Path) -> Any:
    """The region's coordinate field (``coordinates`` first), 3 components: a 2-D (or 1-D)
    coordinate field is padded with z = 0 (and y = 0)."""
    from cmlibs.utils.zinc.field import find_coordinate_fields

    for size in (3, 2, 1):
        fields = find_coordinate_fields(region, size)
        if fields:
            break
    if not fields:
        found = []
        fieldmodule = region.getFieldmodule()
        iterator = fieldmodule.createFielditerator()
        candidate = iterator.next()
        while candidate.isValid():
            if candidate.castFiniteElement().isValid():
                found.append(f"{candidate.getName()!r} ({candidate.getNumberOfComponents()} "
                             f"components{', coordinate' if candidate.isTypeCoordinate() else ''})")
            candidate = iterator.next()
        raise EmptyExportError(
            f"{path.name!r} was read but has no coordinate field (a finite element field of type "
            f"coordinate with 1 to 3 components), so it holds no geometry to export; found "
            f"{', '.join(found) or 'no finite element field'}")
    named = [f for f in fields if f.getName() == "coordinates"]
    field = (named or fields)[0]
    if size == 3:
        return field
    fieldmodule = region.getFieldmodule()
    log.info("%s: coordinate field %r has %d components; z (and y) taken as 0", path.name,
             field.getName(), size)
    return fieldmodule.createFieldConcatenate(
        [field, fieldmodule.createFieldConstant([0.0] * (3 - size))])


def _finite_element(coordinates: Any) -> Any:
    """The finite element field behind ``coordinates`` (padded fields are concatenations)."""
    field = coordinates.castFiniteElement()
    return field if field.isValid() else coordinates.getSourceField(1).castFiniteElement()


# -- geometry -----------------------------------------------------------------------------------
def load_geometry(path: Path, *, refinement: int = 6, webgl: bool = False) -> Geometry:
    """Read ``path`` into a fresh Zinc context and tessellate it.

    3-D meshes give their exterior (boundary) faces, 2-D meshes every face, each evaluated on the
    true (e.g. cubic Hermite) geometry at ``refinement`` divisions per element edge; 1-D meshes
    (MBF contours and trees) give line segments. Every annotation group holding a face/line is
    kept (:attr:`Geometry.group_names`); each cell's part is the smallest group holding it.
    """
    context, region = new_region()
    kind, keep = load(region, path)
    found = []
    for name, sub in _regions(region):
        fieldmodule = sub.getFieldmodule()
        dimension = next((d for d in (3, 2, 1) if fieldmodule.findMeshByDimension(d).getSize()),
                         0)
        if dimension:
            found.append((name, sub, dimension))
    if not found:
        raise EmptyExportError(f"{path.name!r} ({kind}) was read but has no elements, so there is "
                               "no surface or line to export")
    surface = max(d for _, _, d in found) >= 2
    pieces = []
    for name, sub, dimension in found:
        if (dimension >= 2) != surface:
            log.warning("%s: region %r holds only %d-D elements; skipped beside the surfaces",
                        path.name, "/" + name, dimension)
            continue
        coordinates = _coordinate_field(sub, path)
        if surface:
            piece = _surfaces(context, sub, coordinates, dimension, refinement, path, webgl)
        else:
            piece = _lines(sub, coordinates, refinement, path, webgl)
        pieces.append((name, piece))
    geometry = pieces[0][1] if [n for n, _ in pieces] == [""] else _merge(pieces)
    geometry.source_kind = kind
    del keep
    if not len(geometry.cells):
        raise EmptyExportError(f"{path.name!r} ({kind}) yields no {geometry.kind} to export")
    return geometry


def _regions(region: Any, path: str = "") -> list[tuple[str, Any]]:
    """``region`` and all its descendants, depth first: (path such as ``heart/lv``, region)."""
    out = [(path, region)]
    child = region.getFirstChild()
    while child.isValid():
        out += _regions(child, f"{path}/{child.getName()}".lstrip("/"))
        child = child.getNextSibling()
    return out


def _merge(pieces: list[tuple[str, Geometry]]) -> Geometry:
    """One geometry from several regions' geometries; groups and parts named by region path
    (``heart/left ventricle``; a child region's ungrouped cells are named after the region)."""
    import numpy as np

    def named(region: str, name: str) -> str:
        if not region:
            return name
        return region if name == UNGROUPED else f"{region}/{name}"

    groups: dict[str, int] = {}
    part_labels: list[str] = []
    class_groups: list[tuple[int, ...]] = []
    points, cells, cell_class, radii = [], [], [], []
    buffers: list[tuple[str, str]] = []
    entries: list[Any] = []
    offset = 0
    for region, piece in pieces:
        base = len(class_groups)
        for signature, part in zip(piece.class_groups, piece.class_part, strict=True):
            labels = [named(region, piece.group_names[j]) for j in signature] or (
                [region] if region else [])
            class_groups.append(tuple(sorted(groups.setdefault(n, len(groups)) for n in labels)))
            part_labels.append(named(region, piece.part_names[part]))
        points.append(piece.points)
        cells.append(piece.cells + offset)
        cell_class.append(piece.classes() + base)
        radii.append(piece.radius if piece.radius is not None
                     else np.zeros(len(piece.points)))
        offset += len(piece.points)
        chunks = dict(piece.webgl)
        for entry in [e for e in json.loads(chunks.pop("metadata", "[]")) if e]:
            old = str(entry.get("URL", "")).removeprefix("memory_resource_")
            if old.isdigit() and str(int(old) - 1) in chunks:
                buffers.append((str(len(buffers) + 1), chunks[str(int(old) - 1)]))
                entry["URL"] = f"memory_resource_{len(buffers) + 1}"
            entry["GroupName"] = named(region, str(entry.get("GroupName", "")))
            entry["RegionPath"] = region
            entries.append(entry)
    # renumber groups alphabetically and parts as a sorted set, as for one region
    order = sorted(groups, key=lambda n: (n, groups[n]))
    renumber = {groups[n]: i for i, n in enumerate(order)}
    class_groups = [tuple(sorted(renumber[j] for j in sig)) for sig in class_groups]
    part_names = sorted(set(part_labels))
    class_part = [part_names.index(n) for n in part_labels]
    every_class = np.concatenate(cell_class)
    webgl = [("metadata", json.dumps(entries))] + buffers if entries else []
    radius = np.concatenate(radii) if any(p.radius is not None for _, p in pieces) else None
    return Geometry(pieces[0][1].kind, np.concatenate(points), np.concatenate(cells),
                    np.array(class_part, dtype=np.int64)[every_class], part_names, radius,
                    webgl, cell_class=every_class, class_groups=class_groups,
                    class_part=class_part, group_names=order)


@dataclass
class _Classes:
    group_names: list[str]
    signatures: list[tuple[int, ...]]      # per class: indices into group_names
    elements: list[list[Any]]              # per class
    part_names: list[str]
    class_part: list[int]

    def group_elements(self) -> list[list[Any]]:
        """Elements of every group label (group_names, then UNGROUPED if used)."""
        out: list[list[Any]] = [[] for _ in self.group_names]
        ungrouped: list[Any] = []
        for signature, elements in zip(self.signatures, self.elements, strict=True):
            for j in signature:
                out[j] += elements
            if not signature:
                ungrouped += elements
        return out + ([ungrouped] if ungrouped else [])

    def group_labels(self) -> list[str]:
        return self.group_names + ([UNGROUPED] if any(not s for s in self.signatures) else [])


def _classify(elements: list[Any], fieldmodule: Any, mesh: Any) -> _Classes:
    """Split elements by the set of annotation groups holding them (their class)."""
    candidates = []
    for group in group_names(fieldmodule):
        mesh_group = group.getMeshGroup(mesh)
        if mesh_group.isValid() and mesh_group.getSize():
            candidates.append((group.getName(), mesh_group.getSize(), mesh_group))
    candidates.sort(key=lambda g: (g[0], g[1]))
    members: dict[tuple[int, ...], list[Any]] = {}
    for element in elements:
        signature = tuple(i for i, (_, _, mg) in enumerate(candidates)
                          if mg.containsElement(element))
        members.setdefault(signature, []).append(element)
    used = sorted({i for signature in members for i in signature})
    renumber = {old: new for new, old in enumerate(used)}
    names = [candidates[i][0] for i in used]
    classes = sorted((tuple(renumber[i] for i in sig), els) for sig, els in members.items())
    smallest = []
    for signature, _ in classes:  # the disjoint part: the smallest group holding the element
        best = min(signature, key=lambda j: (candidates[used[j]][1], names[j]), default=None)
        smallest.append(UNGROUPED if best is None else names[best])
    part_names = sorted(set(smallest))
    return _Classes(names, [sig for sig, _ in classes], [els for _, els in classes],
                    part_names, [part_names.index(n) for n in smallest])


def _element_groups(fieldmodule: Any, mesh: Any, element_lists: list[list[Any]],
                    prefix: str) -> list[Any]:
    groups = []
    for index, elements in enumerate(element_lists):
        group = fieldmodule.createFieldGroup()
        group.setName(f"{prefix}_{index}")
        mesh_group = group.createMeshGroup(mesh)
        for element in elements:
            mesh_group.addElement(element)
        groups.append(group)
    return groups


def _webgl_graphics(region: Any, coordinates: Any, mesh: Any, classes: _Classes,
                    surfaces: bool, tessellation: Any = None) -> list[tuple[str, str]]:
    """ZincJS buffers with one graphics (so one metadata entry) per annotation group."""
    from cmlibs.zinc.graphics import Graphics

    fieldmodule = region.getFieldmodule()
    fieldmodule.beginChange()
    groups = _element_groups(fieldmodule, mesh, classes.group_elements(), "sparc_group")
    fieldmodule.endChange()
    scene = region.getScene()
    scene.beginChange()
    scene.removeAllGraphics()
    for index, group in enumerate(groups):
        graphics = scene.createGraphicsSurfaces() if surfaces else scene.createGraphicsLines()
        graphics.setName(f"sparc_group_{index}")
        graphics.setCoordinateField(coordinates)
        graphics.setSubgroupField(group)
        if tessellation is not None:
            graphics.setTessellation(tessellation)
        if surfaces:
            graphics.setBoundaryMode(Graphics.BOUNDARY_MODE_BOUNDARY
                                     if mesh.getDimension() == 2
                                     and fieldmodule.findMeshByDimension(3).getSize()
                                     else Graphics.BOUNDARY_MODE_ALL)
    scene.endChange()
    buffers = _threejs(scene)
    if buffers and buffers[0][0] == "metadata":
        labels = classes.group_labels()
        entries = [e for e in json.loads(buffers[0][1] or "[]") if e]
        for entry in entries:
            number = str(entry.get("GroupName", "")).removeprefix("sparc_group_")
            if number.isdigit() and int(number) < len(labels):
                entry["GroupName"] = labels[int(number)]  # the annotation group's name
        buffers[0] = ("metadata", json.dumps(entries))
    return buffers


def _surfaces(context: Any, region: Any, coordinates: Any, dimension: int, refinement: int,
              path: Path, webgl: bool) -> Geometry:
    import numpy as np
    from cmlibs.zinc.graphics import Graphics

    fieldmodule = region.getFieldmodule()
    fieldmodule.beginChange()
    mesh2d = fieldmodule.findMeshByDimension(2)
    if dimension == 3:  # also when some faces are defined: the missing ones are exterior too
        fieldmodule.defineAllFaces()
    faces = []
    exterior = fieldmodule.createFieldIsExterior() if dimension == 3 else None
    cache = fieldmodule.createFieldcache()
    iterator = mesh2d.createElementiterator()
    element = iterator.next()
    while element.isValid():
        if exterior is None:
            faces.append(element)
        else:
            cache.setElement(element)
            if exterior.evaluateReal(cache, 1)[1]:
                faces.append(element)
        element = iterator.next()
    classes = _classify(faces, fieldmodule, mesh2d)
    groups = _element_groups(fieldmodule, mesh2d, classes.elements, "sparc_class")
    fieldmodule.endChange()

    scene = region.getScene()
    scene.beginChange()
    tessellation = context.getTessellationmodule().createTessellation()
    tessellation.setRefinementFactors([refinement])
    tessellation.setMinimumDivisions([1])
    for index, group in enumerate(groups):
        surfaces = scene.createGraphicsSurfaces()
        surfaces.setName(f"sparc_class_{index}")
        surfaces.setCoordinateField(coordinates)
        surfaces.setSubgroupField(group)
        surfaces.setTessellation(tessellation)
        surfaces.setBoundaryMode(Graphics.BOUNDARY_MODE_BOUNDARY if dimension == 3
                                 else Graphics.BOUNDARY_MODE_ALL)
    scene.endChange()

    filters = scene.getScenefiltermodule()
    triangles, owner = [], []
    for index in range(len(groups)):
        info = scene.createStreaminformationScene()
        info.setIOFormat(info.IO_FORMAT_ASCII_STL)
        info.setScenefilter(filters.createScenefilterGraphicsName(f"sparc_class_{index}"))
        resource = info.createStreamresourceMemory()
        scene.write(info)
        buffer = resource.getBuffer()[1] or b""
        values = np.array(_STL_VERTEX.findall(buffer), dtype=np.float64).reshape(-1, 3, 3)
        triangles.append(values)
        owner.append(np.full(len(values), index, dtype=np.int64))
    every = np.concatenate(triangles) if triangles else np.zeros((0, 3, 3))
    points, cells = weld(every.reshape(-1, 3))
    cell_class = np.concatenate(owner) if owner else np.zeros(0, dtype=np.int64)
    keep = (cells[:, 0] != cells[:, 1]) & (cells[:, 1] != cells[:, 2]) & (cells[:, 0] != cells[:, 2])
    log.info("%s: %d faces in %d groups (%d classes) -> %d triangles", path.name, len(faces),
             len(classes.group_names), len(groups), int(keep.sum()))
    buffers = (_webgl_graphics(region, coordinates, mesh2d, classes, True, tessellation)
               if webgl else [])
    return _geometry("surface", points, cells[keep], cell_class[keep], classes, None, buffers)


def _geometry(kind: str, points: Any, cells: Any, cell_class: Any, classes: _Classes,
              radius: Any, buffers: list[tuple[str, str]]) -> Geometry:
    import numpy as np

    class_part = np.array(classes.class_part, dtype=np.int64).reshape(-1)
    return Geometry(kind, points, cells, class_part[cell_class] if len(cell_class) else
                    np.zeros(0, dtype=np.int64), classes.part_names, radius, buffers,
                    cell_class=cell_class, class_groups=classes.signatures,
                    class_part=classes.class_part, group_names=classes.group_names)


#: Zinc writes vertices with 6 significant digits, so one point evaluated in two elements can
#: differ by one unit in the 6th digit: merge points closer than this times the largest |x|.
WELD_RELATIVE = 1e-5


def weld(corners: Any) -> tuple[Any, Any]:
    """(points, triangles) from (3k, 3) triangle corners: equal corners and corners closer than
    ``WELD_RELATIVE`` x the largest coordinate magnitude (Zinc's 6-digit rounding) become one
    point, so surfaces are welded across element and part boundaries."""
    import numpy as np

    if not len(corners):
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    points, inverse = np.unique(corners, axis=0, return_inverse=True)
    tolerance = WELD_RELATIVE * float(np.abs(points).max() or 1.0)
    from scipy.sparse import coo_matrix  # type: ignore[import-untyped]
    from scipy.sparse.csgraph import connected_components  # type: ignore[import-untyped]
    from scipy.spatial import cKDTree  # type: ignore[import-untyped]

    pairs = cKDTree(points).query_pairs(tolerance, output_type="ndarray")
    if len(pairs):
        graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                           shape=(len(points), len(points)))
        _, label = connected_components(graph, directed=False)
        # each cluster becomes its first (lexicographically smallest) point: deterministic
        first = np.full(label.max() + 1, len(points))
        np.minimum.at(first, label, np.arange(len(points)))
        keep = np.unique(first)
        renumber = np.searchsorted(keep, first[label])
        points, inverse = points[keep], renumber[inverse.ravel()]
    return points, inverse.reshape(-1, 3).astype(np.int64)


_STL_VERTEX = re.compile(rb"vertex\s+(\S+)\s+(\S+)\s+(\S+)")


def _lines(region: Any, coordinates: Any, refinement: int, path: Path, webgl: bool) -> Geometry:
    import numpy as np

    fieldmodule = region.getFieldmodule()
    mesh1d = fieldmodule.findMeshByDimension(1)
    radius_field = fieldmodule.findFieldByName("radius")
    cache = fieldmodule.createFieldcache()
    elements = []
    iterator = mesh1d.createElementiterator()
    element = iterator.next()
    while element.isValid():
        elements.append(element)
        element = iterator.next()
    classes = _classify(elements, fieldmodule, mesh1d)
    fe_coordinates = _finite_element(coordinates)

    keys: dict[Any, int] = {}
    points: list[tuple[float, ...]] = []
    radii: list[float] = []
    segments: list[tuple[int, int]] = []
    cell_class: list[int] = []

    def point(key: Any, element: Any, xi: float, node: Any = None) -> int | None:
        if key in keys:
            return keys[key]
        cache.setMeshLocation(element, [xi])
        result, xyz = coordinates.evaluateReal(cache, 3)
        if result != 1:  # RESULT_OK
            return None
        radius = 0.0
        if radius_field.isValid():
            if node is not None:
                cache.setNode(node)
            ok, value = radius_field.evaluateReal(cache, 1)
            radius = float(value) if ok == 1 else 0.0
        keys[key] = len(points)
        points.append(tuple(xyz))
        radii.append(radius)
        return keys[key]

    for index, class_elements in enumerate(classes.elements):
        for element in class_elements:
            template = element.getElementfieldtemplate(fe_coordinates, -1)
            if not template.isValid():
                continue
            linear = template.getNumberOfFunctions() <= 2
            steps = 1 if linear else refinement
            ends = [element.getNode(template, i) for i in (1, template.getNumberOfLocalNodes())]
            chain = []
            for step in range(steps + 1):
                xi = step / steps
                if step in (0, steps) and ends[0 if step == 0 else 1].isValid():
                    node = ends[0 if step == 0 else 1]
                    chain.append(point(("node", node.getIdentifier()), element, xi, node))
                else:
                    chain.append(point(("xi", element.getIdentifier(), step), element, xi))
            for a, b in zip(chain, chain[1:], strict=False):
                if a is not None and b is not None and a != b:
                    segments.append((a, b))
                    cell_class.append(index)
    log.info("%s: %d line elements in %d groups -> %d segments", path.name, len(elements),
             len(classes.group_names), len(segments))
    radius = np.array(radii, dtype=np.float64) if radius_field.isValid() else None
    buffers = _webgl_graphics(region, coordinates, mesh1d, classes, False) if webgl else []
    return _geometry("lines", np.array(points, dtype=np.float64).reshape(-1, 3),
                     np.array(segments, dtype=np.int64).reshape(-1, 2),
                     np.array(cell_class, dtype=np.int64), classes, radius, buffers)


def _threejs(scene: Any) -> list[tuple[str, str]]:
    """The scene as ZincJS/three.js JSON: ``[("metadata", text), ("1", text), ...]``."""
    info = scene.createStreaminformationScene()
    info.setIOFormat(info.IO_FORMAT_THREEJS)
    count = info.getNumberOfResourcesRequired()
    if not count:
        return []
    resources = [info.createStreamresourceMemory() for _ in range(count)]
    scene.write(info)
    buffers = [(r.getBuffer()[1] or b"").decode() for r in resources]
    return [("metadata", buffers[0])] + [(str(i), text) for i, text in
                                         enumerate(buffers[1:], start=1)]
