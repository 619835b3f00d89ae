"""The frame-pooled metrics of :mod:`memorytalker.evaluation.metrics` on padded torch batches.

Training validation scores whole batches on the device; these sums, divided by the number of valid frames
after summing over every batch (and process), equal the numpy metrics pooled over all frames of all clips
(:func:`memorytalker.evaluation.report.reduce_results`): tests/test_metrics_batch.py checks it.
"""

from __future__ import annotations

import torch

#: The metrics :func:`batch_sums` returns, besides ``frames``.
BATCH_METRICS = ("fve", "lve", "lip_max")


@torch.no_grad()
def batch_sums(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, lips: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Sums over the valid frames of one padded batch (divide by ``frames`` to get the pooled metric).

    Args:
        pred, gt: ``(B, T, V, 3)`` vertices (truncated to the shorter ``T``); mask: ``(B, T)`` bool valid
            frames; lips: ``(L,)`` lip vertex indices.

    Returns:
        float64 scalars: ``lve`` (per-frame max squared lip-vertex error), ``fve`` (per-frame mean vertex
        L2 error), ``lip_max`` (per-frame max lip L2 error) and ``frames`` (valid frames).
    """
    t = min(pred.shape[1], gt.shape[1])
    pred, gt, mask = pred[:, :t].double(), gt[:, :t].double(), mask[:, :t]
    sq = ((pred - gt) ** 2).sum(-1)  # (B, T, V)
    lip_sq = sq[:, :, lips].amax(-1)  # (B, T)
    m = mask.double()
    return {
        "lve": (lip_sq * m).sum(),
        "fve": (sq.sqrt().mean(-1) * m).sum(),
        "lip_max": (lip_sq.sqrt() * m).sum(),
        "frames": m.sum(),
    }
