"""Inference speed of every model kind (docs/BENCHMARKS.md "Model kinds"): ``predict`` on the synthetic
configs' models (randomly initialised, sizes as trained; speed does not depend on the weights) on the
project's face (5,001 vertices, 30 fps), for clips of 10 s and 60 s, as audio seconds per second (best of
``--repeats`` timed calls after one untimed call, under ``torch.inference_mode()``).

    .venv/bin/python benchmarks/bench_kinds.py [--threads 2] [--seconds 10 60] [--repeats 3]
        [--configs configs/synthetic.yaml configs/synthetic_faceformer.yaml ...]

FaceFormer, CodeTalker and Imitator decode autoregressively (one decoder step per frame); the others run one
pass. ScanTalk also needs its mesh operators once per topology (Laplacian eigenbasis, gradients): their
precomputation is timed for each topology of the synthetic corpora (``--operators``, the ScanTalk config's
eigenpairs).
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
    ("CodeTalker (stage 2)", "synthetic_codetalker.yaml", "codetalker"),
    ("Imitator", "synthetic_imitator.yaml", None),
    ("ScanTalk", "synthetic_scantalk.yaml", None),
]
#: Topologies whose ScanTalk operators are timed: (label, topology file).
OPERATOR_MESHES = [
    ("project's face", "data/synthetic/topology.npz"),
    ("procedural head", "data/synth_head/topology.npz"),
    ("FLAME", "data/synth_flame/topology.npz"),
    ("project's face, remeshed", "data/synthetic_remeshed/topology.npz"),
]


def model_for(config: Path, stage: str | None, topology):
    """The config's model (its stage's model section merged in) on ``topology``, with stand-in speakers
    and identities for the speaker-conditioned kinds (16 training speakers, as the synthetic corpus)."""
    cfg = load_train_config(config, stage=stage).model
    speakers = [f"spk{i:02d}" for i in range(16)]
    if cfg.kind in ("faceformer", "codetalker", "imitator"):
        getattr(cfg, cfg.kind).speakers = speakers
    if cfg.kind == "unitalker":
        cfg.unitalker.identities = [f"synthetic/{s}" for s in speakers]
    torch.manual_seed(0)
    model = build_model(cfg, topology).eval()
    if cfg.kind != "unitalker":
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
    ap.add_argument("--operators", action="store_true", help="also time ScanTalk's operators per topology")
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
    if args.operators:
        operator_times()


def operator_times() -> None:
    """ScanTalk's per-topology precomputation (median of 3), for each synthetic corpus' topology present."""
    import statistics

    from memorytalker.models.diffusionnet import compute_operators
    from memorytalker.topology import FaceTopology

    k = load_train_config(ROOT / "configs" / "synthetic_scantalk.yaml").model.scantalk.k_eig
    print(f"\n| topology | vertices | triangles | operators, {k} eigenpairs [s] |\n|---|---|---|---|")
    for label, rel in OPERATOR_MESHES:
        path = ROOT / rel
        if not path.is_file():
            print(f"| {label} | ({rel} missing) | | |")
            continue
        topo = FaceTopology.load(path)
        times = [compute_operators(topo.vertices, topo.faces, k).seconds for _ in range(3)]
        print(f"| {label} | {topo.num_vertices} | {len(topo.faces)} | {statistics.median(times):.2f} |")


if __name__ == "__main__":
    main()
