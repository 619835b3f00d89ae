"""Export an animation: ``.npy``, an OBJ/PLY sequence, and glTF 2.0 binary (``.glb``) with morph targets.

glTF layout (written by this module's own GLB writer, following the 2.0 spec: 4-byte aligned chunks and
buffer views, ``bufferView.target`` on vertex/index data, ``min``/``max`` on every POSITION accessor and on
the animation input):

* one mesh, one triangle primitive: ``POSITION`` (the base shape), ``NORMAL`` (smooth normals of the first
  frame), ``indices`` (uint32), a two-sided skin-grey PBR material, and ``K`` morph targets (``POSITION``
  deltas) named in ``mesh.extras.targetNames`` (``pca_00``, ``pca_01``, ...);
* one animation ("speech"): a ``weights`` channel on the mesh node, LINEAR interpolation, one keyframe
  per mesh frame at ``t = i / fps``; ``mesh.weights`` holds the first frame's weights, so a viewer that
  ignores the animation shows the first frame.

The morph targets are a PCA basis of the motion. With the centred motion ``X - mean = C B`` (``C`` the
``(T, K)`` coefficients, ``B`` the ``(K, 3V)`` components), each component is rescaled so its weight runs
over ``[0, 1]``: ``w_k(t) = (c_k(t) - min_k) / (max_k - min_k)``, ``target_k = (max_k - min_k) B_k`` and
``base = mean + sum_k min_k B_k``; then ``base + sum_k w_k(t) target_k`` reproduces frame ``t``. Weights in
``[0, 1]`` keep Blender's shape-key sliders and every viewer happy. ``K`` is the smallest number of
components whose reconstruction keeps **every vertex of every frame** within ``max_error`` (default
``2e-4 x`` the first frame's bounding-box diagonal: about 0.09 mm on a FLAME head), capped at
``max_targets`` (default 128); if the cap cannot reach the error an :class:`ExportError` says so. Between
keyframes the linear weight interpolation equals linear interpolation of the vertex positions.

Morph targets carry no NORMAL deltas (a viewer lights every frame with the first frame's normals;
three.js / Blender may recompute them).

Audio: core glTF has no audio. With ``audio_path`` the speech is referenced from the asset extras as
``asset.extras.audio = {"uri": "<name>.wav", "mimeType": "audio/wav", "duration": s}`` - a WAV file next
to the ``.glb`` (a WAV already in that folder is referenced as it is; another file is copied, or decoded
and written as 16 kHz 16-bit WAV when it is not a WAV).
"""

from __future__ import annotations

import json
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from memorytalker.render.errors import ExportError

#: Default reconstruction tolerance, relative to the first frame's bounding-box diagonal.
DEFAULT_RELATIVE_ERROR = 2e-4
#: Default cap on the number of morph targets.
DEFAULT_MAX_TARGETS = 128

_GLB_MAGIC = 0x46546C67  # "glTF"
_CHUNK_JSON = 0x4E4F534A
_CHUNK_BIN = 0x004E4942
_FLOAT = 5126
_UINT = 5125
_ARRAY_BUFFER = 34962
_ELEMENT_ARRAY_BUFFER = 34963


def _as_frames(vertices: np.ndarray, what: str = "vertices") -> np.ndarray:
    v = np.asarray(vertices)
    if v.dtype.kind not in "fiu":
        raise ExportError(f"{what}: expected a numeric array, got dtype {v.dtype}")
    if v.ndim == 2 and v.shape[1] % 3 == 0:
        v = v.reshape(v.shape[0], -1, 3)
    if v.ndim != 3 or v.shape[-1] != 3 or v.shape[0] == 0 or v.shape[1] == 0:
        raise ExportError(f"{what}: expected (T, V, 3) vertices with T, V >= 1, got shape {v.shape}")
    finite = np.isfinite(v).reshape(v.shape[0], -1).all(1)
    if not finite.all():
        raise ExportError(f"{what}: frame {int(np.flatnonzero(~finite)[0])} has NaN/Inf vertex positions")
    return v


def _check_faces(faces: np.ndarray | None, num_vertices: int, allow_empty: bool) -> np.ndarray:
    f = np.zeros((0, 3), dtype=np.int64) if faces is None else np.asarray(faces)
    if f.size == 0:
        if allow_empty:
            return np.zeros((0, 3), dtype=np.int64)
        raise ExportError("the mesh has no triangles (a point cloud); a glTF mesh needs faces")
    if f.ndim != 2 or f.shape[1] != 3 or f.dtype.kind not in "iu":
        raise ExportError(f"faces must be (F, 3) integer triangle indices, got {f.shape} {f.dtype}")
    if f.min() < 0 or f.max() >= num_vertices:
        raise ExportError(
            f"triangle indices out of range [0, {num_vertices}) (min {f.min()}, max {f.max()}): the faces "
            f"belong to a mesh with another vertex count than the {num_vertices} of the vertices"
        )
    return f.astype(np.int64, copy=False)


# ------------------------------------------------------------------------------------------ npy / sequence
def export_npy(vertices: np.ndarray, out_path: str | Path) -> Path:
    """Save ``(T, V, 3)`` float32 vertices as ``.npy``."""
    v = _as_frames(vertices)
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".npy":
        raise ExportError(f"expected a .npy output path, got {out_path}")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.save(out_path, v.astype(np.float32))
    return out_path


def export_sequence(
    vertices: np.ndarray,
    faces: np.ndarray | None,
    out_dir: str | Path,
    fmt: str = "obj",
    prefix: str = "frame",
    progress: bool = True,
) -> list[Path]:
    """Write one mesh file per frame: ``out_dir/<prefix>_00000.<fmt>`` ... (vertex order kept).

    Args:
        vertices: ``(T, V, 3)`` (or ``(T, V*3)``).
        faces: ``(F, 3)`` triangles (empty/None writes vertex-only files).
        out_dir: folder (created).
        fmt: ``"obj"`` (text, 8 decimals) or ``"ply"`` (binary little-endian float32).
        prefix: file name prefix. Frame numbers are zero-padded to at least 5 digits.

    Returns the ``T`` paths in frame order.
    """
    import trimesh
    from tqdm.auto import tqdm

    fmt = fmt.lower().lstrip(".")
    if fmt not in ("obj", "ply"):
        raise ExportError(f"sequence format must be 'obj' or 'ply', got {fmt!r}")
    v = _as_frames(vertices)
    f = _check_faces(faces, v.shape[1], allow_empty=True)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} exists and is not a directory")
    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(v.shape[0] - 1)))
    paths = []
    for i in tqdm(
        range(v.shape[0]), desc=f"export {fmt}", unit="frame", disable=not progress, dynamic_ncols=True
    ):
        path = out_dir / f"{prefix}_{i:0{width}d}.{fmt}"
        mesh = trimesh.Trimesh(v[i].astype(np.float64), f, process=False, validate=False)
        if fmt == "obj":
            mesh.export(path, file_type="obj", include_normals=False, include_texture=False)
        else:
            mesh.export(path, file_type="ply", encoding="binary")
        paths.append(path)
    return paths


# ------------------------------------------------------------------------------------------ PCA morphs
@dataclass
class MorphTargets:
    """A morph-target encoding of a sequence: ``frame(t) = base + weights[t] @ targets``.

    Attributes:
        base: ``(V, 3)`` float32 base shape.
        targets: ``(K, V, 3)`` float32 position deltas.
        weights: ``(T, K)`` float32 weights in ``[0, 1]``.
        max_error: largest vertex distance between the input and the float32 reconstruction.
        tolerance: the requested bound on ``max_error``.
    """

    base: np.ndarray
    targets: np.ndarray
    weights: np.ndarray
    max_error: float
    tolerance: float

    def reconstruct(self, frames: np.ndarray | None = None) -> np.ndarray:
        """``(T, V, 3)`` float64 reconstruction (of the rows ``frames``, default all)."""
        w = self.weights if frames is None else self.weights[frames]
        k, n = self.targets.shape[0], self.base.size
        delta = w.astype(np.float64) @ self.targets.reshape(k, n).astype(np.float64)
        return (self.base.reshape(1, n).astype(np.float64) + delta).reshape(-1, *self.base.shape)


def _max_vertex_error(xc: np.ndarray, coeffs: np.ndarray, comps: np.ndarray, chunk: int = 256) -> float:
    """Max over frames and vertices of ``|xc - coeffs @ comps|`` (per-vertex Euclidean), in chunks."""
    worst = 0.0
    for s in range(0, xc.shape[0], chunk):
        r = xc[s : s + chunk] - coeffs[s : s + chunk] @ comps
        d = np.einsum("tvi,tvi->tv", r.reshape(r.shape[0], -1, 3), r.reshape(r.shape[0], -1, 3))
        worst = max(worst, float(np.sqrt(d.max())))
    return worst


def pca_morph_targets(
    vertices: np.ndarray, max_error: float | None = None, max_targets: int = DEFAULT_MAX_TARGETS
) -> MorphTargets:
    """Encode ``(T, V, 3)`` vertices as PCA morph targets with ``[0, 1]`` weights (module docstring).

    ``K`` is the smallest count keeping every vertex of every frame within ``max_error`` (mesh units;
    default ``DEFAULT_RELATIVE_ERROR`` x the first frame's bounding-box diagonal). A static sequence
    gets ``K = 0`` when ``T == 1``, else at least one target.

    Raises:
        ExportError: bad input, or ``max_targets`` components cannot reach ``max_error``.
    """
    v = _as_frames(vertices)
    t_frames, n_vert = v.shape[0], v.shape[1]
    x = v.reshape(t_frames, -1).astype(np.float64)
    first = v[0].astype(np.float64)
    diag = float(np.linalg.norm(first.max(0) - first.min(0)))
    tol = DEFAULT_RELATIVE_ERROR * diag if max_error is None else float(max_error)
    if not tol > 0:
        raise ExportError(f"max_error must be positive, got {tol} (a degenerate first frame?)")
    if max_targets < 1:
        raise ExportError(f"max_targets must be at least 1, got {max_targets}")
    mean = x.mean(0)
    xc = x - mean
    if t_frames == 1:
        base = v[0].astype(np.float32)
        return MorphTargets(
            base, np.zeros((0, n_vert, 3), np.float32), np.zeros((1, 0), np.float32), 0.0, tol
        )
    # eigen-decomposition of the (T, T) Gram matrix: cheap for any V
    gram = xc @ xc.T
    evals, evecs = np.linalg.eigh(gram)
    order = np.argsort(evals)[::-1]
    evals, evecs = np.clip(evals[order], 0.0, None), evecs[:, order]
    rank_tol = max(evals[0], 0.0) * 1e-24 + 1e-300
    rank = max(1, int(np.sum(evals > rank_tol)))
    k_cap = min(max_targets, rank, t_frames)
    sing = np.sqrt(evals[:k_cap])
    coeffs_all = evecs[:, :k_cap] * sing  # (T, Kcap) = U S
    safe = np.where(sing > 0, sing, 1.0)
    comps_all = (evecs[:, :k_cap].T @ xc) / safe[:, None]  # (Kcap, 3V) orthonormal rows
    comps_all[sing == 0] = 0.0

    def err(k: int) -> float:
        return _max_vertex_error(xc, coeffs_all[:, :k], comps_all[:k])

    if err(k_cap) > tol:
        raise ExportError(
            f"{k_cap} morph targets (the cap max_targets={max_targets}, motion rank {rank}) reconstruct the "
            f"motion only to {err(k_cap):.3g} (max vertex error; the tolerance is {tol:.3g} mesh units): "
            "raise max_targets or max_error"
        )
    lo, hi = 1, k_cap  # smallest k with err(k) <= tol: err is non-increasing in k
    while lo < hi:
        mid = (lo + hi) // 2
        if err(mid) <= tol:
            hi = mid
        else:
            lo = mid + 1
    k = lo
    coeffs, comps = coeffs_all[:, :k], comps_all[:k]
    cmin, cmax = coeffs.min(0), coeffs.max(0)
    span = np.where(cmax - cmin > 0, cmax - cmin, 1.0)
    weights = ((coeffs - cmin) / span).astype(np.float32)
    targets = (comps * span[:, None]).astype(np.float32).reshape(k, n_vert, 3)
    base = (mean + cmin @ comps).astype(np.float32).reshape(n_vert, 3)
    out = MorphTargets(base, targets, weights, 0.0, tol)
    # the error actually delivered by the float32 arrays
    worst = 0.0
    for s in range(0, t_frames, 256):
        rec = out.reconstruct(np.arange(s, min(s + 256, t_frames)))
        worst = max(worst, float(np.linalg.norm(rec - v[s : s + 256], axis=-1).max()))
    out.max_error = worst
    return out


# ------------------------------------------------------------------------------------------ GLB writer
class _Bin:
    """Accumulates the binary chunk: 4-byte aligned buffer views and their accessors."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(
        self,
        array: np.ndarray,
        gl_type: str,
        component: int,
        target: int | None = None,
        minmax: bool = False,
        name: str | None = None,
    ) -> int:
        arr = np.ascontiguousarray(array, dtype=np.uint32 if component == _UINT else np.float32)
        while len(self.data) % 4:
            self.data.append(0)
        view = {"buffer": 0, "byteOffset": len(self.data), "byteLength": arr.nbytes}
        if target is not None:
            view["target"] = target
        self.data.extend(arr.tobytes())
        self.views.append(view)
        width = {"SCALAR": 1, "VEC3": 3}[gl_type]
        acc = {
            "bufferView": len(self.views) - 1,
            "componentType": component,
            "count": int(arr.size // width),
            "type": gl_type,
        }
        if minmax:
            flat = arr.reshape(-1, width)
            cast = int if component == _UINT else float
            acc["min"] = [cast(x) for x in flat.min(0)]
            acc["max"] = [cast(x) for x in flat.max(0)]
        if name:
            acc["name"] = name
        self.accessors.append(acc)
        return len(self.accessors) - 1


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    v = vertices.astype(np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    vn = np.zeros_like(v)
    for c in range(3):
        np.add.at(vn, faces[:, c], fn)
    norm = np.linalg.norm(vn, axis=1)
    # unreferenced or degenerate vertices: any unit vector is valid glTF (spec: normals are unit length)
    vn[norm == 0] = (0.0, 0.0, 1.0)
    norm[norm == 0] = 1.0
    return (vn / norm[:, None]).astype(np.float32)


def write_glb(path: str | Path, gltf: dict, binary: bytes) -> Path:
    """Write a GLB container: 12-byte header, a space-padded JSON chunk, a zero-padded BIN chunk."""
    js = json.dumps(gltf, separators=(",", ":"), allow_nan=False).encode("utf-8")
    js += b" " * (-len(js) % 4)
    bin_chunk = bytes(binary) + b"\x00" * (-len(binary) % 4)
    total = 12 + 8 + len(js) + (8 + len(bin_chunk) if bin_chunk else 0)
    path = Path(path)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<III", _GLB_MAGIC, 2, total))
        fh.write(struct.pack("<II", len(js), _CHUNK_JSON))
        fh.write(js)
        if bin_chunk:
            fh.write(struct.pack("<II", len(bin_chunk), _CHUNK_BIN))
            fh.write(bin_chunk)
    return path


def _place_audio(audio_path: str | Path, out_path: Path) -> dict:
    from memorytalker.data.audio import SAMPLE_RATE, load_audio, write_wav

    src = Path(audio_path)
    if not src.is_file():
        raise ExportError(f"audio file not found: {src}")
    folder = out_path.parent.resolve()
    if src.suffix.lower() == ".wav" and src.resolve().parent == folder:
        dst = src.resolve()
    else:
        dst = folder / f"{out_path.stem}.wav"
        if src.suffix.lower() == ".wav":
            if src.resolve() != dst:
                shutil.copyfile(src, dst)
        else:
            write_wav(dst, load_audio(src), SAMPLE_RATE)
    import soundfile as sf

    info = sf.info(str(dst))
    return {
        "uri": quote(dst.name),
        "mimeType": "audio/wav",
        "duration": round(float(info.frames) / float(info.samplerate), 6),
        "note": "speech for the animation: play it from time 0 together with animation 0",
    }


@dataclass
class GlbPrimitive:
    """One triangle primitive of a morph-target mesh.

    Attributes:
        name: part name (skin, teeth, ...).
        base: ``(n, 3)`` float32 base positions.
        faces: ``(F, 3)`` triangles indexing ``base``.
        targets: ``(K, n, 3)`` float32 position deltas (``K`` the same for every primitive of the mesh).
        colours: ``(n, 3)`` linear RGB vertex colours (``COLOR_0``), or None.
        material: ``(3,)`` linear RGB base colour of the primitive's material.
        normals: ``(n, 3)`` vertex normals (default: smooth normals of ``base``).
    """

    name: str
    base: np.ndarray
    faces: np.ndarray
    targets: np.ndarray
    colours: np.ndarray | None = None
    material: tuple[float, float, float] = (0.62, 0.57, 0.54)
    normals: np.ndarray | None = None


def write_morph_glb(
    out_path: str | Path,
    primitives: list[GlbPrimitive],
    target_names: list[str],
    weights: np.ndarray,
    fps: float,
    name: str = "face",
    audio_path: str | Path | None = None,
    extras: dict | None = None,
) -> Path:
    """Write one mesh of ``primitives`` with ``K`` named morph targets and a weights animation.

    Args:
        primitives: the mesh's parts (:class:`GlbPrimitive`), all with the same ``K`` targets.
        target_names: the ``K`` names, written to ``mesh.extras.targetNames``.
        weights: ``(T, K)`` weights, one keyframe per frame at ``i / fps``.
        audio_path: speech to reference (placed next to the .glb as a WAV; module docstring).
        extras: more ``asset.extras`` entries.

    Raises:
        ExportError: inconsistent target counts or NaN weights. The file is written atomically.
    """
    from memorytalker import __version__

    out_path = Path(out_path)
    w = np.asarray(weights, dtype=np.float32)
    k = len(target_names)
    if w.ndim != 2 or w.shape[1] != k:
        raise ExportError(f"weights must be (T, {k}), got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ExportError("morph weights contain NaN/Inf")
    b = _Bin()
    materials, gl_prims = [], []
    for prim in primitives:
        if prim.targets.shape != (k, *prim.base.shape):
            raise ExportError(
                f"primitive {prim.name!r}: targets {prim.targets.shape}, expected ({k}, {prim.base.shape[0]}, 3)"
            )
        f = _check_faces(prim.faces, prim.base.shape[0], allow_empty=False)
        attributes = {
            "POSITION": b.add(prim.base, "VEC3", _FLOAT, target=_ARRAY_BUFFER, minmax=True),
            "NORMAL": b.add(
                _vertex_normals(prim.base, f) if prim.normals is None else prim.normals,
                "VEC3",
                _FLOAT,
                target=_ARRAY_BUFFER,
            ),
        }
        if prim.colours is not None:
            attributes["COLOR_0"] = b.add(prim.colours, "VEC3", _FLOAT, target=_ARRAY_BUFFER)
        gl_prim: dict = {
            "attributes": attributes,
            "indices": b.add(f.reshape(-1), "SCALAR", _UINT, target=_ELEMENT_ARRAY_BUFFER),
            "material": len(materials),
            "mode": 4,
        }
        if k:
            gl_prim["targets"] = [
                {"POSITION": b.add(prim.targets[i], "VEC3", _FLOAT, target=_ARRAY_BUFFER, minmax=True)}
                for i in range(k)
            ]
        gl_prims.append(gl_prim)
        colour = [1.0, 1.0, 1.0] if prim.colours is not None else [float(c) for c in prim.material]
        materials.append(
            {
                "name": prim.name,
                "pbrMetallicRoughness": {
                    "baseColorFactor": [*colour, 1.0],
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.6,
                },
                "doubleSided": True,
            }
        )
    mesh: dict = {"name": name, "primitives": gl_prims}
    t_frames = w.shape[0]
    if k:
        mesh["weights"] = [float(x) for x in w[0]]
        mesh["extras"] = {"targetNames": list(target_names)}
    info: dict = {
        "generator": "memorytalker",
        "fps": float(fps),
        "frames": int(t_frames),
        "duration": (t_frames - 1) / float(fps),
        "morph_targets": int(k),
        **(extras or {}),
    }
    gltf: dict = {
        "asset": {"version": "2.0", "generator": f"memorytalker {__version__}", "extras": info},
        "scene": 0,
        "scenes": [{"name": name, "nodes": [0]}],
        "nodes": [{"name": name, "mesh": 0}],
        "meshes": [mesh],
        "materials": materials,
    }
    if k and t_frames > 1:
        times = np.arange(t_frames, dtype=np.float64) / float(fps)
        t_acc = b.add(times, "SCALAR", _FLOAT, minmax=True, name="time")
        w_acc = b.add(w.reshape(-1), "SCALAR", _FLOAT, name="weights")
        gltf["animations"] = [
            {
                "name": "speech",
                "channels": [{"sampler": 0, "target": {"node": 0, "path": "weights"}}],
                "samplers": [{"input": t_acc, "output": w_acc, "interpolation": "LINEAR"}],
            }
        ]
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if audio_path is not None:
        info["audio"] = _place_audio(audio_path, out_path)
    gltf["buffers"] = [{"byteLength": len(b.data) + (-len(b.data) % 4)}]
    gltf["bufferViews"] = b.views
    gltf["accessors"] = b.accessors
    tmp = out_path.with_name(f".{out_path.name}.partial")
    try:
        write_glb(tmp, gltf, bytes(b.data))
        tmp.replace(out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_path


def export_glb(
    vertices: np.ndarray,
    faces: np.ndarray,
    fps: float,
    out_path: str | Path,
    audio_path: str | Path | None = None,
    max_error: float | None = None,
    max_targets: int = DEFAULT_MAX_TARGETS,
    name: str = "face",
) -> Path:
    """Write ``(T, V, 3)`` vertices as a glTF 2.0 binary with PCA morph targets and a weights animation.

    Args:
        vertices: ``(T, V, 3)`` (or ``(T, V*3)``) vertex positions at ``fps``.
        faces: ``(F, 3)`` triangles.
        fps: keyframe rate (keyframe ``i`` at ``i / fps`` seconds).
        out_path: the ``.glb`` to write (parent folders are created).
        audio_path: speech to reference (placed next to the .glb as a WAV; module docstring).
        max_error: largest allowed vertex error of the morph encoding, in mesh units (default
            ``2e-4 x`` the first frame's bounding-box diagonal).
        max_targets: cap on the number of morph targets.
        name: mesh and node name.

    Returns the written path. The asset extras record ``fps``, ``frames``, ``morph_targets``,
    ``max_error`` (achieved) and ``tolerance``, and ``audio`` when given.

    Raises:
        ExportError: bad shapes, NaN vertices (naming the frame), no triangles, unreachable accuracy.
    """
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".glb":
        raise ExportError(f"expected a .glb output path, got {out_path}")
    if not fps > 0:
        raise ExportError(f"fps must be positive, got {fps}")
    v = _as_frames(vertices)
    f = _check_faces(faces, v.shape[1], allow_empty=False)
    morph = pca_morph_targets(v, max_error=max_error, max_targets=max_targets)
    k = morph.targets.shape[0]
    prim = GlbPrimitive("skin", morph.base, f, morph.targets, normals=_vertex_normals(v[0], f))
    return write_morph_glb(
        out_path,
        [prim],
        [f"pca_{i:02d}" for i in range(k)],
        morph.weights,
        fps,
        name=name,
        audio_path=audio_path,
        extras={
            "generator": "memorytalker export_glb",
            "max_error": morph.max_error,
            "tolerance": morph.tolerance,
        },
    )


def export_face_glb(
    face,
    weights: np.ndarray,
    fps: float,
    out_path: str | Path,
    neutral: np.ndarray | None = None,
    audio_path: str | Path | None = None,
    extras: dict | None = None,
) -> Path:
    """Write the project's face (:class:`memorytalker.face.model.FaceModel`: skin, mouth socket, gums, teeth,
    eyes) as a glTF 2.0 binary whose 52 morph targets are the ARKit shapes by name, animated by ``(T, 52)``
    ARKit ``weights``: three.js, Blender and Unity bind the targets by name.

    Args:
        neutral: ``(N, 3)`` neutral of every vertex of the face (default: the model's generic neutral;
            :meth:`FaceModel.identity_neutral` gives a person's).
        audio_path, extras: as :func:`write_morph_glb`.
    """
    from memorytalker.face.arkit import ARKIT_NAMES

    out_path = Path(out_path)
    if out_path.suffix.lower() != ".glb":
        raise ExportError(f"expected a .glb output path, got {out_path}")
    base_all = face.neutral if neutral is None else np.asarray(neutral, dtype=np.float32)
    if base_all.shape != face.neutral.shape:
        raise ExportError(f"neutral has shape {base_all.shape}, expected {face.neutral.shape}")
    primitives = []
    for part in face.parts.values():
        verts = np.unique(part.faces)
        local = np.searchsorted(verts, part.faces)
        primitives.append(
            GlbPrimitive(
                part.name,
                base_all[verts],
                local,
                face.arkit_basis[:, verts],
                colours=face.vertex_colours[verts],
            )
        )
    return write_morph_glb(
        out_path,
        primitives,
        list(ARKIT_NAMES),
        weights,
        fps,
        name="face",
        audio_path=audio_path,
        extras={"generator": "memorytalker export_face_glb", "targets": "ARKit", **(extras or {})},
    )
