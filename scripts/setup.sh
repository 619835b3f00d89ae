#!/usr/bin/env bash
# One-time set-up on a fresh Debian/Ubuntu machine (idempotent; re-running is cheap).
#  1. system packages (as root, when missing): speech synthesizers for the synthetic corpus, Mesa EGL for
#     headless rendering, Chromium for the browser test;
#  2. a virtual environment in .venv with the CPU build of PyTorch installed FIRST (an unpinned torch would
#     pull a multi-GB CUDA build), then this package with all extras.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
          libegl1 libegl-mesa0 libgl1-mesa-dri chromium)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "[setup] apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "[setup] warning: not root, cannot install: ${missing[*]} (synthetic corpus, rendering or browser tests need them)" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.memorytalker-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip 2>/dev/null || true
  echo "[setup] pip install torch==2.13.0 (CPU build)"
  .venv/bin/python -m pip install -q torch==2.13.0
  echo "[setup] pip install -e .[all]"
  .venv/bin/python -m pip install -q -e ".[all]"
  touch "$stamp"
fi
echo "[setup] ready: $(.venv/bin/python -c 'import torch, memorytalker; print("torch", torch.__version__, "memorytalker", memorytalker.__version__)')"
