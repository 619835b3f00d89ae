"""The Whisper backbone (tiny, randomly initialised Whisper configs saved with save_pretrained and loaded by
path; nothing downloads): Whisper's log-mel against transformers' feature extractor, the truncated encoder
against transformers' own forward, batching, freezing, the feature cache, windows, errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from test_model_common import make_batch, speechlike, tiny_config, tiny_topology

from memorytalker.errors import ConfigError
from memorytalker.models.backbones.whisper import INPUT_RMS, WhisperCTC, WhisperLogMel
from memorytalker.models.config import BackboneConfig, ModelConfig
from memorytalker.models.losses import LossWeights, compute_losses
from memorytalker.models.memorytalker import MemoryTalker

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("hf_offline")
from transformers.models.whisper.modeling_whisper import WhisperEncoder, WhisperModel  # noqa: E402

TINY = dict(
    d_model=16,
    encoder_layers=3,
    encoder_attention_heads=2,
    encoder_ffn_dim=32,
    decoder_layers=1,
    decoder_attention_heads=2,
    decoder_ffn_dim=32,
    num_mel_bins=80,
    max_source_positions=1500,
    vocab_size=64,
    max_target_positions=16,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
    decoder_start_token_id=1,
)


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    torch.manual_seed(0)
    encoder = WhisperEncoder(transformers.WhisperConfig(**TINY))
    path = tmp_path_factory.mktemp("whisper_encoder")
    encoder.save_pretrained(path)
    return path


def _cfg(path, **kw) -> ModelConfig:
    cfg = tiny_config()
    backbone = dataclasses.replace(cfg.backbone, kind="whisper", name_or_path=str(path), **kw)
    return dataclasses.replace(cfg, backbone=backbone)


def test_log_mel_matches_the_whisper_feature_extractor():
    audio = speechlike(1.3, 4) * 0.05
    ref = transformers.WhisperFeatureExtractor(feature_size=80)(
        audio, sampling_rate=16000, return_tensors="np"
    )
    ref = ref["input_features"][0]  # (80, 3000): the clip, then the floor
    got = WhisperLogMel(80)(torch.from_numpy(audio)[None].float())[0].numpy()
    frames = len(audio) // 160
    assert got.shape == (80, frames)
    # equal but for the last two frames, whose STFT sees the reflected clip here and zeros there
    np.testing.assert_allclose(got[:, :-2], ref[:, : frames - 2], atol=2e-4)


@pytest.mark.parametrize("layer", [1, -1, 0])
def test_features_equal_transformers_encoder_hidden_states(whisper_dir, layer):
    """With full_window, the truncated encoder's output is transformers' hidden state after that layer (the
    last one with the final layer norm) on the same 30 s input."""
    cfg = BackboneConfig(
        kind="whisper", name_or_path=str(whisper_dir), full_window=True, width=16, encoder_layer=layer
    )
    bb = WhisperCTC(cfg).eval()
    ref_encoder = WhisperEncoder.from_pretrained(whisper_dir).eval()
    audio = torch.from_numpy(speechlike(2.0, 1)).float()[None]
    audio = audio / audio.std()
    with torch.no_grad():
        got = bb.features(audio)
        mel = bb.mel(audio * INPUT_RMS)
        mel = torch.nn.functional.pad(mel, (0, 3000 - mel.shape[-1]), value=float(mel.amax() - 2.0))
        out = ref_encoder(mel, output_hidden_states=True)
    k = layer if layer > 0 else 3 + layer
    want = out.last_hidden_state if k == 3 else out.hidden_states[k]
    assert got.shape == (1, 100, 16)
    torch.testing.assert_close(got, want[:, :100], atol=1e-5, rtol=1e-5)


def test_full_whisper_model_folder_and_forward_training(tmp_path):
    """A folder holding a whole Whisper model (encoder + decoder) loads its encoder; the model trains
    end to end with only the head and the tuned top layer getting gradients."""
    torch.manual_seed(1)
    WhisperModel(transformers.WhisperConfig(**TINY)).save_pretrained(tmp_path)
    topo = tiny_topology(25.0)
    model = MemoryTalker(_cfg(tmp_path, tune_layers=1), topo).train()
    assert model.slots == 40
    batch = make_batch(topo, [1.0, 0.6])
    out = model(batch)
    assert out.ctc_logits.shape == (2, 25, 40) and out.vertices.shape == (2, 25, 12, 3)
    compute_losses(out, batch, LossWeights(ctc=0.0), topo)["total"].backward()
    whisper = model.backbone.whisper
    assert all(p.grad is None for p in whisper.conv1.parameters())
    assert all(p.grad is None for layer in whisper.layers[:2] for p in layer.parameters())
    assert any(p.grad is not None for p in whisper.layers[2].parameters())
    assert any(p.grad is not None for p in whisper.layer_norm.parameters())
    assert any(p.grad is not None for p in model.backbone.ctc_head.parameters())
    groups = model.parameter_groups()
    ids = [id(p) for ps in groups.values() for p in ps]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # every parameter in one group


def test_padded_batch_equals_unbatched(whisper_dir):
    topo = tiny_topology()
    model = MemoryTalker(_cfg(whisper_dir), topo).eval()
    batch = make_batch(topo, [1.2, 0.5])
    with torch.no_grad():
        both = model.text_logits(
            batch.audio, batch.audio_lengths, batch.frame_lengths, batch.vertices.shape[1]
        )
        n = int(batch.audio_lengths[1])
        one = model.text_logits(batch.audio[1:, :n], batch.audio_lengths[1:], batch.frame_lengths[1:], 15)
    torch.testing.assert_close(both[1, :15], one[0], atol=1e-5, rtol=1e-5)
    assert bool((both[1, 15:] == 0).all())


def test_feature_cache_in_training_mode_only(whisper_dir):
    bb = WhisperCTC(BackboneConfig(kind="whisper", name_or_path=str(whisper_dir), width=16))
    audio = torch.from_numpy(speechlike(0.8, 2)).float()[None]
    calls = []
    frozen = bb._frozen
    bb._frozen = lambda a: calls.append(1) or frozen(a)
    bb.eval()
    bb.features(audio)
    bb.features(audio)
    assert len(calls) == 2 and not bb._cache
    bb.train()
    first = bb.features(audio)
    second = bb.features(audio)
    assert len(calls) == 3 and len(bb._cache) == 1 and torch.equal(first, second)
    bb.features(audio * 0.5)  # other audio, other entry
    assert len(calls) == 4 and len(bb._cache) == 2
    assert not bb.whisper.training  # Whisper's dropout stays off in training mode
    small = WhisperCTC(
        BackboneConfig(kind="whisper", name_or_path=str(whisper_dir), width=16, cache_mb=0.002)
    )
    small.train()
    small.features(audio)
    small.features(audio * 0.5)
    assert small._cache.bytes <= 0.002 * 2**20 and len(small._cache) == 1  # the oldest entry evicted


def test_long_audio_runs_in_windows(whisper_dir):
    topo = tiny_topology()
    model = MemoryTalker(_cfg(whisper_dir, chunk_seconds=1.0, context_seconds=0.5), topo).eval()
    batch = make_batch(topo, [3.3])
    with torch.no_grad():
        pred = model.predict(batch.audio, batch.audio_lengths, batch.templates)
    assert pred.shape == (1, 99, 12, 3) and torch.isfinite(pred).all()


def test_errors_name_the_problem(whisper_dir, tmp_path):
    with pytest.raises(ConfigError, match="has 3 encoder layers"):
        WhisperCTC(BackboneConfig(kind="whisper", name_or_path=str(whisper_dir), encoder_layer=4))
    with pytest.raises(ConfigError, match="tune_layers=3 but only 2"):
        WhisperCTC(
            BackboneConfig(kind="whisper", name_or_path=str(whisper_dir), encoder_layer=2, tune_layers=3)
        )
    with pytest.raises(ConfigError, match="sees at most 30 s"):
        BackboneConfig(kind="whisper", chunk_seconds=28.0, context_seconds=2.0).validate()
    transformers.Wav2Vec2Config().save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="not Whisper"):
        WhisperCTC(BackboneConfig(kind="whisper", name_or_path=str(tmp_path)))
    bb = WhisperCTC(BackboneConfig(kind="whisper", name_or_path=str(whisper_dir), width=16)).eval()
    with pytest.raises(ConfigError, match="at most 30 s"):
        bb.features(torch.zeros(1, 16000 * 31))


def test_layer_outputs_are_the_features_of_each_encoder_layer(whisper_dir):
    audio = torch.from_numpy(speechlike(0.9, 3)).float()[None]
    outs = WhisperCTC(BackboneConfig(kind="whisper", name_or_path=str(whisper_dir), width=16)).layer_outputs(
        audio
    )
    assert len(outs) == 4 and all(o.shape == (1, 45, 16) for o in outs)
    for k in (1, 2, 3):
        bb = WhisperCTC(
            BackboneConfig(kind="whisper", name_or_path=str(whisper_dir), width=16, encoder_layer=k)
        )
        torch.testing.assert_close(bb.eval().features(audio), outs[k])
    tuned = WhisperCTC(BackboneConfig(kind="whisper", name_or_path=str(whisper_dir), width=16, tune_layers=3))
    torch.testing.assert_close(tuned.eval().features(audio), outs[3], atol=1e-6, rtol=1e-6)
    with pytest.raises(ConfigError, match="one or the other"):
        WhisperCTC(
            BackboneConfig(kind="whisper", name_or_path=str(whisper_dir), full_window=True, tune_layers=1)
        )


def test_ct2_folder_loads_as_the_backbone(tmp_path):
    """``ct2:FOLDER``: a CTranslate2 Whisper folder converted in memory gives the encoder it was written from."""
    from test_whisper_ct2 import ct2_variables, fake_folder, random_encoder

    source = random_encoder()
    folder = fake_folder(tmp_path / "ct2", ct2_variables(source))
    bb = WhisperCTC(BackboneConfig(kind="whisper", name_or_path=f"ct2:{folder}", width=16)).eval()
    theirs = source.state_dict()
    assert list(bb.whisper.state_dict()) == list(theirs)  # same keys, same order
    for name, mine in bb.whisper.state_dict().items():
        torch.testing.assert_close(mine, theirs[name], msg=name)
    # the project's own encoder (no transformers import) computes what transformers' does
    mel = torch.randn(1, source.config.num_mel_bins, 2 * source.config.max_source_positions)
    with torch.no_grad():
        torch.testing.assert_close(bb.whisper(mel), source(mel).last_hidden_state, atol=1e-5, rtol=1e-4)
    random = WhisperCTC(
        BackboneConfig(kind="whisper", name_or_path=f"ct2:{folder}", width=16, pretrained=False)
    )
    assert not torch.equal(random.whisper.conv1.weight, source.conv1.weight)
    assert random.whisper.config.d_model == source.config.d_model


def test_checkpoint_can_leave_the_frozen_whisper_weights_to_their_source(whisper_dir, tmp_path):
    """external_backbone=True: the file holds only the project's own layers; load_model reads Whisper's from
    the source, checks their sha256 and predicts exactly as the full checkpoint; other weights are refused."""
    import shutil

    from memorytalker.errors import CheckpointError
    from memorytalker.models.loaders import load_model, read_checkpoint, save_checkpoint

    torch.manual_seed(0)
    src = tmp_path / "whisper"
    shutil.copytree(whisper_dir, src)
    topo = tiny_topology()
    model = MemoryTalker(_cfg(src), topo).eval()
    full = save_checkpoint(tmp_path / "full.pt", model, topo)
    slim = save_checkpoint(tmp_path / "slim.pt", model, topo, external_backbone=True)
    state = read_checkpoint(slim)["model_state"]
    whisper_keys = [k for k in model.state_dict() if k.startswith("backbone.whisper.")]
    assert whisper_keys and not any(k.startswith("backbone.whisper.") for k in state)
    assert read_checkpoint(slim)["external_weights"]["keys"] == len(whisper_keys)
    assert slim.stat().st_size < full.stat().st_size
    batch = make_batch(topo, [0.8, 1.1])
    with torch.no_grad():
        ref = model.predict(batch.audio, batch.audio_lengths, batch.templates)
        for path in (full, slim):
            got = load_model(path)[0].predict(batch.audio, batch.audio_lengths, batch.templates)
            torch.testing.assert_close(got, ref, rtol=0, atol=0)
    # other Whisper weights at the source: refused, naming the cause
    other = WhisperEncoder.from_pretrained(src)
    with torch.no_grad():
        other.layers[0].fc1.weight.add_(0.01)
    other.save_pretrained(src)
    with pytest.raises(CheckpointError, match="differ from those the model was trained with"):
        load_model(slim)
    load_model(full)  # the full file does not depend on the source
    # a tuned Whisper layer or the compact encoder has nothing to leave out
    tuned = MemoryTalker(_cfg(src, tune_layers=1), topo)
    with pytest.raises(CheckpointError, match="no frozen pretrained weights"):
        save_checkpoint(tmp_path / "x.pt", tuned, topo, external_backbone=True)
    with pytest.raises(CheckpointError, match="no frozen pretrained weights"):
        save_checkpoint(tmp_path / "y.pt", MemoryTalker(tiny_config(), topo), topo, external_backbone=True)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_slaney_filters_equal_transformers(n_mels):
    from transformers.audio_utils import mel_filter_bank

    from memorytalker.models.backbones.whisper import slaney_mel_filters

    ref = mel_filter_bank(201, n_mels, 0.0, 8000.0, 16000, "slaney", "slaney")
    np.testing.assert_allclose(slaney_mel_filters(201, n_mels, 0.0, 8000.0, 16000), ref, atol=1e-8)


def test_ct2_models_load_without_importing_transformers(tmp_path):
    """Start-up cost: a ct2: Whisper backbone is built by the project's own encoder (checked in a fresh
    interpreter, since this test session has imported transformers already)."""
    import subprocess
    import sys

    from test_whisper_ct2 import ct2_variables, fake_folder, random_encoder

    folder = fake_folder(tmp_path / "ct2", ct2_variables(random_encoder()))
    code = (
        "import sys; from memorytalker.models.backbones.whisper import WhisperCTC;"
        "from memorytalker.models.config import BackboneConfig;"
        f"WhisperCTC(BackboneConfig(kind='whisper', name_or_path='ct2:{folder}', width=16));"
        "print(sorted(m for m in sys.modules if m.startswith('transformers')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
