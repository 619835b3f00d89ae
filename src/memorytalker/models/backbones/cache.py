"""Per-clip cache of a frozen front end's output, so a frozen part of a speech encoder runs once per clip.

In training, the same clips come back every epoch; a frozen part of the encoder (Whisper's kept-frozen
layers, wav2vec 2.0 / HuBERT's convolutional feature encoder) maps the same waveform to the same features
every time. :class:`ClipFeatureCache` keeps those features in memory keyed by a hash of the clip's samples,
least recently used first out, within a byte budget (``model.backbone.cache_mb``). A clip whose audio
changed (augmentation draws new conditions each epoch) simply misses. The caller decides when to use it
(training mode only: inference never fills memory with features of one-off inputs).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

import torch


class ClipFeatureCache:
    """LRU map from a clip's samples to a feature tensor, bounded by ``budget_mb``.

    Args:
        budget_mb: bytes allowed for stored tensors, in MiB (0 = store nothing).
        dtype: the stored precision. Every caller gets the stored value, miss or hit, so the first epoch
            and the later ones see identical features (with ``float16`` that is a rounding of the fresh
            value; ``None`` keeps the computed dtype and the cache changes nothing).
    """

    def __init__(self, budget_mb: float, dtype: torch.dtype | None = None) -> None:
        self.budget = float(budget_mb) * 2**20
        self.dtype = dtype
        self._items: OrderedDict[str, tuple[torch.Tensor, torch.dtype]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    @staticmethod
    def key(audio: torch.Tensor) -> str:
        """SHA-1 of the clip's float32 samples and shape."""
        a = audio.detach().to("cpu", torch.float32).contiguous()
        h = hashlib.sha1(str(tuple(a.shape)).encode())
        h.update(a.numpy().tobytes())
        return h.hexdigest()

    def get_or_compute(self, audio: torch.Tensor, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The features of ``audio``: stored ones if present, else ``compute()`` (stored when they fit).
        Returned on ``audio``'s device, in ``compute``'s dtype."""
        k = self.key(audio)
        hit = self._items.get(k)
        if hit is not None:
            self._items.move_to_end(k)
            self.hits += 1
            return hit[0].to(audio.device, hit[1])
        self.misses += 1
        out = compute().detach()
        stored = out.to("cpu", self.dtype or out.dtype)
        if stored is out:  # own storage: a view would keep its whole base tensor alive
            stored = out.clone()
        size = stored.numel() * stored.element_size()
        if size > self.budget:
            return out
        self._items[k] = (stored, out.dtype)
        self.bytes += size
        while self.bytes > self.budget:
            _, (old, _) = self._items.popitem(last=False)
            self.bytes -= old.numel() * old.element_size()
        return stored.to(audio.device, out.dtype)

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0
