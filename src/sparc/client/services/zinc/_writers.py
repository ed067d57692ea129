"""Mesh file writers: one function per format, from a :class:`~._engine.Geometry`.

Every writer keeps the source's coordinates (no axis swap) and writes to the exact path given
(the caller writes to a temporary name and renames). Lines become tubes for surface formats.
Example::

    write_geometry(geometry, "stl", Path("out/.cube.stl.tmp"))
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from sparc.client.services.zinc._engine import UNGROUPED, Geometry

#: Every export format and what it holds.
FORMATS: dict[str, str] = {
    "vtk": "legacy VTK 4.2 (binary): an unstructured grid of triangles, or polydata polylines "
           "for MBF; cell data 'part' and one 0/1 array per annotation group",
    "stl": "binary STL: triangles (MBF lines as tubes); part names in the 80-byte header "
           "when they fit",
    "obj": "Wavefront OBJ: every face under the names of all annotation groups holding it",
    "ply": "ASCII PLY: triangles (MBF lines as tubes), a 'part' face property and "
           "'comment part <i> <name>' lines",
    "glb": "binary glTF: one named node/mesh per annotation group (shared vertices)",
    "webgl": "ZincJS/three.js JSON (metadata + one file per annotation group), as the SPARC portal's "
             "scaffold viewer reads",
}
SUFFIXES = {"vtk": ".vtk", "stl": ".stl", "obj": ".obj", "ply": ".ply", "glb": ".glb",
            "webgl": "_metadata.json"}
TUBE_SIDES = 8
HEADER = "sparc.client zinc export"


def tubes(geometry: Geometry, tube_radius: float | None) -> tuple[Any, Any, Any]:
    """Triangles (points, triangles, class) of open tubes around the line segments.

    The radius is ``tube_radius`` when given, else the file's own per-point radius, else 0.5% of
    the bounding-box diagonal.
    """
    import numpy as np

    points = geometry.points
    diagonal = float(np.linalg.norm(points.max(axis=0) - points.min(axis=0))) or 1.0
    default = 0.005 * diagonal
    if tube_radius is not None:
        radius = np.full(len(points), float(tube_radius))
    elif geometry.radius is not None:
        radius = np.where(geometry.radius > 0, geometry.radius, default)
    else:
        radius = np.full(len(points), default)
    out_points, out_triangles, out_part = [], [], []
    offset = 0
    angles = np.linspace(0.0, 2 * np.pi, TUBE_SIDES, endpoint=False)
    cos, sin = np.cos(angles), np.sin(angles)
    for chain, part in polylines(geometry.cells, geometry.classes()):
        xyz = points[chain]
        tangent = np.gradient(xyz, axis=0)
        length = np.linalg.norm(tangent, axis=1, keepdims=True)
        tangent = tangent / np.where(length > 0, length, 1.0)
        normals = np.empty_like(xyz)
        normal = _perpendicular(tangent[0])
        for i, t in enumerate(tangent):  # parallel transport of the ring's frame
            normal = normal - np.dot(normal, t) * t
            size = np.linalg.norm(normal)
            normal = normal / size if size > 1e-12 else _perpendicular(t)
            normals[i] = normal
        binormals = np.cross(tangent, normals)
        r = radius[chain][:, None, None]
        ring = xyz[:, None, :] + r * (cos[None, :, None] * normals[:, None, :]
                                      + sin[None, :, None] * binormals[:, None, :])
        k = len(chain)
        ring_index, side = np.meshgrid(np.arange(k - 1), np.arange(TUBE_SIDES), indexing="ij")
        a = ring_index * TUBE_SIDES + side
        b = ring_index * TUBE_SIDES + (side + 1) % TUBE_SIDES
        c = a + TUBE_SIDES
        d = b + TUBE_SIDES
        tris = np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3),
                               np.stack([b, d, c], -1).reshape(-1, 3)])
        out_points.append(ring.reshape(-1, 3))
        out_triangles.append(tris + offset)
        out_part.append(np.full(len(tris), part, dtype=np.int64))
        offset += k * TUBE_SIDES
    return (np.concatenate(out_points), np.concatenate(out_triangles).astype(np.int64),
            np.concatenate(out_part))


def _perpendicular(vector: Any) -> Any:
    import numpy as np

    axis = np.eye(3)[int(np.argmin(np.abs(vector)))]
    normal = np.cross(vector, axis)
    size = np.linalg.norm(normal)
    return normal / size if size > 1e-12 else np.array([1.0, 0.0, 0.0])


def polylines(segments: Any, part: Any) -> list[tuple[Any, int]]:
    """Chain segments of each part (or class) into polylines (split at ends and branch
    points)."""
    import numpy as np

    out: list[tuple[Any, int]] = []
    for p in sorted(set(part.tolist())):
        edges = segments[part == p].tolist()
        neighbours: dict[int, list[tuple[int, int]]] = {}
        for e, (a, b) in enumerate(edges):
            neighbours.setdefault(a, []).append((b, e))
            neighbours.setdefault(b, []).append((a, e))
        used = [False] * len(edges)
        starts = sorted(v for v, ns in neighbours.items() if len(ns) != 2)
        for vertex in starts + sorted(neighbours):  # ends/branches first, then closed loops
            for _, edge in neighbours[vertex]:
                if not used[edge]:
                    chain = _walk(vertex, edge, edges, neighbours, used)
                    out.append((np.array(chain, dtype=np.int64), p))
    return out


def _walk(start: int, edge: int, edges: list[list[int]],
          neighbours: dict[int, list[tuple[int, int]]], used: list[bool]) -> list[int]:
    """Follow unused edges from ``start`` until an end, a branch point or a closed loop."""
    chain, current = [start], start
    while True:
        used[edge] = True
        a, b = edges[edge]
        current = b if a == current else a
        chain.append(current)
        onward = [e for _, e in neighbours[current] if not used[e]]
        if len(neighbours[current]) != 2 or not onward:
            return chain
        edge = onward[0]


def surface_of(geometry: Geometry, tube_radius: float | None) -> tuple[Any, Any, Any, Any]:
    """(points, triangles, part, class) for the surface formats."""
    import numpy as np

    if geometry.kind == "lines":
        points, triangles, cell_class = tubes(geometry, tube_radius)
        class_part = np.array(geometry.class_part, dtype=np.int64).reshape(-1)
        return points, triangles, class_part[cell_class], cell_class
    return geometry.points, geometry.cells, geometry.part, geometry.classes()


def _vtk_name(name: str) -> str:
    """A VTK legacy array name: whitespace and '%' encoded as VTK's reader decodes them."""
    return "".join(f"%{ord(c):02X}" if c.isspace() or c == "%" or not c.isprintable() else c
                   for c in name) or "unnamed"


def write_vtk(geometry: Geometry, target: Path, tube_radius: float | None) -> None:
    """Legacy VTK in the classic ``# vtk DataFile Version 4.2`` layout (binary), which old and new
    readers open: surfaces as an UNSTRUCTURED_GRID of triangles, MBF lines as POLYDATA with real
    polylines (``LINES``, one per unbranched run of a part). Cell data ``part`` (the smallest
    group holding the cell) and one 0/1 ``unsigned_char`` array per annotation group named after
    it; the part names as dataset field data ``<name>`` = part index; MBF radii as point data."""
    import numpy as np

    if geometry.kind == "surface":
        lists = [np.hstack([np.full((len(geometry.cells), 1), 3), geometry.cells])]
        cell_class = geometry.classes()
        count = len(geometry.cells)
    else:
        chains = polylines(geometry.cells, geometry.classes())
        lists = [np.concatenate([[len(chain)], chain]) for chain, _ in chains]
        cell_class = np.array([c for _, c in chains], dtype=np.int64)
        count = len(chains)
    class_part = np.array(geometry.class_part, dtype=np.int64).reshape(-1)
    part = class_part[cell_class] if len(cell_class) else np.zeros(0, dtype=np.int64)
    connectivity = np.concatenate([np.ravel(x) for x in lists]).astype(">i4")
    group_arrays = [(_vtk_name(name), np.isin(cell_class, classes).astype(">u1"))
                    for name, classes in geometry.group_classes()]
    with target.open("wb") as f:
        def block(array: Any) -> None:
            f.write(np.ascontiguousarray(array).tobytes())
            f.write(b"\n")

        f.write(b"# vtk DataFile Version 4.2\n")
        f.write(f"{HEADER}: {len(geometry.part_names)} parts, "
                f"{len(geometry.group_labels())} groups\n".encode())
        dataset = "UNSTRUCTURED_GRID" if geometry.kind == "surface" else "POLYDATA"
        f.write(f"BINARY\nDATASET {dataset}\n".encode())
        f.write(f"FIELD FieldData {len(geometry.part_names)}\n".encode())
        for index, name in enumerate(geometry.part_names):
            f.write(f"{_vtk_name(name)} 1 1 int\n".encode())
            block(np.array([index], dtype=">i4"))
        f.write(f"POINTS {len(geometry.points)} double\n".encode())
        block(geometry.points.astype(">f8"))
        if geometry.kind == "surface":
            f.write(f"CELLS {count} {connectivity.size}\n".encode())
            block(connectivity)
            f.write(f"CELL_TYPES {count}\n".encode())
            block(np.full(count, 5, dtype=">i4"))  # VTK_TRIANGLE
        else:
            f.write(f"LINES {count} {connectivity.size}\n".encode())
            block(connectivity)
        if geometry.radius is not None:
            f.write(f"POINT_DATA {len(geometry.points)}\nFIELD FieldData 1\n"
                    f"radius 1 {len(geometry.points)} double\n".encode())
            block(geometry.radius.astype(">f8"))
        f.write(f"CELL_DATA {count}\nFIELD FieldData {1 + len(group_arrays)}\n"
                f"part 1 {count} int\n".encode())
        block(part.astype(">i4"))
        for name, values in group_arrays:
            f.write(f"{name} 1 {count} unsigned_char\n".encode())
            block(values)


def write_stl(geometry: Geometry, target: Path, tube_radius: float | None) -> None:
    import numpy as np

    points, triangles, _, _ = surface_of(geometry, tube_radius)
    corners = points[triangles]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    size = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = normals / np.where(size > 0, size, 1.0)
    record = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attr", "<u2")])
    data = np.zeros(len(triangles), dtype=record)
    data["normal"], data["corners"] = normals, corners
    with target.open("wb") as f:
        f.write(stl_header(geometry.part_names))
        f.write(struct.pack("<I", len(triangles)))
        f.write(data.tobytes())


def write_obj(geometry: Geometry, target: Path, tube_radius: float | None) -> None:
    """Wavefront OBJ: each face once, under ``g`` naming every annotation group holding it
    (OBJ allows several group names per ``g``; whitespace in names becomes ``_``, and a
    ``# group <obj name> = <group name>`` comment keeps the original)."""
    import numpy as np

    points, triangles, _, cell_class = surface_of(geometry, tube_radius)
    labels = [_obj_name(n) for n in geometry.group_names]
    with target.open("w", encoding="utf-8", newline="\n") as f:
        f.write(f"# {HEADER}: {len(points)} vertices, {len(triangles)} triangles, "
                f"{len(geometry.group_labels())} groups\n")
        for label, name in zip(labels, geometry.group_names, strict=True):
            f.write(f"# group {label} = {name}\n")
        np.savetxt(f, points, fmt="v %.9g %.9g %.9g")
        for index, signature in enumerate(geometry.class_groups):
            mine = triangles[cell_class == index]
            if not len(mine):
                continue
            names = " ".join(labels[j] for j in signature) or UNGROUPED
            f.write(f"g {names}\n")
            np.savetxt(f, mine + 1, fmt="f %d %d %d")


def _obj_name(name: str) -> str:
    return "_".join(name.split()) or "part"


def write_ply(geometry: Geometry, target: Path, tube_radius: float | None) -> None:
    """ASCII PLY: x/y/z vertices (17 significant digits) and triangles with an ``int part`` face
    property (the smallest annotation group holding the face), its names as header comments
    ``comment part <i> <name>``. ASCII because meshio's binary PLY reader cannot read a face
    property beside the vertex list; meshio, trimesh, MeshLab and Blender read this file."""
    import numpy as np

    points, triangles, part, _ = surface_of(geometry, tube_radius)
    names = "".join(f"comment part {i} {' '.join(name.split())}\n"
                    for i, name in enumerate(geometry.part_names))
    header = (f"ply\nformat ascii 1.0\ncomment {HEADER}\n{names}"
              f"element vertex {len(points)}\nproperty double x\nproperty double y\n"
              f"property double z\nelement face {len(triangles)}\n"
              "property list uchar int vertex_indices\nproperty int part\nend_header\n")
    faces = np.column_stack([np.full(len(triangles), 3), triangles, part]).astype(np.int64)
    with target.open("w", encoding="utf-8", newline="\n") as f:
        f.write(header)
        np.savetxt(f, points, fmt="%.17g %.17g %.17g")
        np.savetxt(f, faces, fmt="%d %d %d %d %d")


def stl_header(part_names: list[str]) -> bytes:
    """The 80-byte binary STL header: the part names when they fit (``; ``-separated), else
    only their count (STL has no place for names; the other formats keep them)."""
    listed = f"{HEADER}: " + "; ".join(" ".join(n.split()) for n in part_names)
    text = listed if len(listed.encode()) <= 80 else f"{HEADER}: {len(part_names)} parts"
    return text.encode()[:80].ljust(80, b" ")


def write_glb(geometry: Geometry, target: Path, tube_radius: float | None) -> None:
    """Binary glTF 2.0: one node/mesh per annotation group, named after it. The vertices are
    stored once (float32) and shared; each group is its own index list, so overlapping groups
    (``stomach`` and ``body of stomach``) cost only their indices."""
    import numpy as np

    points, triangles, _, cell_class = surface_of(geometry, tube_radius)
    positions = np.ascontiguousarray(points, dtype="<f4")
    chunks = [positions.tobytes()]
    views = [{"buffer": 0, "byteOffset": 0, "byteLength": len(chunks[0]), "target": 34962}]
    accessors: list[dict[str, Any]] = [{
        "bufferView": 0, "componentType": 5126, "count": len(positions), "type": "VEC3",
        "min": positions.min(axis=0).tolist(), "max": positions.max(axis=0).tolist()}]
    meshes, nodes = [], []
    offset = len(chunks[0])
    for name, classes in geometry.group_classes():
        mine = triangles[np.isin(cell_class, classes)]
        if not len(mine):
            continue
        data = np.ascontiguousarray(mine, dtype="<u4").tobytes()
        views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(data),
                      "target": 34963})
        accessors.append({"bufferView": len(views) - 1, "componentType": 5125,
                          "count": mine.size, "type": "SCALAR"})
        meshes.append({"name": name, "primitives": [
            {"attributes": {"POSITION": 0}, "indices": len(accessors) - 1, "mode": 4}]})
        nodes.append({"name": name, "mesh": len(meshes) - 1})
        chunks.append(data)
        offset += len(data)
    binary = b"".join(chunks)
    binary += b"\0" * (-len(binary) % 4)
    document = {"asset": {"version": "2.0", "generator": HEADER}, "scene": 0,
                "scenes": [{"nodes": list(range(len(nodes)))}], "nodes": nodes,
                "meshes": meshes, "accessors": accessors, "bufferViews": views,
                "buffers": [{"byteLength": len(binary)}]}
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    with target.open("wb") as f:
        f.write(struct.pack("<4sII", b"glTF", 2, 12 + 8 + len(text) + 8 + len(binary)))
        f.write(struct.pack("<I4s", len(text), b"JSON") + text)
        f.write(struct.pack("<I4s", len(binary), b"BIN\0") + binary)


def webgl_files(geometry: Geometry, stem: str) -> list[tuple[str, str]]:
    """(file name, text) pairs: ``<stem>_metadata.json`` first, then ``<stem>_<n>.json``, one
    per annotation group (the metadata's ``GroupName``)."""
    buffers = dict(geometry.webgl)
    metadata = buffers.pop("metadata", "")
    names = {f"memory_resource_{int(k) + 1}": f"{stem}_{k}.json" for k in buffers}
    entries = json.loads(metadata) if metadata else []
    entries = [e for e in entries if e]  # Zinc leaves no view entry without an Argon document
    for entry in entries:
        if entry.get("URL") in names:
            entry["URL"] = names[entry["URL"]]
    files = [(f"{stem}_metadata.json", json.dumps(entries, indent=1) + "\n")]
    files += [(f"{stem}_{k}.json", text) for k, text in buffers.items()]
    return files


WRITERS = {"vtk": write_vtk, "stl": write_stl, "obj": write_obj, "ply": write_ply,
           "glb": write_glb}
