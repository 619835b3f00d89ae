"""``memorytalker synth``: generate the synthetic multi-speaker talking-face corpus (docs/DATA.md)."""

from __future__ import annotations

import argparse

NAME = "synth"
HELP = "generate the synthetic talking-face corpus (real TTS voices, articulated faces, speaker styles)"
DESCRIPTION = (
    "Generate a corpus in the processed dataset layout (docs/LAYOUT.md): N speakers (TTS voice x pitch x "
    "rate x loudness x timbre, own face shape and speaking style tied to the voice) each read M sentences. "
    "Deterministic for a seed, whatever --workers. See docs/DATA.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (empty or absent)")
    parser.add_argument("--speakers", type=int, default=24, help="number of speakers N (>= 3; default 24)")
    parser.add_argument("--sentences", type=int, default=40, help="sentences per speaker M (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: all CPU cores)")
    parser.add_argument(
        "--face",
        choices=("ict", "procedural"),
        default="ict",
        help="ict: the project's face (ICT-FaceKit), own identity per speaker, ARKit ground truth per clip "
        "(default); procedural: the small procedural head (tests)",
    )
    parser.add_argument(
        "--template", default=None, help="drive this template mesh (.ply/.obj) instead of ours"
    )
    parser.add_argument(
        "--regions",
        default=None,
        help="region dict for --template (.pkl like FLAME_masks.pkl, .npz or .json)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing corpus in --out")


def main(args: argparse.Namespace) -> int:
    import os

    from memorytalker.synth.corpus import generate_corpus

    workers = args.workers if args.workers is not None else max(1, len(os.sched_getaffinity(0)))
    summary = generate_corpus(
        args.out,
        num_speakers=args.speakers,
        num_sentences=args.sentences,
        seed=args.seed,
        workers=workers,
        template=args.template,
        regions=args.regions,
        overwrite=args.overwrite,
        progress=True,
        face=args.face,
    )
    print(
        f"wrote {summary['clips']} clips ({summary['audio_seconds'] / 60:.1f} min of speech, "
        f"{summary['speakers']} speakers, V={summary['num_vertices']}) to {args.out} in "
        f"{summary['seconds_total']:.1f} s with {summary['workers']} worker(s)"
    )
    return 0
