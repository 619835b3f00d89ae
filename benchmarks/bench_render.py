"""Rendering and export speed: ``.venv/bin/python benchmarks/bench_render.py [--frames 300] [--size 512]``.

Mesh: ``../shared/data/flame/FLAME_sample.ply`` (5023 vertices, 9976 triangles) when present, otherwise a
generated UV sphere of about 5,000 vertices. The motion opens and closes the lower lip/jaw region plus a
small whole-face wobble, so normals and every vertex change each frame. Audio: a synthetic 16 kHz signal
as long as the frames. The shipped ICT face (``memorytalker.face``) is timed too: its animated region
alone and with every part and vertex colours, render only. Target (issue 5): >= 30 rendered frames per second at 512x512 for a 5k-vertex
mesh on 2 cores, encoding included.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

FLAME = Path(__file__).resolve().parents[2] / "shared" / "data" / "flame" / "FLAME_sample.ply"


def load_mesh_5k() -> tuple[np.ndarray, np.ndarray, str]:
    from memorytalker.topology import load_mesh

    if FLAME.is_file():
        v, f = load_mesh(FLAME)
        return v, f, f"FLAME_sample.ply ({len(v)} vertices, {len(f)} triangles)"
    import trimesh

    m = trimesh.creation.uv_sphere(radius=0.1, count=[71, 71])
    v, f = np.asarray(m.vertices, np.float32), np.asarray(m.faces)
    return v, f, f"generated UV sphere ({len(v)} vertices, {len(f)} triangles)"


def animate(v: np.ndarray, frames: int) -> np.ndarray:
    lo, hi = v.min(0), v.max(0)
    size = float(np.linalg.norm(hi - lo))
    # "jaw": front vertices in the lower third move down with the opening
    lower = (v[:, 1] < lo[1] + 0.45 * (hi[1] - lo[1])) & (v[:, 2] > lo[2] + 0.6 * (hi[2] - lo[2]))
    t = np.arange(frames)
    opening = 0.02 * size * np.abs(np.sin(t / 4.0))
    seq = np.repeat(v[None].astype(np.float32), frames, axis=0)
    seq[:, lower, 1] -= opening[:, None].astype(np.float32)
    seq += (0.002 * size * np.sin(t / 9.0))[:, None, None].astype(np.float32)
    return seq


def bench_face(frames: int, size: int) -> list[tuple[str, float, float]]:
    """Render-only timings of the shipped ICT face (memorytalker.face): the animated region alone, and all
    parts (mouth socket, teeth, gums, eyeballs) with vertex colours; a jaw/smile motion posed from weights."""
    from memorytalker.face import FaceModel
    from memorytalker.face.arkit import ARKIT_NAMES
    from memorytalker.render.camera import frame_vertices
    from memorytalker.render.gl import MeshRenderer

    face = FaceModel.load()
    t = np.arange(frames)
    w = np.zeros((frames, len(ARKIT_NAMES)), dtype=np.float32)
    w[:, ARKIT_NAMES.index("jawOpen")] = 0.5 * (1 - np.cos(t / 4.0))
    w[:, ARKIT_NAMES.index("mouthSmileLeft")] = 0.5 * (1 - np.cos(t / 9.0))
    seq = face.pose_arkit(w)
    cam = frame_vertices(face.neutral[face.topology.region("narrow_face")], margin=1.2)
    rows = []
    cases = (
        (
            f"ICT face, animated region only ({face.num_animated} vertices)",
            face.topology.faces,
            face.num_animated,
            None,
        ),
        (
            f"ICT face, all parts + vertex colours ({face.num_vertices} vertices)",
            face.faces,
            face.num_vertices,
            face.vertex_colours,
        ),
    )
    for name, faces, n, colours in cases:
        with MeshRenderer(faces, n, cam, size=size, samples=0, colours=colours) as r:
            for i in range(30):
                r.render(seq[i % frames, :n])
            t0 = time.perf_counter()
            for i in range(frames):
                r.render(seq[i, :n], frame=i)
            dt = time.perf_counter() - t0
        rows.append((name, dt, frames / dt))
    t0 = time.perf_counter()
    face.pose_arkit(w)
    dt = time.perf_counter() - t0
    rows.append(
        (
            f"ICT face: posing {frames} frames from ARKit weights (all {face.num_vertices} vertices)",
            dt,
            frames / dt,
        )
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=300, help="frames (300 = 10 s at 30 fps)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    from memorytalker.render import export_glb, export_sequence, render_video
    from memorytalker.render.camera import frame_vertices
    from memorytalker.render.gl import MeshRenderer
    from memorytalker.render.video import VideoWriter

    v, f, what = load_mesh_5k()
    seq = animate(v, args.frames)
    sr = 16000
    n = int(args.frames / args.fps * sr)
    audio = (0.2 * np.sin(2 * np.pi * 180 * np.arange(n) / sr) * np.sin(np.arange(n) / 900.0)).astype(
        np.float32
    )
    rows = []
    import os

    print(f"load average before: {os.getloadavg()[0]:.2f}; cpus: {os.cpu_count()}")
    print(f"mesh: {what}; {args.frames} frames at {args.fps:g} fps, {args.size}x{args.size}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # 1. render only (GL + normals + readback)
        with MeshRenderer(f, len(v), frame_vertices(seq[0]), size=args.size) as r:
            for i in range(30):  # warm-up: llvmpipe compiles its shader variants during the first frames
                r.render(seq[i % args.frames])
            t0 = time.perf_counter()
            frames = []
            for i in range(args.frames):
                img = r.render(seq[i], frame=i)
                if i < 30:  # keep a few for the encoder benchmark (holding all costs memory bandwidth)
                    frames.append(img)
            dt = time.perf_counter() - t0
        rows.append(("render only (normals + draw + readback)", dt, args.frames / dt))
        rows += bench_face(args.frames, args.size)
        # 2. encode only (H.264 + AAC)
        t0 = time.perf_counter()
        with VideoWriter(tmp / "enc.mp4", args.size, args.size, args.fps, audio=audio, sample_rate=sr) as w:
            for i in range(args.frames):
                w.write(frames[i % len(frames)])
        dt = time.perf_counter() - t0
        rows.append(("encode only (x264 veryfast crf 20 + AAC)", dt, args.frames / dt))
        del frames
        # 3. render_video end to end (context, camera, render, encode, mux, audio)
        for run in (1, 2):  # a fresh context each time; run 1 also pays llvmpipe's cold start
            t0 = time.perf_counter()
            render_video(
                seq, f, args.fps, tmp / "v.mp4", audio=audio, sample_rate=sr, size=args.size, progress=False
            )
            dt = time.perf_counter() - t0
            rows.append((f"**render_video end to end** (run {run})", dt, args.frames / dt))
        size_mb = (tmp / "v.mp4").stat().st_size / 1e6
        # 4. side by side + lip-opening strip (two renders per frame)
        topo = None
        if FLAME.is_file() and (FLAME.parent / "FLAME_masks.pkl").is_file():
            from memorytalker.topology import vocaset_topology

            topo = vocaset_topology(FLAME, FLAME.parent / "FLAME_masks.pkl")
        t0 = time.perf_counter()
        render_video(
            seq,
            f,
            args.fps,
            tmp / "sbs.mp4",
            audio=audio,
            sample_rate=sr,
            size=args.size,
            ground_truth=seq[::-1].copy(),
            lip_plot=topo is not None,
            topology=topo,
            units="m",
            progress=False,
        )
        dt = time.perf_counter() - t0
        rows.append(("side by side" + (" + lip plot" if topo is not None else ""), dt, args.frames / dt))
        # 5. exports
        # a richer motion for the morph encoding: 40 smooth random deformation modes of decreasing size
        rng = np.random.default_rng(0)
        rich = seq.astype(np.float64)
        diag = float(np.linalg.norm(v.max(0) - v.min(0)))
        for m in range(40):
            shape = rng.normal(size=v.shape) * 0.004 * diag / (1 + m)
            rich += np.sin(np.arange(args.frames) / (2.0 + 0.7 * m) + m)[:, None, None] * shape[None]
        t0 = time.perf_counter()
        glb = export_glb(rich.astype(np.float32), f, args.fps, tmp / "a.glb")
        dt_glb = time.perf_counter() - t0
        import json
        import struct

        raw = glb.read_bytes()
        (jlen,) = struct.unpack_from("<I", raw, 12)
        extras = json.loads(raw[20 : 20 + jlen])["asset"]["extras"]
        t0 = time.perf_counter()
        export_sequence(seq, f, tmp / "ply", fmt="ply", progress=False)
        dt_ply = time.perf_counter() - t0
        t0 = time.perf_counter()
        export_sequence(seq[:60], f, tmp / "obj", fmt="obj", progress=False)
        dt_obj = (time.perf_counter() - t0) * args.frames / 60

    print("\n| step | time | frames/s |\n|---|---|---|")
    for name, dt, fps in rows:
        print(f"| {name} | {dt:.2f} s | {fps:.0f} |")
    print(f"\nMP4: {size_mb:.2f} MB")
    print(
        f"export_glb (motion + 40 random modes): {dt_glb:.2f} s, {extras['morph_targets']} morph targets, max vertex error "
        f"{extras['max_error'] * 1000:.4f} mm (tolerance {extras['tolerance'] * 1000:.4f} mm), "
        f"{len(raw) / 1e6:.2f} MB"
    )
    print(
        f"export_sequence: PLY {dt_ply:.2f} s, OBJ {dt_obj:.2f} s (extrapolated from 60 frames) for {args.frames} frames"
    )


if __name__ == "__main__":
    main()
