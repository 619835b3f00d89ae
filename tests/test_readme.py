"""The README's promises stay true: its two commands exist, CI runs the test one, its commands parse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memorytalker.cli import build_parser, main, parse_args

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_two_commands_exist_and_ci_runs_the_test_one():
    assert "make demo" in README and "make test" in README
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    for line in re.findall(r"^\t(.+)$", makefile.split("demo:", 1)[1].split("\n\n", 1)[0], re.M):
        for script in re.findall(r"(benchmarks/\S+\.py)", line):
            assert (ROOT / script).is_file(), script


def _readme_commands() -> list[list[str]]:
    cmds = []
    for m in re.finditer(r"^\| `memorytalker ([a-z\-]+)(?: ([a-z]+))?", README, re.M):
        words = [m.group(1)]
        if m.group(2) and m.group(1) in {"data", "prepare"}:
            words.append(m.group(2))
        cmds.append(words)
    return cmds


@pytest.mark.parametrize("words", _readme_commands(), ids=lambda w: " ".join(w))
def test_readme_command_exists(words, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*words, "--help"])
    assert exc.value.code == 0
    assert "usage: memorytalker" in capsys.readouterr().out


def test_every_command_has_help():
    parser = build_parser()
    assert parser.format_help()


def test_overrides_may_come_before_and_after_the_options(capsys):
    args = parse_args(build_parser(), ["train", "--config", "c.yaml", "a=1", "--stage", "animating", "b=2"])
    assert args.overrides == ["a=1", "b=2"] and args.stage == "animating" and args.config == "c.yaml"
    with pytest.raises(SystemExit):  # anything else left over is still an error
        parse_args(build_parser(), ["train", "a=1", "--stage", "animating", "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # commands without overrides take no key=value
        parse_args(build_parser(), ["animate", "--out", "o", "a=1", "--no-video", "b=2"])


def test_main_job_animates_the_bundled_example_with_the_embedded_model(tmp_path):
    """`make demo` = `memorytalker animate --out out/`: no flags, no dataset, no network."""
    import av
    import numpy as np

    from memorytalker.data.audio import load_audio
    from memorytalker.inference import Animator, default_checkpoint, example_audio

    assert "memorytalker animate --out out/" in (ROOT / "Makefile").read_text()
    assert default_checkpoint().stat().st_size <= 20 * 2**20  # shipped inside the package
    out = tmp_path / "out"
    assert main(["animate", "--out", str(out)]) == 0
    name = example_audio().stem
    vertices = np.load(out / f"{name}.npy")
    topology = Animator().topology
    seconds = load_audio(example_audio()).shape[0] / 16000
    assert vertices.shape == (round(seconds * topology.fps), topology.num_vertices, 3)
    # the lips follow the speech: the mouth opens by centimetres and closes (metres in the data)
    from memorytalker.topology import inner_lip_gap

    gap = inner_lip_gap(vertices, topology)  # (T,) signed midline gap
    assert np.percentile(gap, 95) > 0.01 and gap.min() < 0.001, (gap.min(), np.percentile(gap, 95))
    # the project's face: ARKit weights beside the vertices, one Live Link Face row per frame
    from memorytalker.face.arkit import ARKIT_NAMES
    from memorytalker.face.livelink import read_live_link_csv

    take = read_live_link_csv(out / f"{name}.csv")
    assert take.weights.shape == (vertices.shape[0], 52) and take.fps == topology.fps
    assert take.weights[:, ARKIT_NAMES.index("jawOpen")].max() > 0.2  # the jaw moves
    with av.open(str(out / f"{name}.mp4")) as container:
        kinds = sorted(s.type for s in container.streams)
        video = container.streams.video[0]
        assert kinds == ["audio", "video"] and video.codec_context.name == "h264"
        assert video.codec_context.pix_fmt == "yuv420p"
    assert (out / f"{name}.glb").read_bytes()[:4] == b"glTF"
