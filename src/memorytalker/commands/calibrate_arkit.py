"""``memorytalker calibrate-arkit CHECKPOINT --data DIR --out OUT.pt``: fit the ARKit head of a model."""

from __future__ import annotations

import argparse

NAME = "calibrate-arkit"
HELP = "fit a model's ARKit head (solved weights -> the corpus' weights) and store it in a checkpoint copy"
DESCRIPTION = (
    "Animate the training split of a corpus on the project's face (memorytalker synth: it stores the true "
    "ARKit weights), solve the weights from each prediction, and fit a temporal linear head from the solved "
    "weights of a few frames to the true ones (ridge regression; the ridge chosen on the validation split). "
    "OUT.pt is CHECKPOINT with the head added; animate, serve and the web page then write its weights to the "
    ".csv and the .glb. See docs/RENDERING.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from memorytalker.commands._common import add_device_argument
    from memorytalker.face.calibrate import DEFAULT_CONTEXT

    parser.add_argument("checkpoint", help="a model that animates the project's face")
    parser.add_argument(
        "--data", "-d", required=True, help="a corpus with arkit/<clip>.npy (memorytalker synth)"
    )
    parser.add_argument("--out", "-o", required=True, help="checkpoint to write (may be CHECKPOINT itself)")
    parser.add_argument("--train-split", default="train", help="split the head is fitted on (default: train)")
    parser.add_argument("--val-split", default="val", help="split the ridge is chosen on (default: val)")
    parser.add_argument(
        "--context",
        type=int,
        default=DEFAULT_CONTEXT,
        help=f"frames either side (default: {DEFAULT_CONTEXT})",
    )
    parser.add_argument(
        "--max-clips", type=int, default=None, help="use only the first N clips of each split"
    )
    add_device_argument(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from memorytalker.data import load_dataset
    from memorytalker.errors import ConfigError
    from memorytalker.evaluation.arkit import solved_clips
    from memorytalker.face.calibrate import REPORTED_WEIGHTS, check_context, fit_calibration
    from memorytalker.inference import Animator
    from memorytalker.models.loaders import add_arkit_calibration

    check_context(args.context)  # before minutes of animating, not after
    if args.train_split == args.val_split:
        raise ConfigError(
            f"--train-split and --val-split are both {args.train_split!r}: the ridge would be chosen on the fitting data"
        )
    index = load_dataset(args.data)
    animator = Animator(args.checkpoint, device=args.device)
    pairs = {}
    for split in (args.train_split, args.val_split):
        clips = solved_clips(animator, index, split, args.max_clips, progress=not args.no_progress)
        pairs[split] = [(c.solved, c.truth) for c in clips]
    calibration = fit_calibration(pairs[args.train_split], pairs[args.val_split], args.context)
    calibration.fitted.update(
        data=str(Path(args.data)), train_split=args.train_split, val_split=args.val_split
    )
    fitted = calibration.fitted
    print(
        f"fitted on {fitted['train_clips']} clips ({fitted['train_frames']} frames), context +-{args.context} "
        f"frames, ridge {calibration.ridge:g} (chosen on {fitted['val_clips']} validation clips)"
    )
    print(f"validation MSE: solved {fitted['val_mse_solve']:.5f} -> head {fitted['val_mse']:.5f}")
    print(f"{'weight':20s} {'r solved':>9s} {'r head':>8s}")
    for name in REPORTED_WEIGHTS:
        a, b = fitted["val_r_solve"][name], fitted["val_r"][name]
        print(f"{name:20s} {'-' if a is None else f'{a:.3f}':>9s} {'-' if b is None else f'{b:.3f}':>8s}")
    out = add_arkit_calibration(args.checkpoint, calibration.to_state(), args.out)
    print(f"wrote {out}")
    return 0
