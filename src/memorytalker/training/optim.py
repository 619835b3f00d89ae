"""What trains and how fast: parameter-group selection, the optimizer and the learning-rate schedule."""

from __future__ import annotations

import math

import torch

from memorytalker.errors import ConfigError
from memorytalker.training.config import TrainConfig


def select_trainable(model: torch.nn.Module, cfg: TrainConfig) -> tuple[list[str], list[torch.nn.Parameter]]:
    """Set ``requires_grad`` from the stage's ``trainable`` / ``frozen`` groups.

    Parameters the model froze itself (its config's ``freeze_*`` switches) stay frozen. Returns the
    trainable group names and parameters.

    Raises:
        ConfigError: unknown group names, a parameter in no group, or nothing left to train.
    """
    groups = model.parameter_groups()
    stage, name = cfg.current, cfg.stage
    names = set(groups)
    unknown = sorted((set(stage.trainable) - {"*"} | set(stage.frozen)) - names)
    if unknown:
        raise ConfigError(
            f"stage {name!r}: unknown parameter group(s) {unknown}; the model has {sorted(names)}"
        )
    chosen = names if "*" in stage.trainable else set(stage.trainable)
    chosen -= set(stage.frozen)
    model_frozen = {id(p) for p in model.parameters() if not p.requires_grad}
    grouped = {id(p) for params in groups.values() for p in params}
    orphans = [n for n, p in model.named_parameters() if id(p) not in grouped]
    if orphans:
        raise ConfigError(f"model parameters in no parameter group: {orphans[:8]}")
    for p in model.parameters():
        p.requires_grad_(False)
    trainable: list[torch.nn.Parameter] = []
    seen: set[int] = set()
    for gname in sorted(chosen):
        for p in groups[gname]:
            if id(p) in model_frozen or id(p) in seen:
                continue
            p.requires_grad_(True)
            trainable.append(p)
            seen.add(id(p))
    if not trainable:
        raise ConfigError(
            f"stage {name!r}: nothing to train (groups {sorted(chosen) or 'none'} have no trainable "
            "parameters; is that part of the model disabled in model config?)"
        )
    return sorted(chosen), trainable


def make_optimizer(
    cfg: TrainConfig, params: list[torch.nn.Parameter], groups: dict[str, list[torch.nn.Parameter]]
) -> torch.optim.Optimizer:
    """Adam(W) over ``params`` at the stage's ``lr``; the groups named in its ``lr_scale`` get their own
    parameter group at ``lr * scale`` (the scheduler's factor applies to every group alike).

    Raises:
        ConfigError: ``lr_scale`` names a group that does not exist or has nothing to train.
    """
    o, stage, name = cfg.optim, cfg.current, cfg.stage
    unknown = sorted(set(stage.lr_scale) - set(groups))
    if unknown:
        raise ConfigError(f"stage {name!r}: lr_scale names unknown group(s) {unknown}")
    trainable = {id(p) for p in params}
    scaled: dict[int, float] = {}
    for gname, scale in stage.lr_scale.items():
        ids = [id(p) for p in groups[gname] if id(p) in trainable]
        if not ids:
            raise ConfigError(f"stage {name!r}: lr_scale names group {gname!r}, which does not train")
        scaled.update((i, float(scale)) for i in ids)
    param_groups = [{"params": [p for p in params if id(p) not in scaled], "lr": stage.lr}]
    for scale in sorted(set(scaled.values())):
        param_groups.append(
            {"params": [p for p in params if scaled.get(id(p)) == scale], "lr": stage.lr * scale}
        )
    param_groups = [g for g in param_groups if g["params"]]
    cls = torch.optim.AdamW if o.optimizer == "adamw" else torch.optim.Adam
    return cls(
        param_groups, lr=stage.lr, betas=tuple(o.betas), weight_decay=o.weight_decay, fused=o.fused or None
    )


def lr_factor(step: int, warmup: int, total: int | None, schedule: str, min_ratio: float) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based): linear warm-up over ``warmup`` steps,
    then constant, or a cosine from 1 to ``min_ratio`` reached at step ``total`` (held after it)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total is None or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_scheduler(
    cfg: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int | None
) -> torch.optim.lr_scheduler.LambdaLR:
    o = cfg.optim
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, o.warmup_steps, total_steps, o.schedule, o.min_lr_ratio)
    )
