"""ClipFeatureCache: hits by content, LRU eviction within the byte budget, stored precision."""

from __future__ import annotations

import torch

from memorytalker.models.backbones.cache import ClipFeatureCache


def _compute(counter: list[int], value: torch.Tensor):
    def f() -> torch.Tensor:
        counter.append(1)
        return value.clone()

    return f


def test_hits_by_content_not_identity():
    cache = ClipFeatureCache(1.0)
    audio = torch.randn(1, 100)
    feats = torch.randn(1, 8, 5)
    n: list[int] = []
    a = cache.get_or_compute(audio, _compute(n, feats))
    b = cache.get_or_compute(audio.clone(), _compute(n, feats * 0))  # equal samples: a hit
    assert len(n) == 1 and torch.equal(a, feats) and torch.equal(b, feats)
    cache.get_or_compute(audio[:, :99], _compute(n, feats))  # other shape: a miss
    cache.get_or_compute(audio + 1e-7, _compute(n, feats))  # other samples: a miss
    assert len(n) == 3 and len(cache) == 3 and (cache.hits, cache.misses) == (1, 3)
    assert cache.bytes == 3 * feats.numel() * 4


def test_lru_eviction_and_oversized_items():
    item = torch.zeros(1, 256)  # 1 KiB in float32
    cache = ClipFeatureCache(2.5 / 1024)  # room for two
    clips = [torch.full((1, 10), float(i)) for i in range(3)]
    n: list[int] = []
    cache.get_or_compute(clips[0], _compute(n, item))
    cache.get_or_compute(clips[1], _compute(n, item))
    cache.get_or_compute(clips[0], _compute(n, item))  # clip 0 is now the most recent
    cache.get_or_compute(clips[2], _compute(n, item))  # evicts clip 1
    assert len(cache) == 2 and cache.bytes == 2048 and len(n) == 3
    cache.get_or_compute(clips[0], _compute(n, item))
    assert len(n) == 3
    cache.get_or_compute(clips[1], _compute(n, item))
    assert len(n) == 4
    big = ClipFeatureCache(0.5 / 1024)
    out = big.get_or_compute(clips[0], _compute(n, item))
    assert torch.equal(out, item) and len(big) == 0 and big.bytes == 0
    off = ClipFeatureCache(0)
    off.get_or_compute(clips[0], _compute(n, item))
    assert len(off) == 0


def test_float16_storage_returns_the_stored_value_every_time():
    cache = ClipFeatureCache(1.0, dtype=torch.float16)
    audio = torch.randn(1, 50)
    feats = torch.randn(1, 4, 7) * 3
    n: list[int] = []
    first = cache.get_or_compute(audio, _compute(n, feats))
    second = cache.get_or_compute(audio, _compute(n, feats))
    assert first.dtype == torch.float32 and torch.equal(first, second)
    assert torch.equal(first, feats.half().float()) and cache.bytes == feats.numel() * 2
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0
