"""Lip-sync measures beyond LVE: closures at P/B/M, the gap at rest, lip amplitude, MTM, speech-lip correlation.

Every measure reads the per-frame **inner lip gap** ``g`` ``(T,)`` of
:func:`memorytalker.topology.inner_lip_gap` (signed along the face's up axis, 0 = lips touch, < 0 =
pressed, in the data's units: metres for VOCASET and the synthetic corpus, millimetres for BIWI) and, where
timing matters, the clip's phone timings (the project's alignment format, ``phonemes/<clip>.json``:
``[{"phone": ARPAbet or "sil", "start": s, "end": s}, ...]``). docs/METRICS.md § Lip-sync measures has
every formula.

**Frames and time.** Mesh frame ``t`` is the face at the instant ``t / fps`` (as the synthetic corpus
generates it and a capture samples it), i.e. it stands for ``[(t − ½)/fps, (t + ½)/fps)``. The frames of a
time interval ``[start, end)`` are those whose instant lies in it: ``ceil(start·fps) ≤ t ≤
ceil(end·fps) − 1`` (times within 1e-6 frame of an instant count as on it). A phone too short to contain
a frame instant is represented by the frame nearest its midpoint, ``round(fps·(start + end)/2)``.

* :func:`closure_rate` - the fraction of P/B/M phones whose minimum gap over the phone's frames ±1 frame
  is ``<=`` a threshold (default 1 mm, converted with the data's declared units, never guessed), with the
  per-phone minima.
* :func:`rest_gap` - the median gap over the frames of pauses (``"sil"`` phones and gaps between phones,
  merged) of at least 0.2 s; None when the clip has no such pause.
* :func:`lip_amplitude_ratio` - RMS of the gap around its clip mean, prediction / ground truth.
* :func:`mtm` - Mean Temporal Misalignment (kaist-ami/Perceptual-3D-Talking-Head, CVPR 2025,
  ``evaluation/evaluate_MTM.py``), in frames and milliseconds.
* :func:`speech_lip_correlation` - Pearson correlation between the speech RMS envelope at the mesh frame
  rate and the gap.
* :func:`lipsync_clip` -> :class:`LipSyncResult` (everything for one clip, prediction and ground truth);
  :func:`reduce_lipsync` -> :class:`LipSyncSummary` (pooled over clips).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.data.phonemes import SILENCE, normalize_phone
from memorytalker.evaluation.metrics import ArrayLike, MetricError, _to_numpy, as_vertex_sequence, dtw
from memorytalker.topology import FaceTopology, inner_lip_gap

__all__ = [
    "BILABIALS",
    "METRES_PER_UNIT",
    "Closures",
    "LipSyncConfig",
    "LipSyncResult",
    "LipSyncSummary",
    "MTMResult",
    "Phone",
    "as_phones",
    "closure_rate",
    "interval_frames",
    "length_in_units",
    "lip_amplitude",
    "lip_amplitude_ratio",
    "lipsync_clip",
    "lipsync_units",
    "mtm",
    "pause_frames",
    "pause_intervals",
    "reduce_lipsync",
    "rest_gap",
    "speech_envelope",
    "speech_lip_correlation",
]

#: The bilabial phones (ARPAbet): the lips must meet.
BILABIALS: tuple[str, ...] = ("P", "B", "M")
#: Length units a threshold given in millimetres can be converted to (the dataset's declared ``units``).
METRES_PER_UNIT: dict[str, float] = {"m": 1.0, "cm": 1e-2, "mm": 1e-3}
#: Version of the lip-sync definitions (docs/METRICS.md); bump when a formula or reduction changes.
LIPSYNC_DEFINITIONS = "memorytalker-lipsync/1"
#: A time within this many frames of a frame instant counts as on it (float rounding of ``t * fps``).
_FRAME_EPS = 1e-6
#: Two phone boundaries closer than this (seconds) touch: no gap between them.
_TIME_EPS = 1e-6


# ---------------------------------------------------------------------------------------------- inputs
def length_in_units(mm: float, units: str) -> float:
    """``mm`` millimetres in the data's ``units`` (``"m"``, ``"cm"`` or ``"mm"``: the dataset's declared
    units, never guessed from values).

    Raises:
        MetricError: any other units string (give the threshold in the data's units yourself).
    """
    if units not in METRES_PER_UNIT:
        raise MetricError(
            f"cannot convert millimetres to vertex units {units!r}: known units are "
            f"{', '.join(METRES_PER_UNIT)}; give the threshold in the data's units instead"
        )
    return float(mm) * 1e-3 / METRES_PER_UNIT[units]


def _as_gap(x: ArrayLike, what: str) -> np.ndarray:
    arr = _to_numpy(x, what)
    if arr.ndim != 1 or arr.shape[0] == 0:
        raise MetricError(f"{what}: expected a non-empty (T,) lip-gap sequence, got shape {arr.shape}")
    arr = np.asarray(arr, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise MetricError(f"{what}: NaN or Inf lip gap (first in frame {int(np.argmax(~np.isfinite(arr)))})")
    return arr


def _check_fps(fps: float) -> float:
    if isinstance(fps, bool) or not (isinstance(fps, numbers.Real) and math.isfinite(fps) and fps > 0):
        raise MetricError(f"fps must be a positive number, got {fps!r}")
    return float(fps)


@dataclass(frozen=True)
class Phone:
    """One aligned phone: ARPAbet without stress (or ``"sil"``), ``start`` <= ``end`` in seconds."""

    phone: str
    start: float
    end: float


def as_phones(phones: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> list[Phone]:
    """Validated :class:`Phone` s sorted by start, from ``[{"phone", "start", "end"}, ...]`` or a whole
    alignment ``{"phonemes": [...]}`` (:func:`memorytalker.data.layout.read_phonemes`).

    Phone names go through :func:`memorytalker.data.phonemes.normalize_phone` (``"m"`` -> ``"M"``,
    ``"AH0"`` -> ``"AH"``, ``"pau"``/``"sp"``/``"SIL"`` -> ``"sil"``).

    Raises:
        MetricError: missing keys, non-finite or negative times, ``end < start``, unknown phones.
    """
    if isinstance(phones, Mapping):
        if "phonemes" not in phones:
            raise MetricError("phone timings: a mapping must hold the alignment under 'phonemes'")
        phones = phones["phonemes"]
    if isinstance(phones, str | bytes) or not isinstance(phones, Sequence):
        raise MetricError(
            f"phone timings: expected a list of {{'phone', 'start', 'end'}}, got {type(phones)}"
        )
    out = []
    for i, p in enumerate(phones):
        if not (isinstance(p, Mapping) and {"phone", "start", "end"} <= set(p)):
            raise MetricError(f"phone timings: phonemes[{i}] needs 'phone', 'start' and 'end'")
        try:
            start, end = float(p["start"]), float(p["end"])
        except (TypeError, ValueError) as exc:
            raise MetricError(f"phone timings: phonemes[{i}] has a non-numeric time: {exc}") from None
        if not (math.isfinite(start) and math.isfinite(end) and end >= start >= 0):
            raise MetricError(
                f"phone timings: phonemes[{i}] ({p['phone']!r}) needs finite 0 <= start <= end, "
                f"got start={start}, end={end}"
            )
        try:
            name = normalize_phone(str(p["phone"]))
        except ValueError as exc:
            raise MetricError(f"phone timings: phonemes[{i}]: {exc}") from None
        out.append(Phone(name, start, end))
    return sorted(out, key=lambda q: q.start)


def interval_frames(start: float, end: float, fps: float) -> tuple[int, int]:
    """``(first, last)`` frame (inclusive, not clipped to a clip) of the interval ``[start, end)``.

    Frame ``t`` is the face at instant ``t / fps``; the interval's frames are those whose instant lies in
    ``[start, end)``: ``first = ceil(start·fps)``, ``last = ceil(end·fps) − 1`` (within 1e-6 frame).
    An interval containing no frame instant gets the frame nearest its midpoint,
    ``floor(fps·(start + end)/2 + ½)``.
    """
    fps = _check_fps(fps)
    first = math.ceil(start * fps - _FRAME_EPS)
    last = math.ceil(end * fps - _FRAME_EPS) - 1
    if last < first:
        first = last = math.floor(0.5 * (start + end) * fps + 0.5)
    return first, last


# ---------------------------------------------------------------------------------------------- closures
@dataclass(frozen=True, eq=False)
class Closures:
    """Bilabial closures of one gap sequence.

    ``minima`` ``(N,)``: the minimum gap of each of the ``N`` P/B/M phones (phone order) over its frames
    ±``tolerance`` frames, data units; ``closed``: how many of them are ``<= threshold``.
    """

    threshold: float
    tolerance: int
    minima: np.ndarray
    closed: int

    @property
    def count(self) -> int:
        return int(self.minima.shape[0])

    @property
    def rate(self) -> float | None:
        """``closed / count``; None for a clip without P/B/M."""
        return self.closed / self.count if self.count else None

    @property
    def mean_min(self) -> float | None:
        """Mean of the per-phone minima; None for a clip without P/B/M."""
        return float(self.minima.mean()) if self.count else None


def closure_rate(
    gap: ArrayLike,
    phones: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    fps: float,
    threshold: float,
    tolerance: int = 1,
) -> Closures:
    """Closures at P/B/M: the minimum gap over each bilabial phone's frames ±``tolerance`` frames.

    Args:
        gap: ``(T,)`` inner lip gap, data units.
        phones: the clip's phone timings (seconds).
        fps: mesh frame rate of ``gap``.
        threshold: a phone is closed when its minimum is ``<= threshold``, **in the data's units** (1 mm is
            ``length_in_units(1.0, units)``: 0.001 for metres, 1.0 for millimetres).
        tolerance: frames added on each side of the phone's frames (:func:`interval_frames`).

    Raises:
        MetricError: a bilabial whose frames ±``tolerance`` all lie outside the clip's ``T`` frames (the
            timings belong to a longer clip, or ``fps`` is wrong).
    """
    g = _as_gap(gap, "lip gap")
    fps = _check_fps(fps)
    if isinstance(tolerance, bool) or not (isinstance(tolerance, numbers.Integral) and tolerance >= 0):
        raise MetricError(f"closure tolerance must be a non-negative number of frames, got {tolerance!r}")
    if not math.isfinite(threshold):
        raise MetricError(f"closure threshold must be finite, got {threshold!r}")
    n = g.shape[0]
    minima = []
    for p in as_phones(phones):
        if p.phone not in BILABIALS:
            continue
        first, last = interval_frames(p.start, p.end, fps)
        lo, hi = max(first - tolerance, 0), min(last + tolerance, n - 1)
        if lo > hi:
            raise MetricError(
                f"bilabial {p.phone!r} at {p.start:.3f}-{p.end:.3f} s has no frame within the clip's {n} frames "
                f"at {fps:g} fps ({n / fps:.3f} s): are the phone timings for this clip and the fps right?"
            )
        minima.append(g[lo : hi + 1].min())
    m = np.asarray(minima, dtype=np.float64)
    return Closures(
        threshold=float(threshold), tolerance=int(tolerance), minima=m, closed=int((m <= threshold).sum())
    )


# ---------------------------------------------------------------------------------------------- rest gap
def pause_intervals(
    phones: Sequence[Mapping[str, Any]] | Mapping[str, Any], min_pause_s: float = 0.2
) -> list[tuple[float, float]]:
    """Pauses of at least ``min_pause_s`` seconds, as ``(start, end)`` in seconds, in time order.

    A pause is a maximal run of ``"sil"`` phones and of gaps between consecutive phones (times no phone
    covers, after the first phone's start and before the last phone's end), merged where they touch
    (within 1 µs). Time before the first and after the last phone is not a pause: nothing says what it is.
    Durations are compared with a 1e-9 s tolerance (a 0.2 s pause qualifies for ``min_pause_s = 0.2``).
    """
    if not (math.isfinite(min_pause_s) and min_pause_s >= 0):
        raise MetricError(f"min_pause_s must be a non-negative number of seconds, got {min_pause_s!r}")
    ph = as_phones(phones)
    quiet: list[tuple[float, float]] = []
    cursor = None  # the latest end of any phone so far
    for p in ph:
        if cursor is not None and p.start > cursor + _TIME_EPS:
            quiet.append((cursor, p.start))
        if p.phone == SILENCE:
            quiet.append((p.start, p.end))
        cursor = p.end if cursor is None else max(cursor, p.end)
    quiet.sort()
    merged: list[list[float]] = []
    for s, e in quiet:
        if merged and s <= merged[-1][1] + _TIME_EPS:
            merged[-1][1] = max(merged[-1][1], e)
        else:
            merged.append([s, e])
    return [(s, e) for s, e in merged if e - s >= min_pause_s - 1e-9]


def pause_frames(
    phones: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    fps: float,
    num_frames: int,
    min_pause_s: float = 0.2,
) -> np.ndarray:
    """Sorted frame indices ``(F,)`` (int64, ``< num_frames``) of the qualifying pauses
    (:func:`pause_intervals`, frames by :func:`interval_frames`, clipped to the clip).

    Raises:
        MetricError: a qualifying pause with no frame inside the clip's ``num_frames`` frames.
    """
    fps = _check_fps(fps)
    out = []
    for s, e in pause_intervals(phones, min_pause_s):
        first, last = interval_frames(s, e, fps)
        lo, hi = max(first, 0), min(last, num_frames - 1)
        if lo > hi:
            raise MetricError(
                f"pause at {s:.3f}-{e:.3f} s has no frame within the clip's {num_frames} frames at {fps:g} fps "
                f"({num_frames / fps:.3f} s): are the phone timings for this clip and the fps right?"
            )
        out.append(np.arange(lo, hi + 1))
    if not out:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(out)).astype(np.int64)


def rest_gap(
    gap: ArrayLike,
    phones: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    fps: float,
    min_pause_s: float = 0.2,
) -> float | None:
    """Median gap over the frames of all pauses of at least ``min_pause_s`` s (data units).

    Returns None (not NaN) when the clip has no qualifying pause.
    """
    g = _as_gap(gap, "lip gap")
    frames = pause_frames(phones, fps, g.shape[0], min_pause_s)
    return float(np.median(g[frames])) if frames.size else None


# ---------------------------------------------------------------------------------------------- amplitude
def lip_amplitude(gap: ArrayLike) -> float:
    """RMS of the gap around its clip mean, ``sqrt(mean_t (g_t − ḡ)²)`` (data units; 0 for a constant gap)."""
    g = _as_gap(gap, "lip gap")
    if np.ptp(g) == 0:
        return 0.0
    return float(np.sqrt(np.mean((g - g.mean()) ** 2)))


def lip_amplitude_ratio(pred_gap: ArrayLike, gt_gap: ArrayLike) -> float:
    """:func:`lip_amplitude` of the prediction / of the ground truth, both cut to ``T = min(T_P, T_G)``.

    Raises:
        MetricError: a ground truth whose gap is constant over the ``T`` frames (no amplitude to compare to).
    """
    p, g = _as_gap(pred_gap, "predicted lip gap"), _as_gap(gt_gap, "ground-truth lip gap")
    t = min(p.shape[0], g.shape[0])
    gt_amp = lip_amplitude(g[:t])
    if gt_amp == 0:
        raise MetricError(
            f"lip amplitude ratio: the ground-truth lip gap is constant over its first {t} frames "
            "(no lip motion to compare the prediction with)"
        )
    return lip_amplitude(p[:t]) / gt_amp


# ---------------------------------------------------------------------------------------------- MTM
@dataclass(frozen=True, eq=False)
class MTMResult:
    """Mean Temporal Misalignment of one clip.

    ``offsets`` ``(K,)`` int64: ``|i_G − i_P|`` of every matched extremum pair on the warping path;
    ``frames`` their mean, ``ms`` = ``frames · 1000 / fps``; both None when nothing matched.
    """

    frames: float | None
    ms: float | None
    offsets: np.ndarray
    fps: float

    @property
    def matches(self) -> int:
        return int(self.offsets.shape[0])


def _extrema(x: np.ndarray, prominence: float | None) -> dict[int, str]:
    peaks, _ = find_peaks(x, prominence=prominence)
    valleys, _ = find_peaks(-x, prominence=prominence)
    out = {int(i): "max" for i in peaks}
    out.update({int(i): "min" for i in valleys})
    return out


def mtm(
    pred_gap: ArrayLike,
    gt_gap: ArrayLike,
    fps: float,
    sigma_frames: float = 2.0,
    prominence: float | None = None,
) -> MTMResult:
    """Mean Temporal Misalignment (kaist-ami/Perceptual-3D-Talking-Head ``evaluation/evaluate_MTM.py``).

    1. Smooth both gaps with a Gaussian of ``sigma_frames`` frames (``scipy.ndimage.gaussian_filter1d``,
       ``mode="reflect"``, truncated at 4 sigma; ``sigma_frames = 0``: no smoothing).
    2. Derivatives ``d_t = s_t − s_{t−1}`` with ``d_0 = 0``.
    3. Exact DTW (:func:`memorytalker.evaluation.metrics.dtw`) over the cost ``|d^G_i − d^P_j|``, ground
       truth on the rows.
    4. Extrema of each smoothed gap: maxima ``find_peaks(s)``, minima ``find_peaks(−s)``
       (``scipy.signal.find_peaks``, ``prominence`` in data units; None = every local extremum).
    5. For each path cell ``(i_G, i_P)`` where both are extrema of the same type and ``i_P`` lies within
       the neighbouring ground-truth extrema (``[previous, next]``, the clip's first/last frame at the ends),
       the offset ``|i_G − i_P|``.
    6. MTM = mean offset, in frames and ms. Full sequences (no truncation): ``T_P`` may differ from ``T_G``.

    Args:
        pred_gap: ``(T_P,)`` predicted inner lip gap. gt_gap: ``(T_G,)`` ground truth, same ``fps``.
        fps: frame rate of both.
        sigma_frames: Gaussian smoothing sigma in frames (theirs: 2).
        prominence: minimum prominence of an extremum (data units); None follows their code.
    """
    p, g = _as_gap(pred_gap, "predicted lip gap"), _as_gap(gt_gap, "ground-truth lip gap")
    fps = _check_fps(fps)
    if not (math.isfinite(sigma_frames) and sigma_frames >= 0):
        raise MetricError(f"MTM smoothing sigma must be >= 0 frames, got {sigma_frames!r}")
    if prominence is not None and not (math.isfinite(prominence) and prominence >= 0):
        raise MetricError(f"MTM prominence must be None or >= 0, got {prominence!r}")
    if sigma_frames > 0:
        g = gaussian_filter1d(g, sigma=sigma_frames)
        p = gaussian_filter1d(p, sigma=sigma_frames)
    dg = np.diff(g, prepend=g[0])
    dp = np.diff(p, prepend=p[0])
    _, path = dtw(np.abs(dg[:, None] - dp[None, :]))
    ext_g, ext_p = _extrema(g, prominence), _extrema(p, prominence)
    order = sorted(ext_g)
    rank = {i: k for k, i in enumerate(order)}
    offsets = []
    for i_g, i_p in path.tolist():
        kind = ext_g.get(i_g)
        if kind is None or ext_p.get(i_p) != kind:
            continue
        k = rank[i_g]
        left = order[k - 1] if k > 0 else 0
        right = order[k + 1] if k + 1 < len(order) else g.shape[0] - 1
        if left <= i_p <= right:
            offsets.append(abs(i_g - i_p))
    off = np.asarray(offsets, dtype=np.int64)
    frames = float(off.mean()) if off.size else None
    return MTMResult(
        frames=frames, ms=None if frames is None else frames * 1000.0 / fps, offsets=off, fps=fps
    )


# ---------------------------------------------------------------------------------------------- speech
def _as_audio(audio: ArrayLike) -> np.ndarray:
    a = _to_numpy(audio, "audio")
    if a.ndim != 1 or a.shape[0] == 0:
        raise MetricError(f"audio: expected non-empty mono samples (S,), got shape {a.shape}")
    a = np.asarray(a, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise MetricError("audio: NaN or Inf samples")
    return a


def speech_envelope(
    audio: ArrayLike,
    fps: float,
    num_frames: int | None = None,
    sample_rate: int = SAMPLE_RATE,
    window_s: float | None = None,
) -> np.ndarray:
    """``(T',)`` float64 speech RMS envelope at the mesh frames (units of the samples).

    Frame ``t`` (instant ``t / fps``, centre sample ``c_t = round(t · sample_rate / fps)``) gets
    ``sqrt((1/W) Σ_{k=0}^{W−1} a[c_t − ⌊W/2⌋ + k]²)`` with ``W = round(window_s · sample_rate)`` samples
    (default ``window_s = 1/fps``: one frame period) and samples outside the audio counted as zeros. Only
    frames whose instant lies inside the audio (``t / fps < S / sample_rate``) get a value, at most
    ``num_frames`` of them.
    """
    a = _as_audio(audio)
    fps = _check_fps(fps)
    if isinstance(sample_rate, bool) or not (isinstance(sample_rate, numbers.Integral) and sample_rate > 0):
        raise MetricError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    w_s = 1.0 / fps if window_s is None else float(window_s)
    if not (math.isfinite(w_s) and w_s > 0):
        raise MetricError(f"envelope window must be a positive number of seconds, got {window_s!r}")
    w = max(1, int(round(w_s * sample_rate)))
    n = math.ceil(a.shape[0] * fps / sample_rate - _FRAME_EPS)
    if num_frames is not None:
        n = min(n, int(num_frames))
    centres = np.round(np.arange(n) * sample_rate / fps).astype(np.int64)
    half = w // 2
    padded = np.concatenate([np.zeros(half + 1), a * a, np.zeros(w)])
    csum = np.cumsum(padded)
    # window of frame t: samples [c - half, c - half + w) = padded [c + 1, c + 1 + w)
    energy = csum[centres + w] - csum[centres]
    return np.sqrt(np.maximum(energy, 0.0) / w)


def speech_lip_correlation(
    audio: ArrayLike,
    gap: ArrayLike,
    fps: float,
    sample_rate: int = SAMPLE_RATE,
    window_s: float | None = None,
) -> float | None:
    """Pearson correlation between :func:`speech_envelope` and the lip gap, over the first
    ``min(T, frames inside the audio)`` frames (no lag).

    Computed for one gap sequence: call it once on the prediction and once on the ground truth. None when
    fewer than 2 frames or when the envelope or the gap is constant (the correlation is undefined).
    """
    g = _as_gap(gap, "lip gap")
    env = speech_envelope(audio, fps, g.shape[0], sample_rate, window_s)
    g = g[: env.shape[0]]
    if env.shape[0] < 2 or np.ptp(g) == 0 or np.ptp(env) == 0:
        return None
    return float(np.corrcoef(env, g)[0, 1])


# ---------------------------------------------------------------------------------------------- per clip
@dataclass(frozen=True)
class LipSyncConfig:
    """Parameters of the lip-sync measures (docs/METRICS.md § Lip-sync measures).

    ``closure_mm``: closure threshold in millimetres (converted with the data's declared units).
    ``tolerance_frames``: frames added on each side of a bilabial. ``min_pause_s``: shortest pause for the
    rest gap. ``mtm_sigma_frames``, ``mtm_prominence_mm`` (None: every extremum): MTM smoothing and
    extremum prominence. ``envelope_window_s`` (None: one frame period) and ``sample_rate``: the speech
    envelope.
    """

    closure_mm: float = 1.0
    tolerance_frames: int = 1
    min_pause_s: float = 0.2
    mtm_sigma_frames: float = 2.0
    mtm_prominence_mm: float | None = None
    envelope_window_s: float | None = None
    sample_rate: int = SAMPLE_RATE


@dataclass(frozen=True)
class LipSyncResult:
    """The lip-sync measures of one clip; lengths in the data's units, ``gt_*`` of the ground truth.

    Ground-truth fields, ``amplitude_ratio`` and ``mtm_*`` are None without a ground truth; the
    correlations are None without audio (or when undefined); rates and means are None without P/B/M;
    rest values are None without a qualifying pause. ``bilabials`` is the number of P/B/M phones (the same
    for prediction and ground truth); ``pauses`` the number of qualifying pauses, ``pause_frames`` their
    frames within the prediction's length (``gt_pause_frames``: the ground truth's).
    """

    frames: int
    gt_frames: int | None
    bilabials: int
    closed: int
    closure_rate: float | None
    mean_bilabial_min_gap: float | None
    bilabial_min_gaps: tuple[float, ...]
    gt_closed: int | None
    gt_closure_rate: float | None
    gt_mean_bilabial_min_gap: float | None
    gt_bilabial_min_gaps: tuple[float, ...] | None
    pauses: int
    pause_frames: int
    rest_gap: float | None
    rest_closed_frames: int
    gt_pause_frames: int | None
    gt_rest_gap: float | None
    gt_rest_closed_frames: int | None
    lip_amplitude: float
    gt_lip_amplitude: float | None
    amplitude_ratio: float | None
    mtm_frames: float | None
    mtm_ms: float | None
    mtm_matches: int | None
    speech_lip_corr: float | None
    gt_speech_lip_corr: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: plain ints/floats, lists for the per-phone minima, None for unavailable values."""
        out = asdict(self)
        for k in ("bilabial_min_gaps", "gt_bilabial_min_gaps"):
            out[k] = None if out[k] is None else list(out[k])
        return out


def lipsync_units(units: str) -> dict[str, str]:
    """The unit of every value of :meth:`LipSyncResult.to_dict` and :meth:`LipSyncSummary.to_dict` for
    vertices in ``units``: lengths in ``units``, ``"1"`` for rates, ratios and correlations, ``"frames"``,
    ``"ms"``, ``"count"``."""
    length = {"mean_bilabial_min_gap", "bilabial_min_gaps", "rest_gap", "lip_amplitude"}
    dimensionless = {"closure_rate", "rest_closed_fraction", "amplitude_ratio", "speech_lip_corr"}
    keys = set(LipSyncResult.__dataclass_fields__) | set(LipSyncSummary.__dataclass_fields__)
    out = {}
    for k in sorted(keys):
        base = k[3:] if k.startswith("gt_") else k
        if base in length:
            out[k] = units
        elif base in dimensionless:
            out[k] = "1"
        elif base == "mtm_frames":
            out[k] = "frames"
        elif base == "mtm_ms":
            out[k] = "ms"
        else:
            out[k] = "count"
    return out


def _gap_of(vertices: ArrayLike, topology: FaceTopology, what: str) -> np.ndarray:
    v = as_vertex_sequence(vertices, what, topology.num_vertices)
    return inner_lip_gap(v, topology)


def lipsync_clip(
    pred: ArrayLike,
    gt: ArrayLike | None,
    topology: FaceTopology,
    phones: Sequence[Mapping[str, Any]] | Mapping[str, Any],
    fps: float,
    units: str,
    audio: ArrayLike | None = None,
    config: LipSyncConfig | None = None,
) -> LipSyncResult:
    """All lip-sync measures of one clip from its vertices.

    Args:
        pred: ``(T_P, V, 3)`` or ``(T_P, V*3)`` predicted vertices. gt: ``(T_G, V, 3)`` ground truth, or None
            (a prediction for audio without captured motion).
        topology: gives the inner-lip midline pair and the up axis (:func:`inner_lip_gap`).
        phones: the clip's phone timings (seconds; :func:`as_phones`).
        fps: mesh frame rate of ``pred`` and ``gt``.
        units: the data's declared vertex units (``"m"``, ``"cm"``, ``"mm"``): the closure threshold and MTM
            prominence given in millimetres are converted with it.
        audio: ``(S,)`` mono speech at ``config.sample_rate`` (16 kHz), or None (no correlations).
        config: :class:`LipSyncConfig` (defaults: 1 mm, ±1 frame, pauses >= 0.2 s, sigma 2 frames).

    Closures and rest gaps use each sequence's own length; the amplitude ratio truncates to the common
    length; MTM aligns the full sequences.
    """
    cfg = config or LipSyncConfig()
    fps = _check_fps(fps)
    threshold = length_in_units(cfg.closure_mm, units)
    prominence = None if cfg.mtm_prominence_mm is None else length_in_units(cfg.mtm_prominence_mm, units)
    ph = as_phones(phones)
    records = [{"phone": p.phone, "start": p.start, "end": p.end} for p in ph]
    pauses = len(pause_intervals(records, cfg.min_pause_s))

    def side(gap: np.ndarray) -> tuple[Closures, int, float | None, int]:
        c = closure_rate(gap, records, fps, threshold, cfg.tolerance_frames)
        frames = pause_frames(records, fps, gap.shape[0], cfg.min_pause_s)
        rest = float(np.median(gap[frames])) if frames.size else None
        return c, int(frames.size), rest, int((gap[frames] <= threshold).sum())

    def corr(gap: np.ndarray) -> float | None:
        if audio is None:
            return None
        return speech_lip_correlation(audio, gap, fps, cfg.sample_rate, cfg.envelope_window_s)

    pg = _gap_of(pred, topology, "prediction")
    pc, p_pause, p_rest, p_rest_closed = side(pg)
    gt_fields: dict[str, Any] = dict.fromkeys(
        (
            "gt_frames",
            "gt_closed",
            "gt_closure_rate",
            "gt_mean_bilabial_min_gap",
            "gt_bilabial_min_gaps",
            "gt_pause_frames",
            "gt_rest_gap",
            "gt_rest_closed_frames",
            "gt_lip_amplitude",
            "amplitude_ratio",
            "mtm_frames",
            "mtm_ms",
            "mtm_matches",
            "gt_speech_lip_corr",
        )
    )
    if gt is not None:
        gg = _gap_of(gt, topology, "ground truth")
        gc, g_pause, g_rest, g_rest_closed = side(gg)
        m = mtm(pg, gg, fps, cfg.mtm_sigma_frames, prominence)
        gt_fields.update(
            gt_frames=int(gg.shape[0]),
            gt_closed=gc.closed,
            gt_closure_rate=gc.rate,
            gt_mean_bilabial_min_gap=gc.mean_min,
            gt_bilabial_min_gaps=tuple(float(x) for x in gc.minima),
            gt_pause_frames=g_pause,
            gt_rest_gap=g_rest,
            gt_rest_closed_frames=g_rest_closed,
            gt_lip_amplitude=lip_amplitude(gg),
            amplitude_ratio=lip_amplitude_ratio(pg, gg),
            mtm_frames=m.frames,
            mtm_ms=m.ms,
            mtm_matches=m.matches,
            gt_speech_lip_corr=corr(gg),
        )
    return LipSyncResult(
        frames=int(pg.shape[0]),
        bilabials=pc.count,
        closed=pc.closed,
        closure_rate=pc.rate,
        mean_bilabial_min_gap=pc.mean_min,
        bilabial_min_gaps=tuple(float(x) for x in pc.minima),
        pauses=pauses,
        pause_frames=p_pause,
        rest_gap=p_rest,
        rest_closed_frames=p_rest_closed,
        lip_amplitude=lip_amplitude(pg),
        speech_lip_corr=corr(pg),
        **gt_fields,
    )


# ---------------------------------------------------------------------------------------------- reduction
@dataclass(frozen=True)
class LipSyncSummary:
    """Lip-sync measures reduced over a set of clips (docs/METRICS.md § Lip-sync measures, reductions).

    * ``closure_rate`` = Σ closed / Σ bilabials over all clips (pooled over phones); ``mean_bilabial_min_gap``
      = mean of all per-phone minima of all clips. ``gt_*``: the same over the clips with a ground truth
      (``gt_bilabials`` of them).
    * ``rest_gap`` = median over the ``rest_clips`` clips with a qualifying pause of their per-clip rest
      gaps (each clip counts once); ``rest_closed_fraction`` = Σ pause frames ``<=`` threshold / Σ pause
      frames (pooled over frames).
    * ``amplitude_ratio``: median over the ``amplitude_clips`` clips with a ground truth.
    * ``mtm_frames``, ``mtm_ms``: mean over the ``mtm_clips`` clips with at least one matched extremum pair.
    * ``speech_lip_corr``, ``gt_speech_lip_corr``: mean over the clips where each is defined
      (``corr_clips``, ``gt_corr_clips``).

    Every value is None when no clip contributes to it.
    """

    clips: int
    bilabials: int
    closed: int
    closure_rate: float | None
    mean_bilabial_min_gap: float | None
    gt_bilabials: int
    gt_closed: int
    gt_closure_rate: float | None
    gt_mean_bilabial_min_gap: float | None
    rest_clips: int
    rest_gap: float | None
    rest_closed_fraction: float | None
    gt_rest_clips: int
    gt_rest_gap: float | None
    gt_rest_closed_fraction: float | None
    amplitude_clips: int
    amplitude_ratio: float | None
    mtm_clips: int
    mtm_frames: float | None
    mtm_ms: float | None
    corr_clips: int
    speech_lip_corr: float | None
    gt_corr_clips: int
    gt_speech_lip_corr: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _values(xs: Sequence[float | None]) -> list[float]:
    return [float(x) for x in xs if x is not None]


def _median(xs: Sequence[float | None]) -> float | None:
    v = _values(xs)
    return float(np.median(v)) if v else None


def _mean(xs: Sequence[float | None]) -> float | None:
    v = _values(xs)
    return float(np.mean(v)) if v else None


def reduce_lipsync(results: Sequence[LipSyncResult]) -> LipSyncSummary:
    """Pool the lip-sync measures of several clips (see :class:`LipSyncSummary` for each rule).

    Raises:
        MetricError: no clips.
    """
    rs = list(results)
    if not rs:
        raise MetricError("nothing to reduce: no lip-sync results")
    with_gt = [r for r in rs if r.gt_frames is not None]
    bil = sum(r.bilabials for r in rs)
    closed = sum(r.closed for r in rs)
    gt_bil = sum(r.bilabials for r in with_gt)
    gt_closed = sum(r.gt_closed or 0 for r in with_gt)
    minima = [x for r in rs for x in r.bilabial_min_gaps]
    gt_minima = [x for r in with_gt for x in (r.gt_bilabial_min_gaps or ())]
    pause = sum(r.pause_frames for r in rs)
    gt_pause = sum(r.gt_pause_frames or 0 for r in with_gt)
    return LipSyncSummary(
        clips=len(rs),
        bilabials=bil,
        closed=closed,
        closure_rate=closed / bil if bil else None,
        mean_bilabial_min_gap=float(np.mean(minima)) if minima else None,
        gt_bilabials=gt_bil,
        gt_closed=gt_closed,
        gt_closure_rate=gt_closed / gt_bil if gt_bil else None,
        gt_mean_bilabial_min_gap=float(np.mean(gt_minima)) if gt_minima else None,
        rest_clips=len(_values([r.rest_gap for r in rs])),
        rest_gap=_median([r.rest_gap for r in rs]),
        rest_closed_fraction=sum(r.rest_closed_frames for r in rs) / pause if pause else None,
        gt_rest_clips=len(_values([r.gt_rest_gap for r in with_gt])),
        gt_rest_gap=_median([r.gt_rest_gap for r in with_gt]),
        gt_rest_closed_fraction=(
            sum(r.gt_rest_closed_frames or 0 for r in with_gt) / gt_pause if gt_pause else None
        ),
        amplitude_clips=len(_values([r.amplitude_ratio for r in rs])),
        amplitude_ratio=_median([r.amplitude_ratio for r in rs]),
        mtm_clips=len(_values([r.mtm_frames for r in rs])),
        mtm_frames=_mean([r.mtm_frames for r in rs]),
        mtm_ms=_mean([r.mtm_ms for r in rs]),
        corr_clips=len(_values([r.speech_lip_corr for r in rs])),
        speech_lip_corr=_mean([r.speech_lip_corr for r in rs]),
        gt_corr_clips=len(_values([r.gt_speech_lip_corr for r in with_gt])),
        gt_speech_lip_corr=_mean([r.gt_speech_lip_corr for r in with_gt]),
    )
