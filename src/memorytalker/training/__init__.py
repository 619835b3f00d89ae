"""Training and evaluation of MemoryTalker: configs, the Fabric training loop, checkpoints, logs.

* :mod:`memorytalker.training.config` - :class:`TrainConfig`, :class:`StageConfig`, stage presets,
  :func:`load_train_config`.
* :mod:`memorytalker.training.engine` - :func:`train` (one stage; CPU / GPU / DDP via Lightning Fabric).
* :mod:`memorytalker.training.checkpoint` - :func:`load_model` (strict), :func:`read_checkpoint`,
  :func:`load_init`, atomic saving.

Names are imported lazily (importing this package stays cheap).
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "TrainConfig": "memorytalker.training.config",
    "StageConfig": "memorytalker.training.config",
    "load_train_config": "memorytalker.training.config",
    "stage_preset": "memorytalker.training.config",
    "train": "memorytalker.training.engine",
    "TrainResult": "memorytalker.training.engine",
    "load_model": "memorytalker.training.checkpoint",
    "read_checkpoint": "memorytalker.training.checkpoint",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'memorytalker.training' has no attribute {name!r}")
