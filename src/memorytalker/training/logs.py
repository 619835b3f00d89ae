"""Training logs: TensorBoard (Fabric's logger) and an append-friendly CSV, both resume-aware.

``metrics.csv`` is in long format (``step,name,value,time``: one row per logged value), so rows from a
resumed run append to the same file; on resume, rows logged after the checkpoint's step (by the run that
was killed) are dropped first, and TensorBoard purges its events from that step on the same way.
Read it with ``pandas.read_csv(path).pivot_table(index="step", columns="name", values="value")``.
"""

from __future__ import annotations

import csv
import time
from argparse import Namespace
from pathlib import Path
from typing import Any

from lightning_fabric.loggers import Logger, TensorBoardLogger
from lightning_fabric.utilities.rank_zero import rank_zero_only

CSV_FIELDS = ("step", "name", "value", "time")


class LongCSVLogger(Logger):
    """Appends ``step,name,value,time`` rows to ``<root>/metrics.csv`` (a Fabric logger).

    Args:
        root: folder of ``metrics.csv``.
        resume_step: when resuming, drop existing rows with ``step > resume_step`` first.
        flush_every: write buffered rows every N ``log_metrics`` calls (and on ``save``/``finalize``).
    """

    def __init__(self, root: str | Path, resume_step: int | None = None, flush_every: int = 1) -> None:
        super().__init__()
        self.root = Path(root)
        self.path = self.root / "metrics.csv"
        self.flush_every = max(1, int(flush_every))
        self._rows: list[dict[str, Any]] = []
        self._calls = 0
        if rank_zero_only.rank != 0:  # only the global-zero process writes
            return
        self.root.mkdir(parents=True, exist_ok=True)
        if resume_step is None or not self.path.is_file():
            with open(self.path, "w", newline="") as fh:
                csv.DictWriter(fh, fieldnames=CSV_FIELDS).writeheader()
        else:
            with open(self.path, newline="") as fh:
                kept = [r for r in csv.DictReader(fh) if int(float(r["step"])) <= resume_step]
            with open(self.path, "w", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
                writer.writeheader()
                writer.writerows(kept)

    @property
    def name(self) -> str:
        return "csv"

    @property
    def version(self) -> str:
        return ""

    @property
    def root_dir(self) -> str:
        return str(self.root)

    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        return None

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        now = time.time()
        for k, v in metrics.items():
            value = v.item() if hasattr(v, "item") else v
            self._rows.append(
                {"step": int(step or 0), "name": k, "value": float(value), "time": round(now, 3)}
            )
        self._calls += 1
        if self._calls % self.flush_every == 0:
            self.save()

    @rank_zero_only
    def save(self) -> None:
        if not self._rows:
            return
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=CSV_FIELDS).writerows(self._rows)
        self._rows = []

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.save()


def make_loggers(
    log_dir: str | Path, tensorboard: bool, csv_log: bool, resume_step: int | None, flush_every: int
) -> list[Logger]:
    """The configured loggers under ``log_dir`` (``tensorboard/`` and ``metrics.csv``)."""
    loggers: list[Logger] = []
    if tensorboard:
        kwargs = {"purge_step": resume_step + 1} if resume_step is not None else {}
        loggers.append(
            TensorBoardLogger(
                root_dir=str(log_dir), name="", version="tensorboard", default_hp_metric=False, **kwargs
            )
        )
    if csv_log:
        loggers.append(LongCSVLogger(log_dir, resume_step=resume_step, flush_every=flush_every))
    return loggers
