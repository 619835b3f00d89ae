"""Validation during training: the inference path's metrics and the stage's loss over one loader."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from memorytalker.evaluation.batch import BATCH_METRICS, batch_sums
from memorytalker.models.losses import LossWeights, compute_losses


def validate_loader(
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    weights: LossWeights,
    lips: torch.Tensor,
    device: torch.device,
    autocast: Callable[[], Any],
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Validation metrics over one loader (pooled over frames, across processes with ``all_reduce``).

    ``lve`` / ``fve`` / ``lip_max`` come from ``model.predict`` (the inference path: audio and template only,
    no ground-truth motion, no teacher forcing), in the dataset's units (LVE squared); ``val_loss`` is the
    stage's loss ``weights`` (style term excluded: validation has no triplets) on the training forward pass.
    """
    from tqdm.auto import tqdm

    raw = getattr(model, "module", model)
    was_training = raw.training
    raw.eval()
    weights = dataclasses.replace(weights, style=0.0)
    totals = {k: torch.zeros((), dtype=torch.float64, device=device) for k in (*BATCH_METRICS, "frames")}
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    clips = torch.zeros((), dtype=torch.float64, device=device)
    try:
        for batch in tqdm(loader, desc="validate", leave=False, disable=not progress, dynamic_ncols=True):
            batch = batch.to(device)
            with autocast():
                out = raw(batch, teacher_forcing=False)
                pred = raw.predict(
                    batch.audio, batch.audio_lengths, batch.templates, num_frames=batch.frame_lengths
                )
            losses = compute_losses(out, batch, weights, raw.topology, raw.motion_scale)
            for k, v in batch_sums(pred.float(), batch.vertices, batch.frame_mask, lips).items():
                totals[k] += v
            loss_sum += losses["total"].detach().double() * len(batch)
            clips += len(batch)
    finally:
        raw.train(was_training)
    if all_reduce is not None:
        totals = {k: all_reduce(v) for k, v in totals.items()}
        loss_sum, clips = all_reduce(loss_sum), all_reduce(clips)
    frames = max(float(totals["frames"]), 1.0)
    out = {k: float(totals[k]) / frames for k in BATCH_METRICS}
    out["val_loss"] = float(loss_sum) / max(float(clips), 1.0)
    out["val_frames"] = float(totals["frames"])
    return out
