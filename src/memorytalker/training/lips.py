"""Lip opening: the distance between a mid-upper-lip and a mid-lower-lip vertex, found geometrically.

The two vertices come from the topology's ``lips`` region on its reference mesh, with no index lists:

1. *up* is the axis along which the ``upper_face`` centroid lies farthest from the lips centroid (eyes and
   forehead are above the mouth), with that sign;
2. *width* is, of the two other axes, the one along which the lip region extends most (mouth corners);
3. the mid-line lip vertices are those within 10 % of the lip width from the middle of the lips (the band
   widens to 20, 30, 50 % until it holds vertices at two different heights);
4. mid-upper = the highest mid-line lip vertex, mid-lower = the lowest (ties: the one nearest the middle).

So the opening is measured across the outer lip contour on the face's mid-line: it includes the lips'
thickness, and it grows with the jaw and lip opening (it never reaches zero).
"""

from __future__ import annotations

import numpy as np

from memorytalker.errors import TopologyError
from memorytalker.topology import FaceTopology


def lip_opening_vertices(topology: FaceTopology, tolerance: float = 0.1) -> tuple[int, int]:
    """``(mid_upper, mid_lower)`` vertex indices of ``topology`` (see the module docstring).

    Raises:
        TopologyError: a lip region too small or flat to tell an upper from a lower lip.
    """
    ref = np.asarray(topology.vertices, dtype=np.float64)
    lips = np.asarray(topology.lips)
    if lips.size < 2:
        raise TopologyError(
            f"topology {topology.name!r}: the lips region needs >= 2 vertices, has {lips.size}"
        )
    lp = ref[lips]
    up_vec = ref[topology.upper_face].mean(0) - lp.mean(0)
    up_axis = int(np.argmax(np.abs(up_vec)))
    sign = 1.0 if up_vec[up_axis] >= 0 else -1.0
    extent = lp.max(0) - lp.min(0)
    others = [a for a in range(3) if a != up_axis]
    width_axis = others[int(np.argmax(extent[others]))]
    centre = 0.5 * (lp[:, width_axis].max() + lp[:, width_axis].min())
    dist = np.abs(lp[:, width_axis] - centre)
    heights = sign * lp[:, up_axis]
    cand = np.zeros(0, dtype=np.int64)
    for tol in (tolerance, 2 * tolerance, 3 * tolerance, 5 * tolerance):
        cand = np.flatnonzero(dist <= tol * extent[width_axis] + 1e-12)
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


def lip_opening(vertices: np.ndarray, upper: int, lower: int) -> np.ndarray:
    """``(T,)`` distance between vertices ``upper`` and ``lower`` in every frame of ``(T, V, 3)`` vertices."""
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim == 2:
        v = v.reshape(v.shape[0], -1, 3)
    return np.linalg.norm(v[:, upper] - v[:, lower], axis=-1)
