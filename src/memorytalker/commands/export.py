"""``memorytalker export VERTICES.npy (--mesh M | --topology T | --data D) --format glb|obj|ply|npy --out PATH``."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "export a vertex sequence as glTF 2.0 (.glb, morph-target animation), an OBJ/PLY sequence or .npy"
DESCRIPTION = (
    "Export (T, V, 3) vertices. glb: one mesh with PCA morph targets and a LINEAR weights animation at the "
    "mesh fps (loads in three.js and Blender); --audio is written next to it as a WAV and referenced in "
    "asset.extras.audio. obj/ply: one file per frame in the --out folder (frame_00000.obj, ...). npy: "
    "(T, V, 3) float32. See docs/RENDERING.md."
)

FORMATS = ("glb", "obj", "ply", "npy")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from memorytalker.commands._common import add_mesh_arguments

    parser.add_argument("vertices", help="(T, V, 3) or (T, V*3) .npy vertex file")
    add_mesh_arguments(parser, required=False)
    parser.add_argument(
        "--format", "-f", choices=FORMATS, default=None, help="output format (default: from the --out suffix)"
    )
    parser.add_argument("--out", "-o", required=True, help=".glb / .npy file, or a folder for obj/ply")
    parser.add_argument(
        "--audio", "-a", default=None, help="glb: speech to place next to the file and reference"
    )
    parser.add_argument(
        "--fps",
        type=float,
        default=None,
        help="glb: keyframe rate (default: the topology's/dataset's; 30 with --mesh)",
    )
    parser.add_argument(
        "--max-error",
        type=float,
        default=None,
        help="glb: largest vertex error of the morph encoding, mesh units (default 2e-4 x the face's bounding-box diagonal)",
    )
    parser.add_argument(
        "--max-targets", type=int, default=128, help="glb: cap on morph targets (default 128)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from memorytalker.commands.render import MESH_DEFAULT_FPS
    from memorytalker.errors import MemoryTalkerError
    from memorytalker.render import export_glb, export_npy, export_sequence
    from memorytalker.render.inputs import load_vertex_file, mesh_source

    out = Path(args.out)
    fmt = args.format or {".glb": "glb", ".npy": "npy"}.get(out.suffix.lower())
    if fmt is None:
        raise MemoryTalkerError(f"cannot tell the format from {out}: give --format ({', '.join(FORMATS)})")
    source = mesh_source(args.mesh, args.topology, args.data, args.layout)
    if source is None and fmt != "npy":
        raise MemoryTalkerError(f"--format {fmt} needs the triangles: give --mesh, --topology or --data")
    vertices = load_vertex_file(args.vertices, source)
    if fmt == "npy":
        print(f"vertices: {export_npy(vertices, out)}")
    elif fmt == "glb":
        fps = args.fps or source.fps or MESH_DEFAULT_FPS
        path = export_glb(
            vertices,
            source.faces,
            fps,
            out,
            audio_path=args.audio,
            max_error=args.max_error,
            max_targets=args.max_targets,
        )
        print(f"glTF: {path}")
    else:
        if out.suffix:
            raise MemoryTalkerError(
                f"--format {fmt} writes one file per frame: --out must be a folder, got {out}"
            )
        paths = export_sequence(vertices, source.faces, out, fmt=fmt, progress=not args.no_progress)
        print(f"{len(paths)} {fmt.upper()} files in {out} ({paths[0].name} ... {paths[-1].name})")
    return 0
