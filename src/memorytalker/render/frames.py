"""Frame composition: a rendered prediction, optionally beside its ground truth, optionally over a plot.

Layout of one output frame (``W = size`` or ``2 * size`` side by side)::

    +-----------------+-----------------+
    |   prediction    |  ground truth   |   size x size each, one shared camera
    +-----------------+-----------------+
    |   lip-opening plot with a moving time cursor   |   size // 4 rows (even), when lip_plot
    +-----------------------------------+

The camera is computed once from the first frame (the ground truth's when given, else the prediction's)
and stays fixed. The output length is ``num_frames`` (default ``T``): a longer sequence is trimmed, a
shorter one holds its last frame; a ground truth of another length is trimmed/held the same way.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from memorytalker.render.camera import Camera, frame_vertices
from memorytalker.render.errors import RenderError
from memorytalker.topology import FaceTopology


class LazyFrames:
    """A ``(T, V, 3)`` sequence whose frames are made on demand by ``get(i) -> (V, 3)`` (so a long
    animation, or one whose extra parts are posed per frame, is never held in memory whole).

    Indexing with an int gives one frame; with an index array, the stacked frames.
    """

    def __init__(self, num_frames: int, num_vertices: int, get) -> None:
        self.shape = (int(num_frames), int(num_vertices), 3)
        self.ndim = 3
        self._get = get

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if not -self.shape[0] <= i < self.shape[0]:
                raise IndexError(i)
            return np.asarray(self._get(i % self.shape[0]), dtype=np.float32)
        return np.stack([self[int(i)] for i in np.arange(self.shape[0])[index]])


def as_sequence(
    vertices: np.ndarray | LazyFrames, what: str = "vertices", num_vertices: int | None = None
) -> np.ndarray | LazyFrames:
    """``(T, V, 3)`` float32 view of ``(T, V, 3)`` or ``(T, V*3)`` vertices (a :class:`LazyFrames` is
    checked and passed through).

    Raises:
        RenderError: another shape, zero frames, or a vertex count other than ``num_vertices`` (both
            counts named).
    """
    if isinstance(vertices, LazyFrames):
        if vertices.shape[0] == 0:
            raise RenderError(f"{what}: the sequence has no frames")
        if num_vertices is not None and vertices.shape[1] != num_vertices:
            raise RenderError(
                f"{what} have {vertices.shape[1]} vertices per frame but the mesh has {num_vertices} vertices"
            )
        return vertices
    v = np.asarray(vertices)
    if v.dtype.kind not in "fiu":
        raise RenderError(f"{what}: expected a numeric array, got dtype {v.dtype}")
    if v.ndim == 2:
        if v.shape[1] % 3:
            raise RenderError(f"{what}: shape {v.shape} is neither (T, V, 3) nor (T, V*3)")
        v = v.reshape(v.shape[0], -1, 3)
    if v.ndim != 3 or v.shape[-1] != 3:
        raise RenderError(f"{what}: expected (T, V, 3) vertices, got shape {v.shape}")
    if v.shape[0] == 0:
        raise RenderError(f"{what}: the sequence has no frames")
    if num_vertices is not None and v.shape[1] != num_vertices:
        raise RenderError(
            f"{what} have {v.shape[1]} vertices per frame but the mesh has {num_vertices} vertices"
        )
    return v.astype(np.float32, copy=False)


def fit_length(num_frames: int, target: int) -> np.ndarray:
    """Frame indices ``(target,)`` that trim a sequence or hold its last frame."""
    return np.minimum(np.arange(target), num_frames - 1)


def _label(text: str, size: int) -> np.ndarray:
    """An ``(h, w)`` float32 coverage mask of ``text`` in the default font, for overlaying on a panel."""
    from PIL import Image, ImageDraw, ImageFont

    px = max(10, size // 28)
    try:
        font = ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        font = ImageFont.load_default()
    box = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=font)
    img = Image.new("L", (box[2] + 2, box[3] + 2), 0)
    ImageDraw.Draw(img).text((1, 1), text, fill=255, font=font)
    return np.asarray(img, dtype=np.float32) / 255.0


def _overlay(panel: np.ndarray, mask: np.ndarray, x: int, y: int, colour=(40, 40, 48)) -> None:
    h, w = min(mask.shape[0], panel.shape[0] - y), min(mask.shape[1], panel.shape[1] - x)
    m = mask[:h, :w, None]
    region = panel[y : y + h, x : x + w].astype(np.float32)
    panel[y : y + h, x : x + w] = (region * (1 - m) + np.asarray(colour, np.float32) * m).astype(np.uint8)


def frame_layout(size: int, side_by_side: bool, lip_plot: bool) -> tuple[int, int, int]:
    """``(width, height, strip_height)`` of composed frames (all even, as yuv420p needs)."""
    if size < 16 or size % 2:
        raise RenderError(f"size must be an even number of pixels >= 16 (H.264 yuv420p), got {size}")
    strip = (size // 4) // 2 * 2 if lip_plot else 0
    return size * (2 if side_by_side else 1), size + strip, strip


def render_frames(
    vertices: np.ndarray,
    faces: np.ndarray,
    size: int = 512,
    ground_truth: np.ndarray | None = None,
    lip_plot: bool = False,
    topology: FaceTopology | None = None,
    fps: float = 30.0,
    num_frames: int | None = None,
    camera: Camera | None = None,
    units: str | None = None,
    labels: bool = True,
    samples: int = 0,
    colours: np.ndarray | None = None,
) -> Iterator[np.ndarray]:
    """Render a sequence to composed ``(H, W, 3)`` uint8 RGB frames, one per output frame.

    Args:
        vertices: ``(T, V, 3)`` (or ``(T, V*3)``) predicted vertex positions.
        faces: ``(F, 3)`` triangles.
        size: panel width and height in pixels (even).
        ground_truth: optional ``(T', V, 3)``, drawn to the right of the prediction.
        lip_plot: draw the lip-opening curve(s) under the panels (needs ``topology``).
        topology: the :class:`FaceTopology` (for the lip-opening vertices; its V must match).
        fps: frame rate (for the plot's time axis).
        num_frames: output frames (default ``T``): trims, or holds the last frame.
        camera: a fixed camera (default: :func:`frame_vertices` of the first frame).
        units: vertex units for the plot label (``"m"`` plots millimetres).
        labels: write "prediction" / "ground truth" on the panels when side by side.
        samples: MSAA samples (0 = off; 4 halves the speed on llvmpipe).
        colours: optional ``(V, 3)`` per-vertex linear RGB (e.g. a :class:`~memorytalker.face.FaceModel`'s
            ``vertex_colours``: skin, teeth, gums, mouth socket, eyes); default one skin-grey albedo.

    Yields ``(H, W, 3)`` uint8 frames (see :func:`frame_layout`); the GL context lives as long as the
    iterator (close it, or exhaust it, to release it).

    Raises:
        RenderError: bad shapes, no triangles, NaN vertices (naming the frame), lip plot without topology,
            colours of another shape.
    """
    pred = as_sequence(vertices, "vertices")
    n_vert = pred.shape[1]
    gt = None if ground_truth is None else as_sequence(ground_truth, "ground-truth vertices", n_vert)
    if topology is not None and topology.num_vertices != n_vert:
        raise RenderError(
            f"vertices have {n_vert} vertices per frame but topology {topology.name!r} has "
            f"{topology.num_vertices} vertices"
        )
    if lip_plot and topology is None:
        raise RenderError("the lip-opening plot needs the face topology (lips region): give topology=")
    if not fps > 0:
        raise RenderError(f"fps must be positive, got {fps}")
    total = pred.shape[0] if num_frames is None else int(num_frames)
    if total < 1:
        raise RenderError(f"num_frames must be at least 1, got {num_frames}")
    width, height, strip_h = frame_layout(size, gt is not None, lip_plot)
    pred_idx = fit_length(pred.shape[0], total)
    gt_idx = None if gt is None else fit_length(gt.shape[0], total)

    strip = cursor = None
    if lip_plot:
        from memorytalker.render.plots import lip_plot_strip
        from memorytalker.topology import lip_opening

        curves = {"prediction": lip_opening(pred[pred_idx], topology)}
        if gt is not None:
            curves["ground truth"] = lip_opening(gt[gt_idx], topology)
        strip, cursor = lip_plot_strip(curves, fps, total, width, strip_h, units=units)

    from memorytalker.render.gl import MeshRenderer, check_colours, check_faces

    check_faces(faces, n_vert)
    check_colours(colours, n_vert)
    first = gt[0] if gt is not None else pred[0]
    cam = camera or frame_vertices(first)
    masks = (_label("prediction", size), _label("ground truth", size)) if gt is not None and labels else None
    pad = max(4, size // 64)

    renderer = MeshRenderer(faces, n_vert, cam, size=size, samples=samples, colours=colours)
    try:
        for i in range(total):
            out = np.empty((height, width, 3), dtype=np.uint8)
            out[:size, :size] = renderer.render(pred[pred_idx[i]], frame=int(pred_idx[i]))
            if gt is not None:
                j = int(gt_idx[i])
                try:
                    out[:size, size:] = renderer.render(gt[j], frame=j)
                except RenderError as exc:
                    raise RenderError(f"ground truth: {exc}") from None
                if masks is not None:
                    _overlay(out[:size, :size], masks[0], pad, pad)
                    _overlay(out[:size, size:], masks[1], pad, pad)
            if strip is not None:
                out[size:] = strip
                x = int(cursor[i])
                out[size:, max(0, x - 1) : x + 1] = (30, 110, 220)
            yield out
    finally:
        renderer.close()
