"""A resumable distributed sampler: DistributedSampler's sharding plus "skip what this epoch already used"."""

from __future__ import annotations

from collections.abc import Iterator

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

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        start, self.start = self.start, 0
        return iter(indices[start:])

    def __len__(self) -> int:
        return self.num_samples - self.start
