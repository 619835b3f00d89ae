"""MemoryTalker model: shapes and frame alignment, padding invariance, zero-initialised head, aligned
decoder == masked nn.TransformerDecoderLayer, stop-gradients, ablations, parameter groups."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from test_model_common import make_batch, randomize_head, select, tiny_config, tiny_topology
from torch import nn

from memorytalker.errors import ConfigError, TopologyError
from memorytalker.models.config import ModelConfig
from memorytalker.models.decoder import DecoderLayer
from memorytalker.models.losses import LossWeights, compute_losses
from memorytalker.models.memorytalker import GROUPS, MemoryTalker


def _model(style=False, memory=True, fps=30.0, seed=0, **backbone) -> MemoryTalker:
    torch.manual_seed(seed)
    model = MemoryTalker(tiny_config(style=style, memory=memory, **backbone), tiny_topology(fps))
    randomize_head(model, seed)
    return model


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_shapes_and_frame_alignment(fps):
    model = _model(style=True, fps=fps)
    topo = model.topology
    batch = make_batch(topo, [1.0, 0.62], triplets=True)
    out = model(batch, teacher_forcing=True)
    b, t = 2, int(batch.frame_lengths.max())
    assert t == int(fps)
    assert out.vertices.shape == (b, t, 12, 3) and out.teacher_vertices.shape == (b, t, 12, 3)
    assert out.ctc_logits.shape == (b, t, 40) and out.ctc_lengths.tolist() == batch.frame_lengths.tolist()
    assert out.key_address.shape == (b, t, 40) and out.value_address.shape == (b, t, 40)
    assert out.motion_feat.shape == (b, t, 16) and out.value_read.shape == (b, t, 16)
    assert out.style_weights.shape == (b, 40) and out.style_positive.shape == (b, 40)
    assert torch.equal(out.frame_mask, batch.frame_mask)
    # ctc logits are zero past each clip's frames; addresses are distributions
    assert torch.all(out.ctc_logits[1, int(batch.frame_lengths[1]) :] == 0)
    torch.testing.assert_close(out.key_address.sum(-1), torch.ones(b, t))
    # inference: T = round(seconds * fps) for any duration
    for seconds in (0.3, 1.0, 2.04):
        n = int(round(seconds * 16000))
        pred = model.predict(torch.randn(1, n) * 0.1, torch.tensor([n]), batch.templates[:1])
        assert pred.shape == (1, max(1, round(seconds * fps)), 12, 3)


def test_zero_initialised_head_returns_the_template():
    torch.manual_seed(0)
    model = MemoryTalker(tiny_config(style=True), tiny_topology())
    batch = make_batch(model.topology, [0.7, 0.4])
    pred = model.predict(batch.audio, batch.audio_lengths, batch.templates)
    assert torch.equal(pred, batch.templates[:, None].expand_as(pred))
    out = model(batch)
    valid = batch.frame_mask[:, :, None, None]
    assert torch.equal(out.vertices * valid, batch.templates[:, None].expand_as(out.vertices) * valid)


def test_motion_scale_is_the_unit_of_the_motion_encoder_and_the_head():
    model = _model().eval()
    batch = make_batch(model.topology, [0.6, 0.4])
    with torch.no_grad():
        base = model(batch)
        model.set_motion_scale(2.5)
        scaled = model(batch)
        # the head's offsets are multiplied by the unit; the text-only route is unchanged
        valid = batch.frame_mask[:, :, None, None]
        disp = (base.vertices - batch.templates[:, None]) * valid
        disp_scaled = (scaled.vertices - batch.templates[:, None]) * valid
        torch.testing.assert_close(disp_scaled, 2.5 * disp, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(scaled.ctc_logits, base.ctc_logits)
        # E_m reads displacements in the unit: 2.5x the motion in 2.5x the unit gives the same feature
        bigger = dataclasses.replace(
            batch,
            vertices=(batch.templates[:, None] + 2.5 * (batch.vertices - batch.templates[:, None])) * valid,
        )
        torch.testing.assert_close(model(bigger).motion_feat, base.motion_feat, atol=1e-5, rtol=1e-5)
    assert torch.equal(
        MemoryTalker(dataclasses.replace(model.cfg, motion_scale=0.004), model.topology).motion_scale,
        torch.tensor(0.004),
    )
    for bad in (0.0, -1.0):
        with pytest.raises(ConfigError, match="motion_scale"):
            MemoryTalker(dataclasses.replace(model.cfg, motion_scale=bad), model.topology)
    with pytest.raises(ConfigError, match="motion scale"):
        model.set_motion_scale(float("nan"))


def _with_read_skip(model: MemoryTalker) -> MemoryTalker:
    cfg = dataclasses.replace(model.cfg, decoder=dataclasses.replace(model.cfg.decoder, read_skip=True))
    torch.manual_seed(1)
    skip = MemoryTalker(cfg, model.topology).eval()
    randomize_head(skip)
    return skip


@pytest.mark.parametrize("style", [False, True, "absolute", "read_skip"])
def test_padded_batch_equals_each_clip_alone(style):
    model = _model(style=bool(style)).eval()
    if style == "absolute":
        model = MemoryTalker(
            dataclasses.replace(model.cfg, style=dataclasses.replace(model.cfg.style, level="absolute")),
            model.topology,
        ).eval()
        randomize_head(model)
    if style == "read_skip":
        model = _with_read_skip(model)
    batch = make_batch(model.topology, [1.1, 0.53, 0.8], triplets=style)
    with torch.no_grad():
        out = model(batch, teacher_forcing=True)
        pred = model.predict(batch.audio, batch.audio_lengths, batch.templates)
        for i in range(3):
            one = select(batch, i)
            t = int(one.frame_lengths[0])
            alone = model(one, teacher_forcing=True)
            torch.testing.assert_close(out.vertices[i, :t], alone.vertices[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(
                out.teacher_vertices[i, :t], alone.teacher_vertices[0], atol=1e-5, rtol=1e-5
            )
            torch.testing.assert_close(out.ctc_logits[i, :t], alone.ctc_logits[0], atol=1e-5, rtol=1e-5)
            if style:
                torch.testing.assert_close(out.style_weights[i], alone.style_weights[0], atol=1e-5, rtol=1e-5)
            p1 = model.predict(one.audio, one.audio_lengths, one.templates)
            torch.testing.assert_close(pred[i, :t], p1[0], atol=1e-5, rtol=1e-5)
            assert torch.equal(pred[i, t:], one.templates[0].expand_as(pred[i, t:]))
    assert not torch.allclose(out.vertices[0, :10], out.vertices[1, :10])  # clips do differ


def test_style_weights_are_per_sample():
    model = _model(style=True).eval()
    with torch.no_grad():  # a trained encoder's weights depend on the audio (fresh ones are all ~1)
        nn.init.normal_(model.style.to_slots.weight, std=0.5)
    batch = make_batch(model.topology, [0.9, 0.9], seed=3)
    batch.audio[1] = torch.randn(batch.audio.shape[1], generator=torch.Generator().manual_seed(5)) * 0.2
    with torch.no_grad():
        both = model(batch).style_weights
        first = model(select(batch, 0)).style_weights
    # not averaged over the batch: clip 0 keeps its own weights next to a very different clip
    assert not torch.allclose(both[0], both[1], atol=1e-4)
    torch.testing.assert_close(both[0], first[0], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("r", [1, 2])
def test_aligned_decoder_equals_masked_transformer_decoder_layer(r):
    torch.manual_seed(0)
    d, h, t, window = 16, 4, 11, 3
    mine = DecoderLayer(d, h, 32, window, dropout=0.0).eval()
    ref = nn.TransformerDecoderLayer(d, h, 32, dropout=0.0, batch_first=True).eval()
    ref.load_state_dict(mine.state_dict())
    x = torch.randn(2, t, d)
    text = torch.randn(2, r * t, d)
    lengths = torch.tensor([t, 7])
    valid = torch.arange(t)[None] < lengths[:, None]
    idx = torch.arange(t)
    band = (idx[:, None] - idx[None, :]).abs() > window  # True = not allowed
    align = torch.ones(t, r * t, dtype=torch.bool)
    for k in range(r):
        align[idx, r * idx + k] = False  # frame t sees text frames r t .. r t + r - 1
    with torch.no_grad():
        got = mine(x, text, valid)
        want = ref(x, text, tgt_mask=band, memory_mask=align, tgt_key_padding_mask=~valid)
    for b in range(2):
        n = int(lengths[b])
        torch.testing.assert_close(got[b, :n], want[b, :n], atol=1e-5, rtol=1e-5)


def test_gradients_follow_the_authors_stop_gradients():
    model = _model(style=False).train()
    batch = make_batch(model.topology, [0.8, 0.5])
    groups = model.parameter_groups()

    def grads_of(terms: dict[str, float]) -> dict[str, bool]:
        model.zero_grad(set_to_none=True)
        weights = LossWeights(
            **{
                k: 0.0
                for k in (
                    "mse",
                    "velocity",
                    "teacher_mse",
                    "teacher_velocity",
                    "mem",
                    "align",
                    "lip",
                    "style",
                    "ctc",
                )
            }
        )
        weights = dataclasses.replace(weights, **terms)
        losses = compute_losses(model(batch, teacher_forcing=True), batch, weights, model.topology)
        losses["total"].backward()
        return {
            g: any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in ps)
            for g, ps in groups.items()
        }

    mem_only = grads_of({"mem": 1.0, "align": 1.0})
    assert mem_only["memory"] and not any(v for g, v in mem_only.items() if g != "memory")
    main = grads_of({"mse": 1.0, "velocity": 1.0})
    assert not main["memory"] and not main["motion_encoder"]  # key read uses sg(memory); E_m is value-only
    assert main["head"] and main["decoder"] and main["fusion"] and main["text_proj"]
    # the first step's head is zero-initialised in a fresh model; here it is random, so gradients reach
    # the text branch through the key address and f_txt
    assert main["asr"] and main["ctc_head"]
    teacher = grads_of({"teacher_mse": 1.0})
    assert teacher["motion_encoder"] and not teacher["memory"]
    ctc = grads_of({"ctc": 1.0})
    assert ctc["ctc_head"] and ctc["asr"] and not ctc["memory"] and not ctc["head"]


def test_style_gets_gradient_in_stage_two_and_memory_does_not():
    model = _model(style=True).train()
    batch = make_batch(model.topology, [0.8, 0.5], triplets=True)
    weights = LossWeights(teacher_mse=0, teacher_velocity=0, mem=0, align=0, ctc=0, lip=0.01, style=0.01)
    compute_losses(model(batch, teacher_forcing=False), batch, weights, model.topology)["total"].backward()
    style = model.parameter_groups()["style"]
    assert all(p.grad is not None for p in style if p.requires_grad)
    assert model.memory.memory.grad is None


def test_ablation_switches():
    topo = tiny_topology()
    nomem = MemoryTalker(tiny_config(memory=False), topo)
    out = nomem(make_batch(topo, [0.5]))
    assert out.key_address is None and out.teacher_vertices is None and out.value_read is None
    groups = nomem.parameter_groups()
    assert tuple(groups) == GROUPS and groups["memory"] == [] and groups["style"] == []
    stage1 = MemoryTalker(tiny_config(style=False), topo)
    assert stage1.style is None and stage1(make_batch(topo, [0.5])).style_weights is None
    out = stage1(make_batch(topo, [0.5]), teacher_forcing=False)
    assert out.teacher_vertices is None and out.value_read is not None
    stage2 = MemoryTalker(tiny_config(style=True), topo)
    assert stage2(make_batch(topo, [0.5])).style_weights is not None


def test_read_skip_adds_a_linear_map_of_the_read_after_the_last_norm():
    """``decoder.read_skip``: the layers' output plus ``W`` times the motion feature (the last ``D`` fused
    inputs), so a read scaled by ``c`` moves that term by exactly ``c``; in the decoder group; needs memory."""
    model = _with_read_skip(_model(style=True))
    dec = model.decoder
    assert dec.read_skip is not None and dec.read_skip.in_features == model.cfg.memory.width
    assert all(any(p is q for q in model.parameter_groups()["read_skip"]) for p in dec.read_skip.parameters())
    b, t, d = 2, 9, model.cfg.memory.width
    fused = torch.randn(b, t, 2 * d)
    text = torch.randn(b, t * model.text_rate, d)
    valid = torch.ones(b, t, dtype=torch.bool)
    with torch.no_grad():
        full = dec.hidden(fused, text, valid)
        weight = dec.read_skip.weight.clone()
        dec.read_skip.weight.zero_()
        plain = dec.hidden(fused, text, valid)
        dec.read_skip.weight.copy_(weight)
    torch.testing.assert_close(full - plain, fused[..., d:] @ weight.t(), atol=1e-5, rtol=1e-5)
    assert float((full - plain).abs().max()) > 1e-3
    with pytest.raises(ConfigError, match="read_skip needs the memory"):
        cfg = tiny_config(memory=False)
        dataclasses.replace(cfg, decoder=dataclasses.replace(cfg.decoder, read_skip=True)).validate()


@pytest.mark.parametrize("style", [False, True, "read_skip"])
def test_parameter_groups_partition_the_parameters(style):
    model = MemoryTalker(tiny_config(style=bool(style)), tiny_topology())
    if style == "read_skip":
        model = _with_read_skip(model)
    groups = model.parameter_groups()
    assert tuple(groups) == GROUPS
    ids = [id(p) for ps in groups.values() for p in ps]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}
    # one persistent buffer, the motion unit (mel filterbanks are rebuilt from the config)
    assert set(model.state_dict()) == {n for n, _ in model.named_parameters()} | {"motion_scale"}


def test_default_compact_size_is_a_few_million_parameters():
    model = MemoryTalker(ModelConfig(), tiny_topology())
    n = sum(p.numel() for p in model.backbone.parameters())
    assert 1_000_000 < n < 10_000_000


def test_config_errors():
    with pytest.raises(ConfigError, match="slots"):
        MemoryTalker(
            dataclasses.replace(tiny_config(), memory=dataclasses.replace(tiny_config().memory, slots=32)),
            tiny_topology(),
        )
    with pytest.raises(ConfigError, match="kind"):
        ModelConfig(backbone=dataclasses.replace(tiny_config().backbone, kind="deepspeech")).validate()
    model = _model()
    with pytest.raises(TopologyError, match="12 vertices"):
        model.predict(torch.randn(1, 8000), torch.tensor([8000]), torch.zeros(1, 7, 3))


def test_bf16_autocast_keeps_vertices_float32():
    model = _model(style=True)
    batch = make_batch(model.topology, [0.6, 0.4], triplets=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch, teacher_forcing=True)
        pred = model.predict(batch.audio, batch.audio_lengths, batch.templates)
    assert out.vertices.dtype == out.teacher_vertices.dtype == pred.dtype == torch.float32
    # template precision survives: the zero-offset part of the output equals the float32 template
    fresh = MemoryTalker(tiny_config(), model.topology)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        neutral = fresh.predict(batch.audio, batch.audio_lengths, batch.templates)
    assert torch.equal(neutral, batch.templates[:, None].expand_as(neutral))


@pytest.mark.parametrize("scale", ["paper", "softplus"])
def test_stage_two_starts_from_the_stage_one_model(scale):
    """A fresh style encoder gives slot weights ~1, so stage 2's output at initialisation is stage 1's."""
    topo = tiny_topology()
    torch.manual_seed(0)
    stage1 = MemoryTalker(tiny_config(style=False), topo).eval()
    randomize_head(stage1)
    cfg = tiny_config(style=True)
    cfg = dataclasses.replace(cfg, style=dataclasses.replace(cfg.style, scale=scale))
    stage2 = MemoryTalker(cfg, topo).eval()
    missing = stage2.load_state_dict(stage1.state_dict(), strict=False)
    assert missing.unexpected_keys == [] and all(k.startswith("style.") for k in missing.missing_keys)
    batch = make_batch(topo, [0.9, 0.6], seed=2)
    with torch.no_grad():
        out1, out2 = stage1(batch, teacher_forcing=False), stage2(batch, teacher_forcing=False)
    torch.testing.assert_close(out2.style_weights, torch.ones_like(out2.style_weights), atol=0.05, rtol=0)
    delta = (out2.vertices - out1.vertices).abs().max()
    motion = (out1.vertices - batch.templates[:, None]).abs().max()
    assert delta < 0.05 * motion, (float(delta), float(motion))


def _style_model(topo, level: str) -> MemoryTalker:
    """A tiny stage-2 model whose style logits depend visibly on the audio (``to_slots`` weights std 0.5)."""
    cfg = tiny_config(style=True)
    cfg = dataclasses.replace(cfg, style=dataclasses.replace(cfg.style, level=level))
    torch.manual_seed(0)
    model = MemoryTalker(cfg, topo).eval()
    with torch.no_grad():
        nn.init.normal_(model.style.to_slots.weight, std=0.5)
    return model


def test_style_level_decides_whether_loudness_is_heard():
    """``normalized`` (paper): the same speech 10 dB louder gets the same weights; ``absolute``: it does not."""
    topo = tiny_topology()
    batch = make_batch(topo, [0.9], seed=4)
    louder = batch.audio * 10 ** (10 / 20)
    for level, same in (("normalized", True), ("absolute", False)):
        model = _style_model(topo, level)
        with torch.no_grad():
            a = model.style_logits(batch.audio, batch.audio_lengths)
            b = model.style_logits(louder, batch.audio_lengths)
        assert torch.allclose(a, b, atol=1e-4) == same, level
    with pytest.raises(ConfigError, match="model.style.level"):
        ModelConfig(style=dataclasses.replace(model.cfg.style, level="loud")).validate()


def test_spectral_style_level_hears_the_tilt_but_not_the_gain():
    """``spectral``: 10 dB louder changes nothing, a tilted spectrum (pre-emphasis: +high, -low bands) does;
    ``normalized`` removes each band's mean, so it hears much less of the same tilt."""
    topo = tiny_topology()
    batch = make_batch(topo, [0.9], seed=4)
    audio = batch.audio + 0.3 * torch.randn(batch.audio.shape, generator=torch.Generator().manual_seed(1))
    louder = audio * 10 ** (10 / 20)
    tilted = torch.cat([audio[:, :1], audio[:, 1:] - 0.95 * audio[:, :-1]], dim=1)
    change = {}
    for level in ("spectral", "normalized"):
        model = _style_model(topo, level)
        with torch.no_grad():
            a = model.style_logits(audio, batch.audio_lengths)
            torch.testing.assert_close(model.style_logits(louder, batch.audio_lengths), a, atol=1e-4, rtol=0)
            change[level] = float((model.style_logits(tilted, batch.audio_lengths) - a).abs().max())
    assert change["spectral"] > 1e-2 and change["spectral"] > 3 * change["normalized"], change


def test_style_gain_starts_at_one_and_scales_every_offset():
    """``model.style.gain``: at initialisation the model predicts what the same weights predict without it;
    a log-gain of log 2 doubles every offset from the template (head weights and bias), in training and in
    inference; a gradient reaches the gain head; a per-sample scale of the wrong shape is refused."""
    topo = tiny_topology()
    cfg = tiny_config(style=True)
    cfg.style.gain = True
    torch.manual_seed(0)
    model = MemoryTalker(cfg, topo).eval()
    randomize_head(model)
    plain = MemoryTalker(tiny_config(style=True), topo).eval()
    missing = plain.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith("style.gain_head")}
    )
    assert not missing.missing_keys and not missing.unexpected_keys
    batch = make_batch(topo, [0.9, 0.6], seed=2)
    valid = batch.frame_mask[:, :, None, None]
    tpl = batch.templates[:, None]
    with torch.no_grad():
        base = model(batch)
        torch.testing.assert_close(base.style_gain, torch.ones(2))
        torch.testing.assert_close(base.vertices, plain(batch).vertices)
        assert plain(batch).style_gain is None
        pred = model.predict(batch.audio, batch.audio_lengths, batch.templates)
        model.style.gain_head.bias.fill_(float(torch.log(torch.tensor(2.0))))
        doubled = model(batch)
        torch.testing.assert_close(doubled.style_gain, torch.full((2,), 2.0))
        torch.testing.assert_close((doubled.vertices - tpl) * valid, 2 * (base.vertices - tpl) * valid)
        pred2 = model.predict(batch.audio, batch.audio_lengths, batch.templates)
        torch.testing.assert_close(pred2 - tpl, 2 * (pred - tpl))
    model.train()
    model(batch).vertices.square().mean().backward()
    assert model.style.gain_head.weight.grad.abs().sum() > 0
    assert any(p is model.style.gain_head.weight for p in model.parameter_groups()["style"])
    x = torch.randn(2, 3, model.decoder.dim)
    with pytest.raises(ValueError, match="one per sample"):
        model.decoder.vertices(x, batch.templates, torch.ones(3))
