"""How well ARKit weights solved from a model's predicted vertices match the corpus' ground-truth weights.

For every clip of a split of a corpus on the project's face (``memorytalker synth``, which stores
``arkit/<clip>.npy``), the model animates the clip's audio on the speaker's template, the weights are solved
from the prediction (:class:`memorytalker.face.solve.ArkitSolver`, what ``memorytalker animate`` writes to
the .csv), and compared with the ground truth: Pearson correlation per weight (pooled over all frames, and
the median over clips), and how closely the solved weights reproduce the predicted vertices on the lips
(RMS, mm). The same solve on the ground-truth vertices is the ceiling (the solver's own error).

    .venv/bin/python scripts/arkit_accuracy.py --checkpoint runs/synthetic/animating/best.pt \\
        --data data/synthetic --split test --out arkit_accuracy.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

#: Weights reported (those the corpus drives; left/right pairs by their left member).
REPORTED = (
    "jawOpen",
    "mouthClose",
    "mouthLowerDownLeft",
    "mouthUpperUpLeft",
    "mouthFunnel",
    "mouthPucker",
    "mouthStretchLeft",
    "mouthSmileLeft",
    "mouthRollLower",
    "mouthPressLeft",
    "browInnerUp",
    "eyeBlinkLeft",
)


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation, None when either side is constant."""
    a, b = a - a.mean(), b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 0 else None


def main(argv: list[str] | None = None) -> int:
    from memorytalker.data import load_dataset
    from memorytalker.face import ARKIT_NAMES
    from memorytalker.inference import Animator

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", "-c", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)

    index = load_dataset(args.data)
    animator = Animator(args.checkpoint, device="cpu")
    solver = animator.arkit_solver
    if solver is None:
        raise SystemExit(f"{args.checkpoint}: the model does not animate the project's face (no ARKit basis)")
    gt_all, pred_all, ceil_all, per_clip = [], [], [], {n: [] for n in REPORTED}
    lips_pred, lips_gt, solve_s, frames = [], [], 0.0, 0
    for clip in index.clips(args.split):
        gt_w = index.load_arkit(clip)
        if gt_w is None:
            raise SystemExit(f"{clip.clip_id}: no ground-truth ARKit weights (arkit/{clip.clip_id}.npy)")
        tpl = index.template(clip.subject)
        pred = animator.animate(index.load_audio(clip), sample_rate=16000, template=tpl)
        gt_v = index.load_vertices(clip)
        n = min(len(pred), len(gt_w))
        t0 = time.perf_counter()
        w_pred = solver.solve(pred, tpl)
        solve_s += time.perf_counter() - t0
        frames += len(pred)
        w_ceil = solver.solve(gt_v, tpl)
        lips_pred.append(solver.report(pred, w_pred, tpl).lips_rms)
        lips_gt.append(solver.report(gt_v, w_ceil, tpl).lips_rms)
        gt_all.append(gt_w[:n])
        pred_all.append(w_pred[:n])
        ceil_all.append(w_ceil[:n])
        for name in REPORTED:
            j = ARKIT_NAMES.index(name)
            r = pearson(w_pred[:n, j].astype(np.float64), gt_w[:n, j].astype(np.float64))
            if r is not None:
                per_clip[name].append(r)
    gt, pr, ce = (np.concatenate(x).astype(np.float64) for x in (gt_all, pred_all, ceil_all))
    rows = {}
    for name in REPORTED:
        j = ARKIT_NAMES.index(name)
        rows[name] = {
            "r_pooled": pearson(pr[:, j], gt[:, j]),
            "r_median_clip": float(np.median(per_clip[name])) if per_clip[name] else None,
            "r_ceiling": pearson(ce[:, j], gt[:, j]),
            "gt_mean": float(gt[:, j].mean()),
            "pred_mean": float(pr[:, j].mean()),
        }
    result = {
        "checkpoint": str(args.checkpoint),
        "split": args.split,
        "clips": len(gt_all),
        "frames": int(gt.shape[0]),
        "lips_rms_mm_solved_from_prediction": 1000 * float(np.sqrt(np.mean(np.square(lips_pred)))),
        "lips_rms_mm_solved_from_ground_truth": 1000 * float(np.sqrt(np.mean(np.square(lips_gt)))),
        "solve_ms_per_frame": 1000 * solve_s / max(frames, 1),
        "weights": rows,
    }
    print(f"{result['clips']} clips, {result['frames']} frames of split {args.split!r}")
    print(
        f"lips RMS of the solved weights: {result['lips_rms_mm_solved_from_prediction']:.3f} mm on the predictions, "
        f"{result['lips_rms_mm_solved_from_ground_truth']:.3f} mm on the ground truth; "
        f"solve {result['solve_ms_per_frame']:.2f} ms/frame"
    )
    print(
        f"{'weight':20s} {'r pooled':>9s} {'r median':>9s} {'ceiling':>8s} {'gt mean':>8s} {'pred mean':>9s}"
    )
    for name, r in rows.items():

        def f(x):
            return "    -" if x is None else f"{x:9.3f}"

        print(f"{name:20s} {f(r['r_pooled'])} {f(r['r_median_clip'])} {f(r['r_ceiling'])[1:]} "
              f"{r['gt_mean']:8.3f} {r['pred_mean']:9.3f}")  # fmt: skip
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
