"""``memorytalker retarget WEIGHTS.csv AVATAR.glb --out OUT.glb``: play an ARKit track on another character."""

from __future__ import annotations

import argparse

NAME = "retarget"
HELP = "play an ARKit weight track (Live Link Face .csv) on your own avatar (.glb with ARKit-named targets)"
DESCRIPTION = (
    "Add the 52 ARKit weights of WEIGHTS.csv (Live Link Face layout, as `animate` writes it) to AVATAR.glb as "
    "one animation of morph weights at the track's frame rate. Targets are matched to ARKit names "
    "case-insensitively and in their usual spellings (eyeBlinkLeft, EyeBlinkLeft, eyeBlink_L); the names "
    "that match nothing are reported. Meshes, materials, skins and the avatar's own animations are kept. "
    "See docs/RENDERING.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "weights", help="ARKit weights, Live Link Face .csv (memorytalker animate writes one)"
    )
    parser.add_argument("avatar", help="the character: a self-contained glTF binary (.glb)")
    parser.add_argument("--out", "-o", required=True, help="output .glb (not the avatar itself)")
    parser.add_argument(
        "--fps", type=float, default=None, help="frame rate of the track (default: from its timecodes)"
    )
    parser.add_argument("--name", default="speech", help="name of the added animation (default: speech)")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from memorytalker.face.livelink import read_live_link_csv
    from memorytalker.render.retarget import retarget_glb

    take = read_live_link_csv(args.weights, fps=args.fps)
    report = retarget_glb(
        take.weights, take.fps, args.avatar, args.out, name=args.name, track=Path(args.weights).name
    )
    print(report.summary())
    return 0
