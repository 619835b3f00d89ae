"""The torch batch metrics (evaluation/batch.py) equal naive loops and the numpy metrics pooled over frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memorytalker.evaluation.batch import batch_sums
from memorytalker.evaluation.report import evaluate_clip, reduce_results


def test_batch_sums_match_naive_definitions():
    rng = np.random.default_rng(0)
    pred, gt = rng.normal(size=(2, 5, 6, 3)), rng.normal(size=(2, 5, 6, 3))
    lengths = [5, 3]
    mask = np.arange(5)[None] < np.array(lengths)[:, None]
    lips = np.array([1, 4])
    got = batch_sums(torch.tensor(pred), torch.tensor(gt), torch.tensor(mask), torch.tensor(lips))
    lve, fve, lmax, n = 0.0, 0.0, 0.0, 0
    for b, t_len in enumerate(lengths):
        for t in range(t_len):
            d = np.linalg.norm(pred[b, t] - gt[b, t], axis=-1)
            lve += max(d[i] ** 2 for i in lips)
            lmax += max(d[i] for i in lips)
            fve += d.mean()
            n += 1
    assert float(got["frames"]) == n
    assert float(got["lve"]) == pytest.approx(lve)
    assert float(got["fve"]) == pytest.approx(fve)
    assert float(got["lip_max"]) == pytest.approx(lmax)


def test_batch_sums_over_frames_equal_the_numpy_pooled_metrics():
    rng = np.random.default_rng(1)
    lengths = [7, 4, 6]
    t_max, v = max(lengths), 9
    pred, gt = rng.normal(size=(3, t_max, v, 3)), rng.normal(size=(3, t_max, v, 3))
    mask = np.arange(t_max)[None] < np.array(lengths)[:, None]
    lips, upper = np.array([0, 2, 5]), np.array([7, 8])
    sums = batch_sums(torch.tensor(pred), torch.tensor(gt), torch.tensor(mask), torch.tensor(lips))
    clips = [
        evaluate_clip(f"c{b}", "s", pred[b, :n], gt[b, :n], np.zeros((v, 3)), lips, upper)
        for b, n in enumerate(lengths)
    ]
    pooled = reduce_results(clips)
    frames = float(sums["frames"])
    assert frames == pooled.frames
    for name in ("fve", "lve", "lip_max"):
        assert float(sums[name]) / frames == pytest.approx(getattr(pooled, name), rel=1e-12)
