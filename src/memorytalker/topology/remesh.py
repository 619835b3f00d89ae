"""A remeshed copy of a face topology with an exact map from the original's vertices, for testing models that
animate any mesh (``scantalk``) on a topology they never saw.

:func:`remesh_topology` subdivides the reference mesh once (every edge split at its midpoint), decimates it
with quadric edge collapse (``fast_simplification``) to about ``target_vertices``, and projects every new
vertex onto the original surface: each new vertex is then a fixed barycentric combination of the three
vertices of the original triangle it lies on. That combination is the sparse ``weights`` ``(V_new, V)``
matrix, which carries any animation of the original mesh onto the new one (``weights @ frame``): the
ground truth of a remeshed corpus is the same surface motion sampled at other points (the surface is linear
in each triangle, so this is exact for the piecewise-linear surface the original frames define).

Regions carry over by each new vertex's dominant original vertex (its largest barycentric weight). Named
inner-lip contours (``upper_lip_inner`` / ``lower_lip_inner``) become, vertex by vertex, the nearest new
vertices on triangles of that lip's contour alone, in their order (so the lip-sync measures pair the same
lips); contours the original derives from its mouth
opening are derived again on the new mesh (:func:`~memorytalker.topology.lips.derive_inner_lips`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from memorytalker.errors import TopologyError
from memorytalker.topology.core import FaceTopology
from memorytalker.topology.lips import LOWER_LIP_INNER, UPPER_LIP_INNER, derive_inner_lips


@dataclass
class Remeshed:
    """A remeshed topology and the map onto it.

    Attributes:
        topology: the new :class:`FaceTopology` (its reference mesh = ``weights @`` the original's).
        weights: ``(V_new, V)`` CSR matrix, three non-negative weights per row summing to 1.
    """

    topology: FaceTopology
    weights: sp.csr_matrix

    def transfer(self, frames: np.ndarray) -> np.ndarray:
        """Vertices of the original topology ``(..., V, 3)`` -> the same surface points ``(..., V_new, 3)``."""
        frames = np.asarray(frames)
        v = self.weights.shape[1]
        if frames.shape[-2:] != (v, 3):
            raise TopologyError(
                f"frames have shape {frames.shape}: expected (..., {v}, 3) of the original mesh"
            )
        lead = frames.shape[:-2]
        flat = frames.reshape(-1, v, 3).transpose(1, 0, 2).reshape(v, -1)  # (V, N*3)
        out = np.asarray(self.weights @ flat.astype(np.float64))  # (V_new, N*3)
        n_new = self.weights.shape[0]
        out = out.reshape(n_new, -1, 3).transpose(1, 0, 2)
        return out.reshape(*lead, n_new, 3).astype(frames.dtype)


def remesh_topology(topology: FaceTopology, target_vertices: int, name: str | None = None) -> Remeshed:
    """Remesh ``topology``'s reference mesh to about ``target_vertices`` vertices (module docstring).

    Raises:
        TopologyError: the topology has no triangles, the target is not below the subdivided mesh's vertex
            count, or the new mesh lost the mouth opening (its inner-lip contours cannot be derived).
    """
    import fast_simplification
    import trimesh

    faces = np.asarray(topology.faces, dtype=np.int64)
    if faces.size == 0:
        raise TopologyError(f"topology {topology.name!r} has no triangles to remesh")
    verts = np.asarray(topology.vertices, dtype=np.float64)
    sub_v, sub_f = trimesh.remesh.subdivide(verts, faces)
    if not 3 <= target_vertices < len(sub_v):
        raise TopologyError(
            f"target_vertices={target_vertices}: must be in [3, {len(sub_v)}) (the once-subdivided mesh's count)"
        )
    reduction = 1.0 - target_vertices / len(sub_v)
    new_v, new_f = fast_simplification.simplify(
        sub_v.astype(np.float32), sub_f.astype(np.int64), target_reduction=reduction
    )
    used = np.unique(new_f)
    remap = -np.ones(len(new_v), dtype=np.int64)
    remap[used] = np.arange(len(used))
    new_v, new_f = np.asarray(new_v, dtype=np.float64)[used], remap[new_f]
    original = trimesh.Trimesh(verts, faces, process=False)
    points, _, tri = trimesh.proximity.closest_point(original, new_v)
    corners = faces[tri]  # (N, 3)
    bary = trimesh.triangles.points_to_barycentric(verts[corners], points)
    bary = np.clip(bary, 0.0, None)
    bary /= bary.sum(1, keepdims=True)
    n = len(new_v)
    weights = sp.csr_matrix(
        (bary.ravel(), (np.repeat(np.arange(n), 3), corners.ravel())), shape=(n, len(verts))
    )
    dominant = corners[np.arange(n), bary.argmax(1)]
    regions = {}
    for rname, idx in topology.regions.items():
        if rname in (UPPER_LIP_INNER, LOWER_LIP_INNER):
            continue
        member = np.zeros(len(verts), dtype=bool)
        member[idx] = True
        regions[rname] = np.flatnonzero(member[dominant])
    new_topology = FaceTopology(
        name=name or f"{topology.name}-remeshed{n}",
        vertices=np.asarray(weights @ verts, dtype=np.float32),
        faces=new_f,
        fps=topology.fps,
        regions=regions,
    )
    if UPPER_LIP_INNER in topology.regions:  # named contours: mapped side by side (module docstring)
        regions.update(_mapped_contours(topology, weights, new_topology.vertices))
    else:  # derived contours (a mouth opening of the mesh): derived again on the new mesh
        try:
            regions.update(derive_inner_lips(new_topology))
        except TopologyError as exc:
            raise TopologyError(f"the remeshed {topology.name!r} lost its mouth opening: {exc}") from None
    new_topology = FaceTopology(
        name=new_topology.name, vertices=new_topology.vertices, faces=new_f, fps=topology.fps, regions=regions
    )
    return Remeshed(new_topology, weights)


def _mapped_contours(topology: FaceTopology, weights: sp.csr_matrix, new_vertices: np.ndarray) -> dict:
    """The named inner-lip contours on the new mesh: for each original contour vertex, the nearest new
    vertex that lies on a triangle touching that contour and not the other one (where the lips touch, the
    nearest vertex overall may sit on the other lip), in the original's order, without repeats."""
    from scipy.spatial import cKDTree

    verts = np.asarray(topology.vertices, dtype=np.float64)
    sides = {k: np.asarray(topology.regions[k]) for k in (UPPER_LIP_INNER, LOWER_LIP_INNER)}
    touches = {}
    for k, idx in sides.items():
        member = np.zeros(len(verts))
        member[idx] = 1.0
        touches[k] = np.asarray((weights > 0).astype(np.float64) @ member).ravel() > 0
    out = {}
    for k, other in ((UPPER_LIP_INNER, LOWER_LIP_INNER), (LOWER_LIP_INNER, UPPER_LIP_INNER)):
        candidates = np.flatnonzero(touches[k] & ~touches[other])
        if candidates.size == 0:
            raise TopologyError(f"the remeshed {topology.name!r} has no vertex on the {k} contour alone")
        _, near = cKDTree(np.asarray(new_vertices, dtype=np.float64)[candidates]).query(verts[sides[k]])
        out[k] = np.asarray(list(dict.fromkeys(candidates[near].tolist())), dtype=np.int64)
    return out
