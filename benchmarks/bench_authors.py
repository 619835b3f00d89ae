"""The authors' MemoryTalker training step, timed on this machine, to compare with ``bench_training.py``.

Runs the official code (``kimhyungkyu-1208/MemoryTalker``, not part of this project and not copied into it:
pass the folder of a checkout with ``--authors-repo``) exactly as its ``train_VOCA_1stage.py`` steps: the
stage-1 model (their HuBERT CTC backbone with its frozen feature encoder, memory, one decoder layer, the
teacher-forced pass), ``loss_mse + loss_vel + 0.01 (loss_mem + loss_align)``, ``backward()``, Adam step, batch
1. Their backbone is built from ``HubertConfig()`` (hubert-base-ls960's architecture, dropout and LayerDrop)
with random weights, since nothing downloads here; the clip is random audio and random motion of
``--vertices`` vertices at 30 fps (throughput does not depend on the content).

    .venv/bin/python benchmarks/bench_authors.py --authors-repo /path/to/MemoryTalker \
        [--seconds 4] [--vertices 5023] [--steps 8] [--warmup 2] [--threads 2] [--repeats 3]

Prints audio seconds per second (the median of the timed steps' ratios) for each repeat. Compare with
``bench_training.py --config configs/vocaset.yaml --random-hf --random-data 4 --random-vertices 5023
--batch-sizes 1 --stages memorizing`` run on the same machine, alone, right before or after.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import torch


def build_authors_model(repo: Path, vertices: int):
    """Their stage-1 ``MemoryTalker`` with a random ``HubertConfig()`` backbone (Adam over what trains)."""
    if not (repo / "models" / "MemoryTalker_1stage.py").is_file() or not (repo / "HuBERT.py").is_file():
        raise SystemExit(f"--authors-repo {repo}: no models/MemoryTalker_1stage.py and HuBERT.py there")
    sys.path.insert(0, str(repo))
    import HuBERT  # their modified transformers HuBERT (interpolates 50 -> 30 fps before the transformer)
    from transformers import HubertConfig

    def random_hubert(*_args, **_kwargs):
        return HuBERT.HubertForCTC(HubertConfig())

    HuBERT.HubertForCTC.from_pretrained = staticmethod(random_hubert)
    # Their HuBERT.py is written against transformers 4.x, whose post_init calls tie_weights() without
    # arguments; a CTC model has no tied weights, so a no-op keeps the model the same under 5.x.
    HuBERT.HubertForCTC.tie_weights = lambda self, *a, **k: None
    from models.MemoryTalker_1stage import MemoryTalker

    args = SimpleNamespace(
        device="cpu",
        dataset="vocaset",
        vertice_dim=vertices * 3,
        feature_dim=96,
        mem_slot=32,
        softmax_scaling_term=16.0,
        period=30,
    )
    model = MemoryTalker(args)
    model.train()
    optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-4)
    return model, optimizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--authors-repo", type=Path, required=True, help="a checkout of kimhyungkyu-1208/MemoryTalker"
    )
    ap.add_argument("--seconds", type=float, default=4.0, help="clip length")
    ap.add_argument("--vertices", type=int, default=5023)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per repeat")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, optimizer = build_authors_model(args.authors_repo, args.vertices)
    frames = int(round(args.seconds * 30))
    audio = torch.randn(1, int(round(args.seconds * 16000)))
    template = torch.randn(1, args.vertices * 3) * 0.1
    vertice = template.unsqueeze(1) + 1e-3 * torch.randn(1, frames, args.vertices * 3)
    one_hot = torch.zeros(1, 8)

    def step() -> float:
        t0 = time.perf_counter()
        out = model(audio, template, vertice, one_hot, inference=False)
        loss = out[1] + out[2] + 0.01 * (out[3] + out[4])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        return time.perf_counter() - t0

    for _ in range(args.warmup):
        step()
    print(f"authors' stage 1, batch 1, {args.seconds:g} s clips, V = {args.vertices}, {args.threads} threads")
    for r in range(args.repeats):
        times = [step() for _ in range(args.steps)]
        rate = statistics.median(args.seconds / t for t in times)
        print(f"repeat {r + 1}: {rate:.2f} audio s / s ({1 / statistics.median(times):.2f} steps/s)")


if __name__ == "__main__":
    main()
