"""Inference API and the ``animate`` command on a tiny, randomly initialised checkpoint: any audio source,
rate and channel count; clear errors for bad audio, wrong-topology templates and a missing default model."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch
from test_model_common import randomize_head, speechlike, tiny_config, tiny_topology

from memorytalker import inference
from memorytalker.cli import main as cli_main
from memorytalker.errors import AudioError, CheckpointError, TopologyError
from memorytalker.inference import Animator, animate
from memorytalker.models.loaders import save_checkpoint
from memorytalker.models.memorytalker import MemoryTalker
from memorytalker.topology import save_mesh


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    cfg = tiny_config(style=True)
    topo = tiny_topology(25.0)
    model = MemoryTalker(cfg, topo)
    randomize_head(model)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", model, topo)


@pytest.fixture(scope="module")
def animator(checkpoint):
    return Animator(checkpoint)


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    sf.write(path, speechlike(1.2), 16000)
    return path


def test_animate_path_bytes_and_arrays(animator, wav):
    assert animator.fps == 25.0 and animator.topology.num_vertices == 12
    from_path = animator.animate(wav)
    assert from_path.shape == (30, 12, 3) and from_path.dtype == np.float32
    assert not np.allclose(from_path, from_path[:1])  # it moves
    np.testing.assert_allclose(animator.animate(wav.read_bytes()), from_path, atol=1e-6)
    # 44.1 kHz stereo array: resampled, downmixed; T follows the duration
    x = speechlike(2.0, seed=4)
    stereo = np.stack([x, x], axis=1)
    import scipy.signal

    stereo = scipy.signal.resample_poly(stereo, 441, 160, axis=0).astype(np.float32)
    out = animator.animate(stereo, sample_rate=44100)
    assert out.shape == (50, 12, 3)
    # int16 PCM array and any other container format
    pcm = (x * 32767).astype(np.int16)
    assert animator.animate(pcm, sample_rate=16000).shape == (50, 12, 3)
    buf = io.BytesIO()
    sf.write(buf, x, 16000, format="FLAC")
    assert animator.animate(buf.getvalue()).shape == (50, 12, 3)


def test_templates(animator, wav, tmp_path):
    ref = animator.animate(wav)
    shifted = np.array(animator.topology.vertices) + np.float32(0.1)
    out = animator.animate(wav, template=shifted)
    # the template is where offsets are added: a shifted template shifts the output... plus the model
    # sees no template in its input, so the motion is the same
    np.testing.assert_allclose(out - shifted, ref - np.array(animator.topology.vertices), atol=1e-5)
    mesh = tmp_path / "neutral.ply"
    save_mesh(mesh, shifted, animator.topology.faces)
    np.testing.assert_allclose(animator.animate(wav, template=mesh), out, atol=1e-5)
    np.save(tmp_path / "neutral.npy", shifted.reshape(-1))
    np.testing.assert_allclose(animator.animate(wav, template=tmp_path / "neutral.npy"), out, atol=1e-5)
    with pytest.raises(TopologyError, match=r"7 vertices.*has 12"):
        animator.animate(wav, template=np.zeros((7, 3), np.float32))
    other = tmp_path / "other.ply"
    save_mesh(other, np.random.default_rng(0).normal(size=(20, 3)), np.array([[0, 1, 2]]))
    with pytest.raises(TopologyError, match=r"20 vertices.*has 12"):
        animator.animate(wav, template=other)
    with pytest.raises(TopologyError, match="not found"):
        animator.animate(wav, template=tmp_path / "missing.ply")


def test_bad_audio_errors(animator, tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match="junk.wav"):
        animator.animate(junk)
    with pytest.raises(AudioError):
        animator.animate(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match="no samples"):
        animator.animate(np.zeros(0, np.float32), sample_rate=16000)
    with pytest.raises(AudioError, match="silent"):
        animator.animate(np.zeros(16000, np.float32), sample_rate=16000)
    with pytest.raises(AudioError, match="sample_rate"):
        animator.animate(np.ones(16000, np.float32) * 0.1)


def test_default_checkpoint_missing_is_a_clear_error(monkeypatch, tmp_path, wav):
    monkeypatch.setattr(inference, "asset_path", lambda name: tmp_path / name)
    with pytest.raises(CheckpointError, match="default model is not bundled"):
        Animator()
    with pytest.raises(CheckpointError, match="default model is not bundled"):
        animate(wav)
    assert cli_main(["animate", str(wav), "--out", str(tmp_path / "o"), "--no-video", "--no-glb"]) == 2
    assert cli_main(["animate", "--out", str(tmp_path / "o"), "--no-video", "--no-glb"]) == 2  # no example


def test_module_level_animate_and_bad_checkpoint(checkpoint, wav, tmp_path):
    out = animate(wav, checkpoint=checkpoint)
    assert out.shape == (30, 12, 3)
    with pytest.raises(CheckpointError):
        Animator(tmp_path / "none.pt")


def test_animate_command_writes_npy_video_and_glb(checkpoint, wav, tmp_path):
    out = tmp_path / "out"
    assert (
        cli_main(["animate", str(wav), "--checkpoint", str(checkpoint), "--out", str(out), "--size", "64"])
        == 0
    )
    vertices = np.load(out / "speech.npy")
    assert vertices.shape == (30, 12, 3)
    assert (out / "speech.mp4").stat().st_size > 0 and (out / "speech.glb").stat().st_size > 0
    only = tmp_path / "only"
    assert (
        cli_main(["animate", str(wav), "-c", str(checkpoint), "-o", str(only), "--no-video", "--no-glb"]) == 0
    )
    assert sorted(p.name for p in only.iterdir()) == ["speech.npy"]
