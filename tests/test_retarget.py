"""retarget: an ARKit track onto an avatar the test builds itself (names in several spellings, a skin, an
animation of its own), checked with an independent glTF reader (pygltflib)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from memorytalker.face.arkit import ARKIT_NAMES, NUM_ARKIT
from memorytalker.face.livelink import write_live_link_csv
from memorytalker.render.export import GlbPrimitive, write_glb, write_morph_glb
from memorytalker.render.retarget import RetargetError, arkit_index, read_glb, retarget_glb

pygltflib = pytest.importorskip("pygltflib")

AVATAR_TARGETS = ["eyeBlink_L", "EyeBlinkRight", "jawOpen", "MOUTHCLOSE", "blendShape1.mouthFunnel", "wink"]


def _avatar(path, names=AVATAR_TARGETS):
    """A quad with ``names`` as morph targets, its own 'idle' animation, then a skin and a joint node."""
    base = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], np.float32)
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    targets = np.zeros((len(names), 4, 3), np.float32)
    targets[:, 2, 2] = np.arange(1, len(names) + 1)
    prim = GlbPrimitive("skin", base, faces, targets)
    idle = np.zeros((3, len(names)), np.float32)
    write_morph_glb(path, [prim], list(names), idle, 30, name="avatar")
    gltf, binary = read_glb(path)
    gltf["animations"][0]["name"] = "idle"
    # a valid skin: every vertex bound to joint 0 (JOINTS_0 / WEIGHTS_0 appended to the binary chunk)
    binary = bytearray(binary)
    for attr, arr, comp in (
        ("JOINTS_0", np.zeros((4, 4), np.uint16), 5123),
        ("WEIGHTS_0", np.tile(np.float32([1, 0, 0, 0]), (4, 1)), 5126),
    ):
        binary.extend(b"\x00" * (-len(binary) % 4))
        gltf["bufferViews"].append({"buffer": 0, "byteOffset": len(binary), "byteLength": arr.nbytes})
        binary.extend(arr.tobytes())
        gltf["accessors"].append(
            {"bufferView": len(gltf["bufferViews"]) - 1, "componentType": comp, "count": 4, "type": "VEC4"}
        )
        gltf["meshes"][0]["primitives"][0]["attributes"][attr] = len(gltf["accessors"]) - 1
    binary.extend(b"\x00" * (-len(binary) % 4))
    gltf["buffers"][0]["byteLength"] = len(binary)
    gltf["nodes"].append({"name": "root_joint"})
    gltf["nodes"][0]["skin"] = 0
    gltf["skins"] = [{"joints": [1], "name": "rig"}]
    gltf["scenes"][0]["nodes"] = [0, 1]
    write_glb(path, gltf, bytes(binary))
    return gltf


def _track(tmp_path, frames=45, fps=30):
    w = np.zeros((frames, NUM_ARKIT), np.float32)
    t = np.arange(frames)
    w[:, ARKIT_NAMES.index("jawOpen")] = 0.5 + 0.5 * np.sin(t / 5)
    w[:, ARKIT_NAMES.index("mouthClose")] = (t % 10) / 10
    w[:, ARKIT_NAMES.index("eyeBlinkLeft")] = (t == 20).astype(np.float32)
    w[:, ARKIT_NAMES.index("mouthFunnel")] = 0.25
    return write_live_link_csv(tmp_path / "track.csv", w, fps), w


def _accessor(gl, binary, index):
    acc = gl.accessors[index]
    view = gl.bufferViews[acc.bufferView]
    start = view.byteOffset + (acc.byteOffset or 0)
    return np.frombuffer(binary[start : start + view.byteLength], np.uint8)  # the raw bytes


def test_name_spellings():
    assert arkit_index("eyeBlinkLeft") == arkit_index("EyeBlinkLeft") == arkit_index("eyeBlink_L") == 0
    assert arkit_index("eye_blink_left") == 0 and arkit_index("EYEBLINK.L") == 0
    assert arkit_index("blendShape1.jawOpen") == ARKIT_NAMES.index("jawOpen")
    assert arkit_index("ARKit:mouthSmile_R") == ARKIT_NAMES.index("mouthSmileRight")
    assert arkit_index("wink") is None and arkit_index("jaw") is None


def test_retarget_plays_the_track_and_keeps_the_avatar(tmp_path):
    from memorytalker.face.livelink import read_live_link_csv

    src = tmp_path / "avatar.glb"
    before = _avatar(src)
    csv_path, w = _track(tmp_path)
    take = read_live_link_csv(csv_path)
    out = tmp_path / "out.glb"
    report = retarget_glb(take.weights, take.fps, src, out, track="track.csv")
    assert report.mapped["avatar"] == {
        "eyeBlink_L": "eyeBlinkLeft",
        "EyeBlinkRight": "eyeBlinkRight",
        "jawOpen": "jawOpen",
        "MOUTHCLOSE": "mouthClose",
        "blendShape1.mouthFunnel": "mouthFunnel",
    }
    assert report.unmapped_targets["avatar"] == ["wink"]
    assert "tongueOut" in report.missing_arkit and "jawOpen" not in report.missing_arkit
    assert "wink" in report.summary()

    gl = pygltflib.GLTF2().load(str(out))
    binary = gl.binary_blob()
    assert [a.name for a in gl.animations] == ["idle", "speech"]
    assert gl.skins[0].joints == [1] and gl.nodes[0].skin == 0
    assert len(gl.materials) == len(before["materials"])
    # the avatar's own data is untouched: every original accessor reads the same bytes
    _, old_bin = read_glb(src)
    old = pygltflib.GLTF2().load(str(src))
    for i in range(len(old.accessors)):
        np.testing.assert_array_equal(_accessor(gl, binary, i), _accessor(old, old_bin, i))
    speech = gl.animations[1]
    assert speech.channels[0].target.node == 0 and speech.channels[0].target.path == "weights"
    sampler = speech.samplers[0]
    times = _accessor(gl, binary, sampler.input).view("<f4")
    np.testing.assert_allclose(times, np.arange(45) / 30, atol=1e-6)
    assert gl.accessors[sampler.input].max == [pytest.approx(44 / 30)]
    vals = _accessor(gl, binary, sampler.output).view("<f4").reshape(45, len(AVATAR_TARGETS))
    for k, name in enumerate(AVATAR_TARGETS[:5]):
        j = arkit_index(name)
        np.testing.assert_allclose(vals[:, k], w[:, j], atol=1e-6, err_msg=name)
    assert not vals[:, 5].any()  # 'wink' holds its default weight
    # the GLB container is consistent: declared length = file size, BIN chunk covers the buffer
    data = out.read_bytes()
    assert struct.unpack_from("<I", data, 8)[0] == len(data)
    assert gl.buffers[0].byteLength <= len(binary)
    assert json.loads(json.dumps(gl.asset.extras))["retarget"]["frames"] == 45


def test_refusals(tmp_path):
    src = tmp_path / "plain.glb"
    _avatar(src, names=["smile", "frown"])
    w = np.zeros((10, NUM_ARKIT), np.float32)
    with pytest.raises(RetargetError, match=r"no ARKit-named morph targets.*smile, frown"):
        retarget_glb(w, 30, src, tmp_path / "o.glb")
    assert not (tmp_path / "o.glb").exists()
    good = tmp_path / "good.glb"
    _avatar(good)
    with pytest.raises(RetargetError, match="overwrite the avatar"):
        retarget_glb(w, 30, good, good)
    bad = w.copy()
    bad[3, 4] = np.nan
    with pytest.raises(RetargetError, match="NaN"):
        retarget_glb(bad, 30, good, tmp_path / "o.glb")
    (tmp_path / "text.glb").write_text('{"asset": {"version": "2.0"}}')
    with pytest.raises(RetargetError, match="not a glTF binary"):
        retarget_glb(w, 30, tmp_path / "text.glb", tmp_path / "o.glb")
    assert not (tmp_path / "o.glb").exists()


def test_cli_retarget(tmp_path, capsys):
    from memorytalker.cli import main

    src = tmp_path / "avatar.glb"
    _avatar(src)
    csv_path, _ = _track(tmp_path)
    assert main(["retarget", str(csv_path), str(src), "--out", str(tmp_path / "o.glb")]) == 0
    out = capsys.readouterr().out
    assert "45 frames at 30 fps" in out and "wink" in out
    assert (tmp_path / "o.glb").stat().st_size > src.stat().st_size
