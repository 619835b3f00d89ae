"""Build the project's face asset from a full ICT-FaceKit checkout (ICT-VGL/ICT-FaceKit, MIT).

    pip install meshoptimizer==0.2.30a0        # build-time only (compiles meshoptimizer 0.22, MIT)
    .venv/bin/python scripts/build_face_asset.py --facekit ICT-FaceKit/FaceXModel \
        --out src/memorytalker/assets/face/ictface.npz [--source-commit da5f95a]

What it writes (docs/FACE.md has the numbers of the shipped file):

* ``ictface.npz``: the neutral, 53 expression and 100 identity shapes of the ICT Face Model Light on a
  decimated vertex set, in metres: the animated region (face, head and neck) first, then the mouth
  socket, eye sockets, gums and tongue, teeth and eyeballs (scleras with a painted iris). Each kept vertex is one
  of the model's own vertices (``source_index``), so every shape keeps exact correspondence: the stored
  delta of vertex ``i`` is the source delta of vertex ``source_index[i]``, quantised to int16 with one
  scale per shape. Regions of the animated region, the 68 landmarks, per-part triangles and colours,
  per-vertex colours and the measurements below are stored with it.
* ``LICENSE-ICT-FaceKit.txt`` beside it: the MIT notice of ICT-FaceKit (copied from the checkout).

Decimation: meshoptimizer's simplifier collapses edges onto existing vertices (its output indexes the
input vertex buffer), so the kept vertices are a subset of the original ones. Its attribute metric is fed
the model's expression deltas (16 principal components of each vertex's 53 deltas, weighted up near the
mouth and eye openings), so the vertex budget goes where the face moves (lips, eyelids, brows, jaw). The
mesh borders (the seams with the mouth and eye sockets, the neck) and the 68 landmarks are locked; the
head and neck are decimated first on their own budget so the face gets the rest. ICT's irises (spheres
inside the scleras), lacrimal fluid, eye blend/occlusion meshes and eyelashes (textured UE shader helpers)
are left out.

Measured and stored (``build_info``): vertex counts, the storage error of every shape (max and RMS of
stored - source delta at the kept vertices) and the decimation error (distance of every source vertex
of the face to the decimated surface, neutral and several expressions).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from memorytalker.face import ictfacekit as ict  # noqa: E402
from memorytalker.face.model import ASSET_FORMAT, PART_ORDER  # noqa: E402
from memorytalker.topology import FaceTopology  # noqa: E402
from memorytalker.topology import lips as lipgeo  # noqa: E402

#: The MIT notice of ICT-FaceKit, as it must ship with anything derived from it.
LICENSE_NAME = "LICENSE-ICT-FaceKit.txt"


@dataclass
class Plan:
    """Vertex budgets and decimation settings (the reasons are in docs/FACE.md).

    Attributes:
        animated: vertices of the animated region (face + head + neck).
        head_neck: of which the back of the head and the neck (decimated first, on their own).
        parts: vertex budget of each extra part (its own vertices; seams with the face are kept as they are).
        components: principal components of the expression deltas fed to meshoptimizer as attributes.
        attribute_weight: weight of those attributes against position error.
        importance: extra attribute weight at the mouth and eye openings (``1 + importance * exp(-(d/r)^2)``).
        importance_radius_cm: ``r``, the radius of that weighting (source units, cm).
        iris_angle_deg: angular radius of the iris on the eyeball (from its forward axis); the sclera's
            corneal bulge starts at about 25 degrees.
        pupil_fraction: pupil radius as a fraction of the iris radius.
        cornea_lock_deg: sclera vertices within this angle of the forward axis are never decimated (the
            iris is painted on them).
        lip_blend_rings: rings of neighbours over which the lip colour fades into the skin.
        mouth_depth_m: depth behind the front of the lips (m) at which the mouth interior is darkest
            (about the depth of the molars).
        mouth_darkening: how much darker the interior gets there (0 = not at all, 1 = black).
    """

    animated: int = 5000
    head_neck: int = 500
    parts: dict[str, int] = field(
        default_factory=lambda: {
            "mouth_socket": 600,
            "eye_socket_left": 130,
            "eye_socket_right": 130,
            "gums_tongue": 900,
            "teeth": 1600,
            "sclera_left": 400,
            "sclera_right": 400,
        }
    )
    components: int = 16
    attribute_weight: float = 16.0
    importance: float = 4.0
    importance_radius_cm: float = 1.0
    iris_angle_deg: float = 20.0
    pupil_fraction: float = 0.35
    cornea_lock_deg: float = 40.0
    lip_blend_rings: int = 2
    mouth_depth_m: float = 0.03
    mouth_darkening: float = 0.85


# ---------------------------------------------------------------------------------------------- meshopt
def _meshopt():
    try:
        import meshoptimizer  # noqa: F401
        from meshoptimizer._loader import lib
    except ImportError as exc:
        raise SystemExit(
            f"building the face asset needs meshoptimizer ({exc}): pip install meshoptimizer==0.2.30a0"
        ) from None
    fn = lib.meshopt_simplifyWithAttributes
    # the wrapper (0.2.30a0) declares no argument types for this function: declare them (meshoptimizer.h)
    fp, up, sz = ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_uint), ctypes.c_size_t
    fn.argtypes = [up, up, sz, fp, sz, sz, fp, sz, fp, sz, ctypes.POINTER(ctypes.c_ubyte), sz]
    fn.argtypes += [ctypes.c_float, ctypes.c_uint, fp]
    fn.restype = sz
    return fn


LOCK_BORDER = 1  # meshopt_SimplifyLockBorder


def simplify(
    triangles: np.ndarray,
    positions: np.ndarray,
    attributes: np.ndarray,
    weights: np.ndarray,
    lock: np.ndarray,
    target_vertices: int,
    options: int = 0,
) -> np.ndarray:
    """Decimate ``triangles`` (global indices into ``positions``) until ``target_vertices`` are used.

    Returns ``(F', 3)`` int64 triangles over a subset of the input vertices (meshoptimizer never moves or
    creates a vertex). The triangle target is searched until the vertex count is within 0.1 %.
    """
    fn = _meshopt()
    idx = np.ascontiguousarray(triangles, dtype=np.uint32).reshape(-1)
    pos = np.ascontiguousarray(positions, dtype=np.float32)
    attr = np.ascontiguousarray(attributes, dtype=np.float32)
    wts = np.ascontiguousarray(weights, dtype=np.float32)
    lk = np.ascontiguousarray(lock, dtype=np.uint8)
    have = len(np.unique(idx))
    if target_vertices >= have:
        return np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    target = min(idx.size, 2 * 3 * target_vertices)
    out = np.asarray(triangles)
    for _ in range(40):
        dest = np.zeros(idx.size, dtype=np.uint32)
        err = ctypes.c_float(0.0)
        n = fn(
            dest.ctypes.data_as(ctypes.POINTER(ctypes.c_uint)),
            idx.ctypes.data_as(ctypes.POINTER(ctypes.c_uint)),
            idx.size,
            pos.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            pos.shape[0],
            12,
            attr.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            attr.shape[1] * 4,
            wts.ctypes.data_as(ctypes.POINTER(ctypes.c_float)),
            wts.size,
            lk.ctypes.data_as(ctypes.POINTER(ctypes.c_ubyte)),
            target,
            1.0,
            options,
            ctypes.byref(err),
        )
        out = dest[:n].reshape(-1, 3).astype(np.int64)
        nv = len(np.unique(out))
        if abs(nv - target_vertices) <= max(2, target_vertices // 1000):
            break
        target = int(np.clip(target + 0.9 * 6 * (target_vertices - nv), 3, idx.size)) // 3 * 3
    return out


# ---------------------------------------------------------------------------------------------- geometry
def point_to_surface(
    vertices: np.ndarray, triangles: np.ndarray, points: np.ndarray, k: int = 24
) -> np.ndarray:
    """``(n,)`` distance of each point to the triangle surface (exact point-triangle distance over the
    ``k`` triangles with the nearest centroids)."""
    from scipy.spatial import cKDTree

    v = np.asarray(vertices, dtype=np.float64)
    q = np.asarray(points, dtype=np.float64)
    _, near = cKDTree(v[triangles].mean(1)).query(q, k=k)
    best = np.full(len(q), np.inf)
    for j in range(k):
        t = triangles[near[:, j]]
        best = np.minimum(
            best, np.linalg.norm(_closest_on_triangles(q, v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]) - q, axis=1)
        )
    return best


def _closest_on_triangles(p, a, b, c):
    """Closest points on triangles ``(a, b, c)`` to ``p`` (all ``(n, 3)``), by Voronoi region."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp, cp = p - b, p - c
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    denom = va + vb + vc
    safe = np.where(denom == 0, 1.0, denom)
    res = a + ab * (vb / safe)[:, None] + ac * (vc / safe)[:, None]

    def _div(x, y):
        return x / np.where(y == 0, 1.0, y)

    m = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    res[m] = (a + ab * _div(d1, d1 - d3)[:, None])[m]
    m = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    res[m] = (a + ac * _div(d2, d2 - d6)[:, None])[m]
    m = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    res[m] = (b + (c - b) * _div(d4 - d3, (d4 - d3) + (d5 - d6))[:, None])[m]
    m = (d1 <= 0) & (d2 <= 0)
    res[m] = a[m]
    m = (d3 >= 0) & (d4 <= d3)
    res[m] = b[m]
    m = (d6 >= 0) & (d5 <= d6)
    res[m] = c[m]
    return res


def eyeball_frames(model: ict.FaceXModel) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``{"left"|"right": (centre (3,), forward axis (3,))}`` of each eyeball (source units).

    The centre is the least-squares sphere of the sclera; the forward axis points to its corneal apex
    (the mean of the sclera vertices in the top 20 % of the radius range above the sphere).
    """
    out = {}
    for side in ("left", "right"):
        pts = model.neutral[ict.part(f"sclera_{side}").vertices]
        centre, radius = sphere_fit(pts)
        d = pts - centre
        r = np.linalg.norm(d, axis=1)
        apex = d[r >= radius + 0.8 * (r.max() - radius)].mean(0)
        out[side] = (centre, apex / np.linalg.norm(apex))
    return out


def angle_from_axis(points: np.ndarray, centre: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """``(n,)`` angle in degrees between ``points - centre`` and ``axis``."""
    d = np.asarray(points, dtype=np.float64) - centre
    return np.degrees(np.arccos(np.clip((d @ axis) / np.linalg.norm(d, axis=1), -1.0, 1.0)))


def sphere_fit(points: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares sphere ``(centre (3,), radius)`` through ``(n, 3)`` points."""
    p = np.asarray(points, dtype=np.float64)
    a = np.c_[2 * p, np.ones(len(p))]
    sol, *_ = np.linalg.lstsq(a, (p**2).sum(1), rcond=None)
    centre = sol[:3]
    return centre, float(np.sqrt(sol[3] + centre @ centre))


# ---------------------------------------------------------------------------------------------- build
def load_full_model(folder: Path) -> tuple[ict.FaceXModel, np.ndarray, np.ndarray, list[str]]:
    model = ict.FaceXModel(folder)
    model.check_parts()
    missing = [n for n in model.expression_names if not (model.folder / f"{n}.obj").is_file()]
    if missing:
        raise SystemExit(
            f"{model.folder} is not a full checkout: {len(missing)} expression shape files are missing "
            f"({', '.join(missing[:6])}...); fetch the whole FaceXModel/ of ICT-VGL/ICT-FaceKit"
        )
    identities = model.identity_names
    if not identities:
        raise SystemExit(f"{model.folder} has no identity shapes (identity000.obj ...)")
    t0 = time.perf_counter()
    expr = model.deltas(model.expression_names)
    iden = model.deltas(identities)
    print(
        f"read {len(model.expression_names)} expression and {len(identities)} identity shapes "
        f"({time.perf_counter() - t0:.1f} s)"
    )
    return model, expr, iden, identities


def decimate(model: ict.FaceXModel, expr: np.ndarray, plan: Plan) -> dict[str, np.ndarray]:
    """``{part: (F, 3) triangles in source indices}`` for the animated region (``skin``) and every part."""
    pos = model.neutral.astype(np.float32)
    n = model.num_vertices
    k = plan.components
    feats = expr.transpose(1, 0, 2).reshape(n, -1)
    _, _, vt = np.linalg.svd(feats, full_matrices=False)
    extent = float(np.ptp(pos, axis=0).max())
    attrs = (feats @ vt[:k].T) / extent
    weights = np.full(k, plan.attribute_weight, dtype=np.float32)

    face, head = ict.part("face"), ict.part("head_neck")
    skin = np.concatenate([model.part_triangles("face"), model.part_triangles("head_neck")])
    openings = [loop for loop in lipgeo.boundary_loops(skin, head.v1) if pos[loop, 2].mean() > 0]
    from scipy.spatial import cKDTree

    dist = cKDTree(pos[np.concatenate(openings)]).query(pos)[0]
    imp = 1.0 + plan.importance * np.exp(-((dist / plan.importance_radius_cm) ** 2))
    skin_attrs = attrs * imp[:, None]

    landmarks = np.zeros(n, dtype=bool)
    landmarks[model.landmarks] = True
    # pass 1: the head and neck on their own budget (face locked); pass 2: the face (head locked)
    lock = np.ones(n, dtype=bool)
    lock[head.v0 : head.v1] = False
    lock |= landmarks
    tris = simplify(skin, pos, skin_attrs, weights, lock, face.v1 - face.v0 + plan.head_neck, LOCK_BORDER)
    lock = np.ones(n, dtype=bool)
    lock[face.v0 : face.v1] = False
    lock |= landmarks
    out = {"skin": simplify(tris, pos, skin_attrs, weights, lock, plan.animated, LOCK_BORDER)}
    frames = eyeball_frames(model)
    for name, budget in plan.parts.items():
        p = ict.part(name)
        tris = model.part_triangles(name)
        lock = np.ones(n, dtype=bool)
        lock[p.v0 : p.v1] = False  # seams with the face (other parts' vertices) stay as they are
        if name.startswith("sclera_"):  # the front of the eyeball carries the painted iris: keep it whole
            centre, axis = frames[name.split("_")[1]]
            lock[p.v0 : p.v1] = angle_from_axis(pos[p.v0 : p.v1], centre, axis) < plan.cornea_lock_deg
        own = np.unique(tris[(tris >= p.v0) & (tris < p.v1)]).size
        seam = np.unique(tris[(tris < p.v0) | (tris >= p.v1)]).size
        out[name] = simplify(tris, pos, attrs, weights, lock, budget + seam, 0) if budget < own else tris
    return out


def order_vertices(tris: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
    """``(source_index (N,), V)``: the animated region's vertices (ascending source index), then each part's
    own new vertices in :data:`PART_ORDER` order."""
    anim = np.unique(tris["skin"])
    order = [anim]
    seen = set(anim.tolist())
    for name in PART_ORDER:
        srcs = [s for s in tris if _part_of(s) == name]
        if not srcs:
            continue
        new = np.unique(np.concatenate([tris[s].reshape(-1) for s in srcs]))
        new = np.array([v for v in new if v not in seen], dtype=np.int64)
        seen.update(new.tolist())
        order.append(new)
    return np.concatenate(order), int(anim.size)


def _part_of(source_part: str) -> str:
    """Asset part of a source geometry (left/right halves are one part; a sclera is the eyeball)."""
    for side in ("_left", "_right"):
        if source_part.endswith(side):
            source_part = source_part[: -len(side)]
    return "eyeball" if source_part == "sclera" else source_part


def build_regions(
    model: ict.FaceXModel, expr: np.ndarray, source: np.ndarray, num_animated: int, faces: np.ndarray, verts_m
) -> dict[str, np.ndarray]:
    """Named regions of the animated region (indices into the first ``num_animated`` asset vertices)."""
    from matplotlib.path import Path as PolyPath

    src = source[:num_animated]
    p = model.neutral
    lm = model.landmarks
    names = model.expression_names
    face_part = src < ict.part("face").v1
    regions: dict[str, np.ndarray] = {
        "face": np.flatnonzero(face_part),
        "narrow_face": np.flatnonzero(src < ict.NARROW_FACE_END),
        "head_neck": np.flatnonzero(~face_part),
    }
    ps = p[src]
    # lips: face vertices inside the outer lip contour (Multi-PIE landmarks 48-59) seen from the front
    outer = lm[48:60]
    inside = PolyPath(p[outer, :2]).contains_points(ps[:, :2])
    regions["lips"] = np.flatnonzero(face_part & inside & (ps[:, 2] > p[outer, 2].min() - 2.0))
    # forehead: above the eyebrows (landmarks 17-26); eye region: around eyes and brows; nose: landmarks 27-35
    brows = lm[17:27]
    eyes = lm[36:48]
    regions["forehead"] = np.flatnonzero(face_part & (ps[:, 1] > p[brows, 1].max()) & (ps[:, 2] > 0))
    box = np.r_[p[brows], p[eyes]]
    lo, hi = box.min(0) - [1.0, 1.0, 0], box.max(0) + [1.0, 0.5, 0]  # cm: 1 to the sides and below, 0.5 above
    in_box = np.all((ps[:, :2] >= lo[:2]) & (ps[:, :2] <= hi[:2]), axis=1)
    regions["eye_region"] = np.flatnonzero(face_part & in_box & (ps[:, 2] > p[eyes, 2].min() - 2.0))
    regions["upper_face"] = np.union1d(regions["forehead"], regions["eye_region"])
    from scipy.spatial import ConvexHull

    nose_pts = p[lm[27:36], :2]
    hull = PolyPath(nose_pts[ConvexHull(nose_pts).vertices])
    regions["nose"] = np.flatnonzero(
        face_part & hull.contains_points(ps[:, :2], radius=0.3) & (ps[:, 2] > p[lm[31:36], 2].min() - 1.0)
    )

    def moved(shape_names: list[str], fraction: float) -> np.ndarray:
        mag = np.zeros(num_animated)
        for s in shape_names:
            mag = np.maximum(mag, np.linalg.norm(expr[names.index(s), src], axis=1))
        return np.flatnonzero(face_part & (mag >= fraction * mag.max()))

    regions["eyelid_left"] = moved(["eyeBlink_L"], 0.25)
    regions["eyelid_right"] = moved(["eyeBlink_R"], 0.25)
    regions["eyelids"] = np.union1d(regions["eyelid_left"], regions["eyelid_right"])
    regions["brows"] = moved(["browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R"], 0.4)
    regions["jaw"] = moved(["jawOpen"], 0.5)
    rigid = np.flatnonzero(np.isin(src, model.index_list("idx_to_rigid_verts")))
    regions["rigid"] = rigid
    # boundary loops of the animated region: where the mouth socket (the lips' inner mucosa, not the line
    # where the lips meet), the eye sockets and nothing (the neck) join it
    loops = lipgeo.boundary_loops(faces, num_animated)
    for loop in loops:
        c = ps[loop].mean(0)
        if c[2] < 0:
            regions["neck_boundary"] = np.sort(loop)
        elif abs(c[0]) < 0.5:
            regions["mouth_boundary"] = np.sort(loop)
        else:
            regions["eye_boundary_left" if c[0] > 0 else "eye_boundary_right"] = np.sort(loop)
    # inner-lip contours: the lines where the lips meet, along the mesh's edges through the Multi-PIE
    # inner-lip landmarks (60 corner, 61-63 upper, 64 corner, 65-67 lower), corners left out
    remap = {int(s): i for i, s in enumerate(src)}
    inner = [remap[int(v)] for v in lm[60:68]]
    regions[lipgeo.UPPER_LIP_INNER] = edge_path(faces, verts_m, inner[0:5])[1:-1]
    regions[lipgeo.LOWER_LIP_INNER] = edge_path(faces, verts_m, [*inner[4:8], inner[0]])[1:-1]
    return regions


def edge_path(faces: np.ndarray, vertices: np.ndarray, stops: list[int]) -> np.ndarray:
    """Vertices of the shortest edge path through ``stops`` in order (Dijkstra on edge lengths)."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import dijkstra

    e = np.unique(
        np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1), axis=0
    )
    w = np.linalg.norm(vertices[e[:, 0]] - vertices[e[:, 1]], axis=1)
    n = len(vertices)
    graph = sp.coo_matrix(
        (np.r_[w, w], (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n)
    ).tocsr()
    path = [stops[0]]
    for a, b in zip(stops[:-1], stops[1:]):
        _, pred = dijkstra(graph, indices=a, return_predecessors=True)
        seg = [b]
        while seg[-1] != a:
            if pred[seg[-1]] < 0:
                raise SystemExit(f"no edge path between vertices {a} and {b} of the animated region")
            seg.append(int(pred[seg[-1]]))
        path += seg[::-1][1:]
    return np.asarray(path, dtype=np.int64)


def vertex_colours(
    model: ict.FaceXModel,
    parts: dict[str, tuple[np.ndarray, np.ndarray]],
    verts: np.ndarray,
    source: np.ndarray,
    regions,
    colours,
    plan: Plan,
) -> np.ndarray:
    """``(N, 3)`` float32 linear RGB: the part colours; on each eyeball an iris painted by the angle from
    its forward axis (pupil, iris, darker limbal ring, then sclera); the inside of the mouth darkened with
    depth behind the lips."""
    out = np.zeros((len(verts), 3), dtype=np.float32)
    for name, (vids, _) in parts.items():
        out[vids] = colours[name]
    # lips: the lip colour over the lips region, its edge softened over two rings of neighbours
    skin_faces = parts["skin"][1]
    v = len(parts["skin"][0])
    weight = np.zeros(v)
    weight[regions["lips"]] = 1.0
    for _ in range(plan.lip_blend_rings):
        acc, cnt = np.zeros(v), np.zeros(v)
        for k in range(3):
            np.add.at(acc, skin_faces[:, k], weight[skin_faces].mean(1))
            np.add.at(cnt, skin_faces[:, k], 1.0)
        weight = acc / np.maximum(cnt, 1)
    out[:v] = (1 - weight[:, None]) * out[:v] + weight[:, None] * np.asarray(colours["lips"], np.float32)
    # mouth interior: darker with depth behind the front of the lips (a cheap ambient occlusion)
    lip_front = float(verts[regions["lips"], 2].max())
    for name in ("mouth_socket", "gums_tongue", "teeth"):
        vids = parts[name][0]
        depth = np.clip((lip_front - verts[vids, 2]) / plan.mouth_depth_m, 0.0, 1.0)
        out[vids] *= (1.0 - plan.mouth_darkening * depth)[:, None]
    # irises: angle from each eyeball's forward axis, in the source's frame
    for side, (centre, axis) in eyeball_frames(model).items():
        ids = np.flatnonzero(np.isin(source, ict.part(f"sclera_{side}").vertices))
        t = angle_from_axis(model.neutral[source[ids]], centre, axis) / plan.iris_angle_deg
        iris = t < 1.0
        col = np.where((t < plan.pupil_fraction)[:, None], colours["pupil"], colours["iris"]).astype(
            np.float32
        )
        col *= 1.0 - 0.6 * np.clip((t - 0.8) / 0.2, 0.0, 1.0)[:, None]  # darker limbal ring
        out[ids[iris]] = col[iris]
    return out


#: Part colours (linear RGB) and specular strengths.
COLOURS = {
    "skin": (0.62, 0.50, 0.44),
    "lips": (0.56, 0.33, 0.31),
    "eye_socket": (0.55, 0.36, 0.33),
    "mouth_socket": (0.26, 0.07, 0.07),
    "gums_tongue": (0.46, 0.12, 0.13),
    "teeth": (0.80, 0.77, 0.70),
    "eyeball": (0.80, 0.78, 0.76),
    "iris": (0.22, 0.13, 0.07),
    "pupil": (0.02, 0.02, 0.02),
}


def quantise(deltas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(q int16 (K, N, 3), scale float32 (K,))`` with ``delta ~= q * scale`` (one scale per shape)."""
    peak = np.abs(deltas).reshape(len(deltas), -1).max(1)
    scale = np.where(peak > 0, peak / 32767.0, 1.0).astype(np.float32)
    q = np.round(deltas / scale[:, None, None]).astype(np.int16)
    return q, scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--facekit", type=Path, required=True, help="FaceXModel folder of a full checkout")
    parser.add_argument("--out", type=Path, default=ROOT / "src/memorytalker/assets/face/ictface.npz")
    parser.add_argument("--source-commit", default="unknown", help="commit of the ICT-FaceKit checkout")
    parser.add_argument("--max-mb", type=float, default=15.0, help="fail if the asset is larger")
    parser.add_argument("--animated", type=int, default=Plan.animated, help="vertices of face + head + neck")
    args = parser.parse_args()

    plan = Plan(animated=args.animated)
    model, expr_cm, iden_cm, identity_names = load_full_model(args.facekit)
    t0 = time.perf_counter()
    tris = decimate(model, expr_cm, plan)
    print(f"decimated ({time.perf_counter() - t0:.1f} s)")
    source, num_animated = order_vertices(tris)
    remap = np.full(model.num_vertices, -1, dtype=np.int64)
    remap[source] = np.arange(len(source))
    scale = 1.0 / ict.UNITS_PER_METRE
    verts = (model.neutral[source] * scale).astype(np.float32)
    skin_faces = remap[tris["skin"]]
    regions = build_regions(model, expr_cm, source, num_animated, skin_faces, verts[:num_animated])
    topo = FaceTopology("ict-face", verts[:num_animated], skin_faces, 30.0, regions)

    # parts: own vertices and triangles (global asset indices)
    parts: dict[str, tuple[np.ndarray, np.ndarray]] = {"skin": (np.arange(num_animated), skin_faces)}
    for name in PART_ORDER[1:]:
        srcs = [s for s in tris if s != "skin" and _part_of(s) == name]
        f = remap[np.concatenate([tris[s] for s in srcs])]
        own = np.unique(np.concatenate([ict.part(s).vertices for s in srcs]))
        vids = np.flatnonzero(np.isin(source, own))
        parts[name] = (vids, f)
    colours = vertex_colours(model, parts, verts, source, regions, COLOURS, plan)

    expr_m = expr_cm[:, source] * scale
    iden_m = iden_cm[:, source] * scale
    eq, es = quantise(expr_m)
    iq, is_ = quantise(iden_m)
    err_e = np.abs(eq * es[:, None, None] - expr_m)
    err_i = np.abs(iq * is_[:, None, None] - iden_m)
    info = {
        "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "source": "ICT-VGL/ICT-FaceKit FaceXModel (ICT Face Model Light, MIT)",
        "source_commit": args.source_commit,
        "command": " ".join(["scripts/build_face_asset.py", *sys.argv[1:]]),
        "plan": asdict(plan),
        "vertices": {"animated": num_animated, "total": len(source)},
        "triangles": {"animated": len(skin_faces)},
        "storage_error_mm": {
            "expression_max": float(err_e.max() * 1000),
            "expression_rms": float(np.sqrt((err_e**2).mean()) * 1000),
            "identity_max": float(err_i.max() * 1000),
            "identity_rms": float(np.sqrt((err_i**2).mean()) * 1000),
        },
    }
    for name, (vids, f) in parts.items():
        info["vertices"][name] = int(len(vids))
        info["triangles"][name] = int(len(f))
    # decimation error: every source face vertex to the decimated surface, in several poses
    face_src = ict.part("face").vertices
    dec = {}
    for shape in ("neutral", "jawOpen", "mouthClose", "mouthFunnel", "mouthSmile_L", "eyeBlink_L"):
        d = (
            np.zeros_like(model.neutral)
            if shape == "neutral"
            else expr_cm[model.expression_names.index(shape)]
        )
        if shape == "mouthClose":
            d = d + expr_cm[model.expression_names.index("jawOpen")]
            shape = "jawOpen+mouthClose"
        full = (model.neutral + d) * scale
        dist = point_to_surface(full[source[:num_animated]], skin_faces, full[face_src]) * 1000
        dec[shape] = {
            "mean": float(dist.mean()),
            "p99": float(np.percentile(dist, 99)),
            "max": float(dist.max()),
        }
    info["decimation_error_mm"] = dec
    print(json.dumps({k: info[k] for k in ("vertices", "storage_error_mm", "decimation_error_mm")}, indent=1))

    state = {
        "format": np.array(ASSET_FORMAT),
        "units": np.array("m"),
        "build_info": np.array(json.dumps(info)),
        "neutral": verts,
        "num_animated": np.array(num_animated),
        "source_index": source.astype(np.int32),
        "landmarks": remap[model.landmarks].astype(np.int32),
        "expression_names": np.array(model.expression_names),
        "expression_q": eq,
        "expression_scale": es,
        "identity_names": np.array(identity_names),
        "identity_q": iq,
        "identity_scale": is_,
        "vertex_colours": colours.astype(np.float16),
        "part_names": np.array(list(parts)),
    }
    for k, v in topo.to_state().items():
        if k not in ("vertices",):
            state[f"topology/{k}"] = np.asarray(v if k != "faces" else np.asarray(v, dtype=np.int32))
    for name, (vids, f) in parts.items():
        state[f"part/{name}/vertices"] = vids.astype(np.int32)
        state[f"part/{name}/faces"] = f.astype(np.int32)
        state[f"part/{name}/colour"] = np.asarray(COLOURS[name], dtype=np.float32)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **state)
    lic = model.folder.parent / "LICENSE"
    notice = args.out.parent / LICENSE_NAME
    if lic.is_file():
        notice.write_text(
            "The face asset in this folder (ictface.npz) is derived from ICT-FaceKit (ICT Face Model Light,\n"
            f"public GitHub repository ICT-VGL/ICT-FaceKit, commit {args.source_commit}) by\n"
            "scripts/build_face_asset.py of memorytalker. ICT-FaceKit's licence:\n\n" + lic.read_text()
        )
    elif not notice.is_file():
        raise SystemExit(f"no LICENSE beside {model.folder} and none at {notice}: the MIT notice must ship")
    size_mb = args.out.stat().st_size / 1e6
    print(f"wrote {args.out} ({size_mb:.2f} MB)")
    if size_mb > args.max_mb:
        raise SystemExit(f"{args.out} is {size_mb:.2f} MB, over --max-mb {args.max_mb}")
    from memorytalker.face.model import FaceModel

    FaceModel.load(args.out)  # loads and validates


if __name__ == "__main__":
    main()
