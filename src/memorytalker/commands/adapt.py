"""``memorytalker adapt -c GENERALISED.pt -d DIR --split adapt --score-split test --out DIR [key=value ...]``:
Imitator's personalisation (:mod:`memorytalker.training.adapt`)."""

from __future__ import annotations

import argparse

NAME = "adapt"
HELP = (
    "personalise a generalised Imitator checkpoint to each unseen speaker of a split (style code, then style "
    "code + displacements) and score the adapted models on another split"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from memorytalker.commands._common import add_checkpoint_argument, add_device_argument

    add_checkpoint_argument(parser, required=True)
    parser.add_argument("--data", "-d", required=True, help="processed dataset folder (docs/LAYOUT.md)")
    parser.add_argument(
        "--split", default="adapt", help="split of the speakers' adaptation clips (default: adapt)"
    )
    parser.add_argument(
        "--score-split",
        default="test",
        help="split scored with each speaker's adapted model (default: test; 'none' = adapt only)",
    )
    parser.add_argument(
        "--out",
        "-o",
        required=True,
        help="folder: <speaker>.pt, report.json, generalised.json, adaptation.json",
    )
    parser.add_argument(
        "--layout", default=None, help="for folders without dataset.yaml: vocaset, biwi or a YAML"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the clip order in each stage")
    add_device_argument(parser)
    parser.add_argument(
        "overrides",
        nargs="*",
        help="model.imitator.adapt settings as key=value (e.g. stage1_epochs=20 max_sequences=0 lr=3e-4)",
    )


def main(args: argparse.Namespace) -> int:
    from memorytalker.evaluation.report import format_report
    from memorytalker.training.adapt import adapt_and_score

    score = None if str(args.score_split).lower() == "none" else args.score_split
    summary = adapt_and_score(
        args.checkpoint,
        args.data,
        args.out,
        split=args.split,
        score_split=score,
        overrides=args.overrides,
        device=args.device,
        layout=args.layout,
        seed=args.seed,
    )
    if summary["report"] is not None:
        import json
        from pathlib import Path

        for title, key in (("adapted", "report"), ("generalised", "generalised")):
            print(f"--- {title} ({summary[key]})")
            print(format_report(json.loads(Path(summary[key]).read_text())))
    return 0
