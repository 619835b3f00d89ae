"""Live Link Face CSV: the layout written, round trip, timecodes, and refusals that name the problem."""

from __future__ import annotations

import numpy as np
import pytest

from memorytalker.face.arkit import LIVE_LINK_NAMES, NUM_ARKIT
from memorytalker.face.livelink import (
    ANGLE_NAMES,
    LiveLinkError,
    format_timecode,
    parse_timecode,
    read_live_link_csv,
    write_live_link_csv,
)


def test_layout_matches_live_link_face(tmp_path):
    w = np.zeros((3, NUM_ARKIT), np.float32)
    w[1, LIVE_LINK_NAMES.index("JawOpen")] = 0.5
    path = write_live_link_csv(tmp_path / "a.csv", w, 30)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    assert header[:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"]
    assert header[-9:] == [
        "HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
        "RightEyeYaw", "RightEyePitch", "RightEyeRoll",
    ]  # fmt: skip
    assert len(header) == 2 + 52 + 9
    row = lines[2].split(",")
    assert row[0] == "00:00:00:01.000" and row[1] == "61"
    assert float(row[2 + LIVE_LINK_NAMES.index("JawOpen")]) == 0.5
    assert len(lines) == 4


def test_timecodes_hand_values():
    assert format_timecode(0, 30) == "00:00:00:00.000"
    assert format_timecode(29, 30) == "00:00:00:29.000"
    assert format_timecode(30, 30) == "00:00:01:00.000"
    assert format_timecode(30 * 3661 + 7, 30) == "01:01:01:07.000"
    assert format_timecode(1, 25) == "00:00:00:01.000"
    assert parse_timecode("00:00:01:15.500", 30) == pytest.approx(1 + 15.5 / 30)
    with pytest.raises(ValueError, match="timecode"):
        parse_timecode("1.5", 30)


@pytest.mark.parametrize("fps", [25, 30, 60])
def test_round_trip_reads_fps_from_timecodes(tmp_path, fps):
    rng = np.random.default_rng(0)
    w = rng.uniform(0, 1, (2 * fps + 5, NUM_ARKIT)).astype(np.float32)
    ang = rng.uniform(-0.2, 0.2, (w.shape[0], 9)).astype(np.float32)
    path = write_live_link_csv(tmp_path / "t.csv", w, fps, ang)
    take = read_live_link_csv(path)
    assert take.fps == fps
    np.testing.assert_allclose(take.weights, w, atol=1e-6)
    np.testing.assert_allclose(take.angles, ang, atol=1e-6)


def test_reads_columns_by_name_any_order_and_without_angles(tmp_path):
    names = list(LIVE_LINK_NAMES)[::-1]
    rows = ["Timecode," + ",".join(n.lower() for n in names)]
    for i in range(35):
        vals = [str((j + i) % 7 / 10) for j in range(NUM_ARKIT)]
        rows.append(f"{format_timecode(i, 30)}," + ",".join(vals))
    path = tmp_path / "app.csv"
    path.write_text("\n".join(rows) + "\n")
    take = read_live_link_csv(path)
    assert take.fps == 30 and take.weights.shape == (35, NUM_ARKIT)
    assert not take.angles.any() and take.angles.shape == (35, len(ANGLE_NAMES))
    # column of LIVE_LINK_NAMES[0] was written last
    assert take.weights[0, 0] == pytest.approx((NUM_ARKIT - 1) % 7 / 10)


def test_refusals_name_the_problem(tmp_path):
    w = np.zeros((40, NUM_ARKIT), np.float32)
    path = write_live_link_csv(tmp_path / "ok.csv", w, 30)
    text = path.read_text().splitlines()

    bad = tmp_path / "nan.csv"
    cells = text[5].split(",")
    cells[2 + LIVE_LINK_NAMES.index("MouthClose")] = "nan"
    bad.write_text("\n".join([*text[:5], ",".join(cells), *text[6:]]))
    with pytest.raises(LiveLinkError, match=r"row 6, column MouthClose"):
        read_live_link_csv(bad)

    missing = tmp_path / "missing.csv"
    missing.write_text("Timecode,JawOpen\n00:00:00:00.000,0.1\n")
    with pytest.raises(LiveLinkError, match="51 ARKit columns missing"):
        read_live_link_csv(missing)

    with pytest.raises(LiveLinkError, match="no frames"):
        (tmp_path / "h.csv").write_text(text[0] + "\n")
        read_live_link_csv(tmp_path / "h.csv")

    short = write_live_link_csv(tmp_path / "short.csv", w[:10], 30)
    with pytest.raises(LiveLinkError, match="pass fps"):
        read_live_link_csv(short)
    assert read_live_link_csv(short, fps=30).weights.shape == (10, NUM_ARKIT)


def test_write_refuses_nan_and_leaves_nothing(tmp_path):
    w = np.zeros((4, NUM_ARKIT), np.float32)
    w[2, 3] = np.nan
    with pytest.raises(LiveLinkError, match="not finite.*frame 2"):
        write_live_link_csv(tmp_path / "x.csv", w, 30)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(LiveLinkError, match=r"\(T, 52\)"):
        write_live_link_csv(tmp_path / "x.csv", np.zeros((4, 51)), 30)
    with pytest.raises(LiveLinkError, match="fps"):
        write_live_link_csv(tmp_path / "x.csv", np.zeros((4, 52)), 0)
