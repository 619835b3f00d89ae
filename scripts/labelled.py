"""``LABEL=PATH`` command-line arguments of the results scripts (results_table, style_amplitude,
style_weights): ``ap.add_argument("runs", nargs="+", type=label_path)``."""

from __future__ import annotations

import argparse
from pathlib import Path


def label_path(text: str) -> tuple[str, Path]:
    """``"stage 2=runs/x/best.pt"`` -> ``("stage 2", Path("runs/x/best.pt"))``; an argparse error otherwise."""
    label, sep, path = text.partition("=")
    if not sep or not label or not path:
        raise argparse.ArgumentTypeError(f"expected LABEL=PATH, got {text!r}")
    return label, Path(path)
