"""How well a model's ARKit weights match the corpus' ground-truth weights: solved, and through its head.

For every clip of a split of a corpus on the project's face (``memorytalker synth``, which stores
``arkit/<clip>.npy``), the model animates the clip's audio on the speaker's template, the weights are solved
from the prediction (:class:`memorytalker.face.solve.ArkitSolver`) and, when the checkpoint has an ARKit head
(``memorytalker calibrate-arkit``), passed through it (what ``memorytalker animate`` then writes to the .csv).
Both are compared with the ground truth: Pearson correlation per weight (pooled over all frames, and the
median over clips), and how closely the weights reproduce the predicted vertices on the lips (RMS, mm). The
same solve on the ground-truth vertices is the ceiling (the solver's own error).

    .venv/bin/python scripts/arkit_accuracy.py --checkpoint runs/synthetic/animating/best.pt \\
        --data data/synthetic --split test --out arkit_accuracy.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    from memorytalker.data import load_dataset
    from memorytalker.evaluation.arkit import solved_clips
    from memorytalker.face import ARKIT_NAMES
    from memorytalker.face.calibrate import REPORTED_WEIGHTS, weight_correlations
    from memorytalker.inference import Animator

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", "-c", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    index = load_dataset(args.data)
    animator = Animator(args.checkpoint, device="cpu")
    solver, head = animator.arkit_solver, animator.arkit_calibration
    kinds = ("solved",) if head is None else ("solved", "head")
    truth, weights, ceiling = [], {k: [] for k in kinds}, []
    per_clip = {k: {n: [] for n in REPORTED_WEIGHTS} for k in kinds}
    lips = {k: [] for k in (*kinds, "ceiling")}
    solve_s, frames = 0.0, 0
    for clip in solved_clips(animator, index, args.split, progress=True):
        solve_s += clip.solve_seconds
        frames += len(clip.prediction)
        clip_w = {"solved": clip.solved}
        if head is not None:
            clip_w["head"] = head.apply(clip.solved)
        gt_v = index.load_vertices(clip.clip_id)[: len(clip.truth)]
        w_ceil = solver.solve(gt_v, clip.template)
        lips["ceiling"].append(solver.report(gt_v, w_ceil, clip.template).lips_rms)
        truth.append(clip.truth)
        ceiling.append(w_ceil)
        for k, w in clip_w.items():
            weights[k].append(w)
            lips[k].append(solver.report(clip.prediction, w, clip.template).lips_rms)
            for name, r in weight_correlations(w, clip.truth).items():
                if r is not None:
                    per_clip[k][name].append(r)
    gt = np.concatenate(truth).astype(np.float64)
    ce = np.concatenate(ceiling).astype(np.float64)
    ceil_r = weight_correlations(ce, gt)
    result = {
        "checkpoint": str(args.checkpoint),
        "split": args.split,
        "clips": len(truth),
        "frames": int(gt.shape[0]),
        "solve_ms_per_frame": 1000 * solve_s / max(frames, 1),
        "lips_rms_mm_ceiling": 1000 * float(np.sqrt(np.mean(np.square(lips["ceiling"])))),
        "head": None
        if head is None
        else {"context": head.context, "ridge": head.ridge, "fitted": head.fitted},
    }
    column = {name: ARKIT_NAMES.index(name) for name in REPORTED_WEIGHTS}
    for k in kinds:
        pr = np.concatenate(weights[k]).astype(np.float64)
        pooled_r = weight_correlations(pr, gt)
        result[k] = {
            "lips_rms_mm": 1000 * float(np.sqrt(np.mean(np.square(lips[k])))),
            "weights": {
                name: {
                    "r_pooled": pooled_r[name],
                    "r_median_clip": float(np.median(per_clip[k][name])) if per_clip[k][name] else None,
                    "r_ceiling": ceil_r[name],
                    "gt_mean": float(gt[:, j].mean()),
                    "pred_mean": float(pr[:, j].mean()),
                }
                for name, j in column.items()
            },
        }
    print(f"{result['clips']} clips, {result['frames']} frames of split {args.split!r}")
    print(
        f"solve {result['solve_ms_per_frame']:.2f} ms/frame; lips RMS of the weights against the predicted "
        + ", ".join(f"{k} {result[k]['lips_rms_mm']:.3f} mm" for k in kinds)
        + f" (the solve on the ground truth: {result['lips_rms_mm_ceiling']:.3f} mm)"
    )

    def f(x):
        return "-" if x is None else f"{x:.3f}"

    cols = "".join(f" {k + ' pooled':>13s} {k + ' median':>13s}" for k in kinds)
    print(f"{'weight':20s}{cols} {'ceiling':>8s} {'gt mean':>8s}")
    for name in REPORTED_WEIGHTS:
        cells = "".join(
            f" {f(result[k]['weights'][name]['r_pooled']):>13s} {f(result[k]['weights'][name]['r_median_clip']):>13s}"
            for k in kinds
        )
        print(f"{name:20s}{cells} {f(ceil_r[name]):>8s} {result['solved']['weights'][name]['gt_mean']:8.3f}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
