"""Torch devices from user input: one rule and one set of messages for every command (``--device``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memorytalker.errors import ConfigError

if TYPE_CHECKING:
    import torch

#: What ``--device`` accepts besides explicit torch device names.
AUTO = "auto"


def resolve_device(name: str | None = AUTO) -> torch.device:
    """``auto`` (or None) -> CUDA when available, else CPU; otherwise a torch device name that must exist.

    Raises:
        ConfigError: not a device name (``xyz``), or a device this machine does not have (``cuda`` without
            CUDA, ``cuda:3`` with two GPUs, ``mps`` off Apple silicon).
    """
    import torch

    text = AUTO if name is None else str(name).strip().lower()
    if text == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise ConfigError(f"--device {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"--device {name}: this machine has no usable CUDA GPU (torch {torch.__version__}, "
                f"CUDA build: {torch.version.cuda or 'no'}); use --device cpu or auto"
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(
                f"--device {name}: this machine has {count} CUDA device(s) (cuda:0..{count - 1})"
            )
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise ConfigError(f"--device {name}: Apple's MPS backend is not available here; use cpu or auto")
    elif dev.type != "cpu":
        raise ConfigError(f"--device {name}: only cpu, cuda[:N] and mps are supported")
    return dev
