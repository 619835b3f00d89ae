"""Rendering and export: MP4 videos (headless OpenGL + H.264/AAC), lip-opening plots, npy/OBJ/PLY/glTF.

* :func:`render_video` - ``(T, V, 3)`` vertices -> MP4 with the speech (optionally beside the ground
  truth, with a lip-opening plot); :func:`render_frames` yields the composed ``(H, W, 3)`` uint8 frames.
* :func:`export_glb` - glTF 2.0 binary with PCA morph targets and animated weights (audio referenced);
  :func:`export_sequence` - one OBJ/PLY per frame; :func:`export_npy`.
* :func:`save_lip_plot` - lip-opening curves as a PNG (the curves: :func:`memorytalker.topology.lip_opening`).
* :class:`RenderError`, :class:`ExportError`.

Names are imported lazily: importing this package does not load OpenGL, PyAV or matplotlib.
"""

from __future__ import annotations

from typing import Any

from memorytalker.render.errors import ExportError, RenderError

_LAZY = {
    "render_video": "memorytalker.render.video",
    "write_video": "memorytalker.render.video",
    "video_frame_count": "memorytalker.render.video",
    "VideoWriter": "memorytalker.render.video",
    "render_frames": "memorytalker.render.frames",
    "MeshRenderer": "memorytalker.render.gl",
    "render_image": "memorytalker.render.gl",
    "Camera": "memorytalker.render.camera",
    "frame_vertices": "memorytalker.render.camera",
    "save_lip_plot": "memorytalker.render.plots",
    "export_glb": "memorytalker.render.export",
    "export_sequence": "memorytalker.render.export",
    "export_npy": "memorytalker.render.export",
    "pca_morph_targets": "memorytalker.render.export",
}

__all__ = ["ExportError", "RenderError", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'memorytalker.render' has no attribute {name!r}")
