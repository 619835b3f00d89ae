"""What a resumed run restores besides weights and optimizer: counters and RNG states."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class TrainState:
    """Counters that a checkpoint restores.

    Attributes:
        step: optimizer steps done.
        epoch: current epoch (0-based).
        batch_in_epoch: micro-batches of the current epoch already consumed (by this rank).
        best_metric / best_step: best validation value of ``checkpoint.monitor`` so far and its step.
        val_metrics: latest validation metrics.
        validated_step: step of the latest validation (-1 = none yet).
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_metric: float | None = None
    best_step: int | None = None
    val_metrics: dict[str, float] = field(default_factory=dict)
    validated_step: int = -1


def capture_rng() -> dict:
    """Every RNG state that influences training (torch CPU, CUDA, numpy global, python ``random``)."""
    np_state = np.random.get_state()  # noqa: NPY002 - the global state is what libraries use
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def restore_rng(state: Mapping) -> None:
    """Restore what :func:`capture_rng` saved (CUDA states only when the device count matches)."""
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))  # noqa: NPY002
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
