"""``memorytalker evaluate-dir PRED_DIR DATA_DIR --split test [--layout ...] [--out report.json]``."""

from __future__ import annotations

import argparse

NAME = "evaluate-dir"
HELP = "score saved predictions (PRED_DIR/<clip>.npy) against a dataset split: the five metrics"
DESCRIPTION = (
    "Compare saved predictions PRED_DIR/<clip_id>.npy ((T, V, 3) or (T, V*3), at the dataset fps) with the "
    "ground truth of a dataset split. Prints FVE, LVE, Lip-max, FDD and LDTW pooled and per subject "
    "(customary display scales, units named in the header) and writes a JSON report with raw values in the "
    "data's units: pooled, clip means, per subject, per clip. Definitions: docs/METRICS.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pred_dir", metavar="PRED_DIR", help="folder of <clip_id>.npy predictions")
    parser.add_argument("data_dir", metavar="DATA_DIR", help="processed dataset folder (docs/LAYOUT.md)")
    parser.add_argument("--split", default="test", help="split to score (default: test)")
    parser.add_argument(
        "--layout",
        default=None,
        help="for folders without dataset.yaml: vocaset, biwi (FaceFormer/CodeTalker processed) or a YAML",
    )
    parser.add_argument("--topology", default=None, help="topology.npz overriding the dataset's own")
    parser.add_argument(
        "--out", "-o", default="report.json", help="JSON report to write (default: report.json)"
    )
    parser.add_argument(
        "--allow-missing",
        action="store_true",
        help="score the clips that have a prediction and list the missing ones (default: missing is an error)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def main(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from memorytalker.evaluation.report import format_report
    from memorytalker.evaluation.scoring import evaluate_dir, summary_notes

    report = evaluate_dir(
        args.pred_dir,
        args.data_dir,
        split=args.split,
        layout=args.layout,
        topology=args.topology,
        allow_missing=args.allow_missing,
        progress=not args.no_progress,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(format_report(report))
    for note in summary_notes(report):
        print(note)
    print(f"report: {out}")
    return 0
