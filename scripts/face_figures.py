"""Render the shipped face in a few poses to PNGs (and the montage docs/img/face_poses.png).

    .venv/bin/python scripts/face_figures.py --out out/face [--size 512] [--asset PATH] [--montage PATH]

Poses (ARKit weights): neutral, ``jawOpen`` 1, ``jawOpen`` 1 + ``mouthClose`` 1 (lips closed over an open
jaw), ``mouthSmileLeft`` + ``mouthSmileRight`` 1, ``jawOpen`` 0.4 with the lips drawn back
(``mouthUpperUp*``, ``mouthLowerDown*`` 0.7: the teeth show), and a random identity with ``jawOpen`` 0.5. Every part
is drawn (teeth, gums, tongue, mouth socket, eyeballs, eyelashes) with the model's vertex colours; the
camera frames the face region of the neutral.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

POSES: dict[str, dict[str, float]] = {
    "neutral": {},
    "jawOpen": {"jawOpen": 1.0},
    "jawOpen_mouthClose": {"jawOpen": 1.0, "mouthClose": 1.0},
    "mouthSmile": {"mouthSmileLeft": 1.0, "mouthSmileRight": 1.0},
    "teeth": {
        "jawOpen": 0.4,
        "mouthUpperUpLeft": 0.7,
        "mouthUpperUpRight": 0.7,
        "mouthLowerDownLeft": 0.7,
        "mouthLowerDownRight": 0.7,
    },
}


def face_camera(model, margin: float = 1.2):
    """A frontal camera framing the neutral's ``face`` region (forehead to chin, ear to ear)."""
    from memorytalker.render.camera import frame_vertices

    return frame_vertices(model.neutral[model.topology.region("narrow_face")], margin=margin)


def render_poses(model, size: int, identity_seed: int = 3) -> dict[str, np.ndarray]:
    from memorytalker.face.arkit import ARKIT_NAMES
    from memorytalker.render.gl import MeshRenderer

    names = list(POSES) + ["identity_jawOpen0.5"]
    weights = np.zeros((len(names), len(ARKIT_NAMES)), dtype=np.float32)
    for i, pose in enumerate(POSES.values()):
        for k, w in pose.items():
            weights[i, ARKIT_NAMES.index(k)] = w
    weights[-1, ARKIT_NAMES.index("jawOpen")] = 0.5
    verts = model.pose_arkit(weights[:-1])
    ident = np.random.default_rng(identity_seed).standard_normal(model.num_identities).astype(np.float32)
    verts = np.concatenate([verts, model.pose_arkit(weights[-1:], identity=ident)])
    out = {}
    with MeshRenderer(
        model.faces,
        model.num_vertices,
        face_camera(model),
        size=size,
        samples=4,
        colours=model.vertex_colours,
    ) as r:
        for name, v in zip(names, verts):
            t0 = time.perf_counter()
            out[name] = r.render(v)
            print(f"{name}: {1000 * (time.perf_counter() - t0):.1f} ms")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the PNGs")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--asset", type=Path, default=None, help="face asset (default: the shipped one)")
    parser.add_argument("--montage", type=Path, default=None, help="also write a montage of all poses here")
    parser.add_argument("--montage-panel", type=int, default=320, help="pixels per montage panel")
    args = parser.parse_args()
    from PIL import Image

    from memorytalker.face import FaceModel

    model = FaceModel.load(args.asset)
    images = render_poses(model, args.size)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, img in images.items():
        Image.fromarray(img).save(args.out / f"{name}.png")
    if args.montage is not None:
        panel = args.montage_panel
        tiles = [
            np.asarray(Image.fromarray(img).resize((panel, panel), Image.LANCZOS)) for img in images.values()
        ]
        cols = 3
        rows = -(-len(tiles) // cols)
        canvas = np.full((rows * panel, cols * panel, 3), 255, dtype=np.uint8)
        for i, tile in enumerate(tiles):
            r, c = divmod(i, cols)
            canvas[r * panel : (r + 1) * panel, c * panel : (c + 1) * panel] = tile
        args.montage.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(canvas).save(args.montage, optimize=True)
    print(f"wrote {len(images)} PNGs to {args.out}")


if __name__ == "__main__":
    main()
