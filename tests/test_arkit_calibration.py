"""The ARKit head over solved weights (face/calibrate.py): context stacking by hand, a known temporal map
recovered, the ridge chosen on validation, refusals, the checkpoint round trip, and the pipeline writing the
head's weights (not the solve's) to the .csv."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from test_export import _load, _read

from memorytalker.errors import CheckpointError, ConfigError
from memorytalker.face.arkit import ARKIT_NAMES, NUM_ARKIT
from memorytalker.face.calibrate import ArkitCalibration, fit_calibration, stack_context


def test_stack_context_by_hand():
    w = np.zeros((3, NUM_ARKIT))
    w[:, 0] = [1.0, 2.0, 3.0]
    x = stack_context(w, 1)
    assert x.shape == (3, 3 * NUM_ARKIT)
    # columns 0, 52, 104 are weight 0 at t-1, t, t+1 (edges repeat the first / last frame)
    np.testing.assert_array_equal(x[:, [0, NUM_ARKIT, 2 * NUM_ARKIT]], [[1, 1, 2], [1, 2, 3], [2, 3, 3]])
    np.testing.assert_array_equal(stack_context(w, 0), w)
    assert stack_context(np.zeros((0, NUM_ARKIT)), 2).shape == (0, 5 * NUM_ARKIT)
    one = stack_context(w[:1], 2)  # a one-frame clip: every neighbour is that frame
    np.testing.assert_array_equal(one.reshape(5, NUM_ARKIT), np.repeat(w[:1], 5, 0))
    with pytest.raises(ValueError, match="52"):
        stack_context(np.zeros((3, 51)), 1)


def _clips(rng, n, frames=40):
    """Solved weights and a truth that is their mean over t-1 and t+1 (a temporal map a 0-context head
    cannot express), scaled by 1.3 and shifted by 0.05 (within [0, 1])."""
    out = []
    for _ in range(n):
        solved = rng.uniform(0, 0.6, size=(frames, NUM_ARKIT))
        padded = np.concatenate([solved[:1], solved, solved[-1:]])
        truth = 0.05 + 1.3 * 0.5 * (padded[:-2] + padded[2:])
        out.append((solved, truth))
    return out


def test_fit_recovers_a_known_temporal_map_and_picks_the_ridge_on_validation():
    rng = np.random.default_rng(0)
    train, val = _clips(rng, 30), _clips(rng, 8)
    head = fit_calibration(train, val, context=1, ridges=(1e-8, 1e-2, 10.0))
    assert head.ridge == 1e-8  # the exact map needs no shrinkage; validation says so
    assert head.fitted["val_mse"] < 1e-8 < head.fitted["val_mse_solve"]
    j = ARKIT_NAMES.index("jawOpen")
    m = head.matrix
    np.testing.assert_allclose(m[[j, NUM_ARKIT + j, 2 * NUM_ARKIT + j], j], [0.65, 0.0, 0.65], atol=1e-4)
    np.testing.assert_allclose(m[-1], 0.05, atol=1e-4)  # the bias row
    solved, truth = val[0]
    np.testing.assert_allclose(head.apply(solved), truth, atol=1e-4)
    assert head.fitted["val_r"]["jawOpen"] > 0.999 > head.fitted["val_r_solve"]["jawOpen"]
    # without context the same data cannot be fitted as well
    flat = fit_calibration(train, val, context=0)
    assert flat.fitted["val_mse"] > 100 * head.fitted["val_mse"]


def test_apply_clips_to_the_unit_range():
    m = np.zeros((NUM_ARKIT + 1, NUM_ARKIT))
    m[:NUM_ARKIT] = 3.0 * np.eye(NUM_ARKIT)
    m[-1] = -0.5
    head = ArkitCalibration(0, m)
    out = head.apply(np.full((4, NUM_ARKIT), 0.5))
    assert out.dtype == np.float32 and np.all(out == 1.0)
    assert np.all(head.apply(np.zeros((2, NUM_ARKIT))) == 0.0)


def test_refusals_name_the_problem():
    rng = np.random.default_rng(1)
    same = [(w, w.copy()) for w in (rng.uniform(0, 1, (20, NUM_ARKIT)) for _ in range(4))]
    with pytest.raises(ConfigError, match="no lower than the solve"):
        fit_calibration(same[:3], same[3:], context=0)
    with pytest.raises(ConfigError, match="training and validation clips"):
        fit_calibration(same, [], context=0)
    with pytest.raises(ConfigError, match="context"):
        fit_calibration(same[:3], same[3:], context=-1)
    with pytest.raises(ValueError, match="matrix"):
        ArkitCalibration(1, np.zeros((NUM_ARKIT + 1, NUM_ARKIT)))
    with pytest.raises(ValueError, match="NaN"):
        ArkitCalibration(0, np.full((NUM_ARKIT + 1, NUM_ARKIT), np.nan))


def test_state_round_trip_through_a_weights_only_file(tmp_path):
    rng = np.random.default_rng(2)
    head = fit_calibration(_clips(rng, 10), _clips(rng, 3), context=1)
    path = tmp_path / "state.pt"
    torch.save(head.to_state(), path)
    back = ArkitCalibration.from_state(torch.load(path, weights_only=True))
    assert back.context == 1 and back.ridge == head.ridge and back.fitted == head.fitted
    solved = _clips(rng, 1)[0][0]
    np.testing.assert_allclose(back.apply(solved), head.apply(solved), atol=1e-5)
    state = head.to_state()
    with pytest.raises(CheckpointError, match="format"):
        ArkitCalibration.from_state({**state, "format": "other/1"})
    with pytest.raises(CheckpointError, match="order"):
        ArkitCalibration.from_state({**state, "names": list(reversed(ARKIT_NAMES))})
    with pytest.raises(CheckpointError, match="invalid"):
        ArkitCalibration.from_state({**state, "matrix": torch.zeros(3, 3)})


def test_pipeline_writes_the_heads_weights(tmp_path):
    """The embedded model with its head replaced (a one-frame delay plus a bias on jawOpen): the .csv holds the
    head applied to the weights solved from the written vertices, not the solve itself, and the .glb animates
    its morph targets with them; without a head the solve's own weights are written."""
    from memorytalker.face.livelink import read_live_link_csv
    from memorytalker.face.solve import ArkitSolver
    from memorytalker.inference import Animator, default_checkpoint, example_audio
    from memorytalker.models.loaders import add_arkit_calibration, atomic_save, read_checkpoint
    from memorytalker.pipeline import OutputOptions, animate_to_files

    m = np.zeros((3 * NUM_ARKIT + 1, NUM_ARKIT))
    m[:NUM_ARKIT] = np.eye(NUM_ARKIT)  # w'_t = w_{t-1}
    m[-1, ARKIT_NAMES.index("jawOpen")] = 0.1
    head = ArkitCalibration(1, m)
    ckpt = add_arkit_calibration(default_checkpoint(), head.to_state(), tmp_path / "with_head.pt")
    animator = Animator(ckpt, device="cpu")
    assert animator.arkit_calibration is not None and animator.arkit_calibration.context == 1
    wav = tmp_path / "clip.wav"
    shutil.copy(example_audio(), wav)
    out = tmp_path / "out"
    animate_to_files(animator, wav, out, "clip", options=OutputOptions(video=False, progress=False))
    vertices = np.load(out / "clip.npy")
    solved = ArkitSolver(animator.face).solve(vertices, animator.topology.vertices)
    weights = read_live_link_csv(out / "clip.csv").weights
    np.testing.assert_allclose(weights, head.apply(solved), atol=2e-3)  # the CSV's decimals
    assert np.abs(weights - solved).max() > 0.05
    # the .glb animates its ARKit morph targets with the same (head's) weights
    gl = _load(out / "clip.glb")
    names = gl.meshes[0].extras["targetNames"]
    channel = next(c for c in gl.animations[0].channels if c.target.path == "weights")
    track = _read(gl, gl.animations[0].samplers[channel.sampler].output).reshape(len(weights), len(names))
    jaw = ARKIT_NAMES.index("jawOpen")
    np.testing.assert_allclose(track[:, names.index("jawOpen")], head.apply(solved)[:, jaw], atol=1e-5)
    # a checkpoint without a head writes the solve's own weights
    state = read_checkpoint(ckpt)
    del state["arkit_calibration"]
    plain_path = atomic_save(state, tmp_path / "no_head.pt")
    plain = Animator(plain_path, device="cpu")
    assert plain.arkit_calibration is None
    np.testing.assert_array_equal(plain.arkit_weights(solved), solved.astype(np.float32))
