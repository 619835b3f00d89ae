"""Validation during training: the inference path's metrics and the stage's loss over one loader."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from memorytalker.errors import TopologyError
from memorytalker.evaluation.batch import BATCH_METRICS, batch_sums
from memorytalker.models.losses import LossWeights, compute_losses, signed_gaps

#: Weight of frames where the ground truth's lips are closed in ``gap_error`` (as ``loss.gap``'s default).
GAP_CLOSED_WEIGHT = 4.0
#: The lips count as closed below this many motion units of midline gap (as ``loss.gap``'s default).
GAP_CLOSED_BELOW = 0.3


def validate_loader(
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    weights: LossWeights,
    device: torch.device,
    autocast: Callable[[], Any],
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Validation metrics over one loader (pooled over frames, across processes with ``all_reduce``).

    ``lve`` / ``fve`` / ``lip_max`` come from ``model.predict`` (the inference path: audio and template only,
    no ground-truth motion, no teacher forcing), in the dataset's units (LVE squared); ``val_loss`` is the
    stage's loss ``weights`` (style term excluded: validation has no triplets) on the training forward pass.

    Batches are scored on their own topology (``model.topology_for(batch)``: a multi-corpus model's batch
    names its head) and predicted with ``model.predict_options(batch)`` (a speaker-conditioned kind: each
    clip's own condition). Lip closure on the same predictions, over the inner-lip midline gap ``g`` (data units): ``gap_error`` =
    ``sum_t w_t (g_pred - g_true)^2 / sum_t w_t`` with ``w_t = 1 + GAP_CLOSED_WEIGHT`` on frames where the
    truth is closed (``g_true < GAP_CLOSED_BELOW`` motion units) - squared like LVE, so ``lve_gap = lve +
    gap_error`` (the ``checkpoint.monitor`` that counts missed closures and an open rest) is a sum of like
    quantities; ``closure`` = the fraction of those closed frames on which the prediction is closed too.
    """
    from tqdm.auto import tqdm

    raw = getattr(model, "module", model)
    was_training = raw.training
    raw.eval()
    weights = dataclasses.replace(weights, style=0.0)
    totals = {k: torch.zeros((), dtype=torch.float64, device=device) for k in (*BATCH_METRICS, "frames")}
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    clips = torch.zeros((), dtype=torch.float64, device=device)
    gap = {k: torch.zeros((), dtype=torch.float64, device=device) for k in ("err", "weight", "closed", "hit")}
    regions: dict[str, tuple] = {}  # topology name -> (lips, midline or None)
    try:
        for batch in tqdm(loader, desc="validate", leave=False, disable=not progress, dynamic_ncols=True):
            batch = batch.to(device)
            topology = raw.topology_for(batch)
            if topology.name not in regions:
                regions[topology.name] = _regions(topology, device)
            lips, midline = regions[topology.name]
            # no autograd graph: a kind decoding every vertex of every frame would keep it for a whole batch
            with autocast(), torch.no_grad():
                out = raw(batch, teacher_forcing=False)
                pred = raw.predict(
                    batch.audio,
                    batch.audio_lengths,
                    batch.templates,
                    num_frames=batch.frame_lengths,
                    **raw.predict_options(batch),
                )
            unit = raw.unit_for(batch)
            losses = compute_losses(out, batch, weights, topology, unit)
            for k, v in batch_sums(pred.float(), batch.vertices, batch.frame_mask, lips).items():
                totals[k] += v
            if midline is not None:
                _gap_sums(gap, pred, batch, topology, midline, GAP_CLOSED_BELOW * float(unit))
            loss_sum += losses["total"].detach().double() * len(batch)
            clips += len(batch)
    finally:
        raw.train(was_training)
    if all_reduce is not None:
        totals = {k: all_reduce(v) for k, v in totals.items()}
        loss_sum, clips = all_reduce(loss_sum), all_reduce(clips)
        gap = {k: all_reduce(v) for k, v in gap.items()}
    frames = max(float(totals["frames"]), 1.0)
    out = {k: float(totals[k]) / frames for k in BATCH_METRICS}
    out["val_loss"] = float(loss_sum) / max(float(clips), 1.0)
    out["val_frames"] = float(totals["frames"])
    if all(m is not None for _, m in regions.values()) and regions:
        out["gap_error"] = float(gap["err"]) / max(float(gap["weight"]), 1e-12)
        out["lve_gap"] = out["lve"] + out["gap_error"]
        if float(gap["closed"]) > 0:  # no closed frame in the split: no closure rate to report
            out["closure"] = float(gap["hit"]) / float(gap["closed"])
    return out


def _regions(topology: Any, device: torch.device) -> tuple[torch.Tensor, tuple | None]:
    """A topology's lip vertices (a tensor on ``device``) and inner-lip midline pair (None for a topology
    without inner-lip contours: no gap measures there, and no ``lve_gap``)."""
    lips = torch.as_tensor(np.array(topology.lips), dtype=torch.long, device=device)
    try:
        inner = topology.inner_lips
    except TopologyError:
        return lips, None
    return lips, ([inner.mid_upper], [inner.mid_lower])


def _gap_sums(gap: dict, pred, batch, topology, midline, closed_below: float) -> None:
    """Add one batch's closure-weighted midline-gap error, weight, closed frames and closed hits to ``gap``."""
    g_pred = signed_gaps(pred.detach().float(), topology, midline)[..., 0].double()
    g_true = signed_gaps(batch.vertices.float(), topology, midline)[..., 0].double()
    m = batch.frame_mask.double()
    closed = (g_true < closed_below).double() * m
    w = m + GAP_CLOSED_WEIGHT * closed
    gap["err"] += ((g_pred - g_true).square() * w).sum()
    gap["weight"] += w.sum()
    gap["closed"] += closed.sum()
    gap["hit"] += ((g_pred < closed_below).double() * closed).sum()
