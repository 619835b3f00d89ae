"""TalkingFaceDataset items, collate_batch padding/masks, triplets, cropping, phonemes, cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import make_tiny_dataset

from memorytalker.data import Batch, TalkingFaceDataset, collate_batch, load_dataset
from memorytalker.data.phonemes import CTC_VOCAB
from memorytalker.errors import DatasetError

PHONES = {
    "spk00_s01": [
        {"phone": "sil", "start": 0.0, "end": 0.1},
        {"phone": "HH", "start": 0.1, "end": 0.2},
        {"phone": "AH0", "start": 0.2, "end": 0.3},
    ]
}


@pytest.fixture
def index(tmp_path):
    return load_dataset(make_tiny_dataset(tmp_path / "d", phonemes=PHONES))


def test_item_fields(index):
    ds = TalkingFaceDataset(index, "train")
    assert len(ds) == 5 and ds.subjects == ["spk00", "spk01"]
    item = ds[0]
    assert item.clip_id == "spk00_s01" and item.subject_id == 0 and item.sentence == 1
    assert item.vertices.shape == (12, 6, 3) and item.vertices.dtype == torch.float32
    assert item.audio.dtype == torch.float32 and item.audio.shape == (6400,)
    assert item.template.shape == (6, 3)
    assert [CTC_VOCAB[i] for i in item.phoneme_ids.tolist()] == ["HH", "AH"]
    # frame centres at (t + .5) / 30 s: frames 0-2 silence, 3-5 HH, 6-8 AH, 9-11 uncovered
    hh, ah = CTC_VOCAB.index("HH"), CTC_VOCAB.index("AH")
    assert item.frame_phonemes.tolist() == [0, 0, 0, hh, hh, hh, ah, ah, ah, -1, -1, -1]


def test_collate_pads_and_masks(index):
    ds = TalkingFaceDataset(index, "train")
    items = [ds[i] for i in range(len(ds))]
    batch = collate_batch(items)
    assert isinstance(batch, Batch) and len(batch) == 5
    lengths = [it.vertices.shape[0] for it in items]
    assert batch.frame_lengths.tolist() == lengths
    assert batch.vertices.shape == (5, max(lengths), 6, 3)
    assert batch.audio.shape == (5, max(it.audio.shape[0] for it in items))
    assert batch.audio_lengths.tolist() == [it.audio.shape[0] for it in items]
    for i, it in enumerate(items):
        n, s = lengths[i], it.audio.shape[0]
        assert torch.equal(batch.vertices[i, :n], it.vertices)
        assert torch.all(batch.vertices[i, n:] == 0)
        assert batch.frame_mask[i].tolist() == [True] * n + [False] * (max(lengths) - n)
        assert torch.equal(batch.audio[i, :s], it.audio) and torch.all(batch.audio[i, s:] == 0)
        assert torch.all(batch.frame_phonemes[i, n:] == -1)
    assert batch.templates.shape == (5, 6, 3)
    assert batch.subjects == ["spk00", "spk00", "spk00", "spk01", "spk01"]
    assert batch.subject_ids.tolist() == [0, 0, 0, 1, 1] and batch.subject_ids.dtype == torch.long
    assert batch.sentences.tolist() == [1, 2, 3, 1, 2]
    assert batch.phoneme_lengths.tolist() == [2, 0, 0, 0, 0]
    assert batch.phoneme_targets.shape == (5, 2)
    assert batch.positive_audio is None and batch.negative_audio is None


def test_unknown_subjects_get_minus_one(index):
    ds = TalkingFaceDataset(index, "test")
    batch = collate_batch([ds[0], ds[1]])
    assert batch.subject_ids.tolist() == [-1, -1]
    assert batch.phoneme_targets.shape == (2, 0) and batch.phoneme_lengths.tolist() == [0, 0]


def test_batch_to_moves_tensors(index):
    ds = TalkingFaceDataset(index, "train")
    batch = collate_batch([ds[0], ds[1]])
    moved = batch.to("cpu")
    assert isinstance(moved, Batch) and moved.clip_ids == batch.clip_ids
    assert torch.equal(moved.vertices, batch.vertices)
    meta = batch.to("meta")
    assert meta.vertices.device.type == "meta" and batch.vertices.device.type == "cpu"


def test_dataloader_round_trip(index):
    ds = TalkingFaceDataset(index, "train", cache=True, triplets=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_batch)
    batches = list(loader)
    assert [len(b) for b in batches] == [2, 2, 1]
    # a worker process gets a pickled copy of the dataset and draws the same triplets
    worker = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_batch, num_workers=1)
    for a, b in zip(batches, worker):
        assert a.clip_ids == b.clip_ids and torch.equal(a.vertices, b.vertices)
        assert torch.equal(a.positive_audio, b.positive_audio)


def test_triplets_are_deterministic_and_valid(index):
    ds = TalkingFaceDataset(index, "train", triplets=True, seed=3)
    for i in range(len(ds)):
        item = ds[i]
        assert item.positive_clip_id != item.clip_id
        assert item.positive_clip_id.rsplit("_", 1)[0] == item.subject
        assert item.negative_clip_id.rsplit("_", 1)[0] != item.subject
        assert torch.equal(item.positive_audio, index_audio(index, item.positive_clip_id))
    first = [(ds[i].positive_clip_id, ds[i].negative_clip_id) for i in range(len(ds))]
    assert first == [(ds[i].positive_clip_id, ds[i].negative_clip_id) for i in range(len(ds))]
    draws = set()
    for epoch in range(8):
        ds.set_epoch(epoch)
        draws.add(tuple((ds[i].positive_clip_id, ds[i].negative_clip_id) for i in range(len(ds))))
    assert len(draws) > 1  # epochs change the draw
    batch = collate_batch([ds[0], ds[3]])
    assert batch.positive_audio.shape[0] == 2 and batch.negative_lengths.shape == (2,)
    assert batch.positive_lengths.tolist() == [ds[0].positive_audio.shape[0], ds[3].positive_audio.shape[0]]


def index_audio(index, clip_id):
    return torch.from_numpy(index.load_audio(clip_id))


def test_triplets_need_two_clips_per_subject(tmp_path):
    root = make_tiny_dataset(
        tmp_path / "d", clips={"a_s01": 5, "a_s02": 5, "b_s01": 5}, splits={"train": {"sentences": [1, 9]}}
    )
    with pytest.raises(DatasetError, match=r"subject\(s\) \['b'\]"):
        TalkingFaceDataset(load_dataset(root), "train", triplets=True)


def test_max_seconds_crops_audio_and_frames_together(index):
    ds = TalkingFaceDataset(index, "train", max_seconds=0.2)
    full = TalkingFaceDataset(index, "train")
    item, whole = ds[0], full[0]
    assert item.vertices.shape[0] == 6 and item.audio.shape[0] == 3200
    start = int(item.vertices[0, 0, 0].item())  # first coordinate = stored frame number
    assert torch.equal(item.vertices, whole.vertices[start : start + 6])
    assert torch.equal(item.audio, whole.audio[round(start * 16000 / 30) :][:3200])
    assert torch.equal(item.frame_phonemes, whole.frame_phonemes[start : start + 6])
    short = ds[4]  # 8 frames > 6: cropped; a clip shorter than the window is kept whole
    assert short.vertices.shape[0] == 6
    assert TalkingFaceDataset(index, "train", max_seconds=10)[0].vertices.shape[0] == 12
    with pytest.raises(DatasetError, match="max_seconds"):
        TalkingFaceDataset(index, "train", max_seconds=0)


def test_vertex_stride_and_any_audio_format(tmp_path):
    root = make_tiny_dataset(
        tmp_path / "d", clips={"a_s01": 5, "a_s02": 4, "b_s01": 4}, vertex_fps=60, audio_rate=44100
    )
    # replace one wav by a stereo 22.05 kHz flac
    (root / "wav" / "b_s01.wav").unlink()
    n = int(4 / 30 * 22050)
    stereo = np.stack([np.ones(n), -np.ones(n) * 0.5], 1) * 0.1
    sf.write(root / "wav" / "b_s01.flac", stereo, 22050)
    index = load_dataset(root)
    assert index.stride == 2
    v = index.load_vertices("a_s01")
    assert v.shape == (5, 6, 3) and v[:, 0, 0].tolist() == [0, 2, 4, 6, 8]
    assert index.load_audio("a_s01").shape == (round(5 / 30 * 16000),)
    audio = index.load_audio("b_s01")
    assert audio.shape == (math.ceil(n * 16000 / 22050),)  # resample_poly: ceil(n * up / down)
    assert np.allclose(audio[100:-100], 0.025, atol=1e-3)  # channels averaged


def test_cache_avoids_rereading(index, monkeypatch):
    ds = TalkingFaceDataset(index, "train", cache=True)
    ds[0]
    calls = []
    monkeypatch.setattr(index, "load_audio", lambda c: calls.append(c))
    ds[0]
    assert calls == []


def test_collate_rejects_mixed_items(index, tmp_path):
    other = load_dataset(make_tiny_dataset(tmp_path / "o", num_vertices=7))
    a = TalkingFaceDataset(index, "train")[0]
    b = TalkingFaceDataset(other, "train")[0]
    with pytest.raises(DatasetError, match="vertex shapes"):
        collate_batch([a, b])
    with pytest.raises(DatasetError, match="empty"):
        collate_batch([])


def test_missing_template_is_an_error(tmp_path):
    import pickle

    root = make_tiny_dataset(tmp_path / "d")
    with open(root / "templates.pkl", "wb") as fh:
        pickle.dump({"spk00": np.zeros((6, 3), np.float32)}, fh)
    with pytest.raises(DatasetError, match="spk01"):
        TalkingFaceDataset(load_dataset(root), "train")


def test_speaker_motion_scales_against_a_direct_computation(index):
    from memorytalker.data.dataset import speaker_motion_rms, speaker_motion_scales

    lips = index.topology.lips
    rms = speaker_motion_rms(index, "train")
    for subject in ("spk00", "spk01"):
        d = np.concatenate(
            [
                (index.load_vertices(r)[:, lips] - index.templates[subject][lips]).reshape(-1)
                for r in index.clips("train")
                if r.subject == subject
            ]
        )
        assert rms[subject] == pytest.approx(math.sqrt(np.mean(d.astype(np.float64) ** 2)), rel=1e-6)
    scales, ref = speaker_motion_scales(index, "train")
    assert ref == pytest.approx(np.median(list(rms.values())))
    assert scales == pytest.approx({s: r / ref for s, r in rms.items()})
    test_scales, test_ref = speaker_motion_scales(index, "test", reference=ref)
    assert test_ref == ref and test_scales["spk02"] == pytest.approx(
        speaker_motion_rms(index, "test")["spk02"] / ref
    )


def test_speaker_scale_moves_every_speaker_at_one_amplitude(index):
    from memorytalker.data.dataset import speaker_motion_rms, speaker_motion_scales

    scales, ref = speaker_motion_scales(index, "train")
    plain = TalkingFaceDataset(index, "train")
    normed = TalkingFaceDataset(index, "train", speaker_scale=scales)
    lips = index.topology.lips
    per_subject: dict[str, list[np.ndarray]] = {}
    for i in range(len(plain)):
        a, b = plain[i], normed[i]
        assert torch.equal(a.template, b.template) and torch.equal(a.audio, b.audio)
        s = scales[a.subject]
        torch.testing.assert_close(b.vertices, a.template + (a.vertices - a.template) / s)
        per_subject.setdefault(a.subject, []).append((b.vertices - b.template)[:, lips].numpy().reshape(-1))
    for d in per_subject.values():  # after the division each speaker's lip RMS is the reference
        assert math.sqrt(np.mean(np.concatenate(d).astype(np.float64) ** 2)) == pytest.approx(ref, rel=1e-5)
    assert speaker_motion_rms(index, "train") != {s: ref for s in scales}  # the raw speakers differ


def test_speaker_scale_must_cover_every_subject(index):
    with pytest.raises(DatasetError, match=r"spk01"):
        TalkingFaceDataset(index, "train", speaker_scale={"spk00": 1.0})
    with pytest.raises(DatasetError, match=r"spk00"):
        TalkingFaceDataset(index, "train", speaker_scale={"spk00": 0.0, "spk01": 1.0})
