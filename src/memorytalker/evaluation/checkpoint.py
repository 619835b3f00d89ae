"""``memorytalker evaluate``: predict every clip of a split from audio alone, score it, plot lip opening.

:func:`evaluate_checkpoint` loads a checkpoint strictly, predicts each clip with ``model.predict`` (the clip's
audio and its subject's neutral template; no speaker id, no reference motion; as many frames as the
ground truth), scores the five metrics (FVE, LVE, Lip-max, FDD, LDTW from :mod:`memorytalker.evaluation.metrics`)
per clip, reduces them per subject and pooled with :mod:`memorytalker.evaluation`, writes the report as
JSON, optionally the predictions (``<pred_dir>/<clip>.npy``, ``(T, V, 3)`` float32), and a PNG of predicted
vs ground-truth lip opening (:func:`memorytalker.topology.lip_opening`) over time for a few clips.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from memorytalker.errors import DatasetError
from memorytalker.topology import FaceTopology


@dataclass
class ClipPrediction:
    """One evaluated clip: ids and ``(T, V, 3)`` float32 predicted / ground-truth vertices."""

    clip_id: str
    subject: str
    pred: np.ndarray
    gt: np.ndarray
    template: np.ndarray


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
    """Write a PNG of predicted vs ground-truth lip opening over time, one panel per clip.

    Returns a summary: the two vertices used and, per clip, the Pearson correlation of the two curves.
    """
    from memorytalker.render.plots import plot_units, save_lip_plot
    from memorytalker.topology import lip_opening

    upper, lower = topology.outer_lip_vertices
    out: dict[str, Any] = {
        "upper_vertex": upper,
        "lower_vertex": lower,
        "units": plot_units(units)[1],
        "clips": {},
    }
    panels = []
    for c in clips:
        t = min(len(c.pred), len(c.gt))
        gt = lip_opening(c.gt[:t], topology)
        pr = lip_opening(c.pred[:t], topology)
        corr = float(np.corrcoef(gt, pr)[0, 1]) if t > 1 and gt.std() > 0 and pr.std() > 0 else float("nan")
        out["clips"][c.clip_id] = {"correlation": None if math.isnan(corr) else corr}
        panels.append((f"{c.clip_id}   (Pearson r = {corr:.2f})", {"ground truth": gt, "prediction": pr}))
    title = f"lip opening: vertex {upper} (mid upper lip) to {lower} (mid lower lip)"
    out["plot"] = str(save_lip_plot(path, panels, fps, units=units, title=title))
    return out


def predict_split(
    model: Any,
    index: Any,
    split: str,
    device: str = "cpu",
    progress: bool = True,
    max_clips: int | None = None,
) -> list[ClipPrediction]:
    """Predict every clip of ``split`` (``model.predict`` with the clip's audio and subject template)."""
    import torch
    from tqdm.auto import tqdm

    records = index.clips(split)
    if max_clips is not None:
        records = records[:max_clips]
    out = []
    with torch.inference_mode():
        for rec in tqdm(records, desc=f"evaluate {split}", disable=not progress, dynamic_ncols=True):
            audio = torch.from_numpy(index.load_audio(rec))[None].to(device)
            gt = index.load_vertices(rec)
            template = index.template(rec.subject)
            pred = model.predict(
                audio,
                torch.tensor([audio.shape[1]], device=device),
                torch.from_numpy(template)[None].to(device),
                num_frames=torch.tensor([gt.shape[0]], device=device),
            )
            out.append(ClipPrediction(rec.clip_id, rec.subject, pred[0].float().cpu().numpy(), gt, template))
    return out


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

    Returns:
        The report dict (also written to ``out``).
    """
    import torch

    from memorytalker.data import load_dataset
    from memorytalker.evaluation.report import evaluate_predictions
    from memorytalker.models.loaders import checkpoint_stage, load_model, read_checkpoint

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model, topology, _ = load_model(checkpoint, device=device)
    index = load_dataset(data, layout=layout, topology=topology)
    if abs(index.fps - topology.fps) > 1e-6:
        raise DatasetError(
            f"dataset {data} delivers {index.fps:g} fps but checkpoint {checkpoint} was trained at {topology.fps:g} fps"
        )
    clips = predict_split(model, index, split, device=device, progress=progress, max_clips=max_clips)
    if pred_dir is not None:
        pdir = Path(pred_dir)
        pdir.mkdir(parents=True, exist_ok=True)
        for c in clips:
            np.save(pdir / f"{c.clip_id}.npy", c.pred.astype(np.float32))
    report = evaluate_predictions(
        {c.clip_id: c.pred for c in clips},
        {c.clip_id: c.gt for c in clips},
        {c.clip_id: c.subject for c in clips},
        topology,
        templates={c.clip_id: c.template for c in clips},
        units=index.units,
    )
    ckpt = read_checkpoint(checkpoint)
    report = dict(report)
    report["checkpoint"] = {
        "path": str(checkpoint),
        "stage": checkpoint_stage(ckpt),
        "step": ckpt.get("step"),
        "val_metrics": ckpt.get("val_metrics"),
    }
    report["data"] = {
        "root": str(data),
        "split": split,
        "clips": len(clips),
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
