"""The training loop, on Lightning Fabric: the same code on CPU, one GPU, or several GPUs / nodes (DDP).

:func:`train` runs the stage ``cfg.stage`` of a :class:`~memorytalker.training.config.TrainConfig`, in
pieces that read top to bottom:

1. :func:`setup` - the Fabric (``precision: auto`` = bf16-mixed on CUDA, 32-bit elsewhere), seeds
   (``optim.seed``), the datasets and the model (``cfg.model``, the dataset's topology);
2. :func:`initialise` - a fresh run starts from the stage's ``init_from`` (strict; what was loaded is
   printed) or measures the motion unit on the training split;
3. :func:`prepare` - trainable parameter groups, Adam(W) with per-group learning rates, loaders (a
   :class:`~memorytalker.training.sampler.ResumableDistributedSampler` shards the data), the schedule;
4. :func:`resume` - with ``resume``, restores ``<run dir>/last.pt`` (weights, optimizer, scheduler, step,
   epoch, position in the epoch, RNG states);
5. :func:`fit` - epochs of :func:`train_epoch` (padded batches with masks, gradient accumulation and
   clipping), :func:`validate` on the validation split (never test) and :func:`save` of ``last.pt`` and
   ``best.pt`` (lowest ``checkpoint.monitor``), atomically; TensorBoard and CSV logs, tqdm bars.

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

from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.errors import CheckpointError, ConfigError, DatasetError
from memorytalker.models.builders import build_model
from memorytalker.models.config import ANY_TOPOLOGY_KINDS, MULTI_HEAD_KINDS
from memorytalker.models.loaders import (
    load_init,
    load_state_strict,
    read_checkpoint,
    save_checkpoint,
)
from memorytalker.training.config import TrainConfig, config_to_dict, diff_configs
from memorytalker.training.optim import make_optimizer, make_scheduler, select_trainable
from memorytalker.training.state import TrainState, capture_rng, restore_rng

LAST = "last.pt"
BEST = "best.pt"


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


@dataclass
class Run:
    """Everything one stage's training holds, built by :func:`setup` and :func:`prepare`."""

    cfg: TrainConfig
    fabric: Any
    say: Callable[[str], None]
    index: Any
    train_ds: Any
    val_ds: Any
    raw_model: torch.nn.Module
    precision: str
    state: TrainState = field(default_factory=TrainState)
    init_report: str | None = None
    model: Any = None  # the Fabric-wrapped model
    optimizer: Any = None
    scheduler: Any = None
    sampler: Any = None
    train_loader: Any = None
    val_loader: Any = None
    group_names: list[str] = field(default_factory=list)
    trainable_parameters: int = 0
    micro_per_epoch: int = 1
    audio_seconds: float = 0.0
    resume_checkpoint: dict | None = None  # last.pt, read once by setup when resuming
    indices: list = field(default_factory=list)  # every corpus trained on (``index`` is the first)
    corpus_names: list[str] = field(default_factory=list)

    @property
    def topology(self) -> Any:
        return self.index.topology

    @property
    def last_path(self) -> Path:
        return self.cfg.run_dir / LAST

    @property
    def best_path(self) -> Path:
        return self.cfg.run_dir / BEST

    @property
    def dataset_info(self) -> dict:
        info = {
            "name": self.index.name,
            "root": str(self.cfg.data.root),
            "fps": float(self.index.fps),
            "units": self.index.units,
            "train_subjects": list(self.train_ds.subjects),
        }
        if len(self.indices) > 1:
            info["corpora"] = [
                {
                    "name": n,
                    "root": str(i.root),
                    "topology": i.topology.name,
                    "fps": float(i.fps),
                    "units": i.units,
                }
                for n, i in zip(self.corpus_names, self.indices)
            ]
        return info


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


class _Printer:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            tqdm.write(text)


def _spread_clips(index: Any, split: str, max_clips: int) -> list:
    clips = index.clips(split)
    if not clips:
        raise DatasetError(f"{index.root}: split {split!r} has no clips")
    return clips[:: max(1, math.ceil(len(clips) / max_clips))]


def measure_motion_scale(index: Any, split: str, max_clips: int = 64) -> float:
    """The RMS vertex displacement from the subject's template over (up to ``max_clips`` evenly spaced)
    clips of ``split``, in the data's units: the model's motion unit (``ModelConfig.motion_scale``).
    ``index`` may be a list of datasets (corpora trained together): pooled over up to ``max_clips`` of each."""
    total, count = 0.0, 0
    for idx in index if isinstance(index, (list, tuple)) else [index]:
        for rec in _spread_clips(idx, split, max_clips):
            disp = idx.load_vertices(rec).astype(np.float64) - idx.template(rec.subject)[None]
            total += float(np.sum(disp**2))
            count += disp.shape[0] * disp.shape[1]
    scale = math.sqrt(total / max(count, 1))
    if not scale > 0:
        raise DatasetError(
            f"split {split!r}: the vertices never move from their templates (RMS displacement {scale}); "
            "there is no motion to learn"
        )
    return scale


def sample_displacements(indices: list, split: str, max_frames: int = 2048) -> np.ndarray:
    """Up to ``max_frames`` vertex displacements ``(N, V, 3)`` from the subjects' templates, frames spread
    evenly over the clips of ``split`` of ``indices`` (one topology): what a PCA basis is fitted on."""
    clips = [(idx, rec) for idx in indices for rec in idx.clips(split)]
    if not clips:
        raise DatasetError(f"split {split!r} has no clips to fit a PCA basis on")
    per_clip = max(1, math.ceil(max_frames / len(clips)))
    out = []
    for idx, rec in clips:
        disp = idx.load_vertices(rec).astype(np.float32) - idx.template(rec.subject)[None]
        step = max(1, disp.shape[0] // per_clip)
        out.append(disp[::step][:per_clip])
    frames = np.concatenate(out)
    return frames[:: max(1, math.ceil(len(frames) / max_frames))]


# ---------------------------------------------------------------------------------------------- pieces
def setup(cfg: TrainConfig, overwrite: bool = False, verbose: bool = True) -> Run:
    """Fabric, seeds, datasets and the model of ``cfg`` (nothing trained or loaded yet).

    Raises:
        CheckpointError: the stage folder already holds a run (without ``resume``/``overwrite``), or
            ``resume`` finds nothing to resume.
    """
    from lightning_fabric import Fabric

    from memorytalker.data import TalkingFaceDataset, load_dataset
    from memorytalker.data.corpora import CorpusDataset, corpus_name
    from memorytalker.data.dataset import speaker_motion_scales
    from memorytalker.training.logs import make_loggers

    cfg.validate()
    last_path = cfg.run_dir / LAST
    if last_path.exists() and not cfg.resume and not overwrite:
        raise CheckpointError(
            f"{last_path} already exists: continue that run with --resume (resume=true), start it again with "
            "--overwrite, or choose another output_dir"
        )
    if cfg.resume and not last_path.is_file():
        raise CheckpointError(f"resume=true but there is nothing to resume: {last_path} does not exist")
    resume_ckpt = read_checkpoint(last_path) if cfg.resume else None
    resume_step = int(resume_ckpt["step"]) if resume_ckpt is not None else None
    loggers = make_loggers(
        cfg.run_dir / "logs",
        tensorboard=cfg.logging.tensorboard,
        csv_log=cfg.logging.csv,
        resume_step=resume_step,
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
    if fabric.device.type == "cuda":
        torch.set_float32_matmul_precision(cfg.engine.matmul_precision)
    if cfg.engine.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    fabric.seed_everything(cfg.optim.seed, verbose=False)

    say = _Printer(verbose and fabric.is_global_zero)
    indices = [load_dataset(cfg.data.root, layout=cfg.data.layout, topology=cfg.data.topology)]
    indices += [load_dataset(c.root, layout=c.layout, topology=c.topology) for c in cfg.data.corpora]
    parts = []
    for index in indices:
        train_scale = val_scale = None
        if cfg.current.normalize_speakers:
            train_scale, reference = speaker_motion_scales(index, cfg.data.train_split)
            val_scale, _ = speaker_motion_scales(index, cfg.data.val_split, reference=reference)
            divisors = ", ".join(f"{s} {v:.2f}" for s, v in train_scale.items())
            say(f"normalize_speakers: median training speaker's lip RMS {reference:.4g}; divisors {divisors}")
        train_ds = TalkingFaceDataset(
            index,
            cfg.data.train_split,
            cache=cfg.data.cache,
            triplets=cfg.current.triplets,
            max_seconds=cfg.data.max_seconds,
            seed=cfg.optim.seed,
            augment=cfg.data.augment,
            speaker_scale=train_scale,
        )
        val_ds = TalkingFaceDataset(
            index,
            cfg.data.val_split,
            cache=cfg.data.cache,
            subjects=train_ds.subjects,
            speaker_scale=val_scale,
        )
        parts.append((train_ds, val_ds))
    if len(indices) == 1:
        train_ds, val_ds = parts[0]
        names = [corpus_name(cfg.data.root)]
    else:
        names = [corpus_name(cfg.data.root)] + [c.name or corpus_name(c.root) for c in cfg.data.corpora]
        train_ds = CorpusDataset([t for t, _ in parts], names)
        val_ds = CorpusDataset([v for _, v in parts], names)
    condition_speakers(cfg, train_ds.subjects)
    identities = train_ds.subjects if len(indices) > 1 else [f"{names[0]}/{s}" for s in train_ds.subjects]
    topologies = output_heads(cfg, indices, identities)
    model = build_model(cfg.model, indices[0].topology, load_pretrained=not cfg.resume, topologies=topologies)
    run = Run(cfg, fabric, say, indices[0], train_ds, val_ds, model, precision, resume_checkpoint=resume_ckpt)
    run.indices, run.corpus_names = indices, names
    return run


def output_heads(cfg: TrainConfig, indices: list, identities: list[str]) -> dict | None:
    """The topologies of the model's outputs. A kind of any topology (``scantalk``): the corpora's
    (:func:`corpus_topologies`). A kind with an output head per topology (``unitalker``): fill
    ``model.unitalker.heads`` (the corpora's topologies, in order; corpora on one topology share a head)
    and ``identities`` (``<corpus>/<speaker>`` of every training speaker, in the batches' subject-id
    order) when the config leaves them empty, and return the heads' topologies by name. Given lists must be
    exactly those. None for the other kinds."""
    if cfg.model.kind in ANY_TOPOLOGY_KINDS:
        return corpus_topologies(indices)
    if cfg.model.kind not in MULTI_HEAD_KINDS:
        return None
    topologies: dict = {}
    for index in indices:
        topo = index.topology
        seen = topologies.setdefault(topo.name, topo)
        units = {i.units for i in indices if i.topology.name == topo.name}
        if len(units) > 1:
            raise DatasetError(
                f"corpora on topology {topo.name!r} share an output head but are in different units {sorted(units)}"
            )
        if seen.num_vertices != topo.num_vertices:
            raise DatasetError(
                f"two corpora use topology name {topo.name!r} with {seen.num_vertices} and {topo.num_vertices} "
                "vertices: corpora on one name share an output head, so their meshes must be the same"
            )
    heads = list(topologies)
    u = cfg.model.unitalker
    for field_name, found in (("heads", heads), ("identities", identities)):
        given = getattr(u, field_name)
        if not given:
            setattr(u, field_name, found)
        elif list(given) != found:
            raise ConfigError(
                f"model.unitalker.{field_name} {given} are not the training corpora's {found} (leave it empty: "
                "the run fills it in)"
            )
    u.validate()
    return topologies


def corpus_topologies(indices: list) -> dict:
    """A kind of any topology (``scantalk``): the corpora's topologies by name (its batches name theirs);
    two corpora with one name must have the same mesh."""
    topologies: dict = {}
    for index in indices:
        topo = index.topology
        seen = topologies.setdefault(topo.name, topo)
        if seen.num_vertices != topo.num_vertices or not np.array_equal(seen.faces, topo.faces):
            raise DatasetError(
                f"two corpora use topology name {topo.name!r} with different meshes ({seen.num_vertices} and "
                f"{topo.num_vertices} vertices): give one of them another topology name"
            )
    return topologies


def condition_speakers(cfg: TrainConfig, train_subjects: list[str]) -> None:
    """A speaker-conditioned kind's condition list: its training split's speakers (in the order of the
    batches' ``subject_ids``), filled into ``cfg.model`` when the config leaves it empty (so checkpoints
    store it); a given list must be exactly those speakers."""
    f = getattr(cfg.model, cfg.model.kind, None)  # the kind's section, when it has a speakers list
    if f is None or not hasattr(f, "speakers"):
        return
    if not f.speakers:
        f.speakers = list(train_subjects)
        f.validate()
    elif list(f.speakers) != list(train_subjects):
        raise ConfigError(
            f"model.{cfg.model.kind}.speakers {f.speakers} are not the training split's speakers "
            f"{list(train_subjects)} (leave it empty: the run fills it in)"
        )


def initialise(run: Run) -> None:
    """A fresh run: load the stage's ``init_from`` (strict, reported), or measure the motion unit."""
    cfg, model = run.cfg, run.raw_model
    if cfg.init_path is not None:
        report = load_init(model, cfg.init_path, cfg.current.init_exclude)
        init_ckpt = read_checkpoint(cfg.init_path)
        report.config_differences = diff_configs(
            init_ckpt["config"].get("model", {}), config_to_dict(cfg)["model"]
        )
        run.init_report = str(report)
        run.say(run.init_report)
        run.say(f"motion unit from {cfg.init_path}: {float(model.motion_scale):.6g} {run.index.units}")
    elif cfg.model.motion_scale is None:
        model.set_motion_scale(measure_motion_scale(run.index, cfg.data.train_split))
        run.say(
            f"motion unit measured on split {cfg.data.train_split!r}: "
            f"{float(model.motion_scale):.6g} {run.index.units} (RMS vertex displacement)"
        )
    if cfg.init_path is None and hasattr(model, "fit_head"):  # a head per topology: its unit and PCA basis
        split = cfg.data.train_split
        for head in model.head_names:
            corpora = [i for i in run.indices if i.topology.name == head]
            unit = measure_motion_scale(corpora, split)
            kept = model.fit_head(head, unit, sample_displacements(corpora, split))
            run.say(
                f"head {head!r}: motion unit {unit:.6g} {corpora[0].units}; PCA basis fitted on split "
                f"{split!r} keeps {kept:.4%} of the variance"
            )


def prepare(run: Run) -> None:
    """Trainable groups, optimizer, Fabric set-up, loaders and the learning-rate schedule."""
    from torch.utils.data import DataLoader, Subset

    from memorytalker.data import collate_batch
    from memorytalker.data.corpora import CorpusDataset
    from memorytalker.training.sampler import CorpusBatchSampler, ResumableDistributedSampler

    cfg, fabric, o = run.cfg, run.fabric, run.cfg.optim
    run.group_names, params = select_trainable(run.raw_model, cfg)
    run.trainable_parameters = sum(p.numel() for p in params)
    n_total = sum(p.numel() for p in run.raw_model.parameters())
    run.say(
        f"stage {cfg.stage!r}: training group(s) {', '.join(run.group_names)} "
        f"({run.trainable_parameters:,} of {n_total:,} parameters) on {fabric.world_size} process(es), "
        f"{fabric.device}, precision {run.precision}; run folder {cfg.run_dir}"
    )
    optimizer = make_optimizer(cfg, params, run.raw_model.parameter_groups())
    run.model, run.optimizer = fabric.setup(run.raw_model, optimizer)
    corpora = isinstance(run.train_ds, CorpusDataset)
    if corpora:  # several corpora: every batch holds one corpus' clips
        repeats = [1] + [c.repeat for c in cfg.data.corpora]
        run.sampler = CorpusBatchSampler(
            run.train_ds.sizes, o.batch_size, repeats, True, o.seed, fabric.world_size, fabric.global_rank
        )
        batching: dict[str, Any] = {"batch_sampler": run.sampler}
    else:
        run.sampler = ResumableDistributedSampler(
            run.train_ds, num_replicas=fabric.world_size, rank=fabric.global_rank, shuffle=True, seed=o.seed
        )
        batching = {"batch_size": o.batch_size, "sampler": run.sampler}
    run.train_loader = DataLoader(
        run.train_ds,
        **batching,
        collate_fn=collate_batch,
        num_workers=cfg.data.num_workers,
        generator=torch.Generator().manual_seed(o.seed),  # keeps DataLoader off the global RNG
        pin_memory=fabric.device.type == "cuda",
    )
    run.micro_per_epoch = run.sampler.batches_per_epoch(o.batch_size)
    total_steps = cfg.current.max_epochs * math.ceil(run.micro_per_epoch / o.accumulate_grad_batches)
    if o.max_steps is not None:
        total_steps = min(total_steps, o.max_steps)
    run.scheduler = make_scheduler(cfg, run.optimizer, total_steps)
    limit = cfg.data.val_max_clips
    if corpora:  # the first val_max_clips of each corpus
        val_ds = run.val_ds
        if limit is not None:
            for part in val_ds.parts:
                part.records = part.records[:limit]
            val_ds = CorpusDataset(val_ds.parts, val_ds.names)
        val_sampler = CorpusBatchSampler(
            val_ds.sizes, o.val_batch_size, None, False, o.seed, fabric.world_size, fabric.global_rank
        )
        val_batching: dict[str, Any] = {"batch_sampler": val_sampler}
    else:
        val_indices = list(range(len(run.val_ds)))[:limit]
        val_ds = Subset(run.val_ds, val_indices[fabric.global_rank :: fabric.world_size])
        val_batching = {"batch_size": o.val_batch_size, "shuffle": False}
    run.val_loader = DataLoader(
        val_ds,
        **val_batching,
        collate_fn=collate_batch,
        num_workers=cfg.data.num_workers,
        generator=torch.Generator().manual_seed(o.seed),
    )


def resume(run: Run) -> None:
    """Restore ``last.pt``: weights (strict), optimizer, scheduler, counters, RNG states."""
    ckpt, run.resume_checkpoint = run.resume_checkpoint, None
    if ckpt is None:
        ckpt = read_checkpoint(run.last_path)
    current = config_to_dict(run.cfg)
    diffs = [d for d in diff_configs(ckpt["config"], current) if not d.startswith("resume:")]
    if diffs:
        run.say("resuming with a config that differs from the checkpoint's: " + "; ".join(diffs))
    load_state_strict(run.raw_model, ckpt["model_state"], f"checkpoint {run.last_path}")
    try:
        run.optimizer.load_state_dict(ckpt["optimizer"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"{run.last_path}: its optimizer state does not fit this stage's trainable parameters ({exc})"
        ) from exc
    run.scheduler.load_state_dict(ckpt["scheduler"])
    run.state = TrainState(**ckpt["train_state"])
    restore_rng(ckpt["rng"])
    s = run.state
    run.say(f"resumed {run.last_path}: step {s.step}, epoch {s.epoch + 1}, batch {s.batch_in_epoch}")


def save(run: Run, path: Path, with_optimizer: bool) -> None:
    """Write a checkpoint of the run's current state (rank 0), atomically."""
    if not run.fabric.is_global_zero:
        return
    save_checkpoint(
        path,
        run.raw_model,
        run.topology,
        config_to_dict(run.cfg),
        dataset=run.dataset_info,
        optimizer=run.optimizer.state_dict() if with_optimizer else None,
        scheduler=run.scheduler.state_dict(),
        train_state=dataclasses.asdict(run.state),
        monitor=run.cfg.checkpoint.monitor,
        rng=capture_rng(),
        trainable_groups=run.group_names,
    )


def save_last(run: Run) -> None:
    """``last.pt`` (with the optimizer) and the loggers flushed; all processes wait for it."""
    save(run, run.last_path, with_optimizer=True)
    if run.fabric.is_global_zero:
        for lg in run.fabric.loggers:
            lg.save()
    run.fabric.barrier()


def validate(run: Run) -> dict[str, float]:
    """Validate (RNG isolated), log, track the best ``checkpoint.monitor``, write ``best.pt`` / ``last.pt``."""
    from memorytalker.training.validation import validate_loader

    cfg, fabric, state = run.cfg, run.fabric, run.state
    rng = capture_rng()
    metrics = validate_loader(
        run.model,
        run.val_loader,
        cfg.current.loss,
        fabric.device,
        fabric.autocast,
        all_reduce=(lambda t: fabric.all_reduce(t, reduce_op="sum")) if fabric.world_size > 1 else None,
        progress=cfg.logging.progress and fabric.is_global_zero,
    )
    restore_rng(rng)
    state.val_metrics, state.validated_step = metrics, state.step
    fabric.log_dict({f"val/{k}": v for k, v in metrics.items()}, step=state.step)
    if cfg.checkpoint.monitor not in metrics:
        raise ConfigError(
            f"checkpoint.monitor={cfg.checkpoint.monitor} is not measured on topology {run.topology.name!r} "
            "(lve_gap needs inner-lip contours: regions upper_lip_inner / lower_lip_inner); choose lve"
        )
    value = metrics[cfg.checkpoint.monitor]
    improved = state.best_metric is None or value < state.best_metric
    if improved:
        state.best_metric, state.best_step = value, state.step
    done_epochs = state.epoch + state.batch_in_epoch / max(run.micro_per_epoch, 1)
    run.say(
        f"step {state.step} (epoch {done_epochs:.2f}) validation on {cfg.data.val_split!r}: "
        + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "val_frames")
        + (f"  -> new best {cfg.checkpoint.monitor}, wrote {run.best_path}" if improved else "")
    )
    if improved:
        save(run, run.best_path, with_optimizer=False)
    save_last(run)
    return metrics


# ---------------------------------------------------------------------------------------------- the loop
def training_step(run: Run, batch: Any, boundary: bool) -> dict[str, torch.Tensor]:
    """Forward, losses and backward of one micro-batch (gradient sync only on ``boundary``)."""
    from memorytalker.models.losses import compute_losses

    stage = run.cfg.current
    with run.fabric.no_backward_sync(run.model, enabled=not boundary):
        out = run.model(batch, teacher_forcing=stage.loss.teacher_forcing)
        topology = run.raw_model.topology_for(batch)
        losses = compute_losses(out, batch, stage.loss, topology, run.raw_model.unit_for(batch))
        total = losses["total"]
        if not torch.isfinite(total):
            raise FloatingPointError(
                f"non-finite training loss at step {run.state.step} (clips {batch.clip_ids}): "
                + ", ".join(f"{k}={float(v):.4g}" for k, v in losses.items())
            )
        run.fabric.backward(total / run.cfg.optim.accumulate_grad_batches)
    return losses


def optimizer_step(run: Run) -> None:
    """Clip, step, zero the gradients, advance the schedule and the step counter."""
    o = run.cfg.optim
    if o.grad_clip is not None:
        run.fabric.clip_gradients(run.model, run.optimizer, max_norm=o.grad_clip, error_if_nonfinite=False)
    run.optimizer.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    run.state.step += 1


def _log_training(run: Run, sums: dict[str, float], count: int, t0: float) -> None:
    logs = {f"train/{k}": v / max(count, 1) for k, v in sums.items()}
    logs["train/lr"] = run.scheduler.get_last_lr()[0]
    logs["train/epoch"] = run.state.epoch
    logs["train/audio_sec_per_sec"] = run.audio_seconds / max(time.perf_counter() - t0, 1e-9)
    run.fabric.log_dict(logs, step=run.state.step)


def train_epoch(run: Run, t0: float, on_step: Callable[[TrainState], None] | None = None) -> bool:
    """Train the rest of the current epoch; True when ``optim.max_steps`` is reached."""
    from tqdm.auto import tqdm

    cfg, state, o = run.cfg, run.state, run.cfg.optim
    run.sampler.set_epoch(state.epoch)
    run.train_ds.set_epoch(state.epoch)
    run.sampler.start_at_batch(state.batch_in_epoch, o.batch_size)
    bar = tqdm(
        total=run.micro_per_epoch,
        initial=state.batch_in_epoch,
        desc=f"{cfg.stage} epoch {state.epoch + 1}/{cfg.current.max_epochs}",
        disable=not (cfg.logging.progress and run.fabric.is_global_zero),
        dynamic_ncols=True,
        leave=False,
    )
    sums: dict[str, float] = {}
    count = 0
    finished = False
    for batch in run.train_loader:
        batch = batch.to(run.fabric.device)
        micro = state.batch_in_epoch
        boundary = (micro + 1) % o.accumulate_grad_batches == 0 or micro + 1 == run.micro_per_epoch
        losses = training_step(run, batch, boundary)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        count += 1
        run.audio_seconds += float(batch.audio_lengths.sum()) / SAMPLE_RATE
        state.batch_in_epoch += 1
        bar.update(1)
        if not boundary:
            continue
        optimizer_step(run)
        bar.set_postfix(step=state.step, loss=f"{float(losses['total'].detach()):.4g}")
        if state.step % cfg.logging.every_n_steps == 0:
            _log_training(run, sums, count, t0)
            sums, count = {}, 0
        finished = o.max_steps is not None and state.step >= o.max_steps
        if cfg.checkpoint.val_every_n_steps and state.step % cfg.checkpoint.val_every_n_steps == 0:
            validate(run)
        elif cfg.checkpoint.every_n_steps and state.step % cfg.checkpoint.every_n_steps == 0:
            save_last(run)
        if on_step is not None:
            on_step(state)
        if finished:
            break
    bar.close()
    return finished


def fit(run: Run, on_step: Callable[[TrainState], None] | None = None) -> float:
    """Epochs until the stage's ``max_epochs`` (or ``optim.max_steps``), validating every
    ``checkpoint.val_every_n_epochs`` and at the end. Returns the training wall time in seconds."""
    cfg, state = run.cfg, run.state
    max_epochs = cfg.current.max_epochs
    finished = cfg.optim.max_steps is not None and state.step >= cfg.optim.max_steps
    t0 = time.perf_counter()
    run.model.train()
    while not finished and state.epoch < max_epochs:
        finished = train_epoch(run, t0, on_step)
        if finished:
            break
        state.epoch += 1
        state.batch_in_epoch = 0
        if state.epoch % cfg.checkpoint.val_every_n_epochs == 0 or state.epoch >= max_epochs:
            validate(run)
    if state.validated_step != state.step or not run.last_path.exists():
        validate(run)
    return time.perf_counter() - t0


def train(
    cfg: TrainConfig,
    overwrite: bool = False,
    on_step: Callable[[TrainState], None] | None = None,
    verbose: bool = True,
) -> TrainResult:
    """Run the stage ``cfg.stage`` of ``cfg`` to the end (its ``max_epochs``; ``optim.max_steps``).

    Args:
        cfg: the resolved config (:func:`~memorytalker.training.config.load_train_config`).
        overwrite: start afresh even if the run folder already holds a ``last.pt`` (otherwise an error
            asks for ``resume`` or another ``output_dir``).
        on_step: called after every optimizer step (after any checkpoint of that step is written).
        verbose: print what is loaded, validation results and where checkpoints go (rank 0).

    Returns:
        A :class:`TrainResult` (paths of ``last.pt`` / ``best.pt``, final counters).
    """
    run = setup(cfg, overwrite=overwrite, verbose=verbose)
    if not cfg.resume:
        initialise(run)
    prepare(run)
    if cfg.resume:
        resume(run)
    if run.fabric.is_global_zero:
        cfg.run_dir.mkdir(parents=True, exist_ok=True)
        (cfg.run_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    seconds = fit(run, on_step)
    for lg in run.fabric.loggers:
        lg.finalize("success")
    state = run.state
    run.say(
        f"done: step {state.step}, best {cfg.checkpoint.monitor} {state.best_metric:.4g} at step "
        f"{state.best_step}; {run.best_path}"
    )
    return TrainResult(
        run_dir=cfg.run_dir,
        last=run.last_path,
        best=run.best_path if run.best_path.exists() else None,
        state=state,
        init_report=run.init_report,
        trainable_groups=run.group_names,
        trainable_parameters=run.trainable_parameters,
        audio_seconds=run.audio_seconds,
        train_seconds=seconds,
    )


__all__ = [
    "BEST",
    "LAST",
    "Run",
    "TrainResult",
    "fit",
    "initialise",
    "measure_motion_scale",
    "prepare",
    "resolve_precision",
    "resume",
    "save",
    "setup",
    "train",
    "validate",
]
