"""Several corpora trained together (UniTalker's multi-dataset training, ``data.corpora``): their splits as
one dataset whose items name their topology (``ClipItem.head``) and whose subject ids index the
concatenated speaker lists of all corpora. Batches must hold one corpus each
(:class:`memorytalker.training.sampler.CorpusBatchSampler`)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import torch

from memorytalker.data.dataset import ClipItem, TalkingFaceDataset
from memorytalker.data.layout import corpus_name
from memorytalker.errors import ConfigError

__all__ = ["CorpusDataset", "corpus_name"]


class CorpusDataset(torch.utils.data.Dataset):
    """The datasets of one split of several corpora, one after the other.

    Args:
        parts: one :class:`TalkingFaceDataset` per corpus (the validation parts built with the training
            parts' ``subjects``, so ids agree).
        names: the corpora's names (unique).

    Attributes:
        subjects: every corpus' subject vocabulary as ``<corpus>/<subject>``, in id order.
        sizes: clips per corpus.
        heads: the topology name of each corpus (corpora on one topology share an output head).
    """

    def __init__(self, parts: Sequence[TalkingFaceDataset], names: Sequence[str]) -> None:
        if len(parts) != len(names) or not parts:
            raise ConfigError(f"{len(parts)} corpora but {len(names)} names")
        if len(set(names)) != len(names):
            raise ConfigError(f"corpus names must differ, got {list(names)} (name them in data.corpora)")
        self.parts = list(parts)
        self.names = list(names)
        self.sizes = [len(p) for p in self.parts]
        self.heads = [p.index.topology.name for p in self.parts]
        self._starts = [sum(self.sizes[:i]) for i in range(len(self.sizes))]
        self._id_offsets = [sum(len(p.subjects) for p in self.parts[:i]) for i in range(len(self.parts))]
        self.subjects = [f"{n}/{s}" for n, p in zip(self.names, self.parts) for s in p.subjects]

    def __len__(self) -> int:
        return sum(self.sizes)

    def set_epoch(self, epoch: int) -> None:
        for p in self.parts:
            p.set_epoch(epoch)

    def locate(self, i: int) -> tuple[int, int]:
        """``(corpus, index within it)`` of global index ``i``."""
        if not 0 <= i < len(self):
            raise IndexError(i)
        c = bisect.bisect_right(self._starts, i) - 1
        return c, i - self._starts[c]

    def __getitem__(self, i: int) -> ClipItem:
        c, j = self.locate(i)
        item = self.parts[c][j]
        if item.subject_id >= 0:
            item.subject_id += self._id_offsets[c]
        item.head = self.heads[c]
        return item
