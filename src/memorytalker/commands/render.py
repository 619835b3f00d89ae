"""``memorytalker render VERTICES.npy (--mesh M | --topology T | --data D) [--audio WAV] [--gt GT.npy] --out OUT.mp4``."""

from __future__ import annotations

import argparse

NAME = "render"
HELP = (
    "render a vertex sequence to an MP4 (H.264 + AAC speech), optionally beside ground truth with a lip plot"
)
DESCRIPTION = (
    "Render (T, V, 3) vertices headlessly (OpenGL through EGL; no display or GPU needed) to an H.264/yuv420p "
    "MP4 with the speech muxed as AAC. With --audio the video has ceil(duration * fps) frames: a longer "
    "sequence is trimmed, a shorter one holds its last frame. See docs/RENDERING.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from memorytalker.commands._common import add_mesh_arguments

    parser.add_argument("vertices", help="(T, V, 3) or (T, V*3) .npy vertex file")
    add_mesh_arguments(parser)
    parser.add_argument("--audio", "-a", default=None, help="speech to mux in (any audio file)")
    parser.add_argument("--gt", default=None, help="ground-truth .npy drawn to the right of the prediction")
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="mesh frame rate (default: the topology's/dataset's; 30 with --mesh)",
    )
    parser.add_argument("--size", type=int, default=512, help="panel size in pixels (even; default 512)")
    parser.add_argument(
        "--lip-plot",
        action="store_true",
        help="draw the lip-opening curve(s) under the video (needs a topology)",
    )
    parser.add_argument(
        "--lip-plot-png", default=None, help="also write the lip-opening curve(s) to this PNG"
    )
    parser.add_argument(
        "--units", default=None, help="vertex units for the plot axis (m shows mm; default: the dataset's)"
    )
    parser.add_argument(
        "--msaa", type=int, default=0, help="multisample anti-aliasing samples (0 = off; 4 is ~2x slower)"
    )
    parser.add_argument("--out", "-o", required=True, help="the .mp4 to write")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


#: Frame rate assumed with --mesh when --fps is not given (VOCASET's, and the synthetic corpus's).
MESH_DEFAULT_FPS = 30.0


def main(args: argparse.Namespace) -> int:
    from memorytalker.errors import MemoryTalkerError
    from memorytalker.render import render_video
    from memorytalker.render.inputs import load_vertex_file, mesh_source

    source = mesh_source(args.mesh, args.topology, args.data, args.layout)
    vertices = load_vertex_file(args.vertices, source)
    gt = load_vertex_file(args.gt, source, what="ground-truth") if args.gt else None
    if (args.lip_plot or args.lip_plot_png) and source.topology is None:
        raise MemoryTalkerError(
            "--lip-plot/--lip-plot-png need the lips region: give --topology or --data instead of --mesh"
        )
    fps = args.fps or source.fps or MESH_DEFAULT_FPS
    out = render_video(
        vertices,
        source.faces,
        fps,
        args.out,
        audio=args.audio,
        size=args.size,
        ground_truth=gt,
        lip_plot=args.lip_plot,
        topology=source.topology,
        lip_plot_png=args.lip_plot_png,
        units=args.units or source.units,
        samples=args.msaa,
        progress=not args.no_progress,
    )
    print(f"video: {out}" + (f"; lip plot: {args.lip_plot_png}" if args.lip_plot_png else ""))
    return 0
