"""Reader of the ICT-FaceKit face model (ICT Face Model Light) exactly as distributed.

The public repository ``ICT-VGL/ICT-FaceKit`` (MIT, (c) 2020 USC Institute for Creative Technologies)
ships the model as a folder ``FaceXModel/``:

* ``generic_neutral_mesh.obj``: the neutral head, 26,719 vertices, 26,384 polygons (mostly quads), 12
  materials (``usemtl``), UVs; centimetres, ``+y`` up, ``+z`` towards the viewer;
* one OBJ per expression shape (``jawOpen.obj``, ``eyeBlink_L.obj``, ... 53 of them, named in
  ``vertex_indices.json``) and per identity shape (``identity000.obj`` ... ``identity099.obj``: PCA modes
  of light-stage scans), each with the same vertices in the same order; a shape's *delta* is its vertices
  minus the neutral's;
* ``vertex_indices.json``: ``expressions`` (the 53 names), ``idx_to_landmark_verts`` (Multi-PIE 68),
  ``idx_to_rigid_verts``, ``idx_to_fitting_verts``, ...

Vertex ``i`` is the same point of the head in every file, so the ``v`` lines are read in file order. A
general mesh loader must not be used: ``trimesh.load`` splits vertices at UV seams (the neutral becomes
257,701 vertices) and breaks that correspondence. Faces (quads and n-gons) are fan-triangulated; each
triangle remembers its source polygon and material.

The geometry parts (:data:`PARTS`) are the vertex and polygon ranges of the distribution's README.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from memorytalker.errors import TopologyError

#: File names of the distribution.
NEUTRAL_FILE = "generic_neutral_mesh.obj"
INDEX_FILE = "vertex_indices.json"
#: Vertices of every OBJ of ICT Face Model Light.
NUM_VERTICES = 26719
#: Source units per metre (the model is in centimetres).
UNITS_PER_METRE = 100.0
#: Identity shape files: ``identity000.obj`` ...
IDENTITY_RE = re.compile(r"^identity(\d{3})\.obj$")


class FaceKitError(TopologyError):
    """An ICT-FaceKit folder or file that is missing, malformed or does not fit the model."""


@dataclass(frozen=True)
class GeometryPart:
    """One geometry of the model: vertex indices ``[v0, v1)`` and polygon indices ``[p0, p1)``."""

    name: str
    v0: int
    v1: int
    p0: int
    p1: int

    @property
    def vertices(self) -> np.ndarray:
        """``(n,)`` int64 vertex indices of the part."""
        return np.arange(self.v0, self.v1, dtype=np.int64)


#: The geometries of the model (README of ICT-FaceKit, "Face Model Topology" and "Eyeball Details").
PARTS: tuple[GeometryPart, ...] = (
    GeometryPart("face", 0, 9409, 0, 9230),
    GeometryPart("head_neck", 9409, 11248, 9230, 11144),
    GeometryPart("mouth_socket", 11248, 13294, 11144, 13226),
    GeometryPart("eye_socket_left", 13294, 13678, 13226, 13630),
    GeometryPart("eye_socket_right", 13678, 14062, 13630, 14034),
    GeometryPart("gums_tongue", 14062, 17039, 14034, 17006),
    GeometryPart("teeth", 17039, 21451, 17006, 21496),
    GeometryPart("sclera_left", 21451, 22221, 21496, 22296),
    GeometryPart("iris_left", 22221, 23021, 22296, 23094),
    GeometryPart("sclera_right", 23021, 23791, 23094, 23894),
    GeometryPart("iris_right", 23791, 24591, 23894, 24692),
    GeometryPart("lacrimal_fluid_left", 24591, 24795, 24692, 24855),
    GeometryPart("lacrimal_fluid_right", 24795, 24999, 24855, 25018),
    GeometryPart("eye_blend_left", 24999, 25023, 25018, 25033),
    GeometryPart("eye_blend_right", 25023, 25047, 25033, 25048),
    GeometryPart("eye_occlusion_left", 25047, 25199, 25048, 25176),
    GeometryPart("eye_occlusion_right", 25199, 25351, 25176, 25304),
    GeometryPart("eyelashes_left", 25351, 26035, 25304, 25844),
    GeometryPart("eyelashes_right", 26035, 26719, 25844, 26384),
)
#: The "narrow face area" of the README: vertices ``[0, NARROW_FACE_END)`` of the face.
NARROW_FACE_END = 6706


def part(name: str) -> GeometryPart:
    """The :class:`GeometryPart` called ``name``."""
    for p in PARTS:
        if p.name == name:
            return p
    raise FaceKitError(
        f"ICT-FaceKit has no geometry part {name!r} (parts: {', '.join(p.name for p in PARTS)})"
    )


@dataclass(frozen=True)
class ObjMesh:
    """The geometry of one OBJ file, vertex order as in the file.

    Attributes:
        vertices: ``(V, 3)`` float64 ``v`` lines in file order (source units).
        triangles: ``(F, 3)`` int64 fan triangulation of every polygon (0-based vertex indices).
        triangle_polygon: ``(F,)`` int64 index of the source polygon (``f`` line, 0-based) of each triangle.
        polygon_material: ``(P,)`` int64 index into ``materials`` of each polygon (-1: no ``usemtl``).
        materials: material names in order of first use.
    """

    vertices: np.ndarray
    triangles: np.ndarray
    triangle_polygon: np.ndarray
    polygon_material: np.ndarray
    materials: tuple[str, ...]

    @property
    def num_polygons(self) -> int:
        return int(self.polygon_material.shape[0])


def _read_lines(path: Path) -> list[bytes]:
    if not path.is_file():
        raise FaceKitError(f"ICT-FaceKit file not found: {path}")
    try:
        return path.read_bytes().splitlines()
    except OSError as exc:
        raise FaceKitError(f"cannot read {path}: {exc}") from exc


def _parse_vertices(lines: list[bytes], path: Path) -> np.ndarray:
    rows = []
    for no, line in enumerate(lines, 1):
        if line.startswith(b"v ") or line.startswith(b"v\t"):
            parts = line.split()
            if len(parts) < 4:
                raise FaceKitError(f"{path}:{no}: a 'v' line needs x y z, got {line[:60]!r}")
            try:
                rows.append((float(parts[1]), float(parts[2]), float(parts[3])))
            except ValueError:
                raise FaceKitError(f"{path}:{no}: not a number in {line[:60]!r}") from None
    if not rows:
        raise FaceKitError(f"{path}: no vertices ('v' lines); is it an OBJ file?")
    verts = np.asarray(rows, dtype=np.float64)
    if not np.all(np.isfinite(verts)):
        bad = int(np.flatnonzero(~np.isfinite(verts).all(1))[0])
        raise FaceKitError(f"{path}: vertex {bad} has a NaN/Inf coordinate")
    return verts


def read_obj_vertices(path: str | Path) -> np.ndarray:
    """``(V, 3)`` float64: the ``v`` lines of an OBJ file in file order (no welding, no seam splitting).

    Raises:
        FaceKitError: the file is missing, has no ``v`` line, or a malformed one (file and line named).
    """
    path = Path(path)
    return _parse_vertices(_read_lines(path), path)


def read_obj(path: str | Path) -> ObjMesh:
    """Vertices (file order), fan-triangulated polygons and materials of an OBJ file.

    ``f`` entries may be ``v``, ``v/vt``, ``v//vn`` or ``v/vt/vn``, 1-based or negative (relative).

    Raises:
        FaceKitError: missing file, malformed ``v``/``f`` line or an index out of range (file and line).
    """
    path = Path(path)
    lines = _read_lines(path)
    verts = _parse_vertices(lines, path)
    n = verts.shape[0]
    materials: list[str] = []
    current = -1
    tris: list[tuple[int, int, int]] = []
    tri_poly: list[int] = []
    poly_mat: list[int] = []
    seen_v = 0
    for no, line in enumerate(lines, 1):
        if line.startswith(b"v ") or line.startswith(b"v\t"):
            seen_v += 1
        elif line.startswith(b"usemtl"):
            parts = line.split()
            if len(parts) < 2:
                raise FaceKitError(f"{path}:{no}: 'usemtl' without a material name")
            name = parts[1].decode("utf-8", "replace")
            if name not in materials:
                materials.append(name)
            current = materials.index(name)
        elif line.startswith(b"f ") or line.startswith(b"f\t"):
            entries = line.split()[1:]
            if len(entries) < 3:
                raise FaceKitError(f"{path}:{no}: a face needs at least 3 vertices, got {line[:60]!r}")
            idx = []
            for e in entries:
                try:
                    k = int(e.split(b"/")[0])
                except ValueError:
                    raise FaceKitError(f"{path}:{no}: bad face entry {e!r}") from None
                if k == 0:
                    raise FaceKitError(f"{path}:{no}: face vertex index 0 (OBJ indices start at 1)")
                k = k - 1 if k > 0 else seen_v + k  # OBJ: 1-based, or negative = relative to the last v
                if k < 0 or k >= n:
                    raise FaceKitError(f"{path}:{no}: face vertex {e!r} out of range (1..{n})")
                idx.append(k)
            p = len(poly_mat)
            poly_mat.append(current)
            for j in range(1, len(idx) - 1):
                tris.append((idx[0], idx[j], idx[j + 1]))
                tri_poly.append(p)
    return ObjMesh(
        vertices=verts,
        triangles=np.asarray(tris, dtype=np.int64).reshape(-1, 3),
        triangle_polygon=np.asarray(tri_poly, dtype=np.int64),
        polygon_material=np.asarray(poly_mat, dtype=np.int64),
        materials=tuple(materials),
    )


class FaceXModel:
    """An ICT-FaceKit ``FaceXModel`` folder as distributed (whole model or a subset of its shape files).

    Args:
        folder: the ``FaceXModel`` folder (or a folder that contains it).

    Attributes:
        folder: the resolved ``FaceXModel`` folder.
        mesh: the neutral :class:`ObjMesh` (source units: cm).
        indices: the parsed ``vertex_indices.json``.

    Shapes are read on demand (:meth:`shape`, :meth:`delta`); every shape must have the neutral's vertex
    count, else :class:`FaceKitError` names the file and both counts.
    """

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        if (folder / "FaceXModel").is_dir() and not (folder / NEUTRAL_FILE).is_file():
            folder = folder / "FaceXModel"
        if not folder.is_dir():
            raise FaceKitError(f"ICT-FaceKit folder not found: {folder}")
        self.folder = folder
        self.mesh = read_obj(folder / NEUTRAL_FILE)
        if self.mesh.vertices.shape[0] != NUM_VERTICES:
            raise FaceKitError(
                f"{folder / NEUTRAL_FILE} has {self.mesh.vertices.shape[0]} vertices; ICT Face Model Light's "
                f"neutral mesh has {NUM_VERTICES}"
            )
        self.indices = self._read_indices(folder / INDEX_FILE)

    @staticmethod
    def _read_indices(path: Path) -> dict:
        if not path.is_file():
            raise FaceKitError(f"ICT-FaceKit file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise FaceKitError(f"cannot read {path}: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("expressions"), list):
            raise FaceKitError(f"{path}: expected a JSON object with an 'expressions' list of shape names")
        if not all(isinstance(s, str) for s in data["expressions"]):
            raise FaceKitError(f"{path}: 'expressions' must be a list of shape names")
        for key, value in data.items():
            if key.startswith("idx_to_"):
                arr = np.asarray(value)
                if arr.ndim != 1 or (arr.size and (arr.dtype.kind not in "iu" or arr.min() < 0)):
                    raise FaceKitError(f"{path}: {key!r} must be a list of non-negative vertex indices")
                if key.endswith("_verts") and arr.size and arr.max() >= NUM_VERTICES:
                    raise FaceKitError(f"{path}: {key!r} has an index >= {NUM_VERTICES}")
        return data

    # ------------------------------------------------------------------ names
    @property
    def neutral(self) -> np.ndarray:
        """``(V, 3)`` float64 neutral vertices (cm)."""
        return self.mesh.vertices

    @property
    def num_vertices(self) -> int:
        return int(self.mesh.vertices.shape[0])

    @property
    def expression_names(self) -> list[str]:
        """The 53 expression shape names of ``vertex_indices.json`` (ICT's ARKit-like names)."""
        return list(self.indices["expressions"])

    @cached_property
    def identity_names(self) -> list[str]:
        """Identity shape names present in the folder (``identity000`` ...), in numeric order."""
        found = sorted(
            (int(m.group(1)), p.stem) for p in self.folder.iterdir() if (m := IDENTITY_RE.match(p.name))
        )
        return [name for _, name in found]

    def available_expressions(self) -> list[str]:
        """The expression names whose OBJ file is present (all 53 in a full checkout)."""
        return [n for n in self.expression_names if (self.folder / f"{n}.obj").is_file()]

    def index_list(self, key: str) -> np.ndarray:
        """``(n,)`` int64 list ``key`` of ``vertex_indices.json`` (e.g. ``idx_to_landmark_verts``)."""
        if key not in self.indices:
            raise FaceKitError(
                f"{self.folder / INDEX_FILE} has no list {key!r} (it has {sorted(self.indices)})"
            )
        return np.asarray(self.indices[key], dtype=np.int64)

    @property
    def landmarks(self) -> np.ndarray:
        """``(68,)`` int64 Multi-PIE 68 landmark vertex indices."""
        return self.index_list("idx_to_landmark_verts")

    # ------------------------------------------------------------------ shapes
    def shape(self, name: str) -> np.ndarray:
        """``(V, 3)`` float64 vertices of shape ``name`` (``jawOpen``, ``identity000``, ...; cm).

        Raises:
            FaceKitError: the file is missing or malformed, or has another vertex count than the neutral.
        """
        path = self.folder / f"{name}.obj"
        verts = read_obj_vertices(path)
        if verts.shape[0] != self.num_vertices:
            raise FaceKitError(
                f"{path} has {verts.shape[0]} vertices but the neutral mesh {self.folder / NEUTRAL_FILE} has "
                f"{self.num_vertices}: the shape does not belong to this model"
            )
        return verts

    def delta(self, name: str) -> np.ndarray:
        """``(V, 3)`` float64 shape minus neutral (cm)."""
        return self.shape(name) - self.neutral

    def deltas(self, names: list[str]) -> np.ndarray:
        """``(K, V, 3)`` float64 deltas of the named shapes, in the given order (cm)."""
        out = np.empty((len(names), self.num_vertices, 3))
        for k, name in enumerate(names):
            out[k] = self.delta(name)
        return out

    def check_parts(self) -> None:
        """Check that each part's polygons use only its own vertices (and welded seams of the face).

        The face, head/neck, mouth socket and eye sockets are one welded surface (their polygons share the
        seam vertices); every other part must be self-contained.

        Raises:
            FaceKitError: a polygon range outside the file, or a part that uses another part's vertices.
        """
        mesh = self.mesh
        if mesh.num_polygons != PARTS[-1].p1:
            raise FaceKitError(
                f"{self.folder / NEUTRAL_FILE} has {mesh.num_polygons} polygons, ICT Face Model Light has "
                f"{PARTS[-1].p1}"
            )
        welded = {"face", "head_neck", "mouth_socket", "eye_socket_left", "eye_socket_right"}
        for p in PARTS:
            sel = (mesh.triangle_polygon >= p.p0) & (mesh.triangle_polygon < p.p1)
            used = mesh.triangles[sel]
            lo = 0 if p.name in welded else p.v0
            if used.size and (used.min() < lo or used.max() >= p.v1):
                raise FaceKitError(
                    f"{self.folder / NEUTRAL_FILE}: polygons of part {p.name!r} use vertices outside "
                    f"[{lo}, {p.v1}) (min {used.min()}, max {used.max()})"
                )

    def part_triangles(self, name: str) -> np.ndarray:
        """``(F, 3)`` int64 triangles (global vertex indices) of the polygons of part ``name``."""
        p = part(name)
        sel = (self.mesh.triangle_polygon >= p.p0) & (self.mesh.triangle_polygon < p.p1)
        return self.mesh.triangles[sel]
