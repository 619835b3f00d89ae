"""``memorytalker evaluate --checkpoint CKPT --data DIR --split test --out report.json [--pred-dir DIR]
[--noise-snr DB] [--rt60 S] [--gain-db DB]``."""

from __future__ import annotations

import argparse

NAME = "evaluate"
HELP = "score a checkpoint on a dataset split: five metrics per subject and pooled, plus a lip-opening plot"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from memorytalker.commands._common import add_checkpoint_argument, add_device_argument
    from memorytalker.data.augment import NOISE_COLOURS

    add_checkpoint_argument(parser, required=True)
    parser.add_argument("--data", "-d", required=True, help="processed dataset folder (docs/LAYOUT.md)")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    parser.add_argument(
        "--out", "-o", default="report.json", help="JSON report to write (default: report.json)"
    )
    parser.add_argument("--pred-dir", default=None, help="also save predictions as DIR/<clip>.npy (T, V, 3)")
    parser.add_argument(
        "--layout", default=None, help="for folders without dataset.yaml: vocaset, biwi or a YAML"
    )
    parser.add_argument("--plot", default=None, help="lip-opening PNG (default: the report path with .png)")
    parser.add_argument(
        "--plot-clips", type=int, default=3, help="clips in the lip-opening plot (0 = no plot)"
    )
    parser.add_argument(
        "--conditions",
        default="auto",
        help="speaker-conditioned models (FaceFormer, UniTalker): clips of speakers outside training are "
        "predicted under every training speaker's condition with the metrics averaged ('all', FaceFormer's "
        "published protocol), under the model's default condition ('default'; UniTalker's common identity), "
        "under the kind's published protocol ('auto', the default), or under one named condition",
    )
    rec = parser.add_argument_group(
        "recording condition",
        "score the clips as heard in a room, in noise or at another level (seeded per clip)",
    )
    rec.add_argument("--noise-snr", type=float, default=None, metavar="DB", help="add noise at DB dB SNR")
    rec.add_argument("--noise", default="white", choices=NOISE_COLOURS, help="its colour")
    rec.add_argument(
        "--rt60", type=float, default=None, metavar="S", help="a synthetic room of RT60 S seconds"
    )
    rec.add_argument("--gain-db", type=float, default=None, metavar="DB", help="change the level by DB dB")
    add_device_argument(parser)
    parser.add_argument("--max-clips", type=int, default=None, help="score only the first N clips")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def main(args: argparse.Namespace) -> int:
    from memorytalker.data.augment import RecordingCondition
    from memorytalker.errors import ConfigError
    from memorytalker.evaluation.report import format_report
    from memorytalker.evaluation.scoring import evaluate_checkpoint

    if args.noise != "white" and args.noise_snr is None:
        raise ConfigError(f"--noise {args.noise} needs --noise-snr DB (the noise's level)")
    recording = RecordingCondition(
        snr_db=args.noise_snr, noise=args.noise, rt60=args.rt60, gain_db=args.gain_db
    )

    report = evaluate_checkpoint(
        args.checkpoint,
        args.data,
        split=args.split,
        out=args.out,
        pred_dir=args.pred_dir,
        layout=args.layout,
        plot=args.plot,
        plot_clips=args.plot_clips,
        device=args.device,
        progress=not args.no_progress,
        max_clips=args.max_clips,
        conditions=args.conditions,
        recording=recording,
    )
    if not recording.clean:
        print(f"recording condition: {recording.describe()}")
    print(format_report(report))
    print(
        f"report: {args.out}"
        + (f"; plot: {report['lip_opening']['plot']}" if "lip_opening" in report else "")
    )
    return 0
