"""Lip opening: the curve, the two vertices it is measured between, and its plots.

The two vertices (mid upper lip, mid lower lip) are derived geometrically from the topology's ``lips``
and ``upper_face`` regions on its reference mesh - no index lists - by
:func:`memorytalker.training.lips.lip_opening_vertices` (``evaluate`` uses the same function, so the
video's curve and the evaluation report's curve are the same quantity). The opening is the Euclidean
distance between the two vertices in every frame.

Two renderings: :func:`lip_plot_strip` is the strip drawn under a video (whole clip, with a moving time
cursor drawn per frame by :func:`memorytalker.render.frames.render_frames`); :func:`save_lip_plot` writes a standalone PNG.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memorytalker.render.errors import RenderError
from memorytalker.topology import FaceTopology


def lip_opening_vertices(topology: FaceTopology) -> tuple[int, int]:
    """``(mid_upper, mid_lower)`` lip vertex indices of ``topology`` (see the module docstring).

    Raises:
        TopologyError: a lips region too small or flat to tell the upper from the lower lip.
    """
    from memorytalker.training.lips import lip_opening_vertices as _choose

    return _choose(topology)


def lip_opening(vertices: np.ndarray, topology: FaceTopology) -> np.ndarray:
    """``(T,)`` float64 lip opening of ``(T, V, 3)`` (or ``(T, V*3)``) vertices, in the mesh's units."""
    v = np.asarray(vertices)
    topology.check_vertices(v, "lip-opening vertices")
    if v.ndim == 2:
        v = v.reshape(v.shape[0], -1, 3)
    if v.ndim != 3:
        raise RenderError(f"lip opening needs (T, V, 3) vertices, got shape {v.shape}")
    upper, lower = lip_opening_vertices(topology)
    return np.linalg.norm(v[:, upper].astype(np.float64) - v[:, lower].astype(np.float64), axis=-1)


def _unit_scale(units: str | None) -> tuple[float, str]:
    if units == "m":
        return 1000.0, "mm"
    return 1.0, units or "mesh units"


def _figure_curves(ax, curves: dict[str, np.ndarray], fps: float, units: str | None) -> None:
    scale, unit = _unit_scale(units)
    colours = {"prediction": "tab:red", "ground truth": "black"}
    for name, curve in curves.items():
        t = np.arange(len(curve)) / fps
        ax.plot(t, np.asarray(curve) * scale, lw=1.3, color=colours.get(name), label=name)
    ax.set_ylabel(f"lip opening ({unit})", fontsize=8)
    ax.grid(alpha=0.3)
    ax.tick_params(labelsize=7)


def lip_plot_strip(
    curves: dict[str, np.ndarray],
    fps: float,
    num_frames: int,
    width: int,
    height: int,
    units: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The lip-opening strip drawn under a video.

    Args:
        curves: ``{"prediction": (T,), "ground truth": (T,)}`` (one or more curves).
        fps: frame rate of the curves and of the video.
        num_frames: video frames (the x axis spans ``num_frames / fps`` seconds).
        width, height: strip size in pixels.
        units: vertex units (``"m"`` plots millimetres).

    Returns:
        ``(image (height, width, 3) uint8, cursor_x (num_frames,) int)``: the static plot and, per video
        frame, the pixel column of its time (where the cursor goes).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.08, 0.3, 0.9, 0.64))
    _figure_curves(ax, curves, fps, units)
    duration = max(num_frames - 1, 1) / fps
    ax.set_xlim(0, duration)
    ax.set_xlabel("time (s)", fontsize=7, labelpad=1)
    if len(curves) > 1:
        ax.legend(loc="upper right", fontsize=6, ncol=len(curves), framealpha=0.7)
    canvas.draw()
    img = np.asarray(canvas.buffer_rgba())[..., :3].copy()
    if img.shape[:2] != (height, width):  # matplotlib rounding: crop/pad to the exact size
        out = np.full((height, width, 3), 255, dtype=np.uint8)
        h, w = min(height, img.shape[0]), min(width, img.shape[1])
        out[:h, :w] = img[:h, :w]
        img = out
    times = np.arange(num_frames) / fps
    disp = ax.transData.transform(np.stack([times, np.zeros_like(times)], 1))
    cursor = np.clip(np.round(disp[:, 0]).astype(int), 0, width - 1)
    return img, cursor


def save_lip_plot(
    path: str | Path,
    curves: dict[str, np.ndarray],
    fps: float,
    units: str | None = None,
    title: str | None = None,
) -> Path:
    """Write a PNG of lip-opening curves over time (``{"prediction": (T,), "ground truth": (T,)}``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 2.6), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    _figure_curves(ax, curves, fps, units)
    ax.set_xlabel("time (s)", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    if len(curves) > 1:
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
