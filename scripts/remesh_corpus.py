"""Write a copy of a processed corpus on a remeshed topology: an unseen mesh for models that animate any
topology (``scantalk``; docs/MODELS.md, docs/RESULTS.md "Table 1 in one harness").

The new mesh is the corpus' reference mesh subdivided once and decimated to about ``--vertices`` vertices
(:func:`memorytalker.topology.remesh.remesh_topology`); every clip's ground truth and every speaker's
template are carried over by the exact barycentric map, so the remeshed clips show the same surface motion
sampled at other points. Audio and phoneme files are linked (hard links where possible, else copied);
ARKit weights are not (they belong to the project's face topology). Needs ``fast-simplification`` and
``rtree`` (the ``dev`` extra).

    .venv/bin/python scripts/remesh_corpus.py data/synthetic --out data/synthetic_remeshed \
        --vertices 3600 --splits test
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import yaml

from memorytalker.data.layout import load_dataset, write_templates
from memorytalker.topology.remesh import remesh_topology


def _link(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path, help="processed corpus (docs/LAYOUT.md) with a topology.npz")
    parser.add_argument("--out", type=Path, required=True, help="new corpus folder (must not exist)")
    parser.add_argument("--vertices", type=int, default=3600, help="about this many vertices (default 3600)")
    parser.add_argument("--splits", nargs="+", default=["test"], help="splits to copy (default: test)")
    parser.add_argument("--name", default=None, help="the new topology's name (default <name>-remeshed<V>)")
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"--out {args.out} exists: choose a new folder")
    index = load_dataset(args.data)
    remeshed = remesh_topology(index.topology, args.vertices, name=args.name)
    topo = remeshed.topology
    clips = {c.clip_id: c for split in args.splits for c in index.clips(split)}
    tmp = args.out.with_name(args.out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    for sub in ("vertices_npy", "wav", "phonemes"):
        (tmp / sub).mkdir(parents=True)
    topo.save(tmp / "topology.npz")
    subjects = sorted({c.subject for c in clips.values()})
    write_templates(tmp / "templates.pkl", {s: remeshed.transfer(index.template(s)) for s in subjects})
    for clip_id, rec in sorted(clips.items()):
        frames = index.load_vertices(rec)  # (T, V, 3)
        moved = remeshed.transfer(frames).astype(np.float32)
        np.save(tmp / "vertices_npy" / f"{clip_id}.npy", moved.reshape(len(moved), -1))
        _link(rec.wav_path, tmp / "wav" / rec.wav_path.name)
        if rec.phonemes_path is not None:
            _link(rec.phonemes_path, tmp / "phonemes" / rec.phonemes_path.name)
    manifest = index.manifest.to_dict()
    manifest["name"] = f"{index.name}-{topo.name}"
    manifest["num_vertices"] = int(topo.num_vertices)
    manifest["topology"] = "topology.npz"
    manifest["vertex_fps"] = manifest.get("fps", index.fps)  # frames were read at the corpus fps
    manifest["splits"] = {s: index.split(s).to_dict() for s in args.splits}
    (tmp / "dataset.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None))
    tmp.rename(args.out)
    print(
        f"{args.out}: topology {topo.name!r}, {topo.num_vertices} vertices / {len(topo.faces)} triangles "
        f"(from {index.topology.num_vertices} / {len(index.topology.faces)}), {len(clips)} clips of "
        f"{len(subjects)} speakers, splits {args.splits}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
