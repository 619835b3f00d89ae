"""Loss terms against naive references, masking, term selection, and a CTC loss that decreases."""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_model_common import make_batch, tiny_config, tiny_topology

from memorytalker.errors import ConfigError
from memorytalker.models import losses
from memorytalker.models.losses import TERMS, LossWeights, compute_losses
from memorytalker.models.memorytalker import MemoryTalker, MemoryTalkerOutput

ZERO = {k: 0.0 for k in TERMS}


def _out(pred: torch.Tensor, mask: torch.Tensor, **kw) -> MemoryTalkerOutput:
    return MemoryTalkerOutput(vertices=pred, frame_mask=mask, **kw)


def test_mse_and_velocity_against_naive_per_frame_loops():
    g = torch.Generator().manual_seed(0)
    pred, gt = torch.randn(2, 6, 5, 3, generator=g), torch.randn(2, 6, 5, 3, generator=g)
    lengths = [6, 4]
    mask = torch.arange(6)[None] < torch.tensor(lengths)[:, None]
    batch = type("B", (), {"vertices": gt})()
    w = LossWeights(**{**ZERO, "mse": 1.0, "velocity": 2.0})
    got = compute_losses(_out(pred, mask), batch, w, None)
    sq = [((pred[b, t] - gt[b, t]) ** 2).mean() for b in range(2) for t in range(lengths[b])]
    vel = [
        (((pred[b, t + 1] - pred[b, t]) - (gt[b, t + 1] - gt[b, t])) ** 2).mean()
        for b in range(2)
        for t in range(lengths[b] - 1)
    ]
    torch.testing.assert_close(got["mse"], torch.stack(sq).mean())
    torch.testing.assert_close(got["velocity"], torch.stack(vel).mean())
    torch.testing.assert_close(got["total"], got["mse"] + 2.0 * got["velocity"])
    assert set(got) == {"total", "mse", "velocity"}  # zero-weight terms are not computed
    # garbage in padded frames changes nothing
    pred2 = pred.clone()
    pred2[1, 4:] = 1e3
    again = compute_losses(_out(pred2, mask), batch, w, None)
    torch.testing.assert_close(again["total"], got["total"])


def test_lip_mem_align_and_style_terms():
    g = torch.Generator().manual_seed(1)
    topo = tiny_topology()
    pred, gt = torch.randn(1, 4, 12, 3, generator=g), torch.randn(1, 4, 12, 3, generator=g)
    mask = torch.ones(1, 4, dtype=torch.bool)
    key = torch.softmax(torch.randn(1, 4, 40, generator=g), -1)
    value = torch.softmax(torch.randn(1, 4, 40, generator=g), -1)
    feat, read = torch.randn(1, 4, 16, generator=g), torch.randn(1, 4, 16, generator=g)
    anc, pos, neg = (torch.randn(1, 40, generator=g) for _ in range(3))
    out = _out(
        pred, mask, key_address=key, value_address=value, motion_feat=feat, value_read=read,
        style_anchor=anc, style_positive=pos, style_negative=neg,
    )  # fmt: skip
    batch = type("B", (), {"vertices": gt})()
    w = LossWeights(**{**ZERO, "lip": 1.0, "mem": 1.0, "align": 1.0, "style": 1.0}, triplet_margin=5.0)
    got = compute_losses(out, batch, w, topo)
    lips = torch.from_numpy(np.array(topo.lips))
    torch.testing.assert_close(got["lip"], ((pred[:, :, lips] - gt[:, :, lips]) ** 2).mean())
    torch.testing.assert_close(got["mem"], ((read - feat) ** 2).mean())
    # authors: F.kl_div(V.log(), K, reduction="batchmean") sums over frames; here averaged over frames
    ref = F.kl_div(value.log(), key, reduction="sum") / 4
    torch.testing.assert_close(got["align"], ref)
    trip = torch.clamp((anc - pos).norm() - (anc - neg).norm() + 5.0, min=0)
    torch.testing.assert_close(got["style"], trip, atol=1e-4, rtol=1e-4)


def test_vertex_terms_are_measured_in_the_motion_unit():
    topo = tiny_topology()
    torch.manual_seed(0)
    model = MemoryTalker(tiny_config(), topo)
    batch = make_batch(topo, [0.5, 0.3])
    out = model(batch, teacher_forcing=True)
    w = LossWeights(lip=0.5)
    metres = compute_losses(out, batch, w, topo)
    unit = 0.003
    scaled = compute_losses(out, batch, w, topo, unit=unit)
    vertex = {"mse", "velocity", "teacher_mse", "teacher_velocity", "lip"}
    assert vertex <= set(metres) and {"mem", "align", "ctc"} <= set(metres)
    for k in set(metres) - {"total"}:
        factor = 1 / unit**2 if k in vertex else 1.0
        torch.testing.assert_close(scaled[k], metres[k] * factor, rtol=1e-5, atol=0)
    # by hand: the mse of displacements divided by the unit
    mask = batch.frame_mask[:, :, None, None]
    err = ((out.vertices - batch.vertices) / unit).square() * mask
    torch.testing.assert_close(scaled["mse"], err.sum() / (mask.sum() * 12 * 3), rtol=1e-5, atol=0)


def test_term_errors_and_skipped_routes():
    topo = tiny_topology()
    model = MemoryTalker(tiny_config(), topo)
    batch = make_batch(topo, [0.5])
    out = model(batch, teacher_forcing=False)
    losses = compute_losses(out, batch, LossWeights(), topo)
    assert "teacher_mse" not in losses and {"mse", "velocity", "mem", "align", "ctc"} <= set(losses)
    with pytest.raises(ConfigError, match="triplet"):
        compute_losses(out, batch, LossWeights(style=0.01), topo)
    with pytest.raises(ConfigError, match="topology"):
        compute_losses(out, batch, LossWeights(lip=0.01), None)
    with pytest.raises(ConfigError, match="32 CTC symbols"):
        hf_like = dataclasses.replace(out, ctc_logits=torch.zeros(1, out.ctc_logits.shape[1], 32))
        compute_losses(hf_like, batch, LossWeights(), topo)
    batch.phoneme_lengths = torch.zeros(1, dtype=torch.long)  # no labels: no CTC term
    assert "ctc" not in compute_losses(out, batch, LossWeights(), topo)


def test_ctc_loss_decreases_on_a_toy_batch():
    torch.manual_seed(0)
    topo = tiny_topology()
    model = MemoryTalker(tiny_config(), topo).train()
    batch = make_batch(topo, [1.0, 0.7])
    # learnable targets: a fixed phoneme sequence per clip
    batch.phoneme_targets = torch.tensor([[5, 9, 5, 12, 20, 7], [3, 3, 8, 15, 0, 0]])
    batch.phoneme_lengths = torch.tensor([6, 4])
    w = LossWeights(**{**ZERO, "ctc": 1.0})
    params = [p for g in ("asr_frontend", "asr", "ctc_head") for p in model.parameter_groups()[g]]
    opt = torch.optim.Adam(params, lr=3e-3)
    history = []
    for _ in range(12):
        loss = compute_losses(model(batch, teacher_forcing=False), batch, w, topo)["ctc"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.detach().item())
    assert np.isfinite(history).all()
    assert history[-1] < 0.6 * history[0], history


def test_training_signal_does_not_depend_on_the_data_units():
    """Metres or millimetres: with the motion unit in the same units, every loss term and every gradient
    is the same (in metres alone the vertex gradients were below Adam's epsilon: docs/RESULTS.md)."""
    topo = tiny_topology()
    batch_m = make_batch(topo, [0.5, 0.3])
    batch_mm = dataclasses.replace(
        batch_m, vertices=batch_m.vertices * 1000, templates=batch_m.templates * 1000
    )
    grads, losses = [], []
    for batch, unit in ((batch_m, 0.003), (batch_mm, 3.0)):
        torch.manual_seed(0)
        model = MemoryTalker(tiny_config(), topo)
        model.set_motion_scale(unit)
        with torch.no_grad():  # a head that moves the face, so every route carries gradient
            model.decoder.head.weight.normal_(0.0, 0.1)
        out = model(batch, teacher_forcing=True)
        terms = compute_losses(out, batch, LossWeights(lip=0.5), topo, unit=model.motion_scale)
        terms["total"].backward()
        losses.append({k: float(v.detach()) for k, v in terms.items()})
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert losses[0].keys() == losses[1].keys()
    for k in losses[0]:
        assert losses[1][k] == pytest.approx(losses[0][k], rel=1e-4), k
    assert grads[0].keys() == grads[1].keys() and any("motion_encoder" in n for n in grads[0])
    for n in grads[0]:
        torch.testing.assert_close(grads[1][n], grads[0][n], rtol=1e-3, atol=1e-6, msg=n)


@pytest.mark.parametrize("chunk", [1 << 19, 15, 30, 45])  # one chunk; rows of 5 x 3 split 2 / 2 / 3 per chunk
def test_chunked_vertex_errors_match_autograd_values_and_gradients(monkeypatch, chunk):
    """The fused MSE + velocity kernel equals autograd on the plain formulas, gradients included, for
    chunk boundaries anywhere (a clip's frames split across chunks, a mask with a hole, both inputs grad)."""
    monkeypatch.setattr(losses, "CHUNK_ELEMENTS", chunk)
    g = torch.Generator().manual_seed(3)
    pred = torch.randn(3, 7, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    gt = torch.randn(3, 7, 5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    mask = torch.ones(3, 7, dtype=torch.bool)
    mask[1, 5:] = False
    mask[2, 3] = False  # a hole: neither difference touching frame 3 counts
    mse, vel = losses.vertex_errors(pred, gt, mask)
    m = mask.double()
    ref_mse = ((pred - gt).square().mean((-1, -2)) * m).sum() / m.sum()
    pair = m[:, 1:] * m[:, :-1]
    d = (pred[:, 1:] - pred[:, :-1]) - (gt[:, 1:] - gt[:, :-1])
    ref_vel = (d.square().mean((-1, -2)) * pair).sum() / pair.sum()
    torch.testing.assert_close(mse, ref_mse)
    torch.testing.assert_close(vel, ref_vel)
    got = torch.autograd.grad(0.7 * mse + 1.3 * vel, (pred, gt))
    ref = torch.autograd.grad(0.7 * ref_mse + 1.3 * ref_vel, (pred, gt), retain_graph=True)
    for a, b in zip(got, ref, strict=True):
        torch.testing.assert_close(a, b)
    # only one of the two terms used downstream: the other's gradient is absent, not garbage
    (g_mse,) = torch.autograd.grad(losses.vertex_errors(pred, gt, mask)[0], (pred,))
    (r_mse,) = torch.autograd.grad(ref_mse, (pred,))
    torch.testing.assert_close(g_mse, r_mse)
    small_gt, small_mask = gt[:, :4, :2].detach(), mask[:, :4]
    assert torch.autograd.gradcheck(
        lambda p: sum(losses.vertex_errors(p, small_gt, small_mask)),
        (pred[:, :4, :2].detach().clone().requires_grad_(),),
    )


def test_vertex_errors_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="must be"):
        losses.vertex_errors(
            torch.zeros(1, 4, 5, 3), torch.zeros(1, 3, 5, 3), torch.ones(1, 4, dtype=torch.bool)
        )


def test_inner_lip_pairs_cover_every_central_vertex_of_both_contours():
    """A vertex left out of every pair is free of the gap term; on the ICT face one-sided pairing left 5 of
    the 14 central lower inner-lip vertices out, and the trained model drew the lower lip jagged."""
    from memorytalker.face import FaceModel
    from memorytalker.topology.lips import inner_lip_pairs

    topo = FaceModel.load().topology
    inner, w = topo.inner_lips, topo.axes.width
    up, lo = inner_lip_pairs(topo, central=0.6)
    xu, xl = topo.vertices[inner.upper, w], topo.vertices[inner.lower, w]
    lo_x, hi_x = min(xu.min(), xl.min()), max(xu.max(), xl.max())
    centre, half = 0.5 * (lo_x + hi_x), 0.3 * (hi_x - lo_x)
    assert set(inner.upper[np.abs(xu - centre) <= half]) == set(up)
    assert set(inner.lower[np.abs(xl - centre) <= half]) == set(lo)
    assert len(set(zip(up, lo))) == up.size  # no pair twice
    # each pair faces across the mouth: the partner is the nearest one on the other contour
    for u, v in zip(up, lo):
        x_u, x_v = topo.vertices[u, w], topo.vertices[v, w]
        d = abs(x_u - x_v)
        assert d <= np.abs(xl - x_u).min() + 1e-12 or d <= np.abs(xu - x_v).min() + 1e-12


def test_lip_gap_loss_against_a_naive_loop_with_closed_frames_weighted():
    from memorytalker.face import FaceModel
    from memorytalker.topology.lips import inner_lip_gap, inner_lip_pairs

    topo = FaceModel.load().topology
    up, lo = inner_lip_pairs(topo)
    assert 3 <= up.size == lo.size and set(up) <= set(topo.region("upper_lip_inner"))
    axes, inner = topo.axes, topo.inner_lips
    g = torch.Generator().manual_seed(3)
    base = torch.from_numpy(topo.vertices)[None, None].repeat(2, 4, 1, 1)
    base[:, :, inner.upper, axes.up] += 0.003 * axes.up_sign  # open the mouth 3 mm more
    gt = base + 0.0002 * torch.randn(base.shape, generator=g)
    pred = base + 0.0005 * torch.randn(base.shape, generator=g)
    gt[0, 1, inner.mid_lower, axes.up] = gt[0, 1, inner.mid_upper, axes.up]  # frame (0, 1): lips closed
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    unit = 0.003
    got = losses.lip_gap_loss(pred, gt, mask, topo, unit, closed_weight=4.0, closed_below=0.3)
    num = den = 0.0
    for b in range(2):
        for t in range(4):
            if not mask[b, t]:
                continue
            p, q = pred[b, t].double().numpy(), gt[b, t].double().numpy()
            err = np.mean(
                [
                    ((p[u, axes.up] - p[v, axes.up]) - (q[u, axes.up] - q[v, axes.up])) ** 2
                    for u, v in zip(up, lo)
                ]
            )
            closed = inner_lip_gap(q[None], topo)[0] < 0.3 * unit
            assert closed == (b == 0 and t == 1)
            w = 5.0 if closed else 1.0
            num, den = num + w * err / unit**2, den + w
    assert got.item() == pytest.approx(num / den, rel=1e-5)
    # in compute_losses: the term appears when weighted, and needs a topology
    weights = LossWeights(**{**ZERO, "gap": 1.0})
    batch = type("B", (), {"vertices": gt})()
    terms = compute_losses(_out(pred, mask), batch, weights, topo, unit)
    assert terms["gap"].item() == pytest.approx(num / den, rel=1e-5)
    with pytest.raises(ConfigError, match="gap"):
        compute_losses(_out(pred, mask), batch, weights, None, unit)


def test_lip_laplacian_loss_against_a_naive_loop():
    """The uniform Laplacian of the lips region (neighbours = vertices sharing an edge, in the region or
    not) of pred - target, squared, averaged over valid frames, lip vertices and axes, in the unit."""

    topo = tiny_topology()  # lips = [8, 9, 10, 11]; faces (i, i+1, i+2)
    g = torch.Generator().manual_seed(5)
    pred, gt = torch.randn(2, 3, 12, 3, generator=g), torch.randn(2, 3, 12, 3, generator=g)
    mask = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    unit = 0.5
    got = losses.lip_laplacian_loss(pred, gt, mask, topo, unit)
    nbrs = {i: set() for i in range(12)}
    for f in topo.faces:
        for a in f:
            nbrs[int(a)] |= {int(b) for b in f if b != a}
    vals = []
    for b in range(2):
        for t in range(3):
            if not mask[b, t]:
                continue
            d = (pred[b, t] - gt[b, t]).double()
            lap = [d[i] - sum(d[j] for j in nbrs[i]) / len(nbrs[i]) for i in (8, 9, 10, 11)]
            vals.append(float(torch.stack(lap).square().mean()))
    assert got.item() == pytest.approx(np.mean(vals) / unit**2, rel=1e-5)
    # a rigid translation of the lips with their neighbours costs nothing; a spike of one vertex does
    moved = gt + torch.tensor([0.1, -0.2, 0.3])
    assert losses.lip_laplacian_loss(moved, gt, mask, topo).item() == pytest.approx(0.0, abs=1e-10)
    spiked = gt.clone()
    spiked[:, :, 9, 1] += 1.0
    assert losses.lip_laplacian_loss(spiked, gt, mask, topo).item() > 0.1
    w = losses.LossWeights(mse=0, velocity=0, teacher_mse=0, teacher_velocity=0, mem=0, align=0, ctc=0)
    w.laplacian = 2.0
    out = types.SimpleNamespace(
        vertices=pred,
        frame_mask=mask,
        teacher_vertices=None,
        value_read=None,
        value_address=None,
        ctc_logits=None,
    )
    terms = losses.compute_losses(out, types.SimpleNamespace(vertices=gt), w, topo, unit)
    assert terms["laplacian"].item() == pytest.approx(got.item()) and terms["total"].item() == pytest.approx(
        2 * got.item()
    )
    with pytest.raises(ConfigError, match="laplacian"):
        losses.compute_losses(out, types.SimpleNamespace(vertices=gt), w, None, unit)


@pytest.mark.parametrize(
    "terms", [("mse", "velocity", "gap", "laplacian"), ("gap", "laplacian"), ("mse", "gap")]
)
def test_lip_terms_share_the_vertex_errors_gradient_buffer(terms):
    """compute_losses takes the lip terms' vertices inside the fused vertex-error pass (one gradient
    buffer); values and gradients equal plain autograd of the terms written with direct indexing."""
    from memorytalker.face import FaceModel
    from memorytalker.topology.lips import inner_lip_pairs

    topo = FaceModel.load().topology
    g = torch.Generator().manual_seed(7)
    base = torch.from_numpy(topo.vertices)[None, None].repeat(2, 5, 1, 1)
    gt = base + 0.001 * torch.randn(base.shape, generator=g)
    x = (base + 0.001 * torch.randn(base.shape, generator=g)).requires_grad_(True)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], dtype=torch.bool)
    unit, w = 0.002, {"mse": 1.0, "velocity": 2.0, "gap": 0.3, "laplacian": 5.0}
    weights = LossWeights(**{**ZERO, **{k: w[k] for k in terms}})
    got = compute_losses(_out(x * 1.0, mask), type("B", (), {"vertices": gt})(), weights, topo, unit)
    (grad,) = torch.autograd.grad(got["total"], x)
    # the reference: every term by direct indexing of the full tensors, differentiated by autograd
    y = x.double()
    t, m = gt.double(), mask.double()
    ref = {}
    ref["mse"] = (((y - t) ** 2).mean((-2, -1)) * m).sum() / m.sum() / unit**2
    pair = m[:, 1:] * m[:, :-1]
    dv = (y[:, 1:] - y[:, :-1]) - (t[:, 1:] - t[:, :-1])
    ref["velocity"] = ((dv**2).mean((-2, -1)) * pair).sum() / pair.sum() / unit**2
    up, lo = inner_lip_pairs(topo)
    ax, sign, inner = topo.axes.up, topo.axes.up_sign, topo.inner_lips
    gp = sign * (y[:, :, up, ax] - y[:, :, lo, ax]) / unit
    gq = sign * (t[:, :, up, ax] - t[:, :, lo, ax]) / unit
    mid = sign * (t[:, :, inner.mid_upper, ax] - t[:, :, inner.mid_lower, ax]) / unit
    wt = (1.0 + 4.0 * (mid < 0.3).double()) * m
    ref["gap"] = (((gp - gq) ** 2).mean(-1) * wt).sum() / wt.sum()
    rows, nbr, lw = (torch.from_numpy(a) for a in losses.laplacian_operator(topo))
    d = y - t
    lap = d[:, :, rows] - (d[:, :, nbr] * lw.double()[None, None, :, :, None]).sum(3)
    ref["laplacian"] = ((lap**2).mean((-2, -1)) * m).sum() / m.sum() / unit**2
    total = sum(w[k] * ref[k] for k in terms)
    (ref_grad,) = torch.autograd.grad(total, x)
    for k in terms:
        assert got[k].item() == pytest.approx(ref[k].item(), rel=1e-4), k
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-6 * float(ref_grad.abs().max()))


def test_vertex_errors_stay_float32_under_cpu_autocast():
    g = torch.Generator().manual_seed(1)
    pred, gt = torch.randn(2, 4, 6, 3, generator=g), torch.randn(2, 4, 6, 3, generator=g)
    mask = torch.ones(2, 4, dtype=torch.bool)
    plain = losses.vertex_errors(pred, gt, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = losses.vertex_errors(pred, gt, mask)
    assert all(v.dtype == torch.float32 for v in mixed)
    torch.testing.assert_close(mixed, plain)
