"""The ``imitator`` kind: its defining mechanisms (the style-agnostic viseme decoder, autoregressive over its
own features and equal to the uncached pass; the style entering only the motion decoder; the mean style
code and the unseen-speaker choice), the published lip-contact loss on a hand-made case, the padded batch
and the stage preset."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_model_common import make_batch, select, tiny_topology

from memorytalker.data.phonemes import CTC_VOCAB
from memorytalker.errors import ConfigError
from memorytalker.models.builders import build_model
from memorytalker.models.config import MEAN_STYLE, BackboneConfig, ImitatorConfig, ModelConfig
from memorytalker.models.imitator import sinusoidal_encoding
from memorytalker.models.losses import LossWeights, bilabial_weights, compute_losses, lip_contact_loss
from memorytalker.training.config import PRESETS

SPEAKERS = ["a", "b", "c"]
P, AA = CTC_VOCAB.index("P"), CTC_VOCAB.index("AA")


def im_config(**imitator) -> ModelConfig:
    im = dict(width=16, heads=4, dropout=0.0, speakers=SPEAKERS, decoder_layers=3)
    im.update(imitator)
    return ModelConfig(
        kind="imitator",
        backbone=BackboneConfig(width=32, layers=1, heads=2, ffn=64, window=4, conv_layers=1, dropout=0.0),
        imitator=ImitatorConfig(**im),
    )


def im_model(seed: int = 0, **imitator):
    torch.manual_seed(seed)
    model = build_model(im_config(**imitator), tiny_topology())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the published zero-initialised head would make every frame the template
        model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=g) * 0.3)
        model.style.weight.copy_(torch.randn(model.style.weight.shape, generator=g))
    return model.eval()


def test_viseme_decoder_is_autoregressive_over_its_own_features():
    """The cached decoder's features are the published full pass over ``[0, f_0, ..., f_{T-2}]`` + PE."""
    model = im_model()
    batch = make_batch(model.topology, [0.8])
    with torch.no_grad():
        _, text = model.speech_features(batch.audio, batch.audio_lengths, batch.frame_lengths, 24, False)
        f = model.viseme_features(text, 24)
        x = torch.cat([torch.zeros_like(f[:, :1]), f[:, :-1]], dim=1) + sinusoidal_encoding(24, 16)[None]
        for layer in model.layers:
            x = layer(x, text)
    assert torch.allclose(f, x, atol=1e-5)
    # frame t never sees the audio after t: changing the last half of the text leaves the first half
    text2 = text.clone()
    text2[:, 12:] += 1.0
    with torch.no_grad():
        f2 = model.viseme_features(text2, 24)
    assert torch.allclose(f[:, :12], f2[:, :12], atol=1e-6) and not torch.allclose(f[:, 12:], f2[:, 12:])


def test_style_enters_only_the_motion_decoder_and_the_mean_code():
    model = im_model()
    batch = make_batch(model.topology, [0.7])
    feats = model.clip_features(batch)
    assert torch.equal(feats, model.clip_features(batch))  # no style input at all
    preds = [
        model.predict(batch.audio, batch.audio_lengths, batch.templates, conditions=torch.tensor([c]))
        for c in range(4)
    ]
    assert not torch.allclose(preds[0], preds[1])
    assert model.speakers == [*SPEAKERS, MEAN_STYLE]
    assert torch.allclose(model.style_table()[3], model.style.weight.t().mean(0))
    assert model.default_condition == 3 and model.unseen_protocol == "all"  # published: averaged over all


def test_unseen_speaker_choice_is_a_config():
    mean = im_model(unseen=MEAN_STYLE)
    assert mean.unseen_protocol == "default" and mean.speakers[mean.default_condition] == MEAN_STYLE
    named = im_model(unseen="b")
    assert named.speakers[named.default_condition] == "b"
    assert named.training_condition("c", "") == 2 and named.training_condition("zz", "") is None
    for bad in (dict(unseen="zz"), dict(condition="zz"), dict(speakers=["a", "mean"]), dict(adapted=["a"])):
        with pytest.raises(ConfigError):
            im_config(**bad).validate()


def test_padded_batch_equals_each_clip_alone():
    model = im_model()
    batch = make_batch(model.topology, [1.0, 0.6])
    cond = torch.tensor([1, 3])
    both = model.predict(batch.audio, batch.audio_lengths, batch.templates, conditions=cond)
    for i in range(2):
        one = select(batch, i)
        alone = model.predict(one.audio, one.audio_lengths, one.templates, conditions=cond[i : i + 1])
        n = int(one.frame_lengths[0])
        assert torch.allclose(both[i, :n], alone[0], atol=1e-5)
        assert torch.equal(both[i, n:], batch.templates[i].expand_as(both[i, n:]))


def test_bilabial_weights_are_the_published_gaussian_bumps():
    ph = torch.full((1, 12), AA)
    ph[0, 4:7] = P  # one bilabial run, centre frame 5
    ph[0, 11] = P  # a run at the clip's end, centre 11
    w = bilabial_weights(ph, torch.ones(1, 12, dtype=torch.bool))[0]
    e1, e2 = np.exp(-0.5), np.exp(-2.0)
    want = [0, 0, 0, e2, e1, 1, e1, e2, 0, e2, e1, 1]
    assert torch.allclose(w, torch.tensor(want, dtype=torch.float32), atol=1e-6)


def _lips_case():
    """12 frames of a 4-vertex face (2 upper, 2 lower lip vertices); the truth closes the lips on frames
    4-6 (a P, centre 5) and has them 1 cm open elsewhere."""
    t = 12
    gt = torch.zeros(1, t, 4, 3)
    gt[:, :, 2:, 1] = -0.01  # lower lip 1 cm below
    gt[:, 4:7, 2:, 1] = 0.0  # closed on the bilabial
    ph = torch.full((1, t), AA)
    ph[0, 4:7] = P
    return gt, ph, torch.ones(1, t, dtype=torch.bool)


def test_lip_contact_loss_zero_when_the_lips_close_with_the_truth_and_positive_otherwise():
    gt, ph, mask = _lips_case()
    closes = gt.clone()
    closes[:, 0:2, 2:, 1] = -0.02  # wrong far from the bilabial: not this term's business
    assert float(lip_contact_loss(closes, gt, mask, ph)) == 0.0
    stays_open = gt.clone()
    stays_open[:, 4:7, 2:, 1] = -0.01  # the prediction keeps the lips apart on the P
    open_loss = float(lip_contact_loss(stays_open, gt, mask, ph))
    assert open_loss > 0
    half = gt.clone()
    half[:, 4:7, 2:, 1] = -0.005  # half-way closed: smaller
    assert 0 < float(lip_contact_loss(half, gt, mask, ph)) < open_loss
    with pytest.raises(ConfigError, match="phoneme labels"):
        lip_contact_loss(stays_open, gt, mask, torch.full_like(ph, -1))


def test_compute_losses_has_the_contact_term_and_the_preset_its_published_weights():
    gt, ph, mask = _lips_case()
    pred = gt.clone()
    pred[:, 5, 2:, 1] = -0.01
    out = SimpleNamespace(vertices=pred, frame_mask=mask, teacher_vertices=None, ctc_logits=None)
    out.value_read = out.value_address = None
    batch = SimpleNamespace(vertices=gt, frame_phonemes=ph)
    w = LossWeights(mse=0, velocity=0, teacher_mse=0, teacher_velocity=0, mem=0, align=0, ctc=0, contact=5)
    terms = compute_losses(out, batch, w, None, unit=0.01)
    # frame 5 alone is wrong, weight 1: 2 of 4 vertices x 1 of 3 axes off by 1 unit, over 12 frames
    assert terms["contact"].item() == pytest.approx((2 / 12) / 12)
    assert terms["total"].item() == pytest.approx(5 * terms["contact"].item())
    stage = PRESETS["imitator"]()
    assert (stage.loss.mse, stage.loss.velocity, stage.loss.contact) == (1.0, 10.0, 5.0)
    assert stage.model == {"kind": "imitator"} and stage.frozen == []
