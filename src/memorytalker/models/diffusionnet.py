"""DiffusionNet (Sharp et al., TOG 2022) on a triangle mesh, for ScanTalk (:mod:`memorytalker.models.scantalk`).

Two halves:

* **Geometry operators of a mesh** (:func:`compute_operators`, cached per mesh by :func:`operators_for`): the
  mesh is first normalised (area-weighted centroid at the origin, total surface area 1), so the operators do
  not depend on the data's units; then the cotan Laplacian ``L`` and the lumped mass ``M`` (``robust-laplacian``,
  Nick Sharp's library, what DiffusionNet uses), the first ``K`` eigenpairs of ``L phi = lambda M phi``
  (``scipy.sparse.linalg.eigsh`` in shift-invert mode; a dense solve for meshes of at most ``K + 1``
  vertices), a tangent frame per vertex (its normal and two tangents) and the spatial gradient operators
  ``grad_x``, ``grad_y`` (per vertex, the least-squares gradient over its mesh neighbours in its tangent
  plane, as DiffusionNet builds them).
* **The network** (:class:`DiffusionNet`): a linear lift, blocks of (learned per-channel diffusion
  ``x -> Phi exp(-lambda t) Phi^T M x`` in the spectral basis, spatial gradient features
  ``tanh(Re(conj(g) * A g))`` with a learned complex-linear ``A``, a per-vertex MLP of ``[x, diffused,
  gradient features]``, a residual), and a linear output. Features are ``(N, V, C)`` at the interface
  (``N`` = any number of meshes or frames that share the operators) and vertex-major ``(V, N, C)`` inside,
  so every spectral and sparse product is one matrix product without copies.

Everything acts per vertex or through the operators, so permuting a mesh's vertices (and renumbering its
faces) permutes the outputs the same way, and a network trained on one mesh runs on any other.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg as sla
import torch
from torch import nn

from memorytalker.errors import TopologyError

#: Relative floor of the mass (a vertex in no triangle keeps a tiny mass), DiffusionNet's ``eps``.
EIG_EPS = 1e-8
#: Shift of the eigen-solve on the area-1 mesh: ``L + s M`` (then ``lambda - s``, exact since the shift is
#: proportional to ``M``), factorised about ``-s``: ``L + 2 s M`` is regular and well conditioned (the first
#: nonzero eigenvalue of a face of area 1 is ~10).
EIG_SHIFT = 1e-4
#: Tikhonov term of the per-vertex gradient least squares, relative to the neighbourhood's mean squared
#: edge length (DiffusionNet: 1e-5 absolute on its unit-scaled shapes).
GRAD_REG = 1e-5
#: Smallest allowed diffusion time (DiffusionNet clamps the learned times to it).
MIN_TIME = 1e-8


@dataclass(frozen=True)
class MeshOperators:
    """The operators of one mesh (of ``V`` vertices; ``K`` eigenpairs), on the normalised mesh.

    Attributes:
        key: the mesh's hash (:func:`mesh_key`). k: eigenpairs asked for.
        mass: ``(V,)`` lumped mass (sums to 1, the normalised area). laplacian: ``(V, V)`` sparse weak
            cotan Laplacian (positive semi-definite; rows sum to 0).
        evals: ``(K,)`` ascending eigenvalues (the first is 0). evecs: ``(V, K)`` M-orthonormal eigenvectors.
        frames: ``(V, 3, 3)`` per-vertex tangent X, tangent Y, normal (rows).
        grad_x, grad_y: ``(V, V)`` sparse: the gradient's components in each vertex's tangent frame.
        centroid: ``(3,)`` area-weighted centroid of the mesh (data units). scale: ``sqrt(area)`` (data units).
        seconds: how long the computation took.
    """

    key: str
    k: int
    mass: torch.Tensor
    laplacian: torch.Tensor
    evals: torch.Tensor
    evecs: torch.Tensor
    frames: torch.Tensor
    grad_x: torch.Tensor
    grad_y: torch.Tensor
    centroid: torch.Tensor
    scale: float
    seconds: float

    @property
    def num_vertices(self) -> int:
        return int(self.mass.shape[0])

    def to(self, device: torch.device | str) -> MeshOperators:
        """The same operators on ``device``."""
        move = {
            name: getattr(self, name).to(device)
            for name in ("mass", "laplacian", "evals", "evecs", "frames", "grad_x", "grad_y", "centroid")
        }
        return MeshOperators(self.key, self.k, scale=self.scale, seconds=self.seconds, **move)

    def normalize(self, vertices: torch.Tensor) -> torch.Tensor:
        """Positions ``(..., V, 3)`` (data units) in the normalised frame: ``(x - centroid) / scale``."""
        return (vertices - self.centroid.to(vertices.dtype)) / self.scale


# ---------------------------------------------------------------------------------------------- geometry
def mesh_key(vertices: np.ndarray, faces: np.ndarray) -> str:
    """A hash of a mesh's float32 vertices and int64 faces (the operator cache's key)."""
    h = hashlib.sha1()
    v = np.ascontiguousarray(vertices, dtype=np.float32)
    f = np.ascontiguousarray(faces, dtype=np.int64)
    h.update(np.asarray(v.shape, dtype=np.int64).tobytes() + v.tobytes())
    h.update(np.asarray(f.shape, dtype=np.int64).tobytes() + f.tobytes())
    return h.hexdigest()


def _check_mesh(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3) if np.size(faces) else np.zeros((0, 3), np.int64)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 3:
        raise TopologyError(f"DiffusionNet needs (V >= 3, 3) vertices, got {v.shape}")
    if not np.all(np.isfinite(v)):
        raise TopologyError("DiffusionNet: the mesh has NaN/Inf coordinates")
    if f.shape[0] == 0:
        raise TopologyError(
            "DiffusionNet needs a triangle mesh: this one has no faces (a point cloud; give a .ply/.obj with faces)"
        )
    if f.min() < 0 or f.max() >= v.shape[0]:
        raise TopologyError(f"DiffusionNet: face indices outside [0, {v.shape[0]})")
    return v, f


def face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``(F,)`` triangle areas."""
    tri = vertices[faces]
    return 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1)


def normalization(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, float]:
    """``(centroid (3,), scale)``: the area-weighted centroid of the surface and ``sqrt(total area)``, both
    independent of how the surface is meshed."""
    v, f = _check_mesh(vertices, faces)
    areas = face_areas(v, f)
    total = float(areas.sum())
    if not total > 0:
        raise TopologyError("DiffusionNet: the mesh has zero surface area (all triangles degenerate)")
    centroid = (v[f].mean(axis=1) * areas[:, None]).sum(0) / total
    return centroid, float(np.sqrt(total))


def laplacian_and_mass(vertices: np.ndarray, faces: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
    """The weak cotan Laplacian ``(V, V)`` (intrinsic Delaunay, ``robust_laplacian.mesh_laplacian``) and the
    lumped mass ``(V,)`` (+ ``EIG_EPS`` x its mean, so a vertex in no triangle keeps a positive mass)."""
    import robust_laplacian

    v, f = _check_mesh(vertices, faces)
    lap, mass = robust_laplacian.mesh_laplacian(v, f)
    m = np.asarray(mass.diagonal(), dtype=np.float64)
    if not np.all(np.isfinite(lap.data)) or not np.all(np.isfinite(m)):
        raise TopologyError("DiffusionNet: the Laplacian or the mass of the mesh is not finite")
    return sp.csr_matrix(lap), m + EIG_EPS * float(m.mean())


def eigenbasis(lap: sp.spmatrix, mass: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``min(k, V)`` eigenpairs of ``L phi = lambda M phi``: ``(evals (K,), evecs (V, K))``,
    ascending, M-orthonormal, eigenvalues clipped at 0. Shift-invert ``eigsh`` about 0; a dense solve when
    ``K >= V - 1`` (tiny meshes)."""
    n = lap.shape[0]
    kk = min(int(k), n)
    shifted = (lap + sp.diags(mass) * EIG_SHIFT).tocsc()  # eigenvalues shifted by exactly EIG_SHIFT
    if kk >= n - 1:
        evals, evecs = scipy.linalg.eigh(shifted.toarray(), np.diag(mass))
        evals, evecs = evals[:kk], evecs[:, :kk]
    else:
        evals, evecs = sla.eigsh(shifted, k=kk, M=sp.diags(mass), sigma=-EIG_SHIFT)
        order = np.argsort(evals)
        evals, evecs = evals[order], evecs[:, order]
    return np.clip(evals - EIG_SHIFT, 0.0, None), evecs


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """``(V, 3)`` unit normals: the mean of the unit normals of a vertex's triangles (DiffusionNet's). A vertex
    in no triangle, or whose normals cancel, gets +z: it has no neighbours, so no gradient reads its frame."""
    tri = vertices[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-30)
    out = np.zeros_like(vertices)
    for i in range(3):
        np.add.at(out, faces[:, i], n)
    length = np.linalg.norm(out, axis=-1, keepdims=True)
    bad = length[:, 0] < 1e-12
    out[bad] = (0.0, 0.0, 1.0)
    length[bad] = 1.0
    return out / length


def tangent_frames(normals: np.ndarray) -> np.ndarray:
    """``(V, 3, 3)`` frames ``(tangent X, tangent Y, normal)``: X = the x axis (the y axis where the normal is
    within ~25 degrees of x) projected on the tangent plane, Y = normal x X (DiffusionNet's choice; the
    gradient features do not depend on it)."""
    ex = np.broadcast_to(np.array([1.0, 0.0, 0.0]), normals.shape)
    ey = np.broadcast_to(np.array([0.0, 1.0, 0.0]), normals.shape)
    cand = np.where((np.abs(normals @ np.array([1.0, 0.0, 0.0])) < 0.9)[:, None], ex, ey)
    bx = cand - normals * np.sum(cand * normals, axis=-1, keepdims=True)
    bx = bx / np.linalg.norm(bx, axis=-1, keepdims=True)
    by = np.cross(normals, bx)
    return np.stack([bx, by, normals], axis=1)


def mesh_edges(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """``(2, E)`` directed edges of the triangles (both directions, each once, sorted)."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.concatenate([e, e[:, ::-1]])
    e = e[e[:, 0] != e[:, 1]]
    code = np.unique(e[:, 0] * num_vertices + e[:, 1])
    return np.stack([code // num_vertices, code % num_vertices])


def gradient_operators(
    vertices: np.ndarray, faces: np.ndarray, frames: np.ndarray
) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """``(grad_x, grad_y)``, each ``(V, V)``: at vertex ``i``, the gradient ``g`` in its tangent frame that
    best fits ``e_ij . g = f_j - f_i`` over its mesh neighbours ``j`` (``e_ij`` the edge projected on the
    tangent plane), i.e. ``g = (A^T A + r I)^-1 A^T (f_N - f_i)``; vectorised DiffusionNet ``build_grad``."""
    n = vertices.shape[0]
    src, dst = mesh_edges(faces, n)
    d = vertices[dst] - vertices[src]
    e = np.stack([np.sum(d * frames[src, 0], -1), np.sum(d * frames[src, 1], -1)], axis=-1)  # (E, 2)
    ata = np.zeros((n, 2, 2))
    np.add.at(ata, src, e[:, :, None] * e[:, None, :])
    count = np.bincount(src, minlength=n).astype(np.float64)
    reg = GRAD_REG * (ata[:, 0, 0] + ata[:, 1, 1]) / np.maximum(count, 1.0)
    ata[:, 0, 0] += reg + (count == 0)  # a vertex without neighbours: identity, no coefficients
    ata[:, 1, 1] += reg + (count == 0)
    coef = np.einsum("eij,ej->ei", np.linalg.inv(ata)[src], e)  # (E, 2): weight of f_j - f_i
    mats = []
    for c in range(2):
        w = coef[:, c]
        diag = -np.bincount(src, weights=w, minlength=n)
        rows = np.concatenate([src, np.arange(n)])
        cols = np.concatenate([dst, np.arange(n)])
        mats.append(sp.csr_matrix((np.concatenate([w, diag]), (rows, cols)), shape=(n, n)))
    return mats[0], mats[1]


def _sparse(m: sp.spmatrix) -> torch.Tensor:
    coo = sp.coo_matrix(m)
    idx = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
    values = torch.from_numpy(coo.data.astype(np.float32))
    return torch.sparse_coo_tensor(idx, values, coo.shape, check_invariants=True).coalesce()


def compute_operators(vertices: np.ndarray, faces: np.ndarray, k: int) -> MeshOperators:
    """The operators of a mesh (:class:`MeshOperators`), computed on it normalised to area 1."""
    t0 = time.perf_counter()
    v, f = _check_mesh(vertices, faces)
    centroid, scale = normalization(v, f)
    vn = (v - centroid) / scale
    lap, mass = laplacian_and_mass(vn, f)
    evals, evecs = eigenbasis(lap, mass, k)
    frames = tangent_frames(vertex_normals(vn, f))
    gx, gy = gradient_operators(vn, f, frames)
    return MeshOperators(
        key=mesh_key(vertices, faces),
        k=int(k),
        mass=torch.from_numpy(mass.astype(np.float32)),
        laplacian=_sparse(lap),
        evals=torch.from_numpy(evals.astype(np.float32)),
        evecs=torch.from_numpy(np.ascontiguousarray(evecs, dtype=np.float32)),
        frames=torch.from_numpy(frames.astype(np.float32)),
        grad_x=_sparse(gx),
        grad_y=_sparse(gy),
        centroid=torch.from_numpy(centroid.astype(np.float32)),
        scale=scale,
        seconds=time.perf_counter() - t0,
    )


_CACHE: dict[tuple[str, int, str], MeshOperators] = {}
_LOCK = threading.Lock()


def operators_for(
    vertices: np.ndarray, faces: np.ndarray, k: int, device: torch.device | str = "cpu"
) -> MeshOperators:
    """:func:`compute_operators`, computed once per mesh (keyed by :func:`mesh_key` and ``k``) and kept in
    memory for the process, one copy per device."""
    key = mesh_key(vertices, faces)
    dev = str(torch.device(device))
    with _LOCK:
        hit = _CACHE.get((key, k, dev))
        if hit is not None:
            return hit
        cpu = _CACHE.get((key, k, "cpu"))
    if cpu is None:
        cpu = compute_operators(vertices, faces, k)
    ops = cpu if dev == "cpu" else cpu.to(dev)
    with _LOCK:
        _CACHE[(key, k, "cpu")] = cpu
        _CACHE[(key, k, dev)] = ops
    return ops


# ---------------------------------------------------------------------------------------------- layers
def to_basis(x: torch.Tensor, ops: MeshOperators) -> torch.Tensor:
    """Vertex-major features ``(V, N, C)`` -> spectral coefficients ``(K, N, C)`` = ``Phi^T M x`` (one GEMM)."""
    v, n, c = x.shape
    return torch.mm(ops.evecs.t(), (x * ops.mass[:, None, None]).reshape(v, n * c)).reshape(-1, n, c)


def from_basis(coefs: torch.Tensor, ops: MeshOperators) -> torch.Tensor:
    """Spectral coefficients ``(K, N, C)`` -> vertex-major features ``(V, N, C)`` = ``Phi c``."""
    k, n, c = coefs.shape
    return torch.mm(ops.evecs, coefs.reshape(k, n * c)).reshape(-1, n, c)


def sparse_apply(m: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A sparse ``(V, V)`` operator on vertex-major features ``(V, N, C)`` (every mesh / frame and channel in
    one sparse product)."""
    v, n, c = x.shape
    return torch.sparse.mm(m, x.reshape(v, n * c)).reshape(-1, n, c)


class LearnedTimeDiffusion(nn.Module):
    """Diffusion with a learned time per channel, in the spectral basis:
    ``x -> Phi (exp(-lambda t_c) * Phi^T M x)``; times start at 0 (the identity up to the basis' truncation)
    and are kept >= :data:`MIN_TIME`."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.time = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, ops: MeshOperators) -> torch.Tensor:
        """Vertex-major ``x`` ``(V, N, C)`` -> diffused ``(V, N, C)``."""
        if self.training:  # DiffusionNet's projection of the times back onto t >= MIN_TIME
            with torch.no_grad():
                self.time.clamp_(min=MIN_TIME)
        t = self.time.clamp(min=MIN_TIME)
        coefs = torch.exp(-ops.evals[:, None] * t[None, :])  # (K, C)
        return from_basis(coefs[:, None, :] * to_basis(x, ops), ops)


class SpatialGradientFeatures(nn.Module):
    """Per-vertex features from the gradients ``g = (g_x, g_y)`` (each ``(V, N, C)``) of the diffused features:
    ``tanh(Re(conj(g) * (A g)))`` with ``A`` complex-linear over channels (``with_rotations``, learned
    real and imaginary parts; independent of the tangent frame's rotation) or real-linear."""

    def __init__(self, channels: int, with_rotations: bool = True) -> None:
        super().__init__()
        self.with_rotations = with_rotations
        self.a_re = nn.Linear(channels, channels, bias=False)
        self.a_im = nn.Linear(channels, channels, bias=False) if with_rotations else None

    def forward(self, gx: torch.Tensor, gy: torch.Tensor) -> torch.Tensor:
        if self.a_im is not None:
            bx = self.a_re(gx) - self.a_im(gy)
            by = self.a_re(gy) + self.a_im(gx)
        else:
            bx, by = self.a_re(gx), self.a_re(gy)
        return torch.tanh(gx * bx + gy * by)


class MiniMLP(nn.Sequential):
    """Linear layers of ``sizes`` with ReLU between them (not after the last) and dropout before each
    layer but the first (DiffusionNet's MiniMLP)."""

    def __init__(self, sizes: list[int], dropout: float = 0.0) -> None:
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            if dropout > 0 and i > 0:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i + 2 < len(sizes):
                layers.append(nn.ReLU())
        super().__init__(*layers)


class DiffusionNetBlock(nn.Module):
    """``x -> x + MLP([x, diffuse(x), gradient features(diffuse(x))])``."""

    def __init__(
        self,
        width: int,
        hidden: list[int],
        dropout: float = 0.0,
        gradient_features: bool = True,
        gradient_rotations: bool = True,
    ) -> None:
        super().__init__()
        self.diffusion = LearnedTimeDiffusion(width)
        self.gradient = SpatialGradientFeatures(width, gradient_rotations) if gradient_features else None
        mlp_in = (3 if gradient_features else 2) * width
        self.mlp = MiniMLP([mlp_in, *hidden, width], dropout)

    def forward(self, x: torch.Tensor, ops: MeshOperators) -> torch.Tensor:
        """Vertex-major ``x`` ``(V, N, C)`` -> ``(V, N, C)``."""
        diffused = self.diffusion(x, ops)
        parts = [x, diffused]
        if self.gradient is not None:
            gx, gy = sparse_apply(ops.grad_x, diffused), sparse_apply(ops.grad_y, diffused)
            parts.append(self.gradient(gx, gy))
        return x + self.mlp(torch.cat(parts, dim=-1))


class DiffusionNet(nn.Module):
    """``first`` linear lift -> ``blocks`` :class:`DiffusionNetBlock` of ``width`` -> ``last`` linear map,
    outputs at the vertices.

    Args:
        c_in, c_out: input and output channels. width: the blocks' width. blocks: how many.
        mlp_layers: hidden layers of each block's MLP (each ``width`` wide; DiffusionNet's default 2).
        dropout: dropout inside the MLPs (0 = none).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        width: int,
        blocks: int,
        mlp_layers: int = 2,
        dropout: float = 0.0,
        gradient_features: bool = True,
        gradient_rotations: bool = True,
    ) -> None:
        super().__init__()
        self.first = nn.Linear(c_in, width)
        self.blocks = nn.ModuleList(
            [
                DiffusionNetBlock(width, [width] * mlp_layers, dropout, gradient_features, gradient_rotations)
                for _ in range(blocks)
            ]
        )
        self.last = nn.Linear(width, c_out)

    def run_blocks(self, h: torch.Tensor, ops: MeshOperators) -> torch.Tensor:
        """The blocks and the output map on lifted vertex-major features ``h`` ``(V, N, width)`` ->
        ``(V, N, c_out)`` (in float32, outside autocast: the spectral and sparse products need it)."""
        device_type = h.device.type if h.device.type in ("cuda", "cpu") else "cpu"
        with torch.autocast(device_type, enabled=False):
            h = h.float()
            for block in self.blocks:
                h = block(h, ops)
            return self.last(h)

    def forward(self, x: torch.Tensor, ops: MeshOperators) -> torch.Tensor:
        """``x`` ``(N, V, c_in)`` (``N`` meshes or frames sharing ``ops``) -> ``(N, V, c_out)``."""
        if x.dim() != 3 or x.shape[1] != ops.num_vertices:
            raise TopologyError(
                f"DiffusionNet features have shape {tuple(x.shape)}: expected (N, {ops.num_vertices}, C) for "
                "the operators' mesh"
            )
        return self.run_blocks(self.first(x).transpose(0, 1), ops).transpose(0, 1)
