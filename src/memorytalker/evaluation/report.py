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
* :func:`evaluate_predictions` scores in-memory predictions; :func:`evaluate_dir` scores
  ``PRED_DIR/<clip_id>.npy`` files against a dataset split (``memorytalker evaluate-dir``).

Raw values in the report are always in the data's units (m, m² / mm, mm²); only the ``display`` block and
:func:`format_report` apply scales.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memorytalker.evaluation.metrics import ArrayLike, MetricError, as_vertex_sequence, clip_metrics
from memorytalker.topology import FaceTopology

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
    "evaluate_dir",
    "evaluate_predictions",
    "format_report",
    "metric_units",
    "per_subject",
    "reduce_results",
    "summary_notes",
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
    """The five metrics of one clip (data units) with its ids and frame counts.

    ``frames = min(pred_frames, gt_frames)`` is the clip's weight in the frame-pooled metrics.
    """

    clip_id: str
    subject: str
    fve: float
    lve: float
    lip_max: float
    fdd: float
    ldtw: float
    frames: int
    pred_frames: int
    gt_frames: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    return ClipResult(clip_id=clip_id, subject=subject, **m.to_dict())


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
    w = np.array([r.frames for r in results], dtype=np.float64)

    def pooled(name: str) -> float:
        return float(np.dot(w, [getattr(r, name) for r in results]) / w.sum())

    fdds = np.array([r.fdd for r in results], dtype=np.float64)
    return Summary(
        clips=len(results),
        frames=int(w.sum()),
        fve=pooled("fve"),
        lve=pooled("lve"),
        lip_max=pooled("lip_max"),
        fdd=float(fdds.mean()),
        fdd_abs=float(np.abs(fdds).mean()),
        ldtw=float(np.mean([r.ldtw for r in results])),
    )


def clip_means(results: Sequence[ClipResult]) -> Summary:
    """Unweighted means over clips of every per-clip value (each clip counts once, whatever its length)."""
    _check_results(results)

    def mean(name: str) -> float:
        return float(np.mean([getattr(r, name) for r in results]))

    return Summary(
        clips=len(results),
        frames=int(sum(r.frames for r in results)),
        fve=mean("fve"),
        lve=mean("lve"),
        lip_max=mean("lip_max"),
        fdd=mean("fdd"),
        fdd_abs=float(np.mean([abs(r.fdd) for r in results])),
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
    if extra:
        report.update(extra)
    return report


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
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- drivers
def evaluate_predictions(
    preds: Mapping[str, ArrayLike],
    gts: Mapping[str, ArrayLike],
    subjects: Mapping[str, str],
    topology: FaceTopology,
    templates: Mapping[str, ArrayLike],
    units: str,
    progress: bool = False,
) -> dict[str, Any]:
    """Score in-memory predictions and return the :func:`build_report` dict.

    Args:
        preds, gts: ``{clip_id: (T, V, 3) or (T, V*3)}``; every clip of ``preds`` needs a ground truth.
        subjects: ``{clip_id: subject}``.
        topology: supplies the ``lips`` and ``upper_face`` indices and ``V``.
        templates: ``{clip_id or subject: (V, 3)}`` neutral meshes (a clip-id key wins over its subject).
        units: vertex units of the data (``"m"``, ``"mm"``).
        progress: show a tqdm progress bar.
    """
    from tqdm.auto import tqdm

    missing = [c for c in preds if c not in gts]
    if missing:
        raise MetricError(f"{len(missing)} prediction(s) without ground truth: {missing[:10]}")
    results = []
    for cid in tqdm(list(preds), desc="metrics", disable=not progress, dynamic_ncols=True):
        if cid not in subjects:
            raise MetricError(f"clip {cid}: no subject given")
        subject = subjects[cid]
        tpl = templates.get(cid)
        if tpl is None:
            tpl = templates.get(subject)
        if tpl is None:
            raise MetricError(f"clip {cid}: no template for the clip or its subject {subject!r}")
        _check_vertex_count(preds[cid], topology, f"prediction for clip {cid}")
        results.append(
            evaluate_clip(cid, subject, preds[cid], gts[cid], tpl, topology.lips, topology.upper_face)
        )
    return build_report(results, units, topology)


def _check_vertex_count(arr: ArrayLike, topology: FaceTopology, what: str) -> None:
    shape = tuple(getattr(arr, "shape", None) or np.shape(arr))
    v = topology.num_vertices
    if len(shape) == 3 and shape[2] == 3:
        got = shape[1]
    elif len(shape) == 2 and shape[1] % 3 == 0:
        got = shape[1] // 3
    else:
        raise MetricError(f"{what}: expected (T, V, 3) or (T, V*3) vertices, got shape {shape}")
    if got != v:
        raise MetricError(
            f"{what}: {got} vertices per frame, but topology {topology.name!r} of the dataset has {v}"
        )


def _load_prediction(path: Path, topology: FaceTopology) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise MetricError(f"cannot read prediction {path}: {exc}") from exc
    _check_vertex_count(arr, topology, f"prediction {path}")
    return as_vertex_sequence(arr, f"prediction {path}", topology.num_vertices)


def evaluate_dir(
    pred_dir: str | Path,
    data_dir: str | Path,
    split: str = "test",
    layout: str | Path | None = None,
    topology: FaceTopology | str | Path | None = None,
    allow_missing: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``pred_dir/<clip_id>.npy`` predictions against the ground truth of a dataset split.

    Args:
        pred_dir: folder of ``<clip_id>.npy`` arrays, ``(T, V, 3)`` or ``(T, V*3)``, at the dataset fps.
        data_dir: processed dataset folder (docs/LAYOUT.md); ``layout`` for folders without dataset.yaml.
        split: the split whose clips are scored.
        topology: a :class:`FaceTopology` or ``topology.npz`` overriding the dataset's own.
        allow_missing: score the clips that have a prediction and list the others in the report, instead
            of raising :class:`MetricError` listing them.
        progress: show a tqdm progress bar.

    Returns:
        The :func:`build_report` dict plus ``data`` (root, split, fps, clip counts), ``predictions`` (dir,
        missing clips, ignored files) and ``length_mismatch`` (clips whose prediction and ground-truth
        lengths differ by more than one frame).
    """
    from tqdm.auto import tqdm

    from memorytalker.data import load_dataset

    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise MetricError(f"prediction folder not found: {pred_dir}")
    index = load_dataset(data_dir, layout=layout, topology=topology)
    topo = index.topology
    records = index.clips(split)
    files = {p.stem: p for p in sorted(pred_dir.glob("*.npy")) if p.is_file()}
    split_ids = {r.clip_id for r in records}
    missing = [r.clip_id for r in records if r.clip_id not in files]
    ignored = sorted(set(files) - split_ids)
    if missing and not allow_missing:
        raise MetricError(
            f"{len(missing)} of {len(records)} clips of split {split!r} have no prediction in {pred_dir}: "
            + ", ".join(f"{c}.npy" for c in missing[:20])
            + (f", ... ({len(missing) - 20} more)" if len(missing) > 20 else "")
            + " (use --allow-missing to score the others)"
        )
    todo = [r for r in records if r.clip_id in files]
    if not todo:
        raise MetricError(f"no prediction in {pred_dir} matches a clip of split {split!r}")
    results, mismatch = [], []
    for rec in tqdm(todo, desc=f"evaluate-dir {split}", disable=not progress, dynamic_ncols=True):
        pred = _load_prediction(files[rec.clip_id], topo)
        gt = index.load_vertices(rec)
        res = evaluate_clip(
            rec.clip_id, rec.subject, pred, gt, index.template(rec.subject), topo.lips, topo.upper_face
        )
        if abs(res.pred_frames - res.gt_frames) > 1:
            mismatch.append(
                {"clip_id": rec.clip_id, "pred_frames": res.pred_frames, "gt_frames": res.gt_frames}
            )
        results.append(res)
    extra = {
        "data": {
            "root": str(data_dir),
            "layout": None if layout is None else str(layout),
            "split": split,
            "fps": index.fps,
            "clips_in_split": len(records),
            "clips_evaluated": len(results),
        },
        "predictions": {"dir": str(pred_dir), "missing": missing, "ignored": ignored},
        "length_mismatch": mismatch,
    }
    return build_report(results, index.units, topo, extra)


def summary_notes(report: Mapping[str, Any]) -> list[str]:
    """Human-readable notes on missing / ignored predictions and length mismatches of an evaluate_dir report."""
    notes = []
    preds = report.get("predictions") or {}
    if preds.get("missing"):
        m = preds["missing"]
        notes.append(f"not evaluated ({len(m)} clip(s) without a prediction): {_short(m)}")
    if preds.get("ignored"):
        ig = preds["ignored"]
        notes.append(
            f"ignored {len(ig)} prediction file(s) not in split {report['data']['split']!r}: {_short(ig)}"
        )
    mm = report.get("length_mismatch") or []
    if mm:
        notes.append(
            f"warning: {len(mm)} clip(s) differ from the ground truth by more than one frame (truncated to the "
            "shorter; is the prediction at the dataset fps?): "
            + _short([f"{d['clip_id']} ({d['pred_frames']} vs {d['gt_frames']})" for d in mm])
        )
    return notes


def _short(items: Iterable[str], n: int = 8) -> str:
    items = list(items)
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")
