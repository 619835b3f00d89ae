"""``memorytalker animate [AUDIO ...] [--checkpoint CKPT] [--template MESH] --out DIR [--no-video] [--no-glb]``."""

from __future__ import annotations

import argparse

NAME = "animate"
HELP = "animate speech: write DIR/<name>.npy (T, V, 3) vertices, an MP4 and a glTF (.glb) per recording"
DESCRIPTION = (
    "Animate one or more recordings (any format, length, sample rate or channel count) with a trained "
    "MemoryTalker model: no speaker id and no reference motion are needed, the speaking style comes from "
    "the audio. Writes DIR/<name>.npy (T, V, 3) at the model's fps, DIR/<name>.mp4 (H.264 + the speech) and "
    "DIR/<name>.glb (morph-target animation). Without AUDIO it animates the bundled example recording; "
    "without --checkpoint it uses the bundled default model."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="*", help="recordings to animate (default: the bundled example)")
    parser.add_argument(
        "--checkpoint", "-c", default=None, help="model checkpoint (default: the bundled default model)"
    )
    parser.add_argument(
        "--template",
        "-t",
        default=None,
        help="neutral face mesh (.ply/.obj/.npy) in the model's topology (default: its reference mesh)",
    )
    parser.add_argument("--out", "-o", required=True, help="output folder")
    parser.add_argument("--no-video", action="store_true", help="do not render MP4 videos")
    parser.add_argument("--no-glb", action="store_true", help="do not export glTF (.glb) files")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--size", type=int, default=512, help="video size in pixels (default 512)")


def _output_names(paths: list) -> list[str]:
    """Unique output stems (``a.wav`` and ``b/a.mp3`` -> ``a``, ``a-2``)."""
    from pathlib import Path

    names, seen = [], {}
    for p in paths:
        stem = Path(p).stem or "audio"
        n = seen.get(stem, 0) + 1
        seen[stem] = n
        names.append(stem if n == 1 else f"{stem}-{n}")
    return names


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    import numpy as np
    from tqdm.auto import tqdm

    from memorytalker.errors import AudioError
    from memorytalker.inference import Animator, example_audio, load_template

    sources = [Path(a) for a in args.audio] if args.audio else [example_audio()]
    for src in sources:
        if not src.is_file():
            raise AudioError(f"audio file not found: {src}")
    animator = Animator(args.checkpoint, device=args.device)
    template = load_template(args.template, animator.topology)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    faces = np.asarray(animator.topology.faces)
    if not (args.no_video and args.no_glb) and faces.size == 0:
        from memorytalker.errors import TopologyError

        raise TopologyError(
            f"topology {animator.topology.name!r} has no triangles: video and glTF need a mesh "
            "(use --no-video --no-glb to write vertices only)"
        )
    for src, name in tqdm(list(zip(sources, _output_names(sources))), desc="animate", unit="file"):
        vertices = animator.animate(src, template=template)
        npy = out_dir / f"{name}.npy"
        np.save(npy, vertices.astype(np.float32))
        written = [npy]
        if not args.no_video:
            from memorytalker.render import render_video

            written.append(
                render_video(
                    vertices, faces, animator.fps, out_dir / f"{name}.mp4", audio=str(src), size=args.size
                )
            )
        if not args.no_glb:
            from memorytalker.render import export_glb

            written.append(
                export_glb(vertices, faces, animator.fps, out_dir / f"{name}.glb", audio_path=str(src))
            )
        tqdm.write(
            f"{src}: {vertices.shape[0]} frames at {animator.fps:g} fps -> "
            + ", ".join(str(p) for p in written)
        )
    return 0
