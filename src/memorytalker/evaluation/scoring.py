"""Scoring: predictions against a dataset split (``memorytalker evaluate-dir``) and a checkpoint predicting
every clip of a split (``memorytalker evaluate``).

* :func:`evaluate_predictions` scores in-memory predictions; :func:`evaluate_dir` scores
  ``PRED_DIR/<clip_id>.npy`` files against a dataset split.
* :func:`evaluate_checkpoint` loads a checkpoint strictly, predicts each clip with ``model.predict`` (the clip's
audio and its subject's neutral template; no speaker id, no reference motion; as many frames as the
ground truth), scores the five metrics (FVE, LVE, Lip-max, FDD, LDTW from :mod:`memorytalker.evaluation.metrics`)
per clip, reduces them per subject and pooled with :mod:`memorytalker.evaluation.report`, writes the report as
JSON, optionally the predictions (``<pred_dir>/<clip>.npy``, ``(T, V, 3)`` float32), and a PNG of predicted
vs ground-truth lip opening (:func:`memorytalker.topology.lip_opening`) over time for a few clips.
"""

from __future__ import annotations

import dataclasses
import json
import math
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from memorytalker.data.audio import FRAME_TOLERANCE
from memorytalker.data.layout import corpus_name
from memorytalker.errors import DatasetError
from memorytalker.evaluation.metrics import ArrayLike, MetricError, as_vertex_sequence
from memorytalker.evaluation.report import build_report, evaluate_clip
from memorytalker.topology import FaceTopology

if TYPE_CHECKING:
    from memorytalker.data.augment import RecordingCondition


@dataclass
class ClipPrediction:
    """One evaluated clip: ids and ``(T, V, 3)`` float32 predicted / ground-truth vertices."""

    clip_id: str
    subject: str
    pred: np.ndarray
    gt: np.ndarray
    template: np.ndarray
    phones: dict | None = None
    audio: np.ndarray | None = None


def pick_plot_clips(clips: list[ClipPrediction], count: int) -> list[ClipPrediction]:
    """Up to ``count`` clips, one per subject first (in order), then the next ones."""
    chosen, seen = [], set()
    for c in clips:
        if c.subject not in seen and len(chosen) < count:
            chosen.append(c)
            seen.add(c.subject)
    for c in clips:
        if len(chosen) >= count:
            break
        if c not in chosen:
            chosen.append(c)
    return chosen


def plot_lip_opening(
    clips: list[ClipPrediction], topology: FaceTopology, fps: float, units: str, path: str | Path
) -> dict:
    """Write a PNG of predicted vs ground-truth lips over time, one panel per clip, with the clip's P/B/M
    phones and pauses shaded: the inner lip gap (what closure is measured on; 0 = touching) when the
    topology has inner-lip contours, else the outer lip opening.

    Returns a summary: the quantity, the two vertices used and, per clip, the Pearson correlation.
    """
    from memorytalker.errors import TopologyError
    from memorytalker.evaluation.lipsync import BILABIALS, as_phones, pause_intervals
    from memorytalker.render.plots import plot_units, save_lip_plot
    from memorytalker.topology import inner_lip_gap, lip_opening

    try:
        inner = topology.inner_lips
        measure, label, pair = inner_lip_gap, "inner lip gap", (inner.mid_upper, inner.mid_lower)
    except TopologyError:
        measure, label, pair = lip_opening, "lip opening", topology.outer_lip_vertices
    out: dict[str, Any] = {
        "quantity": label,
        "upper_vertex": pair[0],
        "lower_vertex": pair[1],
        "units": plot_units(units)[1],
        "clips": {},
    }
    panels = []
    for c in clips:
        t = min(len(c.pred), len(c.gt))
        gt, pr = measure(c.gt[:t], topology), measure(c.pred[:t], topology)
        corr = float(np.corrcoef(gt, pr)[0, 1]) if t > 1 and gt.std() > 0 and pr.std() > 0 else float("nan")
        out["clips"][c.clip_id] = {"correlation": None if math.isnan(corr) else corr}
        spans = []
        if c.phones is not None:
            records = [{"phone": p.phone, "start": p.start, "end": p.end} for p in as_phones(c.phones)]
            spans += [(r["start"], r["end"], "bilabial") for r in records if r["phone"] in BILABIALS]
            spans += [(a, b, "pause") for a, b in pause_intervals(records)]
        panels.append(
            (f"{c.clip_id}   (Pearson r = {corr:.2f})", {"ground truth": gt, "prediction": pr}, spans)
        )
    title = f"{label}: vertex {pair[0]} (mid upper lip) to {pair[1]} (mid lower lip)"
    out["plot"] = str(save_lip_plot(path, panels, fps, units=units, title=title, label=label))
    return out


#: ``conditions`` of :func:`predict_split` besides a training speaker's name.
CONDITION_PROTOCOLS = ("auto", "all", "default")


def clip_conditions(
    model: Any, subject: str, conditions: str, dataset: str = ""
) -> list[tuple[str | None, int | None]]:
    """The ``(speaker, index)`` conditions a clip of ``subject`` (of corpus ``dataset``) is predicted under:
    ``[(None, None)]`` for a model without conditions; for a speaker-conditioned one (FaceFormer's one-hot,
    UniTalker's identities), a training speaker's clip under its own condition and another speaker's clip
    under ``conditions``: ``all`` = every training speaker (FaceFormer's published protocol: its metrics are
    averaged over them), ``default`` = the model's default condition (UniTalker's common identity), ``auto``
    = the kind's published protocol (``model.unseen_protocol``), or one condition's name."""
    if not int(getattr(model, "num_conditions", 0)):
        return [(None, None)]
    own = model.training_condition(subject, dataset)
    if own is not None:
        return [(model.speakers[own], own)]
    if conditions == "auto":
        conditions = model.unseen_protocol
    if conditions == "all":
        return model.training_conditions()
    if conditions == "default":
        i = int(model.default_condition)
        return [(model.speakers[i], i)]
    return [(conditions, model.condition_index(conditions))]


def predict_split(
    model: Any,
    index: Any,
    split: str,
    device: str = "cpu",
    progress: bool = True,
    max_clips: int | None = None,
    conditions: str = "auto",
    condition_batch: int = 16,
    recording: RecordingCondition | None = None,
) -> list[ClipPrediction]:
    """Predict every clip of ``split`` (``model.predict`` with the clip's audio and subject template).

    ``recording``: put each clip's audio through this condition first (room, noise, gain), drawn from a
    generator seeded by the clip's id, so every model hears the same noisy clips.

    A speaker-conditioned model predicts each clip under :func:`clip_conditions`; a clip predicted under
    several conditions gives one :class:`ClipPrediction` per condition, ``clip_id`` ``<clip>@<speaker>``
    (each with the clip's frames, so pooled and per-subject metrics average over the conditions). The
    conditions of a clip run as one batch of up to ``condition_batch`` copies of it (FaceFormer's 16
    training speakers: one autoregressive pass instead of 16).
    """
    import torch
    from tqdm.auto import tqdm

    records = index.clips(split)
    if max_clips is not None:
        records = records[:max_clips]
    out = []
    with torch.inference_mode():
        for rec in tqdm(records, desc=f"evaluate {split}", disable=not progress, dynamic_ncols=True):
            wave = index.load_audio(rec)
            if recording is not None and not recording.clean:
                wave = recording.apply(wave, np.random.default_rng(zlib.crc32(rec.clip_id.encode())))
            audio = torch.from_numpy(wave)[None].to(device)
            gt = index.load_vertices(rec)
            template = index.template(rec.subject)
            chosen = clip_conditions(model, rec.subject, conditions, corpus_name(index.root))
            phones = index.load_phonemes(rec)
            # every condition of the clip in one padded batch (equal to one call per condition)
            for start in range(0, len(chosen), condition_batch):
                part = chosen[start : start + condition_batch]
                n = len(part)
                extra = {}
                if part[0][1] is not None:
                    extra["conditions"] = torch.tensor([c for _, c in part], device=device)
                pred = model.predict(
                    audio.repeat(n, 1),
                    torch.full((n,), audio.shape[1], device=device),
                    torch.from_numpy(template)[None].to(device).repeat(n, 1, 1),
                    num_frames=torch.full((n,), gt.shape[0], device=device),
                    **extra,
                )
                for i, (speaker, _) in enumerate(part):
                    cid = rec.clip_id if len(chosen) == 1 else f"{rec.clip_id}@{speaker}"
                    out.append(
                        ClipPrediction(
                            cid, rec.subject, pred[i].float().cpu().numpy(), gt, template, phones, wave
                        )
                    )
    return out


def evaluate_predictions(
    preds: Mapping[str, ArrayLike],
    gts: Mapping[str, ArrayLike],
    subjects: Mapping[str, str],
    topology: FaceTopology,
    templates: Mapping[str, ArrayLike],
    units: str,
    progress: bool = False,
    phones: Mapping[str, Any] | None = None,
    audios: Mapping[str, np.ndarray] | None = None,
    fps: float | None = None,
) -> dict[str, Any]:
    """Score in-memory predictions and return the :func:`build_report` dict.

    Args:
        preds, gts: ``{clip_id: (T, V, 3) or (T, V*3)}``; every clip of ``preds`` needs a ground truth.
        subjects: ``{clip_id: subject}``.
        topology: supplies the ``lips`` and ``upper_face`` indices and ``V``.
        templates: ``{clip_id or subject: (V, 3)}`` neutral meshes (a clip-id key wins over its subject).
        units: vertex units of the data (``"m"``, ``"mm"``).
        progress: show a tqdm progress bar.
        phones: ``{clip_id: phone timings}`` (the phonemes JSON) for the lip-sync measures (clips without
            are not measured); audios: ``{clip_id: (S,) 16 kHz}`` for the speech-lip correlation.
        fps: mesh frame rate (default the topology's).
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
        res = evaluate_clip(cid, subject, preds[cid], gts[cid], tpl, topology.lips, topology.upper_face)
        timing = (phones or {}).get(cid)
        audio = (audios or {}).get(cid)
        results.append(
            with_lipsync(res, preds[cid], gts[cid], topology, timing, fps or topology.fps, units, audio)
        )
    return build_report(results, units, topology, lipsync_availability(topology))


def lipsync_availability(topology: FaceTopology) -> dict[str, Any]:
    """``{}`` when the topology has inner-lip contours (the lip-sync measures need them), else
    ``{"lipsync_unavailable": why}`` for the report."""
    from memorytalker.errors import TopologyError

    try:
        topology.inner_lips  # noqa: B018 - derives or validates the contours
    except TopologyError as exc:
        return {"lipsync_unavailable": str(exc)}
    return {}


def with_lipsync(
    result: Any,
    pred: ArrayLike,
    gt: ArrayLike,
    topology: FaceTopology,
    phones: Any,
    fps: float,
    units: str,
    audio: np.ndarray | None = None,
) -> Any:
    """``result`` with its lip-sync measures (:func:`memorytalker.evaluation.lipsync.lipsync_clip`) when the
    clip has phone timings and the topology inner-lip contours; unchanged otherwise."""
    import dataclasses

    from memorytalker.errors import TopologyError
    from memorytalker.evaluation.lipsync import lipsync_clip

    if phones is None:
        return result
    try:
        topology.inner_lips  # noqa: B018
    except TopologyError:
        return result
    try:
        ls = lipsync_clip(pred, gt, topology, phones, fps, units, audio=audio)
    except MetricError as exc:
        raise MetricError(f"clip {result.clip_id}: {exc}") from None
    return dataclasses.replace(result, lipsync=ls)


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
        missing clips, ignored files).

    Raises:
        MetricError: missing predictions (without ``allow_missing``), or predictions whose length differs from
            the ground truth's by more than :data:`~memorytalker.data.audio.FRAME_TOLERANCE` (all named).
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
        if abs(pred.shape[0] - gt.shape[0]) > FRAME_TOLERANCE:
            mismatch.append(f"{rec.clip_id} ({pred.shape[0]} predicted vs {gt.shape[0]} frames)")
            continue
        res = evaluate_clip(
            rec.clip_id, rec.subject, pred, gt, index.template(rec.subject), topo.lips, topo.upper_face
        )
        phones = index.load_phonemes(rec)
        audio = index.load_audio(rec) if phones is not None else None
        results.append(with_lipsync(res, pred, gt, topo, phones, index.fps, index.units, audio))
    if mismatch:
        raise MetricError(
            f"{len(mismatch)} prediction(s) in {pred_dir} differ from the ground truth by more than "
            f"{FRAME_TOLERANCE:g} frame: {_short(mismatch, 10)}; are they at the dataset's {index.fps:g} fps "
            "and for the whole clip?"
        )
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
        **lipsync_availability(topo),
    }
    return build_report(results, index.units, topo, extra)


def summary_notes(report: Mapping[str, Any]) -> list[str]:
    """Human-readable notes on missing / ignored predictions of an evaluate_dir report."""
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
    return notes


def _short(items: Iterable[str], n: int = 8) -> str:
    items = list(items)
    return ", ".join(items[:n]) + (f", ... ({len(items) - n} more)" if len(items) > n else "")


def score_clips(clips: list, index: Any, topology: FaceTopology) -> dict:
    """The metric report (:func:`evaluate_predictions`) of predicted clips: each has ``clip_id``, ``pred``
    and ``gt`` ``(T, V, 3)``, ``subject``, ``template`` ``(V, 3)``, ``phones`` (or None) and ``audio``;
    ``index`` gives the data's units and fps. Shared by ``evaluate`` and ``memorytalker adapt``."""
    return dict(
        evaluate_predictions(
            {c.clip_id: c.pred for c in clips},
            {c.clip_id: c.gt for c in clips},
            {c.clip_id: c.subject for c in clips},
            topology,
            templates={c.clip_id: c.template for c in clips},
            units=index.units,
            phones={c.clip_id: c.phones for c in clips if c.phones is not None},
            audios={c.clip_id: c.audio for c in clips},
            fps=index.fps,
        )
    )


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str | Path,
    split: str = "test",
    out: str | Path = "report.json",
    pred_dir: str | Path | None = None,
    layout: str | None = None,
    plot: str | Path | None = None,
    plot_clips: int = 3,
    device: str = "auto",
    progress: bool = True,
    max_clips: int | None = None,
    conditions: str = "auto",
    recording: RecordingCondition | None = None,
) -> dict:
    """Evaluate ``checkpoint`` on ``split`` of dataset ``data``; write the JSON report (and PNG plot).

    Args:
        checkpoint: a ``best.pt`` / ``last.pt``.
        data: processed dataset folder; ``layout`` for folders without ``dataset.yaml``.
        split: split to score (``test``, ``val``, BIWI's ``test_a`` / ``test_b``, ...).
        out: JSON report path. plot: PNG path (default: ``out`` with ``.png``; ``plot_clips`` panels).
        pred_dir: also save each prediction as ``<pred_dir>/<clip>.npy`` ``(T, V, 3)`` float32.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda``...
        max_clips: score only the first N clips (quick checks).
        conditions: for a speaker-conditioned model (FaceFormer, UniTalker), the condition of clips of
            speakers outside its training set (:func:`clip_conditions`: ``auto``, ``all``, ``default`` or a
            condition's name). A model with several output heads scores the head of the dataset's topology;
            a model of any topology (ScanTalk) scores the dataset's topology, one it never saw included.
        recording: score the clips as heard under this recording condition (:func:`predict_split`); the
            report names it (``report["recording"]``).

    Returns:
        The report dict (also written to ``out``).
    """

    from memorytalker.data import load_dataset
    from memorytalker.device import resolve_device
    from memorytalker.models.config import ANY_TOPOLOGY_KINDS
    from memorytalker.models.loaders import checkpoint_stage, load_model, read_checkpoint

    device = resolve_device(device)
    model, topology, _ = load_model(checkpoint, device=device)
    if len(getattr(model, "head_names", ())) > 1:  # the output head of the dataset's topology
        from memorytalker.models.unitalker import check_head_topology

        own = load_dataset(data, layout=layout).topology
        topology = model.select_head(check_head_topology(model, own))
    elif model.cfg.kind in ANY_TOPOLOGY_KINDS:  # any mesh: the dataset's own topology, trained on or not
        topology = model.use_topology(load_dataset(data, layout=layout).topology)
    index = load_dataset(data, layout=layout, topology=topology)
    if abs(index.fps - topology.fps) > 1e-6:
        raise DatasetError(
            f"dataset {data} delivers {index.fps:g} fps but checkpoint {checkpoint} was trained at {topology.fps:g} fps"
        )
    if conditions not in CONDITION_PROTOCOLS and getattr(model, "num_conditions", 0):
        model.condition_index(conditions)  # a clear error for a name that is not a training speaker
    clips = predict_split(
        model,
        index,
        split,
        device=device,
        progress=progress,
        max_clips=max_clips,
        conditions=conditions,
        recording=recording,
    )
    if pred_dir is not None:
        pdir = Path(pred_dir)
        pdir.mkdir(parents=True, exist_ok=True)
        for c in clips:
            np.save(pdir / f"{c.clip_id}.npy", c.pred.astype(np.float32))
    report = score_clips(clips, index, topology)
    ckpt = read_checkpoint(checkpoint)
    report["checkpoint"] = {
        "path": str(checkpoint),
        "stage": checkpoint_stage(ckpt),
        "step": ckpt.get("step"),
        "val_metrics": ckpt.get("val_metrics"),
    }
    if getattr(model, "num_conditions", 0):
        report["conditions"] = {
            "protocol": model.unseen_protocol if conditions == "auto" else conditions,
            "speakers": list(model.speakers),
            "predictions": len(clips),
        }
    if recording is not None and not recording.clean:
        report["recording"] = {"condition": recording.describe(), **dataclasses.asdict(recording)}
    report["data"] = {
        "root": str(data),
        "split": split,
        "clips": len({c.clip_id.split("@", 1)[0] for c in clips}),
        "fps": index.fps,
        "units": index.units,
    }
    out = Path(out)
    plot_path = Path(plot) if plot is not None else out.with_suffix(".png")
    if plot_clips > 0 and clips:
        report["lip_opening"] = plot_lip_opening(
            pick_plot_clips(clips, plot_clips), topology, index.fps, index.units, plot_path
        )
    if pred_dir is not None:
        report["predictions"] = str(pred_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=_json_default))
    return report


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
