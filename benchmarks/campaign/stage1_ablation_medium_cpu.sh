#!/usr/bin/env bash
# Which part of the tuned stage 1 costs the medium tier its accuracy (docs/research_record.md 8.8)?
# On the tuning data only: split 0, *validation* kNN and probe (b), model=cifar_resnet10_w16,
# the guide alone for EPOCHS ID epochs with the search's OOD schedule (K, W, R, batch ratio),
# one row per stage-1 setting (ROWS picks and orders them; every row sees the same images):
#   tuned            the search's stage 1 (beta 0.1 per positive, SupCon L_DD at 0.5, clusters' picks)
#   lambda_dd_0      tuned without L_DD
#   beta_0           tuned without the pseudo positives (beta 0)
#   cluster_picks    the clusters' picks alone (beta 0, lambda_dd 0)
#   bce_dd           beta 0 with the guide's default domain loss (BCE at 0.1) instead of SupCon at 0.5
#                    (not in the default ROWS: not run yet)
#   random_ood       the control: random picks, beta 0, lambda_dd 0
#   random_supcon    random picks with the tuned SupCon L_DD at 0.5 (beta has no effect without clusters)
# and SimCLR for the same ID epochs (simclr); then PIPELINES (name:overrides, ';'-separated):
# whole pipelines (the search's settings, one schedule, EPOCHS ID epochs over both stages) with a
# stage 1 chosen from the rows above (overrides without a prefix go to the guide,
# stages.student.method.* to the student), task stage1_medium_method_<name>; then
# benchmarks/campaign/stage1_ablation_summary.py.
#   LTCL_LOG_DIR=<campaign log dir> bash benchmarks/campaign/stage1_ablation_medium_cpu.sh
#   ROWS= PIPELINES="lambda_dd_0:method.lambda_dd=0" bash benchmarks/campaign/stage1_ablation_medium_cpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${BIN:-.venv/bin}
LOG=${LTCL_LOG_DIR:-outputs}
EPOCHS=${EPOCHS:-30}
PIPELINES=${PIPELINES:-}
ROWS=${ROWS-random_ood,tuned,lambda_dd_0,beta_0,cluster_picks,random_supcon,simclr}
OUT=benchmarks/campaign/results/stage1_ablation_medium_cpu
best="$LOG/campaign_search/multirun/optimization_results.yaml"
[ -f "$best" ] || best=benchmarks/campaign/results/campaign_cifar10_lt_cpu/search_best.yaml
mapfile -t stage1 < <("$BIN/python" benchmarks/campaign/best_params.py "$best" --only method. ood.)
common=(
  data=cifar10_lt_folder model=cifar_resnet10_w16 trainer=cpu data.global_batch_size=256
  trainer.enable_progress_bar=false trainer.check_val_every_n_epoch=1000 data.split.seed=0
  'eval.protocols=[knn,linear_b]'
)
# name: overrides on top of the tuned stage 1 (later overrides win).
declare -A rows=(
  [tuned]=""
  [lambda_dd_0]="method.lambda_dd=0"
  [beta_0]="method.beta=0"
  [cluster_picks]="method.beta=0 method.lambda_dd=0"
  [bce_dd]="method.beta=0 method.domain_loss=bce method.lambda_dd=0.1"
  [random_ood]="method/sampler=random method.beta=0 method.lambda_dd=0"
  [random_supcon]="method/sampler=random method.beta=0"
)
echo "[stage-1 ablation] tuned stage 1: ${stage1[*]}"
for name in ${ROWS//,/ }; do
  echo "[stage-1 ablation $(date +%H:%M:%S)] $name"
  if [ "$name" = simclr ]; then
    "$BIN/ltcl-train" -m task_name=stage1_medium_simclr "${common[@]}" trainer.max_epochs="$EPOCHS"
    continue
  fi
  read -r -a extra <<< "${rows[$name]}"
  "$BIN/ltcl-train" -m task_name="stage1_medium_$name" "${common[@]}" method=guide \
    trainer.max_epochs="$EPOCHS" \
    ood=tinyimagenet ood.candidates_per_round=20000 "${stage1[@]}" "${extra[@]}"
done
IFS=';' read -r -a entries <<< "$PIPELINES"
mapfile -t tuned < <("$BIN/python" benchmarks/campaign/best_params.py "$best")
for entry in "${entries[@]}"; do
  name=${entry%%:*}
  read -r -a extra <<< "${entry#*:}"
  echo "[stage-1 ablation $(date +%H:%M:%S)] pipeline $name: ${extra[*]}"
  "$BIN/ltcl-pipeline" -m task_name="stage1_medium_method_$name" "${common[@]}" \
    ood=tinyimagenet ood.candidates_per_round=20000 "${tuned[@]}" "${extra[@]}" \
    stages.total_epochs="$EPOCHS" stages.one_schedule=true
done
"$BIN/python" benchmarks/campaign/stage1_ablation_summary.py "$LOG" --out "$OUT"
