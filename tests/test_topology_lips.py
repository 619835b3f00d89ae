"""Lip geometry of a topology (memorytalker.topology.lips): axes, outer lip opening, inner lip gap."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_file

from memorytalker.errors import TopologyError
from memorytalker.topology import FaceTopology, inner_lip_gap, lip_opening


def test_lip_opening_vertices_on_a_grid_and_the_curve():
    # 3 x 3 grid, y up; lips = bottom two rows' middle column; upper face = top row
    verts = np.array([[x, y, 0.0] for y in (2.0, 1.0, 0.0) for x in (-1.0, 0.0, 1.0)])
    topo = FaceTopology(
        "g", verts, np.zeros((0, 3)), 30, {"lips": [3, 4, 5, 6, 7, 8], "upper_face": [0, 1, 2]}
    )
    assert topo.outer_lip_vertices == (4, 7)
    # flipped up axis (upper face below the mouth in y): the roles swap
    flipped = FaceTopology("f", verts * [1, -1, 1], np.zeros((0, 3)), 30, topo.regions)
    assert flipped.outer_lip_vertices == (4, 7)
    seq = np.repeat(verts[None], 4, 0)
    seq[:, 7, 1] -= np.array([0.0, 0.5, 1.0, 0.25])
    assert lip_opening(seq, topo) == pytest.approx([1.0, 1.5, 2.0, 1.25])
    flat = FaceTopology("flat", verts, np.zeros((0, 3)), 30, {"lips": [3, 4, 5], "upper_face": [1]})
    with pytest.raises(TopologyError, match="upper from the lower lip"):
        flat.outer_lip_vertices  # noqa: B018


def test_lip_opening_vertices_on_flame():
    from memorytalker.topology import RegionDuplicatesWarning, vocaset_topology

    mesh, masks = shared_file("flame", "FLAME_sample.ply"), shared_file("flame", "FLAME_masks.pkl")
    with pytest.warns(RegionDuplicatesWarning):  # FLAME's lips list 4 vertices twice
        topo = vocaset_topology(mesh, masks)
    upper, lower = topo.outer_lip_vertices
    ref = topo.vertices
    assert upper in topo.lips and lower in topo.lips
    assert ref[upper, 1] > ref[lower, 1]  # FLAME is y-up
    assert abs(ref[upper, 0]) < 0.01 and abs(ref[lower, 0]) < 0.01  # on the mid-line
    assert 0.01 < np.linalg.norm(ref[upper] - ref[lower]) < 0.04  # 1-4 cm apart


def _slit_mesh() -> tuple[FaceTopology, dict]:
    """A flat face (y up, 9 x 5 grid: forehead row, mouth row, three chin/neck rows) with a slit cut along the middle row between x = -1 and 1: the
    slit's vertices are duplicated (upper copies used by the triangles above, lower by those below), its
    end vertices are shared, so the mouth is a closed boundary loop inside the face."""
    xs = np.linspace(-2.0, 2.0, 9)
    verts = [[x, y, 0.0] for y in (1.0, 0.0, -1.0, -2.0, -3.0) for x in xs]
    top, mid, bottom, *neck = [list(range(r * 9, r * 9 + 9)) for r in range(5)]
    cut = [i for i in mid if abs(verts[i][0]) < 1.0 - 1e-9]
    lower_copy = {}
    for i in cut:
        lower_copy[i] = len(verts)
        verts.append(list(verts[i]))
    faces = []
    for i in range(8):
        p, q, r, s = top[i], top[i + 1], mid[i], mid[i + 1]
        faces += [[p, r, q], [q, r, s]]
        p, q = lower_copy.get(mid[i], mid[i]), lower_copy.get(mid[i + 1], mid[i + 1])
        r, s = bottom[i], bottom[i + 1]
        faces += [[p, r, q], [q, r, s]]
        for a, b in ((bottom, neck[0]), (neck[0], neck[1])):
            faces += [[a[i], b[i], a[i + 1]], [a[i + 1], b[i], b[i + 1]]]
    upper, lower = cut, [lower_copy[i] for i in cut]
    regions = {"lips": upper + lower + [mid[2], mid[6]], "upper_face": top}
    idx = {"upper": upper, "lower": lower}
    return FaceTopology("slit", np.array(verts), np.array(faces), 30, regions), idx


def test_inner_lips_are_derived_from_the_mouth_opening_and_the_gap_is_signed():
    topo, idx = _slit_mesh()
    inner = topo.inner_lips
    assert set(inner.upper) <= set(idx["upper"]) and set(inner.lower) <= set(idx["lower"])
    assert inner.mid_upper == idx["upper"][1] and inner.mid_lower == idx["lower"][1]  # x = 0
    seq = np.repeat(topo.vertices[None], 3, 0).astype(np.float64)
    seq[1, inner.mid_upper, 1] += 0.004  # lips 4 mm apart
    seq[2, inner.mid_upper, 1] -= 0.001  # upper lip pressed 1 mm below the lower lip
    assert inner_lip_gap(seq, topo) == pytest.approx([0.0, 0.004, -0.001])
    # upside-down mesh: the up axis flips with the upper face, the gap keeps its meaning
    flipped = FaceTopology("f", topo.vertices * [1, -1, 1], topo.faces, 30, topo.regions)
    assert inner_lip_gap(seq * [1, -1, 1], flipped) == pytest.approx([0.0, 0.004, -0.001])


def test_named_inner_lip_regions_win_and_a_mesh_without_an_opening_is_a_clear_error():
    topo, idx = _slit_mesh()
    named = FaceTopology(
        "n",
        topo.vertices,
        topo.faces,
        30,
        {**topo.regions, "upper_lip_inner": [idx["upper"][0]], "lower_lip_inner": [idx["lower"][2]]},
    )
    assert (named.inner_lips.mid_upper, named.inner_lips.mid_lower) == (idx["upper"][0], idx["lower"][2])
    half = FaceTopology("h", topo.vertices, topo.faces, 30, {**topo.regions, "upper_lip_inner": [1]})
    with pytest.raises(TopologyError, match="only one of"):
        half.inner_lips  # noqa: B018
    closed = FaceTopology("c", topo.vertices, np.zeros((0, 3)), 30, topo.regions)
    with pytest.raises(TopologyError, match="no mouth opening"):
        closed.inner_lips  # noqa: B018


def test_flame_preset_names_the_midline_pair_and_the_procedural_head_derives_its_contours():
    from memorytalker.synth.head import head_topology
    from memorytalker.topology import RegionDuplicatesWarning, vocaset_topology

    head = head_topology()
    inner = head.inner_lips
    assert inner.upper.size >= 5 and inner.lower.size >= 5
    assert abs(float(head.vertices[inner.mid_upper, 0])) < 1e-3  # on the mid-line
    assert inner_lip_gap(head.vertices[None], head)[0] == pytest.approx(0.0, abs=1e-4)  # the slit is closed
    mesh, masks = shared_file("flame", "FLAME_sample.ply"), shared_file("flame", "FLAME_masks.pkl")
    with pytest.warns(RegionDuplicatesWarning):
        flame = vocaset_topology(mesh, masks)
    assert (flame.inner_lips.mid_upper, flame.inner_lips.mid_lower) == (3531, 3504)
    gap = inner_lip_gap(flame.vertices[None], flame)[0]
    assert 0.0 < gap < 0.003  # FLAME's sample mesh rests with the lips ~2 mm apart
