"""DiffusionNet's geometry operators against facts that can be checked by hand (mass = surface area, the
Laplacian kills constants, eigenvalue 0 first with a constant eigenvector, the gradient of a linear function
recovered in the tangent plane), the learned diffusion's limits (t = 0: the identity in a full basis; large
t: the mass-weighted mean), the operator cache, and the network's vertex-permutation equivariance."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.spatial
import torch

from memorytalker.errors import TopologyError
from memorytalker.models import diffusionnet as dn


def plane(n: int = 9, seed: int = 0, tilt: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A jittered ``n x n`` grid triangulated by Delaunay, in the plane z = 0 (or a tilted plane)."""
    rng = np.random.default_rng(seed)
    g = np.stack(np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, n)), -1).reshape(-1, 2)
    inner = (g > 0).all(1) & (g < 1).all(1)
    g[inner] += rng.uniform(-0.3, 0.3, size=(int(inner.sum()), 2)) / n
    faces = scipy.spatial.Delaunay(g).simplices.astype(np.int64)
    v = np.c_[g, np.zeros(len(g))]
    if tilt:  # rotate the plane about the x axis by 40 degrees and lift it
        a = np.deg2rad(40.0)
        rot = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
        v = v @ rot.T + [0.2, -0.1, 0.5]
    return v, faces


def bumpy_sphere(subdivisions: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """An icosphere with random radial bumps (no symmetric, degenerate eigenspaces)."""
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=subdivisions)
    rng = np.random.default_rng(seed)
    v = m.vertices * (1.0 + 0.15 * rng.uniform(size=(len(m.vertices), 1)))
    return v * [1.0, 1.3, 0.8], np.asarray(m.faces, dtype=np.int64)


def test_mass_sums_to_the_surface_area_and_the_laplacian_kills_constants():
    import trimesh

    v, f = bumpy_sphere()
    lap, mass = dn.laplacian_and_mass(v, f)
    area = trimesh.Trimesh(v, f, process=False).area
    assert mass.sum() == pytest.approx(area, rel=1e-4)
    assert np.abs(lap @ np.ones(len(v))).max() < 1e-10
    assert np.allclose((lap - lap.T).toarray(), 0.0)  # symmetric
    x = np.random.default_rng(1).normal(size=len(v))
    assert x @ (lap @ x) > 0  # positive semi-definite: the Dirichlet energy of a non-constant function


def test_eigenbasis_starts_at_zero_with_a_constant_and_is_mass_orthonormal():
    v, f = bumpy_sphere()
    ops = dn.compute_operators(v, f, 20)
    evals, evecs, mass = ops.evals.double(), ops.evecs.double(), ops.mass.double()
    assert evals.shape == (20,) and evecs.shape == (len(v), 20)
    assert abs(float(evals[0])) < 1e-6 and bool((evals[1:] > 1e-3).all())
    assert bool((evals[1:] >= evals[:-1]).all())
    first = evecs[:, 0] * torch.sign(evecs[0, 0])
    assert torch.allclose(first, first.mean().expand_as(first), rtol=1e-4)  # the constant function
    gram = evecs.t() @ (mass[:, None] * evecs)
    assert torch.allclose(gram, torch.eye(20, dtype=gram.dtype), atol=1e-4)
    # the eigenpairs solve L phi = lambda M phi
    lap = ops.laplacian.to_dense().double()
    assert torch.allclose(lap @ evecs, mass[:, None] * evecs * evals, atol=1e-3)
    # normalised: area 1, centroid at the origin
    assert float(mass.sum()) == pytest.approx(1.0, rel=1e-5)
    normalised = ops.normalize(torch.from_numpy(v).float())
    assert torch.allclose((normalised * ops.mass[:, None]).sum(0), torch.zeros(3), atol=2e-3)


@pytest.mark.parametrize("tilt", [False, True])
def test_gradient_of_a_linear_function_is_recovered_in_the_tangent_plane(tilt):
    v, f = plane(tilt=tilt)
    frames = dn.tangent_frames(dn.vertex_normals(v, f))
    gx, gy = dn.gradient_operators(v, f, frames)
    direction = np.array([2.0, -3.0, 0.5])
    normal = frames[0, 2]
    along = direction - normal * (direction @ normal)  # the gradient of x . direction on the plane
    values = v @ direction + 7.0
    grad = (gx @ values)[:, None] * frames[:, 0] + (gy @ values)[:, None] * frames[:, 1]
    assert np.allclose(grad, along[None], rtol=0, atol=1e-3 * np.linalg.norm(along))
    assert np.allclose(np.abs(frames[:, 2] @ normal), 1.0)  # every vertex normal is the plane's


def test_diffusion_at_time_zero_is_the_identity_and_long_times_the_mass_weighted_mean():
    v, f = plane(n=5)
    ops = dn.compute_operators(v, f, len(v))  # the full basis: the spectral transform is invertible
    x = torch.randn(len(v), 3, 4)  # vertex-major (V, N, C)
    diffusion = dn.LearnedTimeDiffusion(4).eval()
    assert torch.allclose(diffusion(x, ops), x, atol=1e-4)
    small = dn.compute_operators(v, f, 8)
    with torch.no_grad():
        diffusion.time.fill_(1e4)
    mean = (x * small.mass[:, None, None]).sum(0) / small.mass.sum()
    assert torch.allclose(diffusion(x, small), mean.expand_as(x), atol=1e-4)
    with torch.no_grad():
        diffusion.time.fill_(1e-3)  # a short time smooths: closer to the mean, not there
    out = diffusion(x, small)
    assert (out - mean).square().sum() < (x - mean).square().sum()


def test_operators_are_cached_per_mesh():
    v, f = plane(n=6)
    a = dn.operators_for(v, f, 8)
    assert dn.operators_for(v.copy(), f.copy(), 8) is a
    b = dn.operators_for(v + [0.0, 0.0, 0.1 * 1e-3], f, 8)
    assert b is not a and b.key != a.key
    assert dn.operators_for(v, f, 6) is not a  # another basis size


def test_a_mesh_without_triangles_or_area_is_refused():
    v, f = plane(n=4)
    with pytest.raises(TopologyError, match="no faces"):
        dn.compute_operators(v, np.zeros((0, 3), dtype=np.int64), 4)
    with pytest.raises(TopologyError, match="zero surface area"):
        dn.compute_operators(np.zeros_like(v), f, 4)


def permuted(v: np.ndarray, f: np.ndarray, perm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The mesh with vertex ``perm[i]`` as vertex ``i`` (faces renumbered, and their order shuffled)."""
    inverse = np.argsort(perm)
    faces = inverse[f][np.random.default_rng(5).permutation(len(f))]
    return v[perm], faces


def test_diffusionnet_is_vertex_permutation_equivariant():
    v, f = bumpy_sphere()
    perm = np.random.default_rng(3).permutation(len(v))
    pv, pf = permuted(v, f, perm)
    torch.manual_seed(0)
    net = dn.DiffusionNet(3, 5, 8, 2).eval()
    with torch.no_grad():
        for block in net.blocks:
            block.diffusion.time.uniform_(1e-3, 1e-1)
        x = torch.from_numpy(v).float()[None]
        out = net(x, dn.compute_operators(v, f, 16))
        out_p = net(x[:, perm], dn.compute_operators(pv, pf, 16))
    assert torch.allclose(out_p, out[:, perm], atol=1e-4 * float(out.abs().max()))
