"""The training loop, on Lightning Fabric: the same code on CPU, one GPU, or several GPUs / nodes (DDP).

:func:`train` runs one stage of a :class:`~memorytalker.training.config.TrainConfig`:

1. builds a Fabric from ``cfg.engine`` (``precision: auto`` = bf16-mixed on CUDA, 32-bit elsewhere),
   seeds everything (``optim.seed``), builds the model from ``cfg.model`` and the dataset's topology;
2. initialises from ``stage.init_from`` (strict; what was loaded is printed), or, with ``resume``, restores
   ``<run dir>/last.pt`` (weights, optimizer, scheduler, step, epoch, position in the epoch, RNG states);
3. trains the stage's parameter groups with Adam; gradient accumulation; gradient clipping; padded
   batches with masks; triplet sampling in the data loader when the stage needs it; a
   :class:`~memorytalker.training.sampler.ResumableDistributedSampler` shards the data across processes;
4. validates on the validation split (never test), writes ``last.pt`` and ``best.pt`` (lowest
   ``checkpoint.monitor``, LVE by default) atomically, logs to TensorBoard and CSV, shows tqdm bars.

Validation RNG is isolated (states saved before and restored after), so an interrupted and resumed run
follows exactly the uninterrupted one on CPU.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from memorytalker.errors import CheckpointError, ConfigError, DatasetError
from memorytalker.training.checkpoint import (
    CHECKPOINT_FORMAT,
    atomic_save,
    build_model,
    capture_rng,
    load_init,
    load_state_strict,
    read_checkpoint,
    restore_rng,
    topology_to_state,
)
from memorytalker.training.config import TrainConfig, config_to_dict, diff_configs
from memorytalker.training.logs import make_loggers
from memorytalker.training.sampler import ResumableDistributedSampler

LAST = "last.pt"
BEST = "best.pt"


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


@dataclass
class TrainResult:
    """What a finished :func:`train` call produced."""

    run_dir: Path
    last: Path
    best: Path | None
    state: TrainState
    init_report: str | None = None
    trainable_groups: list[str] = field(default_factory=list)
    trainable_parameters: int = 0
    audio_seconds: float = 0.0
    train_seconds: float = 0.0


# ---------------------------------------------------------------------------------------------- helpers
def resolve_precision(cfg: TrainConfig) -> str:
    """``engine.precision`` with ``auto`` resolved: bf16-mixed when training on CUDA, else 32-true."""
    prec = str(cfg.engine.precision)
    if prec != "auto":
        return {"32": "32-true", "64": "64-true"}.get(prec, prec)
    acc = cfg.engine.accelerator
    on_cuda = acc in ("cuda", "gpu") or (acc == "auto" and torch.cuda.is_available())
    return "bf16-mixed" if on_cuda else "32-true"


def _strategy(cfg: TrainConfig) -> str:
    # Stages leave some trainable parameters without gradient on some batches (e.g. clips without
    # phoneme labels skip the CTC head), which plain DDP rejects.
    return "ddp_find_unused_parameters_true" if cfg.engine.strategy == "ddp" else cfg.engine.strategy


def _devices(cfg: TrainConfig) -> int | str:
    dev = cfg.engine.devices
    if isinstance(dev, str) and dev.strip().isdigit():
        return int(dev)
    return dev


def select_trainable(model: torch.nn.Module, cfg: TrainConfig) -> tuple[list[str], list[torch.nn.Parameter]]:
    """Set ``requires_grad`` from the stage's ``trainable`` / ``frozen`` groups.

    Parameters the model froze itself (its config's ``freeze_*`` switches) stay frozen. Returns the
    trainable group names and parameters.

    Raises:
        ConfigError: unknown group names, a parameter in no group, or nothing left to train.
    """
    groups = model.parameter_groups()
    stage = cfg.stage
    names = set(groups)
    unknown = sorted((set(stage.trainable) - {"*"} | set(stage.frozen)) - names)
    if unknown:
        raise ConfigError(
            f"stage {stage.name!r}: unknown parameter group(s) {unknown}; the model has {sorted(names)}"
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
            f"stage {stage.name!r}: nothing to train (groups {sorted(chosen) or 'none'} have no trainable "
            "parameters; is that part of the model disabled in model config?)"
        )
    return sorted(chosen), trainable


def make_optimizer(
    cfg: TrainConfig, params: list[torch.nn.Parameter], groups: dict[str, list[torch.nn.Parameter]]
) -> torch.optim.Optimizer:
    """Adam(W) over ``params`` at ``stage.lr``; the groups named in ``stage.lr_scale`` get their own
    parameter group at ``lr * scale`` (the scheduler's factor applies to every group alike).

    Raises:
        ConfigError: ``lr_scale`` names a group that does not exist or has nothing to train.
    """
    o, stage = cfg.optim, cfg.stage
    unknown = sorted(set(stage.lr_scale) - set(groups))
    if unknown:
        raise ConfigError(f"stage {stage.name!r}: stage.lr_scale names unknown group(s) {unknown}")
    trainable = {id(p) for p in params}
    scaled: dict[int, float] = {}
    for gname, scale in stage.lr_scale.items():
        ids = [id(p) for p in groups[gname] if id(p) in trainable]
        if not ids:
            raise ConfigError(
                f"stage {stage.name!r}: stage.lr_scale names group {gname!r}, which does not train"
            )
        scaled.update((i, float(scale)) for i in ids)
    param_groups = [{"params": [p for p in params if id(p) not in scaled], "lr": stage.lr}]
    for scale in sorted(set(scaled.values())):
        param_groups.append(
            {"params": [p for p in params if scaled.get(id(p)) == scale], "lr": stage.lr * scale}
        )
    param_groups = [g for g in param_groups if g["params"]]
    cls = torch.optim.AdamW if o.optimizer == "adamw" else torch.optim.Adam
    return cls(param_groups, lr=stage.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def lr_factor(step: int, warmup: int, total: int | None, schedule: str, min_ratio: float) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based): linear warm-up over ``warmup`` steps,
    then constant, or a cosine from 1 to ``min_ratio`` reached at step ``total`` (held after it)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total is None or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _make_scheduler(
    cfg: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int | None
) -> torch.optim.lr_scheduler.LambdaLR:
    o = cfg.optim
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, o.warmup_steps, total_steps, o.schedule, o.min_lr_ratio)
    )


# ---------------------------------------------------------------------------------------------- validation
@torch.no_grad()
def batch_errors(
    pred: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor, lips: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Frame-pooled error sums of one padded batch (summed over valid frames; divide by ``frames``).

    Args:
        pred, gt: ``(B, T, V, 3)`` vertices; mask: ``(B, T)`` bool valid frames; lips: ``(L,)`` indices.

    Returns:
        ``lve`` (sum of per-frame max squared lip-vertex error, the CodeTalker LVE numerator), ``fve``
        (sum of per-frame mean vertex L2 error), ``lip_max`` (sum of per-frame max lip L2 error) and
        ``frames`` (number of valid frames), all float64 scalars.
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


def validate(
    model: torch.nn.Module,
    loader: torch.utils.data.DataLoader,
    cfg: TrainConfig,
    lips: torch.Tensor,
    device: torch.device,
    autocast: Callable[[], Any],
    all_reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Validation metrics over one loader (pooled over frames, across processes with ``all_reduce``).

    ``lve`` / ``fve`` / ``lip_max`` come from ``model.predict`` (the inference path: audio and template only,
    no ground-truth motion, no teacher forcing), in the dataset's units (LVE squared); ``val_loss`` is the
    stage's loss (style term excluded: validation has no triplets) on the training forward pass.
    """
    from tqdm.auto import tqdm

    from memorytalker.models.losses import compute_losses

    raw = getattr(model, "module", model)
    was_training = raw.training
    raw.eval()
    weights = dataclasses.replace(cfg.stage.loss, style=0.0)
    totals = {
        k: torch.zeros((), dtype=torch.float64, device=device) for k in ("lve", "fve", "lip_max", "frames")
    }
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    clips = torch.zeros((), dtype=torch.float64, device=device)
    topology = raw.topology if hasattr(raw, "topology") else None
    try:
        for batch in tqdm(loader, desc="validate", leave=False, disable=not progress, dynamic_ncols=True):
            batch = batch.to(device)
            with autocast():
                out = raw(batch, teacher_forcing=False)
                pred = raw.predict(
                    batch.audio, batch.audio_lengths, batch.templates, num_frames=batch.frame_lengths
                )
            losses = compute_losses(out, batch, weights, topology, raw.motion_scale)
            for k, v in batch_errors(pred.float(), batch.vertices, batch.frame_mask, lips).items():
                totals[k] += v
            loss_sum += losses["total"].detach().double() * len(batch)
            clips += len(batch)
    finally:
        raw.train(was_training)
    if all_reduce is not None:
        totals = {k: all_reduce(v) for k, v in totals.items()}
        loss_sum, clips = all_reduce(loss_sum), all_reduce(clips)
    frames = max(float(totals["frames"]), 1.0)
    return {
        "lve": float(totals["lve"]) / frames,
        "fve": float(totals["fve"]) / frames,
        "lip_max": float(totals["lip_max"]) / frames,
        "val_loss": float(loss_sum) / max(float(clips), 1.0),
        "val_frames": float(totals["frames"]),
    }


# ---------------------------------------------------------------------------------------------- training
class _Printer:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            tqdm.write(text)


def measure_motion_scale(index: Any, split: str, max_clips: int = 64) -> float:
    """The RMS vertex displacement from the subject's template over (up to ``max_clips`` evenly spaced)
    clips of ``split``, in the data's units: the model's motion unit (``ModelConfig.motion_scale``)."""
    clips = index.clips(split)
    if not clips:
        raise DatasetError(f"split {split!r} has no clips to measure the motion unit on")
    clips = clips[:: max(1, math.ceil(len(clips) / max_clips))]
    total, count = 0.0, 0
    for rec in clips:
        disp = index.load_vertices(rec).astype(np.float64) - index.template(rec.subject)[None]
        total += float(np.sum(disp**2))
        count += disp.shape[0] * disp.shape[1]
    scale = math.sqrt(total / max(count, 1))
    if not scale > 0:
        raise DatasetError(
            f"split {split!r}: the vertices never move from their templates (RMS displacement {scale}); "
            "there is no motion to learn"
        )
    return scale


def train(
    cfg: TrainConfig,
    overwrite: bool = False,
    on_step: Callable[[TrainState], None] | None = None,
    verbose: bool = True,
) -> TrainResult:
    """Run the stage ``cfg.stage`` of ``cfg`` to the end (``stage.max_epochs`` or ``optim.max_epochs``; ``optim.max_steps``).

    Args:
        cfg: the resolved config (:func:`~memorytalker.training.config.load_train_config`).
        overwrite: start afresh even if the run folder already holds a ``last.pt`` (otherwise an error
            asks for ``resume`` or another ``output_dir``).
        on_step: called after every optimizer step (after any checkpoint of that step is written).
        verbose: print what is loaded, validation results and where checkpoints go (rank 0).

    Returns:
        A :class:`TrainResult` (paths of ``last.pt`` / ``best.pt``, final counters).
    """
    from lightning_fabric import Fabric
    from torch.utils.data import DataLoader, Subset
    from tqdm.auto import tqdm

    from memorytalker.data import TalkingFaceDataset, collate_batch, load_dataset
    from memorytalker.models.losses import compute_losses

    cfg.validate()
    run_dir = cfg.run_dir
    last_path, best_path = run_dir / LAST, run_dir / BEST
    if last_path.exists() and not cfg.resume and not overwrite:
        raise CheckpointError(
            f"{last_path} already exists: continue that run with --resume (resume=true), start it again with "
            "--overwrite, or choose another output_dir"
        )
    if cfg.resume and not last_path.is_file():
        raise CheckpointError(f"resume=true but there is nothing to resume: {last_path} does not exist")

    resume_ckpt = read_checkpoint(last_path) if cfg.resume else None
    loggers = make_loggers(
        run_dir / "logs",
        tensorboard=cfg.logging.tensorboard,
        csv_log=cfg.logging.csv,
        resume_step=int(resume_ckpt["step"]) if resume_ckpt is not None else None,
        flush_every=1,
    )
    precision = resolve_precision(cfg)
    fabric = Fabric(
        accelerator=cfg.engine.accelerator,
        devices=_devices(cfg),
        strategy=_strategy(cfg),
        num_nodes=cfg.engine.num_nodes,
        precision=precision,
        loggers=loggers,
    )
    fabric.launch()
    say = _Printer(verbose and fabric.is_global_zero)
    if fabric.device.type == "cuda":
        torch.set_float32_matmul_precision(cfg.engine.matmul_precision)
    if cfg.engine.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    fabric.seed_everything(cfg.optim.seed, verbose=False)

    # ------------------------------------------------------------------ data and model
    index = load_dataset(cfg.data.root, layout=cfg.data.layout, topology=cfg.data.topology)
    topology = index.topology
    train_ds = TalkingFaceDataset(
        index,
        cfg.data.train_split,
        cache=cfg.data.cache,
        triplets=cfg.stage.triplets,
        max_seconds=cfg.data.max_seconds,
        seed=cfg.optim.seed,
    )
    val_ds = TalkingFaceDataset(index, cfg.data.val_split, cache=cfg.data.cache, subjects=train_ds.subjects)
    model = build_model(cfg.effective_model, topology, load_pretrained=not cfg.resume)
    init_report = None
    if not cfg.resume and cfg.init_path is not None:
        report = load_init(model, cfg.init_path, cfg.stage.init_exclude)
        init_ckpt = read_checkpoint(cfg.init_path)
        report.config_differences = diff_configs(
            init_ckpt["config"].get("model", {}), config_to_dict(cfg)["model"]
        )
        init_report = str(report)
        say(init_report)
    if not cfg.resume and cfg.init_path is None:
        if cfg.effective_model.motion_scale is None:
            model.set_motion_scale(measure_motion_scale(index, cfg.data.train_split))
            say(
                f"motion unit measured on split {cfg.data.train_split!r}: "
                f"{float(model.motion_scale):.6g} {index.units} (RMS vertex displacement)"
            )
    elif not cfg.resume:
        say(f"motion unit from {cfg.init_path}: {float(model.motion_scale):.6g} {index.units}")
    group_names, params = select_trainable(model, cfg)
    n_train = sum(p.numel() for p in params)
    n_total = sum(p.numel() for p in model.parameters())
    say(
        f"stage {cfg.stage.name!r}: training group(s) {', '.join(group_names)} "
        f"({n_train:,} of {n_total:,} parameters) on {fabric.world_size} process(es), {fabric.device}, "
        f"precision {precision}; run folder {run_dir}"
    )
    optimizer = make_optimizer(cfg, params, model.parameter_groups())
    raw_model = model
    model, optimizer = fabric.setup(model, optimizer)
    lips = torch.as_tensor(np.array(topology.lips), dtype=torch.long, device=fabric.device)

    sampler = ResumableDistributedSampler(
        train_ds, num_replicas=fabric.world_size, rank=fabric.global_rank, shuffle=True, seed=cfg.optim.seed
    )
    loader_gen = torch.Generator().manual_seed(cfg.optim.seed)  # keeps DataLoader off the global RNG
    train_loader = DataLoader(
        train_ds,
        batch_size=cfg.optim.batch_size,
        sampler=sampler,
        collate_fn=collate_batch,
        num_workers=cfg.data.num_workers,
        generator=loader_gen,
        pin_memory=fabric.device.type == "cuda",
    )
    micro_per_epoch = math.ceil(sampler.num_samples / cfg.optim.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / cfg.optim.accumulate_grad_batches)
    total_steps = cfg.max_epochs * steps_per_epoch
    if cfg.optim.max_steps is not None:
        total_steps = min(total_steps, cfg.optim.max_steps)
    scheduler = _make_scheduler(cfg, optimizer, total_steps)
    val_indices = list(range(len(val_ds)))
    if cfg.data.val_max_clips is not None:
        val_indices = val_indices[: cfg.data.val_max_clips]
    val_loader = DataLoader(
        Subset(val_ds, val_indices[fabric.global_rank :: fabric.world_size]),
        batch_size=cfg.optim.val_batch_size,
        shuffle=False,
        collate_fn=collate_batch,
        num_workers=cfg.data.num_workers,
        generator=torch.Generator().manual_seed(cfg.optim.seed),
    )

    # ------------------------------------------------------------------ resume
    state = TrainState()
    if cfg.resume:
        ckpt = resume_ckpt
        diffs = [d for d in diff_configs(ckpt["config"], config_to_dict(cfg)) if not d.startswith("resume:")]
        if diffs:
            say("resuming with a config that differs from the checkpoint's: " + "; ".join(diffs))
        load_state_strict(raw_model, ckpt["model_state"], f"checkpoint {last_path}")
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"{last_path}: its optimizer state does not fit this stage's trainable parameters ({exc})"
            ) from exc
        scheduler.load_state_dict(ckpt["scheduler"])
        state = TrainState(**ckpt["train_state"])
        restore_rng(ckpt["rng"])
        say(f"resumed {last_path}: step {state.step}, epoch {state.epoch + 1}, batch {state.batch_in_epoch}")
    if fabric.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))

    dataset_info = {
        "name": index.name,
        "root": str(cfg.data.root),
        "fps": float(index.fps),
        "units": index.units,
        "train_subjects": list(train_ds.subjects),
    }

    def checkpoint_dict(with_optimizer: bool) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "model_state": {k: v.detach().cpu() for k, v in raw_model.state_dict().items()},
            "optimizer": optimizer.state_dict() if with_optimizer else None,
            "scheduler": scheduler.state_dict(),
            "step": state.step,
            "epoch": state.epoch,
            "batch_in_epoch": state.batch_in_epoch,
            "train_state": dataclasses.asdict(state),
            "config": config_to_dict(cfg),
            "topology": topology_to_state(topology),
            "val_metrics": dict(state.val_metrics),
            "best_metric": state.best_metric,
            "best_step": state.best_step,
            "monitor": cfg.checkpoint.monitor,
            "rng": capture_rng(),
            "dataset": dataset_info,
            "trainable_groups": group_names,
        }

    def save_last() -> None:
        if fabric.is_global_zero:
            atomic_save(checkpoint_dict(True), last_path)
            for lg in fabric.loggers:
                lg.save()
        fabric.barrier()

    def run_validation() -> None:
        rng = capture_rng()
        metrics = validate(
            model,
            val_loader,
            cfg,
            lips,
            fabric.device,
            fabric.autocast,
            all_reduce=(lambda t: fabric.all_reduce(t, reduce_op="sum")) if fabric.world_size > 1 else None,
            progress=cfg.logging.progress and fabric.is_global_zero,
        )
        restore_rng(rng)
        state.val_metrics = metrics
        state.validated_step = state.step
        fabric.log_dict({f"val/{k}": v for k, v in metrics.items()}, step=state.step)
        value = metrics[cfg.checkpoint.monitor]
        improved = state.best_metric is None or value < state.best_metric
        if improved:
            state.best_metric, state.best_step = value, state.step
        done_epochs = state.epoch + state.batch_in_epoch / max(micro_per_epoch, 1)
        say(
            f"step {state.step} (epoch {done_epochs:.2f}) validation on {cfg.data.val_split!r}: "
            + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "val_frames")
            + (f"  -> new best {cfg.checkpoint.monitor}, wrote {best_path}" if improved else "")
        )
        if improved and fabric.is_global_zero:
            atomic_save(checkpoint_dict(False), best_path)
        save_last()

    # ------------------------------------------------------------------ loop
    o = cfg.optim
    accum = o.accumulate_grad_batches
    weights = cfg.stage.loss
    finished = o.max_steps is not None and state.step >= o.max_steps
    audio_seconds, t0 = 0.0, time.perf_counter()
    model.train()
    while not finished and state.epoch < cfg.max_epochs:
        epoch = state.epoch
        sampler.set_epoch(epoch)
        train_ds.set_epoch(epoch)
        sampler.set_start(min(state.batch_in_epoch * o.batch_size, sampler.num_samples))
        bar = tqdm(
            total=micro_per_epoch,
            initial=state.batch_in_epoch,
            desc=f"{cfg.stage.name} epoch {epoch + 1}/{cfg.max_epochs}",
            disable=not (cfg.logging.progress and fabric.is_global_zero),
            dynamic_ncols=True,
            leave=False,
        )
        sums: dict[str, float] = {}
        n_logged = 0
        for batch in train_loader:
            batch = batch.to(fabric.device)
            micro = state.batch_in_epoch
            boundary = (micro + 1) % accum == 0 or micro + 1 == micro_per_epoch
            with fabric.no_backward_sync(model, enabled=not boundary):
                out = model(batch, teacher_forcing=cfg.stage.teacher_forcing)
                losses = compute_losses(out, batch, weights, topology, raw_model.motion_scale)
                total = losses["total"]
                if not torch.isfinite(total):
                    raise FloatingPointError(
                        f"non-finite training loss at step {state.step} (clips {batch.clip_ids}): "
                        + ", ".join(f"{k}={float(v):.4g}" for k, v in losses.items())
                    )
                fabric.backward(total / accum)
            for k, v in losses.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n_logged += 1
            audio_seconds += float(batch.audio_lengths.sum()) / 16000.0
            state.batch_in_epoch += 1
            bar.update(1)
            if not boundary:
                continue
            if o.grad_clip is not None:
                fabric.clip_gradients(model, optimizer, max_norm=o.grad_clip, error_if_nonfinite=False)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            scheduler.step()
            state.step += 1
            bar.set_postfix(step=state.step, loss=f"{float(total.detach()):.4g}")
            if state.step % cfg.logging.every_n_steps == 0:
                logs = {f"train/{k}": v / n_logged for k, v in sums.items()}
                logs["train/lr"] = scheduler.get_last_lr()[0]
                logs["train/epoch"] = epoch
                elapsed = time.perf_counter() - t0
                logs["train/audio_sec_per_sec"] = audio_seconds / max(elapsed, 1e-9)
                fabric.log_dict(logs, step=state.step)
                sums, n_logged = {}, 0
            finished = o.max_steps is not None and state.step >= o.max_steps
            if cfg.checkpoint.val_every_n_steps and state.step % cfg.checkpoint.val_every_n_steps == 0:
                run_validation()
            elif cfg.checkpoint.every_n_steps and state.step % cfg.checkpoint.every_n_steps == 0:
                save_last()
            if on_step is not None:
                on_step(state)
            if finished:
                break
        bar.close()
        if finished:
            break
        state.epoch += 1
        state.batch_in_epoch = 0
        if state.epoch % cfg.checkpoint.val_every_n_epochs == 0 or state.epoch >= cfg.max_epochs:
            run_validation()
    if state.validated_step != state.step or not last_path.exists():
        run_validation()
    train_seconds = time.perf_counter() - t0
    for lg in fabric.loggers:
        lg.finalize("success")
    say(
        f"done: step {state.step}, best {cfg.checkpoint.monitor} {state.best_metric:.4g} at step "
        f"{state.best_step}; {best_path}"
    )
    return TrainResult(
        run_dir=run_dir,
        last=last_path,
        best=best_path if best_path.exists() else None,
        state=state,
        init_report=init_report,
        trainable_groups=group_names,
        trainable_parameters=n_train,
        audio_seconds=audio_seconds,
        train_seconds=train_seconds,
    )
