"""The project's own procedural head mesh (metres; +y up, +z toward the viewer, like FLAME).

Construction: a swept surface. A sagittal front profile and back profile (polylines from the crown to
the neck) are sampled at rows spaced by arc length (finer around the mouth); each row is a super-ellipse
through the front point, the back point and the half-width ``A(s)``. Facial features are smooth bumps
and dents along the surface normal in frontal coordinates (nose, brow ridge, eye sockets, cheeks, lips,
chin, ears). The mouth is a slit: along the mouth row the vertices between the corners are duplicated,
the upper copies belong to the upper lip's triangles and the lower copies to the lower lip's, so the
lips part when the jaw opens (the slit is the mesh's mouth boundary loop, as in FLAME). Two eyeballs are
separate closed spheres sitting in the sockets. The neck is open at the bottom.

:func:`make_head` returns ``(vertices (V, 3) float32, faces (F, 3) int64, regions)``; ``V`` is about
3,000 with the defaults. :func:`head_topology` wraps it in a :class:`~memorytalker.topology.FaceTopology`.
Regions: ``lips``, ``upper_face`` (forehead + eyes), ``forehead``, ``eye_region``, ``eyelids``,
``brows``, ``nose``, ``jaw``, ``face``, ``left_eyeball``, ``right_eyeball`` (the FLAME names where
FLAME has one).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from memorytalker.errors import TopologyError

# Sagittal landmarks (y, z) from the crown down the face to the neck, and down the back of the head.
_FRONT = np.array(
    [
        (0.128, -0.030),
        (0.118, 0.005),
        (0.100, 0.033),
        (0.075, 0.050),
        (0.045, 0.058),
        (0.025, 0.055),
        (0.000, 0.057),
        (-0.025, 0.058),
        (-0.045, 0.058),
        (-0.065, 0.055),
        (-0.080, 0.050),
        (-0.093, 0.038),
        (-0.100, 0.018),
        (-0.106, 0.000),
        (-0.120, -0.010),
        (-0.175, -0.012),
    ]
)
_BACK = np.array(
    [
        (0.128, -0.040),
        (0.120, -0.080),
        (0.095, -0.115),
        (0.055, -0.132),
        (0.015, -0.130),
        (-0.020, -0.118),
        (-0.050, -0.098),
        (-0.070, -0.086),
        (-0.085, -0.080),
        (-0.095, -0.078),
        (-0.105, -0.078),
        (-0.115, -0.078),
        (-0.125, -0.078),
        (-0.135, -0.079),
        (-0.150, -0.080),
        (-0.175, -0.080),
    ]
)
# half-width of each row (x), at the same landmarks
_WIDTH = np.array(
    [0.020, 0.045, 0.062, 0.071, 0.075, 0.077, 0.077, 0.073, 0.067, 0.060, 0.054, 0.050, 0.048, 0.047,
     0.047, 0.047]
)  # fmt: skip


@dataclass(frozen=True)
class HeadShape:
    """Shape parameters of the procedural head (multiplicative factors around 1, offsets in metres)."""

    width: float = 1.0
    height: float = 1.0
    depth: float = 1.0
    jaw_width: float = 1.0
    nose_length: float = 1.0
    nose_width: float = 1.0
    lip_thickness: float = 1.0
    mouth_width: float = 1.0
    chin: float = 1.0
    brow: float = 1.0
    cheeks: float = 1.0
    eye_spacing: float = 1.0

    @classmethod
    def random(cls, rng: np.random.Generator, spread: float = 1.0) -> HeadShape:
        """A plausible random face (each factor within about +-10 %, nose and lips +-20 %)."""

        draws = rng.standard_normal(12) * spread
        sd = np.array([0.05, 0.04, 0.04, 0.07, 0.12, 0.10, 0.15, 0.07, 0.20, 0.2, 0.25, 0.04])
        vals = np.clip(1.0 + draws * sd, 0.6, 1.5)
        return cls(*[float(v) for v in vals])


MOUTH_Y = -0.045
EYE_Y = 0.022
EYE_X = 0.032
EYE_RADIUS = 0.0115


def _resample_rows(spacing_fine: float, spacing_coarse: float, mouth_y: float) -> np.ndarray:
    """Row parameters s in [0, 1] along the front profile, fine on the face, finest at the mouth."""
    seg = np.diff(_FRONT, axis=0)
    cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(seg, axis=1))])
    total = cum[-1]
    ys = []
    s = 0.0
    while s < total:
        y = np.interp(s, cum, _FRONT[:, 0])
        if 0.075 > y > -0.105:
            step = spacing_fine
            if abs(y - mouth_y) < 0.016:
                step = spacing_fine * 0.6
        else:
            step = spacing_coarse
        ys.append(s)
        s += step
    ys.append(total)
    arr = np.array(ys) / total
    # snap the row nearest the mouth exactly onto the mouth height
    y_rows = np.interp(arr * total, cum, _FRONT[:, 0])
    k = int(np.argmin(np.abs(y_rows - mouth_y)))
    # find s with y == mouth_y on the monotone face segment
    fine = np.linspace(0, total, 20001)
    yf = np.interp(fine, cum, _FRONT[:, 0])
    arr[k] = fine[int(np.argmin(np.abs(yf - mouth_y)))] / total
    arr = np.unique(arr)
    y_rows = np.interp(arr * total, cum, _FRONT[:, 0])
    return arr, int(np.argmin(np.abs(y_rows - mouth_y)))


def _columns(n_front: int, n_back: int) -> np.ndarray:
    """Azimuths u in [-pi, pi): dense over the face (|u| < 1.1), coarse behind."""
    front = np.linspace(-1.1, 1.1, n_front, endpoint=False)
    back = np.linspace(1.1, 2 * np.pi - 1.1, n_back, endpoint=False)
    u = np.concatenate([front, back])
    return np.where(u > np.pi, u - 2 * np.pi, u)


def _bump(x, y, cx, cy, sx, sy, p: float = 2.0):
    return np.exp(-(np.abs((x - cx) / sx) ** p) - (np.abs((y - cy) / sy) ** 2))


def _uv_sphere(center: np.ndarray, radius: float, n_lat: int = 8, n_lon: int = 12):
    verts = [center + np.array([0.0, radius, 0.0])]
    for i in range(1, n_lat):
        th = np.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * np.pi * j / n_lon
            verts.append(
                center + radius * np.array([np.sin(th) * np.sin(ph), np.cos(th), np.sin(th) * np.cos(ph)])
            )
    verts.append(center - np.array([0.0, radius, 0.0]))
    faces = []
    for j in range(n_lon):
        faces.append((0, 1 + j, 1 + (j + 1) % n_lon))
    for i in range(n_lat - 2):
        for j in range(n_lon):
            a = 1 + i * n_lon + j
            b = 1 + i * n_lon + (j + 1) % n_lon
            faces += [(a, a + n_lon, b), (b, a + n_lon, b + n_lon)]
    last = len(verts) - 1
    base = 1 + (n_lat - 2) * n_lon
    for j in range(n_lon):
        faces.append((last, base + (j + 1) % n_lon, base + j))
    return np.array(verts), np.array(faces, dtype=np.int64)


def _feature_displacement(
    x: np.ndarray, y: np.ndarray, cu: np.ndarray, sh: HeadShape, mouth_y: float
) -> np.ndarray:
    """Frontal feature displacement (nose, eyes, brows, cheeks, lips, chin) of the surface grid, along its
    normal, fading toward the sides (``cu`` = cosine of the column angle)."""
    wf = np.clip(cu, 0, 1) ** 1.5
    mw = 0.024 * sh.mouth_width  # mouth half-width
    lip = sh.lip_thickness
    d = np.zeros_like(x)
    nose_tip_y = -0.004 - 0.006 * (sh.nose_length - 1)
    ridge = np.clip((0.032 - y) / (0.032 - nose_tip_y), 0, 1)
    nose_w = 0.0065 * sh.nose_width * (1 + 0.6 * ridge)
    d += 0.022 * sh.nose_length * ridge**1.3 * np.exp(-((x / nose_w) ** 2)) * (y >= nose_tip_y)
    d += (
        0.022
        * sh.nose_length
        * np.exp(-((x / nose_w) ** 2) - ((y - nose_tip_y) / 0.0055) ** 2)
        * (y < nose_tip_y)
    )
    d += 0.006 * _bump(np.abs(x), y, 0.012 * sh.nose_width, -0.011, 0.006, 0.005)  # nostril wings
    d -= 0.0025 * _bump(np.abs(x), y, 0.0, -0.017, 0.005, 0.0025)  # under the nose
    ex = EYE_X * sh.eye_spacing
    d -= 0.010 * _bump(np.abs(x), y, ex, EYE_Y, 0.014, 0.009)  # eye sockets
    d += 0.005 * sh.brow * _bump(np.abs(x), y, ex - 0.003, EYE_Y + 0.017, 0.018, 0.006)  # brow ridge
    d += 0.006 * sh.cheeks * _bump(np.abs(x), y, 0.040, -0.012, 0.014, 0.016)  # cheeks
    lip_x = np.exp(-((np.abs(x) / (mw * 1.1)) ** 2.5))
    # upper lip: a bow (higher at the sides of the philtrum), lower lip: fuller in the middle
    bow = 0.0015 * np.exp(-(((np.abs(x) - 0.008) / 0.006) ** 2))
    d += 0.0050 * lip * lip_x * np.exp(-(((y - mouth_y - 0.0045 * lip - bow) / (0.0042 * lip)) ** 2))
    d += 0.0058 * lip * lip_x * np.exp(-(((y - mouth_y + 0.0058 * lip) / (0.0055 * lip)) ** 2))
    d -= 0.0030 * _bump(np.abs(x), y, mw * 1.05, mouth_y, 0.004, 0.005)  # mouth corners
    d -= 0.0012 * lip_x * np.exp(-(((y - mouth_y + 0.016 * lip) / 0.004) ** 2))  # labiomental fold
    d -= 0.0010 * _bump(x, y, 0.0, mouth_y + 0.013, 0.003, 0.004)  # philtrum
    d += 0.0045 * sh.chin * _bump(x, y, 0.0, -0.077, 0.013, 0.010)  # chin
    d *= wf
    return d


def _grid_mesh(
    grid: np.ndarray, rows: np.ndarray, cols: np.ndarray, cum: np.ndarray, mouth_row: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``(nr, nc, 3)`` surface grid as a closed mesh: the mouth slit (the lower lip's copy of the mouth
    row), the crown cap, outward-facing triangles. Returns ``(vertices, faces)``."""
    nr, nc = grid.shape[:2]
    verts = [grid.reshape(-1, 3)]
    idx = np.arange(nr * nc).reshape(nr, nc)
    # mouth slit: duplicate the mouth-row vertices strictly between the corners
    # (decided on the reference shape so that every HeadShape gives the same topology)
    xm = np.interp(rows[mouth_row], cum, _WIDTH) * np.abs(np.sin(cols)) ** 0.9
    inside = (xm < 0.024 * 1.02) & (np.cos(cols) > 0)
    slit_cols = np.nonzero(inside)[0]
    lower_idx = idx.copy()
    dup = np.arange(nr * nc, nr * nc + len(slit_cols))
    lower_idx[mouth_row, slit_cols] = dup
    verts.append(grid[mouth_row, slit_cols])
    faces = []
    for r in range(nr - 1):
        top = idx[r]
        bot = idx[r + 1]
        if r == mouth_row:
            top = lower_idx[r]  # the lower lip's triangles use the duplicated slit vertices
        for c in range(nc):
            c2 = (c + 1) % nc
            a, b, cc, dd = top[c], top[c2], bot[c], bot[c2]
            faces.append((a, cc, b))
            faces.append((b, cc, dd))
    # crown cap
    v_all = np.concatenate(verts)
    crown = len(v_all)
    top_row = grid[0]
    apex = np.array([0.0, top_row[:, 1].max() + 0.004, top_row[:, 2].mean()])
    v_all = np.vstack([v_all, apex[None]])
    for c in range(nc):
        faces.append((crown, idx[0, c], idx[0, (c + 1) % nc]))
    faces = np.array(faces, dtype=np.int64)
    # fix orientation: outward normals (mean of (centroid - head centre) . normal > 0)
    tri = v_all[faces]
    nrm_f = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centre = np.array([0.0, 0.0, -0.035])
    if np.sum(np.einsum("ij,ij->i", nrm_f, tri.mean(1) - centre)) < 0:
        faces = faces[:, [0, 2, 1]]
    return v_all, faces


def _eyeballs(
    v_all: np.ndarray, ex: float, sh: HeadShape
) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[str, np.ndarray]]:
    """Spheres in the eye sockets, protruding through the face surface of the head ``v_all``: their
    ``(vertices, faces)`` (indices after the head's) and their regions."""
    n_head = len(v_all)
    regions: dict[str, np.ndarray] = {}
    eye_parts = []
    for side, name in ((1, "left_eyeball"), (-1, "right_eyeball")):
        # face surface depth at the eye centre
        sel = np.argmin(
            (v_all[:n_head, 0] - side * ex) ** 2
            + (v_all[:n_head, 1] - EYE_Y) ** 2
            + 1e3 * (v_all[:n_head, 2] < 0)
        )
        zc_eye = v_all[sel, 2] - EYE_RADIUS * 0.55
        ev, ef = _uv_sphere(np.array([side * ex, EYE_Y * sh.height, zc_eye]), EYE_RADIUS)
        start = n_head + sum(len(p[0]) for p in eye_parts)
        eye_parts.append((ev, ef + start))
        regions[name] = np.arange(start, start + len(ev))
    return eye_parts, regions


def make_head(
    shape: HeadShape | None = None,
    spacing: float = 0.0046,
    n_front: int = 36,
    n_back: int = 14,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Build the head: ``(vertices (V, 3) float32 metres, faces (F, 3) int64, {region: indices})``."""
    sh = shape or HeadShape()
    if spacing <= 0 or n_front < 16 or n_back < 6:
        raise TopologyError("head resolution too small (spacing > 0, n_front >= 16, n_back >= 6)")
    mouth_y = MOUTH_Y
    rows, mouth_row = _resample_rows(spacing, spacing * 2.4, mouth_y)
    cols = _columns(n_front, n_back)
    seg = np.linalg.norm(np.diff(_FRONT, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)]) / seg.sum()
    yf = np.interp(rows, cum, _FRONT[:, 0])
    zf = np.interp(rows, cum, _FRONT[:, 1])
    yb = np.interp(rows, cum, _BACK[:, 0])
    zb = np.interp(rows, cum, _BACK[:, 1])
    half_w = np.interp(rows, cum, _WIDTH)
    # shape factors: overall scale, jaw narrowing below the mouth
    jaw_t = np.clip((mouth_y + 0.01 - yf) / 0.06, 0, 1)
    half_w = half_w * sh.width * (1 + (sh.jaw_width - 1) * jaw_t)
    yc, zc = (yf + yb) / 2, (zf + zb) / 2
    u = cols[None, :]
    cu, su = np.cos(u), np.sin(u)
    e_front, e_back = 0.75, 0.9  # super-ellipse exponents: flatter face, rounder back
    cf = np.sign(cu) * np.abs(cu) ** e_front
    cb = np.sign(cu) * np.abs(cu) ** e_back
    sx = np.sign(su) * np.abs(su) ** 0.9
    front = cu >= 0
    py = np.where(front, yc[:, None] + (yf - yc)[:, None] * cf, yc[:, None] + (yb - yc)[:, None] * (-cb))
    pz = np.where(front, zc[:, None] + (zf - zc)[:, None] * cf, zc[:, None] + (zb - zc)[:, None] * (-cb))
    px = half_w[:, None] * sx
    d = _feature_displacement(px, py, cu, sh, mouth_y)
    # ears on the sides (lateral displacement)
    ear = 0.012 * np.exp(-(((pz + 0.030) / 0.012) ** 2) - (((py - 0.012) / 0.02) ** 2)) * (np.abs(su) > 0.6)
    # surface normal approximation: radial from the row centre in the (x, z) plane, plus z on the face
    nx, nz = px / np.maximum(half_w[:, None], 1e-6), (pz - zc[:, None])
    nz = nz / np.maximum(np.abs(zf - zc)[:, None], 1e-6)
    nrm = np.sqrt(nx**2 + nz**2) + 1e-9
    nx, nz = nx / nrm, nz / nrm
    px = px + d * nx + ear * np.sign(px)
    pz = pz + d * nz
    py = (py - 0.0) * sh.height
    pz = pz * sh.depth
    grid = np.stack([px, py, pz], axis=-1)  # (nr, nc, 3)
    v_all, faces = _grid_mesh(grid, rows, cols, cum, mouth_row)
    n_head = len(v_all)
    eye_parts, regions = _eyeballs(v_all, EYE_X * sh.eye_spacing, sh)
    v_all = np.vstack([v_all] + [p[0] for p in eye_parts]).astype(np.float32)
    faces = np.vstack([faces] + [p[1] for p in eye_parts])
    if shape is not None and shape != HeadShape():
        # regions are defined on the reference head (one topology for every speaker)
        return v_all, faces, make_head(None, spacing, n_front, n_back)[2]
    regions.update(_head_regions(v_all[:n_head], n_head, mouth_y, 0.024, EYE_X, sh))
    regions["upper_face"] = np.union1d(
        regions["upper_face"], np.concatenate([regions["left_eyeball"], regions["right_eyeball"]])
    )
    regions["eye_region"] = np.union1d(
        regions["eye_region"], np.concatenate([regions["left_eyeball"], regions["right_eyeball"]])
    )
    return v_all, faces, regions


def _head_regions(
    v: np.ndarray, n: int, mouth_y: float, mw: float, ex: float, sh: HeadShape
) -> dict[str, np.ndarray]:
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    facing = z > 0.0
    eye_y = EYE_Y * sh.height
    out = {
        "lips": (np.abs(x) < mw * 1.25) & (y > mouth_y - 0.0135) & (y < mouth_y + 0.0125) & facing,
        "forehead": (y > eye_y + 0.014) & (y < 0.095) & (np.abs(x) < 0.065) & (z > -0.01),
        "eye_region": (y > eye_y - 0.014) & (y <= eye_y + 0.014) & (np.abs(x) < 0.058) & facing,
        "eyelids": (np.abs(np.abs(x) - ex) < EYE_RADIUS * 1.05)
        & (y > eye_y)
        & (y < eye_y + EYE_RADIUS * 1.35)
        & facing,
        "brows": (np.abs(np.abs(x) - ex) < 0.02) & (y > eye_y + 0.010) & (y < eye_y + 0.026) & facing,
        "nose": (np.abs(x) < 0.02) & (y > -0.02) & (y < eye_y + 0.006) & (z > 0.058),
        "jaw": (y < mouth_y) & (y > -0.110) & (z > -0.02) & (np.abs(x) < 0.06),
        "face": (y > -0.105) & (y < 0.095) & (np.abs(x) < 0.07) & (z > 0.0),
    }
    regions = {k: np.nonzero(m)[0] for k, m in out.items()}
    regions["upper_face"] = np.union1d(regions["forehead"], regions["eye_region"])
    for k, r in regions.items():
        if r.size == 0:  # pragma: no cover - fixed geometry
            raise TopologyError(f"procedural head: region {k!r} came out empty")
    return regions


def head_topology(shape: HeadShape | None = None, fps: float = 30.0):
    """The procedural head as a :class:`~memorytalker.topology.FaceTopology` named ``memorytalker-head``."""
    from memorytalker.topology import FaceTopology

    v, f, regions = make_head(shape)
    return FaceTopology(name="memorytalker-head", vertices=v, faces=f, fps=fps, regions=regions)
