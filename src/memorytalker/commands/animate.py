"""``memorytalker animate [AUDIO ...] [--checkpoint CKPT] [--template MESH] --out DIR [--no-video] [--no-glb]``."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "animate"
HELP = "animate speech: write DIR/<name>.npy (T, V, 3) vertices, an MP4 and a glTF (.glb) per recording"
DESCRIPTION = (
    "Animate one or more recordings (any format, length, sample rate or channel count) with a trained "
    "MemoryTalker model: no speaker id and no reference motion are needed, the speaking style comes from "
    "the audio. Writes DIR/<name>.npy (T, V, 3) at the model's fps, DIR/<name>.mp4 (H.264 + the speech), "
    "DIR/<name>.glb (morph-target animation, with the speech as DIR/<name>.wav) and, on the project's face, "
    "DIR/<name>.csv (52 ARKit weights per frame, Live Link Face layout). <name> is the recording's "
    "file name without extension; recordings with the same name get their folder names in front "
    "(x/a.wav -> x__a, y/a.wav -> y__a). Without AUDIO it animates the bundled example recording; without "
    "--checkpoint it uses the bundled default model."
)

#: Joins folder names and the file stem in output names that must be told apart.
NAME_SEPARATOR = "__"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from memorytalker.commands._common import add_checkpoint_argument, add_device_argument

    parser.add_argument("audio", nargs="*", help="recordings to animate (default: the bundled example)")
    add_checkpoint_argument(parser)
    parser.add_argument(
        "--template",
        "-t",
        default=None,
        help="neutral face mesh (.ply/.obj/.npy) in the model's topology (default: its reference mesh); a model "
        "of any topology (ScanTalk) animates a .ply/.obj mesh of any topology, and the outputs use its faces",
    )
    parser.add_argument("--out", "-o", required=True, help="output folder")
    parser.add_argument("--no-video", action="store_true", help="do not render MP4 videos")
    parser.add_argument("--no-glb", action="store_true", help="do not export glTF (.glb) files")
    parser.add_argument(
        "--no-csv", action="store_true", help="do not write ARKit weights (.csv, on the project's face)"
    )
    add_device_argument(parser)
    parser.add_argument("--size", type=int, default=512, help="video size in pixels (default 512)")
    parser.add_argument(
        "--condition",
        default=None,
        help="speaker-conditioned models (FaceFormer, UniTalker): the training speaker whose style to animate "
        "in (default: the model's default condition; UniTalker: its common identity)",
    )
    parser.add_argument(
        "--head",
        default=None,
        help="models with an output head per topology (UniTalker): the topology to animate (default: the first)",
    )


def output_names(paths: list[Path]) -> list[str]:
    """Unique output stems for ``paths``, each naming its input: the file stem, with as many parent folder
    names in front as it takes to tell recordings with the same stem apart (``x/a.wav``, ``y/a.wav`` ->
    ``x__a``, ``y__a``; ``a.wav`` next to ``a.mp3`` -> ``a.wav`` and ``a.mp3`` keep their extension).

    Raises:
        AudioError: the same file is given twice.
    """
    from memorytalker.errors import AudioError

    resolved = [p.resolve() for p in paths]
    seen: dict[Path, Path] = {}
    for given, real in zip(paths, resolved):
        if real in seen:
            raise AudioError(f"{given} is given twice (also as {seen[real]}); give each recording once")
        seen[real] = given
    parts = [list(r.parts[1:-1]) for r in resolved]
    names = [r.stem or "audio" for r in resolved]
    depth = [0] * len(paths)
    while True:
        groups: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            groups.setdefault(n.lower(), []).append(i)
        clashes = [ids for ids in groups.values() if len(ids) > 1]
        if not clashes:
            return names
        for ids in clashes:
            for i in ids:
                if depth[i] < len(parts[i]):
                    depth[i] += 1
                    prefix = parts[i][len(parts[i]) - depth[i] :]
                    names[i] = NAME_SEPARATOR.join([*prefix, resolved[i].stem or "audio"])
                else:  # same folders and stem: the extension tells them apart
                    names[i] = resolved[i].name


def main(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from memorytalker.errors import AudioError, MemoryTalkerError
    from memorytalker.inference import Animator, example_audio
    from memorytalker.pipeline import OutputOptions, animate_to_files

    sources = [Path(a) for a in args.audio] if args.audio else [example_audio()]
    for src in sources:
        if src.is_dir():
            raise AudioError(f"{src} is a folder, not an audio file; give the recordings in it")
        if not src.is_file():
            raise AudioError(f"audio file not found: {src}")
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise MemoryTalkerError(f"--out {out_dir} is an existing file; give a folder for the results")
    names = output_names(sources)
    options = OutputOptions(video=not args.no_video, glb=not args.no_glb, csv=not args.no_csv, size=args.size)
    inputs = {src.resolve() for src in sources}
    for src, name in zip(sources, names):
        for ext in (".npy", ".csv", ".wav", ".glb", ".mp4"):
            if (out_dir / f"{name}{ext}").resolve() in inputs:
                raise MemoryTalkerError(
                    f"writing {out_dir / (name + ext)} would overwrite the input recording {src}; choose "
                    "another --out folder"
                )
    animator = Animator(args.checkpoint, device=args.device, condition=args.condition, head=args.head)
    template = animator.template_for(args.template)  # a model of any topology takes the mesh's topology
    for src, name in tqdm(list(zip(sources, names)), desc="animate", unit="file"):
        result = animate_to_files(animator, src, out_dir, name, template=template, options=options)
        tqdm.write(
            f"{src}: {result.frames} frames at {result.fps:g} fps -> "
            + ", ".join(str(p) for p in result.files)
        )
    return 0
