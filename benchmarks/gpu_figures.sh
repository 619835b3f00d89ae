#!/usr/bin/env bash
# GPU figures for docs/BENCHMARKS.md, as one prepared run on a GPU machine whose Python already has torch,
# transformers and lightning-fabric (no dataset needed: inference uses random audio, training random clips).
#   bash benchmarks/gpu_figures.sh [OUTDIR]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
run() { echo "\$ $*"; "$@" 2>&1 | grep -v -E "Writing model shards|Loading weights"; }
{
  run "$PY" benchmarks/bench_inference.py --device cuda --models compact wav2vec2-base --repeats 3
  run "$PY" benchmarks/bench_inference.py --device cuda --bf16 --models compact wav2vec2-base --repeats 3
  run "$PY" benchmarks/bench_training.py --device cuda --bf16 --random-data 4 --random-vertices 3534 \
    --batch-sizes 1 8 32 --steps 20 --warmup 5
  run "$PY" benchmarks/bench_training.py --config configs/vocaset.yaml --device cuda --bf16 --random-data 4 \
    --random-vertices 5023 --random-hf --batch-sizes 1 8 --steps 20 --warmup 5
} | tee "$out/gpu_figures.txt"
