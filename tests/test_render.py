"""Rendering: headless GL frames, the mouth region responding to the lips, loud failures, the MP4."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np
import pytest
import soundfile as sf
from conftest import shared_file
from test_render_meshes import open_mouth, sphere_head

from memorytalker.render import RenderError, render_frames, render_image, render_video
from memorytalker.render.camera import frame_vertices
from memorytalker.render.gl import BACKGROUND

SIZE = 128


def _project(points: np.ndarray, camera, size: int) -> np.ndarray:
    """Pixel ``(x, y)`` (row 0 at the top) of world points, with the renderer's camera."""
    m = camera.projection_matrix(1.0) @ camera.view_matrix()
    p = np.c_[points, np.ones(len(points))] @ m.T
    ndc = p[:, :2] / p[:, 3:4]
    return np.c_[(ndc[:, 0] + 1) / 2 * size, (1 - ndc[:, 1]) / 2 * size]


def _foreground(img: np.ndarray) -> np.ndarray:
    return (img != np.asarray(BACKGROUND, np.uint8)).any(-1)


def test_frame_is_shaded_and_framed():
    topo = sphere_head()
    img = render_image(topo.vertices, topo.faces, size=SIZE)
    assert img.shape == (SIZE, SIZE, 3) and img.dtype == np.uint8
    fg = _foreground(img)
    assert 0.2 < fg.mean() < 0.9  # the head fills the frame without being cut
    assert not fg[0].any() and not fg[-1].any() and not fg[:, 0].any() and not fg[:, -1].any()
    ys, xs = np.nonzero(fg)
    assert abs(xs.mean() - SIZE / 2) < SIZE * 0.05 and abs(ys.mean() - SIZE / 2) < SIZE * 0.05
    grey = img[fg].mean(-1)
    assert grey.std() > 10  # shaded, not a flat silhouette
    assert grey.min() > 20  # lit (two-sided lighting: no black faces)


def test_mouth_region_changes_when_the_lips_move():
    topo = sphere_head()
    seq = open_mouth(topo, np.array([0.0, 0.25], dtype=np.float32))
    cam = frame_vertices(seq[0])
    frames = list(render_frames(seq, topo.faces, size=SIZE, camera=cam))
    assert len(frames) == 2
    diff = np.abs(frames[0].astype(int) - frames[1].astype(int)).sum(-1) > 30
    # the lips and their one-ring neighbours (whose smooth normals follow the lips) bound the mouth region
    faces = np.asarray(topo.faces)
    ring = np.unique(faces[np.isin(faces, topo.lips).any(1)])
    xy = _project(np.r_[np.asarray(topo.vertices)[ring], seq[1][ring]], cam, SIZE)
    x0, y0 = np.floor(xy.min(0)).astype(int) - 2
    x1, y1 = np.ceil(xy.max(0)).astype(int) + 2
    mouth = np.zeros_like(diff)
    mouth[max(y0, 0) : y1, max(x0, 0) : x1] = True
    assert mouth.mean() < 0.25
    assert diff[mouth].sum() > 20  # the mouth changed
    assert diff[~mouth].sum() == 0  # nothing else did (fixed camera)


def test_framing_does_not_depend_on_units():
    topo = sphere_head()
    metres = render_image(topo.vertices, topo.faces, size=SIZE)
    millimetres = render_image(np.asarray(topo.vertices) * 1000.0, topo.faces, size=SIZE)
    assert (np.abs(metres.astype(int) - millimetres.astype(int)) > 8).mean() < 0.01


def test_flame_template_renders(tmp_path):
    from memorytalker.topology import load_mesh

    verts, faces = load_mesh(shared_file("flame", "FLAME_sample.ply"))
    img = render_image(verts, faces, size=SIZE)
    fg = _foreground(img)
    assert 0.15 < fg.mean() < 0.9 and img[fg].mean(-1).std() > 10


def test_nan_vertices_stop_the_job_naming_the_frame(tmp_path):
    topo = sphere_head()
    seq = open_mouth(topo, np.zeros(6, dtype=np.float32))
    seq[3, 10, 1] = np.nan
    out = tmp_path / "nan.mp4"
    with pytest.raises(RenderError, match="frame 3 has NaN"):
        render_video(seq, topo.faces, 30, out, size=SIZE, progress=False)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # no half-written video


def test_a_frame_outside_the_view_is_an_error_not_a_blank_frame():
    topo = sphere_head()
    seq = open_mouth(topo, np.zeros(3, dtype=np.float32))
    seq[2] += np.array([50.0, 0, 0], dtype=np.float32)  # 500 head radii to the side
    with pytest.raises(RenderError, match="frame 2: nothing was drawn"):
        list(render_frames(seq, topo.faces, size=SIZE))


def test_point_clouds_and_bad_faces_are_refused():
    topo = sphere_head()
    with pytest.raises(RenderError, match="no triangles"):
        render_image(topo.vertices, np.zeros((0, 3), dtype=np.int64), size=SIZE)
    with pytest.raises(RenderError, match="out of range"):
        render_image(np.asarray(topo.vertices)[:100], topo.faces, size=SIZE)
    with pytest.raises(RenderError, match="even"):
        list(render_frames(open_mouth(topo, np.zeros(1)), topo.faces, size=127))


def test_no_egl_names_the_system_packages(monkeypatch):
    import moderngl

    def broken(*args, **kwargs):
        raise Exception("eglInitialize failed")

    monkeypatch.setattr(moderngl, "create_standalone_context", broken)
    topo = sphere_head()
    with pytest.raises(RenderError, match="libegl1 libegl-mesa0 libgl1-mesa-dri"):
        render_image(topo.vertices, topo.faces, size=SIZE)


def _probe(path):
    import av

    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0] if c.streams.audio else None
        info = {
            "codec": v.codec_context.name,
            "pix_fmt": v.codec_context.pix_fmt,
            "size": (v.codec_context.width, v.codec_context.height),
            "rate": float(v.average_rate),
            "audio": None if a is None else (a.codec_context.name, a.codec_context.sample_rate),
        }
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    if a is not None:
        with av.open(str(path)) as c:
            n = sum(f.samples for f in c.decode(audio=0))
            info["audio_seconds"] = n / info["audio"][1]
    return info, frames


@pytest.mark.parametrize("num_frames", [20, 40])
def test_video_length_follows_the_audio(tmp_path, num_frames):
    topo = sphere_head()
    seq = open_mouth(topo, 0.2 * np.abs(np.sin(np.arange(num_frames) / 3)).astype(np.float32))
    seconds = 1.03
    audio = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * 16000)) / 16000)).astype(np.float32)
    out = render_video(seq, topo.faces, 30, tmp_path / "v.mp4", audio=audio, size=SIZE, progress=False)
    info, frames = _probe(out)
    assert info["codec"] == "h264" and info["pix_fmt"] == "yuv420p" and info["size"] == (SIZE, SIZE)
    assert info["rate"] == pytest.approx(30)
    assert info["audio"] == ("aac", 48000)
    assert info["audio_seconds"] == pytest.approx(seconds, abs=0.05)
    assert len(frames) == math.ceil(seconds * 30) == 31
    for f in (frames[0], frames[-1]):
        assert _foreground(np.where(np.abs(f.astype(int) - 255) < 6, 255, f).astype(np.uint8)).mean() > 0.2
    if num_frames < 31:  # held last frame
        assert np.abs(frames[-1].astype(int) - frames[num_frames - 1].astype(int)).mean() < 2


def test_audio_file_and_silent_video(tmp_path):
    topo = sphere_head()
    seq = open_mouth(topo, np.zeros(7, dtype=np.float32))
    wav = tmp_path / "speech.wav"
    sf.write(wav, (0.1 * np.random.default_rng(0).normal(size=22050 // 2)).astype(np.float32), 22050)
    info, frames = _probe(
        render_video(seq, topo.faces, 25, tmp_path / "a.mp4", audio=wav, size=SIZE, progress=False)
    )
    assert len(frames) == math.ceil(0.5 * 25) and info["audio"][0] == "aac"
    info, frames = _probe(render_video(seq, topo.faces, 25, tmp_path / "s.mp4", size=SIZE, progress=False))
    assert len(frames) == 7 and info["audio"] is None


def test_side_by_side_with_lip_plot(tmp_path):
    topo = sphere_head()
    pred = open_mouth(topo, np.linspace(0, 0.25, 8, dtype=np.float32))
    gt = open_mouth(topo, np.zeros(8, dtype=np.float32))
    frames = list(render_frames(pred, topo.faces, size=SIZE, ground_truth=gt, lip_plot=True, topology=topo))
    strip = SIZE // 4
    assert frames[0].shape == (SIZE + strip, 2 * SIZE, 3)
    last = frames[-1]
    # left (prediction, open mouth) and right (ground truth, closed) differ; labels make both differ a bit
    assert (
        np.abs(last[:SIZE, :SIZE].astype(int) - last[:SIZE, SIZE:].astype(int)).sum(-1).astype(bool).mean()
        > 0.005
    )
    # the plot has curves and a time cursor that moves right
    cursor = (30, 110, 220)
    cols = [np.flatnonzero((f[SIZE:] == cursor).all(-1).any(0)) for f in (frames[0], frames[-1])]
    assert cols[0].size and cols[1].size and cols[1].mean() > cols[0].mean() + SIZE
    png = tmp_path / "lips.png"
    render_video(
        pred,
        topo.faces,
        30,
        tmp_path / "sbs.mp4",
        size=SIZE,
        ground_truth=gt,
        lip_plot=True,
        topology=topo,
        lip_plot_png=png,
        progress=False,
    )
    assert png.stat().st_size > 1000
    with pytest.raises(RenderError, match="topology"):
        list(render_frames(pred, topo.faces, size=SIZE, lip_plot=True))
    with pytest.raises(RenderError, match="642 vertices"):
        render_video(
            pred, topo.faces, 30, tmp_path / "x.mp4", ground_truth=gt[:, :600], size=SIZE, progress=False
        )


# ------------------------------------------------------------------------------------------ CLI
def test_render_command(tmp_path, capsys):
    from memorytalker.cli import main
    from memorytalker.topology import save_mesh

    topo = sphere_head()
    seq = open_mouth(topo, np.linspace(0, 0.2, 10, dtype=np.float32))
    np.save(tmp_path / "pred.npy", seq.reshape(10, -1))  # (T, V*3) is accepted
    np.save(tmp_path / "gt.npy", seq[::-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        topo.save(tmp_path / "topology.npz")
    sf.write(tmp_path / "a.wav", np.zeros(8000, dtype=np.float32), 16000)
    out = tmp_path / "out" / "v.mp4"
    rc = main(
        [
            "render",
            str(tmp_path / "pred.npy"),
            "--topology",
            str(tmp_path / "topology.npz"),
            "--audio",
            str(tmp_path / "a.wav"),
            "--gt",
            str(tmp_path / "gt.npy"),
            "--lip-plot",
            "--size",
            str(SIZE),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert rc == 0 and out.is_file()
    info, frames = _probe(out)
    assert len(frames) == 15 and info["size"] == (2 * SIZE, SIZE + SIZE // 4)

    other = sphere_head(subdivisions=2)
    save_mesh(tmp_path / "other.ply", other.vertices, other.faces)
    rc = main(
        [
            "render",
            str(tmp_path / "pred.npy"),
            "--mesh",
            str(tmp_path / "other.ply"),
            "--out",
            str(tmp_path / "bad.mp4"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "642 vertices" in err and "162 vertices" in err
    rc = main(
        [
            "render",
            str(tmp_path / "pred.npy"),
            "--mesh",
            str(tmp_path / "other.ply"),
            "--lip-plot",
            "--out",
            str(tmp_path / "bad.mp4"),
        ]
    )
    assert rc == 2


def test_importing_the_commands_stays_cheap():
    import subprocess

    code = (
        "import argparse, sys, memorytalker.render\n"
        "from memorytalker.commands import export, render\n"
        "for m in (export, render): m.add_arguments(argparse.ArgumentParser())\n"
        "print(any(m in sys.modules for m in ('moderngl', 'av', 'matplotlib', 'torch')))"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


def test_write_video_errors_on_either_side_leave_no_file(tmp_path):
    """A bad frame (encoder side) or a failing frame source (render side) is raised, and no partial video is
    left behind."""
    from memorytalker.render.video import write_video

    good = np.full((32, 32, 3), 200, np.uint8)

    def bad_shape():
        yield good
        yield good
        yield np.zeros((16, 16, 3), np.uint8)
        yield from (good for _ in range(50))

    with pytest.raises(RenderError, match=r"video frame 2: expected \(32, 32, 3\)"):
        write_video(bad_shape(), tmp_path / "a.mp4", 32, 32, 30.0, progress=False)

    def source_fails():
        yield good
        raise RenderError("frame 1: boom")

    with pytest.raises(RenderError, match="frame 1: boom"):
        write_video(source_fails(), tmp_path / "b.mp4", 32, 32, 30.0, progress=False)
    assert list(tmp_path.iterdir()) == []
    out = write_video((good for _ in range(12)), tmp_path / "c.mp4", 32, 32, 30.0, progress=False)
    assert out.stat().st_size > 0 and [p.name for p in tmp_path.iterdir()] == ["c.mp4"]
