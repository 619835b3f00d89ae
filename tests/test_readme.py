"""The README's promises stay true: its two commands exist, CI runs the test one, its commands parse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memorytalker.cli import build_parser, main

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
