"""The five metrics against naive loop implementations and hand-computed cases (docs/METRICS.md)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from memorytalker.errors import MemoryTalkerError
from memorytalker.evaluation.metrics import (
    MetricError,
    as_vertex_sequence,
    clip_metrics,
    dtw,
    fdd,
    fve,
    ldtw,
    lip_cost_matrix,
    lip_max,
    lve,
)

REL = 1e-6


# ---------------------------------------------------------------------------------------------- naive
def _dist(a, b) -> float:
    return math.sqrt(sum((float(a[c]) - float(b[c])) ** 2 for c in range(3)))


def naive_fve(p, g) -> float:
    t_len = min(len(p), len(g))
    total, n = 0.0, 0
    for t in range(t_len):
        for v in range(p.shape[1]):
            total += _dist(p[t, v], g[t, v])
            n += 1
    return total / n


def naive_lve(p, g, lips) -> float:
    t_len = min(len(p), len(g))
    per_frame = []
    for t in range(t_len):
        per_frame.append(max(_dist(p[t, v], g[t, v]) ** 2 for v in lips))
    return sum(per_frame) / len(per_frame)


def naive_lip_max(p, g, lips) -> float:
    t_len = min(len(p), len(g))
    return sum(max(_dist(p[t, v], g[t, v]) for v in lips) for t in range(t_len)) / t_len


def naive_std(values) -> float:
    mean = sum(values) / len(values)
    return math.sqrt(sum((x - mean) ** 2 for x in values) / len(values))  # population std (ddof 0)


def naive_fdd(p, g, template, upper) -> float:
    t_len = min(len(p), len(g))

    def dyn(x):
        stds = []
        for v in upper:
            stds.append(naive_std([_dist(x[t, v], template[v]) ** 2 for t in range(t_len)]))
        return sum(stds) / len(stds)

    return dyn(g) - dyn(p)


def naive_ldtw(p, g, lips) -> float:
    """DTW with the path length carried forward along the argmin predecessor (no ties on random data)."""
    n, m = len(p), len(g)
    cost = [[sum(_dist(p[i, v], g[j, v]) for v in lips) / len(lips) for j in range(m)] for i in range(n)]
    inf = float("inf")
    acc = [[inf] * m for _ in range(n)]
    length = [[0] * m for _ in range(n)]
    for i in range(n):
        for j in range(m):
            if i == 0 and j == 0:
                acc[i][j], length[i][j] = cost[0][0], 1
                continue
            cands = []
            if i > 0 and j > 0:
                cands.append((acc[i - 1][j - 1], length[i - 1][j - 1]))
            if i > 0:
                cands.append((acc[i - 1][j], length[i - 1][j]))
            if j > 0:
                cands.append((acc[i][j - 1], length[i][j - 1]))
            best, best_len = min(cands)
            acc[i][j], length[i][j] = cost[i][j] + best, best_len + 1
    return acc[n - 1][m - 1] / length[n - 1][m - 1]


# ---------------------------------------------------------------------------------------------- data
V = 30
LIPS = np.array([3, 7, 8, 12, 20, 21])
UPPER = np.array([0, 1, 2, 5, 25, 29])


def random_pair(seed: int, tp: int = 11, tg: int = 9):
    rng = np.random.default_rng(seed)
    template = rng.normal(size=(V, 3))
    gt = template + rng.normal(scale=0.01, size=(tg, V, 3))
    pred = template + rng.normal(scale=0.01, size=(tp, V, 3))
    return pred, gt, template


@pytest.mark.parametrize("seed,tp,tg", [(0, 11, 9), (1, 9, 9), (2, 7, 13)])
def test_against_naive_loops(seed, tp, tg):
    pred, gt, template = random_pair(seed, tp, tg)
    assert fve(pred, gt) == pytest.approx(naive_fve(pred, gt), rel=REL)
    assert lve(pred, gt, LIPS) == pytest.approx(naive_lve(pred, gt, LIPS), rel=REL)
    assert lip_max(pred, gt, LIPS) == pytest.approx(naive_lip_max(pred, gt, LIPS), rel=REL)
    assert fdd(pred, gt, template, UPPER) == pytest.approx(naive_fdd(pred, gt, template, UPPER), rel=REL)
    assert ldtw(pred, gt, LIPS) == pytest.approx(naive_ldtw(pred, gt, LIPS), rel=REL)


def test_clip_metrics_equals_single_functions():
    pred, gt, template = random_pair(3, 12, 10)
    m = clip_metrics(pred, gt, template, LIPS, UPPER)
    assert m.fve == fve(pred, gt)
    assert m.lve == lve(pred, gt, LIPS)
    assert m.lip_max == lip_max(pred, gt, LIPS)
    assert m.fdd == fdd(pred, gt, template, UPPER)
    assert m.ldtw == ldtw(pred, gt, LIPS)
    assert (m.frames, m.pred_frames, m.gt_frames) == (10, 12, 10)


def test_lip_cost_matrix_against_naive():
    pred, gt, _ = random_pair(4, 5, 6)
    cost = lip_cost_matrix(pred, gt, LIPS)
    assert cost.shape == (5, 6)
    for i in range(5):
        for j in range(6):
            ref = sum(_dist(pred[i, v], gt[j, v]) for v in LIPS) / len(LIPS)
            assert cost[i, j] == pytest.approx(ref, rel=REL)


# ---------------------------------------------------------------------------------------------- hand cases
def test_one_moved_lip_vertex():
    t_len = 4
    gt = np.zeros((t_len, V, 3))
    gt[:] = np.arange(V * 3, dtype=float).reshape(V, 3)
    pred = gt.copy()
    pred[0, LIPS[2]] += [3.0, 4.0, 0.0]  # distance 5 in frame 0 only
    assert fve(pred, gt) == pytest.approx(5.0 / (t_len * V), rel=1e-12)
    assert lve(pred, gt, LIPS) == pytest.approx(25.0 / t_len, rel=1e-12)
    assert lip_max(pred, gt, LIPS) == pytest.approx(5.0 / t_len, rel=1e-12)
    # the same move on a non-lip vertex leaves the lip metrics at zero
    other = gt.copy()
    other[0, 4] += [3.0, 4.0, 0.0]
    assert lve(other, gt, LIPS) == 0.0
    assert lip_max(other, gt, LIPS) == 0.0
    assert fve(other, gt) == pytest.approx(5.0 / (t_len * V), rel=1e-12)


def test_lve_is_max_not_mean_and_squared():
    gt = np.zeros((2, V, 3))
    pred = gt.copy()
    pred[:, LIPS[0], 0] = 2.0  # distance 2 (squared 4) on one lip vertex
    pred[:, LIPS[1], 0] = 1.0  # a smaller error on another: the max ignores it
    assert lve(pred, gt, LIPS) == pytest.approx(4.0)
    assert lip_max(pred, gt, LIPS) == pytest.approx(2.0)


def test_fdd_known_std():
    rng = np.random.default_rng(5)
    template = rng.normal(size=(V, 3))
    t_len = 6
    const = np.repeat(template[None], t_len, axis=0)
    gt = const.copy()
    amp = np.array([0.0, 2.0] * (t_len // 2))  # ‖M‖² alternates 0 and 4: population std 2
    gt[:, UPPER, 1] += amp[:, None]
    gt[:, 10, :] += rng.normal(size=(t_len, 3))  # a non-upper vertex moving does not count
    assert fdd(const, gt, template, UPPER) == pytest.approx(2.0, rel=1e-12)  # GT moves, prediction still
    assert fdd(gt, const, template, UPPER) == pytest.approx(-2.0, rel=1e-12)  # signed: GT minus prediction
    # a constant displacement has zero std over time: no dynamics
    shifted = const + np.array([0.5, -0.25, 1.0])
    assert fdd(shifted, const, template, UPPER) == 0.0
    # ddof 0, not 1: with ddof=1 the value would be 2 * sqrt(6/5)
    assert fdd(const, gt, template, UPPER) != pytest.approx(2.0 * math.sqrt(t_len / (t_len - 1)))


def test_ldtw_time_shift_exact():
    t_len, step = 8, 0.25
    base = np.zeros((V, 3))
    gt = np.stack([base + [t * step, 0.0, 0.0] for t in range(t_len)])  # every vertex moves `step` per frame
    pred = np.concatenate([gt[:1], gt[:-1]])  # delayed by one frame (first frame held)
    # The zero-cost cells (0,0),(1,0),(2,1),...,(T-1,T-2) form the only optimal path, then the last cell
    # (T-1,T-1) costs |G_{T-2} - G_{T-1}| = step: D = step over T + 1 path cells.
    assert ldtw(pred, gt, LIPS) == pytest.approx(step / (t_len + 1), rel=1e-12)
    total, path = dtw(lip_cost_matrix(pred, gt, LIPS))
    assert total == pytest.approx(step, rel=1e-12)
    expected = [(0, 0)] + [(i, i - 1) for i in range(1, t_len)] + [(t_len - 1, t_len - 1)]
    assert [tuple(x) for x in path] == expected
    # the frame-wise metrics do see the shift: every frame but the first is off by one step
    assert fve(pred, gt) == pytest.approx(step * (t_len - 1) / t_len, rel=1e-12)


def test_ldtw_unequal_lengths_no_truncation():
    pred, gt, _ = random_pair(6, 5, 5)
    slow = np.repeat(gt, 2, axis=0)  # the same motion at half speed: 10 frames
    assert ldtw(slow, gt, LIPS) == 0.0
    assert ldtw(gt, slow, LIPS) == 0.0
    # truncating the 10-frame sequence to 5 frames would give a positive cost
    assert ldtw(slow[:5], gt, LIPS) > 0.0


def test_dtw_tie_breaking_prefers_diagonal():
    total, path = dtw(np.zeros((3, 5)))
    assert total == 0.0
    assert [tuple(x) for x in path] == [(0, 0), (0, 1), (0, 2), (1, 3), (2, 4)]
    total, path = dtw(np.ones((4, 4)))
    assert total == 4.0 and len(path) == 4  # the diagonal: 4 cells of cost 1
    total, path = dtw(np.array([[2.0]]))
    assert total == 2.0 and [tuple(x) for x in path] == [(0, 0)]


def test_identical_sequences_score_zero():
    pred, _, template = random_pair(7)
    assert fve(pred, pred) == 0.0
    assert lve(pred, pred, LIPS) == 0.0
    assert lip_max(pred, pred, LIPS) == 0.0
    assert fdd(pred, pred, template, UPPER) == 0.0
    assert ldtw(pred, pred, LIPS) == 0.0


# ---------------------------------------------------------------------------------------------- inputs
def test_torch_and_flat_inputs_agree():
    pred, gt, template = random_pair(8)
    ref = clip_metrics(pred, gt, template, LIPS, UPPER)
    as_torch = clip_metrics(
        torch.from_numpy(pred),
        torch.from_numpy(gt),
        torch.from_numpy(template),
        torch.from_numpy(LIPS),
        UPPER,
    )
    assert as_torch == ref
    flat = clip_metrics(
        pred.reshape(len(pred), -1), gt.reshape(len(gt), -1), template.reshape(-1), LIPS, UPPER
    )
    assert flat == ref
    grad = torch.from_numpy(pred).requires_grad_(True)
    assert fve(grad, gt) == ref.fve
    f32 = clip_metrics(pred.astype(np.float32), gt.astype(np.float32), template, LIPS, UPPER)
    t32 = clip_metrics(
        torch.from_numpy(pred.astype(np.float32)), gt.astype(np.float32), template, LIPS, UPPER
    )
    assert t32 == f32
    assert f32.lve == pytest.approx(ref.lve, rel=1e-4)


def test_length_truncation():
    pred, gt, template = random_pair(9, 9, 9)
    longer = np.concatenate([pred, np.full((4, V, 3), 100.0)])  # junk past the ground truth's end
    assert fve(longer, gt) == fve(pred, gt)
    assert lve(longer, gt, LIPS) == lve(pred, gt, LIPS)
    assert lip_max(longer, gt, LIPS) == lip_max(pred, gt, LIPS)
    assert fdd(longer, gt, template, UPPER) == fdd(pred, gt, template, UPPER)
    # and a shorter prediction scores the first frames of the ground truth
    assert fve(pred[:5], gt) == fve(pred[:5], gt[:5])
    assert clip_metrics(longer, gt, template, LIPS, UPPER).frames == 9


def test_errors_are_clear():
    pred, gt, template = random_pair(10)
    with pytest.raises(MetricError, match="29 vertices per frame but the ground truth has 30"):
        fve(pred[:, :29], gt)
    with pytest.raises(MetricError, match=r"expected \(T, V, 3\) or \(T, V\*3\)"):
        fve(pred[None], gt)
    with pytest.raises(MetricError, match="not \\(T, V\\*3\\)"):
        fve(pred.reshape(len(pred), -1)[:, :-1], gt)
    with pytest.raises(MetricError, match="no frames"):
        fve(pred[:0], gt)
    bad = pred.copy()
    bad[3, 2, 1] = np.nan
    with pytest.raises(MetricError, match="NaN or Inf .* frame 3"):
        lve(bad, gt, LIPS)
    with pytest.raises(MetricError, match="lips: 1 indices out of range"):
        lve(pred, gt, [0, V])
    with pytest.raises(MetricError, match="empty"):
        lip_max(pred, gt, [])
    with pytest.raises(MetricError, match="upper_face: .* out of range"):
        fdd(pred, gt, template, [-1])
    with pytest.raises(MetricError, match="template: expected \\(30, 3\\)"):
        fdd(pred, gt, template[:5], UPPER)
    with pytest.raises(MetricError, match="numeric"):
        fve(np.array([["a"]]), gt)
    with pytest.raises(MetricError, match="DTW cost matrix"):
        dtw(np.zeros((0, 3)))
    assert issubclass(MetricError, MemoryTalkerError)


def test_as_vertex_sequence_checks_count():
    arr = np.zeros((3, 12))
    assert as_vertex_sequence(arr).shape == (3, 4, 3)
    with pytest.raises(MetricError, match="pred.npy: 4 vertices per frame, expected 5"):
        as_vertex_sequence(arr, "pred.npy", num_vertices=5)
