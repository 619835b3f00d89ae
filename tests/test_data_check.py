"""`memorytalker data check` finds every planted defect (and nothing on a clean dataset)."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest
import soundfile as sf
import yaml
from conftest import TRAIN_A, TRAIN_B, make_tiny_dataset

from memorytalker.cli import main as cli_main
from memorytalker.data import check_dataset, prepare_vocaset


def test_clean_dataset_has_no_findings(tiny_dataset, capsys):
    assert check_dataset(tiny_dataset) == []
    assert cli_main(["data", "check", str(tiny_dataset), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "no problems found (7 clips, 3 subjects, splits train=5, test=2)" in out


def test_missing_manifest_is_one_finding(tmp_path):
    (tmp_path / "d").mkdir()
    (finding,) = check_dataset(tmp_path / "d")
    assert finding.kind == "manifest" and "--layout" in finding.message


@pytest.fixture(scope="module")
def broken(fake_vocaset_raw, tmp_path_factory):
    """A prepared VOCASET copy with one planted defect of every kind; returns (root, expected findings)."""
    root = tmp_path_factory.mktemp("broken")
    prepare_vocaset(fake_vocaset_raw.raw, root, progress=False)
    vdir, wdir = root / "vertices_npy", root / "wav"
    expected: dict[str, str] = {}
    # 1. vertices without audio / audio without vertices
    (wdir / f"{TRAIN_A}_sentence02.wav").unlink()
    expected["missing_audio"] = f"{TRAIN_A}_sentence02"
    shutil.copy(wdir / f"{TRAIN_A}_sentence01.wav", wdir / f"{TRAIN_A}_sentence09.wav")
    expected["missing_vertices"] = f"{TRAIN_A}_sentence09"
    # 2. audio 0.5 s longer than the frames
    cid = f"{TRAIN_A}_sentence03"
    data, rate = sf.read(wdir / f"{cid}.wav")
    sf.write(wdir / f"{cid}.wav", np.concatenate([data, np.zeros(rate // 2)]), rate)
    expected["duration_mismatch"] = cid
    # 3. NaN in one frame
    cid = f"{TRAIN_B}_sentence01"
    arr = np.load(vdir / f"{cid}.npy")
    arr[2, 7] = np.nan
    np.save(vdir / f"{cid}.npy", arr)
    expected["nonfinite"] = cid
    # 4. wrong vertex count
    cid = f"{TRAIN_B}_sentence02"
    arr = np.load(vdir / f"{cid}.npy")
    np.save(vdir / f"{cid}.npy", arr[:, :-3])
    expected["vertex_count"] = cid
    # 5. unreadable vertex file and unreadable audio file (a new pair)
    cid = "FaceTalk_170725_00137_TA_sentence07"
    (vdir / f"{cid}.npy").write_bytes(b"not a numpy file")
    (wdir / f"{cid}.wav").write_text("not audio either")
    expected["unreadable"] = cid
    # 6. a file name that is not <subject>_<sentence>
    shutil.copy(vdir / f"{TRAIN_A}_sentence01.npy", vdir / "nounderscore.npy")
    shutil.copy(wdir / f"{TRAIN_A}_sentence01.wav", wdir / "nounderscore.wav")
    expected["bad_clip_id"] = "nounderscore"
    # 7. splits: a made-up subject, an explicit clip list with a missing clip, an empty split
    manifest = yaml.safe_load((root / "dataset.yaml").read_text())
    manifest["splits"]["train"]["subjects"].append("Ghost_Subject")
    manifest["splits"]["extra"] = {"clips": [f"{TRAIN_A}_sentence01", "Nobody_sentence01"]}
    manifest["splits"]["late"] = {"sentences": [39, 40]}
    (root / "dataset.yaml").write_text(yaml.safe_dump(manifest))
    expected["unknown_subject"] = "Ghost_Subject"
    expected["unknown_clip"] = "Nobody_sentence01"
    expected["empty_split"] = "late"
    # 8. a subject without template
    with open(root / "templates.pkl", "rb") as fh:
        templates = pickle.load(fh, encoding="latin1")
    del templates[TRAIN_B]
    with open(root / "templates.pkl", "wb") as fh:
        pickle.dump(templates, fh, protocol=2)
    expected["no_template"] = TRAIN_B
    return root, expected


def test_check_finds_every_planted_defect(broken):
    root, expected = broken
    findings = check_dataset(root)
    by_kind: dict[str, list[str]] = {}
    for f in findings:
        by_kind.setdefault(f.kind, []).append(f.message)
    for kind, needle in expected.items():
        assert kind in by_kind, f"{kind} not reported; got {sorted(by_kind)}"
        assert any(needle in m for m in by_kind[kind]), (kind, by_kind[kind])
    # both halves of the unreadable pair are reported, not just the first problem
    unreadable = [f for f in findings if f.kind == "unreadable"]
    assert {f.path.rsplit(".", 1)[1] for f in unreadable} == {"npy", "wav"}
    # the wrong-count clip and the NaN clip are not reported for anything else
    assert [f.kind for f in findings if f.clip_id == expected["vertex_count"]] == ["vertex_count"]
    assert [f.kind for f in findings if f.clip_id == expected["nonfinite"]] == ["nonfinite"]


def test_check_cli_exit_code_and_json(broken, tmp_path, capsys):
    root, expected = broken
    out_json = tmp_path / "findings.json"
    rc = cli_main(["data", "check", str(root), "--json", str(out_json), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 1
    for kind in expected:
        assert f"{kind}:" in out
    data = json.loads(out_json.read_text())
    assert {d["kind"] for d in data} >= set(expected)


def test_check_with_builtin_layout_and_wrong_vertex_count(tmp_path):
    # BIWI layout expects 23370 vertices: a 6-vertex folder is reported clip by clip
    root = make_tiny_dataset(tmp_path / "d", clips={"F2_e01": 5, "F2_e02": 5}, fps=25, vertex_fps=25)
    (root / "dataset.yaml").unlink()
    (root / "topology.npz").unlink()
    findings = check_dataset(root, layout="biwi")
    kinds = [f.kind for f in findings]
    assert kinds.count("vertex_count") == 2 + 1  # two clips + the template of F2
    assert "unknown_subject" in kinds and "empty_split" in kinds
