"""Arguments several commands share, so a flag means the same thing everywhere.

Short flags across all commands: ``-c`` checkpoint, ``-o`` output, ``-d`` dataset folder, ``-a`` audio,
``-t`` template, ``-f`` format.
"""

from __future__ import annotations

import argparse


def add_checkpoint_argument(parser: argparse.ArgumentParser, required: bool = False) -> None:
    """``--checkpoint/-c`` (default: the bundled default model, when not required)."""
    parser.add_argument(
        "--checkpoint",
        "-c",
        required=required,
        default=None,
        help="model checkpoint (best.pt / last.pt)"
        + ("" if required else "; default: the bundled default model"),
    )


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    """``--device`` (default ``auto``: CUDA when available, else the CPU)."""
    parser.add_argument(
        "--device",
        default="auto",
        help="torch device: auto (default: CUDA when available), cpu, cuda, cuda:1, mps",
    )


def add_mesh_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """``--mesh`` | ``--topology`` | ``--data`` (one of them) and ``--layout``: where the triangles of a
    vertex file come from (:func:`memorytalker.render.inputs.mesh_source`)."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--mesh", help="mesh file (.ply/.obj) of the vertices' topology (same vertex order)")
    group.add_argument("--topology", help="topology.npz (FaceTopology.save): mesh, fps and regions")
    group.add_argument(
        "--data", "-d", help="processed dataset folder (docs/LAYOUT.md): its topology, fps and units"
    )
    parser.add_argument(
        "--layout",
        default=None,
        help="with --data, for folders without dataset.yaml: vocaset, biwi or a YAML",
    )
