"""Articulation: a face rig derived from any template's geometry + regions, and phoneme-driven motion.

**Rig** (:func:`build_rig`). Nothing refers to vertex indices of a particular mesh; everything is derived
from the template (``+y`` up, ``+z`` toward the viewer, like FLAME) and its ``lips`` region:

* the mouth opening is the mesh boundary loop inside the lips region (our head's slit, FLAME's mouth hole);
  its vertices split into the upper-lip and lower-lip edges by the side their triangles lie on;
* smooth weights are harmonic functions on the mesh (graph-Laplace equation with fixed values): the
  lower-lip weight is 1 on the lower edge and 0 on the upper edge and outside the lips; the jaw weight is
  1 on the lower edge and the chin and 0 on the upper edge, above the mouth, behind the jaw joint and
  down the neck;
* sizes scale with the mouth width ``W`` (the loop's x extent).

Articulator fields, each ``(V, 3)`` metres per unit: ``jaw`` (rotation about a left-right axis through
the jaw joint, split into the lower lip's share ``jaw_lip`` and the rest ``jaw_rest``), ``lip_raise``
(upper lip up as the mouth opens), ``round`` (protrusion + corners inward), ``round_open`` (the small
O-shaped aperture of rounded lips), ``spread``, ``tuck`` (lower lip up and back under the upper teeth for
f/v), ``brow`` (raise) and ``blink`` (upper lids rotate down over the eyeballs).

**Motion** (:func:`articulator_tracks`). Every phone has targets and dominances for five articulators
(jaw opening in radians, lip closure, rounding, spreading, lip tuck); diphthongs have two halves.
Coarticulation follows Cohen & Massaro (1993): a dominance function ``alpha * exp(-d / tau)``, with ``d``
the distance from the phone's interval, a separate anticipation and carry-over time constant, and the
articulator value is the dominance-weighted mean of the targets. Lip closure is exact during bilabials:
the lower-lip share of the jaw, the lip raise and the round aperture are multiplied by ``1 - closure``,
and closure is 1 on every frame inside a p/b/m (and on the frame nearest its middle), so the lips touch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from memorytalker.data.phonemes import SILENCE
from memorytalker.errors import TopologyError
from memorytalker.topology.lips import FaceAxes, mouth_loop, split_mouth_loop

#: Articulators driven by phonemes.
ARTICULATORS = ("jaw", "close", "round", "spread", "tuck")
#: Rig fields in the order of the coefficient columns of :func:`coefficients`.
FIELDS = ("jaw_rest", "jaw_lip", "lip_raise", "round", "round_open", "spread", "tuck", "brow", "blink")

BILABIALS = frozenset({"P", "B", "M"})
LABIODENTALS = frozenset({"F", "V"})
OPEN_VOWELS = frozenset({"AA", "AE", "AO", "AW", "AY"})
CLOSE_VOWELS = frozenset({"IY", "IH", "UW", "UH"})

# targets: jaw (rad), close, round, spread, tuck; dominance: jaw, lips(close/tuck), round, spread
_T = {
    "AA": ((0.21, 0, 0.05, 0.0, 0), (1.3, 1.0, 0.5, 0.5)),
    "AE": ((0.19, 0, 0.0, 0.45, 0), (1.3, 1.0, 0.5, 0.8)),
    "AH": ((0.14, 0, 0.0, 0.1, 0), (1.0, 1.0, 0.3, 0.3)),
    "AO": ((0.18, 0, 0.45, 0.0, 0), (1.3, 1.0, 1.0, 0.5)),
    "EH": ((0.14, 0, 0.0, 0.3, 0), (1.0, 1.0, 0.4, 0.7)),
    "ER": ((0.09, 0, 0.35, 0.0, 0), (0.9, 1.0, 0.9, 0.4)),
    "IH": ((0.08, 0, 0.0, 0.5, 0), (0.9, 1.0, 0.4, 0.9)),
    "IY": ((0.06, 0, 0.0, 0.9, 0), (1.0, 1.0, 0.6, 1.3)),
    "UH": ((0.09, 0, 0.55, 0.0, 0), (0.9, 1.0, 1.1, 0.5)),
    "UW": ((0.06, 0, 0.95, 0.0, 0), (1.0, 1.0, 1.4, 0.6)),
    "B": ((0.02, 1, 0.0, 0.0, 0), (0.8, 2.5, 0.1, 0.1)),
    "P": ((0.02, 1, 0.0, 0.0, 0), (0.8, 2.5, 0.1, 0.1)),
    "M": ((0.02, 1, 0.0, 0.0, 0), (0.8, 2.5, 0.1, 0.1)),
    "F": ((0.05, 0, 0.0, 0.1, 1), (0.8, 2.5, 0.1, 0.2)),
    "V": ((0.05, 0, 0.0, 0.1, 1), (0.8, 2.5, 0.1, 0.2)),
    "TH": ((0.07, 0, 0.0, 0.2, 0), (0.7, 0.3, 0.1, 0.3)),
    "DH": ((0.07, 0, 0.0, 0.2, 0), (0.6, 0.3, 0.1, 0.3)),
    "S": ((0.04, 0, 0.0, 0.35, 0), (0.9, 0.3, 0.2, 0.5)),
    "Z": ((0.04, 0, 0.0, 0.35, 0), (0.9, 0.3, 0.2, 0.5)),
    "SH": ((0.06, 0, 0.45, 0.0, 0), (0.8, 0.3, 0.9, 0.3)),
    "ZH": ((0.06, 0, 0.45, 0.0, 0), (0.8, 0.3, 0.9, 0.3)),
    "CH": ((0.06, 0, 0.45, 0.0, 0), (0.8, 0.3, 0.9, 0.3)),
    "JH": ((0.06, 0, 0.45, 0.0, 0), (0.8, 0.3, 0.9, 0.3)),
    "T": ((0.06, 0, 0.0, 0.15, 0), (0.6, 0.3, 0.1, 0.2)),
    "D": ((0.06, 0, 0.0, 0.15, 0), (0.6, 0.3, 0.1, 0.2)),
    "N": ((0.06, 0, 0.0, 0.15, 0), (0.6, 0.3, 0.1, 0.2)),
    "L": ((0.08, 0, 0.0, 0.1, 0), (0.5, 0.3, 0.1, 0.2)),
    "R": ((0.07, 0, 0.35, 0.0, 0), (0.6, 0.3, 0.7, 0.2)),
    "K": ((0.08, 0, 0.0, 0.0, 0), (0.4, 0.3, 0.05, 0.05)),
    "G": ((0.08, 0, 0.0, 0.0, 0), (0.4, 0.3, 0.05, 0.05)),
    "NG": ((0.08, 0, 0.0, 0.0, 0), (0.4, 0.3, 0.05, 0.05)),
    "HH": ((0.10, 0, 0.0, 0.0, 0), (0.05, 0.05, 0.02, 0.02)),
    "W": ((0.05, 0, 0.9, 0.0, 0), (0.7, 0.3, 1.4, 0.5)),
    "Y": ((0.05, 0, 0.0, 0.6, 0), (0.7, 0.3, 0.3, 0.8)),
    SILENCE: ((0.0, 0, 0.0, 0.0, 0), (0.9, 0.6, 0.6, 0.6)),
}
#: Diphthongs: (first half, second half).
DIPHTHONGS = {
    "AW": ("AA", "UW"),
    "AY": ("AA", "IY"),
    "EY": ("EH", "IY"),
    "OW": ("AO", "UW"),
    "OY": ("AO", "IY"),
}


def viseme_targets(phone: str) -> tuple[np.ndarray, np.ndarray]:
    """``(targets (5,), dominance (5,))`` of a (monophthong) phone over :data:`ARTICULATORS`."""
    if phone not in _T:
        raise ValueError(f"no viseme target for phone {phone!r}")
    tgt, (dj, dl, dr, ds) = _T[phone]
    return np.array(tgt, dtype=np.float64), np.array([dj, dl, dr, ds, dl], dtype=np.float64)


# ---------------------------------------------------------------------------------------------- rig
@dataclass
class Rig:
    """Articulator fields of one template.

    Attributes:
        template: ``(V, 3)`` float64 neutral mesh.
        fields: ``{name: (V, 3)}`` displacement per unit of each :data:`FIELDS` entry.
        upper_edge, lower_edge: vertex indices of the upper / lower lip edge (the mouth loop, corners
            excluded), used to measure lip opening.
        mouth_width: ``W`` in metres.
        mouth_center: ``(3,)``.
    """

    template: np.ndarray
    fields: dict[str, np.ndarray]
    upper_edge: np.ndarray
    lower_edge: np.ndarray
    mouth_width: float
    mouth_center: np.ndarray

    @property
    def basis(self) -> np.ndarray:
        """``(K, V, 3)`` fields stacked in :data:`FIELDS` order."""
        return np.stack([self.fields[k] for k in FIELDS])


def _laplacian(faces: np.ndarray, n: int):
    import scipy.sparse as sp

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    a = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n))
    a = ((a + a.T) > 0).astype(np.float64).tocsr()
    deg = np.asarray(a.sum(axis=1)).ravel()
    return (sp.diags(deg) - a).tocsr(), a


def harmonic(lap, fixed: Mapping[int, float] | tuple[np.ndarray, np.ndarray], n: int) -> np.ndarray:
    """Solve the graph Laplace equation with Dirichlet values ``fixed`` (indices, values) -> ``(V,)``."""
    from scipy.sparse.linalg import spsolve

    idx, val = fixed
    val_full = np.zeros(n)
    mask = np.zeros(n, dtype=bool)
    mask[idx] = True
    val_full[idx] = val
    free = np.nonzero(~mask)[0]
    out = val_full.copy()
    if free.size:
        l_ff = lap[free][:, free].tocsc()
        rhs = -lap[free][:, mask] @ val_full[mask]
        out[free] = spsolve(l_ff, rhs)
    return np.clip(out, 0.0, 1.0)


def _component_mask(adj, seed_vertex: int, n: int) -> np.ndarray:
    from scipy.sparse.csgraph import connected_components

    _, lab = connected_components(adj, directed=False)
    return lab == lab[seed_vertex]


def _eyes(v: np.ndarray, regions: Mapping[str, np.ndarray]) -> list[tuple[np.ndarray, float]]:
    """Eye centres and radii from eyeball regions (FLAME names), else from an ``eyelids`` region."""
    balls = [k for k in regions if "eyeball" in k.lower()]
    out = []
    if len(balls) >= 2:
        for k in sorted(balls)[:2]:
            p = v[regions[k]]
            c = p.mean(axis=0)
            out.append((c, float(np.linalg.norm(p - c, axis=1).max())))
        return out
    if "eyelids" in regions:
        p = v[regions["eyelids"]]
        for side in (1, -1):
            q = p[np.sign(p[:, 0]) == side]
            if len(q) < 3:
                break
            c = q.mean(axis=0)
            r = float(np.ptp(q[:, 0]) / 2)
            out.append((c - np.array([0, 0.4 * r, 0.6 * r]), r))
        if len(out) == 2:
            return out
    raise TopologyError(
        "blinks need the eyes: give regions 'left_eyeball' and 'right_eyeball' (FLAME_masks.pkl has them) "
        "or an 'eyelids' region (upper-lid vertices of both eyes)"
    )


def _eye_fields(
    v: np.ndarray, regions: Mapping[str, np.ndarray], comp: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The rig's ``brow`` and ``blink`` fields ``(V, 3)`` of template ``v`` (``comp``: the face's connected
    component); eyes from the regions (see :func:`_eyes`)."""
    n = v.shape[0]
    eyes = _eyes(v, regions)
    eyeball = np.zeros(n, dtype=bool)
    for k in regions:
        if "eyeball" in k.lower():
            eyeball[regions[k]] = True
    brow = np.zeros(n)
    blink = np.zeros((n, 3))
    for c, rad in eyes:
        d = v - c
        wb = np.exp(-(((d[:, 1] - 1.7 * rad) / (1.0 * rad)) ** 2) - ((d[:, 0] / (1.9 * rad)) ** 2))
        wb *= (d[:, 2] > -rad) & ~eyeball & comp
        brow = np.maximum(brow, wb)
        dist = np.linalg.norm(d, axis=1)
        wl = np.clip((1.6 * rad - dist) / (0.5 * rad), 0.0, 1.0)
        wl *= (d[:, 1] > -0.1 * rad) & (d[:, 2] > 0) & ~eyeball & comp
        blink += wl[:, None] * np.stack([np.zeros(n), -d[:, 2], d[:, 1]], axis=1)
    if not np.any(brow > 0.5):
        raise TopologyError("no vertices above the eyes to raise as brows (is the template a full face?)")
    if not np.any(np.linalg.norm(blink, axis=1) > 0):
        raise TopologyError("no upper-eyelid vertices found in front of the eyeballs")
    eye_r = float(np.mean([e[1] for e in eyes]))
    return brow[:, None] * np.array([0.0, 0.45 * eye_r, 0.08 * eye_r]), blink


def build_rig(
    vertices: np.ndarray,
    faces: np.ndarray,
    regions: Mapping[str, np.ndarray],
    asymmetry: float = 0.0,
) -> Rig:
    """Derive the articulator fields of a template from its geometry and regions (see module doc).

    Args:
        vertices: ``(V, 3)`` neutral template (metres or any unit; sizes scale with the mouth width).
        faces: ``(F, 3)`` triangles.
        regions: needs ``lips``; eyes from ``left_eyeball``/``right_eyeball`` or ``eyelids``.
        asymmetry: ``-0.4..0.4``, one side of the mouth moves more than the other.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    n = v.shape[0]
    if "lips" not in regions:
        raise TopologyError(f"the rig needs a 'lips' region (have {sorted(regions)})")
    lips = np.asarray(regions["lips"], dtype=np.int64)
    lc = v[lips].mean(axis=0)
    # orientation: the lips must be in front of the head centre (+z) and below the eyes' height
    if lc[2] <= np.median(v[:, 2]):
        raise TopologyError(
            "the template's lips are not on the +z side of the head: orient it like FLAME (+y up, +z forward)"
        )
    # --- mouth loop and its upper / lower edge (topology.lips; the rig's convention is +y up, x across)
    loop = mouth_loop(v, f, lips, lips_fraction=0.0)  # FLAME's mouth hole lies behind its lips region
    if loop is None:
        raise TopologyError(
            "the template has no mouth opening: no mesh boundary loop lies inside the 'lips' region, so the "
            "lips cannot part (FLAME and the procedural head have one)"
        )
    width = float(np.ptp(v[loop, 0]))
    center = np.array([v[loop, 0].mean(), v[loop, 1].mean(), v[loop, 2].max()])
    upper, lower = split_mouth_loop(v, f, loop, FaceAxes(up=1, up_sign=1.0, width=0))
    if upper.size == 0 or lower.size == 0:
        raise TopologyError("could not tell the upper from the lower lip along the mouth opening")
    lap, adj = _laplacian(f, n)
    comp = _component_mask(adj, int(loop[0]), n)
    rel = v - center
    w_ = width
    # --- lip weights: 1 on one edge, 0 on the other and outside the (slightly grown) lips region
    grow = np.zeros(n, dtype=bool)
    grow[lips] = True
    grow = grow | (adj @ grow.astype(float) > 0)
    outside = np.nonzero(~grow | ~comp)[0]

    def edge_field(one: np.ndarray, zero: np.ndarray) -> np.ndarray:
        idx = np.concatenate([one, zero, outside])
        val = np.concatenate([np.ones(len(one)), np.zeros(len(zero) + len(outside))])
        idx, first = np.unique(idx, return_index=True)
        return harmonic(lap, (idx, val[first]), n)

    m_lower = edge_field(lower, upper)
    m_upper = edge_field(upper, lower)
    m_lips = np.clip(m_lower + m_upper, 0.0, 1.0)
    # --- jaw weight
    chin = (
        (rel[:, 1] < -0.55 * w_)
        & (rel[:, 1] > -1.1 * w_)
        & (np.abs(rel[:, 0]) < 0.5 * w_)
        & (rel[:, 2] > -0.5 * w_)
        & comp
    )
    static = (
        ((rel[:, 1] > 0.3 * w_) & ~grow)
        | (rel[:, 2] < -2.0 * w_)
        | (rel[:, 1] < -1.9 * w_)
        | (np.abs(rel[:, 0]) > 2.0 * w_)
        | ~comp
    )
    static &= ~chin
    idx = np.concatenate([lower, np.nonzero(chin)[0], upper, np.nonzero(static)[0]])
    val = np.concatenate([np.ones(len(lower) + chin.sum()), np.zeros(len(upper) + static.sum())])
    idx, first = np.unique(idx, return_index=True)
    w_jaw = harmonic(lap, (idx, val[first]), n)
    pivot = center + np.array([0.0, 0.9 * w_, -1.7 * w_])
    r = v - pivot
    rot = np.stack([np.zeros(n), -r[:, 2], r[:, 1]], axis=1)  # d/dtheta of a rotation about +x
    jaw = w_jaw[:, None] * rot
    jaw_lip = jaw * m_lower[:, None]
    jaw_rest = jaw - jaw_lip
    asym = 1.0 + float(asymmetry) * np.tanh(rel[:, 0] / (0.3 * w_))
    lipx = rel[:, 0]
    fields = {
        "jaw_rest": jaw_rest,
        "jaw_lip": jaw_lip * asym[:, None],
        "lip_raise": np.stack([np.zeros(n), 0.25 * w_ * m_upper, 0.08 * w_ * m_upper], 1) * asym[:, None],
        "round": np.stack([-0.35 * lipx * m_lips, np.zeros(n), 0.2 * w_ * m_lips], 1) * asym[:, None],
        "round_open": np.stack([np.zeros(n), 0.05 * w_ * (m_upper - m_lower), np.zeros(n)], 1),
        "spread": np.stack([0.25 * lipx * m_lips, 0.02 * w_ * m_lips, -0.05 * w_ * m_lips], 1)
        * asym[:, None],
        "tuck": np.stack([np.zeros(n), 0.04 * w_ * m_lower, -0.14 * w_ * m_lower], 1),
    }
    fields["brow"], fields["blink"] = _eye_fields(v, regions, comp)
    for k, fld in fields.items():
        if not np.all(np.isfinite(fld)):  # pragma: no cover - harmonic solve on a broken mesh
            raise TopologyError(f"rig field {k!r} is not finite (degenerate mesh?)")
    return Rig(v, fields, np.sort(upper), np.sort(lower), width, center)


# ---------------------------------------------------------------------------------------------- motion
def _expand(phones: Sequence[Mapping]) -> list[tuple[str, float, float]]:
    out = []
    for p in phones:
        ph, s, e = str(p["phone"]), float(p["start"]), float(p["end"])
        if ph in DIPHTHONGS:
            a, b = DIPHTHONGS[ph]
            m = s + 0.5 * (e - s)
            out += [(a, s, m), (b, m, e)]
        else:
            out.append((ph, s, e))
    return out


def articulator_tracks(
    phones: Sequence[Mapping],
    num_frames: int,
    fps: float,
    tau_anticipation: float = 0.05,
    tau_carryover: float = 0.04,
) -> np.ndarray:
    """Dominance-blended articulator values ``(T, 5)`` over :data:`ARTICULATORS` at frame times ``k / fps``.

    ``phones``: ``[{"phone", "start", "end"}]`` (ARPAbet or ``"sil"``). Closure is forced to 1 on the
    frames inside each bilabial and on the frame nearest its middle.
    """
    segs = _expand(phones)
    if not segs:
        raise ValueError("no phones to articulate")
    t = np.arange(num_frames, dtype=np.float64) / fps
    tg = np.zeros((len(segs), 5))
    dom = np.zeros((len(segs), 5))
    starts = np.array([s for _, s, _ in segs])
    ends = np.array([e for _, _, e in segs])
    for i, (ph, _, _) in enumerate(segs):
        tg[i], dom[i] = viseme_targets(ph)
    before = np.clip(starts[None, :] - t[:, None], 0, None)  # (T, N): time until the phone starts
    after = np.clip(t[:, None] - ends[None, :], 0, None)  # time since it ended
    w = np.exp(-before / tau_anticipation - after / tau_carryover)  # (T, N), 1 inside the phone
    wd = w[:, :, None] * dom[None, :, :]  # (T, N, 5)
    tracks = (wd * tg[None]).sum(1) / np.maximum(wd.sum(1), 1e-12)
    for ph, s, e in segs:
        if ph in BILABIALS:
            k = np.nonzero((t >= s) & (t <= e))[0]
            mid = int(round((s + e) / 2 * fps))
            k = np.unique(np.concatenate([k, [min(max(mid, 0), num_frames - 1)]]))
            tracks[k, 1] = 1.0
    return tracks


def coefficients(
    tracks: np.ndarray,
    brow: np.ndarray,
    blink: np.ndarray,
    amplitude: float = 1.0,
    lip_amplitude: float = 1.0,
    rounding: float = 1.0,
    spreading: float = 1.0,
) -> np.ndarray:
    """Rig coefficients ``(T, K)`` in :data:`FIELDS` order from articulator tracks and upper-face curves."""
    jaw = tracks[:, 0] * amplitude
    close = np.clip(tracks[:, 1], 0, 1)
    tuck = np.clip(tracks[:, 4], 0, 1)
    seal = 1.0 - np.maximum(close, 0.8 * tuck)  # how much the lips may part
    rnd = tracks[:, 2] * rounding * lip_amplitude
    return np.stack(
        [
            jaw,
            jaw * seal,
            jaw * seal * lip_amplitude,
            rnd,
            rnd * seal,
            tracks[:, 3] * spreading * lip_amplitude,
            tuck * lip_amplitude,
            brow,
            blink,
        ],
        axis=1,
    )


def animate(rig: Rig, coeffs: np.ndarray) -> np.ndarray:
    """``(T, V, 3)`` float32 vertices = template + sum_k coeffs[:, k] * field_k (deterministic, no BLAS)."""
    if coeffs.ndim != 2 or coeffs.shape[1] != len(FIELDS):
        raise ValueError(f"coefficients must be (T, {len(FIELDS)}), got {coeffs.shape}")
    out = np.broadcast_to(rig.template, (coeffs.shape[0], *rig.template.shape)).copy()
    for k, name in enumerate(FIELDS):
        out += coeffs[:, k, None, None] * rig.fields[name][None]
    return out.astype(np.float32)
