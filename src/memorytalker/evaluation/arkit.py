"""ARKit weights of a model against a corpus' ground truth (the project's face; ``arkit/<clip>.npy``).

:func:`solved_clips` animates every clip of a split on its speaker's template and solves the ARKit weights
from the prediction: what ``memorytalker calibrate-arkit`` fits its head on and ``scripts/arkit_accuracy.py``
scores.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.errors import DatasetError, TopologyError


@dataclass
class SolvedClip:
    """One clip: its id, the prediction ``(T, V, 3)``, the template ``(V, 3)``, the weights solved from
    the prediction and the ground truth (both ``(T, 52)``, cut to the shorter of the two), and the seconds
    the solve took."""

    clip_id: str
    prediction: np.ndarray
    template: np.ndarray
    solved: np.ndarray
    truth: np.ndarray
    solve_seconds: float


def solved_clips(
    animator,
    index,
    split: str,
    max_clips: int | None = None,
    progress: bool = False,
) -> Iterator[SolvedClip]:
    """Animate and solve the clips of ``split`` (the first ``max_clips``) of a dataset ``index``, with a
    tqdm progress bar when ``progress``.

    Raises:
        TopologyError: the model does not animate the project's face (no ARKit basis).
        DatasetError: a clip has no ground-truth weights (the corpus is not ``memorytalker synth``'s face).
    """
    solver = animator.arkit_solver
    if solver is None:
        raise TopologyError(
            f"{animator.checkpoint}: the model animates {animator.topology.name!r}, not the project's face: "
            "it has no ARKit weights"
        )
    clips = list(index.clips(split))[:max_clips]
    if not clips:
        raise DatasetError(f"{index.root}: split {split!r} has no clips")
    from tqdm.auto import tqdm

    for clip in tqdm(clips, desc=f"animate and solve {split}", disable=not progress, dynamic_ncols=True):
        truth = index.load_arkit(clip)
        if truth is None:
            raise DatasetError(
                f"{index.root}: clip {clip.clip_id} has no ground-truth ARKit weights (arkit/{clip.clip_id}.npy); "
                "they come with a corpus on the project's face (memorytalker synth)"
            )
        tpl = index.template(clip.subject)
        pred = animator.animate(index.load_audio(clip), sample_rate=SAMPLE_RATE, template=tpl)
        n = min(len(pred), len(truth))
        t0 = time.perf_counter()
        solved = solver.solve(pred[:n], tpl)
        yield SolvedClip(clip.clip_id, pred[:n], tpl, solved, np.asarray(truth[:n]), time.perf_counter() - t0)
