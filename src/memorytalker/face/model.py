"""The project's face: a linear shape model derived from ICT-FaceKit, with a mouth inside and eyes.

:class:`FaceModel` loads the shipped asset ``memorytalker/assets/face/ictface.npz`` (built by
``scripts/build_face_asset.py``; docs/FACE.md). Its vertices are ``N = V + E``:

* the first ``V`` are the **animated region** (face, head and neck): :attr:`FaceModel.topology` is a
  :class:`~memorytalker.topology.FaceTopology` over them (triangles, regions ``lips``, ``upper_face``,
  ``upper_lip_inner``, ``lower_lip_inner``, ``eyelids``, ``jaw``, ``nose``, ...). This is what a model
  predicts and what metrics see;
* the other ``E`` belong to the **extra parts** (:data:`PART_ORDER`): eye sockets, mouth socket, gums and
  tongue, teeth, eyeballs (scleras with the iris and pupil painted in :attr:`FaceModel.vertex_colours`). Each :class:`FacePart` has its own triangles (global indices
  into the ``N`` vertices; the sockets share their seam vertices with the face) and a colour. They move
  with the shapes like every other vertex (the lower teeth with ``jawOpen``, the eyeballs with
  ``eyeLook*``), so posing all ``N`` vertices gives a face with an inside.

Posing is linear: ``vertices = neutral + identity @ identity_basis + weights @ expression_basis``
(:meth:`FaceModel.pose`), with the 53 ICT expression shapes (:attr:`expression_names`) or the 52 ARKit
shapes (:meth:`FaceModel.pose_arkit`, :mod:`memorytalker.face.arkit`). Identity coefficients are in the
model's own units (ICT's PCA modes: a standard normal sample is a plausible person).

Units: metres, ``+y`` up, ``+z`` towards the viewer (like FLAME).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from memorytalker.errors import TopologyError
from memorytalker.face import arkit
from memorytalker.topology import FaceTopology

#: Format tag of the asset file.
ASSET_FORMAT = "memorytalker-face/1"
#: File name of the shipped asset in ``memorytalker/assets/face/``.
ASSET_NAME = "ictface.npz"
#: Parts of the asset in vertex order: the animated region (``skin``) first.
PART_ORDER = ("skin", "eye_socket", "mouth_socket", "gums_tongue", "teeth", "eyeball")


class FaceAssetError(TopologyError):
    """A face asset that is missing, unreadable or inconsistent (the file is named)."""


def default_asset_path() -> Path:
    """Path of the shipped face asset (``memorytalker/assets/face/ictface.npz``)."""
    return Path(str(resources.files("memorytalker"))) / "assets" / "face" / ASSET_NAME


@dataclass(frozen=True, eq=False)
class FacePart:
    """One part of the face.

    Attributes:
        name: one of :data:`PART_ORDER`.
        vertices: ``(n,)`` int64 indices of the part's own vertices among the model's ``N``.
        faces: ``(F, 3)`` int64 triangles, indices among the model's ``N`` vertices.
        colour: ``(3,)`` float32 linear RGB base colour.
    """

    name: str
    vertices: np.ndarray
    faces: np.ndarray
    colour: np.ndarray


class FaceModel:
    """A linear face model with an animated region and extra parts (see the module docstring).

    Attributes:
        topology: :class:`FaceTopology` of the animated region (``V`` vertices).
        neutral: ``(N, 3)`` float32 neutral vertices (metres).
        expression_names: the ``K`` expression shape names (ICT's: ``eyeBlink_L``, ``jawOpen``, ...).
        expression_basis: ``(K, N, 3)`` float32 expression deltas.
        identity_names: the ``I`` identity shape names (``identity000`` ...).
        identity_basis: ``(I, N, 3)`` float32 identity deltas.
        parts: ``{name: FacePart}`` in :data:`PART_ORDER` order.
        vertex_colours: ``(N, 3)`` float32 linear RGB per vertex (part colours, iris/pupil, darker mouth).
        landmarks: ``(68,)`` int64 Multi-PIE 68 landmark vertices (indices into the animated region).
        source_index: ``(N,)`` int64 index of each vertex in the ICT-FaceKit OBJ files.
        info: the build information (vertex counts, measured errors, command) as a dict.
    """

    def __init__(
        self,
        topology: FaceTopology,
        neutral: np.ndarray,
        expression_names: list[str],
        expression_basis: np.ndarray,
        identity_names: list[str],
        identity_basis: np.ndarray,
        parts: dict[str, FacePart],
        vertex_colours: np.ndarray,
        landmarks: np.ndarray,
        source_index: np.ndarray,
        info: dict | None = None,
        name: str = "face",
    ) -> None:
        self.name = name
        self.topology = topology
        self.neutral = np.ascontiguousarray(neutral, dtype=np.float32)
        self.expression_names = list(expression_names)
        self.expression_basis = np.ascontiguousarray(expression_basis, dtype=np.float32)
        self.identity_names = list(identity_names)
        self.identity_basis = np.ascontiguousarray(identity_basis, dtype=np.float32)
        self.parts = dict(parts)
        self.vertex_colours = np.ascontiguousarray(vertex_colours, dtype=np.float32)
        self.landmarks = np.asarray(landmarks, dtype=np.int64)
        self.source_index = np.asarray(source_index, dtype=np.int64)
        self.info = dict(info or {})
        self._validate()

    def _validate(self) -> None:
        n, v = self.num_vertices, self.num_animated
        what = f"face model {self.name!r}"
        if self.neutral.ndim != 2 or self.neutral.shape[1] != 3:
            raise FaceAssetError(f"{what}: neutral must be (N, 3), got {self.neutral.shape}")
        if v > n or not np.allclose(self.topology.vertices, self.neutral[:v]):
            raise FaceAssetError(
                f"{what}: the topology's {v} vertices are not the first vertices of the neutral"
            )
        for label, basis, names in (
            ("expression", self.expression_basis, self.expression_names),
            ("identity", self.identity_basis, self.identity_names),
        ):
            if basis.shape != (len(names), n, 3):
                raise FaceAssetError(
                    f"{what}: {label} basis has shape {basis.shape}, expected ({len(names)}, {n}, 3)"
                )
        if self.vertex_colours.shape != (n, 3):
            raise FaceAssetError(f"{what}: vertex colours {self.vertex_colours.shape}, expected ({n}, 3)")
        if self.source_index.shape != (n,):
            raise FaceAssetError(f"{what}: source_index {self.source_index.shape}, expected ({n},)")
        if self.landmarks.size and (self.landmarks.min() < 0 or self.landmarks.max() >= v):
            raise FaceAssetError(f"{what}: landmark indices outside the animated region [0, {v})")
        if "skin" not in self.parts:
            raise FaceAssetError(f"{what}: no 'skin' part (the animated region)")
        for p in self.parts.values():
            if p.faces.size and (p.faces.min() < 0 or p.faces.max() >= n):
                raise FaceAssetError(f"{what}: part {p.name!r} has triangle indices outside [0, {n})")
            if p.vertices.size and (p.vertices.min() < 0 or p.vertices.max() >= n):
                raise FaceAssetError(f"{what}: part {p.name!r} has vertex indices outside [0, {n})")
        if not np.array_equal(self.parts["skin"].faces, self.topology.faces):
            raise FaceAssetError(f"{what}: the skin part's triangles differ from the topology's")

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path | None = None) -> FaceModel:
        """Load a face asset (default: the shipped one, :func:`default_asset_path`).

        Raises:
            FaceAssetError: missing file, another format, or inconsistent arrays (the file is named).
        """
        path = Path(path) if path is not None else default_asset_path()
        if not path.is_file():
            raise FaceAssetError(
                f"face asset not found: {path} (build it with scripts/build_face_asset.py, docs/FACE.md)"
            )
        try:
            with np.load(path, allow_pickle=False) as data:
                state = {k: data[k] for k in data.files}
        except Exception as exc:
            raise FaceAssetError(f"cannot read face asset {path}: {exc}") from exc
        try:
            return cls.from_state(state)
        except KeyError as exc:
            raise FaceAssetError(f"{path}: face asset is missing {exc}") from None
        except TopologyError as exc:
            raise FaceAssetError(f"{path}: {exc}") from None

    @classmethod
    def from_state(cls, state: dict) -> FaceModel:
        fmt = str(state["format"])
        if fmt != ASSET_FORMAT:
            raise FaceAssetError(f"face asset format {fmt!r}, expected {ASSET_FORMAT!r}")
        if str(state["units"]) != "m":
            raise FaceAssetError(f"face asset units {str(state['units'])!r}, expected 'm'")
        neutral = np.asarray(state["neutral"], dtype=np.float32)
        v = int(state["num_animated"])
        topo_state = {k[len("topology/") :]: state[k] for k in state if k.startswith("topology/")}
        topo_state["vertices"] = neutral[:v]
        topology = FaceTopology.from_state(topo_state)

        def basis(prefix: str) -> np.ndarray:
            q = np.asarray(state[f"{prefix}_q"])
            scale = np.asarray(state[f"{prefix}_scale"], dtype=np.float32)
            if q.ndim != 3 or scale.shape != (q.shape[0],):
                raise FaceAssetError(f"{prefix} shapes {q.shape} and scales {scale.shape} do not match")
            return q.astype(np.float32) * scale[:, None, None]

        parts = {}
        for name in [str(n) for n in np.asarray(state["part_names"]).tolist()]:
            parts[name] = FacePart(
                name=name,
                vertices=np.asarray(state[f"part/{name}/vertices"], dtype=np.int64),
                faces=np.asarray(state[f"part/{name}/faces"], dtype=np.int64).reshape(-1, 3),
                colour=np.asarray(state[f"part/{name}/colour"], dtype=np.float32),
            )
        info = json.loads(str(state["build_info"])) if "build_info" in state else {}
        return cls(
            topology=topology,
            neutral=neutral,
            expression_names=[str(n) for n in np.asarray(state["expression_names"]).tolist()],
            expression_basis=basis("expression"),
            identity_names=[str(n) for n in np.asarray(state["identity_names"]).tolist()],
            identity_basis=basis("identity"),
            parts=parts,
            vertex_colours=np.asarray(state["vertex_colours"], dtype=np.float32),
            landmarks=np.asarray(state["landmarks"]),
            source_index=np.asarray(state["source_index"]),
            info=info,
            name=topology.name,
        )

    # ------------------------------------------------------------------ sizes
    @property
    def num_vertices(self) -> int:
        """``N``: all vertices (animated region and extra parts)."""
        return int(self.neutral.shape[0])

    @property
    def num_animated(self) -> int:
        """``V``: vertices of the animated region (the topology's)."""
        return self.topology.num_vertices

    @property
    def num_expressions(self) -> int:
        """``K``."""
        return len(self.expression_names)

    @property
    def num_identities(self) -> int:
        """``I``."""
        return len(self.identity_names)

    @cached_property
    def faces(self) -> np.ndarray:
        """``(F, 3)`` int64 triangles of every part (indices among the ``N`` vertices), for rendering."""
        return np.concatenate([p.faces for p in self.parts.values()])

    # ------------------------------------------------------------------ ARKit
    @cached_property
    def arkit_matrix(self) -> np.ndarray:
        """``(K, 52)``: expression weights ``= arkit_matrix @`` ARKit weights (:mod:`memorytalker.face.arkit`)."""
        return arkit.arkit_to_ict_matrix(self.expression_names)

    @cached_property
    def arkit_basis(self) -> np.ndarray:
        """``(52, N, 3)`` float32 deltas of the ARKit shapes (split pairs summed, ``tongueOut`` zero)."""
        m = self.arkit_matrix.astype(np.float32)
        return np.einsum("kj,knc->jnc", m, self.expression_basis)

    def arkit_to_expression(self, weights: np.ndarray) -> np.ndarray:
        """``(..., K)`` expression weights from ``(..., 52)`` ARKit weights."""
        w = np.asarray(weights, dtype=np.float32)
        if w.shape[-1] != arkit.NUM_ARKIT:
            raise FaceAssetError(f"ARKit weights must end in {arkit.NUM_ARKIT}, got shape {w.shape}")
        return w @ self.arkit_matrix.T.astype(np.float32)

    def expression_to_arkit(self, weights: np.ndarray) -> np.ndarray:
        """``(..., 52)`` ARKit weights from ``(..., K)`` expression weights (a split pair averaged)."""
        w = np.asarray(weights, dtype=np.float32)
        self._check_weights(w)
        return w @ self._arkit_pinv.T

    @cached_property
    def _arkit_pinv(self) -> np.ndarray:
        """``(52, K)`` float32 pseudo-inverse of :attr:`arkit_matrix`."""
        return np.linalg.pinv(self.arkit_matrix).astype(np.float32)

    # ------------------------------------------------------------------ posing
    def _check_weights(self, w: np.ndarray) -> None:
        if w.shape[-1:] != (self.num_expressions,):
            raise FaceAssetError(
                f"expression weights must end in K = {self.num_expressions} ({', '.join(self.expression_names[:3])}"
                f", ...), got shape {w.shape}"
            )

    def identity_neutral(self, identity: np.ndarray | None = None) -> np.ndarray:
        """``(N, 3)`` float32 neutral of the person with ``(I',)`` identity coefficients (``I' <= I``:
        the first ``I'`` modes; None = the generic neutral)."""
        if identity is None:
            return self.neutral.copy()
        c = np.asarray(identity, dtype=np.float32).reshape(-1)
        if c.size > self.num_identities:
            raise FaceAssetError(f"{c.size} identity coefficients given, the model has {self.num_identities}")
        return self.neutral + np.tensordot(c, self.identity_basis[: c.size], axes=1)

    def pose(self, weights: np.ndarray, identity: np.ndarray | None = None) -> np.ndarray:
        """All ``N`` vertices for expression weights ``(T, K)`` (or ``(K,)``) and identity ``(I',)``.

        Returns ``(T, N, 3)`` float32 (``(N, 3)`` for 1-D weights).
        """
        w = np.asarray(weights, dtype=np.float32)
        self._check_weights(w)
        base = self.identity_neutral(identity)
        flat = w.reshape(-1, self.num_expressions) @ self.expression_basis.reshape(self.num_expressions, -1)
        out = base[None] + flat.reshape(-1, self.num_vertices, 3)
        return out.reshape(*w.shape[:-1], self.num_vertices, 3)

    def pose_arkit(self, weights: np.ndarray, identity: np.ndarray | None = None) -> np.ndarray:
        """All ``N`` vertices for ARKit weights ``(T, 52)`` (or ``(52,)``); ``tongueOut`` has no shape."""
        return self.pose(self.arkit_to_expression(weights), identity)

    def animated(self, vertices: np.ndarray) -> np.ndarray:
        """The animated region ``(..., V, 3)`` of ``(..., N, 3)`` vertices."""
        v = np.asarray(vertices)
        if v.shape[-2:] != (self.num_vertices, 3):
            raise FaceAssetError(f"expected (..., {self.num_vertices}, 3) vertices, got shape {v.shape}")
        return v[..., : self.num_animated, :]

    # ------------------------------------------------------------------ fitting
    def fit_identity(
        self,
        vertices: np.ndarray,
        num_identities: int | None = None,
        regularization: float = 0.0,
        region: np.ndarray | None = None,
    ) -> np.ndarray:
        """Identity coefficients ``(I',)`` whose neutral best matches ``(V, 3)`` animated-region vertices.

        Least squares ``min_c |neutral + B c - vertices|^2 + regularization * |c|^2`` over the vertices of
        ``region`` (indices into the animated region; default all ``V``), with the first
        ``num_identities`` modes (default all ``I``). No rigid alignment: give vertices in the model's frame.

        Raises:
            FaceAssetError: vertices of another shape, NaN/Inf, or a bad ``num_identities``.
        """
        target = np.asarray(vertices, dtype=np.float64)
        if target.shape != (self.num_animated, 3):
            raise FaceAssetError(
                f"fit_identity needs ({self.num_animated}, 3) animated-region vertices, got shape {target.shape}"
            )
        if not np.all(np.isfinite(target)):
            raise FaceAssetError("fit_identity: the vertices have NaN/Inf coordinates")
        k = self.num_identities if num_identities is None else int(num_identities)
        if not 1 <= k <= self.num_identities:
            raise FaceAssetError(
                f"num_identities must be in [1, {self.num_identities}], got {num_identities}"
            )
        idx = np.arange(self.num_animated) if region is None else np.asarray(region, dtype=np.int64)
        a = self.identity_basis[:k, idx].reshape(k, -1).T.astype(np.float64)  # (3n, k)
        b = (target[idx] - self.neutral[idx]).reshape(-1)
        if regularization > 0:
            a = np.vstack([a, np.sqrt(regularization) * np.eye(k)])
            b = np.concatenate([b, np.zeros(k)])
        coeffs, *_ = np.linalg.lstsq(a, b, rcond=None)
        return coeffs.astype(np.float32)

    def __repr__(self) -> str:
        parts = ", ".join(f"{p.name}={len(p.vertices)}" for p in self.parts.values())
        return (
            f"FaceModel(V={self.num_animated}, N={self.num_vertices}, K={self.num_expressions}, "
            f"I={self.num_identities}, parts: {parts})"
        )
