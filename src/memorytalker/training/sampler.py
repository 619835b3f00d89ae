"""Training samplers that resume mid-epoch: :class:`ResumableDistributedSampler` (one corpus:
DistributedSampler's sharding plus "skip what this epoch already used") and :class:`CorpusBatchSampler`
(several corpora trained together: batches of one corpus each)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Dataset
from torch.utils.data.distributed import DistributedSampler


class ResumableDistributedSampler(DistributedSampler):
    """``torch.utils.data.DistributedSampler`` (shuffled by ``(seed, epoch)``, one shard per rank) that can
    start an epoch after its first ``start`` samples, so a resumed run sees exactly the batches the
    interrupted one had not seen yet.

    Built with explicit ``num_replicas`` / ``rank`` (Fabric's world size and global rank) so it also works
    in a single process without ``torch.distributed`` being initialised. With one process it yields every
    index once per epoch; with several it pads the last shard like ``DistributedSampler`` does.
    """

    def __init__(
        self, dataset: Dataset, num_replicas: int, rank: int, shuffle: bool = True, seed: int = 0
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip the first ``start`` samples of this rank's shard in the next iteration (then reset)."""
        if start < 0 or start > self.num_samples:
            raise ValueError(f"start {start} outside [0, {self.num_samples}]")
        self.start = int(start)

    def start_at_batch(self, batch: int, batch_size: int) -> None:
        """Skip this epoch's first ``batch`` batches of ``batch_size`` samples (a resumed epoch)."""
        self.set_start(min(int(batch) * int(batch_size), self.num_samples))

    def batches_per_epoch(self, batch_size: int) -> int:
        """Batches of ``batch_size`` in this rank's epoch (the last one may be short)."""
        return math.ceil(self.num_samples / int(batch_size))

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        start, self.start = self.start, 0
        return iter(indices[start:])

    def __len__(self) -> int:
        return self.num_samples - self.start


class CorpusBatchSampler:
    """Batches for several corpora trained together (``DataLoader(batch_sampler=...)``): every batch holds
    clips of one corpus (their vertex counts differ), the corpora's batches interleaved.

    Each epoch, with ``shuffle``, each corpus' indices (repeated ``repeats[c]`` times, UniTalker's
    ``duplicate_list``) are shuffled and cut into batches of ``batch_size`` (the last one of a corpus may be
    short), and the batches of all corpora are shuffled together, drawn from ``(seed, epoch)``; without
    ``shuffle`` (validation) the corpora follow each other in order. With several processes every rank takes
    every ``num_replicas``-th batch (training pads the list to a multiple by repeating its first batches).

    Args:
        sizes: clips per corpus; the dataset's global indices are the corpora's, one after the other.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        batch_size: int,
        repeats: Sequence[int] | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.sizes = [int(n) for n in sizes]
        self.repeats = [1] * len(self.sizes) if repeats is None else [int(r) for r in repeats]
        if len(self.repeats) != len(self.sizes) or min(self.repeats, default=1) < 1:
            raise ValueError(f"repeats {list(self.repeats)} must be >= 1, one per corpus ({len(self.sizes)})")
        self.batch_size, self.shuffle, self.seed = int(batch_size), bool(shuffle), int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def start_at_batch(self, batch: int, batch_size: int | None = None) -> None:
        """Skip this epoch's first ``batch`` batches of this rank in the next iteration (then reset)."""
        if not 0 <= batch <= self.batches_per_epoch():
            raise ValueError(f"start batch {batch} outside [0, {self.batches_per_epoch()}]")
        self.start = int(batch)

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches: list[list[int]] = []
        offset = 0
        for size, rep in zip(self.sizes, self.repeats):
            idx = np.tile(np.arange(offset, offset + size), rep)
            if self.shuffle:
                idx = rng.permutation(idx)
            batches += [idx[i : i + self.batch_size].tolist() for i in range(0, len(idx), self.batch_size)]
            offset += size
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
            if self.num_replicas > 1 and len(batches) % self.num_replicas:
                batches += batches[: self.num_replicas - len(batches) % self.num_replicas]
        return batches

    def _mine(self) -> list[list[int]]:
        return self._all_batches()[self.rank :: self.num_replicas]

    def batches_per_epoch(self, batch_size: int | None = None) -> int:
        """This rank's batches in an epoch."""
        return len(self._mine())

    def __iter__(self) -> Iterator[list[int]]:
        mine = self._mine()
        start, self.start = self.start, 0
        return iter(mine[start:])

    def __len__(self) -> int:
        return len(self._mine()) - self.start
