"""Export: the GLB re-read with pygltflib (an independent reader), OBJ/PLY sequences, .npy, the CLI."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import soundfile as sf
from test_render_meshes import open_mouth, sphere_head

from memorytalker.render import ExportError, export_glb, export_npy, export_sequence
from memorytalker.render.export import DEFAULT_RELATIVE_ERROR, pca_morph_targets

FPS = 30.0


def _motion(topo, frames: int = 45, modes: int = 5, seed: int = 0) -> np.ndarray:
    """``(T, V, 3)``: lips opening plus ``modes`` smooth random deformations (rank ``modes + 1``)."""
    rng = np.random.default_rng(seed)
    seq = open_mouth(topo, 0.2 * np.abs(np.sin(np.arange(frames) / 4)).astype(np.float32)).astype(np.float64)
    for m in range(modes):
        shape = rng.normal(size=seq.shape[1:]) * 0.003
        seq += np.sin(np.arange(frames) / (2.0 + m) + m)[:, None, None] * shape[None]
    return seq.astype(np.float32)


# ------------------------------------------------------------------------------------------ pygltflib reader
_DTYPES = {5126: np.float32, 5125: np.uint32, 5123: np.uint16, 5121: np.uint8}
_WIDTH = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}


def _read(gltf, index: int) -> np.ndarray:
    acc = gltf.accessors[index]
    view = gltf.bufferViews[acc.bufferView]
    blob = gltf.binary_blob()
    dtype = np.dtype(_DTYPES[acc.componentType])
    width = _WIDTH[acc.type]
    start = (view.byteOffset or 0) + (acc.byteOffset or 0)
    assert view.byteStride in (None, 0, dtype.itemsize * width)
    arr = np.frombuffer(blob, dtype=dtype, count=acc.count * width, offset=start)
    return arr.reshape(acc.count, width) if width > 1 else arr


def _load(path):
    import pygltflib

    return pygltflib.GLTF2().load(str(path))


def _sample(times: np.ndarray, values: np.ndarray, t: float) -> np.ndarray:
    """glTF LINEAR sampling of keyframes ``values (N, K)`` at time ``t``."""
    i = int(np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2))
    a = (t - times[i]) / (times[i + 1] - times[i])
    return (1 - a) * values[i] + a * values[i + 1]


def test_glb_reread_with_pygltflib_reproduces_the_frames(tmp_path):
    topo = sphere_head()
    seq = _motion(topo)
    out = export_glb(seq, topo.faces, FPS, tmp_path / "anim.glb")
    g = _load(out)

    assert g.asset.version == "2.0"
    prim = g.meshes[0].primitives[0]
    assert prim.mode in (None, 4)
    np.testing.assert_array_equal(_read(g, prim.indices).reshape(-1, 3), topo.faces)
    base = _read(g, prim.attributes.POSITION)
    normals = _read(g, prim.attributes.NORMAL)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    # spec: POSITION accessors (base and targets) carry exact min/max; views are 4-byte aligned with targets
    pos_accessors = [prim.attributes.POSITION] + [t["POSITION"] for t in prim.targets]
    for i in pos_accessors:
        data = _read(g, i)
        np.testing.assert_array_equal(g.accessors[i].min, data.min(0))
        np.testing.assert_array_equal(g.accessors[i].max, data.max(0))
        assert g.bufferViews[g.accessors[i].bufferView].target == 34962
    assert g.bufferViews[g.accessors[prim.indices].bufferView].target == 34963
    assert all((v.byteOffset or 0) % 4 == 0 for v in g.bufferViews)
    k = len(prim.targets)
    assert 1 <= k <= 8
    assert g.meshes[0].extras["targetNames"] == [f"pca_{i:02d}" for i in range(k)]
    targets = np.stack([_read(g, t["POSITION"]) for t in prim.targets])

    anim = g.animations[0]
    assert len(anim.channels) == 1
    ch, sampler = anim.channels[0], anim.samplers[0]
    assert ch.target.path == "weights" and g.nodes[ch.target.node].mesh == 0
    assert sampler.interpolation == "LINEAR"
    times = _read(g, sampler.input)
    weights = _read(g, sampler.output).reshape(len(times), k)
    np.testing.assert_allclose(times, np.arange(len(seq)) / FPS, rtol=1e-6)
    assert g.accessors[sampler.input].min == [0.0] and g.accessors[sampler.input].max[0] == pytest.approx(
        times[-1]
    )
    assert weights.min() >= 0.0 and weights.max() <= 1.0
    np.testing.assert_allclose(g.meshes[0].weights, weights[0], atol=1e-6)

    extras = g.asset.extras
    diag = float(np.linalg.norm(seq[0].max(0) - seq[0].min(0)))
    assert extras["tolerance"] == pytest.approx(DEFAULT_RELATIVE_ERROR * diag)
    assert extras["frames"] == len(seq) and extras["fps"] == FPS and extras["morph_targets"] == k

    def position(t: float) -> np.ndarray:
        return base + np.tensordot(_sample(times, weights, t), targets, axes=1)

    tol = extras["tolerance"] * 1.01
    for frame in (0, 7, len(seq) // 2, len(seq) - 1):
        err = np.linalg.norm(position(frame / FPS) - seq[frame], axis=1).max()
        assert err <= tol, (frame, err)
    # between keyframes the animation is the linear interpolation of the frames
    t = 10.4 / FPS
    expected = 0.6 * seq[10] + 0.4 * seq[11]
    assert np.linalg.norm(position(t) - expected, axis=1).max() <= tol


def test_glb_binary_container_layout(tmp_path):
    topo = sphere_head()
    out = export_glb(_motion(topo, frames=12), topo.faces, FPS, tmp_path / "a.glb")
    raw = out.read_bytes()
    magic, version, length = struct.unpack_from("<III", raw, 0)
    assert (magic, version, length) == (0x46546C67, 2, len(raw))
    json_len, json_type = struct.unpack_from("<II", raw, 12)
    assert json_type == 0x4E4F534A and json_len % 4 == 0
    doc = json.loads(raw[20 : 20 + json_len])
    bin_len, bin_type = struct.unpack_from("<II", raw, 20 + json_len)
    assert bin_type == 0x004E4942 and bin_len % 4 == 0 and 28 + json_len + bin_len == len(raw)
    assert doc["buffers"][0]["byteLength"] <= bin_len and "uri" not in doc["buffers"][0]
    for view in doc["bufferViews"]:
        assert view["byteOffset"] + view["byteLength"] <= doc["buffers"][0]["byteLength"]
    assert doc["materials"][0]["doubleSided"] is True


def test_morph_count_follows_the_motion_rank_and_the_cap():
    topo = sphere_head()
    v = np.asarray(topo.vertices, dtype=np.float64)
    rng = np.random.default_rng(3)
    shapes = rng.normal(size=(3, *v.shape)) * 0.002 * np.array([1.0, 0.3, 0.01])[:, None, None]
    coef = rng.normal(size=(40, 3))
    seq = (v[None] + np.tensordot(coef, shapes, axes=1)).astype(np.float32)
    morph = pca_morph_targets(seq)
    assert morph.targets.shape[0] == 3  # rank-3 motion: exactly 3 targets needed and enough
    assert morph.max_error <= morph.tolerance
    np.testing.assert_allclose(morph.reconstruct(), seq, atol=morph.tolerance)
    with pytest.raises(ExportError, match="max_targets=2"):
        pca_morph_targets(seq, max_targets=2)
    # a looser tolerance (above the smallest mode's size, below the second's) needs fewer targets
    assert pca_morph_targets(seq, max_error=1e-3).targets.shape[0] == 2


def test_single_frame_glb_is_a_static_mesh(tmp_path):
    topo = sphere_head()
    g = _load(export_glb(np.asarray(topo.vertices)[None], topo.faces, FPS, tmp_path / "s.glb"))
    prim = g.meshes[0].primitives[0]
    assert not g.animations and not prim.targets
    np.testing.assert_allclose(_read(g, prim.attributes.POSITION), topo.vertices, atol=1e-7)


def test_glb_audio_is_placed_next_to_the_file_and_referenced(tmp_path):
    topo = sphere_head()
    seq = _motion(topo, frames=15)
    # a WAV elsewhere is copied next to the .glb
    src = tmp_path / "in" / "speech.wav"
    src.parent.mkdir()
    sf.write(src, np.zeros(8000, np.float32), 16000)
    g = _load(export_glb(seq, topo.faces, FPS, tmp_path / "out" / "my face.glb", audio_path=src))
    audio = g.asset.extras["audio"]
    assert audio["uri"] == "my%20face.wav" and audio["mimeType"] == "audio/wav"
    assert audio["duration"] == pytest.approx(0.5)
    assert (tmp_path / "out" / "my face.wav").is_file()
    # a WAV already in the folder is referenced as it is
    g = _load(export_glb(seq, topo.faces, FPS, tmp_path / "in" / "x.glb", audio_path=src))
    assert g.asset.extras["audio"]["uri"] == "speech.wav" and not (tmp_path / "in" / "x.wav").exists()
    # another format is decoded and written as WAV
    flac = tmp_path / "in" / "speech.flac"
    sf.write(flac, 0.1 * np.ones(4410, np.float32), 44100)
    g = _load(export_glb(seq, topo.faces, FPS, tmp_path / "in" / "y.glb", audio_path=flac))
    assert g.asset.extras["audio"]["uri"] == "y.wav"
    assert sf.info(str(tmp_path / "in" / "y.wav")).samplerate == 16000
    with pytest.raises(Exception, match="not found"):
        export_glb(seq, topo.faces, FPS, tmp_path / "z.glb", audio_path=tmp_path / "missing.wav")


def test_bad_input_is_refused(tmp_path):
    topo = sphere_head()
    seq = _motion(topo, frames=6)
    seq[4, 3, 0] = np.inf
    with pytest.raises(ExportError, match="frame 4 has NaN/Inf"):
        export_glb(seq, topo.faces, FPS, tmp_path / "a.glb")
    with pytest.raises(ExportError, match="no triangles"):
        export_glb(_motion(topo, frames=6), np.zeros((0, 3), int), FPS, tmp_path / "a.glb")
    with pytest.raises(ExportError, match="another vertex count"):
        export_glb(_motion(topo, frames=6)[:, :100], topo.faces, FPS, tmp_path / "a.glb")
    with pytest.raises(ExportError, match=".glb"):
        export_glb(_motion(topo, frames=6), topo.faces, FPS, tmp_path / "a.gltf")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["obj", "ply"])
def test_sequence_export_reads_back(tmp_path, fmt):
    from memorytalker.topology import load_mesh

    topo = sphere_head()
    seq = _motion(topo, frames=4)
    paths = export_sequence(seq, topo.faces, tmp_path / "seq", fmt=fmt, progress=False)
    assert [p.name for p in paths] == [f"frame_{i:05d}.{fmt}" for i in range(4)]
    for i in (0, 3):
        verts, faces = load_mesh(paths[i])
        np.testing.assert_allclose(verts, seq[i], atol=1e-7)
        np.testing.assert_array_equal(faces, topo.faces)
    with pytest.raises(ExportError, match="'obj' or 'ply'"):
        export_sequence(seq, topo.faces, tmp_path / "x", fmt="stl")


def test_npy_export(tmp_path):
    topo = sphere_head()
    seq = _motion(topo, frames=3)
    out = export_npy(seq.reshape(3, -1).astype(np.float64), tmp_path / "v.npy")
    loaded = np.load(out)
    assert loaded.dtype == np.float32 and loaded.shape == seq.shape
    np.testing.assert_allclose(loaded, seq)


def test_export_command(tmp_path, capsys):
    import warnings

    from memorytalker.cli import main
    from memorytalker.topology import save_mesh

    topo = sphere_head()
    seq = _motion(topo, frames=10)
    np.save(tmp_path / "v.npy", seq)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        topo.save(tmp_path / "topology.npz")
    save_mesh(tmp_path / "mesh.ply", topo.vertices, topo.faces)
    sf.write(tmp_path / "a.wav", np.zeros(5000, np.float32), 16000)
    v = str(tmp_path / "v.npy")
    assert (
        main(
            [
                "export",
                v,
                "--topology",
                str(tmp_path / "topology.npz"),
                "--format",
                "glb",
                "--out",
                str(tmp_path / "o" / "f.glb"),
                "--audio",
                str(tmp_path / "a.wav"),
            ]
        )
        == 0
    )
    g = _load(tmp_path / "o" / "f.glb")
    assert g.asset.extras["fps"] == 30 and (tmp_path / "o" / "f.wav").is_file()
    assert (
        main(
            [
                "export",
                v,
                "--mesh",
                str(tmp_path / "mesh.ply"),
                "--format",
                "ply",
                "--out",
                str(tmp_path / "plys"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "plys").glob("frame_*.ply"))) == 10
    assert main(["export", v, "--out", str(tmp_path / "copy.npy")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "copy.npy"), seq)
    capsys.readouterr()
    other = sphere_head(subdivisions=2)
    save_mesh(tmp_path / "small.ply", other.vertices, other.faces)
    assert (
        main(
            [
                "export",
                v,
                "--mesh",
                str(tmp_path / "small.ply"),
                "--format",
                "glb",
                "--out",
                str(tmp_path / "bad.glb"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "642 vertices" in err and "162 vertices" in err
    assert main(["export", v, "--format", "obj", "--out", str(tmp_path / "objs")]) == 2
    assert "--mesh" in capsys.readouterr().err
