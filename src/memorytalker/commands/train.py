"""``memorytalker train --config configs/<name>.yaml [--stage S] [--resume] [key=value ...]``."""

from __future__ import annotations

import argparse

NAME = "train"
HELP = "train one stage of MemoryTalker (stage 1 memorizing, stage 2 animating, or the no-memory ablation)"
DESCRIPTION = (
    "Train one stage from a config (dataclass defaults <- YAML <- key=value overrides). Two-stage run:\n"
    "  memorytalker train --config configs/synthetic.yaml                   # stage 1 (memorizing)\n"
    "  memorytalker train --config configs/synthetic.yaml --stage animating # stage 2, from stage 1's best.pt\n"
    "Checkpoints go to <output_dir>/<stage>/{last,best}.pt; see docs/TRAINING.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--config", default=None, help="YAML config (configs/*.yaml); omitted = defaults")
    parser.add_argument(
        "--stage",
        default=None,
        help="stage to train: memorizing (1), animating (2), nomem or one defined under `stages:`; same as stage=NAME",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from <output_dir>/<stage>/last.pt (same as resume=true)",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="start again even if the stage folder already holds last.pt"
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides (before or after the options; later ones win), e.g. stage.max_epochs=5 "
        "data.root=data/synthetic",
    )


def main(args: argparse.Namespace) -> int:
    import yaml

    from memorytalker.training.config import config_to_dict, load_train_config

    overrides = list(args.overrides)
    if args.resume:
        overrides.append("resume=true")
    cfg = load_train_config(args.config, overrides, stage=args.stage)
    if args.print_config:
        print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False), end="")
        return 0
    from memorytalker.training.engine import train

    result = train(cfg, overwrite=args.overwrite)
    if result.best is not None:
        print(f"best checkpoint: {result.best}")
    print(f"last checkpoint: {result.last}")
    return 0
