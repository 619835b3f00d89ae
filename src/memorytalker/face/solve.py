"""ARKit weights from vertices: a bounded least-squares solve against the face's shape basis.

A model trained on the project's face predicts the vertices of its animated region. Users who drive their
own character want the 52 ARKit blendshape weights instead: :class:`ArkitSolver` finds, per frame,

    w_t = argmin_{0 <= w <= 1} | (v_t - tau) - sum_k w_k B_k |^2 + ridge * |w|^2

where ``tau`` is the neutral face the animation was made on (the template), ``B`` the ``(52, V, 3)`` ARKit
deltas of the animated region (ICT-FaceKit's expression shapes are additive and identity-independent, so
the same basis serves every person) and ``ridge`` a small Tikhonov term relative to the basis' scale that
keeps shapes which barely move the animated region (gaze) at zero instead of fitting noise. All frames are
solved at once by accelerated projected gradient (FISTA) on the ``52 x 52`` normal equations, warm-started
from the unbounded solution, so a minute of animation takes a fraction of a second.

:func:`face_for_topology` says whether a topology is the shipped face (only then is there a basis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memorytalker.errors import TopologyError
from memorytalker.face import arkit
from memorytalker.face.model import FaceModel
from memorytalker.topology import FaceTopology

#: Tikhonov weight relative to the mean squared norm of the basis shapes.
DEFAULT_RIDGE = 1e-4
#: FISTA iterations (the residual changes by < 1e-6 of its value after ~200 on the shipped face).
DEFAULT_ITERATIONS = 300


#: Name of the shipped face's topology (checked before the asset is loaded).
FACE_TOPOLOGY_NAME = "ict-face"


def face_for_topology(topology: FaceTopology, face: FaceModel | None = None) -> FaceModel | None:
    """The face model whose animated region ``topology`` is (same name, vertex count, triangles and
    reference mesh), else None. ``face`` defaults to the shipped asset."""
    if face is None:
        if topology.name != FACE_TOPOLOGY_NAME:
            return None
        face = FaceModel.load()
    ft = face.topology
    if (
        topology.name == ft.name
        and topology.num_vertices == ft.num_vertices
        and np.array_equal(topology.faces, ft.faces)
        and np.allclose(topology.vertices, ft.vertices, atol=1e-6)
    ):
        return face
    return None


@dataclass
class SolveReport:
    """How well the weights reproduce the vertices: RMS vertex error (data units) over all vertices and
    over the lips, and the largest per-frame lip RMS."""

    rms: float
    lips_rms: float
    lips_rms_max: float


class ArkitSolver:
    """Solve ARKit weights ``(T, 52)`` from animated-region vertices ``(T, V, 3)`` (module docstring).

    Args:
        face: the face model (its animated region must be the vertices' topology).
        ridge: Tikhonov weight relative to the mean squared shape norm.
        iterations: FISTA iterations.
    """

    def __init__(
        self, face: FaceModel, ridge: float = DEFAULT_RIDGE, iterations: int = DEFAULT_ITERATIONS
    ) -> None:
        self.face = face
        v = face.num_animated
        basis = face.arkit_basis[:, :v].reshape(arkit.NUM_ARKIT, -1).astype(np.float64)  # (52, 3V)
        norms = np.einsum("kd,kd->k", basis, basis)
        self.active = np.flatnonzero(norms > 0)  # tongueOut has no shape
        self.basis = basis[self.active]  # (k, 3V)
        gram = self.basis @ self.basis.T
        self.lam = float(ridge) * float(norms[self.active].mean())
        self.gram = gram + self.lam * np.eye(len(self.active))
        self.step = 1.0 / float(np.linalg.eigvalsh(self.gram).max())
        self.gram_inv = np.linalg.inv(self.gram)
        self.iterations = int(iterations)

    def solve(
        self, vertices: np.ndarray, template: np.ndarray | None = None, chunk: int = 1024
    ) -> np.ndarray:
        """``(T, 52)`` float32 weights in ``[0, 1]`` for ``(T, V, 3)`` vertices made on ``template``
        ``(V, 3)`` (default: the face's neutral)."""
        v = self.face.num_animated
        x = np.asarray(vertices)
        if x.ndim != 3 or x.shape[1:] != (v, 3):
            raise TopologyError(f"ARKit solve needs (T, {v}, 3) vertices of the face, got shape {x.shape}")
        tau = self.face.topology.vertices if template is None else np.asarray(template)
        if tau.shape != (v, 3):
            raise TopologyError(f"ARKit solve: template has shape {tau.shape}, expected ({v}, 3)")
        out = np.zeros((x.shape[0], arkit.NUM_ARKIT), dtype=np.float32)
        for a in range(0, x.shape[0], chunk):
            d = (np.asarray(x[a : a + chunk], dtype=np.float64) - tau[None]).reshape(-1, 3 * v)
            out[a : a + chunk, self.active] = self._fista(d @ self.basis.T)
        return out

    def _fista(self, c: np.ndarray) -> np.ndarray:
        """Minimise ``0.5 w G w - c w`` over ``[0, 1]^k`` for every row of ``c`` ``(n, k)``."""
        w = np.clip(c @ self.gram_inv, 0.0, 1.0)  # the unbounded solution, projected
        y, t = w.copy(), 1.0
        for _ in range(self.iterations):
            w_next = np.clip(y - (y @ self.gram - c) * self.step, 0.0, 1.0)
            t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t * t))
            y = w_next + ((t - 1.0) / t_next) * (w_next - w)
            w, t = w_next, t_next
        return w

    def reconstruct(self, weights: np.ndarray, template: np.ndarray | None = None) -> np.ndarray:
        """``(T, V, 3)`` animated-region vertices of ``(T, 52)`` weights on ``template``."""
        tau = self.face.topology.vertices if template is None else np.asarray(template)
        w = np.asarray(weights, dtype=np.float64)[:, self.active]
        return (tau[None] + (w @ self.basis).reshape(w.shape[0], -1, 3)).astype(np.float32)

    def report(
        self, vertices: np.ndarray, weights: np.ndarray, template: np.ndarray | None = None
    ) -> SolveReport:
        """RMS errors of ``weights`` reproducing ``vertices`` (whole region and lips)."""
        err = np.linalg.norm(self.reconstruct(weights, template) - np.asarray(vertices), axis=-1)  # (T, V)
        lips = err[:, self.face.topology.lips]
        per_frame = np.sqrt((lips**2).mean(axis=1))
        return SolveReport(
            rms=float(np.sqrt((err**2).mean())),
            lips_rms=float(np.sqrt((lips**2).mean())),
            lips_rms_max=float(per_frame.max()),
        )
