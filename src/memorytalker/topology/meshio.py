"""Mesh files: OBJ read in vertex order by our own parser, PLY (and other formats) through trimesh.

Vertex ``i`` of a mesh must be vertex ``i`` of every frame and every shape of it, so nothing here reorders,
merges or splits vertices: the OBJ reader keeps the ``v`` lines in file order (trimesh splits OBJ vertices at
UV seams), and trimesh is asked not to process PLY files. Every failure names the file and what is wrong
with it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memorytalker.errors import TopologyError

#: Mesh formats :func:`load_mesh` reads.
MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl", ".glb", ".gltf")


def read_obj(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices (V, 3) float32, faces (F, 3) int64)`` of a Wavefront OBJ, vertices in ``v``-line order;
    polygons are triangulated as fans, ``v/vt/vn`` and negative (relative) indices are understood.

    Raises:
        TopologyError: not text, no ``v`` lines, a malformed line (its number named), or a face index out
            of range.
    """
    path = Path(path)
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        raise TopologyError(f"{path} is not an OBJ mesh: it is binary data, an OBJ file is text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    verts: list[list[float]] = []
    faces: list[list[int]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            if parts[0] == "v":
                verts.append([float(x) for x in parts[1:4]])
                if len(verts[-1]) != 3:
                    raise ValueError("a vertex needs x y z")
            elif parts[0] == "f":
                idx = [int(p.split("/")[0]) for p in parts[1:]]
                if len(idx) < 3:
                    raise ValueError("a face needs at least 3 vertices")
                n = len(verts)
                idx = [i - 1 if i > 0 else n + i for i in idx]
                faces.extend([idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1))
        except ValueError as exc:
            raise TopologyError(f"{path}, line {lineno}: not a valid OBJ {parts[0]!r} line ({exc})") from None
    if not verts:
        raise TopologyError(f"{path} is not an OBJ mesh: it has no vertex lines ('v x y z')")
    v = np.asarray(verts, dtype=np.float32)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    if f.size and (f.min() < 0 or f.max() >= len(v)):
        raise TopologyError(f"{path}: face indices outside the {len(v)} vertices")
    return v, f


def load_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Load ``(vertices (V, 3) float32, faces (F, 3) int64)`` from a mesh file, keeping vertex order.

    A mesh without triangles (a point cloud) returns ``(0, 3)`` faces: callers that draw it say so.

    Raises:
        TopologyError: missing file, unknown format, unreadable or empty mesh, NaN/Inf coordinates.
    """
    path = Path(path)
    if not path.is_file():
        raise TopologyError(f"mesh file not found: {path}" + (" (it is a folder)" if path.is_dir() else ""))
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise TopologyError(f"{path}: unsupported mesh format {suffix!r} (use {', '.join(MESH_SUFFIXES)})")
    if suffix == ".obj":
        verts, faces = read_obj(path)
    else:
        import trimesh

        try:
            mesh = trimesh.load(path, process=False, force="mesh", maintain_order=True)
            verts = np.asarray(mesh.vertices, dtype=np.float32).reshape(-1, 3)
            faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
        except Exception as exc:
            raise TopologyError(
                f"cannot read mesh {path}: not a valid {suffix[1:].upper()} file ({type(exc).__name__}: {exc})"
            ) from None
        if verts.shape[0] == 0:
            raise TopologyError(f"mesh {path} has no vertices (is it a {suffix[1:].upper()} mesh?)")
    if not np.all(np.isfinite(verts)):
        raise TopologyError(f"mesh {path} has NaN/Inf vertex coordinates")
    return verts, faces


def save_mesh(path: str | Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    """Write a mesh (.ply or .obj) with the given vertex order."""
    import trimesh

    mesh = trimesh.Trimesh(np.asarray(vertices, dtype=np.float64), np.asarray(faces), process=False)
    mesh.export(str(path))
