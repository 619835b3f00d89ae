"""ARKit weights as Live Link Face CSV files: written by ``animate``, read by ``retarget``.

Epic's Live Link Face app records a take as a CSV with one row per frame::

    Timecode,BlendShapeCount,EyeBlinkLeft,...,TongueOut,HeadYaw,HeadPitch,HeadRoll,LeftEyeYaw,...,RightEyeRoll
    00:00:00:00.000,61,0.0000,...

* ``Timecode``: ``HH:MM:SS:FF.fff`` -- hours, minutes, seconds, the frame within the second at the take's
  frame rate, and the fraction of a frame (Live Link Face's sub-frame). Written from ``00:00:00:00.000``.
* ``BlendShapeCount``: 61 (52 ARKit shapes + 9 angles).
* the 52 ARKit weights in Apple's order (:data:`~memorytalker.face.arkit.LIVE_LINK_NAMES`), in ``[0, 1]``;
* head yaw/pitch/roll and both eyes' yaw/pitch/roll. The model predicts the face in its head's frame, so the
  files ``animate`` writes carry zeros there (no head or gaze motion is invented).

:func:`read_live_link_csv` reads such files whether they come from here or from the app (columns by name,
any order; missing angle columns read as zero; the frame rate from the timecodes unless given) and refuses,
naming the file, row and column, anything that is not a finite number or that lacks one of the 52 shapes.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memorytalker.errors import MemoryTalkerError
from memorytalker.face.arkit import NUM_ARKIT, live_link_header

#: Head and eye angle columns of the layout, in order.
ANGLE_NAMES: tuple[str, ...] = tuple(live_link_header()[2 + NUM_ARKIT :])
#: ``BlendShapeCount`` of the layout.
BLENDSHAPE_COUNT = NUM_ARKIT + len(ANGLE_NAMES)
_TIMECODE = re.compile(r"^(\d+):(\d{2}):(\d{2}):(\d+)(?:\.(\d+))?$")


class LiveLinkError(MemoryTalkerError, ValueError):
    """A Live Link Face CSV that cannot be written or read as one (the message names file, row, column)."""


@dataclass
class LiveLinkTake:
    """A Live Link Face take.

    Attributes:
        weights: ``(T, 52)`` float32 ARKit weights in Apple's order.
        angles: ``(T, 9)`` float32 head and eye yaw/pitch/roll (:data:`ANGLE_NAMES`).
        fps: frames per second.
    """

    weights: np.ndarray
    angles: np.ndarray
    fps: float


def format_timecode(frame: int, fps: float) -> str:
    """``HH:MM:SS:FF.fff`` of frame ``frame`` at ``fps`` (frame within the second at ``round(fps)``)."""
    t = frame / fps
    seconds = math.floor(t + 1e-9)
    per_second = max(1, round(fps))
    sub = (t - seconds) * per_second
    ff = min(per_second - 1, math.floor(sub + 1e-6))
    frac = max(0.0, sub - ff)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}:{ff:02d}.{min(999, round(frac * 1000)):03d}"


def _split_timecode(text: str) -> tuple[int, int, float]:
    """``(whole seconds, frame within the second, sub-frame fraction)`` of ``HH:MM:SS:FF[.fff]``.

    Raises:
        ValueError: not a timecode.
    """
    match = _TIMECODE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a HH:MM:SS:FF.fff timecode")
    h, m, s, ff = (int(g) for g in match.groups()[:4])
    frac = float("0." + match.group(5)) if match.group(5) else 0.0
    return h * 3600 + m * 60 + s, ff, frac


def parse_timecode(text: str, fps: float) -> float:
    """Seconds of a ``HH:MM:SS:FF[.fff]`` timecode at frame rate ``fps``.

    Raises:
        ValueError: not a timecode.
    """
    seconds, ff, frac = _split_timecode(text)
    return seconds + (ff + frac) / max(1, round(fps))


def write_live_link_csv(
    path: str | Path, weights: np.ndarray, fps: float, angles: np.ndarray | None = None
) -> Path:
    """Write ARKit weights ``(T, 52)`` (and optional angles ``(T, 9)``, radians) as a Live Link Face CSV.

    Written to a temporary name in the same folder and renamed at the end: a failure leaves no file.

    Raises:
        LiveLinkError: wrong shapes, ``fps`` not positive, or values that are not finite.
    """
    path = Path(path)
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != NUM_ARKIT:
        raise LiveLinkError(f"{path}: ARKit weights must be (T, {NUM_ARKIT}), got shape {w.shape}")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise LiveLinkError(f"{path}: fps must be a positive number, got {fps!r}")
    a = np.zeros((w.shape[0], len(ANGLE_NAMES))) if angles is None else np.asarray(angles, np.float64)
    if a.shape != (w.shape[0], len(ANGLE_NAMES)):
        raise LiveLinkError(f"{path}: angles must be ({w.shape[0]}, {len(ANGLE_NAMES)}), got shape {a.shape}")
    for name, arr in (("weights", w), ("angles", a)):
        bad = np.argwhere(~np.isfinite(arr))
        if bad.size:
            row, col = bad[0]
            raise LiveLinkError(
                f"{path}: {name} are not finite ({bad.shape[0]} values, first at frame {row}, "
                f"column {col}); nothing written"
            )
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(live_link_header())
            for i in range(w.shape[0]):
                writer.writerow(
                    [format_timecode(i, float(fps)), BLENDSHAPE_COUNT]
                    + [f"{v:.6f}" for v in w[i]]
                    + [f"{v:.6f}" for v in a[i]]
                )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _fps_from_timecodes(path: Path, codes: list[str]) -> float:
    """The frame rate of a take from its timecodes: the frame field counts ``0 ... fps - 1`` within each
    second, so a take that crosses a second boundary shows it; the rows must then be one frame apart."""
    parsed = []
    for row, text in enumerate(codes, start=2):
        try:
            parsed.append(_split_timecode(text))
        except ValueError as exc:
            raise LiveLinkError(f"{path}: row {row}, column Timecode: {exc}") from None
    seconds = {p[0] for p in parsed}
    if len(seconds) < 2:
        raise LiveLinkError(
            f"{path}: the timecodes do not cross a second, so they give no frame rate; pass fps"
        )
    # the last frame field before each second boundary is fps - 1
    tops = {a[1] + 1 for a, b in zip(parsed, parsed[1:], strict=False) if b[0] == a[0] + 1}
    if len(tops) != 1:
        raise LiveLinkError(
            f"{path}: the timecodes count {sorted(tops)} frames in different seconds; pass fps"
        )
    fps = float(tops.pop())
    steps = np.diff([s + (ff + frac) / fps for s, ff, frac in parsed]) * fps
    if not np.all(np.abs(steps - 1.0) < 0.05):
        row = int(np.argmax(np.abs(steps - 1.0))) + 3
        raise LiveLinkError(
            f"{path}: row {row}: the timecodes are not one frame apart at {fps:g} fps; pass fps"
        )
    return fps


def read_live_link_csv(path: str | Path, fps: float | None = None) -> LiveLinkTake:
    """Read a Live Link Face CSV (columns by name, case-insensitive; angle columns optional).

    Args:
        path: the CSV.
        fps: the take's frame rate; ``None`` reads it from the timecodes (a take of at least a second).

    Raises:
        LiveLinkError: unreadable file, a missing ARKit column, a value that is not a finite number, no rows.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise LiveLinkError(f"{path}: cannot read as a CSV file: {exc}") from None
    if not rows:
        raise LiveLinkError(f"{path}: empty file (no header)")
    header = [h.strip().lower() for h in rows[0]]
    index = {h: i for i, h in enumerate(header)}
    names = live_link_header()
    shapes = names[2 : 2 + NUM_ARKIT]
    missing = [n for n in shapes if n.lower() not in index]
    if missing:
        raise LiveLinkError(
            f"{path}: not a Live Link Face CSV: {len(missing)} ARKit columns missing ({', '.join(missing[:5])}"
            f"{' ...' if len(missing) > 5 else ''})"
        )
    data = [r for r in rows[1:] if any(cell.strip() for cell in r)]
    if not data:
        raise LiveLinkError(f"{path}: no frames (only a header)")
    cols = [index[n.lower()] for n in shapes]
    angle_cols = [index.get(n.lower()) for n in ANGLE_NAMES]
    weights = np.zeros((len(data), NUM_ARKIT), np.float32)
    angles = np.zeros((len(data), len(ANGLE_NAMES)), np.float32)
    for r, row in enumerate(data):
        for target, columns, labels in ((weights, cols, shapes), (angles, angle_cols, ANGLE_NAMES)):
            for j, (c, label) in enumerate(zip(columns, labels, strict=True)):
                if c is None:
                    continue
                cell = row[c] if c < len(row) else ""
                try:
                    value = float(cell)
                except ValueError:
                    value = float("nan")
                if not math.isfinite(value):
                    raise LiveLinkError(
                        f"{path}: row {r + 2}, column {label}: {cell!r} is not a finite number"
                    )
                target[r, j] = value
    if fps is None:
        if "timecode" not in index:
            raise LiveLinkError(f"{path}: no Timecode column to read the frame rate from; pass fps")
        fps = _fps_from_timecodes(path, [row[index["timecode"]] for row in data])
    elif not (math.isfinite(fps) and fps > 0):
        raise LiveLinkError(f"{path}: fps must be a positive number, got {fps!r}")
    return LiveLinkTake(weights=weights, angles=angles, fps=float(fps))


__all__ = [
    "ANGLE_NAMES",
    "BLENDSHAPE_COUNT",
    "LiveLinkError",
    "LiveLinkTake",
    "format_timecode",
    "parse_timecode",
    "read_live_link_csv",
    "write_live_link_csv",
]
