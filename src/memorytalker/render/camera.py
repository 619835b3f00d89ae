"""A fixed pinhole camera framing a face, computed once from the neutral (first) frame.

Convention (FLAME, VOCASET, BIWI and the project's own head): ``+y`` is up and the face looks along
``+z``, toward the viewer. The camera sits on the ``+z`` side of the bounding box centre and looks back
along ``-z``; the field of view is fitted to the box's ``x``/``y`` extent with a margin, and the near/far
planes are derived from the box depth. Every distance is a multiple of the box size, so metres
(VOCASET, synthetic) and millimetres (BIWI) frame identically.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from memorytalker.render.errors import RenderError


@dataclass(frozen=True)
class Camera:
    """A look-at perspective camera.

    Attributes:
        eye: ``(3,)`` camera position.
        target: ``(3,)`` point looked at.
        up: ``(3,)`` up direction.
        fov_y: vertical field of view in degrees.
        near, far: clip plane distances (positive, ``near < far``).
    """

    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)
    fov_y: float = 20.0
    near: float = 0.01
    far: float = 10.0

    def view_matrix(self) -> np.ndarray:
        """``(4, 4)`` float32 world -> camera matrix (row-major, column vectors: ``p_cam = M @ p``)."""
        eye = np.asarray(self.eye, dtype=np.float64)
        f = np.asarray(self.target, dtype=np.float64) - eye
        f /= np.linalg.norm(f)
        s = np.cross(f, np.asarray(self.up, dtype=np.float64))
        if np.linalg.norm(s) < 1e-9:
            raise RenderError("camera: the up direction is parallel to the viewing direction")
        s /= np.linalg.norm(s)
        u = np.cross(s, f)
        m = np.eye(4)
        m[0, :3], m[1, :3], m[2, :3] = s, u, -f
        m[:3, 3] = -m[:3, :3] @ eye
        return m.astype(np.float32)

    def projection_matrix(self, aspect: float = 1.0) -> np.ndarray:
        """``(4, 4)`` float32 OpenGL perspective matrix for ``aspect = width / height``."""
        t = 1.0 / math.tan(math.radians(self.fov_y) / 2.0)
        n, f = self.near, self.far
        p = np.zeros((4, 4))
        p[0, 0] = t / aspect
        p[1, 1] = t
        p[2, 2] = (f + n) / (n - f)
        p[2, 3] = 2 * f * n / (n - f)
        p[3, 2] = -1.0
        return p.astype(np.float32)


def frame_vertices(vertices: np.ndarray, fov_y: float = 20.0, margin: float = 1.12) -> Camera:
    """A frontal camera framing ``(V, 3)`` vertices (the neutral or first frame).

    The box's larger ``x``/``y`` half-extent times ``margin`` fills the view; the camera stands in front of
    the box's front face (``z`` max) by the distance that fits it in ``fov_y``. Near/far leave room for the
    face to move by half its size either way.

    Raises:
        RenderError: empty, non-finite or degenerate (zero-size) vertices.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise RenderError(f"camera: expected (V, 3) vertices, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise RenderError("camera: the framing frame has NaN/Inf vertex positions")
    lo, hi = v.min(0), v.max(0)
    centre = (lo + hi) / 2.0
    half = max(hi[0] - lo[0], hi[1] - lo[1]) / 2.0 * margin
    size = float(np.linalg.norm(hi - lo))
    if not half > 0:
        raise RenderError("camera: the mesh has zero width and height (all vertices on one line/point)")
    depth = hi[2] - lo[2]
    dist = half / math.tan(math.radians(fov_y) / 2.0)
    eye_z = hi[2] + dist
    near = max(dist - 0.5 * size, 1e-3 * dist)
    far = dist + depth + 0.5 * size
    return Camera(
        eye=(float(centre[0]), float(centre[1]), float(eye_z)),
        target=(float(centre[0]), float(centre[1]), float(centre[2])),
        up=(0.0, 1.0, 0.0),
        fov_y=fov_y,
        near=float(near),
        far=float(far),
    )
