"""Inputs of ``memorytalker render`` and ``memorytalker export`` (their argparse wiring is in
:mod:`memorytalker.commands._common`).

A vertex file (``.npy``, ``(T, V, 3)`` or ``(T, V*3)``) plus exactly one source of triangles: a mesh
file (``--mesh``), a ``topology.npz`` (``--topology``) or a processed dataset folder (``--data``,
docs/LAYOUT.md). The vertex count must match the mesh's; the error names both counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memorytalker.errors import MemoryTalkerError, TopologyError
from memorytalker.topology import FaceTopology


@dataclass
class MeshSource:
    """Triangles and, when known, the topology, fps and units of a vertex file."""

    faces: np.ndarray
    num_vertices: int
    topology: FaceTopology | None = None
    fps: float | None = None
    units: str | None = None
    description: str = ""


def mesh_source(
    mesh: str | Path | None = None,
    topology: str | Path | None = None,
    data: str | Path | None = None,
    layout: str | None = None,
) -> MeshSource | None:
    """The :class:`MeshSource` of one of a mesh file, a ``topology.npz`` or a dataset folder (None when
    none is given; giving several is an error)."""
    from memorytalker.topology import load_mesh

    given = [n for n, v in (("mesh", mesh), ("topology", topology), ("data", data)) if v]
    if len(given) > 1:
        raise MemoryTalkerError(f"give one source of triangles, not {' and '.join(given)}")
    if mesh:
        verts, faces = load_mesh(mesh)
        return MeshSource(faces, verts.shape[0], description=f"mesh {mesh}")
    if topology:
        topo = FaceTopology.load(topology)
        return MeshSource(topo.faces, topo.num_vertices, topo, topo.fps, description=f"topology {topology}")
    if data:
        from memorytalker.data.layout import load_dataset

        index = load_dataset(data, layout=layout)
        topo = index.topology
        return MeshSource(
            topo.faces, topo.num_vertices, topo, index.fps, index.units, description=f"dataset {data}"
        )
    return None


def load_vertex_file(
    path: str | Path, source: MeshSource | None = None, what: str = "vertices"
) -> np.ndarray:
    """Read ``(T, V, 3)`` float32 vertices from ``.npy`` and check ``V`` against ``source``.

    Raises:
        MemoryTalkerError: missing/unreadable file, wrong shape, or a vertex count other than the mesh's.
    """
    path = Path(path)
    if not path.is_file():
        raise MemoryTalkerError(f"{what} file not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise MemoryTalkerError(f"cannot read {what} file {path}: {exc}") from exc
    if arr.ndim == 2 and arr.shape[1] % 3 == 0:
        arr = arr.reshape(arr.shape[0], -1, 3)
    if arr.ndim != 3 or arr.shape[-1] != 3 or arr.shape[0] == 0 or arr.dtype.kind not in "fiu":
        raise MemoryTalkerError(
            f"{what} file {path}: expected a (T, V, 3) or (T, V*3) numeric array, got {arr.shape} {arr.dtype}"
        )
    if source is not None and arr.shape[1] != source.num_vertices:
        raise TopologyError(
            f"{what} file {path} has {arr.shape[1]} vertices per frame but {source.description} has "
            f"{source.num_vertices} vertices"
        )
    return arr.astype(np.float32, copy=False)
