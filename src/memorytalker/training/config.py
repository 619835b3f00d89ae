"""Training configuration: :class:`TrainConfig` (the single source of truth) and stage presets.

A run is ``defaults of TrainConfig <- YAML file <- key=value overrides`` (:func:`load_train_config`).

A *stage* (:class:`StageConfig`) says what trains (parameter groups of the model), with which loss weights
and learning rate, and which checkpoint it starts from. Three presets exist; a YAML file or the command
line selects one by name and may override any of its fields::

    stage: memorizing                 # stage 1: everything but the style encoder, lr 1e-4
    stage: animating                  # stage 2: only the style encoder, lr 5e-5, from stage 1's best.pt
    stage: {preset: animating, lr: 2e-5}
    stage: nomem                      # ablation: no memory losses (pair with model.memory.enabled=false)

On the command line ``stage=animating`` replaces the whole stage by that preset (later ``stage.lr=...``
overrides apply on top of it). Every stage writes into ``<output_dir>/<stage.name>/``; ``init_from`` may
use the placeholder ``{output_dir}`` (the animating preset starts from ``{output_dir}/memorizing/best.pt``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memorytalker.config import deep_merge, from_dict, parse_overrides, read_yaml, to_dict
from memorytalker.errors import ConfigError
from memorytalker.models.config import ModelConfig
from memorytalker.models.losses import LossWeights

#: Names accepted for ``precision`` (Lightning Fabric's), plus ``auto`` = bf16-mixed on CUDA, else 32.
PRECISIONS = ("auto", "32", "32-true", "bf16-mixed", "16-mixed", "64", "64-true")
#: Learning-rate schedules after warm-up.
SCHEDULES = ("constant", "cosine")
#: Validation metrics a run can select its best checkpoint on (all lower-is-better).
MONITORS = ("lve", "fve", "lip_max", "val_loss")


@dataclass
class DataConfig:
    """Where the data is and how it is fed.

    Attributes:
        root: processed dataset folder (docs/LAYOUT.md).
        layout: for folders without ``dataset.yaml``: ``vocaset``, ``biwi`` or a manifest YAML path.
        topology: a ``topology.npz`` overriding the dataset's own (None = the dataset's).
        train_split: split trained on.
        val_split: split the best checkpoint is selected on. Never a test split.
        max_seconds: crop training clips to random windows of this length (None = whole clips).
        cache: keep decoded audio and vertices in memory after the first epoch (RAM: all clips; without it
            the OS page cache keeps the files and only decoding repeats).
        num_workers: DataLoader worker processes (0 = load in the training process).
        val_max_clips: validate on the first N clips of the val split only (None = all).
    """

    root: str = "data/synthetic"
    layout: str | None = None
    topology: str | None = None
    train_split: str = "train"
    val_split: str = "val"
    max_seconds: float | None = None
    cache: bool = False
    num_workers: int = 0
    val_max_clips: int | None = None

    def validate(self) -> None:
        if self.val_split.lower().startswith("test"):
            raise ConfigError(
                f"data.val_split={self.val_split!r}: checkpoints are selected on validation, never on a "
                "test split; evaluate test splits with `memorytalker evaluate`"
            )
        if self.train_split == self.val_split:
            raise ConfigError(f"data.train_split and data.val_split are both {self.train_split!r}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ConfigError(f"data.max_seconds must be positive or null, got {self.max_seconds}")
        if self.num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.val_max_clips is not None and self.val_max_clips < 1:
            raise ConfigError(f"data.val_max_clips must be >= 1 or null, got {self.val_max_clips}")


@dataclass
class StageConfig:
    """One training stage: what trains, with which losses, from which checkpoint.

    Attributes:
        name: the stage's name; also its output sub-folder (``<output_dir>/<name>/``).
        preset: the preset this stage was built from (informative; see :func:`stage_preset`).
        trainable: parameter groups that train (names from ``MemoryTalker.parameter_groups()``); ``"*"`` =
            every group. Parameters the model itself freezes (``model.backbone.freeze_*``) never train.
        frozen: groups removed from ``trainable`` (e.g. ``["style"]`` in stage 1).
        loss: loss weights (``memorytalker.models.losses.LossWeights``).
        lr: learning rate (Adam).
        lr_scale: per-group multipliers of ``lr`` (``{"memory": 20.0}``; groups not named use ``lr``). Adam
            moves a parameter by about its learning rate per step, so a parameter whose values must travel
            far (the memory tracks the motion encoder's features, which grow to ~5 per element) needs a
            larger one to keep up (docs/RESULTS.md).
        init_from: checkpoint to start from (``{output_dir}`` is replaced by the run's output_dir); None =
            fresh initialisation. Loading is strict: every tensor of the loaded groups must be in the
            checkpoint with the same shape, and the checkpoint may hold nothing the model lacks.
        init_exclude: parameter groups *not* loaded from ``init_from`` (they keep their fresh
            initialisation; stage 2 excludes ``style``, which stage 1 does not train).
        model_overrides: dotted ``ModelConfig`` fields this stage sets (``{"style.enabled": true}``); they
            apply on top of ``model`` and the result is what the checkpoint stores as its model config.
        teacher_forcing: passed to ``MemoryTalker.forward`` (None = the model config's default).
        triplets: draw a positive and a negative clip per sample (needed by the style loss).
        max_epochs: epochs of this stage (None = ``optim.max_epochs``).
    """

    name: str = "memorizing"
    preset: str | None = None
    trainable: list[str] = field(default_factory=lambda: ["*"])
    frozen: list[str] = field(default_factory=lambda: ["style"])
    loss: LossWeights = field(default_factory=LossWeights)
    lr: float = 1e-4
    lr_scale: dict[str, float] = field(default_factory=dict)
    init_from: str | None = None
    init_exclude: list[str] = field(default_factory=list)
    model_overrides: dict[str, Any] = field(default_factory=dict)
    teacher_forcing: bool | None = None
    triplets: bool = False
    max_epochs: int | None = None

    def validate(self) -> None:
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ConfigError(
                f"stage {self.name!r}: stage.max_epochs must be >= 1 or null, got {self.max_epochs}"
            )
        if not self.name or "/" in self.name or "\\" in self.name or self.name in (".", ".."):
            raise ConfigError(f"stage.name {self.name!r} must be a plain folder name")
        if not self.trainable:
            raise ConfigError(f"stage {self.name!r}: stage.trainable is empty (nothing would train)")
        if not self.lr > 0:
            raise ConfigError(f"stage {self.name!r}: stage.lr must be positive, got {self.lr}")
        bad = {k: v for k, v in self.lr_scale.items() if not (isinstance(v, (int, float)) and v > 0)}
        if bad:
            raise ConfigError(
                f"stage {self.name!r}: stage.lr_scale values must be positive numbers, got {bad}"
            )
        if self.loss.style > 0 and not self.triplets:
            raise ConfigError(
                f"stage {self.name!r}: loss.style > 0 needs triplet sampling (set stage.triplets=true)"
            )


def _memorizing() -> dict:
    return {
        "name": "memorizing",
        "trainable": ["*"],
        "frozen": ["style"],
        "loss": {
            "mse": 1.0,
            "velocity": 1.0,
            "teacher_mse": 1.0,
            "teacher_velocity": 1.0,
            "mem": 0.01,
            "align": 0.01,
            "lip": 0.0,
            "style": 0.0,
            "ctc": 1.0,
        },
        "lr": 1e-4,
        "init_from": None,
        "teacher_forcing": True,
        "triplets": False,
        "init_exclude": [],
        "model_overrides": {"style.enabled": False},
    }


def _animating() -> dict:
    return {
        "name": "animating",
        "trainable": ["style"],
        "frozen": [],
        "loss": {
            "mse": 1.0,
            "velocity": 1.0,
            "teacher_mse": 0.0,
            "teacher_velocity": 0.0,
            "mem": 0.0,
            "align": 0.0,
            "lip": 0.01,
            "style": 0.01,
            "ctc": 0.0,
        },
        "lr": 5e-5,
        "init_from": "{output_dir}/memorizing/best.pt",
        "teacher_forcing": False,
        "triplets": True,
        "init_exclude": ["style"],
        "model_overrides": {"style.enabled": True},
    }


def _nomem() -> dict:
    return {
        "name": "nomem",
        "trainable": ["*"],
        "frozen": ["style"],
        "loss": {
            "mse": 1.0,
            "velocity": 1.0,
            "teacher_mse": 0.0,
            "teacher_velocity": 0.0,
            "mem": 0.0,
            "align": 0.0,
            "lip": 0.0,
            "style": 0.0,
            "ctc": 1.0,
        },
        "lr": 1e-4,
        "init_from": None,
        "teacher_forcing": False,
        "triplets": False,
        "init_exclude": [],
        "model_overrides": {"style.enabled": False, "memory.enabled": False},
    }


_PRESETS = {"memorizing": _memorizing, "animating": _animating, "nomem": _nomem}
_ALIASES = {"1": "memorizing", "stage1": "memorizing", "2": "animating", "stage2": "animating"}


def stage_presets() -> list[str]:
    """Names of the built-in stage presets (aliases ``1``/``stage1`` and ``2``/``stage2`` also work)."""
    return sorted(_PRESETS)


def stage_preset(name: str) -> dict:
    """The plain-dict StageConfig of preset ``name`` (``memorizing``, ``animating``, ``nomem``)."""
    key = _ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if key not in _PRESETS:
        raise ConfigError(f"unknown stage preset {name!r}; use one of {stage_presets()} (or 1 / 2)")
    out = _PRESETS[key]()
    out["preset"] = key
    return out


@dataclass
class OptimConfig:
    """Optimisation and schedule.

    Attributes:
        batch_size: clips per micro-batch per device (padded, masked).
        accumulate_grad_batches: micro-batches per optimizer step.
        max_epochs: epochs over the training split.
        max_steps: stop after this many optimizer steps (None = ``max_epochs`` decides).
        optimizer: ``adam`` (the paper's) or ``adamw``.
        betas, weight_decay: optimizer settings.
        grad_clip: clip the global gradient norm to this value (None = no clipping).
        warmup_steps: linear learning-rate warm-up over this many optimizer steps (0 = constant lr).
        schedule: after warm-up, ``constant`` (the paper's) or ``cosine`` (decay to ``min_lr_ratio * lr`` at the
            stage's last optimizer step: ``max_steps``, or ``max_epochs`` times the steps of an epoch).
        min_lr_ratio: final learning rate of the ``cosine`` schedule, as a fraction of ``stage.lr``.
        seed: seeds model initialisation, data order, crops and triplet draws.
        val_batch_size: clips per validation batch.
    """

    batch_size: int = 1
    accumulate_grad_batches: int = 1
    max_epochs: int = 100
    max_steps: int | None = None
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip: float | None = None
    warmup_steps: int = 0
    schedule: str = "constant"
    min_lr_ratio: float = 0.0
    seed: int = 0
    val_batch_size: int = 4

    def validate(self) -> None:
        for key in ("batch_size", "accumulate_grad_batches", "max_epochs", "val_batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"optim.{key} must be >= 1, got {getattr(self, key)}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ConfigError(f"optim.max_steps must be >= 1 or null, got {self.max_steps}")
        if self.optimizer not in ("adam", "adamw"):
            raise ConfigError(f"optim.optimizer must be 'adam' or 'adamw', got {self.optimizer!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"optim.grad_clip must be positive or null, got {self.grad_clip}")
        if self.warmup_steps < 0 or self.weight_decay < 0:
            raise ConfigError("optim.warmup_steps and optim.weight_decay must be >= 0")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule must be one of {list(SCHEDULES)}, got {self.schedule!r}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(f"optim.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")


@dataclass
class EngineConfig:
    """Where and how it runs (Lightning Fabric arguments).

    Attributes:
        accelerator: ``auto``, ``cpu``, ``cuda``/``gpu``, ``mps``.
        devices: number of devices per node, or ``auto``.
        strategy: ``auto``, ``ddp``, ``ddp_spawn``... (Fabric strategy names).
        num_nodes: nodes (multi-node DDP; launch one process per node, e.g. with torchrun or SLURM).
        precision: ``auto`` (bf16-mixed on CUDA, else 32), ``32``, ``bf16-mixed``, ``16-mixed``.
        deterministic: ask PyTorch for deterministic kernels (warn-only where none exists).
        matmul_precision: ``torch.set_float32_matmul_precision`` on CUDA (``highest``/``high``/``medium``).
    """

    accelerator: str = "auto"
    devices: int | str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str | int = "auto"
    deterministic: bool = True
    matmul_precision: str = "high"

    def validate(self) -> None:
        if str(self.precision) not in PRECISIONS:
            raise ConfigError(f"engine.precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if isinstance(self.devices, str) and self.devices != "auto":
            try:
                int(self.devices)
            except ValueError:
                if not all(p.strip().isdigit() for p in self.devices.split(",") if p.strip()):
                    raise ConfigError(
                        f"engine.devices must be a number, 'auto' or a list like '0,1', got {self.devices!r}"
                    ) from None
        if self.num_nodes < 1:
            raise ConfigError(f"engine.num_nodes must be >= 1, got {self.num_nodes}")
        if self.matmul_precision not in ("highest", "high", "medium"):
            raise ConfigError(
                f"engine.matmul_precision must be highest/high/medium, got {self.matmul_precision!r}"
            )


@dataclass
class CheckpointConfig:
    """When to validate and save, and how the best checkpoint is chosen.

    Attributes:
        every_n_steps: also write ``last.pt`` every N optimizer steps (0 = only at validations / the end).
        val_every_n_epochs: validate (and write ``last.pt``, maybe ``best.pt``) every N epochs.
        val_every_n_steps: also validate every N optimizer steps (0 = off).
        monitor: validation metric that picks ``best.pt`` (lower is better): ``lve`` (lip vertex error,
            default), ``fve``, ``lip_max`` or ``val_loss``.
    """

    every_n_steps: int = 0
    val_every_n_epochs: int = 1
    val_every_n_steps: int = 0
    monitor: str = "lve"

    def validate(self) -> None:
        if self.every_n_steps < 0 or self.val_every_n_steps < 0:
            raise ConfigError("checkpoint.every_n_steps and checkpoint.val_every_n_steps must be >= 0")
        if self.val_every_n_epochs < 1:
            raise ConfigError(f"checkpoint.val_every_n_epochs must be >= 1, got {self.val_every_n_epochs}")
        if self.monitor not in MONITORS:
            raise ConfigError(f"checkpoint.monitor must be one of {list(MONITORS)}, got {self.monitor!r}")


@dataclass
class LogConfig:
    """Logs: TensorBoard and CSV under ``<run dir>/logs/``, tqdm progress bars.

    Attributes:
        every_n_steps: log training losses every N optimizer steps.
        tensorboard, csv: which loggers to use.
        progress: show tqdm progress bars (rank 0 only).
    """

    every_n_steps: int = 10
    tensorboard: bool = True
    csv: bool = True
    progress: bool = True

    def validate(self) -> None:
        if self.every_n_steps < 1:
            raise ConfigError(f"logging.every_n_steps must be >= 1, got {self.every_n_steps}")


@dataclass
class TrainConfig:
    """Everything one training run needs. Defaults = the paper's stage 1 on the synthetic corpus.

    Attributes:
        name: run name (used in ``output_dir`` via ``{name}``).
        output_dir: root of the run; each stage writes into ``<output_dir>/<stage.name>/``
            (``last.pt``, ``best.pt``, ``config.yaml``, ``logs/``).
        resume: continue from ``<output_dir>/<stage.name>/last.pt`` (same step, optimizer, data order).
        stage_overrides: per preset, stage fields this config changes whenever that preset is selected
            (``{animating: {lr: 3e-4, max_epochs: 4}}``), so one file serves both stages.
        data, model, stage, optim, engine, checkpoint, logging: see their classes.
    """

    name: str = "memorytalker"
    output_dir: str = "runs/{name}"
    resume: bool = False
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    stage: StageConfig = field(default_factory=lambda: from_dict(StageConfig, stage_preset("memorizing")))
    stage_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LogConfig = field(default_factory=LogConfig)

    def validate(self) -> None:
        for section in (
            self.data,
            self.model,
            self.stage,
            self.optim,
            self.engine,
            self.checkpoint,
            self.logging,
        ):
            check = getattr(section, "validate", None)
            if callable(check):
                check()

    @property
    def max_epochs(self) -> int:
        """``stage.max_epochs`` when set, else ``optim.max_epochs``."""
        return self.stage.max_epochs if self.stage.max_epochs is not None else self.optim.max_epochs

    # ------------------------------------------------------------------ the model this stage builds
    @property
    def effective_model(self) -> ModelConfig:
        """``model`` with ``stage.model_overrides`` applied (validated): the model this stage trains."""
        if not self.stage.model_overrides:
            return self.model
        nested: dict = {}
        for key, value in _flatten(self.stage.model_overrides).items():
            node = nested
            *parents, leaf = key.split(".")
            for k in parents:
                node = node.setdefault(k, {})
            node[leaf] = value
        try:
            model = from_dict(ModelConfig, deep_merge(to_dict(self.model), nested), "model")
            validate = getattr(model, "validate", None)
            if callable(validate):
                validate()
        except ConfigError as exc:
            raise ConfigError(f"stage {self.stage.name!r} model_overrides: {exc}") from None
        return model

    # ------------------------------------------------------------------ resolved paths
    @property
    def output_root(self) -> Path:
        """``output_dir`` with ``{name}`` filled in."""
        try:
            return Path(self.output_dir.format(name=self.name))
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"output_dir {self.output_dir!r}: bad placeholder ({exc}); only {{name}}"
            ) from None

    @property
    def run_dir(self) -> Path:
        """``<output_dir>/<stage.name>``: this stage's checkpoints, logs and config."""
        return self.output_root / self.stage.name

    @property
    def init_path(self) -> Path | None:
        """``stage.init_from`` with ``{output_dir}`` / ``{name}`` filled in (None when unset)."""
        if self.stage.init_from is None:
            return None
        try:
            return Path(self.stage.init_from.format(output_dir=str(self.output_root), name=self.name))
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"stage.init_from {self.stage.init_from!r}: bad placeholder ({exc}); use {{output_dir}} or {{name}}"
            ) from None


# ---------------------------------------------------------------------------------------------- loading
def _expand_stage(data: dict) -> dict:
    """Turn ``stage: <preset>`` / ``stage: {preset: <name>, ...}`` into a full stage mapping:
    preset <- ``stage_overrides[<preset>]`` <- the stage mapping's own fields."""
    stage = data.get("stage")
    per_preset = data.get("stage_overrides") or {}
    if not isinstance(per_preset, Mapping):
        raise ConfigError(f"stage_overrides must map preset names to stage fields, got {per_preset!r}")
    for name in per_preset:
        stage_preset(str(name))  # unknown preset names are errors
    if stage is None:
        if not per_preset:
            return data
        stage = {"preset": "memorizing"}
    if isinstance(stage, (str, int)) and not isinstance(stage, bool):
        stage = {"preset": str(stage)}
    if not isinstance(stage, Mapping):
        raise ConfigError(f"stage must be a preset name ({stage_presets()}) or a mapping, got {stage!r}")
    stage = dict(stage)
    preset = stage.get("preset")
    # Fields a stage does not give come from its preset; a stage without a preset starts from memorizing.
    base = stage_preset(str(preset) if preset is not None else "memorizing")
    if preset is not None:
        extra = next(
            (v for k, v in per_preset.items() if stage_preset(str(k))["preset"] == base["preset"]), None
        )
        if extra is not None:
            if not isinstance(extra, Mapping):
                raise ConfigError(f"stage_overrides.{base['preset']} must be a mapping of stage fields")
            base = deep_merge(base, extra)
    stage = deep_merge(base, {k: v for k, v in stage.items() if k != "preset"})
    stage["preset"] = base["preset"] if preset is not None else None
    out = dict(data)
    out["stage"] = stage
    return out


def train_config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """A validated :class:`TrainConfig` from a plain mapping (e.g. a checkpoint's ``config``)."""
    cfg = from_dict(TrainConfig, _expand_stage(dict(data)))
    cfg.validate()
    return cfg


def load_train_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), stage: str | None = None
) -> TrainConfig:
    """Defaults <- YAML ``path`` <- ``stage`` preset (if given) <- ``key=value`` overrides; validated.

    ``stage=<preset>`` (in ``overrides`` or as ``stage``) replaces the whole stage by that preset; other
    ``stage.<field>=...`` overrides apply on top, in order.
    """
    data: dict = read_yaml(path) if path is not None else {}
    data = _expand_stage(data)
    items = ([f"stage={stage}"] if stage is not None else []) + list(overrides)
    for item in items:
        key, _, raw = item.partition("=")
        if key.strip() == "stage" and "=" in item:
            data = _expand_stage({**data, "stage": raw.strip()})
            continue
        data = deep_merge(data, parse_overrides([item]))
        data = _expand_stage(data)
    return train_config_from_dict(data)


def _flatten(data: Mapping, prefix: str = "") -> dict:
    out = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_to_dict(cfg: TrainConfig) -> dict:
    """Plain, YAML/JSON-safe resolved config (stored in checkpoints and ``config.yaml``); its ``model`` is
    the effective model (``stage.model_overrides`` applied), so it rebuilds exactly what was trained."""
    out = to_dict(cfg)
    out["model"] = to_dict(cfg.effective_model)
    return out


def diff_configs(a: Mapping, b: Mapping, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain config dicts (``a -> b`` descriptions)."""
    out = []
    for key in sorted(set(a) | set(b)):
        path = f"{prefix}{key}"
        va, vb = a.get(key, "<absent>"), b.get(key, "<absent>")
        if isinstance(va, Mapping) and isinstance(vb, Mapping):
            out.extend(diff_configs(va, vb, path + "."))
        elif va != vb:
            out.append(f"{path}: {va!r} -> {vb!r}")
    return out


def replace_stage(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """A copy of ``cfg`` with stage fields changed (convenience for scripts and tests)."""
    return dataclasses.replace(cfg, stage=dataclasses.replace(cfg.stage, **changes))
