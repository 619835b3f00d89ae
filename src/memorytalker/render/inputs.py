"""Command-line inputs shared by ``memorytalker render`` and ``memorytalker export``.

A vertex file (``.npy``, ``(T, V, 3)`` or ``(T, V*3)``) plus exactly one source of triangles: a mesh
file (``--mesh``), a ``topology.npz`` (``--topology``) or a processed dataset folder (``--data``,
docs/LAYOUT.md). The vertex count must match the mesh's; the error names both counts.
"""

from __future__ import annotations

import argparse
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


def add_mesh_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--mesh`` | ``--topology`` | ``--data`` (one of them) and ``--layout``."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--mesh", help="mesh file (.ply/.obj) of the vertices' topology (same vertex order)")
    group.add_argument("--topology", help="topology.npz (FaceTopology.save): mesh, fps and regions")
    group.add_argument(
        "--data", help="processed dataset folder (docs/LAYOUT.md): its topology, fps and units"
    )
    parser.add_argument(
        "--layout",
        default=None,
        help="with --data, for folders without dataset.yaml: vocaset, biwi or a YAML",
    )


def read_mesh_source(args: argparse.Namespace) -> MeshSource | None:
    """The :class:`MeshSource` named by ``--mesh``/``--topology``/``--data`` (None when none is given)."""
    from memorytalker.topology import load_mesh

    if getattr(args, "mesh", None):
        verts, faces = load_mesh(args.mesh)
        return MeshSource(faces, verts.shape[0], description=f"mesh {args.mesh}")
    if getattr(args, "topology", None):
        topo = FaceTopology.load(args.topology)
        return MeshSource(
            topo.faces, topo.num_vertices, topo, topo.fps, description=f"topology {args.topology}"
        )
    if getattr(args, "data", None):
        from memorytalker.data.layout import load_dataset

        index = load_dataset(args.data, layout=args.layout)
        topo = index.topology
        return MeshSource(
            topo.faces, topo.num_vertices, topo, index.fps, index.units, description=f"dataset {args.data}"
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
