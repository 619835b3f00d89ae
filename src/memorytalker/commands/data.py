"""``memorytalker data check DIR`` (every problem in a dataset) and ``memorytalker data info DIR``."""

from __future__ import annotations

import argparse

NAME = "data"
HELP = "inspect a processed dataset: `data check DIR` finds every problem, `data info DIR` summarises it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="<check|info>", required=True)
    for name, help_text in (
        ("check", "report every problem (exit code 1 when any is found)"),
        ("info", "print fps, units, vertex count, splits with their clip and subject counts"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("root", metavar="DIR", help="dataset folder (docs/LAYOUT.md)")
        p.add_argument(
            "--layout",
            default=None,
            help="for folders without dataset.yaml: vocaset, biwi (FaceFormer/CodeTalker processed) "
            "or a manifest YAML path",
        )
        p.add_argument("--topology", default=None, help="topology.npz overriding the dataset's own")
        if name == "check":
            p.add_argument("--json", default=None, help="also write the findings to this JSON file")
            p.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _check(args: argparse.Namespace) -> int:
    import json
    from dataclasses import asdict
    from pathlib import Path

    from memorytalker.data.check import check_dataset, format_findings

    findings = check_dataset(
        args.root, layout=args.layout, topology=args.topology, progress=not args.no_progress
    )
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(f) for f in findings], indent=2))
    if findings:
        print(format_findings(findings))
        return 1
    from memorytalker.data.layout import load_dataset

    index = load_dataset(args.root, layout=args.layout, topology=args.topology)
    n = len(index.all_clips())
    print(
        f"{args.root}: no problems found ({n} clips, {len(index.subjects())} subjects, splits "
        + ", ".join(f"{s}={len(index.clips(s))}" for s in index.split_names)
        + ")"
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    from memorytalker.data.layout import load_dataset

    index = load_dataset(args.root, layout=args.layout, topology=args.topology)
    print(f"dataset {index.name!r} at {index.root}")
    print(f"  fps {index.fps:g} (stored {index.vertex_fps:g}, stride {index.stride}), units {index.units}")
    print(f"  vertices per frame: {index.num_vertices}")
    print(f"  topology: {index.topology!r}" if index.has_topology else "  topology: none")
    print(f"  clips: {len(index.all_clips())}")
    for s in index.split_names:
        clips = index.clips(s)
        print(f"  split {s}: {len(clips)} clips, {len({c.subject for c in clips})} subjects")
    return 0


def main(args: argparse.Namespace) -> int:
    return _check(args) if args.data_command == "check" else _info(args)
