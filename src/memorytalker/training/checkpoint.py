"""Checkpoints: atomic writing, strict loading, partial (per parameter group) initialisation.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values, so it loads with
``torch.load(weights_only=True)`` (no arbitrary code runs when a checkpoint is opened)::

    format          "memorytalker-checkpoint/1"
    model_state     the model's state_dict
    optimizer       optimizer state_dict (None in exported files)
    scheduler       lr scheduler state_dict
    step            optimizer steps done
    epoch           current epoch (0-based); batch_in_epoch: micro-batches of it already consumed
    config          the resolved TrainConfig as a plain dict (config["model"] rebuilds the model)
    topology        FaceTopology.to_state() with arrays as tensors
    val_metrics     the latest validation metrics {name: float}
    best_metric     best value of config["checkpoint"]["monitor"] so far (and best_step)
    rng             torch / CUDA / numpy / python RNG states (exact resume)
    dataset         name, fps, units and training subjects of the data it was trained on

Files are written to a temporary name in the same folder and moved into place with ``os.replace``, so a
kill during a save never leaves a truncated ``last.pt``/``best.pt``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from memorytalker.errors import CheckpointError, ConfigError, MemoryTalkerError
from memorytalker.topology import FaceTopology

if TYPE_CHECKING:
    from memorytalker.models.config import ModelConfig
    from memorytalker.models.memorytalker import MemoryTalker

CHECKPOINT_FORMAT = "memorytalker-checkpoint/1"
_MAX_NAMES = 12


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


# ---------------------------------------------------------------------------------------------- RNG
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


# ---------------------------------------------------------------------------------------------- models
def model_config_from_checkpoint(ckpt: Mapping, where: str = "checkpoint") -> ModelConfig:
    """The :class:`ModelConfig` stored in a checkpoint's resolved config."""
    from memorytalker.config import from_dict
    from memorytalker.models.config import ModelConfig

    config = ckpt.get("config") or {}
    if "model" not in config:
        raise CheckpointError(f"{where}: its config has no 'model' section")
    try:
        cfg = from_dict(ModelConfig, config["model"], "model")
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


def build_model(model_cfg: ModelConfig, topology: FaceTopology, load_pretrained: bool = True) -> MemoryTalker:
    """``MemoryTalker(model_cfg, topology)``; ``load_pretrained=False`` skips reading pretrained backbone
    weights (used when a checkpoint supplies every weight anyway)."""
    from memorytalker.models.memorytalker import MemoryTalker

    if not load_pretrained:
        backbone = getattr(model_cfg, "backbone", None)
        if backbone is not None and hasattr(backbone, "pretrained"):
            import dataclasses

            model_cfg = dataclasses.replace(
                model_cfg, backbone=dataclasses.replace(backbone, pretrained=False)
            )
    return MemoryTalker(model_cfg, topology)


def load_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[MemoryTalker, FaceTopology, ModelConfig]:
    """Rebuild the model of a checkpoint and load its weights strictly (eval mode, on ``device``).

    Returns:
        ``(model, topology, model_config)``.

    Raises:
        CheckpointError: unreadable file, or missing / unexpected / mis-shaped keys (named in the message).
    """
    ckpt = read_checkpoint(path)
    topology = topology_from_state(ckpt["topology"])
    cfg = model_config_from_checkpoint(ckpt, str(path))
    model = build_model(cfg, topology, load_pretrained=False)
    load_state_strict(model, ckpt["model_state"], f"checkpoint {path}")
    model.to(device)
    model.eval()
    return model, topology, cfg


def save_model_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    topology: FaceTopology,
    model_config: ModelConfig,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write a weights-only checkpoint (no optimizer) that :func:`load_model` reads: for models built or
    converted outside :func:`~memorytalker.training.engine.train`."""
    from memorytalker.config import to_dict

    ckpt = {
        "format": CHECKPOINT_FORMAT,
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": None,
        "step": 0,
        "epoch": 0,
        "config": {"model": to_dict(model_config)},
        "topology": topology_to_state(topology),
        "val_metrics": {},
        "best_metric": None,
    }
    ckpt.update(dict(extra or {}))
    return atomic_save(ckpt, path)


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
    report.stage = (ckpt.get("config") or {}).get("stage", {}).get("name")
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
