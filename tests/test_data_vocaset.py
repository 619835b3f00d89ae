"""`memorytalker prepare vocaset` on a small distribution in the exact raw layout, then loading it back."""

from __future__ import annotations

import pickle
import shutil

import numpy as np
import pytest
import soundfile as sf
import yaml
from conftest import TEST_S, TRAIN_A, TRAIN_B, V_FLAME, VAL_S, write_fake_flame_files

from memorytalker.cli import main as cli_main
from memorytalker.data import TalkingFaceDataset, collate_batch, load_dataset, prepare_vocaset
from memorytalker.errors import DatasetError


@pytest.fixture(scope="module")
def prepared(fake_vocaset_raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("vocaset_out")
    mesh, masks = write_fake_flame_files(tmp_path_factory.mktemp("flame"))
    with pytest.warns(UserWarning, match="duplicate"):
        rc = cli_main(
            [
                "prepare",
                "vocaset",
                "--raw",
                str(fake_vocaset_raw.raw),
                "--out",
                str(out),
                "--mesh",
                str(mesh),
                "--regions",
                str(masks),
                "--no-progress",
            ]
        )
    assert rc == 0
    return out


def test_raw_pickles_need_latin1(fake_vocaset_raw):
    # the fixture really mimics the Python-2 distribution: the default unpickler cannot read it
    with open(fake_vocaset_raw.raw / "templates.pkl", "rb") as fh, pytest.raises(UnicodeDecodeError):
        pickle.load(fh)


def test_prepare_writes_the_right_clips(prepared, fake_vocaset_raw):
    written = sorted(p.stem for p in (prepared / "vertices_npy").glob("*.npy"))
    assert written == sorted(fake_vocaset_raw.good)
    assert sorted(p.stem for p in (prepared / "wav").glob("*.wav")) == written
    for skipped in (fake_vocaset_raw.no_audio, fake_vocaset_raw.no_sequence, fake_vocaset_raw.missing_frames):
        assert skipped not in written


def test_prepare_keeps_every_second_60fps_frame_in_frame_order(prepared, fake_vocaset_raw):
    for cid, rows in fake_vocaset_raw.good.items():
        arr = np.load(prepared / "vertices_npy" / f"{cid}.npy")
        assert arr.dtype == np.float32 and arr.shape == (len(rows[::2]), V_FLAME * 3)
        kept_rows = np.round(arr.reshape(len(arr), V_FLAME, 3)[:, 0, 0] * 1000).astype(int)
        assert kept_rows.tolist() == rows[::2]  # rows of frames 0, 2, 4, ... in frame order


def test_prepare_writes_16k_mono_audio(prepared, fake_vocaset_raw):
    for cid, wave in fake_vocaset_raw.audio.items():
        if cid not in fake_vocaset_raw.good:
            continue
        data, rate = sf.read(prepared / "wav" / f"{cid}.wav")
        assert rate == 16000 and data.ndim == 1
        assert abs(len(data) - len(wave) * 16000 / 22000) <= 1
        spectrum = np.abs(np.fft.rfft(data))
        assert abs(np.argmax(spectrum) * rate / len(data) - 220) < 16000 / len(data) + 1
        assert 0.25 < np.max(np.abs(data)) < 0.35  # int16 and float sources both scaled to [-1, 1]


def test_prepare_manifest_templates_topology(prepared, fake_vocaset_raw):
    manifest = yaml.safe_load((prepared / "dataset.yaml").read_text())
    assert manifest["fps"] == 30 and manifest["vertex_fps"] == 30 and manifest["units"] == "m"
    assert manifest["topology"] == "topology.npz"
    assert set(manifest["splits"]) == {"train", "val", "test", "adapt"}  # adapt: Imitator's protocol
    with open(prepared / "templates.pkl", "rb") as fh:
        templates = pickle.load(fh, encoding="latin1")
    assert set(templates) == set(fake_vocaset_raw.templates)
    np.testing.assert_array_equal(templates[TRAIN_A], fake_vocaset_raw.templates[TRAIN_A])


def test_prepared_dataset_loads_end_to_end(prepared, fake_vocaset_raw):
    index = load_dataset(prepared)
    assert index.fps == 30 and index.stride == 1 and index.units == "m"
    assert index.topology.num_vertices == V_FLAME and index.topology.fps == 30
    assert index.topology.upper_face.tolist() == list(range(100, 120))  # forehead ∪ eye_region
    assert [c.clip_id for c in index.clips("val")] == [f"{VAL_S}_sentence21"]
    assert [c.clip_id for c in index.clips("test")] == [f"{TEST_S}_sentence22"]
    assert index.train_subjects == sorted([TRAIN_A, TRAIN_B])
    clip = index.clips("train")[0]
    verts = index.load_vertices(clip)
    rows = fake_vocaset_raw.good[clip.clip_id]
    assert verts.shape == (len(rows[::2]), V_FLAME, 3)
    audio = index.load_audio(clip)
    assert audio.dtype == np.float32 and abs(audio.size / 16000 * 30 - verts.shape[0]) <= 1
    ds = TalkingFaceDataset(index, "train")
    batch = collate_batch([ds[i] for i in range(len(ds))])
    assert batch.vertices.shape[0] == len(ds) == 5
    assert set(batch.subject_ids.tolist()) == {0, 1}


def test_prepared_dataset_passes_data_check(prepared, capsys):
    # val/test have one clip each and the standard splits name subjects this fake lacks
    rc = cli_main(["data", "check", str(prepared), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "unknown_subject" in out and "missing_audio" not in out and "duration_mismatch" not in out


def test_summary_names_every_skip(fake_vocaset_raw, tmp_path):
    summary = prepare_vocaset(fake_vocaset_raw.raw, tmp_path / "o", progress=False)
    text = summary.format()
    assert f"sequence without audio: 1: {fake_vocaset_raw.no_audio}" in text
    assert f"audio without sequence: 1: {fake_vocaset_raw.no_sequence}" in text
    assert (
        fake_vocaset_raw.missing_frames in summary.skipped["missing frames (non-contiguous frame numbers)"][0]
    )
    assert "no topology.npz written" in text
    assert not (tmp_path / "o" / "topology.npz").exists()
    # a second run refuses to overwrite unless asked
    with pytest.raises(DatasetError, match="--overwrite"):
        prepare_vocaset(fake_vocaset_raw.raw, tmp_path / "o", progress=False)
    again = prepare_vocaset(fake_vocaset_raw.raw, tmp_path / "o", overwrite=True, progress=False)
    assert again.written == summary.written


def test_prepare_reports_missing_raw_files(fake_vocaset_raw, tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(fake_vocaset_raw.raw / "templates.pkl", raw)
    rc = cli_main(["prepare", "vocaset", "--raw", str(raw), "--out", str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "data_verts.npy" in err and "raw_audio_fixed.pkl" in err and "subj_seq_to_idx.pkl" in err


def test_prepare_rejects_wrong_vertex_array(fake_vocaset_raw, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(fake_vocaset_raw.raw, raw)
    np.save(raw / "data_verts.npy", np.zeros((4, 7), dtype=np.float32))
    with pytest.raises(DatasetError, match=r"\(N_total, V, 3\)"):
        prepare_vocaset(raw, tmp_path / "o", progress=False)


def test_prepare_needs_mesh_and_regions_together(fake_vocaset_raw, tmp_path):
    with pytest.raises(DatasetError, match="both --mesh"):
        prepare_vocaset(fake_vocaset_raw.raw, tmp_path / "o", mesh="FLAME_sample.ply", progress=False)


def test_faceformer_processed_folder_reads_with_layout(fake_vocaset_raw, tmp_path):
    """A folder as process_voca_data.py leaves it (60-fps arrays, native-rate wavs, no dataset.yaml)."""
    with open(fake_vocaset_raw.raw / "subj_seq_to_idx.pkl", "rb") as fh:
        index_pkl = pickle.load(fh, encoding="latin1")
    verts = np.load(fake_vocaset_raw.raw / "data_verts.npy", mmap_mode="r")
    root = tmp_path / "ff"
    (root / "vertices_npy").mkdir(parents=True)
    (root / "wav").mkdir()
    cid = f"{TRAIN_A}_sentence01"
    rows = [index_pkl[TRAIN_A]["sentence01"][k] for k in sorted(index_pkl[TRAIN_A]["sentence01"])]
    np.save(root / "vertices_npy" / f"{cid}.npy", np.asarray(verts[rows]).reshape(len(rows), -1))
    sf.write(root / "wav" / f"{cid}.wav", fake_vocaset_raw.audio[cid], 22000, subtype="PCM_16")
    shutil.copy(fake_vocaset_raw.raw / "templates.pkl", root / "templates.pkl")
    with pytest.raises(DatasetError, match="--layout"):
        load_dataset(root)
    index = load_dataset(root, layout="vocaset")
    assert index.stride == 2 and index.fps == 30
    (clip,) = index.clips("train")
    loaded = index.load_vertices(clip)
    assert loaded.shape == (11, V_FLAME, 3)
    assert np.round(loaded[:, 0, 0] * 1000).astype(int).tolist() == rows[::2]
    assert index.load_audio(clip).size == pytest.approx(len(fake_vocaset_raw.audio[cid]) * 16 / 22, abs=1)
    assert index.templates[TRAIN_A].shape == (V_FLAME, 3)
