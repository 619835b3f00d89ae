"""Inference speed: ``MemoryTalker.predict`` on 10 s, 60 s and 10 min of audio, real-time factors.

Models (randomly initialised; speed does not depend on the weights):

* ``compact``: the default :class:`ModelConfig` (compact backbone, memory, style encoder on = the full stage-2
  inference graph), on a 5023-vertex (FLAME-sized) topology at 30 fps.
* ``wav2vec2-base``: the same with a Hugging Face backbone of ``Wav2Vec2Config()``'s default size (= the
  wav2vec2-base / hubert-base architecture, 94 M parameters), built from a config written to a temporary
  folder (nothing downloads); long audio runs in ``chunk_seconds`` windows.

    .venv/bin/python benchmarks/bench_inference.py [--threads 2] [--models compact wav2vec2-base]
        [--seconds 10 60 600] [--hf-seconds 10 60 600] [--repeats 3] [--device cuda] [--bf16]

``--device cuda`` runs on a GPU (timings include ``torch.cuda.synchronize()``); ``--bf16`` wraps the call in
``torch.autocast(dtype=torch.bfloat16)``.

Each figure is the best of ``--repeats`` timed calls after one untimed warm-up call, under
``torch.inference_mode()``; the real-time factor is audio seconds / wall seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import tempfile
import time

import numpy as np
import torch

from memorytalker.models.config import ModelConfig, StyleConfig
from memorytalker.models.memorytalker import MemoryTalker
from memorytalker.topology import FaceTopology

SR = 16000


def flame_sized_topology(fps: float = 30.0, vertices: int = 5023) -> FaceTopology:
    """A random ``vertices``-vertex topology (strip triangles); lips = the first min(250, V/20) vertices,
    of which the first 24 are the inner-lip contours (12 upper, 12 lower, for the lip-gap loss), upper
    face = the first min(800, V/5) (FLAME-like counts at V = 5023)."""
    rng = np.random.default_rng(0)
    verts = rng.normal(scale=0.05, size=(vertices, 3)).astype(np.float32)
    faces = np.stack([np.arange(vertices - 2), np.arange(1, vertices - 1), np.arange(2, vertices)], 1)
    regions = {
        "lips": np.arange(min(250, vertices // 20)),
        "upper_face": np.arange(min(800, vertices // 5)),
        "upper_lip_inner": np.arange(12),
        "lower_lip_inner": np.arange(12, 24),
    }
    return FaceTopology("flame-sized", verts, faces, fps, regions)


def save_random_wav2vec2(folder: str) -> str:
    """Save a randomly initialised wav2vec2-base-sized CTC model (``Wav2Vec2Config()``) to ``folder``."""
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    Wav2Vec2ForCTC(Wav2Vec2Config()).save_pretrained(folder)
    return folder


def device_label(device: torch.device) -> str:
    """The GPU's name, or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def build(kind: str, topology: FaceTopology, tmp: str) -> MemoryTalker:
    cfg = ModelConfig(style=StyleConfig(enabled=True))
    if kind == "wav2vec2-base":
        save_random_wav2vec2(tmp)
        cfg = dataclasses.replace(
            cfg, backbone=dataclasses.replace(cfg.backbone, kind="huggingface", name_or_path=tmp)
        )
    torch.manual_seed(0)
    model = MemoryTalker(cfg, topology).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.decoder.head.weight, std=1e-3)
    return model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_predict(
    model: MemoryTalker, seconds: float, repeats: int, device: torch.device, bf16: bool = False
) -> tuple[float, int]:
    n = int(seconds * SR)
    g = torch.Generator().manual_seed(0)
    audio = (torch.randn(1, n, generator=g) * 0.1).to(device)
    lengths = torch.tensor([n], device=device)
    template = torch.from_numpy(np.array(model.topology.vertices))[None].to(device)
    best = float("inf")
    frames = 0
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    with torch.inference_mode(), autocast:
        warm = min(n, 2 * SR)
        model.predict(audio[:, :warm], torch.tensor([warm], device=device), template)  # warm-up
        for _ in range(repeats):
            _sync(device)
            t0 = time.perf_counter()
            out = model.predict(audio, lengths, template)
            _sync(device)
            best = min(best, time.perf_counter() - t0)
            frames = out.shape[1]
    return best, frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=["compact", "wav2vec2-base"])
    ap.add_argument("--seconds", nargs="+", type=float, default=[10, 60, 600], help="compact model")
    ap.add_argument("--hf-seconds", nargs="+", type=float, default=[10, 60, 600], help="wav2vec2-base model")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (GPU)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    topology = flame_sized_topology()
    print(f"torch {torch.__version__}, {args.threads} threads, {device_label(device)}, bf16={args.bf16}")
    print(f"topology: V={topology.num_vertices}, fps={topology.fps:g}")
    print(f"{'model':<15}{'params':>10}{'audio':>9}{'frames':>8}{'wall s':>9}{'x real time':>13}")
    for kind in args.models:
        with tempfile.TemporaryDirectory() as tmp:
            model = build(kind, topology, tmp).to(device)
            skip = {id(p) for p in model.motion_encoder.parameters()}  # params: the inference graph
            params = sum(p.numel() for p in model.parameters() if id(p) not in skip)
            for seconds in args.seconds if kind == "compact" else args.hf_seconds:
                repeats = args.repeats if seconds < 600 or device.type == "cuda" else 1
                wall, frames = time_predict(model, seconds, repeats, device, args.bf16)
                print(
                    f"{kind:<15}{params / 1e6:>9.1f}M{seconds:>8.0f}s{frames:>8}{wall:>9.3f}{seconds / wall:>12.1f}x",
                    flush=True,
                )


if __name__ == "__main__":
    main()
