#!/usr/bin/env bash
# Reproduce docs/RESULTS.md on a 2-core CPU (about 2.5 h, one training at a time): the synthetic corpus,
# the trainings (checkpoints selected on the validation speakers), evaluation on the unseen test speakers,
# the results table, the per-speaker lip amplitudes and the memory-reliance check.
#   bash scripts/synthetic_results.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MT=.venv/bin/memorytalker
PY=.venv/bin/python
if [ ! -f data/synthetic/dataset.yaml ]; then
  $MT synth --out data/synthetic --speakers 24 --sentences 40 --seed 0 --workers 2
fi
C=configs/synthetic.yaml
# no-memory ablation -> runs/synthetic_nomem/nomem
$MT train --config configs/synthetic_nomem.yaml
# stage 1 -> runs/synthetic/memorizing
$MT train --config $C
# stage 2 as in the paper (style encoder only; level-independent input; triplet weight 0.01)
$MT train --config $C --stage animating stage.name=animating_normalized model.style.level=normalized \
  stage.loss.style=0.01
# stage 2 of configs/synthetic.yaml (style encoder only; loudness audible; triplet weight 1e-7)
$MT train --config $C --stage animating
# stage 2 with the decoder trainable too (not the paper's)
$MT train --config $C --stage animating stage.name=animating_decoder \
  "stage.trainable=[style,fusion,decoder,head]" stage.lr=1e-4
# control: the same decoder fine-tuning without a style encoder (= the embedded default model)
$MT train --config $C --stage animating stage.name=continued "stage.trainable=[fusion,decoder,head]" \
  "stage.model_overrides={style.enabled: false}" stage.loss.style=0 stage.triplets=false \
  "stage.init_exclude=[]" stage.lr=1e-4
# stage 1 and 2 with memory-only decoding for half the training clips -> runs/synthetic_textdrop
$MT train --config $C model.memory.text_dropout=0.5 output_dir=runs/synthetic_textdrop
$MT train --config $C --stage animating model.memory.text_dropout=0.0 output_dir=runs/synthetic_textdrop
# stage 1 and 2 with the text features kept out of the decoder -> runs/synthetic_memonly
$MT train --config $C model.memory.decode_from=memory output_dir=runs/synthetic_memonly
$MT train --config $C --stage animating model.memory.decode_from=memory output_dir=runs/synthetic_memonly

runs=(synthetic_nomem/nomem synthetic/memorizing synthetic/animating_normalized synthetic/animating
      synthetic/animating_decoder synthetic/continued synthetic_textdrop/memorizing synthetic_textdrop/animating
      synthetic_memonly/memorizing synthetic_memonly/animating)
labels=("no memory" "stage 1" "stage 2, paper" "stage 2, loudness audible" "stage 2 + decoder"
        "stage 1 + decoder (control)" "stage 1, text dropout" "stage 2, text dropout"
        "stage 1, memory only" "stage 2, memory only")
reports=() preds=()
for i in "${!runs[@]}"; do
  r=runs/${runs[$i]}
  $MT evaluate --checkpoint "$r/best.pt" --data data/synthetic --split test --out "$r/test_report.json" \
    --pred-dir "$r/test_pred" --no-progress
  reports+=("${labels[$i]}=$r/test_report.json")
  preds+=("${labels[$i]}=$r/test_pred")
done
$PY scripts/results_table.py --data data/synthetic --split test "${reports[@]}"
$PY scripts/style_amplitude.py --data data/synthetic --split test "${preds[@]}"
$PY scripts/memory_reliance.py runs/synthetic/memorizing/best.pt runs/synthetic/animating/best.pt \
  runs/synthetic_textdrop/memorizing/best.pt --data data/synthetic --split val --clips 8
