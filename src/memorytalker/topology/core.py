"""FaceTopology, region files, mesh I/O and the dataset presets.

A :class:`FaceTopology` holds the vertex count, triangles, mesh frame rate, a reference (neutral) mesh
and named vertex regions (``lips``, ``upper_face``, ...). Nothing else in the package hard-codes a
vertex count, an fps or an index list.

Region files come in the forms the field uses:

* ``.npy`` - a 1-D integer index array (e.g. MemoryTalker's ``lips_coordinates.npy``);
* ``.txt`` - comma- and/or whitespace-separated integers (e.g. CodeTalker's BIWI ``lve.txt``);
* ``.pkl`` - a dict of index arrays (FLAME ``FLAME_masks.pkl``; Python-2 pickles need ``latin1``),
  addressed as ``"FILE.pkl:key"``.

A region may be the union of several sources (``upper_face = forehead ∪ eye_region``). Indices are
validated: integers, in range, non-empty. Duplicates are removed and reported once (FLAME's ``lips``
has 254 entries, 250 unique) - never silently.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from memorytalker.errors import TopologyError
from memorytalker.topology import lips as _lips
from memorytalker.topology.meshio import load_mesh

RegionSource = str | Path | np.ndarray | Sequence[int] | Sequence[str | Path]

#: Regions every topology must define (metrics and losses depend on them).
REQUIRED_REGIONS = ("lips", "upper_face")


class RegionDuplicatesWarning(UserWarning):
    """A region file lists some vertex indices more than once (they are de-duplicated)."""


def _as_index_array(values, what: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim > 1 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise TopologyError(f"{what}: expected a 1-D list of vertex indices, got shape {arr.shape}")
    if arr.size == 0:
        raise TopologyError(f"{what}: the region is empty")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise TopologyError(f"{what}: vertex indices must be integers")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise TopologyError(f"{what}: vertex indices must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def read_region_file(path: str | Path) -> dict[str, np.ndarray] | np.ndarray:
    """Read one region file.

    Returns an index array for ``.npy``/``.txt`` files and a ``{name: index array}`` dict for
    ``.pkl`` files. Raises :class:`TopologyError` with the file name on any problem.
    """
    path = Path(path)
    if not path.is_file():
        raise TopologyError(f"region file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return _as_index_array(np.load(path, allow_pickle=False), str(path))
        if suffix == ".txt":
            text = path.read_text()
            tokens = [t for t in re.split(r"[,\s]+", text.strip()) if t]
            try:
                values = [int(t) for t in tokens]
            except ValueError as exc:
                raise TopologyError(f"{path}: not a list of integers ({exc})") from None
            return _as_index_array(values, str(path))
        if suffix in (".pkl", ".pickle"):
            from memorytalker.safe_pickle import UnsafePickleError, load_pickle

            try:
                data = load_pickle(path, what=f"region file {path}")
            except UnsafePickleError as exc:
                raise TopologyError(str(exc)) from None
            if not isinstance(data, Mapping):
                return _as_index_array(data, str(path))
            return {str(k): _as_index_array(v, f"{path}:{k}") for k, v in data.items()}
    except TopologyError:
        raise
    except Exception as exc:  # unreadable file: name it
        raise TopologyError(f"cannot read region file {path}: {exc}") from exc
    raise TopologyError(f"{path}: unsupported region file type {suffix!r} (use .npy, .txt or .pkl)")


def _resolve_one(source, base_dir: Path | None, what: str) -> np.ndarray:
    if isinstance(source, np.ndarray) or (
        isinstance(source, Sequence)
        and not isinstance(source, (str, bytes))
        and all(isinstance(s, (int, np.integer)) for s in source)
    ):
        return _as_index_array(source, what)
    text = str(source)
    key = None
    m = re.match(r"^(.*\.(?:pkl|pickle)):([^/\\]+)$", text)
    if m:
        text, key = m.group(1), m.group(2)
    path = Path(text)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    data = read_region_file(path)
    if isinstance(data, dict):
        if key is None:
            raise TopologyError(
                f"{what}: {path} holds several regions ({', '.join(sorted(data))}); "
                f"name one as '{path.name}:<key>'"
            )
        if key not in data:
            raise TopologyError(f"{what}: {path} has no region {key!r} (it has {', '.join(sorted(data))})")
        return data[key]
    if key is not None:
        raise TopologyError(f"{what}: {path} is not a dict of regions, cannot select {key!r}")
    return data


def resolve_region(
    source: RegionSource, base_dir: str | Path | None = None, name: str = "region"
) -> np.ndarray:
    """Turn a region source (file, ``file.pkl:key``, index list, or a list of files = union) into indices.

    The result is unvalidated against a vertex count; :class:`FaceTopology` does that.
    """
    base = Path(base_dir) if base_dir is not None else None
    if isinstance(source, (list, tuple)) and source and all(isinstance(s, (str, Path)) for s in source):
        # A union: overlap between the parts is expected; duplicates *within* one part are reported.
        parts = []
        for s in source:
            part = _resolve_one(s, base, f"region {name!r} ({s})")
            uniq = np.unique(part)
            if uniq.size != part.size:
                warnings.warn(
                    f"region {name!r} part {s}: {part.size - uniq.size} duplicate indices removed "
                    f"({part.size} entries, {uniq.size} unique)",
                    RegionDuplicatesWarning,
                    stacklevel=2,
                )
            parts.append(uniq)
        return np.unique(np.concatenate(parts))
    return _resolve_one(source, base, f"region {name!r}")


@dataclass(frozen=True, eq=False)
class FaceTopology:
    """Vertex count, triangles, fps, neutral reference mesh and named regions of one face mesh.

    Attributes:
        name: short identifier (``"flame"``, ``"biwi"``, ``"memorytalker-head"``...).
        vertices: ``(V, 3)`` float32 reference mesh (a neutral face; per-subject templates may differ).
        faces: ``(F, 3)`` int64 triangles (may be empty for point clouds; rendering then refuses).
        fps: mesh frame rate of the data (30 for VOCASET, 25 for BIWI).
        regions: ``{name: sorted unique int64 indices}``; ``lips`` and ``upper_face`` are required.
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    fps: float
    regions: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        verts = np.ascontiguousarray(self.vertices, dtype=np.float32)
        if verts.ndim != 2 or verts.shape[1] != 3 or verts.shape[0] == 0:
            raise TopologyError(f"topology {self.name!r}: vertices must be (V, 3), got {verts.shape}")
        if not np.all(np.isfinite(verts)):
            raise TopologyError(f"topology {self.name!r}: reference mesh has NaN/Inf coordinates")
        faces = np.ascontiguousarray(self.faces, dtype=np.int64).reshape(-1, 3)
        n = verts.shape[0]
        if faces.size and (faces.min() < 0 or faces.max() >= n):
            raise TopologyError(
                f"topology {self.name!r}: triangle indices out of range [0, {n}) "
                f"(min {faces.min()}, max {faces.max()})"
            )
        if not (self.fps > 0):
            raise TopologyError(f"topology {self.name!r}: fps must be positive, got {self.fps}")
        clean: dict[str, np.ndarray] = {}
        for rname, idx in self.regions.items():
            arr = _as_index_array(idx, f"topology {self.name!r} region {rname!r}")
            bad = arr[(arr < 0) | (arr >= n)]
            if bad.size:
                raise TopologyError(
                    f"topology {self.name!r} region {rname!r}: {bad.size} indices out of range [0, {n}) "
                    f"(e.g. {bad[:5].tolist()}); is the region file for another mesh?"
                )
            uniq = np.unique(arr)
            if uniq.size != arr.size:
                vals, counts = np.unique(arr, return_counts=True)
                dups = vals[counts > 1]
                warnings.warn(
                    f"topology {self.name!r} region {rname!r}: {arr.size - uniq.size} duplicate indices "
                    f"removed ({arr.size} entries, {uniq.size} unique; e.g. {dups[:5].tolist()})",
                    RegionDuplicatesWarning,
                    stacklevel=3,
                )
            clean[str(rname)] = uniq
        missing = [r for r in REQUIRED_REGIONS if r not in clean]
        if missing:
            raise TopologyError(
                f"topology {self.name!r}: required region(s) {missing} not given "
                f"(have: {sorted(clean) or 'none'})"
            )
        verts.setflags(write=False)
        faces.setflags(write=False)
        for arr in clean.values():
            arr.setflags(write=False)
        object.__setattr__(self, "vertices", verts)
        object.__setattr__(self, "faces", faces)
        object.__setattr__(self, "fps", float(self.fps))
        object.__setattr__(self, "regions", dict(clean))

    # ------------------------------------------------------------------ properties
    @property
    def num_vertices(self) -> int:
        """``V``."""
        return int(self.vertices.shape[0])

    @property
    def lips(self) -> np.ndarray:
        """Lip vertex indices (LVE, Lip-max, LDTW, lip loss)."""
        return self.regions["lips"]

    @property
    def upper_face(self) -> np.ndarray:
        """Upper-face vertex indices (FDD)."""
        return self.regions["upper_face"]

    # ------------------------------------------------------------------ lip geometry (topology/lips.py)
    @cached_property
    def axes(self) -> _lips.FaceAxes:
        """Up and mouth-width axes of the reference mesh (:func:`memorytalker.topology.lips.face_axes`)."""
        return _lips.face_axes(self.vertices, self.lips, self.upper_face)

    @cached_property
    def outer_lip_vertices(self) -> tuple[int, int]:
        """``(mid_upper, mid_lower)`` outer-lip vertices the lip opening is measured between."""
        return _lips.outer_lip_vertices(self)

    @cached_property
    def inner_lips(self) -> _lips.InnerLips:
        """Inner-lip contours (regions ``upper_lip_inner``/``lower_lip_inner``, else derived) and midlines."""
        return _lips.inner_lips(self)

    def region(self, name: str) -> np.ndarray:
        if name not in self.regions:
            raise TopologyError(
                f"topology {self.name!r} has no region {name!r} (have {sorted(self.regions)})"
            )
        return self.regions[name]

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_files(
        cls,
        mesh: str | Path,
        regions: Mapping[str, RegionSource],
        fps: float,
        name: str | None = None,
        base_dir: str | Path | None = None,
    ) -> FaceTopology:
        """Build from a mesh file and region sources.

        Example (VOCASET/FLAME)::

            FaceTopology.from_files("FLAME_sample.ply", {
                "lips": "FLAME_masks.pkl:lips",
                "upper_face": ["FLAME_masks.pkl:forehead", "FLAME_masks.pkl:eye_region"],
            }, fps=30, name="flame")
        """
        base = Path(base_dir) if base_dir is not None else None
        mesh_path = Path(mesh)
        if base is not None and not mesh_path.is_absolute():
            mesh_path = base / mesh_path
        verts, faces = load_mesh(mesh_path)
        resolved = {k: resolve_region(v, base, k) for k, v in regions.items()}
        return cls(name=name or mesh_path.stem, vertices=verts, faces=faces, fps=fps, regions=resolved)

    # ------------------------------------------------------------------ serialisation
    def to_state(self) -> dict:
        """Plain dict (numpy arrays and scalars) for checkpoints and ``.npz`` files."""
        state = {
            "name": self.name,
            "vertices": np.array(self.vertices),
            "faces": np.array(self.faces),
            "fps": float(self.fps),
            "region_names": list(self.regions),
        }
        for k, v in self.regions.items():
            state[f"region/{k}"] = np.array(v)
        return state

    @classmethod
    def from_state(cls, state: Mapping) -> FaceTopology:
        try:
            names = [str(n) for n in np.asarray(state["region_names"]).tolist()]
            regions = {n: np.asarray(state[f"region/{n}"]) for n in names}
            return cls(
                name=str(np.asarray(state["name"]).item() if np.ndim(state["name"]) == 0 else state["name"]),
                vertices=np.asarray(state["vertices"]),
                faces=np.asarray(state["faces"]),
                fps=float(np.asarray(state["fps"])),
                regions=regions,
            )
        except KeyError as exc:
            raise TopologyError(f"topology state is missing {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Save to a single ``.npz`` file (``topology.npz``)."""
        path = Path(path)
        state = self.to_state()
        np.savez_compressed(path, **{k: np.asarray(v) for k, v in state.items()})
        return path if path.suffix == ".npz" else path.with_suffix(path.suffix + ".npz")

    @classmethod
    def load(cls, path: str | Path) -> FaceTopology:
        path = Path(path)
        if not path.is_file():
            raise TopologyError(f"topology file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                state = {k: data[k] for k in data.files}
        except Exception as exc:
            raise TopologyError(f"cannot read topology file {path}: {exc}") from exc
        try:
            return cls.from_state(state)
        except TopologyError as exc:
            raise TopologyError(f"{path}: {exc}") from None

    # ------------------------------------------------------------------ checks
    def check_vertices(self, array: np.ndarray, what: str = "vertices") -> None:
        """Raise :class:`TopologyError` unless ``array`` is ``(..., V, 3)`` or ``(..., V*3)`` for this V."""
        shape = tuple(np.shape(array))
        v = self.num_vertices
        ok = (len(shape) >= 2 and shape[-2:] == (v, 3)) or (len(shape) >= 1 and shape[-1] == v * 3)
        if not ok:
            got = (
                shape[-2]
                if len(shape) >= 2 and shape[-1] == 3
                else (shape[-1] // 3 if shape and shape[-1] % 3 == 0 else None)
            )
            raise TopologyError(
                f"{what} has shape {shape}: expected {v} vertices of topology {self.name!r}"
                + (f", got {got} vertices" if got is not None else "")
            )

    def __repr__(self) -> str:
        regions = ", ".join(f"{k}={len(v)}" for k, v in self.regions.items())
        return (
            f"FaceTopology(name={self.name!r}, V={self.num_vertices}, F={len(self.faces)}, "
            f"fps={self.fps:g}, regions: {regions})"
        )


# ---------------------------------------------------------------------------------------------- presets
#: VOCASET / FLAME mesh frame rate once the field's 60 -> 30 fps subsampling is applied.
VOCASET_FPS = 30.0
#: BIWI (B3D(AC)^2) mesh frame rate.
BIWI_FPS = 25.0
#: Vertices of the FLAME topology (VOCASET).
FLAME_VERTICES = 5023
#: FLAME's inner-lip midline pair (upper, lower), as used for the inter-lip distance by the perceptual
#: lip-sync metrics of kaist-ami/Perceptual-3D-Talking-Head (CVPR 2025).
FLAME_INNER_LIP_MIDLINE = (3531, 3504)


def vocaset_topology(mesh: str | Path, masks: str | Path, fps: float = VOCASET_FPS) -> FaceTopology:
    """The VOCASET (FLAME) topology from user-given files.

    Args:
        mesh: ``FLAME_sample.ply`` (5023 vertices, 9976 triangles; TimoBolkart/voca ``template/``).
        masks: ``FLAME_masks.pkl`` (FLAME region dict; a latin1 pickle).
        fps: mesh frame rate (30).

    Regions: ``lips`` = ``masks["lips"]`` (254 entries, 250 unique: the duplicates are reported once),
    ``upper_face`` = ``forehead ∪ eye_region`` (827 vertices), ``upper_lip_inner`` / ``lower_lip_inner`` =
    FLAME's inner-lip midline pair (:data:`FLAME_INNER_LIP_MIDLINE`), plus every other region of the pickle
    under its own name (``nose``, ``face``, ...).
    """
    masks = Path(masks)
    data = read_region_file(masks)
    if not isinstance(data, dict):
        raise TopologyError(f"{masks}: expected a FLAME region dict (lips, forehead, eye_region, ...)")
    for key in ("lips", "forehead", "eye_region"):
        if key not in data:
            raise TopologyError(f"{masks}: no region {key!r} (it has {', '.join(sorted(data))})")
    regions: dict[str, RegionSource] = {k: v for k, v in data.items() if k not in REQUIRED_REGIONS}
    regions["lips"] = data["lips"]
    regions["upper_face"] = np.union1d(data["forehead"], data["eye_region"])
    regions[_lips.UPPER_LIP_INNER] = np.array([FLAME_INNER_LIP_MIDLINE[0]])
    regions[_lips.LOWER_LIP_INNER] = np.array([FLAME_INNER_LIP_MIDLINE[1]])
    topo = FaceTopology.from_files(mesh, regions, fps=fps, name="flame")
    if topo.num_vertices != FLAME_VERTICES:
        raise TopologyError(
            f"{mesh} has {topo.num_vertices} vertices; a FLAME (VOCASET) mesh has {FLAME_VERTICES}"
        )
    return topo


def biwi_topology(
    mesh: str | Path, lips: str | Path, upper_face: str | Path, fps: float = BIWI_FPS
) -> FaceTopology:
    """The BIWI topology from user-given files.

    Args:
        mesh: ``BIWI.ply`` (23370 vertices; FaceFormer ``BIWI/templates/``).
        lips: ``lve.txt`` (4996 comma-separated lip vertex ids; CodeTalker ``BIWI/regions/``).
        upper_face: ``fdd.txt`` (7784 upper-face vertex ids).
        fps: mesh frame rate (25).
    """
    return FaceTopology.from_files(mesh, {"lips": lips, "upper_face": upper_face}, fps=fps, name="biwi")
