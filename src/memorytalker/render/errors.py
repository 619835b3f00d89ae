"""Errors of the rendering and export layer (both are :class:`~memorytalker.errors.MemoryTalkerError`)."""

from __future__ import annotations

from memorytalker.errors import MemoryTalkerError


class RenderError(MemoryTalkerError, RuntimeError):
    """A frame or video that cannot be produced: no EGL, bad mesh, NaN vertices, encoder failure."""


class ExportError(MemoryTalkerError, ValueError):
    """An animation that cannot be exported (bad shapes, NaN vertices, unreachable accuracy, bad path)."""
