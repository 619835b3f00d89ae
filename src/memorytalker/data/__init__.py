"""The data layer: processed dataset folders, audio, phonemes and the PyTorch dataset.

Cheap to import: the torch-based names (:class:`TalkingFaceDataset`, :func:`collate_batch`,
:class:`Batch`, :class:`ClipItem`) are loaded on first use.

* :func:`load_dataset` -> :class:`DatasetIndex` (clips per split as :class:`ClipRecord`, templates,
  topology, ``load_vertices`` -> ``(T, V, 3)`` at the dataset fps, ``load_audio`` -> 16 kHz mono).
* :func:`check_dataset` -> every problem found in a dataset folder (``memorytalker data check``).
* :func:`prepare_vocaset` converts the VOCASET distribution (``memorytalker prepare vocaset``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memorytalker.data.audio import SAMPLE_RATE, load_audio
from memorytalker.data.layout import (
    ClipRecord,
    DatasetIndex,
    DatasetManifest,
    SplitSpec,
    builtin_layouts,
    load_dataset,
    load_layout,
    parse_clip_id,
    read_templates,
    write_templates,
)

if TYPE_CHECKING:
    from memorytalker.data.check import Finding, check_dataset
    from memorytalker.data.dataset import Batch, ClipItem, TalkingFaceDataset, collate_batch
    from memorytalker.data.vocaset import PrepareSummary, prepare_vocaset

_LAZY = {
    "Batch": "memorytalker.data.dataset",
    "ClipItem": "memorytalker.data.dataset",
    "TalkingFaceDataset": "memorytalker.data.dataset",
    "collate_batch": "memorytalker.data.dataset",
    "Finding": "memorytalker.data.check",
    "check_dataset": "memorytalker.data.check",
    "PrepareSummary": "memorytalker.data.vocaset",
    "prepare_vocaset": "memorytalker.data.vocaset",
}

__all__ = [
    "SAMPLE_RATE",
    "Batch",
    "ClipItem",
    "ClipRecord",
    "DatasetIndex",
    "DatasetManifest",
    "Finding",
    "PrepareSummary",
    "SplitSpec",
    "TalkingFaceDataset",
    "builtin_layouts",
    "check_dataset",
    "collate_batch",
    "load_audio",
    "load_dataset",
    "load_layout",
    "parse_clip_id",
    "prepare_vocaset",
    "read_templates",
    "write_templates",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'memorytalker.data' has no attribute {name!r}")
