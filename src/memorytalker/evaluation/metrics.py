"""The five per-clip metrics: FVE, LVE, Lip-max, FDD and LDTW (docs/METRICS.md has every formula).

All functions take vertex sequences ``(T, V, 3)`` or ``(T, V*3)`` (numpy arrays or torch tensors, any
float dtype; computed in float64) and return a Python ``float`` in the data's own units: metres (m, m²)
for VOCASET and the synthetic corpus, millimetres for BIWI. No display scaling happens here; that is
:mod:`memorytalker.evaluation`'s report layer.

Notation: ``P`` prediction, ``G`` ground truth, ``τ`` the subject's neutral template ``(V, 3)``,
``L`` lip vertex indices, ``U`` upper-face vertex indices (both from a
:class:`~memorytalker.topology.FaceTopology`).

* :func:`fve` - mean over frames and all vertices of ``‖P_tv − G_tv‖₂``.
* :func:`lve` - mean over frames of ``max_{v∈L} ‖P_tv − G_tv‖₂²`` (squared, FaceFormer/CodeTalker).
* :func:`lip_max` - mean over frames of ``max_{v∈L} ‖P_tv − G_tv‖₂`` (not squared, Imitator).
* :func:`fdd` - ``mean_{v∈U} std_t ‖G_tv − τ_v‖² − mean_{v∈U} std_t ‖P_tv − τ_v‖²`` (signed, ddof 0).
* :func:`ldtw` - DTW over the lip sequences with frame cost ``mean_{v∈L} ‖P_iv − G_jv‖₂``, divided by
  the warping-path length.

FVE, LVE, Lip-max and FDD truncate both sequences to the shorter length (``T = min(T_P, T_G)``). LDTW uses
the full sequences: aligning sequences of different lengths is what DTW is for.

The DTW (:func:`dtw`) and its cost matrix (:func:`lip_cost_matrix`) are compiled with numba.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numba import njit

from memorytalker.errors import MemoryTalkerError

if TYPE_CHECKING:
    import torch

    ArrayLike = np.ndarray | torch.Tensor
else:
    ArrayLike = Any

__all__ = [
    "ClipMetrics",
    "MetricError",
    "as_vertex_sequence",
    "clip_metrics",
    "dtw",
    "fdd",
    "fve",
    "ldtw",
    "lip_cost_matrix",
    "lip_max",
    "lve",
]


class MetricError(MemoryTalkerError, ValueError):
    """Arrays or index sets that the metrics cannot score (wrong shape, vertex count, NaN, bad indices)."""


# ---------------------------------------------------------------------------------------------- inputs
def _to_numpy(x: ArrayLike, what: str) -> np.ndarray:
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor (torch is not imported here)
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float8_e4m3fn", "torch.float8_e5m2"):
            x = x.float()  # numpy has no such dtypes
        x = x.numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:
        raise MetricError(f"{what}: not an array ({type(x).__name__}): {exc}") from exc
    if arr.dtype.kind not in "fiu":
        raise MetricError(f"{what}: expected a numeric array, got dtype {arr.dtype}")
    return arr


def as_vertex_sequence(x: ArrayLike, what: str = "vertices", num_vertices: int | None = None) -> np.ndarray:
    """Return ``x`` as a finite float64 ``(T, V, 3)`` array.

    Args:
        x: ``(T, V, 3)`` or ``(T, V*3)`` numpy array or torch tensor.
        what: name used in error messages (``"prediction"``, a file name, ...).
        num_vertices: expected ``V`` (checked when given).

    Raises:
        MetricError: wrong number of dimensions, a last axis that is not 3 / a multiple of 3, no frames,
            a ``V`` other than ``num_vertices``, or NaN/Inf values.
    """
    arr = _to_numpy(x, what)
    if arr.ndim == 2:
        if arr.shape[1] == 0 or arr.shape[1] % 3:
            raise MetricError(f"{what}: shape {arr.shape} is not (T, V*3): the last axis must be 3*V")
        arr = arr.reshape(arr.shape[0], -1, 3)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[1] == 0:
        raise MetricError(f"{what}: expected (T, V, 3) or (T, V*3) vertices, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise MetricError(f"{what}: the sequence has no frames")
    if num_vertices is not None and arr.shape[1] != num_vertices:
        raise MetricError(f"{what}: {arr.shape[1]} vertices per frame, expected {num_vertices}")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.argmax(~np.isfinite(arr).all(axis=(1, 2))))
        raise MetricError(f"{what}: NaN or Inf vertex coordinates (first in frame {bad})")
    return arr


def _as_template(x: ArrayLike, num_vertices: int, what: str = "template") -> np.ndarray:
    arr = _to_numpy(x, what)
    if arr.ndim == 1 and arr.size == num_vertices * 3:
        arr = arr.reshape(num_vertices, 3)
    if arr.shape != (num_vertices, 3):
        raise MetricError(
            f"{what}: expected ({num_vertices}, 3) or ({num_vertices * 3},) for {num_vertices} vertices, "
            f"got shape {arr.shape}"
        )
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise MetricError(f"{what}: NaN or Inf coordinates")
    return arr


def _as_indices(idx: ArrayLike, num_vertices: int, what: str) -> np.ndarray:
    arr = _to_numpy(idx, what).reshape(-1)
    if arr.size == 0:
        raise MetricError(f"{what}: the vertex index set is empty")
    if arr.dtype.kind == "f":
        if not np.all(arr == np.round(arr)):
            raise MetricError(f"{what}: vertex indices must be integers")
    arr = arr.astype(np.int64)
    bad = arr[(arr < 0) | (arr >= num_vertices)]
    if bad.size:
        raise MetricError(
            f"{what}: {bad.size} indices out of range [0, {num_vertices}) (e.g. {bad[:5].tolist()}); "
            "is the index set for another mesh?"
        )
    return arr


def _pair(pred: ArrayLike, gt: ArrayLike, truncate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    g = as_vertex_sequence(gt, "ground truth")
    p = as_vertex_sequence(pred, "prediction")
    if p.shape[1] != g.shape[1]:
        raise MetricError(
            f"prediction has {p.shape[1]} vertices per frame but the ground truth has {g.shape[1]}"
        )
    if truncate:
        t = min(p.shape[0], g.shape[0])
        p, g = p[:t], g[:t]
    return p, g


def _sq_dist(p: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``(T, V)`` squared L2 distance per frame and vertex of two ``(T, V, 3)`` arrays."""
    d = p - g
    return np.einsum("tvc,tvc->tv", d, d)


# ---------------------------------------------------------------------------------------------- metrics
def fve(pred: ArrayLike, gt: ArrayLike) -> float:
    """Face vertex error: ``mean_{t,v} ‖P_tv − G_tv‖₂`` over all ``V`` vertices (units of the data).

    Args:
        pred, gt: ``(T, V, 3)`` or ``(T, V*3)``; truncated to the shorter ``T``.
    """
    p, g = _pair(pred, gt)
    return float(np.sqrt(_sq_dist(p, g)).mean())


def lve(pred: ArrayLike, gt: ArrayLike, lips: ArrayLike) -> float:
    """Lip vertex error: ``mean_t max_{v∈L} ‖P_tv − G_tv‖₂²`` (squared; units²).

    Args:
        pred, gt: ``(T, V, 3)`` or ``(T, V*3)``; truncated to the shorter ``T``.
        lips: lip vertex indices ``L`` (duplicates do not change a max).
    """
    p, g = _pair(pred, gt)
    idx = _as_indices(lips, p.shape[1], "lips")
    return float(_sq_dist(p[:, idx], g[:, idx]).max(axis=1).mean())


def lip_max(pred: ArrayLike, gt: ArrayLike, lips: ArrayLike) -> float:
    """Lip-max: ``mean_t max_{v∈L} ‖P_tv − G_tv‖₂`` (not squared; units of the data).

    Args:
        pred, gt: ``(T, V, 3)`` or ``(T, V*3)``; truncated to the shorter ``T``.
        lips: lip vertex indices ``L``.
    """
    p, g = _pair(pred, gt)
    idx = _as_indices(lips, p.shape[1], "lips")
    return float(np.sqrt(_sq_dist(p[:, idx], g[:, idx]).max(axis=1)).mean())


def _dynamics(x: np.ndarray, template: np.ndarray, upper: np.ndarray) -> float:
    """``mean_{v∈U} std_t ‖X_tv − τ_v‖²`` (population std, ddof 0)."""
    m = x[:, upper] - template[upper][None]
    return float(np.einsum("tvc,tvc->tv", m, m).std(axis=0).mean())


def fdd(pred: ArrayLike, gt: ArrayLike, template: ArrayLike, upper: ArrayLike) -> float:
    """Upper-face dynamics deviation, signed, ground truth minus prediction (units²).

    ``FDD = mean_{v∈U} std_t ‖G_tv − τ_v‖₂² − mean_{v∈U} std_t ‖P_tv − τ_v‖₂²`` with NumPy's population
    std (``ddof=0``). Positive: the prediction moves the upper face less than the ground truth.

    Args:
        pred, gt: ``(T, V, 3)`` or ``(T, V*3)``; truncated to the shorter ``T``.
        template: the subject's neutral mesh ``τ`` ``(V, 3)`` (or ``(V*3,)``).
        upper: upper-face vertex indices ``U``.
    """
    p, g = _pair(pred, gt)
    tpl = _as_template(template, p.shape[1])
    idx = _as_indices(upper, p.shape[1], "upper_face")
    return _dynamics(g, tpl, idx) - _dynamics(p, tpl, idx)


@njit(cache=True)
def _lip_cost_matrix(p: np.ndarray, g: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    tp, tg, nl = p.shape[0], g.shape[0], p.shape[1]
    out = np.empty((tp, tg), dtype=np.float64)
    for i in range(tp):
        for j in range(tg):
            acc = 0.0
            for v in range(nl):
                dx = p[i, v, 0] - g[j, v, 0]
                dy = p[i, v, 1] - g[j, v, 1]
                dz = p[i, v, 2] - g[j, v, 2]
                acc += math.sqrt(dx * dx + dy * dy + dz * dz)
            out[i, j] = acc / nl
    return out


@njit(cache=True)
def _dtw(cost: np.ndarray) -> tuple[float, np.ndarray]:  # pragma: no cover - compiled
    n, m = cost.shape
    acc = np.empty((n, m), dtype=np.float64)
    acc[0, 0] = cost[0, 0]
    for i in range(1, n):
        acc[i, 0] = acc[i - 1, 0] + cost[i, 0]
    for j in range(1, m):
        acc[0, j] = acc[0, j - 1] + cost[0, j]
    for i in range(1, n):
        for j in range(1, m):
            best = acc[i - 1, j - 1]
            if acc[i - 1, j] < best:
                best = acc[i - 1, j]
            if acc[i, j - 1] < best:
                best = acc[i, j - 1]
            acc[i, j] = cost[i, j] + best
    # Backtrack from (n-1, m-1); ties prefer the diagonal, then (i-1, j), then (i, j-1).
    path = np.empty((n + m - 1, 2), dtype=np.int64)
    i, j, k = n - 1, m - 1, 0
    path[0, 0], path[0, 1] = i, j
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            diag, up, left = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
            if diag <= up and diag <= left:
                i -= 1
                j -= 1
            elif up <= left:
                i -= 1
            else:
                j -= 1
        k += 1
        path[k, 0], path[k, 1] = i, j
    return acc[n - 1, m - 1], path[k::-1].copy()


def lip_cost_matrix(pred: ArrayLike, gt: ArrayLike, lips: ArrayLike) -> np.ndarray:
    """``(T_P, T_G)`` DTW frame costs ``c(i, j) = mean_{v∈L} ‖P_iv − G_jv‖₂`` (full sequences)."""
    p, g = _pair(pred, gt, truncate=False)
    idx = _as_indices(lips, p.shape[1], "lips")
    return _lip_cost_matrix(np.ascontiguousarray(p[:, idx]), np.ascontiguousarray(g[:, idx]))


def dtw(cost: ArrayLike) -> tuple[float, np.ndarray]:
    """Classic DTW over a ``(N, M)`` cost matrix: steps (1,1), (1,0), (0,1), no window, unit weights.

    ``D[i, j] = c(i, j) + min(D[i-1, j-1], D[i-1, j], D[i, j-1])``. The warping path is recovered by
    backtracking from ``(N-1, M-1)`` to ``(0, 0)``, each step moving to the predecessor with the smallest
    ``D``; ties prefer the diagonal, then ``(i-1, j)``, then ``(i, j-1)``.

    Returns:
        ``(D[N-1, M-1], path)``: the accumulated cost and the ``(K, 2)`` int64 path of ``(i, j)`` pairs
        from ``(0, 0)`` to ``(N-1, M-1)``, ``max(N, M) <= K <= N + M - 1``.
    """
    c = _to_numpy(cost, "DTW cost matrix")
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise MetricError(f"DTW cost matrix: expected a non-empty (N, M) array, got shape {c.shape}")
    c = np.ascontiguousarray(c, dtype=np.float64)
    if not np.all(np.isfinite(c)):
        raise MetricError("DTW cost matrix: NaN or Inf costs")
    total, path = _dtw(c)
    return float(total), path


def ldtw(pred: ArrayLike, gt: ArrayLike, lips: ArrayLike) -> float:
    """Lip DTW: accumulated DTW cost over the lip sequences divided by the warping-path length (units).

    Frame cost ``c(i, j) = mean_{v∈L} ‖P_iv − G_jv‖₂``; :func:`dtw` (steps (1,1), (1,0), (0,1), no window);
    score ``D[T_P, T_G] / K`` with ``K`` the number of cells on the backtracked path. The full sequences are
    aligned (no truncation): ``T_P`` and ``T_G`` may differ.

    Args:
        pred: ``(T_P, V, 3)`` or ``(T_P, V*3)``. gt: ``(T_G, V, 3)`` or ``(T_G, V*3)``.
        lips: lip vertex indices ``L``.
    """
    total, path = dtw(lip_cost_matrix(pred, gt, lips))
    return total / len(path)


# ---------------------------------------------------------------------------------------------- all five
@dataclass(frozen=True)
class ClipMetrics:
    """The five metrics of one clip in the data's units, plus the frame counts used.

    ``frames`` = ``min(pred_frames, gt_frames)``: the frames FVE/LVE/Lip-max/FDD were computed on (and the
    weight of this clip when pooling over frames). LDTW used all ``pred_frames`` x ``gt_frames``.
    """

    fve: float
    lve: float
    lip_max: float
    fdd: float
    ldtw: float
    frames: int
    pred_frames: int
    gt_frames: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def clip_metrics(
    pred: ArrayLike, gt: ArrayLike, template: ArrayLike, lips: ArrayLike, upper: ArrayLike
) -> ClipMetrics:
    """All five metrics of one clip, validating and converting the arrays once.

    Args:
        pred: ``(T_P, V, 3)`` or ``(T_P, V*3)``. gt: ``(T_G, V, 3)`` or ``(T_G, V*3)``.
        template: ``(V, 3)`` neutral mesh of the clip's subject.
        lips, upper: lip and upper-face vertex indices.

    Returns:
        :class:`ClipMetrics`, identical to calling :func:`fve`, :func:`lve`, :func:`lip_max`, :func:`fdd`
        and :func:`ldtw` one by one.
    """
    p_full, g_full = _pair(pred, gt, truncate=False)
    v = p_full.shape[1]
    lip_idx = _as_indices(lips, v, "lips")
    up_idx = _as_indices(upper, v, "upper_face")
    tpl = _as_template(template, v)
    t = min(p_full.shape[0], g_full.shape[0])
    p, g = p_full[:t], g_full[:t]
    sq = _sq_dist(p, g)
    lip_sq_max = sq[:, lip_idx].max(axis=1)
    cost = _lip_cost_matrix(
        np.ascontiguousarray(p_full[:, lip_idx]), np.ascontiguousarray(g_full[:, lip_idx])
    )
    total, path = _dtw(cost)
    return ClipMetrics(
        fve=float(np.sqrt(sq).mean()),
        lve=float(lip_sq_max.mean()),
        lip_max=float(np.sqrt(lip_sq_max).mean()),
        fdd=_dynamics(g, tpl, up_idx) - _dynamics(p, tpl, up_idx),
        ldtw=float(total) / len(path),
        frames=int(t),
        pred_frames=int(p_full.shape[0]),
        gt_frames=int(g_full.shape[0]),
    )
