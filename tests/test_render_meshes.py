"""Small test meshes for the rendering/export tests: an icosphere "head" with a lip region."""

from __future__ import annotations

import numpy as np

from memorytalker.topology import FaceTopology

MOUTH_Y = -0.35


def sphere_head(subdivisions: int = 3, radius: float = 0.1) -> FaceTopology:
    """An icosphere (``+y`` up, facing ``+z``) whose front band at ``y = MOUTH_Y * radius`` is the lips.

    ``lips`` = front vertices (``z > 0.7 r``) within ``0.15 r`` of the mouth height and ``0.4 r`` of the
    mid-line; ``upper_face`` = vertices above ``0.3 r``; ``lower_lip`` = the lips below the mouth line.
    """
    import trimesh

    ico = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    v = np.asarray(ico.vertices, dtype=np.float64)
    r = radius
    lips = np.flatnonzero(
        (v[:, 2] > 0.7 * r) & (np.abs(v[:, 1] - MOUTH_Y * r) < 0.15 * r) & (np.abs(v[:, 0]) < 0.4 * r)
    )
    lower = lips[v[lips, 1] < MOUTH_Y * r]
    return FaceTopology(
        name="sphere-head",
        vertices=v,
        faces=np.asarray(ico.faces),
        fps=30,
        regions={"lips": lips, "upper_face": np.flatnonzero(v[:, 1] > 0.3 * r), "lower_lip": lower},
    )


def open_mouth(topo: FaceTopology, amount: np.ndarray) -> np.ndarray:
    """``(T, V, 3)``: the reference mesh with the lower lip pulled down and in by ``amount[t] x radius``."""
    v = np.asarray(topo.vertices, dtype=np.float32)
    radius = float(np.abs(v).max())
    amount = np.asarray(amount, dtype=np.float32)
    seq = np.repeat(v[None], len(amount), axis=0).copy()
    low = topo.region("lower_lip")
    seq[:, low, 1] -= amount[:, None] * radius
    seq[:, low, 2] -= 0.5 * amount[:, None] * radius
    return seq


# ------------------------------------------------------------------------------------------ tests
def test_lip_opening_on_the_sphere_head_follows_the_lower_lip():
    from memorytalker.topology import lip_opening

    topo = sphere_head()
    upper, lower = topo.outer_lip_vertices
    assert upper in topo.lips and lower in topo.lips
    assert topo.vertices[upper, 1] > topo.vertices[lower, 1]  # upper is above lower (+y up)
    assert lower in topo.region("lower_lip")
    seq = open_mouth(topo, np.array([0.0, 0.1, 0.2], dtype=np.float32))
    curve = lip_opening(seq, topo)
    assert curve.shape == (3,)
    expected = np.linalg.norm(seq[:, upper].astype(np.float64) - seq[:, lower], axis=-1)
    np.testing.assert_allclose(curve, expected)
    assert curve[0] < curve[1] < curve[2]
    # (T, V*3) is accepted too
    np.testing.assert_allclose(lip_opening(seq.reshape(3, -1), topo), curve)
