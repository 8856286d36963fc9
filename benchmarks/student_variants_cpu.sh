#!/usr/bin/env bash
# Stage-2 variants (docs/method.md, "Stage 2 variants") at the search's tuned settings, on the
# tuning data only: split 0, *validation* kNN. Each variant is one student run from the best
# search trial's guide (its guide/checkpoints/last.ckpt), for the trial's student epochs, at
# train seeds SEEDS; "tuned" is the trial's student itself (seed 0 must reproduce it: checked by
# the summary). Then benchmarks/student_variants_summary.py writes the table.
#   LTCL_LOG_DIR=<campaign log dir> bash benchmarks/student_variants_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
LOG=${LTCL_LOG_DIR:-outputs}
SEEDS=${SEEDS:-0,1}
OUT=benchmarks/results/student_variants_cpu
mkdir -p "$OUT"
search="$LOG/campaign_search/multirun"
trial=$("$BIN/python" benchmarks/student_variants_summary.py --best-trial "$search")
epochs=$("$BIN/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['stages']['student']['epochs'])" "$trial/pipeline.json")
mapfile -t tuned < <("$BIN/python" benchmarks/best_params.py "$search/optimization_results.yaml" \
  --only stages.student.method. | sed 's/^stages\.student\.method\./method./')
echo "[variants] best trial $trial, student $epochs epochs: ${tuned[*]}"
common=(
  data=cifar10_lt_folder model=small trainer=cpu data.global_batch_size=256
  trainer.enable_progress_bar=false trainer.check_val_every_n_epoch=1000 data.split.seed=0
  'eval.protocols=[knn]' eval.plots=false method=student
  "method.guide_checkpoint=$trial/guide/checkpoints/last.ckpt" "${tuned[@]}"
  trainer.max_epochs="$epochs" seed="$SEEDS"
)
# name: overrides on top of the tuned student (later overrides win).
variants=(
  "tuned:"
  "density_repulsion:method.density_k=10"
  "top1_batch:method.k_pos=1 method.delta=-1"
  "top1_bank:method.k_pos=1 method.delta=-1 method.positive_bank=4096"
  "feature_distillation:method.lambda_dl=1 method.distillation=feature"
  "backbone_distillation:method.lambda_dl=1 method.distillation=backbone"
)
for entry in "${variants[@]}"; do
  name=${entry%%:*}
  read -r -a extra <<< "${entry#*:}"
  echo "[variants $(date +%H:%M:%S)] $name: ${extra[*]:-(none)}"
  "$BIN/ltcl-train" -m task_name="student_variants_$name" "${common[@]}" "${extra[@]}"
done
"$BIN/python" benchmarks/student_variants_summary.py "$LOG" --trial "$trial" --out "$OUT"
