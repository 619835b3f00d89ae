"""Lip-opening plots: the strip under a video and standalone PNGs (the project's one lip plotter).

The curves come from the topology's lip geometry (:func:`memorytalker.topology.lip_opening`, the same
quantity ``evaluate`` reports). :func:`plot_units` is the one conversion from vertex units to the plotted
unit (metres are plotted in millimetres).

Two renderings: :func:`lip_plot_strip` is the strip drawn under a video (whole clip, with a moving time
cursor drawn per frame by :func:`memorytalker.render.frames.render_frames`); :func:`save_lip_plot` writes
a PNG with one panel per entry (``evaluate`` draws one per clip).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: One panel of :func:`save_lip_plot`: its title, ``{label: (T,) curve in vertex units}`` and optionally
#: time spans to shade, ``[(start s, end s, kind)]`` with ``kind`` ``"bilabial"`` (P/B/M) or ``"pause"``.
Panel = tuple  # (str, Mapping[str, np.ndarray]) or (str, Mapping[str, np.ndarray], Sequence[Span])
#: A shaded time span: ``(start s, end s, kind)``.
Span = tuple[float, float, str]
#: Colours and legend labels of the shaded spans.
SPAN_STYLE = {"bilabial": ("tab:blue", "P/B/M"), "pause": ("0.6", "pause")}


def plot_units(units: str | None) -> tuple[float, str]:
    """``(scale, unit)``: plotted value = value in vertex ``units`` x scale (metres -> millimetres)."""
    if units == "m":
        return 1000.0, "mm"
    return 1.0, units or "mesh units"


def _figure_curves(
    ax, curves: dict[str, np.ndarray], fps: float, units: str | None, label: str = "lip opening", spans=()
) -> None:
    scale, unit = plot_units(units)
    shown = set()
    for start, end, kind in spans:
        colour, name = SPAN_STYLE[kind]
        ax.axvspan(start, end, color=colour, alpha=0.18, lw=0, label=None if kind in shown else name)
        shown.add(kind)
    colours = {"prediction": "tab:red", "ground truth": "black"}
    for name, curve in curves.items():
        t = np.arange(len(curve)) / fps
        ax.plot(t, np.asarray(curve) * scale, lw=1.3, color=colours.get(name), label=name)
    ax.set_ylabel(f"{label} ({unit})", fontsize=8)
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
    panels: Sequence[Panel],
    fps: float,
    units: str | None = None,
    title: str | None = None,
    label: str = "lip opening",
) -> Path:
    """Write a PNG of lip-opening curves over time, one panel per :data:`Panel` entry.

    Args:
        panels: e.g. ``[("clip_01", {"prediction": (T,), "ground truth": (T,)}, [(0.4, 0.5, "bilabial")])]``.
        fps: frame rate of the curves. units: vertex units (``"m"`` plots millimetres).
        title: figure title. label: the y axis' quantity.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 0.4 + 2.3 * len(panels)), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (name, curves, *spans) in zip(axes, panels):
        _figure_curves(ax, dict(curves), fps, units, label, spans[0] if spans else ())
        ax.set_title(name, fontsize=9)
    axes[-1].set_xlabel("time (s)", fontsize=8)
    if len(panels[0][1]) > 1 or any(len(p) > 2 and p[2] for p in panels):
        axes[0].legend(loc="upper right", fontsize=8, ncol=4)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
