#!/usr/bin/env bash
# The ablation and the stage-2 variants at the search's tuned settings, on the tuning data only:
# split 0, *validation* kNN, train seeds SEEDS. PARTS picks:
#   stage2: one student run per row from the best search trial's guide (its
#     guide/checkpoints/last.ckpt) for the trial's student epochs: each stage-2 component and
#     variant (docs/method.md, "Stage 2 variants") switched on or off alone; "tuned" is the
#     trial's student itself (seed 0 must reproduce it: checked by the summary);
#   stage1: whole pipelines at the search budget, each with one stage-1 component changed
#     (beta 0, lambda_dd 0, random OOD picks instead of the clusters').
# Then benchmarks/campaign/student_variants_summary.py writes the table.
#   LTCL_LOG_DIR=<campaign log dir> PARTS=stage2,stage1 bash benchmarks/campaign/student_variants_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
LOG=${LTCL_LOG_DIR:-outputs}
SEEDS=${SEEDS:-0,1}
PARTS=${PARTS:-stage2,stage1}
OUT=benchmarks/campaign/results/student_variants_cpu
mkdir -p "$OUT"
search="$LOG/campaign_search/multirun"
trial=$("$BIN/python" benchmarks/campaign/student_variants_summary.py --best-trial "$search")
epochs=$("$BIN/python" -c "import json,sys; print(json.load(open(sys.argv[1]))['stages']['student']['epochs'])" "$trial/pipeline.json")
mapfile -t tuned < <("$BIN/python" benchmarks/campaign/best_params.py "$search/optimization_results.yaml" \
  --only stages.student.method. | sed 's/^stages\.student\.method\./method./')
echo "[variants] best trial $trial, student $epochs epochs: ${tuned[*]}"
base=(
  data=cifar10_lt_folder model=small trainer=cpu data.global_batch_size=256
  trainer.enable_progress_bar=false trainer.check_val_every_n_epoch=1000 data.split.seed=0
  'eval.protocols=[knn]' eval.plots=false seed="$SEEDS"
)
common=(
  "${base[@]}" method=student
  "method.guide_checkpoint=$trial/guide/checkpoints/last.ckpt" "${tuned[@]}"
  trainer.max_epochs="$epochs"
)
# name: overrides on top of the tuned student (later overrides win).
variants=(
  "tuned:"
  "no_guided_positives:method.k_pos=0"
  "no_distillation:method.lambda_dl=0"
  "no_repulsion_weights:method.repulsion_weights=false"
  "scratch_init:method.init=scratch"
  "relational_distillation:method.lambda_dl=1 method.distillation=relational"
  "backbone_distillation:method.lambda_dl=1 method.distillation=backbone"
  "density_repulsion:method.density_k=10"
  "positive_bank:method.positive_bank=4096"
)
if [[ ",$PARTS," == *",stage2,"* ]]; then
  for entry in "${variants[@]}"; do
    name=${entry%%:*}
    read -r -a extra <<< "${entry#*:}"
    echo "[variants $(date +%H:%M:%S)] $name: ${extra[*]:-(none)}"
    "$BIN/ltcl-train" -m task_name="student_variants_$name" "${common[@]}" "${extra[@]}"
  done
fi
if [[ ",$PARTS," == *",stage1,"* ]]; then
  mapfile -t pipeline < <("$BIN/python" benchmarks/campaign/best_params.py "$search/optimization_results.yaml")
  total=$("$BIN/python" -c "import json,sys; s=json.load(open(sys.argv[1]))['stages']; print(s['guide']['epochs'] + s['student']['epochs'])" "$trial/pipeline.json")
  stage1=(
    "tuned:"
    "beta_0:method.beta=0"
    "lambda_dd_0:method.lambda_dd=0"
    "random_ood:method/sampler=random"
  )
  for entry in "${stage1[@]}"; do
    name=${entry%%:*}
    read -r -a extra <<< "${entry#*:}"
    echo "[stage-1 ablation $(date +%H:%M:%S)] $name: ${extra[*]:-(none)}"
    "$BIN/ltcl-pipeline" -m task_name="stage1_ablation_$name" "${base[@]}" ood=tinyimagenet \
      ood.candidates_per_round=20000 "${pipeline[@]}" stages.total_epochs="$total" "${extra[@]}"
  done
fi
"$BIN/python" benchmarks/campaign/student_variants_summary.py "$LOG" --trial "$trial" --out "$OUT"
