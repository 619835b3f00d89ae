"""``memorytalker prepare vocaset --raw DIR --out DIR``: convert a dataset distribution to the processed layout."""

from __future__ import annotations

import argparse

NAME = "prepare"
HELP = "convert a dataset distribution (VOCASET) into the processed layout"
DESCRIPTION = (
    "Convert the VOCASET distribution (data_verts.npy, raw_audio_fixed.pkl, templates.pkl, "
    "subj_seq_to_idx.pkl) into the processed layout of docs/LAYOUT.md: 30-fps vertex arrays "
    "(every second 60-fps frame), 16 kHz mono wavs, templates.pkl, dataset.yaml with the standard splits, "
    "and topology.npz when --mesh/--regions are given. BIWI folders processed by CodeTalker's scripts need "
    "no preparation: read them with --layout biwi."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=["vocaset"], help="which distribution to convert")
    parser.add_argument("--raw", required=True, help="folder holding the distribution files")
    parser.add_argument("--out", required=True, help="output folder (processed layout)")
    parser.add_argument("--mesh", default=None, help="FLAME_sample.ply (reference mesh for topology.npz)")
    parser.add_argument("--regions", default=None, help="FLAME_masks.pkl (lips, forehead, eye_region, ...)")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier conversion in --out")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def main(args: argparse.Namespace) -> int:
    from memorytalker.data.vocaset import prepare_vocaset

    summary = prepare_vocaset(
        args.raw,
        args.out,
        mesh=args.mesh,
        regions=args.regions,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(summary.format())
    return 0
