"""Training configuration: :class:`TrainConfig` is the single source of truth; YAML and ``key=value`` override it.

One mechanism (:func:`load_train_config`): the plain-dict view of the dataclass defaults, deep-merged with
the YAML file, then with the command-line ``key=value`` overrides, is built into a :class:`TrainConfig`
once and validated. An explicit empty mapping (``stages.memorizing.lr_scale={}``) clears a mapping;
other mappings merge key by key, lists and scalars replace.

A *stage* (:class:`StageConfig`) says what trains (parameter groups of the model), with which loss weights,
learning rate and number of epochs, which checkpoint it starts from, and what it needs of the model (its
``model`` section). ``stages`` holds one entry per stage name, starting from the presets
(:data:`PRESETS`); ``stage`` names the one this run trains. So one file serves every stage::

    stage: memorizing                     # this run: stage 1 (CLI: --stage animating, or stage=2)
    stages:
      memorizing: {lr: 3.0e-4, max_epochs: 8}
      animating: {lr: 3.0e-4, max_epochs: 4}

On the command line ``stage.<field>=value`` is short for ``stages.<the selected stage>.<field>=value``.
The selected stage's ``model`` section is merged into ``model`` last (a stage's requirements win: stage 2
needs the style encoder), so the resolved ``model`` is exactly the model this stage trains; checkpoints
store it. Its ``augment`` section is merged into ``data.augment`` the same way (:data:`STAGE_SECTIONS`). Every stage writes into ``<output_dir>/<stage>/``; ``init_from`` may use the placeholders
``{output_dir}`` and ``{name}`` (the animating preset starts from ``{output_dir}/memorizing/best.pt``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memorytalker.config import deep_merge, from_dict, parse_overrides, read_yaml, to_dict
from memorytalker.data.augment import AugmentConfig
from memorytalker.errors import ConfigError
from memorytalker.models.config import ANY_TOPOLOGY_KINDS, MULTI_HEAD_KINDS, ModelConfig
from memorytalker.models.losses import LossWeights

#: Names accepted for ``precision`` (Lightning Fabric's), plus ``auto`` = bf16-mixed on CUDA, else 32.
PRECISIONS = ("auto", "32", "32-true", "bf16-mixed", "16-mixed", "64", "64-true")
#: Learning-rate schedules after warm-up.
SCHEDULES = ("constant", "cosine")
#: Validation metrics a run can select its best checkpoint on (all lower-is-better).
MONITORS = ("lve", "fve", "lip_max", "val_loss", "lve_gap")


@dataclass
class CorpusConfig:
    """A corpus trained together with ``data.root`` (``data.corpora``; model kinds with one output head per
    topology, i.e. ``unitalker``).

    Attributes:
        root: processed dataset folder (docs/LAYOUT.md), with the same split names as ``data.root``.
        layout, topology: as :class:`DataConfig`'s.
        name: the corpus' name in identities (``<name>/<speaker>``); None = its folder's name.
        repeat: how many times its training clips appear per epoch (UniTalker's ``duplicate_list``).
    """

    root: str = ""
    layout: str | None = None
    topology: str | None = None
    name: str | None = None
    repeat: int = 1

    def validate(self) -> None:
        if not self.root:
            raise ConfigError("data.corpora: every corpus needs a root folder")
        if self.repeat < 1:
            raise ConfigError(f"data.corpora ({self.root}): repeat must be >= 1, got {self.repeat}")


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
        augment: audio augmentation of the training split for real recording conditions (gain, rooms,
            noise, telephone band, codec; :class:`memorytalker.data.augment.AugmentConfig`, docs/TRAINING.md).
        corpora: more corpora trained together with ``root`` (:class:`CorpusConfig`; each batch holds one
            corpus' clips; only for model kinds with an output head per topology: ``unitalker``).
            ``val_max_clips`` then applies to each corpus' validation split.
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
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    corpora: list[CorpusConfig] = field(default_factory=list)

    def validate(self) -> None:
        self.augment.validate()
        for corpus in self.corpora:
            corpus.validate()
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
    """One training stage: what trains, with which losses, for how long, from which checkpoint.

    The defaults are the paper's stage 1 (the ``memorizing`` preset).

    Attributes:
        trainable: parameter groups that train (names from ``MemoryTalker.parameter_groups()``); ``"*"`` =
            every group. Parameters the model itself freezes (``model.backbone.freeze_*``) never train.
        frozen: groups removed from ``trainable`` (e.g. ``["style"]`` in stage 1).
        loss: loss weights (``memorytalker.models.losses.LossWeights``). The teacher-forced decoder pass
            runs exactly when ``loss.teacher_mse`` or ``loss.teacher_velocity`` is positive.
        lr: learning rate (Adam).
        lr_scale: per-group multipliers of ``lr`` (``{"memory": 20.0}``; groups not named use ``lr``). Adam
            moves a parameter by about its learning rate per step, so a parameter whose values must travel
            far (the memory tracks the motion encoder's features, which grow to ~5 per element) needs a
            larger one to keep up (docs/RESULTS.md).
        max_epochs: epochs of this stage over the training split (``optim.max_steps`` may stop it earlier).
        init_from: checkpoint to start from (placeholders ``{output_dir}``, ``{name}``); None = fresh
            initialisation. Loading is strict: every tensor of the loaded groups must be in the checkpoint
            with the same shape, and the checkpoint may hold nothing the model lacks.
        init_exclude: parameter groups *not* loaded from ``init_from`` (they keep their fresh
            initialisation; stage 2 excludes ``style``, which stage 1 does not have).
        model: what this stage needs of the model, a nested mapping of ``ModelConfig`` fields
            (``{"style": {"enabled": true}}``), merged into the run's ``model`` section.
        augment: what this stage changes of the training audio's augmentation, a mapping of
            ``AugmentConfig`` fields (``{"enabled": true, "snr_db": [5, 30]}``) merged into ``data.augment``
            (e.g. stage 2 alone augmented, so the style encoder learns to hear through rooms and noise while
            stage 1 memorises clean speech; docs/TRAINING.md, "Augmentation").
        triplets: draw a positive and a negative clip per sample (needed by the style loss).
        normalize_speakers: train on every speaker moved at one amplitude: each clip's motion about its
            template divided by its speaker's lip RMS over the median training speaker's
            (:func:`memorytalker.data.dataset.speaker_motion_scales`; validation speakers against the same
            training median). Ours, off in the paper's presets: stage 1 then memorises the articulation of
            an average speaker and cannot fit a training speaker's amplitude through the text path, which
            leaves it for stage 2's style encoder to learn (docs/RESULTS.md "Style that is not the gain").
    """

    trainable: list[str] = field(default_factory=lambda: ["*"])
    frozen: list[str] = field(default_factory=lambda: ["style"])
    loss: LossWeights = field(default_factory=LossWeights)
    lr: float = 1e-4
    lr_scale: dict[str, float] = field(default_factory=dict)
    max_epochs: int = 100
    init_from: str | None = None
    init_exclude: list[str] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=lambda: {"style": {"enabled": False}})
    augment: dict[str, Any] = field(default_factory=dict)
    triplets: bool = False
    normalize_speakers: bool = False

    def validate(self, name: str) -> None:
        if self.max_epochs < 1:
            raise ConfigError(f"stage {name!r}: max_epochs must be >= 1, got {self.max_epochs}")
        if not self.trainable:
            raise ConfigError(f"stage {name!r}: trainable is empty (nothing would train)")
        if not self.lr > 0:
            raise ConfigError(f"stage {name!r}: lr must be positive, got {self.lr}")
        bad = {k: v for k, v in self.lr_scale.items() if not (isinstance(v, (int, float)) and v > 0)}
        if bad:
            raise ConfigError(f"stage {name!r}: lr_scale values must be positive numbers, got {bad}")
        if self.loss.style > 0 and not self.triplets:
            raise ConfigError(f"stage {name!r}: loss.style > 0 needs triplet sampling (set triplets=true)")
        self.loss.validate()


def _memorizing() -> StageConfig:
    """Stage 1 (the paper's "memorizing"): everything but the style encoder; mse + velocity, the
    teacher-forced pass, 0.01 (mem + align), CTC on phoneme labels; lr 1e-4."""
    return StageConfig()


def _animating() -> StageConfig:
    """Stage 2 ("animating"): only the style encoder, from stage 1's best checkpoint; mse + velocity +
    0.01 (lip + style triplet); lr 5e-5."""
    return StageConfig(
        trainable=["style"],
        frozen=[],
        loss=LossWeights(
            teacher_mse=0.0, teacher_velocity=0.0, mem=0.0, align=0.0, lip=0.01, style=0.01, ctc=0.0
        ),
        lr=5e-5,
        init_from="{output_dir}/memorizing/best.pt",
        init_exclude=["style"],
        model={"style": {"enabled": True}},
        triplets=True,
    )


def _nomem() -> StageConfig:
    """The no-memory ablation: the model without memory (and style), mse + velocity + CTC."""
    return StageConfig(
        loss=LossWeights(teacher_mse=0.0, teacher_velocity=0.0, mem=0.0, align=0.0),
        model={"style": {"enabled": False}, "memory": {"enabled": False}},
    )


def _faceformer() -> StageConfig:
    """FaceFormer's one stage (``model.kind: faceformer``): every group; the vertex MSE alone (as
    published), plus CTC on phoneme labels for backbones trained from scratch; Adam, lr 1e-4, 100 epochs."""
    return StageConfig(
        frozen=[],
        loss=LossWeights(velocity=0.0, teacher_mse=0.0, teacher_velocity=0.0, mem=0.0, align=0.0),
        model={"kind": "faceformer"},
    )


def _selftalk() -> StageConfig:
    """SelfTalk's one stage (``model.kind: selftalk``): every group; vertex MSE + velocity and the lip
    reader's feature and CTC terms, plus CTC on phoneme labels for backbones trained from scratch; Adam,
    lr 1e-4, 100 epochs. Published weights 1000 / 1000 / 0.001 / 0.0001 on vertices in metres; here the
    vertex terms are in the motion unit ``s`` (weight 1), so the lip terms keep the published balance at
    0.001 / (1000 s^2) and 0.0001 / (1000 s^2): 0.09 and 0.009 at s = 3.3 mm (the synthetic corpus measures
    3.05 mm: 16 % under the published balance; docs/MODELS.md)."""
    return StageConfig(
        frozen=[],
        loss=LossWeights(
            teacher_mse=0.0, teacher_velocity=0.0, mem=0.0, align=0.0, lipread_feature=0.09, lipread_ctc=0.009
        ),
        model={"kind": "selftalk"},
    )


def _unitalker() -> StageConfig:
    """UniTalker's training (``model.kind: unitalker``): every group; vertex MSE + 0.01 x the PCA
    coefficients' MSE (published ``rec_weight`` 1, ``pca_weight`` 0.01), plus CTC on phoneme labels for
    backbones trained from scratch; Adam, lr 1e-4, 100 epochs. With a pretrained encoder the published model
    warm-up runs first (``unitalker_warmup``) and this stage starts from it (``init_from``)."""
    return StageConfig(
        frozen=[],
        loss=LossWeights(velocity=0.0, teacher_mse=0.0, teacher_velocity=0.0, mem=0.0, align=0.0, pca=0.01),
        model={"kind": "unitalker"},
    )


def _imitator() -> StageConfig:
    """Imitator's generalised training (``model.kind: imitator``): every group; vertex MSE + 10 x velocity
    (published ``velocity_weight``) + 5 x the lip-contact term (published ``mbp_reconstruction_loss`` with
    ``closed_frame_weight`` 5 on Gaussian bilabial weights, sigma 1 frame, 2 frames each side), plus CTC on
    phoneme labels for backbones trained from scratch; Adam, lr 1e-4. All three are vertex errors, so the
    balance holds in the motion unit. Personalisation is not a stage: ``memorytalker adapt``."""
    return StageConfig(
        frozen=[],
        loss=LossWeights(
            velocity=10.0, teacher_mse=0.0, teacher_velocity=0.0, mem=0.0, align=0.0, contact=5.0
        ),
        model={"kind": "imitator"},
    )


def _unitalker_warmup() -> StageConfig:
    """UniTalker's model warm-up (published ``fix_encoder_first``): one epoch with the pretrained speech
    encoder frozen (``asr_frontend``, ``asr``), the decoder, identities and heads training; the
    ``unitalker`` stage then starts from its checkpoint."""
    stage = _unitalker()
    stage.frozen = ["asr_frontend", "asr"]
    stage.max_epochs = 1
    return stage


#: The groups of CodeTalker's VQ-VAE (:data:`memorytalker.models.codetalker.CODEBOOK_GROUPS`).
_CODETALKER_VQ = ["vq_encoder", "codebook", "vq_decoder"]
#: What CodeTalker's stage 2 trains: the speech encoder's groups and the code predictor's
#: (:data:`memorytalker.models.codetalker.PREDICTOR_GROUPS`).
_CODETALKER_PREDICTOR = [
    "asr_frontend", "asr", "ctc_head", "audio_proj", "motion_encoder", "style", "predictor", "feat_map"
]  # fmt: skip


def _codetalker_vq() -> StageConfig:
    """CodeTalker's stage 1 (``model.kind: codetalker``, ``codetalker.stage: codebook``): the motion VQ-VAE
    alone on ground-truth motion; the published L1 reconstruction + 1.0 x the quantiser loss (``beta`` 0.25
    on the commitment term, inside the model); published AdamW lr 1e-4, 200 epochs (here Adam: the
    optimizer is one per run)."""
    off = dict(mse=0.0, velocity=0.0, teacher_mse=0.0, teacher_velocity=0.0, mem=0.0, align=0.0, ctc=0.0)
    return StageConfig(
        trainable=list(_CODETALKER_VQ),
        frozen=[],
        loss=LossWeights(**off, l1=1.0, quant=1.0),
        max_epochs=200,
        model={"kind": "codetalker", "codetalker": {"stage": "codebook"}},
    )


def _codetalker() -> StageConfig:
    """CodeTalker's stage 2 (``codetalker.stage: predictor``): from stage 1's best checkpoint with the VQ-VAE
    frozen (the speech encoder and predictor start fresh: ``init_exclude``); the published motion MSE + 1.0 x
    the feature regression (``motion_weight`` 1, ``reg_weight`` 1), plus CTC on phoneme labels for backbones
    trained from scratch; Adam lr 1e-4, 100 epochs."""
    return StageConfig(
        trainable=list(_CODETALKER_PREDICTOR),
        frozen=[],
        loss=LossWeights(
            velocity=0.0, teacher_mse=0.0, teacher_velocity=0.0, mem=0.0, align=0.0, code_reg=1.0
        ),
        init_from="{output_dir}/codetalker_vq/best.pt",
        init_exclude=list(_CODETALKER_PREDICTOR),
        model={"kind": "codetalker", "codetalker": {"stage": "predictor"}},
    )


def _scantalk() -> StageConfig:
    """ScanTalk's one stage (``model.kind: scantalk``): every group; the vertex MSE + the lip vertices' MSE +
    the velocity MSE, weights 1 / 1 / 1 (the published ``Masked_Loss`` of ``scantalk_train.py``: the released
    ``scantalk_mse_masked_velocity`` model; its plain-MSE variant is ``stage.loss.lip=0 stage.loss.velocity=0``),
    plus CTC on phoneme labels for backbones trained from scratch; Adam, lr 1e-4, 200 epochs."""
    return StageConfig(
        frozen=[],
        max_epochs=200,
        loss=LossWeights(teacher_mse=0.0, teacher_velocity=0.0, mem=0.0, align=0.0, lip=1.0),
        model={"kind": "scantalk"},
    )


#: The built-in stages: name -> a function returning a fresh :class:`StageConfig`.
PRESETS = {
    "memorizing": _memorizing,
    "animating": _animating,
    "nomem": _nomem,
    "faceformer": _faceformer,
    "selftalk": _selftalk,
    "unitalker": _unitalker,
    "unitalker_warmup": _unitalker_warmup,
    "codetalker_vq": _codetalker_vq,
    "codetalker": _codetalker,
    "imitator": _imitator,
    "scantalk": _scantalk,
}
#: Other names of the presets accepted by ``stage=`` / ``--stage``.
ALIASES = {"1": "memorizing", "stage1": "memorizing", "2": "animating", "stage2": "animating"}


def stage_presets() -> list[str]:
    """Names of the built-in stage presets (aliases ``1``/``stage1`` and ``2``/``stage2`` also work)."""
    return sorted(PRESETS)


def stage_name(name: Any) -> str:
    """A stage name with the aliases resolved (``2`` -> ``animating``)."""
    text = str(name).strip()
    return ALIASES.get(text.lower(), text)


def _default_stages() -> dict[str, StageConfig]:
    return {name: make() for name, make in PRESETS.items()}


@dataclass
class OptimConfig:
    """Optimisation and schedule.

    Attributes:
        batch_size: clips per micro-batch per device (padded, masked).
        accumulate_grad_batches: micro-batches per optimizer step.
        max_steps: stop after this many optimizer steps (None = the stage's ``max_epochs`` decides).
        optimizer: ``adam`` (the paper's) or ``adamw``.
        betas, weight_decay: optimizer settings.
        fused: use the optimizer's fused kernel (one pass per parameter tensor for the whole update, the
            same update up to float rounding; faster on CPU, docs/BENCHMARKS.md). False = PyTorch's
            default per-parameter loop.
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
    max_steps: int | None = None
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    fused: bool = True
    grad_clip: float | None = None
    warmup_steps: int = 0
    schedule: str = "constant"
    min_lr_ratio: float = 0.0
    seed: int = 0
    val_batch_size: int = 4

    def validate(self) -> None:
        for key in ("batch_size", "accumulate_grad_batches", "val_batch_size"):
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
            default), ``fve``, ``lip_max``, ``val_loss``, or ``lve_gap`` (LVE plus the closure-weighted
            squared error of the inner lip gap: a model that misses closures or rests open loses,
            :func:`memorytalker.training.validation.validate_loader`).
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
        output_dir: root of the run; each stage writes into ``<output_dir>/<stage>/``
            (``last.pt``, ``best.pt``, ``config.yaml``, ``logs/``).
        resume: continue from ``<output_dir>/<stage>/last.pt`` (same step, optimizer, data order).
        stage: the name of the stage this run trains (a key of ``stages``).
        stages: every stage's settings, by name (defaults: :data:`PRESETS`).
        data, model, optim, engine, checkpoint, logging: see their classes. ``model`` is the model the
            selected stage trains (its ``model`` requirements merged in by :func:`train_config_from_dict`).
    """

    name: str = "memorytalker"
    output_dir: str = "runs/{name}"
    resume: bool = False
    stage: str = "memorizing"
    stages: dict[str, StageConfig] = field(default_factory=_default_stages)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LogConfig = field(default_factory=LogConfig)

    @property
    def current(self) -> StageConfig:
        """The :class:`StageConfig` of the stage this run trains."""
        return self.stages[self.stage]

    def validate(self) -> None:
        if self.stage not in self.stages:
            raise ConfigError(
                f"stage {self.stage!r} is not defined; stages: {sorted(self.stages)} (add it under `stages:`)"
            )
        if not self.stage or any(c in self.stage for c in "/\\") or self.stage in (".", ".."):
            raise ConfigError(f"stage name {self.stage!r} must be a plain folder name")
        self.current.validate(self.stage)
        for section in (self.data, self.model, self.optim, self.engine, self.checkpoint, self.logging):
            section.validate()
        if self.data.corpora and self.model.kind not in (*MULTI_HEAD_KINDS, *ANY_TOPOLOGY_KINDS):
            raise ConfigError(
                f"data.corpora: model kind {self.model.kind!r} has one output topology; training several "
                f"corpora together needs a kind with a head per topology ({', '.join(MULTI_HEAD_KINDS)}) or "
                f"of any topology ({', '.join(ANY_TOPOLOGY_KINDS)})"
            )
        for key, (path, noun) in STAGE_SECTIONS.items():
            have = to_dict(functools.reduce(getattr, path, self))
            if deep_merge(have, getattr(self.current, key)) != have:
                raise ConfigError(
                    f"stage {self.stage!r} needs {noun} {getattr(self.current, key)} that {'.'.join(path)} "
                    "lacks; build configs with load_train_config / train_config_from_dict"
                )

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
        """``<output_dir>/<stage>``: this stage's checkpoints, logs and config."""
        return self.output_root / self.stage

    @property
    def init_path(self) -> Path | None:
        """The stage's ``init_from`` with ``{output_dir}`` / ``{name}`` filled in (None when unset)."""
        init = self.current.init_from
        if init is None:
            return None
        try:
            return Path(init.format(output_dir=str(self.output_root), name=self.name))
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(
                f"stages.{self.stage}.init_from {init!r}: bad placeholder ({exc}); use {{output_dir}} or {{name}}"
            ) from None


# ---------------------------------------------------------------------------------------------- loading
def _split_stage_shorthand(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``key=value`` items into ``(plain, current-stage fields)``: ``stage.<field>=v`` is short for
    ``stages.<selected stage>.<field>=v``."""
    plain, short = [], []
    for item in items:
        key = item.split("=", 1)[0].strip()
        if key.startswith("stage."):
            short.append(item.strip()[len("stage.") :])
        else:
            plain.append(item)
    return plain, short


#: A stage's sections merged into the run's config when that stage runs: stage field -> (the run section's
#: path, what it holds). ``stages.<stage>.model`` -> ``model``, ``stages.<stage>.augment`` -> ``data.augment``.
STAGE_SECTIONS = {"model": (("model",), "model settings"), "augment": (("data", "augment"), "augmentation")}


def _merge_stage_sections(merged: dict, current: Mapping[str, Any]) -> dict:
    """``merged`` with the selected stage's :data:`STAGE_SECTIONS` merged into the run's sections."""
    for key, (path, _) in STAGE_SECTIONS.items():
        wanted = current.get(key)
        if not wanted:
            continue
        target = ".".join(path)
        if not isinstance(wanted, Mapping):
            raise ConfigError(
                f"stages.{merged['stage']}.{key} must map {target} fields to values, got {wanted!r}"
            )
        section = merged
        for part in path:
            section = section.get(part) if isinstance(section, Mapping) else None
        if not isinstance(section, Mapping):
            raise ConfigError(f"{target} must be a mapping, got {section!r}")
        for part in reversed(path):
            wanted = {part: wanted}
        merged = deep_merge(merged, wanted)
    return merged


def train_config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """A validated :class:`TrainConfig` from a plain mapping merged onto the defaults (a YAML file's
    content, or a checkpoint's stored ``config``): aliases resolved, the selected stage's ``model``
    and ``augment`` sections merged into ``model`` and ``data.augment`` (:data:`STAGE_SECTIONS`), built once."""
    merged = deep_merge(to_dict(TrainConfig()), data)
    if not isinstance(merged.get("stage"), (str, int)) or isinstance(merged.get("stage"), bool):
        raise ConfigError(
            f"stage must be a stage name ({', '.join(sorted(merged.get('stages') or {}))}), got "
            f"{merged.get('stage')!r}; per-stage settings go under `stages: {{<name>: {{...}}}}`"
        )
    merged["stage"] = stage_name(merged["stage"])
    stages = merged.get("stages")
    if not isinstance(stages, Mapping):
        raise ConfigError(f"stages must map stage names to stage settings, got {stages!r}")
    merged["stages"] = {stage_name(k): v for k, v in stages.items()}
    current = merged["stages"].get(merged["stage"])
    if isinstance(current, Mapping):
        merged = _merge_stage_sections(merged, current)
    cfg = from_dict(TrainConfig, merged)
    cfg.validate()
    return cfg


def load_train_config(
    path: str | Path | None = None, overrides: Sequence[str] = (), stage: str | None = None
) -> TrainConfig:
    """Defaults <- YAML ``path`` <- ``key=value`` overrides (``stage`` = the override ``stage=<name>``)."""
    data: dict = read_yaml(path) if path is not None else {}
    items = ([f"stage={stage}"] if stage is not None else []) + list(overrides)
    plain, short = _split_stage_shorthand(items)
    data = deep_merge(data, parse_overrides(plain))
    if short:
        selected = stage_name(data.get("stage", TrainConfig.stage))
        data = deep_merge(data, {"stages": {selected: parse_overrides(short)}})
    return train_config_from_dict(data)


def config_to_dict(cfg: TrainConfig) -> dict:
    """Plain, YAML/JSON-safe resolved config (stored in checkpoints and ``config.yaml``)."""
    return to_dict(cfg)


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
