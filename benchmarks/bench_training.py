"""Training throughput in seconds of audio per second (forward + backward + optimizer step).

Uses the model, stage and data of a training config (default ``configs/synthetic.yaml``, stage 1 and
stage 2), real batches of its training split (padded, masked, triplets for stage 2), and times
``--steps`` optimizer steps after ``--warmup`` untimed ones, for each batch size.

    .venv/bin/python benchmarks/bench_training.py [--config configs/synthetic.yaml] [--batch-sizes 1 8]
        [--stages memorizing animating] [--steps 8] [--warmup 2] [key=value ...]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from memorytalker.data import TalkingFaceDataset, collate_batch, load_dataset
from memorytalker.models.losses import compute_losses
from memorytalker.training.checkpoint import build_model
from memorytalker.training.config import load_train_config
from memorytalker.training.engine import _make_optimizer, select_trainable

ROOT = Path(__file__).resolve().parents[1]


def bench(cfg, batch_size: int, steps: int, warmup: int) -> dict:
    torch.manual_seed(cfg.optim.seed)
    index = load_dataset(cfg.data.root, layout=cfg.data.layout, topology=cfg.data.topology)
    ds = TalkingFaceDataset(
        index, cfg.data.train_split, cache=True, triplets=cfg.stage.triplets, max_seconds=cfg.data.max_seconds
    )
    model = build_model(cfg.effective_model, index.topology)
    _, params = select_trainable(model, cfg)
    opt = _make_optimizer(cfg, params)
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, collate_fn=collate_batch, drop_last=True)
    batches = []
    while len(batches) < steps + warmup:
        for b in loader:
            batches.append(b)
            if len(batches) == steps + warmup:
                break
    model.train()
    audio, elapsed = 0.0, 0.0
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        out = model(batch, teacher_forcing=cfg.stage.teacher_forcing)
        loss = compute_losses(out, batch, cfg.stage.loss, index.topology)["total"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        if i >= warmup:
            elapsed += dt
            audio += float(batch.audio_lengths.sum()) / 16000
    return {
        "audio_s": audio,
        "time_s": elapsed,
        "audio_per_s": audio / elapsed,
        "steps_per_s": steps / elapsed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "synthetic.yaml"))
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--stages", nargs="+", default=["memorizing", "animating"])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    )
    print(f"config {args.config} {' '.join(args.overrides)}")
    print(
        f"{'stage':<12} {'batch':>5} {'steps':>5} {'audio s':>8} {'time s':>7} {'audio s / s':>11} {'steps / s':>9}"
    )
    for stage in args.stages:
        cfg = load_train_config(args.config, [*args.overrides, "stage.init_from=null"], stage=stage)
        for bs in args.batch_sizes:
            r = bench(cfg, bs, args.steps, args.warmup)
            print(
                f"{stage:<12} {bs:>5} {args.steps:>5} {r['audio_s']:>8.1f} {r['time_s']:>7.2f} "
                f"{r['audio_per_s']:>11.2f} {r['steps_per_s']:>9.2f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
