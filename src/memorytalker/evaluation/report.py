"""Dataset-level evaluation: per-clip metrics, the field's reductions, display scales and the report.

* :func:`evaluate_clip` -> :class:`ClipResult` (the five metrics of :mod:`memorytalker.evaluation.metrics` + ids).
* :func:`reduce_results` pools a set of clips the field's way (:class:`Summary`): FVE, LVE and Lip-max
  over **all frames of all clips** (frame-weighted), FDD averaged over clips (signed, and mean ``|FDD|``),
  LDTW averaged over clips. :func:`clip_means` gives the plain per-clip averages of every metric
  (sequence-weighted, DiffSpeaker-style) for comparison.
* :func:`display_scales` names the customary display scale and unit of every metric for the dataset's
  units (``"m"`` or ``"mm"``, from ``dataset.yaml``; never guessed from values).
* :func:`build_report` -> a JSON-ready dict (pooled, clip means, per subject, per clip, units, display
  scales, definitions version); :func:`format_report` prints it as a table.

Raw values in the report are always in the data's units (m, m² / mm, mm²); only the ``display`` block and
:func:`format_report` apply scales.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from memorytalker.evaluation.metrics import (
    ArrayLike,
    ClipMetrics,
    MetricError,
    clip_metrics,
)
from memorytalker.topology import FaceTopology

if TYPE_CHECKING:
    from memorytalker.evaluation.lipsync import LipSyncResult

__all__ = [
    "DEFINITIONS_VERSION",
    "METRICS",
    "ClipResult",
    "DisplayScale",
    "Summary",
    "build_report",
    "clip_means",
    "display_scales",
    "evaluate_clip",
    "format_report",
    "metric_units",
    "per_subject",
    "reduce_results",
]

#: Version of the metric definitions (docs/METRICS.md); bump when any formula or reduction changes.
DEFINITIONS_VERSION = "memorytalker-metrics/1"

#: Reported quantities, in table order. ``fdd_abs`` (mean |FDD| over clips) exists only after reduction.
METRICS = ("fve", "lve", "lip_max", "fdd", "fdd_abs", "ldtw")

#: Display names.
NAMES = {
    "fve": "FVE",
    "lve": "LVE",
    "lip_max": "Lip-max",
    "fdd": "FDD",
    "fdd_abs": "|FDD|",
    "ldtw": "LDTW",
}

#: Which metrics are squared lengths (units²); the others are lengths.
_SQUARED = {"lve", "fdd", "fdd_abs"}

#: Customary display scales: the unit of the printed number, in the data's units (printed = raw / scale).
#: Metres (VOCASET, synthetic): lengths in mm; LVE ×1e-5 m² and FDD ×1e-7 m² as in FaceFormer, CodeTalker,
#: FaceDiffuser and DiffSpeaker's VOCASET tables. Millimetres (BIWI): lengths in mm; LVE ×1e-4 mm² and
#: FDD ×1e-5 mm² as in their BIWI tables.
_SCALES: dict[str, dict[str, tuple[float, str]]] = {
    "m": {
        "fve": (1e-3, "mm"),
        "lve": (1e-5, "×1e-5 m²"),
        "lip_max": (1e-3, "mm"),
        "fdd": (1e-7, "×1e-7 m²"),
        "fdd_abs": (1e-7, "×1e-7 m²"),
        "ldtw": (1e-3, "mm"),
    },
    "mm": {
        "fve": (1.0, "mm"),
        "lve": (1e-4, "×1e-4 mm²"),
        "lip_max": (1.0, "mm"),
        "fdd": (1e-5, "×1e-5 mm²"),
        "fdd_abs": (1e-5, "×1e-5 mm²"),
        "ldtw": (1.0, "mm"),
    },
}


# ---------------------------------------------------------------------------------------------- per clip
@dataclass(frozen=True)
class ClipResult:
    """One scored clip: its ids, the five metrics (:class:`~memorytalker.evaluation.metrics.ClipMetrics`,
    data units, with the frame counts; ``frames = min(pred_frames, gt_frames)`` is the clip's weight in the
    frame-pooled metrics) and, when phone timings were available, its lip-sync measures."""

    clip_id: str
    subject: str
    metrics: ClipMetrics
    lipsync: LipSyncResult | None = None

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-ready view: ids, the five metrics and frame counts, and ``lipsync`` (or None)."""
        out: dict[str, Any] = {"clip_id": self.clip_id, "subject": self.subject, **self.metrics.to_dict()}
        out["lipsync"] = None if self.lipsync is None else self.lipsync.to_dict()
        return out


def evaluate_clip(
    clip_id: str,
    subject: str,
    pred: ArrayLike,
    gt: ArrayLike,
    template: ArrayLike,
    lips: ArrayLike,
    upper: ArrayLike,
) -> ClipResult:
    """Score one clip: ``pred`` ``(T_P, V, 3)`` vs ``gt`` ``(T_G, V, 3)`` (or ``(T, V*3)``).

    ``template`` is the subject's ``(V, 3)`` neutral mesh; ``lips`` / ``upper`` the region indices.
    Errors name the clip.
    """
    try:
        m = clip_metrics(pred, gt, template, lips, upper)
    except MetricError as exc:
        raise MetricError(f"clip {clip_id}: {exc}") from None
    return ClipResult(clip_id=clip_id, subject=subject, metrics=m)


# ---------------------------------------------------------------------------------------------- reducers
@dataclass(frozen=True)
class Summary:
    """A set of clips reduced the field's way (data units).

    ``fve``, ``lve``, ``lip_max``: means over all frames of all clips (frame-weighted).
    ``fdd``: mean over clips of the signed per-clip FDD; ``fdd_abs``: mean over clips of ``|FDD|``.
    ``ldtw``: mean over clips.
    """

    clips: int
    frames: int
    fve: float
    lve: float
    lip_max: float
    fdd: float
    fdd_abs: float
    ldtw: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_results(results: Sequence[ClipResult]) -> None:
    if not results:
        raise MetricError("nothing to reduce: no clips were evaluated")
    ids = [r.clip_id for r in results]
    if len(set(ids)) != len(ids):
        dup = sorted({c for c in ids if ids.count(c) > 1})
        raise MetricError(f"clips evaluated more than once: {dup[:5]}")


def reduce_results(results: Sequence[ClipResult]) -> Summary:
    """Pool clips: FVE/LVE/Lip-max weighted by frames (= over all frames), FDD/|FDD|/LDTW over clips.

    Since each per-clip FVE/LVE/Lip-max is a mean over that clip's ``frames``, the frame-pooled value is
    ``Σ_c frames_c · m_c / Σ_c frames_c``.
    """
    _check_results(results)
    w = np.array([r.metrics.frames for r in results], dtype=np.float64)

    def pooled(name: str) -> float:
        return float(np.dot(w, [getattr(r.metrics, name) for r in results]) / w.sum())

    fdds = np.array([r.metrics.fdd for r in results], dtype=np.float64)
    return Summary(
        clips=len(results),
        frames=int(w.sum()),
        fve=pooled("fve"),
        lve=pooled("lve"),
        lip_max=pooled("lip_max"),
        fdd=float(fdds.mean()),
        fdd_abs=float(np.abs(fdds).mean()),
        ldtw=float(np.mean([r.metrics.ldtw for r in results])),
    )


def clip_means(results: Sequence[ClipResult]) -> Summary:
    """Unweighted means over clips of every per-clip value (each clip counts once, whatever its length)."""
    _check_results(results)

    def mean(name: str) -> float:
        return float(np.mean([getattr(r.metrics, name) for r in results]))

    return Summary(
        clips=len(results),
        frames=int(sum(r.metrics.frames for r in results)),
        fve=mean("fve"),
        lve=mean("lve"),
        lip_max=mean("lip_max"),
        fdd=mean("fdd"),
        fdd_abs=float(np.mean([abs(r.metrics.fdd) for r in results])),
        ldtw=mean("ldtw"),
    )


def per_subject(results: Sequence[ClipResult]) -> dict[str, Summary]:
    """``{subject: reduce_results(that subject's clips)}``, subjects sorted."""
    _check_results(results)
    groups: dict[str, list[ClipResult]] = {}
    for r in results:
        groups.setdefault(r.subject, []).append(r)
    return {s: reduce_results(groups[s]) for s in sorted(groups)}


# ---------------------------------------------------------------------------------------------- units
@dataclass(frozen=True)
class DisplayScale:
    """How one metric is printed: ``printed = value / scale``, labelled ``"LVE [×1e-5 m²]"``."""

    metric: str
    scale: float
    unit: str

    @property
    def label(self) -> str:
        return f"{NAMES[self.metric]} [{self.unit}]"

    def apply(self, value: float) -> float:
        return value / self.scale

    def to_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "unit": self.unit, "label": self.label}


def metric_units(units: str) -> dict[str, str]:
    """Raw units of every metric for data in ``units``: lengths for FVE/Lip-max/LDTW, ``units^2`` else."""
    return {k: (f"{units}^2" if k in _SQUARED else units) for k in METRICS}


def display_scales(units: str) -> dict[str, DisplayScale]:
    """Customary display scale per metric for vertex ``units`` (the dataset's ``units``, never guessed).

    ``"m"``: FVE, Lip-max, LDTW in mm; LVE ×1e-5 m²; FDD ×1e-7 m². ``"mm"``: FVE, Lip-max, LDTW in mm;
    LVE ×1e-4 mm²; FDD ×1e-5 mm². Any other unit string: raw values (scale 1) labelled with that unit.
    """
    if not isinstance(units, str) or not units.strip():
        raise MetricError(f"vertex units must be a non-empty string such as 'm' or 'mm', got {units!r}")
    table = _SCALES.get(units)
    if table is None:
        sq = "²"
        return {k: DisplayScale(k, 1.0, f"{units}{sq}" if k in _SQUARED else units) for k in METRICS}
    return {k: DisplayScale(k, s, u) for k, (s, u) in table.items()}


# ---------------------------------------------------------------------------------------------- report
def build_report(
    results: Sequence[ClipResult],
    units: str,
    topology: FaceTopology | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON-ready report.

    Keys: ``definitions`` (version), ``units`` (vertex units), ``metric_units``, ``display`` (scale, unit,
    label per metric: printed = value / scale), ``regions`` (topology name and index-set sizes, when
    given), ``pooled`` (:func:`reduce_results`), ``clip_mean`` (:func:`clip_means`), ``per_subject``,
    ``per_clip`` (in input order), plus ``extra`` merged at the top level.
    """
    scales = display_scales(units)
    report: dict[str, Any] = {
        "definitions": DEFINITIONS_VERSION,
        "units": units,
        "metric_units": metric_units(units),
        "display": {k: s.to_dict() for k, s in scales.items()},
    }
    if topology is not None:
        report["regions"] = {
            "topology": topology.name,
            "num_vertices": topology.num_vertices,
            "lips": len(topology.lips),
            "upper_face": len(topology.upper_face),
        }
    report["pooled"] = reduce_results(results).to_dict()
    report["clip_mean"] = clip_means(results).to_dict()
    report["per_subject"] = {s: v.to_dict() for s, v in per_subject(results).items()}
    report["per_clip"] = {
        r.clip_id: {k: v for k, v in r.to_dict().items() if k != "clip_id"} for r in results
    }
    report["lipsync"] = lipsync_section(results, units)
    if extra:
        report.update(extra)
    return report


def lipsync_section(results: Sequence[ClipResult], units: str) -> dict[str, Any]:
    """The report's ``lipsync`` block: definitions version, units per key, the clips without phone timings,
    and the measures pooled and per subject (:func:`memorytalker.evaluation.lipsync.reduce_lipsync`)."""
    from memorytalker.evaluation.lipsync import LIPSYNC_DEFINITIONS, lipsync_units, reduce_lipsync

    scored = [r for r in results if r.lipsync is not None]
    section: dict[str, Any] = {
        "definitions": LIPSYNC_DEFINITIONS,
        "clips": len(scored),
        "clips_without_timings": [r.clip_id for r in results if r.lipsync is None],
    }
    if not scored:
        return section
    section["units"] = lipsync_units(units)
    section["pooled"] = reduce_lipsync([r.lipsync for r in scored]).to_dict()
    groups: dict[str, list] = {}
    for r in scored:
        groups.setdefault(r.subject, []).append(r.lipsync)
    section["per_subject"] = {s: reduce_lipsync(groups[s]).to_dict() for s in sorted(groups)}
    return section


def _fmt(value: float, width: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-".rjust(width)
    return f"{value:.4f}".rjust(width)


def format_report(report: Mapping[str, Any]) -> str:
    """A text table of a :func:`build_report` dict: pooled, clip means, then one row per subject.

    Values are printed with the report's display scales; the column headers name the units.
    """
    display = report["display"]
    cols = [k for k in METRICS if k in display]
    labels = [display[k]["label"] for k in cols]
    widths = [max(len(lbl), 9) for lbl in labels]
    names = ["pooled", "clip mean", *[f"  {s}" for s in report["per_subject"]]]
    first = max(12, *(len(n) for n in names))
    header = f"{'':<{first}} {'clips':>5} {'frames':>7}  " + "  ".join(
        lbl.rjust(w) for lbl, w in zip(labels, widths)
    )
    lines = [
        f"metrics {report['definitions']} · vertex units: {report['units']} · "
        "FVE/LVE/Lip-max pooled over all frames, FDD (GT − prediction) and LDTW averaged over clips",
        header,
        "-" * len(header),
    ]

    def row(name: str, s: Mapping[str, Any]) -> str:
        vals = "  ".join(
            _fmt(s[k] / display[k]["scale"] if s.get(k) is not None else None, w)
            for k, w in zip(cols, widths)
        )
        return f"{name:<{first}} {s['clips']:>5} {s['frames']:>7}  {vals}"

    lines.append(row("pooled", report["pooled"]))
    lines.append(row("clip mean", report["clip_mean"]))
    if report["per_subject"]:
        lines.append("per subject:")
        for subj, s in report["per_subject"].items():
            lines.append(row(f"  {subj}", s))
    if report.get("lipsync_unavailable"):
        lines.append(f"lip-sync: not measured: {report['lipsync_unavailable']}")
    else:
        lines.extend(format_lipsync(report.get("lipsync") or {}, report["units"], first))
    return "\n".join(lines)


def format_lipsync(section: Mapping[str, Any], units: str, first: int = 12) -> list[str]:
    """Text lines of a report's ``lipsync`` block: prediction (ground truth) per measure, lengths in mm
    for metre data."""
    if not section.get("pooled"):
        missing = section.get("clips_without_timings") or []
        return [f"lip-sync: not measured ({len(missing)} clip(s) without phone timings)"] if missing else []
    scale = {"m": 1000.0, "cm": 10.0}.get(units, 1.0)
    unit = "mm" if units in ("m", "cm", "mm") else units

    def pct(x: Any) -> str:
        return "-" if x is None else f"{100 * x:.0f} %"

    def length(x: Any) -> str:
        return "-" if x is None else f"{x * scale:.1f}"

    def num(x: Any, fmt: str = ".2f") -> str:
        return "-" if x is None else format(x, fmt)

    header = (
        f"{'':<{first}} {'P/B/M':>6}  {'closed (GT)':>14}  {'rest gap ' + unit + ' (GT)':>18}  "
        f"{'amplitude':>9}  {'MTM ms':>7}  {'speech-lip r (GT)':>17}"
    )
    lines = [
        f"lip-sync {section['definitions']}: P/B/M closed = inner lip gap <= 1 mm within the phone +-1 frame; "
        "rest gap = median in pauses >= 0.2 s; amplitude = prediction / ground truth",
        header,
        "-" * len(header),
    ]

    def row(name: str, s: Mapping[str, Any]) -> str:
        closed = f"{pct(s['closure_rate'])} ({pct(s['gt_closure_rate'])})"
        rest = f"{length(s['rest_gap'])} ({length(s['gt_rest_gap'])})"
        corr = f"{num(s['speech_lip_corr'])} ({num(s['gt_speech_lip_corr'])})"
        return (
            f"{name:<{first}} {s['bilabials']:>6}  {closed:>14}  {rest:>18}  {num(s['amplitude_ratio']):>9}  "
            f"{num(s['mtm_ms'], '.0f'):>7}  {corr:>17}"
        )

    lines.append(row("pooled", section["pooled"]))
    for subj, s in (section.get("per_subject") or {}).items():
        lines.append(row(f"  {subj}", s))
    if section.get("clips_without_timings"):
        lines.append(
            f"  ({len(section['clips_without_timings'])} clip(s) without phone timings not measured)"
        )
    return lines
