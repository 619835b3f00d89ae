"""Metrics benchmark: the five metrics on 40 clips x 150 frames x 5023 vertices (target < 10 s, 2 cores).

Measures, separately:

1. numba JIT warm-up: compiling the DTW kernels from scratch (a child process with an empty
   ``NUMBA_CACHE_DIR``) and the first call in this process (loads numba's on-disk cache when present);
2. ``evaluate_predictions`` on in-memory float32 arrays (all five metrics + reductions + report), with a
   per-metric breakdown;
3. ``evaluate_dir`` end to end from files (a dataset in the docs/LAYOUT.md layout plus a prediction folder
   written to a temporary directory): loading, scoring, reducing.

Lip and upper-face index sets: FLAME's (250 / 827 vertices) from ``../shared/data/flame`` when present,
otherwise random index sets of the same sizes.

    .venv/bin/python benchmarks/bench_metrics.py [--clips 40] [--frames 150]
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

V = 5023
ROOT = Path(__file__).resolve().parents[1]
FLAME = ROOT.parent / "shared" / "data" / "flame"


def make_topology():
    from memorytalker.topology import FaceTopology, vocaset_topology

    mesh, masks = FLAME / "FLAME_sample.ply", FLAME / "FLAME_masks.pkl"
    if mesh.is_file() and masks.is_file():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return vocaset_topology(mesh, masks), "FLAME (../shared/data/flame)"
    rng = np.random.default_rng(0)
    ref = rng.normal(scale=0.05, size=(V, 3))
    regions = {"lips": rng.choice(V, 250, replace=False), "upper_face": rng.choice(V, 827, replace=False)}
    return FaceTopology("random", ref, np.zeros((0, 3)), 30, regions), "random index sets (no FLAME files)"


def make_clips(topo, clips: int, frames: int):
    rng = np.random.default_rng(1)
    out = {}
    for k in range(clips):
        subject = f"spk{k % 4:02d}"
        cid = f"{subject}_s{k:03d}"
        t_gt = frames + int(rng.integers(-5, 6))
        base = topo.vertices[None].astype(np.float32)
        gt = base + rng.normal(scale=2e-3, size=(t_gt, V, 3)).astype(np.float32)
        pred = base + rng.normal(scale=2e-3, size=(frames, V, 3)).astype(np.float32)
        out[cid] = (subject, pred, gt)
    return out


def jit_cold_compile_seconds() -> float:
    code = (
        "import time, numpy as np\n"
        "from memorytalker import metrics as M\n"
        "t = time.perf_counter()\n"
        "M.ldtw(np.zeros((3, 4, 3)), np.ones((2, 4, 3)), [0, 1])\n"
        "print(time.perf_counter() - t)\n"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        res = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
    return float(res.stdout.strip().splitlines()[-1])


def write_dataset(root: Path, pred_dir: Path, topo, clips) -> None:
    import soundfile as sf
    import yaml

    (root / "vertices_npy").mkdir(parents=True)
    (root / "wav").mkdir()
    pred_dir.mkdir()
    topo.save(root / "topology.npz")
    with open(root / "templates.pkl", "wb") as fh:
        pickle.dump({s: topo.vertices for s, _, _ in clips.values()}, fh, protocol=2)
    for cid, (_, pred, gt) in clips.items():
        np.save(root / "vertices_npy" / f"{cid}.npy", gt.reshape(len(gt), -1))
        sf.write(root / "wav" / f"{cid}.wav", np.zeros(1600, np.float32), 16000)
        np.save(pred_dir / f"{cid}.npy", pred)
    manifest = {
        "format": "memorytalker-dataset/1",
        "name": "bench",
        "fps": topo.fps,
        "units": "m",
        "splits": {"test": {"clips": sorted(clips)}},
    }
    (root / "dataset.yaml").write_text(yaml.safe_dump(manifest))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--skip-cold", action="store_true", help="skip the JIT compile-from-scratch run")
    args = parser.parse_args()

    from memorytalker import metrics as M
    from memorytalker.evaluation.scoring import evaluate_dir, evaluate_predictions

    print(f"cores available: {len(os.sched_getaffinity(0))}")
    if not args.skip_cold:
        print(
            f"JIT warm-up, compile from scratch (child process, empty cache): {jit_cold_compile_seconds():.2f} s"
        )
    t = time.perf_counter()
    M.ldtw(np.zeros((3, 4, 3)), np.ones((2, 4, 3)), [0, 1])
    print(f"JIT warm-up, first call in this process (numba on-disk cache): {time.perf_counter() - t:.2f} s")

    topo, which = make_topology()
    print(f"index sets: {which}: lips {len(topo.lips)}, upper face {len(topo.upper_face)}")
    clips = make_clips(topo, args.clips, args.frames)
    total_frames = sum(min(len(p), len(g)) for _, p, g in clips.values())
    print(
        f"{args.clips} clips x ~{args.frames} frames x {V} vertices (float32), {total_frames} scored frames"
    )

    preds = {c: v[1] for c, v in clips.items()}
    gts = {c: v[2] for c, v in clips.items()}
    subjects = {c: v[0] for c, v in clips.items()}
    templates = {s: topo.vertices for s in set(subjects.values())}
    t = time.perf_counter()
    report = evaluate_predictions(preds, gts, subjects, topo, templates, "m")
    dt = time.perf_counter() - t
    print(
        f"evaluate_predictions (all five metrics, in memory): {dt:.2f} s ({dt / args.clips * 1e3:.0f} ms/clip)"
    )

    lips, upper = topo.lips, topo.upper_face
    for name, fn in (
        ("fve", lambda p, g: M.fve(p, g)),
        ("lve", lambda p, g: M.lve(p, g, lips)),
        ("lip_max", lambda p, g: M.lip_max(p, g, lips)),
        ("fdd", lambda p, g: M.fdd(p, g, topo.vertices, upper)),
        ("ldtw", lambda p, g: M.ldtw(p, g, lips)),
    ):
        t = time.perf_counter()
        for p, g in zip(preds.values(), gts.values()):
            fn(p, g)
        print(f"  {name:8s} alone over {args.clips} clips: {time.perf_counter() - t:.2f} s")

    with tempfile.TemporaryDirectory() as tmp:
        root, pred_dir = Path(tmp) / "data", Path(tmp) / "pred"
        write_dataset(root, pred_dir, topo, clips)
        t = time.perf_counter()
        rep2 = evaluate_dir(pred_dir, root, split="test", progress=False)
        dt = time.perf_counter() - t
    print(f"evaluate_dir (files -> report, end to end): {dt:.2f} s ({dt / args.clips * 1e3:.0f} ms/clip)")
    assert abs(rep2["pooled"]["lve"] - report["pooled"]["lve"]) <= 1e-9 * report["pooled"]["lve"]
    p = report["pooled"]
    print(
        f"pooled: FVE {p['fve'] * 1e3:.4f} mm, LVE {p['lve'] / 1e-5:.4f} x1e-5 m^2, LDTW {p['ldtw'] * 1e3:.4f} mm"
    )


if __name__ == "__main__":
    main()
