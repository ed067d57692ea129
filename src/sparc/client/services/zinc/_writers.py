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

from sparc.client.services.zinc._engine import Geometry

#: Every export format and what it holds.
FORMATS: dict[str, str] = {
    "vtk": "legacy VTK unstructured grid (binary): triangles, or line segments for MBF; "
           "cell data 'part'",
    "stl": "binary STL: triangles (MBF lines as tubes)",
    "obj": "Wavefront OBJ: one named group per annotation part",
    "ply": "binary PLY: triangles (MBF lines as tubes)",
    "glb": "binary glTF: one named node/mesh per annotation part",
    "webgl": "ZincJS/three.js JSON (metadata + one file per part), as the SPARC portal's "
             "scaffold viewer reads",
}
SUFFIXES = {"vtk": ".vtk", "stl": ".stl", "obj": ".obj", "ply": ".ply", "glb": ".glb",
            "webgl": "_metadata.json"}
TUBE_SIDES = 8
HEADER = "sparc.client zinc export"


def tubes(geometry: Geometry, tube_radius: float | None) -> tuple[Any, Any, Any]:
    """Triangles (points, triangles, part) of open tubes around the line segments.

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
    for chain, part in polylines(geometry.cells, geometry.part):
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
    """Chain segments of each part into polylines (split at ends and branch points)."""
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


def surface_of(geometry: Geometry, tube_radius: float | None) -> tuple[Any, Any, Any]:
    """(points, triangles, part) for the surface formats."""
    if geometry.kind == "lines":
        return tubes(geometry, tube_radius)
    return geometry.points, geometry.cells, geometry.part


def write_vtk(geometry: Geometry, target: Path, tube_radius: float | None) -> None:
    import meshio
    import numpy as np

    cell_type = "triangle" if geometry.kind == "surface" else "line"
    point_data = ({"radius": geometry.radius} if geometry.radius is not None else {})
    mesh = meshio.Mesh(geometry.points, [(cell_type, geometry.cells)], point_data=point_data,
                       cell_data={"part": [geometry.part.astype(np.int32)]})
    meshio.write(str(target), mesh, file_format="vtk", binary=True)


def write_stl(geometry: Geometry, target: Path, tube_radius: float | None) -> None:
    import numpy as np

    points, triangles, _ = surface_of(geometry, tube_radius)
    corners = points[triangles]
    normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    size = np.linalg.norm(normals, axis=1, keepdims=True)
    normals = normals / np.where(size > 0, size, 1.0)
    record = np.dtype([("normal", "<f4", 3), ("corners", "<f4", (3, 3)), ("attr", "<u2")])
    data = np.zeros(len(triangles), dtype=record)
    data["normal"], data["corners"] = normals, corners
    with target.open("wb") as f:
        f.write(HEADER.encode().ljust(80, b" ")[:80])
        f.write(struct.pack("<I", len(triangles)))
        f.write(data.tobytes())


def write_obj(geometry: Geometry, target: Path, tube_radius: float | None) -> None:
    import numpy as np

    points, triangles, part = surface_of(geometry, tube_radius)
    with target.open("w", encoding="utf-8", newline="\n") as f:
        f.write(f"# {HEADER}: {len(points)} vertices, {len(triangles)} triangles, "
                f"{len(geometry.part_names)} parts\n")
        np.savetxt(f, points, fmt="v %.9g %.9g %.9g")
        for index, name in enumerate(geometry.part_names):
            mine = triangles[part == index]
            if not len(mine):
                continue
            label = _obj_name(name)
            f.write(f"o {label}\ng {label}\n")
            np.savetxt(f, mine + 1, fmt="f %d %d %d")


def _obj_name(name: str) -> str:
    return "_".join(name.split()) or "part"


def write_ply(geometry: Geometry, target: Path, tube_radius: float | None) -> None:
    """Binary little-endian PLY: double x/y/z vertices and triangles (PLY has no standard way
    to name parts; meshio, trimesh, MeshLab and Blender read it)."""
    import numpy as np

    points, triangles, _ = surface_of(geometry, tube_radius)
    header = (f"ply\nformat binary_little_endian 1.0\ncomment {HEADER}\n"
              f"element vertex {len(points)}\nproperty double x\nproperty double y\n"
              f"property double z\nelement face {len(triangles)}\n"
              "property list uchar int vertex_indices\nend_header\n")
    face = np.dtype([("n", "u1"), ("v", "<i4", 3)])
    faces = np.zeros(len(triangles), dtype=face)
    faces["n"], faces["v"] = 3, triangles
    with target.open("wb") as f:
        f.write(header.encode("utf-8"))
        f.write(np.ascontiguousarray(points, dtype="<f8").tobytes())
        f.write(faces.tobytes())


def write_glb(geometry: Geometry, target: Path, tube_radius: float | None) -> None:
    import numpy as np
    import trimesh

    points, triangles, part = surface_of(geometry, tube_radius)
    scene = trimesh.Scene()
    for index, name in enumerate(geometry.part_names):
        mine = triangles[part == index]
        if not len(mine):
            continue
        used, local = np.unique(mine, return_inverse=True)
        mesh = trimesh.Trimesh(vertices=points[used], faces=local.reshape(-1, 3), process=False)
        scene.add_geometry(mesh, node_name=name, geom_name=name)
    target.write_bytes(scene.export(file_type="glb"))


def webgl_files(geometry: Geometry, stem: str) -> list[tuple[str, str]]:
    """(file name, text) pairs: ``<stem>_metadata.json`` first, then ``<stem>_<n>.json``."""
    buffers = dict(geometry.webgl)
    metadata = buffers.pop("metadata", "")
    names = {f"memory_resource_{int(k) + 1}": f"{stem}_{k}.json" for k in buffers}
    entries = json.loads(metadata) if metadata else []
    entries = [e for e in entries if e]  # Zinc leaves no view entry without an Argon document
    for entry in entries:
        if entry.get("URL") in names:
            entry["URL"] = names[entry["URL"]]
        index = str(entry.get("GroupName", "")).removeprefix("sparc_part_")
        if index.isdigit() and int(index) < len(geometry.part_names):
            entry["GroupName"] = geometry.part_names[int(index)]  # the annotation group's name
    files = [(f"{stem}_metadata.json", json.dumps(entries, indent=1) + "\n")]
    files += [(f"{stem}_{k}.json", text) for k, text in buffers.items()]
    return files


WRITERS = {"vtk": write_vtk, "stl": write_stl, "obj": write_obj, "ply": write_ply,
           "glb": write_glb}
