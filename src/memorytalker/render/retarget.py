"""Play an ARKit weight track on someone else's character: ``memorytalker retarget WEIGHTS.csv AVATAR.glb``.

The avatar is a glTF 2.0 binary (``.glb``) whose meshes carry ARKit-named morph targets (Ready Player Me,
VRM "perfect sync", many Unity / three.js / Blender characters). Target names are read from
``mesh.extras.targetNames`` (the convention three.js, Blender and Unity's importers use) or, failing that,
from the first primitive's ``extras.targetNames``, and matched to the 52 ARKit names by
:func:`arkit_index`: case-insensitively, ignoring ``_ - . space``, with ``_L``/``_R``/``.L``/``Left``
spellings of the side (``eyeBlinkLeft`` = ``EyeBlinkLeft`` = ``eyeBlink_L`` = ``eye_blink_left``), and
with a namespace before the last ``.`` or ``:`` dropped when the whole name does not match
(``blendShape1.jawOpen``, ``ARKit:jawOpen``).

The output is the avatar file with everything it had kept byte for byte -- meshes, materials, textures,
skins, nodes, its own animations -- plus:

* one animation (named ``speech`` unless ``--name``) with a ``weights`` channel on every node whose mesh has
  at least one ARKit target: one keyframe per frame of the track at ``t = i / fps``, LINEAR; the weight of
  a target that maps to an ARKit name follows the track, every other target of that mesh stays at the
  mesh's default weight (``mesh.weights``, or 0);
* the animation's data appended to the GLB's binary chunk (new buffer views and accessors), and
  ``asset.extras.retarget`` recording the track, its frame rate and the names mapped and not mapped.

:class:`RetargetReport` says which targets were mapped, which avatar targets map to no ARKit name, and which
ARKit channels of the track the avatar lacks. An avatar with no ARKit-named target is refused with an error
listing the target names it has. The file is written to a temporary name and renamed at the end.
"""

from __future__ import annotations

import json
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from memorytalker.face.arkit import ARKIT_NAMES
from memorytalker.render.errors import ExportError
from memorytalker.render.export import _CHUNK_BIN, _CHUNK_JSON, _FLOAT, _GLB_MAGIC, _Bin, write_glb


class RetargetError(ExportError):
    """An avatar or track that cannot be retargeted (the message says which file and why)."""


def _key(name: str) -> str:
    """Canonical form of a blendshape name: lower case, side as ``left``/``right``, no separators."""
    s = name.strip()
    s = re.sub(r"(?i)[_.\-\s]l$", "left", s)
    s = re.sub(r"(?i)[_.\-\s]r$", "right", s)
    return re.sub(r"[_.\-\s]", "", s).lower()


_ARKIT_KEYS = {_key(n): i for i, n in enumerate(ARKIT_NAMES)}


def arkit_index(name: str) -> int | None:
    """Index in :data:`ARKIT_NAMES` of a blendshape name in any usual spelling, or None."""
    hit = _ARKIT_KEYS.get(_key(name))
    if hit is None:
        tail = re.split(r"[.:|]", name)[-1]
        if tail != name:
            hit = _ARKIT_KEYS.get(_key(tail))
    return hit


@dataclass
class RetargetReport:
    """What :func:`retarget_glb` did.

    Attributes:
        path: the written ``.glb``.
        mapped: ``{mesh name: {target name: ARKit name}}``.
        unmapped_targets: ``{mesh name: [target names that map to no ARKit name]}``.
        missing_arkit: ARKit names of the track that no mesh of the avatar has.
        frames, fps: the track.
    """

    path: Path
    mapped: dict[str, dict[str, str]] = field(default_factory=dict)
    unmapped_targets: dict[str, list[str]] = field(default_factory=dict)
    missing_arkit: list[str] = field(default_factory=list)
    frames: int = 0
    fps: float = 0.0

    def summary(self) -> str:
        n = sum(len(m) for m in self.mapped.values())
        used = {a for m in self.mapped.values() for a in m.values()}
        lines = [
            f"{self.path}: {self.frames} frames at {self.fps:g} fps on {len(self.mapped)} mesh(es), "
            f"{n} targets driven by {len(used)} of the track's {len(ARKIT_NAMES)} ARKit channels"
        ]
        for mesh, names in self.unmapped_targets.items():
            if names:
                lines.append(f"  {mesh}: {len(names)} targets map to no ARKit name: {', '.join(names)}")
        if self.missing_arkit:
            lines.append(f"  the avatar has no target for: {', '.join(self.missing_arkit)}")
        return "\n".join(lines)


def read_glb(path: str | Path) -> tuple[dict, bytes]:
    """The JSON and the binary chunk (``b''`` if none) of a ``.glb`` file.

    Raises:
        RetargetError: not a glTF 2.0 binary, or a truncated / inconsistent container.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RetargetError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) < 20:
        raise RetargetError(f"{path}: not a .glb (only {len(data)} bytes)")
    magic, version, total = struct.unpack_from("<III", data, 0)
    if magic != _GLB_MAGIC:
        raise RetargetError(
            f"{path}: not a glTF binary (.glb): bad magic (a .gltf text file? pack it as .glb)"
        )
    if version != 2:
        raise RetargetError(f"{path}: glTF version {version}; only 2.0 is supported")
    if total > len(data):
        raise RetargetError(f"{path}: truncated ({len(data)} of {total} bytes)")
    gltf, binary, off = None, b"", 12
    while off + 8 <= total:
        length, kind = struct.unpack_from("<II", data, off)
        chunk = data[off + 8 : off + 8 + length]
        if len(chunk) != length:
            raise RetargetError(f"{path}: truncated chunk at byte {off}")
        if kind == _CHUNK_JSON and gltf is None:
            try:
                gltf = json.loads(chunk.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise RetargetError(f"{path}: its JSON chunk does not parse: {exc}") from None
        elif kind == _CHUNK_BIN and not binary:
            binary = chunk
        off += 8 + length
    if not isinstance(gltf, dict):
        raise RetargetError(f"{path}: no JSON chunk")
    return gltf, binary


def _target_names(mesh: dict) -> list[str] | None:
    prims = mesh.get("primitives") or []
    count = max((len(p.get("targets") or []) for p in prims), default=0)
    for holder in (mesh, prims[0] if prims else {}):
        names = (holder.get("extras") or {}).get("targetNames")
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            if count and len(names) != count:
                return None
            return names
    return None


def retarget_glb(
    weights: np.ndarray,
    fps: float,
    avatar: str | Path,
    out: str | Path,
    name: str = "speech",
    track: str | None = None,
) -> RetargetReport:
    """Add the ARKit track ``weights`` ``(T, 52)`` at ``fps`` to ``avatar`` as one animation; write ``out``.

    Raises:
        RetargetError: unreadable avatar, no ARKit-named targets (the message lists what there is), a
            binary buffer stored outside the file, bad weights.
    """
    avatar, out = Path(avatar), Path(out)
    w = np.asarray(weights, dtype=np.float32)
    if w.ndim != 2 or w.shape[1] != len(ARKIT_NAMES) or w.shape[0] < 1:
        raise RetargetError(f"weights must be (T >= 1, {len(ARKIT_NAMES)}), got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise RetargetError("the weight track contains NaN/Inf")
    if not (np.isfinite(fps) and fps > 0):
        raise RetargetError(f"fps must be positive, got {fps!r}")
    if out.suffix.lower() != ".glb":
        raise RetargetError(f"expected a .glb output path, got {out}")
    if out.resolve() == avatar.resolve():
        raise RetargetError(f"{out}: the output would overwrite the avatar; write to another file")
    gltf, binary = read_glb(avatar)
    meshes = gltf.get("meshes") or []
    report = RetargetReport(path=out, frames=int(w.shape[0]), fps=float(fps))
    driven: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # mesh -> (ARKit index per target or -1, default)
    seen: list[str] = []
    for m, mesh in enumerate(meshes):
        names = _target_names(mesh)
        if not names:
            continue
        label = mesh.get("name") or f"mesh {m}"
        seen.extend(names)
        idx = np.array([-1 if (j := arkit_index(n)) is None else j for n in names], dtype=np.int64)
        if (idx >= 0).any():
            default = np.zeros(len(names), np.float32)
            if isinstance(mesh.get("weights"), list) and len(mesh["weights"]) == len(names):
                default[:] = mesh["weights"]
            driven[m] = (idx, default)
            report.mapped[label] = {n: ARKIT_NAMES[j] for n, j in zip(names, idx, strict=True) if j >= 0}
        report.unmapped_targets[label] = [n for n, j in zip(names, idx, strict=True) if j < 0]
    if not driven:
        listed = ", ".join(dict.fromkeys(seen)) if seen else "no named morph targets at all"
        raise RetargetError(f"{avatar}: no ARKit-named morph targets to drive (it has: {listed})")
    used = {j for idx, _ in driven.values() for j in idx if j >= 0}
    report.missing_arkit = [n for j, n in enumerate(ARKIT_NAMES) if j not in used]
    nodes = [(i, n["mesh"]) for i, n in enumerate(gltf.get("nodes") or []) if n.get("mesh") in driven]
    if not nodes:
        raise RetargetError(
            f"{avatar}: the meshes with ARKit targets are on no node, so nothing can play them"
        )
    buffers = gltf.setdefault("buffers", [])
    if buffers and "uri" in buffers[0]:
        raise RetargetError(
            f"{avatar}: its buffer 0 is an external file; pack the avatar as a self-contained .glb"
        )
    if not buffers:
        buffers.append({"byteLength": 0})
    # the avatar's binary chunk, buffer views and accessors, extended in place by the animation's data
    b = _Bin()
    b.data = bytearray(binary[: buffers[0].get("byteLength", len(binary))])
    b.views, b.accessors = gltf.setdefault("bufferViews", []), gltf.setdefault("accessors", [])

    def add(array: np.ndarray, minmax: bool = False) -> int:
        return b.add(np.asarray(array, dtype=np.float32).reshape(-1), "SCALAR", _FLOAT, minmax=minmax)

    t = w.shape[0]
    times = np.arange(t, dtype=np.float64) / float(fps)
    if t == 1:  # glTF needs an interval: hold the single frame for one frame's time
        times, w = np.array([0.0, 1.0 / fps]), np.repeat(w, 2, axis=0)
    t_acc = add(times, minmax=True)
    samplers, channels, outputs = [], [], {}
    for node, m in nodes:
        if m not in outputs:
            idx, default = driven[m]
            track_w = np.where(idx[None, :] >= 0, w[:, np.maximum(idx, 0)], default[None, :])
            samplers.append({"input": t_acc, "output": add(track_w), "interpolation": "LINEAR"})
            outputs[m] = len(samplers) - 1
        channels.append({"sampler": outputs[m], "target": {"node": node, "path": "weights"}})
    gltf.setdefault("animations", []).append({"name": name, "channels": channels, "samplers": samplers})
    data = b.data
    data.extend(b"\x00" * (-len(data) % 4))
    buffers[0]["byteLength"] = len(data)
    extras = gltf.setdefault("asset", {"version": "2.0"}).setdefault("extras", {})
    if isinstance(extras, dict):
        extras["retarget"] = {
            "track": track,
            "fps": float(fps),
            "frames": int(report.frames),
            "animation": name,
            "mapped": sum(len(v) for v in report.mapped.values()),
            "missing_arkit": report.missing_arkit,
        }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    try:
        write_glb(tmp, gltf, bytes(data))
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return report


__all__ = ["RetargetError", "RetargetReport", "arkit_index", "read_glb", "retarget_glb"]
