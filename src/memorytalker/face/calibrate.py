"""ARKit weights learned from a corpus: a temporal linear head over the solved weights.

:class:`~memorytalker.face.solve.ArkitSolver` gives, per frame, the weights that best reproduce the predicted
vertices. Where a model's prediction is off in a systematic way (a bilabial closure reached a frame late or
1 mm short, an amplitude a little low), the solve reproduces the error faithfully. On a corpus that stores
the true weights (``memorytalker synth`` writes ``arkit/<clip>.npy``), a head trained on the model's own
predictions can correct it: :class:`ArkitCalibration` maps the solved weights of ``2 k + 1`` frames around
each frame (``k`` = ``context``, edge-padded at a clip's ends) to that frame's 52 weights,

    w'_t = clip( [w_{t-k}, ..., w_{t+k}, 1] A, 0, 1 )      A: ((2k + 1) 52 + 1, 52)

fitted by ridge regression on the training split's predictions, with the ridge chosen on the validation split
(:func:`fit_calibration`; ``memorytalker calibrate-arkit`` runs it and stores the head in the checkpoint).
The head sees only solved weights, so it serves every model kind that animates the face, and any identity
(the ARKit basis is identity-independent). docs/RENDERING.md describes it, docs/RESULTS.md measures it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from memorytalker.errors import CheckpointError, ConfigError
from memorytalker.face.arkit import ARKIT_NAMES, NUM_ARKIT

#: Format tag of a calibration stored in a checkpoint (``checkpoint["arkit_calibration"]``).
CALIBRATION_FORMAT = "memorytalker-arkit-calibration/1"
#: Frames each side the head sees by default (docs/RESULTS.md: +-2 frames at 30 fps, against 0, 1 and 4).
DEFAULT_CONTEXT = 2
#: Ridge weights tried, relative to the mean diagonal of the features' Gram matrix.
RIDGE_GRID = (1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
#: The weights the synthetic corpus drives, reported by the command and scripts/arkit_accuracy.py
#: (left/right pairs by their left member).
REPORTED_WEIGHTS = (
    "jawOpen",
    "mouthClose",
    "mouthLowerDownLeft",
    "mouthUpperUpLeft",
    "mouthFunnel",
    "mouthPucker",
    "mouthStretchLeft",
    "mouthSmileLeft",
    "mouthRollLower",
    "mouthPressLeft",
    "browInnerUp",
    "eyeBlinkLeft",
)


def check_context(context: int) -> None:
    """A :class:`ConfigError` unless ``context`` (frames each side) is >= 0."""
    if context < 0:
        raise ConfigError(f"ARKit calibration: context must be >= 0 frames, got {context}")


def stack_context(weights: np.ndarray, context: int) -> np.ndarray:
    """``(T, 52)`` -> ``(T, (2 context + 1) 52)``: each frame's weights and those of ``context`` frames
    either side (frames before the first and after the last repeat them), oldest first."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != NUM_ARKIT:
        raise ValueError(f"ARKit weights must be (T, {NUM_ARKIT}), got shape {w.shape}")
    if context == 0:
        return w
    if len(w) == 0:
        return np.zeros((0, (2 * context + 1) * NUM_ARKIT))
    padded = np.concatenate([np.repeat(w[:1], context, 0), w, np.repeat(w[-1:], context, 0)])
    return np.concatenate([padded[i : i + len(w)] for i in range(2 * context + 1)], axis=1)


def _features(weights: np.ndarray, context: int) -> np.ndarray:
    x = stack_context(weights, context)
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)


@dataclass
class ArkitCalibration:
    """A fitted head (module docstring).

    Attributes:
        context: frames each side.
        matrix: ``((2 context + 1) 52 + 1, 52)`` float64, the last row the bias.
        ridge: the ridge weight chosen on validation (relative, see :data:`RIDGE_GRID`).
        fitted: how it was fitted (corpus, clips, frames, validation errors), plain values.
    """

    context: int
    matrix: np.ndarray
    ridge: float = 0.0
    fitted: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        rows = (2 * int(self.context) + 1) * NUM_ARKIT + 1
        self.matrix = np.asarray(self.matrix, dtype=np.float64)
        if self.context < 0 or self.matrix.shape != (rows, NUM_ARKIT):
            raise ValueError(
                f"ARKit calibration: context {self.context} needs a ({rows}, {NUM_ARKIT}) matrix, "
                f"got {self.matrix.shape}"
            )
        if not np.all(np.isfinite(self.matrix)):
            raise ValueError("ARKit calibration: the matrix has NaN/Inf entries")

    def apply(self, solved: np.ndarray) -> np.ndarray:
        """``(T, 52)`` weights solved from a whole clip -> ``(T, 52)`` float32 in ``[0, 1]``. The head looks
        ``context`` frames ahead and back, so apply it to the whole clip, not window by window."""
        return np.clip(_features(solved, self.context) @ self.matrix, 0.0, 1.0).astype(np.float32)

    def to_state(self) -> dict[str, Any]:
        """Plain values and a tensor (``torch.load(weights_only=True)``-loadable) for a checkpoint."""
        import torch

        return {
            "format": CALIBRATION_FORMAT,
            "names": list(ARKIT_NAMES),
            "context": int(self.context),
            "ridge": float(self.ridge),
            "matrix": torch.from_numpy(self.matrix.astype(np.float32)),
            "fitted": dict(self.fitted),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any], where: str = "checkpoint") -> ArkitCalibration:
        """Inverse of :meth:`to_state`; a :class:`CheckpointError` naming what is wrong."""
        if not isinstance(state, Mapping) or state.get("format") != CALIBRATION_FORMAT:
            found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
            raise CheckpointError(
                f"{where}: its ARKit calibration has format {found!r}, expected {CALIBRATION_FORMAT!r}"
            )
        if list(state.get("names") or []) != list(ARKIT_NAMES):
            raise CheckpointError(
                f"{where}: its ARKit calibration is for another order of the 52 ARKit names"
            )
        matrix = state.get("matrix")
        matrix = matrix.numpy() if hasattr(matrix, "numpy") else np.asarray(matrix)
        try:
            return cls(
                int(state["context"]), matrix, float(state.get("ridge", 0.0)), dict(state.get("fitted") or {})
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: invalid ARKit calibration: {exc}") from exc


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two 1-D arrays; None when either is constant."""
    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else None


def weight_correlations(pred: np.ndarray, truth: np.ndarray, names: Iterable[str] = REPORTED_WEIGHTS) -> dict:
    """``{name: r}`` pooled over the rows of ``(N, 52)`` predictions and ground truth."""
    return {n: pearson(pred[:, ARKIT_NAMES.index(n)], truth[:, ARKIT_NAMES.index(n)]) for n in names}


Pairs = list[tuple[np.ndarray, np.ndarray]]


def fit_calibration(
    train: Pairs, val: Pairs, context: int = DEFAULT_CONTEXT, ridges: Iterable[float] = RIDGE_GRID
) -> ArkitCalibration:
    """Fit the head on ``train`` and choose its ridge on ``val``.

    Args:
        train, val: per clip, ``(solved, truth)``: the ``(T, 52)`` weights solved from the model's
            prediction and the corpus' weights of the same frames.
        context: frames each side.
        ridges: ridge weights tried (relative to the mean diagonal of the Gram matrix; the bias is not
            penalised).

    Returns:
        The head with the lowest validation mean squared error over all 52 weights; ``fitted`` holds that
        error, the solve's own, and the pooled validation correlation of :data:`REPORTED_WEIGHTS` for both.

    Raises:
        ConfigError: no clips, a negative context, or a head that is no better than the solve on
            validation (nothing is fitted then).
    """
    check_context(context)
    if not train or not val:
        raise ConfigError(
            f"ARKit calibration needs training and validation clips (got {len(train)} and {len(val)})"
        )
    d = (2 * context + 1) * NUM_ARKIT + 1
    gram, cross = np.zeros((d, d)), np.zeros((d, NUM_ARKIT))
    frames = 0
    for solved, truth in train:
        x = _features(solved, context)
        gram += x.T @ x
        cross += x.T @ np.asarray(truth, dtype=np.float64)
        frames += len(x)
    scale = float(np.mean(np.diag(gram)[:-1]))
    val_solved = np.concatenate([s for s, _ in val]).astype(np.float64)
    val_truth = np.concatenate([t for _, t in val]).astype(np.float64)
    val_x = [_features(s, context) for s, _ in val]
    best: tuple[float, float, np.ndarray] | None = None
    for ridge in ridges:
        penalty = np.full(d, float(ridge) * scale)
        penalty[-1] = 0.0
        matrix = np.linalg.solve(gram + np.diag(penalty), cross)
        pred = np.clip(np.concatenate([x @ matrix for x in val_x]), 0.0, 1.0)
        mse = float(np.mean((pred - val_truth) ** 2))
        if best is None or mse < best[0]:
            best = (mse, float(ridge), matrix)
    mse, ridge, matrix = best
    solve_mse = float(np.mean((val_solved - val_truth) ** 2))
    if not mse < solve_mse:
        raise ConfigError(
            f"ARKit calibration: the head's validation error ({mse:.3g}) is no lower than the solve's "
            f"({solve_mse:.3g}); nothing fitted"
        )
    calibration = ArkitCalibration(context, matrix, ridge)
    pred = np.concatenate([calibration.apply(s) for s, _ in val])
    calibration.fitted = {
        "train_clips": len(train),
        "train_frames": frames,
        "val_clips": len(val),
        "val_frames": len(val_truth),
        "val_mse": mse,
        "val_mse_solve": solve_mse,
        "val_r": weight_correlations(pred, val_truth),
        "val_r_solve": weight_correlations(val_solved, val_truth),
    }
    return calibration


__all__ = [
    "CALIBRATION_FORMAT",
    "DEFAULT_CONTEXT",
    "REPORTED_WEIGHTS",
    "RIDGE_GRID",
    "ArkitCalibration",
    "check_context",
    "fit_calibration",
    "pearson",
    "stack_context",
    "weight_correlations",
]
