"""Any-length inference: a 10-minute input runs in one call with memory linear in length (compact backbone
at a small width). Peak tensor memory is measured with the torch profiler's allocation records for 5 and
10 minutes. Speed is measured in benchmarks/bench_inference.py, not here."""

from __future__ import annotations

import torch
from test_model_common import randomize_head, tiny_config, tiny_topology

from memorytalker.models.memorytalker import MemoryTalker


def peak_tensor_memory(fn) -> tuple[float, object]:
    """Peak bytes of live CPU tensors allocated while ``fn()`` runs (allocations of every op, frees as
    they happen, in time order) and its result."""
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        result = fn()
    items = []
    for e in prof.events():
        if e.name == "[memory]":
            items.append((e.time_range.start, e.cpu_memory_usage))
        elif e.self_cpu_memory_usage:
            items.append((e.time_range.start, e.self_cpu_memory_usage))
    items.sort(key=lambda x: x[0])
    current = peak = 0
    for _, delta in items:
        current += delta
        peak = max(peak, current)
    return float(peak), result


def test_ten_minutes_run_in_one_call_with_linear_memory():
    torch.manual_seed(0)
    model = MemoryTalker(tiny_config(style=True), tiny_topology()).eval()
    randomize_head(model)
    template = torch.from_numpy(model.topology.vertices.copy())[None]
    peaks, preds = {}, {}
    for minutes in (5, 10):
        n = minutes * 60 * 16000
        audio = torch.randn(1, n, generator=torch.Generator().manual_seed(minutes)) * 0.1
        with torch.inference_mode():
            peaks[minutes], preds[minutes] = peak_tensor_memory(
                lambda a=audio, n=n: model.predict(a, torch.tensor([n]), template)
            )
    assert preds[10].shape == (1, 10 * 60 * 30, 12, 3) and preds[5].shape == (1, 5 * 60 * 30, 12, 3)
    assert torch.isfinite(preds[10]).all()
    assert preds[10][0, -1].ne(template[0]).any()  # the last frames are decoded, not padding
    # linear: twice the audio, about twice the peak (quadratic attention over 18000 frames alone would
    # need 18000^2 x 4 heads x 4 bytes = 5 GB)
    ratio = peaks[10] / peaks[5]
    assert 1.5 < ratio < 2.5, (peaks, ratio)
    assert peaks[10] < 1.0e9, peaks
