#!/usr/bin/env bash
# Reproduce docs/RESULTS.md on a 2-core CPU (about 70 minutes of training, one run at a time): the synthetic
# corpus, the trainings (checkpoints selected on the validation speakers), evaluation on the unseen test
# speakers, the results table, the per-speaker style weights and lip amplitudes, and the memory check.
#   bash scripts/synthetic_results.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MT=.venv/bin/memorytalker
PY=.venv/bin/python
if [ ! -f data/synthetic/dataset.yaml ]; then
  $MT synth --out data/synthetic --speakers 24 --sentences 40 --seed 0 --workers 2
fi
C=configs/synthetic.yaml
# stage 1 -> runs/synthetic/memorizing; stage 2 (style encoder only, loudness audible) -> .../animating
$MT train --config $C
$MT train --config $C --stage animating
# no-memory ablation -> runs/synthetic_nomem/nomem
$MT train --config configs/synthetic_nomem.yaml
# stage 2 with the paper's level-independent style input -> runs/synthetic_normalized/animating
$MT train --config $C --stage animating output_dir=runs/synthetic_normalized model.style.level=normalized \
  stage.init_from=runs/synthetic/memorizing/best.pt
# stage 1 and 2 without stage 1's per-group learning rates (the memory does not follow E_m)
$MT train --config $C "stage.lr_scale={memory: 1, motion_encoder: 1}" output_dir=runs/synthetic_samelr
$MT train --config $C --stage animating output_dir=runs/synthetic_samelr
# a second seed of the no-memory ablation, stage 1 and stage 2
$MT train --config configs/synthetic_nomem.yaml optim.seed=1 output_dir=runs/synthetic_nomem_seed1
$MT train --config $C optim.seed=1 output_dir=runs/synthetic_seed1
$MT train --config $C --stage animating optim.seed=1 output_dir=runs/synthetic_seed1

runs=(synthetic_nomem/nomem synthetic/memorizing synthetic/animating synthetic_normalized/animating
      synthetic_samelr/memorizing synthetic_samelr/animating
      synthetic_nomem_seed1/nomem synthetic_seed1/memorizing synthetic_seed1/animating)
labels=("no memory" "stage 1" "stage 2" "stage 2, normalised style input"
        "stage 1, one learning rate" "stage 2 after it"
        "no memory, seed 1" "stage 1, seed 1" "stage 2, seed 1")
reports=() preds=()
for i in "${!runs[@]}"; do
  r=runs/${runs[$i]}
  $MT evaluate --checkpoint "$r/best.pt" --data data/synthetic --split test --out "$r/test_report.json" \
    --pred-dir "$r/test_pred" --no-progress
  reports+=("${labels[$i]}=$r/test_report.json")
  preds+=("${labels[$i]}=$r/test_pred")
done
$PY scripts/results_table.py --data data/synthetic --split test "${reports[@]}"
$PY scripts/style_amplitude.py --data data/synthetic --split test "${preds[@]:0:3}"
$PY scripts/style_weights.py --data data/synthetic "stage 2=runs/synthetic/animating/best.pt" \
  "normalised input=runs/synthetic_normalized/animating/best.pt" \
  "one learning rate=runs/synthetic_samelr/animating/best.pt" "seed 1=runs/synthetic_seed1/animating/best.pt"
$PY scripts/memory_reliance.py runs/synthetic/memorizing/best.pt runs/synthetic/animating/best.pt \
  runs/synthetic_samelr/memorizing/best.pt runs/synthetic_samelr/animating/best.pt \
  --data data/synthetic --split val --clips 8
