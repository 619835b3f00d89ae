"""Articulation on the project's face: ARKit weights per frame from the articulator tracks (docs/DATA.md).

The procedural head is driven by hand-built fields (:mod:`.articulation`); the project's face
(:class:`~memorytalker.face.FaceModel`, ICT-FaceKit) is driven through its 52 ARKit-named shapes, and each
clip keeps those weights ``(T, 52)`` as ground truth beside the vertices.

Mapping (``J`` = jaw opening in radians times the speaker's ``amplitude``; ``seal = 1 - max(close,
0.8 tuck)``: how far the lips may part; ``side`` = ``1 ± asymmetry / 2`` for the left/right shapes):

=====================================  =============================================================
ARKit shape                            weight
=====================================  =============================================================
``jawOpen``                            ``2.2 J``
``mouthLowerDown{L,R}``                ``1.6 J seal lip_amplitude side``
``mouthUpperUp{L,R}``                  ``(1.0 J seal + 0.15 tuck) lip_amplitude side``
``mouthPucker`` / ``mouthFunnel``      ``0.7 R`` / ``0.45 R seal`` (``R`` = rounding track x style)
``mouthStretch{L,R}`` / ``Smile``      ``0.35 S side`` / ``0.2 S side`` (``S`` = spreading track x style)
``mouthRollLower``                     ``0.55 tuck lip_amplitude`` (f, v: lower lip under the teeth)
``mouthPress{L,R}``, ``cheekPuff``     ``0.45 close side``, ``0.12 close``
``mouthClose``                         solved per frame so that the inner lip gap is exact (below)
``browInnerUp`` / ``browOuterUp{L,R}`` ``0.45 brow`` / ``0.35 brow side`` (prosody, :mod:`.prosody`)
``eyeBlink{L,R}``                      ``blink``
=====================================  =============================================================

**Lip closure is exact.** The inner lip gap (:func:`memorytalker.topology.lips.inner_lip_gap`) is linear
in the vertices and the face is linear in its weights, so ``gap = g0 + sum_k w_k s_k`` with the
speaker's neutral gap ``g0`` and one sensitivity ``s_k`` per shape (measured on the speaker's face by
unit steps, :class:`FaceRig`). ``mouthClose`` is chosen per frame so that the gap becomes
``(1 - close) g_free + close * SEAL_GAP``: during every p/b/m (``close = 1``) the lips meet and press
``SEAL_GAP`` (0.4 mm) together whatever the jaw does; elsewhere they part as the other shapes make them.
In pauses the face returns to the speaker's own neutral mouth (ICT's neutral rests ~0.8 mm open).
All weights are clipped to ``[0, 1]``, as ARKit's are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memorytalker.face.arkit import ARKIT_NAMES, NUM_ARKIT
from memorytalker.topology.lips import inner_lip_gap

#: Signed inner lip gap (m) the lips are pressed to during a bilabial (negative = pressed together).
SEAL_GAP = -0.0004
#: Identity modes a speaker's face is drawn from, and the standard deviation of their coefficients.
IDENTITY_MODES = 40
IDENTITY_SIGMA = 0.8

_IDX = {n: i for i, n in enumerate(ARKIT_NAMES)}


def _sided(name: str) -> tuple[int, int]:
    return _IDX[name + "Left"], _IDX[name + "Right"]


@dataclass(frozen=True)
class FaceRig:
    """One speaker on the project's face.

    Attributes:
        identity: ``(I',)`` identity coefficients (the first ``I'`` modes of the face model).
        template: ``(V, 3)`` float32 neutral of this speaker's animated region (metres).
        basis: ``(52, V, 3)`` float32 ARKit deltas of the animated region.
        gap_neutral: the neutral's signed inner lip gap (m).
        gap_sensitivity: ``(52,)`` float64 change of that gap per unit of each ARKit weight (m).
        asymmetry: left/right imbalance of the paired shapes (left ``1 + a/2``, right ``1 - a/2``).
    """

    identity: np.ndarray
    template: np.ndarray
    basis: np.ndarray
    gap_neutral: float
    gap_sensitivity: np.ndarray
    asymmetry: float


def draw_identity(rng: np.random.Generator, num_modes: int = IDENTITY_MODES) -> np.ndarray:
    """``(num_modes,)`` float32 identity coefficients ``N(0, IDENTITY_SIGMA^2)``."""
    return (IDENTITY_SIGMA * rng.standard_normal(num_modes)).astype(np.float32)


def face_rig(face, identity: np.ndarray | None, asymmetry: float = 0.0) -> FaceRig:
    """The :class:`FaceRig` of a speaker with ``identity`` coefficients on ``face`` (a FaceModel)."""
    v = face.num_animated
    template = np.ascontiguousarray(face.identity_neutral(identity)[:v], dtype=np.float32)
    basis = np.ascontiguousarray(face.arkit_basis[:, :v], dtype=np.float32)
    g0 = float(inner_lip_gap(template[None], face.topology)[0])
    steps = template[None].astype(np.float64) + basis.astype(np.float64)
    sens = inner_lip_gap(steps, face.topology) - g0
    ident = np.zeros(0, np.float32) if identity is None else np.asarray(identity, np.float32).ravel()
    return FaceRig(ident, template, basis, g0, np.asarray(sens, np.float64), float(asymmetry))


def arkit_weights(
    rig: FaceRig,
    tracks: np.ndarray,
    brow: np.ndarray,
    blink: np.ndarray,
    amplitude: float = 1.0,
    lip_amplitude: float = 1.0,
    rounding: float = 1.0,
    spreading: float = 1.0,
) -> np.ndarray:
    """ARKit weights ``(T, 52)`` float64 in ``[0, 1]`` from articulator tracks ``(T, 5)`` (jaw, close,
    round, spread, tuck: :func:`~memorytalker.synth.articulation.articulator_tracks`) and the ``(T,)``
    brow and blink curves, with the speaker's style factors (module docstring)."""
    t = tracks.shape[0]
    if tracks.ndim != 2 or tracks.shape[1] != 5 or brow.shape != (t,) or blink.shape != (t,):
        raise ValueError(f"tracks must be (T, 5) with (T,) brow and blink, got {tracks.shape}, {brow.shape}")
    jaw = np.clip(tracks[:, 0], 0.0, None) * amplitude
    close = np.clip(tracks[:, 1], 0.0, 1.0)
    tuck = np.clip(tracks[:, 4], 0.0, 1.0)
    seal = 1.0 - np.maximum(close, 0.8 * tuck)
    rnd = np.clip(tracks[:, 2], 0.0, None) * rounding * lip_amplitude
    spr = np.clip(tracks[:, 3], 0.0, None) * spreading * lip_amplitude
    sides = (1.0 + 0.5 * rig.asymmetry, 1.0 - 0.5 * rig.asymmetry)
    w = np.zeros((t, NUM_ARKIT))

    def both(name: str, value: np.ndarray) -> None:
        for j, s in zip(_sided(name), sides, strict=True):
            w[:, j] = value * s

    w[:, _IDX["jawOpen"]] = 2.2 * jaw
    both("mouthLowerDown", 1.6 * jaw * seal * lip_amplitude)
    both("mouthUpperUp", (1.0 * jaw * seal + 0.15 * tuck) * lip_amplitude)
    w[:, _IDX["mouthPucker"]] = 0.7 * rnd
    w[:, _IDX["mouthFunnel"]] = 0.45 * rnd * seal
    both("mouthStretch", 0.35 * spr)
    both("mouthSmile", 0.2 * spr)
    w[:, _IDX["mouthRollLower"]] = 0.55 * tuck * lip_amplitude
    both("mouthPress", 0.45 * close)
    w[:, _IDX["cheekPuff"]] = 0.12 * close
    w[:, _IDX["browInnerUp"]] = 0.45 * brow
    both("browOuterUp", 0.35 * brow)
    both("eyeBlink", blink)
    w = np.clip(w, 0.0, 1.0)
    # mouthClose: the gap the other shapes leave, pulled to SEAL_GAP in proportion to the closure
    c = _IDX["mouthClose"]
    s_close = rig.gap_sensitivity[c]
    if not s_close < 0:
        raise ValueError(f"mouthClose does not close this face's lips (gap change {s_close:+.4f} m per unit)")
    g_free = rig.gap_neutral + _row_dot(w, rig.gap_sensitivity)
    w[:, c] = np.clip(close * (SEAL_GAP - g_free) / s_close, 0.0, 1.0)
    return w


def _row_dot(w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``w @ s`` accumulated column by column (the same bits on every machine: no BLAS reduction)."""
    out = np.zeros(w.shape[0])
    for k in range(w.shape[1]):
        out += w[:, k] * s[k]
    return out


def pose(rig: FaceRig, weights: np.ndarray) -> np.ndarray:
    """``(T, V, 3)`` float32 vertices = template + sum_k weights[:, k] * basis_k (float64, no BLAS)."""
    if weights.ndim != 2 or weights.shape[1] != NUM_ARKIT:
        raise ValueError(f"ARKit weights must be (T, {NUM_ARKIT}), got {weights.shape}")
    out = np.broadcast_to(rig.template.astype(np.float64), (weights.shape[0], *rig.template.shape)).copy()
    for k in np.flatnonzero(np.any(weights != 0, axis=0)):
        out += weights[:, k, None, None] * rig.basis[k].astype(np.float64)[None]
    return out.astype(np.float32)
