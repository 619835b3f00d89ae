"""Inference speed of every model kind (docs/BENCHMARKS.md "Model kinds"): ``predict`` on the synthetic
configs' models (randomly initialised, sizes as trained; speed does not depend on the weights) on the
project's face (5,001 vertices, 30 fps), for clips of 10 s and 60 s, as audio seconds per second (best of
``--repeats`` timed calls after one untimed call, under ``torch.inference_mode()``).

    .venv/bin/python benchmarks/bench_kinds.py [--threads 2] [--seconds 10 60] [--repeats 3]
        [--configs configs/synthetic.yaml configs/synthetic_faceformer.yaml ...]

FaceFormer decodes autoregressively (one decoder step per frame, key/value cached); the others run one pass.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

from memorytalker.face.model import FaceModel
from memorytalker.models.builders import build_model
from memorytalker.training.config import load_train_config

ROOT = Path(__file__).resolve().parents[1]
SR = 16000
CONFIGS = [
    ("MemoryTalker (stage 2)", "synthetic.yaml", "animating"),
    ("FaceFormer", "synthetic_faceformer.yaml", None),
    ("SelfTalk", "synthetic_selftalk.yaml", None),
    ("UniTalker", "synthetic_unitalker.yaml", None),
]


def model_for(config: Path, stage: str | None, topology):
    """The config's model (its stage's model section merged in) on ``topology``, with stand-in speakers
    and identities for the speaker-conditioned kinds (16 training speakers, as the synthetic corpus)."""
    cfg = load_train_config(config, stage=stage).model
    speakers = [f"spk{i:02d}" for i in range(16)]
    if cfg.kind == "faceformer":
        cfg.faceformer.speakers = speakers
    if cfg.kind == "unitalker":
        cfg.unitalker.identities = [f"synthetic/{s}" for s in speakers]
    torch.manual_seed(0)
    model = build_model(cfg, topology).eval()
    if cfg.kind == "memorytalker":
        model.set_motion_scale(0.003)
    return model


def speed(model, seconds: float, repeats: int) -> float:
    rng = np.random.default_rng(0)
    audio = torch.from_numpy((0.1 * rng.normal(size=int(seconds * SR))).astype(np.float32))[None]
    lengths = torch.tensor([audio.shape[1]])
    template = torch.from_numpy(np.asarray(model.topology.vertices, dtype=np.float32))[None]
    times = []
    with torch.inference_mode():
        model.predict(audio, lengths, template)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model.predict(audio, lengths, template)
            times.append(time.perf_counter() - t0)
    return seconds / min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", nargs="+", type=float, default=[10, 60])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    topology = FaceModel.load().topology
    print(f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}")
    print("| kind | parameters [M] | " + " | ".join(f"{s:g} s [audio s/s]" for s in args.seconds) + " |")
    print("|---|---|" + "---|" * len(args.seconds))
    for label, name, stage in CONFIGS:
        model = model_for(ROOT / "configs" / name, stage, topology)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        cells = [f"{speed(model, s, args.repeats):.0f}" for s in args.seconds]
        print(f"| {label} | {params:.2f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
