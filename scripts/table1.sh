#!/usr/bin/env bash
# Rebuild docs/RESULTS.md "Table 1 in one harness" on a 2-core CPU, one run at a time (about 5 hours of
# training for two seeds of every row, then the evaluations): the synthetic corpora, every Table 1 system as a
# model kind of the one trainer (checkpoints selected on the validation speakers), each scored on the unseen
# test speakers of the project's face corpus by the one evaluation layer, and the table.
#   bash scripts/table1.sh            # SEEDS="0 1" by default
# Runs whose best.pt already exists are kept (delete the folder to retrain it).
set -euo pipefail
cd "$(dirname "$0")/.."
MT=.venv/bin/memorytalker
PY=.venv/bin/python
SEEDS=${SEEDS:-"0 1"}
FLAME=../shared/data/flame
[ -f data/synthetic/dataset.yaml ] || $MT synth --out data/synthetic --speakers 24 --sentences 40 --seed 0
[ -f data/synth_head/dataset.yaml ] || $MT synth --out data/synth_head --face procedural --speakers 12 --sentences 40 --seed 1
UNI_CORPORA="[{root: data/synth_head}, {root: data/synth_flame}]"
if [ -f $FLAME/FLAME_sample.ply ]; then  # FLAME is non-commercial: generated here, never shipped
  [ -f data/synth_flame/dataset.yaml ] || $MT synth --out data/synth_flame --speakers 12 --sentences 40 --seed 2 \
    --template $FLAME/FLAME_sample.ply --regions $FLAME/FLAME_masks.pkl
else
  echo "no $FLAME: UniTalker trains on two topologies (the project's face and the procedural head)"
  UNI_CORPORA="[{root: data/synth_head}]"
fi

NOGAP="stages.memorizing.loss.gap=0 stages.animating.loss.gap=0 stages.memorizing.loss.laplacian=0"
NOGAP="$NOGAP stages.animating.loss.laplacian=0 checkpoint.monitor=lve"
suffix() { [ "$1" = 0 ] && echo "" || echo "_s$1"; }
train() {  # train NAME STAGE CONFIG [overrides...]: skipped when NAME/STAGE/best.pt exists
  local name=$1 stage=$2 config=$3
  shift 3
  [ -f "runs/$name/$stage/best.pt" ] || $MT train --config "$config" --stage "$stage" name="$name" "$@"
}
for seed in $SEEDS; do
  s=$(suffix "$seed")
  train "synthetic$s" memorizing configs/synthetic.yaml optim.seed="$seed"
  train "synthetic$s" animating configs/synthetic.yaml optim.seed="$seed"
  # shellcheck disable=SC2086
  train "synthetic_paper$s" memorizing configs/synthetic.yaml optim.seed="$seed" $NOGAP
  # shellcheck disable=SC2086
  train "synthetic_paper$s" animating configs/synthetic.yaml optim.seed="$seed" $NOGAP
  train "synthetic_faceformer$s" faceformer configs/synthetic_faceformer.yaml optim.seed="$seed"
  train "synthetic_selftalk$s" selftalk configs/synthetic_selftalk.yaml optim.seed="$seed"
  train "synthetic_unitalker$s" unitalker configs/synthetic_unitalker.yaml optim.seed="$seed" "data.corpora=$UNI_CORPORA"
  train "synthetic_codetalker$s" codetalker_vq configs/synthetic_codetalker.yaml optim.seed="$seed"
  train "synthetic_codetalker$s" codetalker configs/synthetic_codetalker.yaml optim.seed="$seed"
  train "synthetic_imitator$s" imitator configs/synthetic_imitator.yaml optim.seed="$seed"
  train "synthetic_scantalk$s" scantalk configs/synthetic_scantalk.yaml optim.seed="$seed" "data.corpora=$UNI_CORPORA"
  # the config's first version: clips read from disk every step, 420 steps (0.66 of an epoch)
  train "synthetic_scantalk_short$s" scantalk configs/synthetic_scantalk.yaml optim.seed="$seed" "data.corpora=$UNI_CORPORA" \
    data.cache=false optim.max_steps=420 stages.scantalk.max_epochs=1 checkpoint.val_every_n_steps=140
done
# Imitator's personalisation (the test speakers' first 4 sentences, split `adapt`; scored on `test`), ScanTalk on
# a mesh it never saw (the project's face remeshed: scripts/remesh_corpus.py), CodeTalker's codebook usage
[ -f data/synthetic_remeshed/dataset.yaml ] || $PY scripts/remesh_corpus.py data/synthetic --out data/synthetic_remeshed \
  --vertices 3600 --splits test
for seed in $SEEDS; do
  s=$(suffix "$seed")
  [ -f "runs/synthetic_imitator$s/adapted/report.json" ] || $MT adapt -c "runs/synthetic_imitator$s/imitator/best.pt" \
    -d data/synthetic --split adapt --score-split test --out "runs/synthetic_imitator$s/adapted"
  for d in runs/synthetic_scantalk$s/scantalk runs/synthetic_scantalk_short$s/scantalk; do
    [ -f $d/test_remeshed.json ] || $MT evaluate -c $d/best.pt -d data/synthetic_remeshed --split test --out $d/test_remeshed.json
  done
  d=runs/synthetic_codetalker$s/codetalker
  [ -f $d/codebook.json ] || $PY scripts/codebook_usage.py $d/best.pt --data data/synthetic --split test \
    --conditions default --json $d/codebook.json
done
# UniTalker ablations, seed 0: the project's corpus alone, and no PCA head
train synthetic_unitalker_one unitalker configs/synthetic_unitalker.yaml "data.corpora=[]"
train synthetic_unitalker_nopca unitalker configs/synthetic_unitalker.yaml "data.corpora=$UNI_CORPORA" \
  model.unitalker.pca_dim=0

rows() {  # rows LABEL RUN STAGE: LABEL=runs/RUN/STAGE,runs/RUN_s1/STAGE,...
  local out="$1=" sep=""
  for seed in $SEEDS; do out="$out${sep}runs/$2$(suffix "$seed")/$3"; sep=","; done
  echo "$out"
}
$PY scripts/table1.py --data data/synthetic --split test \
  "$(rows "MemoryTalker (ours: gap + Laplacian losses, lve_gap selection)" synthetic animating)" \
  "$(rows "MemoryTalker (paper-faithful)" synthetic_paper animating)" \
  "$(rows "FaceFormer (every training style, averaged)@all" synthetic_faceformer faceformer)" \
  "$(rows "FaceFormer (one style: the first training speaker)@default" synthetic_faceformer faceformer)" \
  "$(rows "SelfTalk" synthetic_selftalk selftalk)" \
  "$(rows "UniTalker (common identity)" synthetic_unitalker unitalker)" \
  "$(rows "CodeTalker (every training style, averaged)@all" synthetic_codetalker codetalker)" \
  "$(rows "Imitator, generalised (every training style, averaged)@all" synthetic_imitator imitator)" \
  "$(rows "Imitator, adapted (4 sequences per test speaker)@report:../adapted/report.json" synthetic_imitator imitator)" \
  "$(rows "ScanTalk" synthetic_scantalk scantalk)" \
  "$(rows "ScanTalk on the remeshed face (unseen topology)@report:test_remeshed.json" synthetic_scantalk scantalk)" \
  "$(rows "ScanTalk, first config (0.66 epoch)" synthetic_scantalk_short scantalk)" \
  "$(rows "ScanTalk, first config, remeshed face@report:test_remeshed.json" synthetic_scantalk_short scantalk)" \
  "UniTalker, one corpus (data.corpora=[])=runs/synthetic_unitalker_one/unitalker" \
  "UniTalker, no PCA (model.unitalker.pca_dim=0)=runs/synthetic_unitalker_nopca/unitalker"
for d in runs/synthetic/animating runs/synthetic_paper/animating runs/synthetic_faceformer/faceformer \
  runs/synthetic_selftalk/selftalk runs/synthetic_unitalker/unitalker runs/synthetic_codetalker/codetalker \
  runs/synthetic_imitator/imitator runs/synthetic_scantalk/scantalk; do  # real speech, where the recordings are
  [ -d ../shared/data/speech ] || { echo "no ../shared/data/speech: real-speech table skipped"; break; }
  [ -f $d/real_lipsync.json ] || $PY scripts/real_speech_lipsync.py -c $d/best.pt --out $d/real_lipsync.json
done
