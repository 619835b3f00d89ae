"""Lip geometry of a topology: the one place that says where the lips are and how open they are.

Everything is derived from the topology's reference mesh and its regions, never from index lists:

* **axes** (:func:`face_axes`): *up* is the axis along which the ``upper_face`` centroid lies farthest
  from the ``lips`` centroid (eyes and forehead are above the mouth), with that sign; *width* is, of the
  two other axes, the one along which the lips extend most (mouth corners).
* **outer lip opening** (:func:`lip_opening`): the Euclidean distance between the mid-upper and mid-lower
  vertex of the *outer* lip region (:func:`outer_lip_vertices`: the highest and lowest ``lips`` vertex
  within 10 % of the lip width of the middle; the band widens to 20, 30, 50 % until it holds vertices at
  two heights). It includes the lips' thickness and never reaches zero; it follows jaw and lip opening.
* **inner lip gap** (:func:`inner_lip_gap`): the signed distance along *up* between the midline vertex of
  the upper and of the lower inner-lip contour: 0 when the lips touch, negative when they press into each
  other. The contours are the regions ``upper_lip_inner`` / ``lower_lip_inner`` when the topology names
  them (FLAME: the midline pair 3531 / 3504), else they are derived (:func:`derive_inner_lips`): the mesh
  boundary loop inside the ``lips`` region (the mouth opening), split into the upper and lower edge by the
  side its triangles lie on, mouth corners left out. The midline vertex of a contour is its vertex nearest
  the middle of the mouth along *width*.

Units are the mesh's (metres for FLAME and the project's faces).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from memorytalker.errors import TopologyError

if TYPE_CHECKING:
    from memorytalker.topology.core import FaceTopology

#: Region names of the inner-lip contours.
UPPER_LIP_INNER = "upper_lip_inner"
LOWER_LIP_INNER = "lower_lip_inner"
#: Fraction of a mouth loop's vertices that must belong to the ``lips`` region (an outer border is not one).
MOUTH_LOOP_LIPS_FRACTION = 0.5
#: Fraction of the mouth width at each corner excluded from the derived upper/lower contours.
CORNER_FRACTION = 0.03


@dataclass(frozen=True)
class FaceAxes:
    """``up`` axis (0/1/2) with ``up_sign`` (+1/-1: which direction is up), and the mouth ``width`` axis."""

    up: int
    up_sign: float
    width: int


@dataclass(frozen=True)
class InnerLips:
    """Inner-lip contours of a topology and their midline vertices (see the module docstring)."""

    upper: np.ndarray
    lower: np.ndarray
    mid_upper: int
    mid_lower: int


def face_axes(vertices: np.ndarray, lips: np.ndarray, upper_face: np.ndarray) -> FaceAxes:
    """The up and width axes of a face mesh from its ``lips`` and ``upper_face`` regions."""
    ref = np.asarray(vertices, dtype=np.float64)
    lp = ref[np.asarray(lips)]
    up_vec = ref[np.asarray(upper_face)].mean(0) - lp.mean(0)
    up = int(np.argmax(np.abs(up_vec)))
    sign = 1.0 if up_vec[up] >= 0 else -1.0
    extent = lp.max(0) - lp.min(0)
    others = [a for a in range(3) if a != up]
    return FaceAxes(up=up, up_sign=sign, width=others[int(np.argmax(extent[others]))])


def outer_lip_vertices(topology: FaceTopology, tolerance: float = 0.1) -> tuple[int, int]:
    """``(mid_upper, mid_lower)`` vertices of the outer lip region (see the module docstring).

    Raises:
        TopologyError: a lips region too small or flat to tell an upper from a lower lip.
    """
    lips = np.asarray(topology.lips)
    if lips.size < 2:
        raise TopologyError(
            f"topology {topology.name!r}: the lips region needs >= 2 vertices, has {lips.size}"
        )
    axes = topology.axes
    lp = np.asarray(topology.vertices, dtype=np.float64)[lips]
    width = np.ptp(lp[:, axes.width])
    centre = 0.5 * (lp[:, axes.width].max() + lp[:, axes.width].min())
    dist = np.abs(lp[:, axes.width] - centre)
    heights = axes.up_sign * lp[:, axes.up]
    for tol in (tolerance, 2 * tolerance, 3 * tolerance, 5 * tolerance):
        cand = np.flatnonzero(dist <= tol * width + 1e-12)
        if cand.size >= 2 and np.ptp(heights[cand]) > 0:
            break
    else:
        raise TopologyError(
            f"topology {topology.name!r}: cannot tell the upper from the lower lip (the mid-line lip vertices "
            "are all at one height)"
        )
    # highest / lowest; among equal heights the one nearest the mid-line
    upper = int(lips[cand[np.lexsort((dist[cand], -heights[cand]))[0]]])
    lower = int(lips[cand[np.lexsort((dist[cand], heights[cand]))[0]]])
    return upper, lower


def boundary_loops(faces: np.ndarray, num_vertices: int) -> list[np.ndarray]:
    """Vertex sets of the mesh's boundary loops (edges used by one triangle), one array per loop."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(e, axis=0, return_counts=True)
    b = uniq[counts == 1]
    if b.size == 0:
        return []
    a = sp.coo_matrix((np.ones(len(b)), (b[:, 0], b[:, 1])), shape=(num_vertices, num_vertices))
    _, lab = connected_components(a, directed=False)
    bv = np.unique(b)
    return [bv[lab[bv] == k] for k in np.unique(lab[bv])]


def mouth_loop(
    vertices: np.ndarray, faces: np.ndarray, lips: np.ndarray, lips_fraction: float = MOUTH_LOOP_LIPS_FRACTION
) -> np.ndarray | None:
    """The boundary loop of the mouth opening: the loop whose centre lies within the (30 % grown) box of
    the lips region, of whose vertices at least ``lips_fraction`` are lip vertices (an outer border of the
    mesh is not a mouth; FLAME's mouth hole lies behind its lips region, so its rig passes 0), that spans
    over 30 % of the lips' width, and is nearest the lips' centre. None when there is none."""
    v = np.asarray(vertices, dtype=np.float64)
    lips = np.asarray(lips, dtype=np.int64)
    lc = v[lips].mean(axis=0)
    lo, hi = v[lips].min(axis=0), v[lips].max(axis=0)
    span = hi - lo
    wide = int(np.argmax(span))
    best = None
    in_lips = np.zeros(v.shape[0], dtype=bool)
    in_lips[lips] = True
    for loop in boundary_loops(faces, v.shape[0]):
        c = v[loop].mean(axis=0)
        inside = np.all((c >= lo - 0.3 * span) & (c <= hi + 0.3 * span))
        mostly_lips = in_lips[loop].mean() >= lips_fraction
        if inside and mostly_lips and np.ptp(v[loop, wide]) > 0.3 * span[wide]:
            d = float(np.linalg.norm(c - lc))
            if best is None or d < best[0]:
                best = (d, loop)
    return None if best is None else best[1]


def split_mouth_loop(
    vertices: np.ndarray, faces: np.ndarray, loop: np.ndarray, axes: FaceAxes, corner: float = CORNER_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """``(upper, lower)`` edges of a mouth loop: a loop vertex belongs to the upper lip when its triangles'
    centroids lie above it (along ``axes.up``); the ``corner`` fraction of the width at each end is dropped."""
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    n = v.shape[0]
    h = axes.up_sign * v[:, axes.up]
    side = np.zeros(n)
    cnt = np.zeros(n)
    cent = h[f].mean(axis=1)
    for k in range(3):
        np.add.at(side, f[:, k], cent - h[f[:, k]])
        np.add.at(cnt, f[:, k], 1)
    side = side / np.maximum(cnt, 1)
    xs = v[loop, axes.width]
    width = np.ptp(xs)
    mid = 0.5 * (xs.max() + xs.min())
    body = loop[np.abs(xs - mid) <= (0.5 - corner) * width]
    return np.sort(body[side[body] > 0]), np.sort(body[side[body] < 0])


def midline_vertex(vertices: np.ndarray, contour: np.ndarray, axes: FaceAxes, centre: float) -> int:
    """The vertex of ``contour`` nearest ``centre`` along the width axis (ties: the lower index)."""
    d = np.abs(np.asarray(vertices, dtype=np.float64)[contour, axes.width] - centre)
    return int(contour[int(np.argmin(d))])


def derive_inner_lips(topology: FaceTopology) -> dict[str, np.ndarray]:
    """``{"upper_lip_inner": ..., "lower_lip_inner": ...}`` from the mouth opening of the reference mesh.

    Raises:
        TopologyError: the mesh has no mouth opening inside its lips region, or it cannot be split.
    """
    v, f = topology.vertices, topology.faces
    loop = mouth_loop(v, f, topology.lips) if len(f) else None
    if loop is None:
        raise TopologyError(
            f"topology {topology.name!r} names no inner-lip contours and its mesh has no mouth opening inside "
            f"the lips region to derive them from: give regions {UPPER_LIP_INNER!r} and {LOWER_LIP_INNER!r} "
            "(vertex indices of the upper and lower inner-lip edge; FLAME's midline pair is 3531 / 3504)"
        )
    upper, lower = split_mouth_loop(v, f, loop, topology.axes)
    if upper.size == 0 or lower.size == 0:
        raise TopologyError(
            f"topology {topology.name!r}: could not tell the upper from the lower lip along the mouth opening"
        )
    return {UPPER_LIP_INNER: upper, LOWER_LIP_INNER: lower}


def inner_lips(topology: FaceTopology) -> InnerLips:
    """The inner-lip contours (named regions, else derived) and their midline vertices."""
    regions: Mapping[str, np.ndarray] = topology.regions
    if UPPER_LIP_INNER in regions and LOWER_LIP_INNER in regions:
        upper, lower = regions[UPPER_LIP_INNER], regions[LOWER_LIP_INNER]
    elif UPPER_LIP_INNER in regions or LOWER_LIP_INNER in regions:
        raise TopologyError(
            f"topology {topology.name!r} names only one of {UPPER_LIP_INNER!r} / {LOWER_LIP_INNER!r}; give both"
        )
    else:
        derived = derive_inner_lips(topology)
        upper, lower = derived[UPPER_LIP_INNER], derived[LOWER_LIP_INNER]
    axes = topology.axes
    both = np.asarray(topology.vertices, dtype=np.float64)[np.concatenate([upper, lower]), axes.width]
    centre = 0.5 * (both.max() + both.min())
    return InnerLips(
        upper=np.asarray(upper),
        lower=np.asarray(lower),
        mid_upper=midline_vertex(topology.vertices, upper, axes, centre),
        mid_lower=midline_vertex(topology.vertices, lower, axes, centre),
    )


def inner_lip_pairs(topology: FaceTopology, central: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """``(upper (P,), lower (P,))`` int64 vertex pairs facing each other across the mouth, covering both
    contours: every upper inner-lip vertex within the ``central`` fraction of the mouth width with the
    lower inner-lip vertex nearest to it along the width axis, and every central lower vertex with its
    nearest upper one (duplicates once; the corners, where the lips always meet, are left out). Pairing
    from one side only leaves the other contour's in-between vertices out of any gap term, and a model
    trained on it draws that lip jagged (docs/RESULTS.md). The signed gap of pair ``j`` is
    ``up_sign * (v[upper_j] - v[lower_j])[up]``, as :func:`inner_lip_gap`'s."""
    inner = topology.inner_lips
    axes = topology.axes
    ref = np.asarray(topology.vertices, dtype=np.float64)
    xu, xl = ref[inner.upper, axes.width], ref[inner.lower, axes.width]
    lo, hi = min(xu.min(), xl.min()), max(xu.max(), xl.max())
    centre, half = 0.5 * (lo + hi), 0.5 * central * (hi - lo)
    pairs: dict[tuple[int, int], None] = {}
    keep_u = np.flatnonzero(np.abs(xu - centre) <= half)
    if keep_u.size == 0:
        keep_u = np.array([int(np.argmin(np.abs(xu - centre)))])
    for i in keep_u:
        pairs[(int(inner.upper[i]), int(inner.lower[np.argmin(np.abs(xl - xu[i]))]))] = None
    for j in np.flatnonzero(np.abs(xl - centre) <= half):
        pairs[(int(inner.upper[np.argmin(np.abs(xu - xl[j]))]), int(inner.lower[j]))] = None
    up, down = zip(*pairs)
    return np.asarray(up, dtype=np.int64), np.asarray(down, dtype=np.int64)


def _frames(vertices: np.ndarray, topology: FaceTopology, what: str) -> np.ndarray:
    v = np.asarray(vertices)
    topology.check_vertices(v, what)
    if v.ndim == 2:
        v = v.reshape(v.shape[0], -1, 3)
    if v.ndim != 3:
        raise TopologyError(f"{what}: expected (T, V, 3) vertices, got shape {v.shape}")
    return v


def lip_opening(vertices: np.ndarray, topology: FaceTopology) -> np.ndarray:
    """``(T,)`` float64 outer lip opening of ``(T, V, 3)`` (or ``(T, V*3)``) vertices, in mesh units."""
    v = _frames(vertices, topology, "lip-opening vertices")
    upper, lower = topology.outer_lip_vertices
    return np.linalg.norm(v[:, upper].astype(np.float64) - v[:, lower].astype(np.float64), axis=-1)


def inner_lip_gap(vertices: np.ndarray, topology: FaceTopology) -> np.ndarray:
    """``(T,)`` float64 signed inner lip gap (0 = touching, < 0 = pressed) of ``(T, V, 3)`` vertices."""
    v = _frames(vertices, topology, "lip-gap vertices")
    inner = topology.inner_lips
    axes = topology.axes
    diff = v[:, inner.mid_upper, axes.up].astype(np.float64) - v[:, inner.mid_lower, axes.up].astype(
        np.float64
    )
    return axes.up_sign * diff
