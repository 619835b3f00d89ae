"""load_dataset / DatasetIndex: manifests, built-in layouts, splits, clip ids, topology, loaders."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import yaml
from conftest import dump_py2_pickle, make_tiny_dataset, write_fake_flame_files

from memorytalker.data import builtin_layouts, load_dataset, load_layout, parse_clip_id
from memorytalker.errors import DatasetError
from memorytalker.topology import FaceTopology


def _edit_manifest(root, **changes):
    data = yaml.safe_load((root / "dataset.yaml").read_text())
    data.update(changes)
    (root / "dataset.yaml").write_text(yaml.safe_dump(data))


def test_parse_clip_id():
    assert parse_clip_id("FaceTalk_170725_00137_TA_sentence01") == ("FaceTalk_170725_00137_TA", 1)
    assert parse_clip_id("F2_e01") == ("F2", 1)
    assert parse_clip_id("spk03_s012") == ("spk03", 12)
    for bad in ("noseparator", "spk_abc", "_s01"):
        with pytest.raises(DatasetError, match="subject"):
            parse_clip_id(bad)


def test_builtin_layouts_carry_the_standard_splits():
    assert builtin_layouts() == ["biwi", "vocaset"]
    voca = load_layout("vocaset")
    assert (voca.fps, voca.vertex_fps, voca.stride, voca.units, voca.num_vertices) == (30, 60, 2, "m", 5023)
    assert len(voca.splits["train"].subjects) == 8 and voca.splits["train"].sentences == (1, 40)
    assert voca.splits["test"].subjects == ("FaceTalk_170809_00138_TA", "FaceTalk_170731_00024_TA")
    assert voca.splits["val"].sentences == voca.splits["test"].sentences == (21, 40)
    biwi = load_layout("biwi")
    assert (biwi.fps, biwi.stride, biwi.units, biwi.num_vertices) == (25, 1, "mm", 23370)
    assert list(biwi.splits) == ["train", "val", "test_a", "test_b"]
    assert biwi.splits["test_a"].subjects == biwi.splits["train"].subjects
    assert biwi.splits["test_a"].sentences == biwi.splits["test_b"].sentences == (37, 40)
    assert len(biwi.splits["test_b"].subjects) == 8
    with pytest.raises(DatasetError, match="unknown layout"):
        load_layout("nonexistent")


def test_index_basics(tiny_dataset):
    index = load_dataset(tiny_dataset)
    assert (
        index.name == "tiny"
        and index.fps == 30
        and index.units == "m"
        and index.split_names == ["train", "test"]
    )
    assert index.num_vertices == 6 and index.topology.num_vertices == 6
    assert [c.clip_id for c in index.clips("test")] == ["spk02_s01", "spk02_s02"]
    assert index.train_subjects == ["spk00", "spk01"]
    clip = index.clips("train")[0]
    assert (clip.subject, clip.sentence, clip.phonemes_path) == ("spk00", 1, None)
    assert index.load_vertices(clip).shape == (12, 6, 3)
    assert index.load_vertices(clip).flags.writeable  # a copy, not the memory map
    assert index.templates["spk00"].shape == (6, 3) and index.templates["spk00"].dtype == np.float32
    with pytest.raises(DatasetError, match="no split 'val'"):
        index.clips("val")
    with pytest.raises(DatasetError, match="no clip 'spk09_s01'"):
        index.load_vertices("spk09_s01")


def test_sentence_ranges_and_explicit_clip_lists(tiny_dataset):
    _edit_manifest(
        tiny_dataset,
        splits={
            "train": {"subjects": ["spk00", "spk01"], "sentences": [2, 3]},
            "test": {"clips": ["spk02_s02", "spk00_s01"]},
            "bad": {"clips": ["spk02_s09"]},
            "none": {"sentences": [30, 40]},
        },
    )
    index = load_dataset(tiny_dataset)
    assert [c.clip_id for c in index.clips("train")] == ["spk00_s02", "spk00_s03", "spk01_s02"]
    assert [c.clip_id for c in index.clips("test")] == ["spk00_s01", "spk02_s02"]
    with pytest.raises(DatasetError, match="spk02_s09"):
        index.clips("bad")
    with pytest.raises(DatasetError, match="holds no clips"):
        index.clips("none")


def test_splits_from_a_separate_file(tiny_dataset):
    (tiny_dataset / "splits.yaml").write_text(yaml.safe_dump({"all": {"sentences": [1, 99]}}))
    _edit_manifest(tiny_dataset, splits="splits.yaml")
    assert len(load_dataset(tiny_dataset).clips("all")) == 7


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"fps": 0}, "fps must be a positive number"),
        ({"fps": 25, "vertex_fps": 60}, "whole number"),
        ({"colour": "red"}, r"unknown key\(s\) \['colour'\]"),
        ({"format": "other/2"}, "not supported"),
        ({"splits": {"train": {"subjects": "spk00"}}}, "non-empty list"),
        ({"splits": {"train": {"sentences": [5, 1]}}}, "inclusive range"),
        ({"splits": {"train": {"clips": ["a_s1"], "subjects": ["a"]}}}, "either clips"),
        ({"splits": {"train": {"speakers": ["a"]}}}, "unknown key"),
        ({"splits": {"train": {}}}, "selects nothing"),
        ({"splits": "missing.yaml"}, "file not found"),
        ({"num_vertices": -3}, "num_vertices"),
    ],
)
def test_manifest_errors_name_the_problem(tiny_dataset, changes, match):
    _edit_manifest(tiny_dataset, **changes)
    with pytest.raises(DatasetError, match=match):
        load_dataset(tiny_dataset)


def test_missing_pieces(tmp_path, tiny_dataset):
    with pytest.raises(DatasetError, match="not found"):
        load_dataset(tmp_path / "nowhere")
    (tiny_dataset / "templates.pkl").unlink()
    index = load_dataset(tiny_dataset)
    with pytest.raises(DatasetError, match="templates file not found"):
        index.templates  # noqa: B018
    (tiny_dataset / "topology.npz").unlink()
    _edit_manifest(tiny_dataset, topology=None)
    index = load_dataset(tiny_dataset)
    assert not index.has_topology
    with pytest.raises(DatasetError, match="has no face topology"):
        index.topology  # noqa: B018


def test_topology_from_manifest_mapping_and_override(tmp_path):
    root = make_tiny_dataset(
        tmp_path / "d", clips={"a_s01": 4, "b_s01": 4}, num_vertices=5023, with_topology=False
    )
    mesh, masks = write_fake_flame_files(root)
    _edit_manifest(
        root,
        topology={
            "mesh": mesh.name,
            "regions": {"lips": "FLAME_masks.pkl:nose", "upper_face": ["FLAME_masks.pkl:forehead"]},
        },
    )
    index = load_dataset(root)
    assert index.topology.lips.tolist() == list(range(200, 210))
    other = FaceTopology("x", np.zeros((5023, 3)), np.zeros((0, 3)), 25, {"lips": [1], "upper_face": [2]})
    with pytest.raises(DatasetError, match="25 fps"):
        load_dataset(root, topology=other)


def test_vertex_count_mismatch_on_load(tiny_dataset):
    np.save(tiny_dataset / "vertices_npy" / "spk00_s01.npy", np.zeros((5, 7 * 3), np.float32))
    index = load_dataset(tiny_dataset)
    with pytest.raises(DatasetError, match="7 vertices per frame, expected 6"):
        index.load_vertices("spk00_s01")
    np.save(tiny_dataset / "vertices_npy" / "spk00_s01.npy", np.zeros((5, 8), np.float32))
    with pytest.raises(DatasetError, match=r"not \(T, V\*3\)"):
        load_dataset(tiny_dataset).load_vertices("spk00_s01")


def test_biwi_processed_folder(tmp_path):
    """A folder as CodeTalker's BIWI preprocessing leaves it: (T, 70110) arrays at 25 fps, no dataset.yaml."""
    root = tmp_path / "BIWI"
    (root / "vertices_npy").mkdir(parents=True)
    (root / "wav").mkdir()
    rng = np.random.default_rng(0)
    for subj in ("F2", "M3", "F1"):
        for sent in (1, 33, 37):
            cid = f"{subj}_e{sent:02d}"
            np.save(root / "vertices_npy" / f"{cid}.npy", rng.normal(size=(5, 70110)).astype(np.float32))
            sf.write(root / "wav" / f"{cid}.wav", np.zeros(int(5 / 25 * 16000)) + 0.01, 16000)
    dump_py2_pickle(root / "templates.pkl", {s: np.zeros((23370, 3)) for s in ("F2", "M3", "F1")})
    index = load_dataset(root, layout="biwi")
    assert [c.clip_id for c in index.clips("train")] == ["F2_e01", "M3_e01"]
    assert [c.clip_id for c in index.clips("val")] == ["F2_e33", "M3_e33"]
    assert [c.clip_id for c in index.clips("test_a")] == ["F2_e37", "M3_e37"]
    assert [c.clip_id for c in index.clips("test_b")] == ["F1_e37"]
    assert index.load_vertices("F1_e37").shape == (5, 23370, 3)
    assert index.units == "mm" and index.fps == 25


def test_data_info_cli(tiny_dataset, capsys):
    from memorytalker.cli import main as cli_main

    assert cli_main(["data", "info", str(tiny_dataset)]) == 0
    out = capsys.readouterr().out
    assert "fps 30 (stored 30, stride 1), units m" in out and "vertices per frame: 6" in out
    assert "split train: 5 clips, 2 subjects" in out and "split test: 2 clips, 1 subjects" in out
    assert cli_main(["data", "info", str(tiny_dataset / "vertices_npy")]) == 2  # no dataset.yaml
    assert "--layout" in capsys.readouterr().err
